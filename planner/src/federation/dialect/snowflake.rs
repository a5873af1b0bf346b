//! Snowflake: DataFusion's unparser with Snowflake's spelling, and the capability table.
//!
//! Names: an object Snowflake stores in unquoted upper case (`PUBLIC.PART`) is seen in Sluice
//! in lower case (`public.part`), as users of case-insensitive SQL expect; any other name
//! keeps its case ([`SourceDialect::local_name`]). Every name Sluice sends is quoted, so the
//! source reads exactly the object it stores.
//!
//! Sessions run with `TIMEZONE = 'UTC'` (the executor sets it at login). Text columns
//! without a collation compare and order by their UTF-8 bytes in Snowflake, as in DataFusion,
//! so text ordering needs no collation clause; a column with a collation is only passed
//! through.
//!
//! What is kept local, and why (each a difference from DataFusion that would change an
//! answer):
//! - `/` on anything (Snowflake divides integers into decimals, with its own scales);
//! - decimal products whose scale would pass 12 (Snowflake caps a product's scale);
//! - `avg` (a decimal in Snowflake, a float in DataFusion), `concat` (NULL arguments: NULL in
//!   Snowflake, skipped in DataFusion), `upper`/`lower`, trimming, regular expressions;
//! - string literals holding a backslash are written with it doubled (Snowflake reads
//!   backslash escapes in literals), and `LIKE` with a backslash in its pattern stays local
//!   (Snowflake's `LIKE` has no default escape character, DataFusion's is the backslash);
//! - floats in comparisons, grouping and sorting (NaN and -0), and float literals (a literal
//!   `1.5` is an exact NUMBER in Snowflake);
//! - zoned timestamp literals, intervals, week-based date parts (they follow session
//!   parameters);
//! - null-aware anti joins and anything not listed here.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{Expr, Operator};
use datafusion::sql::sqlparser::ast::{self, Ident, ObjectName};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{
    CharacterLengthStyle, DateFieldExtractStyle, Dialect as UnparserDialect, DistinctFromStyle,
    IntervalStyle,
};

use super::{
    Capabilities, JOIN_TYPES, SourceDialect, compares_or_combines, is_exact_number, is_text,
};
use crate::federation::executor::{ReadAs, RemoteColumn};
use crate::federation::placeholders;

/// Snowflake's dialect.
#[derive(Debug, Default, Clone, Copy)]
pub struct SnowflakeDialect;

impl SnowflakeDialect {
    /// Shared, as executors and tables hold it.
    pub fn shared() -> Arc<dyn SourceDialect> {
        Arc::new(Self)
    }
}

/// `name` is how Snowflake stores an unquoted identifier: upper case letters, digits, `_`
/// and `$`, not starting with a digit or `$`.
pub fn is_unquoted_upper(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '$')
}

impl SourceDialect for SnowflakeDialect {
    fn name(&self) -> &'static str {
        "snowflake"
    }

    fn unparser(&self) -> &dyn UnparserDialect {
        &Unparse
    }

    fn capabilities(&self) -> &Capabilities {
        &CAPABILITIES
    }

    fn quote(&self, name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    fn local_name(&self, remote: &str) -> String {
        if is_unquoted_upper(remote) {
            remote.to_ascii_lowercase()
        } else {
            remote.to_owned()
        }
    }

    fn select_column(&self, column: &RemoteColumn) -> String {
        let quoted = self.quote(&column.name);
        match &column.read {
            None => quoted,
            Some(ReadAs::Text | ReadAs::TextArray) => format!("TO_VARCHAR({quoted})"),
            Some(ReadAs::Function(f)) => format!("{f}({quoted})"),
            Some(ReadAs::Round(scale)) => format!("ROUND({quoted}, {scale})"),
        }
    }

    fn pins_sum_types(&self) -> bool {
        true
    }

    /// Text without a collation already compares by its bytes.
    fn byte_order(&self, expr: ast::Expr) -> ast::Expr {
        expr
    }
}

/// The unparser dialect.
struct Unparse;

impl UnparserDialect for Unparse {
    fn identifier_quote_style(&self, _: &str) -> Option<char> {
        Some('"')
    }

    fn supports_qualify(&self) -> bool {
        false
    }

    fn requires_derived_table_alias(&self) -> bool {
        true
    }

    fn interval_style(&self) -> IntervalStyle {
        IntervalStyle::SQLStandard
    }

    fn float64_ast_dtype(&self) -> ast::DataType {
        ast::DataType::Double(ast::ExactNumberInfo::None)
    }

    fn utf8_cast_dtype(&self) -> ast::DataType {
        ast::DataType::Varchar(None)
    }

    fn large_utf8_cast_dtype(&self) -> ast::DataType {
        ast::DataType::Varchar(None)
    }

    fn distinct_from_style(&self) -> DistinctFromStyle {
        DistinctFromStyle::FullText
    }

    fn date_field_extract_style(&self) -> DateFieldExtractStyle {
        DateFieldExtractStyle::Extract
    }

    fn character_length_style(&self) -> CharacterLengthStyle {
        CharacterLengthStyle::Length
    }

    /// Only zone-less timestamps are sent (see `literal`): `TIMESTAMP_NTZ`, whatever the
    /// account's `TIMESTAMP_TYPE_MAPPING` says plain `TIMESTAMP` means.
    fn timestamp_cast_dtype(&self, _unit: &TimeUnit, _tz: &Option<Arc<str>>) -> ast::DataType {
        ast::DataType::Custom(
            ObjectName::from(vec![Ident::new("TIMESTAMP_NTZ")]),
            Vec::new(),
        )
    }

    /// Snowflake reads backslash escapes in string literals: a backslash is written doubled.
    fn string_literal_to_sql(&self, s: &str) -> Option<ast::Expr> {
        s.contains('\\')
            .then(|| ast::Expr::value(ast::Value::SingleQuotedString(s.replace('\\', "\\\\"))))
    }

    fn scalar_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        func_name: &str,
        args: &[Expr],
    ) -> DfResult<Option<ast::Expr>> {
        match (func_name, args) {
            (placeholders::BYTE_ORDER, [arg]) => Ok(Some(unparser.expr_to_sql(arg)?)),
            ("date_part", [Expr::Literal(part, _), arg]) => {
                let Some(field) = part.try_as_str().flatten().and_then(extract_field) else {
                    return Ok(None);
                };
                Ok(Some(ast::Expr::Extract {
                    field,
                    syntax: ast::ExtractSyntax::From,
                    expr: Box::new(unparser.expr_to_sql(arg)?),
                }))
            }
            ("starts_with", [s, prefix]) => Ok(Some(function(
                "STARTSWITH",
                vec![unparser.expr_to_sql(s)?, unparser.expr_to_sql(prefix)?],
            ))),
            _ => Ok(None),
        }
    }
}

fn function(name: &str, args: Vec<ast::Expr>) -> ast::Expr {
    ast::Expr::Function(ast::Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: ast::FunctionArguments::None,
        args: ast::FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// `date_part` fields whose Snowflake `EXTRACT` gives the same integers whatever the
/// session's week parameters.
fn extract_field(part: &str) -> Option<ast::DateTimeField> {
    use ast::DateTimeField as F;
    Some(match part.to_ascii_lowercase().as_str() {
        "year" => F::Year,
        "quarter" => F::Quarter,
        "month" => F::Month,
        "day" => F::Day,
        "hour" => F::Hour,
        "minute" => F::Minute,
        _ => return None,
    })
}

/// The capability table.
pub static CAPABILITIES: Capabilities = Capabilities {
    scalar_functions: &[
        ("abs", args::exact_numbers),
        ("coalesce", args::comparable),
        ("nullif", args::comparable),
        ("substr", args::text_then_positive_literals),
        ("substring", args::text_then_positive_literals),
        ("left", args::text_then_positive_literals),
        ("right", args::text_then_positive_literals),
        ("length", args::text),
        ("char_length", args::text),
        ("character_length", args::text),
        ("replace", args::text),
        ("reverse", args::text),
        ("starts_with", args::text),
        ("md5", args::text),
        ("date_part", args::date_part),
        ("date_trunc", args::date_trunc),
    ],
    aggregate_functions: &[
        ("count", args::any),
        ("sum", args::sum),
        ("min", args::min_max),
        ("max", args::min_max),
    ],
    window_functions: &["row_number", "rank", "dense_rank", "ntile", "lag", "lead"],
    join_types: JOIN_TYPES,
    operator,
    cast,
    literal,
    like,
};

fn scale(t: &DataType) -> i16 {
    match t {
        DataType::Decimal128(_, s) => i16::from(*s),
        _ => 0,
    }
}

fn operator(op: Operator, l: &DataType, r: &DataType) -> bool {
    use Operator as O;
    let exact = is_exact_number(l) && is_exact_number(r);
    let float = |t: &DataType| t.is_floating() || is_exact_number(t);
    match op {
        O::Plus | O::Minus => exact || (float(l) && float(r)),
        // Snowflake's product scale is min(s1 + s2, max(s1, s2, 12)): the same below 13.
        O::Multiply => (exact && scale(l) + scale(r) <= 12) || (l.is_floating() && r.is_floating()),
        // The remainder's sign follows the dividend in both.
        O::Modulo => l.is_integer() && r.is_integer(),
        O::StringConcat => is_text(l) && is_text(r),
        op => compares_or_combines(op),
    }
}

fn cast(from: &DataType, to: &DataType) -> bool {
    use DataType as D;
    match (from, to) {
        _ if from == to => true,
        // Every Snowflake integer is a NUMBER(38, 0): the value is kept and Sluice's decoder
        // checks it fits the integer type DataFusion expects.
        (f, t) if f.is_integer() && t.is_integer() => true,
        (f, D::Decimal128(p, s)) if f.is_integer() => i16::from(*p) - i16::from(*s) >= 20,
        (D::Decimal128(_, s1), D::Decimal128(_, s2)) => s2 >= s1,
        (f, D::Float64) if f.is_integer() || f.is_floating() => true,
        (D::Date32, D::Timestamp(_, None)) => true,
        _ => false,
    }
}

fn literal(v: &ScalarValue) -> bool {
    use ScalarValue as S;
    matches!(
        v,
        S::Null
            | S::Boolean(_)
            | S::Int8(_)
            | S::Int16(_)
            | S::Int32(_)
            | S::Int64(_)
            | S::UInt8(_)
            | S::UInt16(_)
            | S::UInt32(_)
            | S::UInt64(_)
            | S::Decimal128(..)
            | S::Utf8(_)
            | S::LargeUtf8(_)
            | S::Utf8View(_)
            | S::Date32(_)
            | S::TimestampSecond(_, None)
            | S::TimestampMillisecond(_, None)
            | S::TimestampMicrosecond(_, None)
            | S::TimestampNanosecond(_, None)
    )
}

/// Only patterns without a backslash: Snowflake's `LIKE` has no default escape.
fn like(pattern: &Expr, escape: Option<char>) -> bool {
    escape.is_none()
        && matches!(pattern, Expr::Literal(v, _)
            if v.try_as_str().flatten().is_some_and(|p| !p.contains('\\')))
}

/// Argument checks for the capability table.
mod args {
    use super::{is_exact_number, is_text};
    use crate::federation::dialect::args as common;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::Expr;

    type R = Result<(), String>;

    pub use common::{any, comparable, exact_numbers, text, text_then_positive_literals};

    pub fn sum(_: &[Expr], t: &[DataType]) -> R {
        common::all(t, is_exact_number, "an integer or decimal")
    }

    pub fn min_max(_: &[Expr], t: &[DataType]) -> R {
        common::all(
            t,
            |t| {
                is_exact_number(t)
                    || is_text(t)
                    || matches!(
                        t,
                        DataType::Boolean | DataType::Date32 | DataType::Timestamp(_, None)
                    )
            },
            "not a float",
        )
    }

    pub fn date_part(a: &[Expr], t: &[DataType]) -> R {
        let field = match a.first() {
            Some(Expr::Literal(v, _)) => v.try_as_str().flatten().map(str::to_owned),
            _ => None,
        };
        if field.as_deref().and_then(super::extract_field).is_none() {
            return Err("a date part other than year, quarter, month, day, hour, minute".into());
        }
        match t.get(1) {
            Some(DataType::Date32 | DataType::Timestamp(_, None)) => Ok(()),
            _ => Err("a date part of a zoned or non-date value".to_owned()),
        }
    }

    pub fn date_trunc(a: &[Expr], t: &[DataType]) -> R {
        let unit = match a.first() {
            Some(Expr::Literal(v, _)) => v.try_as_str().flatten().map(str::to_ascii_lowercase),
            _ => None,
        };
        if !unit.as_deref().is_some_and(|u| {
            matches!(
                u,
                "year" | "quarter" | "month" | "day" | "hour" | "minute" | "second"
            )
        }) {
            return Err(
                "a truncation unit other than year to second (weeks follow WEEK_START)".into(),
            );
        }
        // On a date, Snowflake's DATE_TRUNC answers a date, DataFusion's a timestamp.
        match t.get(1) {
            Some(DataType::Timestamp(_, None)) => Ok(()),
            _ => Err("date_trunc of a date or zoned value".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_case_names_are_seen_in_lower_case() {
        let d = SnowflakeDialect;
        assert_eq!(d.local_name("PART"), "part");
        assert_eq!(d.local_name("L_SHIPDATE"), "l_shipdate");
        assert_eq!(d.local_name("A$1"), "a$1");
        for kept in ["MixedCase", "lower", "WITH SPACE", "1ABC", "QU\"OTE", ""] {
            assert_eq!(d.local_name(kept), kept);
        }
    }

    #[test]
    fn backslashes_are_doubled_in_literals() {
        let sql = Unparser::new(&Unparse)
            .expr_to_sql(&Expr::Literal(
                ScalarValue::Utf8(Some(r"a\b'c".into())),
                None,
            ))
            .map(|e| e.to_string());
        assert_eq!(sql.ok().as_deref(), Some(r"'a\\b''c'"));
    }
}
