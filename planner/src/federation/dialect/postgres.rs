//! PostgreSQL: DataFusion's PostgreSQL unparser dialect with Sluice's overrides, and the
//! capability table.
//!
//! Remote sessions run with `TimeZone = 'UTC'` and `standard_conforming_strings = on` (the
//! executor sets both), which several entries rely on: zoned timestamps are sent as their
//! UTC wall time, backslashes in string literals are literal.
//!
//! What is kept local, and why (each a difference from DataFusion that would change an
//! answer):
//! - text ordering under the column's collation: every ordering use of text (ranges, `ORDER
//!   BY`, `min`/`max`, window order) is sent as `COLLATE "C"`, byte order, DataFusion's;
//! - floats in comparisons, grouping, sorting, joins and `min`/`max` (PostgreSQL counts `-0
//!   = 0` and every NaN equal and greatest), float division (PostgreSQL errors on a zero
//!   divisor), rounding functions;
//! - decimal division and `avg` of decimals (different result scales and rounding);
//! - `upper`, `lower`, `ILIKE` (case mapping depends on the database's locale), regular
//!   expressions (POSIX vs Rust syntax), casts from text (different parsing);
//! - null-aware anti joins (`NOT IN`) and joins whose keys match NULL to NULL;
//! - order-dependent aggregates (`array_agg`, `string_agg`, `first_value`) and anything not
//!   listed here.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{Expr, Operator};
use datafusion::sql::sqlparser::ast::{self, Ident, ObjectName};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{
    CharacterLengthStyle, DateFieldExtractStyle, Dialect as UnparserDialect, DistinctFromStyle,
    IntervalStyle, PostgreSqlDialect,
};

use super::{
    Capabilities, JOIN_TYPES, SourceDialect, compares_or_combines, is_exact_number, is_text,
};
use crate::federation::executor::{ReadAs, RemoteColumn};
use crate::federation::placeholders;

/// PostgreSQL's dialect.
#[derive(Debug, Default, Clone, Copy)]
pub struct PostgresDialect;

impl PostgresDialect {
    /// Shared, as executors and tables hold it.
    pub fn shared() -> Arc<dyn SourceDialect> {
        Arc::new(Self)
    }
}

impl SourceDialect for PostgresDialect {
    fn name(&self) -> &'static str {
        "postgres"
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

    fn select_column(&self, column: &RemoteColumn) -> String {
        let quoted = self.quote(&column.name);
        match &column.read {
            None => quoted,
            Some(ReadAs::Text) => format!("{quoted}::text"),
            Some(ReadAs::TextArray) => format!("{quoted}::text[]"),
            Some(ReadAs::Function(f)) => format!("{f}({quoted})"),
            Some(ReadAs::Round(scale)) => format!("round({quoted}, {scale})"),
        }
    }

    fn byte_order(&self, expr: ast::Expr) -> ast::Expr {
        ast::Expr::Collate {
            expr: Box::new(nested(expr)),
            collation: ObjectName::from(vec![Ident::with_quote('"', "C")]),
        }
    }
}

fn nested(e: ast::Expr) -> ast::Expr {
    match e {
        ast::Expr::Identifier(_)
        | ast::Expr::CompoundIdentifier(_)
        | ast::Expr::Value(_)
        | ast::Expr::Nested(_)
        | ast::Expr::Function(_) => e,
        other => ast::Expr::Nested(Box::new(other)),
    }
}

/// DataFusion's PostgreSQL unparser dialect, with the overrides the capability table relies
/// on.
struct Unparse;

impl UnparserDialect for Unparse {
    fn identifier_quote_style(&self, _: &str) -> Option<char> {
        Some('"')
    }

    fn use_array_keyword_for_array_literals(&self) -> bool {
        true
    }

    fn supports_qualify(&self) -> bool {
        false
    }

    fn requires_derived_table_alias(&self) -> bool {
        true
    }

    fn supports_empty_select_list(&self) -> bool {
        true
    }

    fn interval_style(&self) -> IntervalStyle {
        IntervalStyle::PostgresVerbose
    }

    fn float64_ast_dtype(&self) -> ast::DataType {
        ast::DataType::DoublePrecision
    }

    fn int8_cast_dtype(&self) -> ast::DataType {
        ast::DataType::SmallInt(None)
    }

    fn utf8_cast_dtype(&self) -> ast::DataType {
        ast::DataType::Text
    }

    fn distinct_from_style(&self) -> DistinctFromStyle {
        DistinctFromStyle::FullText
    }

    fn date_field_extract_style(&self) -> DateFieldExtractStyle {
        DateFieldExtractStyle::Extract
    }

    fn character_length_style(&self) -> CharacterLengthStyle {
        CharacterLengthStyle::CharacterLength
    }

    /// The same instant as UTC wall time: the remote session's `TimeZone` is UTC, so
    /// PostgreSQL reads `CAST('…' AS TIMESTAMP)` back as that instant, and a zoned column
    /// compared with it compares instants. (DataFusion's default keeps the offset in the
    /// text, which `TIMESTAMP` would drop.)
    fn timestamp_with_tz_to_string(
        &self,
        dt: chrono::DateTime<datafusion::arrow::array::timezone::Tz>,
        _unit: TimeUnit,
    ) -> String {
        dt.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string()
    }

    fn timestamp_cast_dtype(&self, _unit: &TimeUnit, _tz: &Option<Arc<str>>) -> ast::DataType {
        ast::DataType::Timestamp(None, ast::TimezoneInfo::None)
    }

    fn scalar_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        func_name: &str,
        args: &[Expr],
    ) -> DfResult<Option<ast::Expr>> {
        match (func_name, args) {
            (placeholders::BYTE_ORDER, [arg]) => {
                let inner = unparser.expr_to_sql(arg)?;
                Ok(Some(PostgresDialect.byte_order(inner)))
            }
            // The sum scaled up, divided by the count with `div` (exact, truncating toward
            // zero as DataFusion's decimal division does), scaled back: no rounding anywhere.
            (
                placeholders::DECIMAL_AVG,
                [
                    arg,
                    Expr::Literal(ScalarValue::UInt8(Some(p)), _),
                    Expr::Literal(ScalarValue::Int8(Some(s)), _),
                ],
            ) => {
                let arg = unparser.expr_to_sql(arg)?;
                let sql = format!(
                    "CAST(div(sum({arg}) * 1e{s}, count({arg})) * 1e-{s} AS NUMERIC({p}, {s}))"
                );
                let parsed = datafusion::sql::sqlparser::parser::Parser::new(
                    &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
                )
                .try_with_sql(&sql)
                .and_then(|mut p| p.parse_expr())
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
                Ok(Some(parsed))
            }
            // DataFusion's `date_part` is an integer; PostgreSQL's `EXTRACT` a numeric.
            ("date_part", [Expr::Literal(part, _), arg]) => {
                let Some(field) = part.try_as_str().flatten().and_then(extract_field) else {
                    return Ok(None);
                };
                Ok(Some(ast::Expr::Cast {
                    kind: ast::CastKind::Cast,
                    expr: Box::new(ast::Expr::Extract {
                        field,
                        syntax: ast::ExtractSyntax::From,
                        expr: Box::new(unparser.expr_to_sql(arg)?),
                    }),
                    data_type: ast::DataType::Integer(None),
                    array: false,
                    format: None,
                }))
            }
            _ => PostgreSqlDialect {}.scalar_function_to_sql_overrides(unparser, func_name, args),
        }
    }
}

/// `date_part` fields PostgreSQL's `EXTRACT` gives as the same integers.
fn extract_field(part: &str) -> Option<ast::DateTimeField> {
    use ast::DateTimeField as F;
    Some(match part.to_ascii_lowercase().as_str() {
        "year" => F::Year,
        "quarter" => F::Quarter,
        "month" => F::Month,
        "week" => F::Week(None),
        "day" => F::Day,
        "doy" => F::Doy,
        "dow" => F::Dow,
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
        ("octet_length", args::text),
        ("ascii", args::text),
        ("concat", args::text_or_exact),
        ("btrim", args::text_one_arg),
        ("ltrim", args::text_one_arg),
        ("rtrim", args::text_one_arg),
        ("trim", args::text_one_arg),
        ("replace", args::text),
        ("reverse", args::text),
        ("starts_with", args::text),
        ("strpos", args::text),
        ("md5", args::text),
        ("date_part", args::date_part),
        ("date_trunc", args::date_trunc),
    ],
    aggregate_functions: &[
        ("count", args::any_but_opaque),
        ("avg", args::avg),
        ("sum", args::sum),
        ("min", args::min_max),
        ("max", args::min_max),
        ("bool_and", args::any_but_opaque),
        ("bool_or", args::any_but_opaque),
    ],
    window_functions: &[
        "row_number",
        "rank",
        "dense_rank",
        "percent_rank",
        "cume_dist",
        "ntile",
        "lag",
        "lead",
    ],
    join_types: JOIN_TYPES,
    operator,
    cast,
    literal,
    like,
};

fn operator(op: Operator, l: &DataType, r: &DataType) -> bool {
    use Operator as O;
    let exact = is_exact_number(l) && is_exact_number(r);
    let float = |t: &DataType| t.is_floating() || is_exact_number(t);
    match op {
        O::Plus | O::Minus | O::Multiply => exact || (float(l) && float(r)),
        // Integer division truncates in both; decimal and float division differ (scale,
        // rounding, a zero divisor), and so does `%` on decimals.
        O::Divide | O::Modulo => l.is_integer() && r.is_integer(),
        O::StringConcat => is_text(l) && is_text(r),
        op => compares_or_combines(op),
    }
}

fn cast(from: &DataType, to: &DataType) -> bool {
    use DataType as D;
    match (from, to) {
        _ if from == to => true,
        (f, t) if f.is_integer() && t.is_integer() => true,
        (f, D::Decimal128(p, s)) if f.is_integer() => {
            // Enough integer digits for the widest value of the type.
            let digits = match f {
                D::Int8 | D::UInt8 => 3,
                D::Int16 | D::UInt16 => 5,
                D::Int32 | D::UInt32 => 10,
                _ => 20,
            };
            i16::from(*p) - i16::from(*s) >= digits
        }
        // Never to a smaller scale, which would round differently; a value too wide for
        // the new precision is an error in both.
        (D::Decimal128(_, s1), D::Decimal128(_, s2)) => s2 >= s1,
        (f, D::Float64) if f.is_integer() || f.is_floating() => true,
        (D::Decimal128(..), D::Float64) => true,
        (f, t) if is_text(t) && (f.is_integer() || is_text(f)) => true,
        (D::Date32, D::Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, None)) => true,
        _ => false,
    }
}

fn literal(v: &ScalarValue) -> bool {
    use ScalarValue as S;
    match v {
        S::Null
        | S::Boolean(_)
        | S::Int8(_)
        | S::Int16(_)
        | S::Int32(_)
        | S::Int64(_)
        | S::UInt8(_)
        | S::UInt16(_)
        | S::UInt32(_)
        | S::Decimal128(..)
        | S::Utf8(_)
        | S::LargeUtf8(_)
        | S::Utf8View(_)
        | S::Date32(_)
        | S::TimestampSecond(..)
        | S::TimestampMillisecond(..)
        | S::TimestampMicrosecond(..) => true,
        S::UInt64(v) => v.is_none_or(|v| i64::try_from(v).is_ok()),
        S::Float64(f) => f.is_none_or(f64::is_finite),
        S::Float32(f) => f.is_none_or(f32::is_finite),
        // PostgreSQL keeps microseconds: a finer literal would be rounded.
        S::TimestampNanosecond(n, _) => n.is_none_or(|n| n % 1000 == 0),
        _ => false,
    }
}

/// PostgreSQL's default `LIKE` escape is the backslash, as is DataFusion's. DataFusion
/// refuses any other escape character, so such a `LIKE` stays local (and is refused there).
fn like(_pattern: &Expr, escape: Option<char>) -> bool {
    escape.is_none_or(|c| c == '\\')
}

/// Argument checks for the capability table.
mod args {
    use super::{is_exact_number, is_text};
    use crate::federation::dialect::args::all;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::Expr;

    type R = Result<(), String>;

    pub use crate::federation::dialect::args::{
        any as any_but_opaque, comparable, exact_numbers, text, text_then_positive_literals,
    };

    pub fn text_one_arg(a: &[Expr], t: &[DataType]) -> R {
        if a.len() != 1 {
            return Err("trimming other characters than spaces".to_owned());
        }
        text(a, t)
    }

    pub fn text_or_exact(_: &[Expr], t: &[DataType]) -> R {
        all(t, |t| is_text(t) || t.is_integer(), "text or integer")
    }

    pub fn sum(_: &[Expr], t: &[DataType]) -> R {
        all(t, |t| is_exact_number(t) || t.is_floating(), "a number")
    }

    /// Integers and floats average to a float (PostgreSQL's exact numeric, rounded once);
    /// decimals are written exactly as DataFusion computes them (see `DECIMAL_AVG`).
    pub fn avg(_: &[Expr], t: &[DataType]) -> R {
        all(
            t,
            |t| t.is_integer() || t.is_floating() || matches!(t, DataType::Decimal128(..)),
            "a number",
        )
    }

    pub fn min_max(_: &[Expr], t: &[DataType]) -> R {
        all(
            t,
            |t| {
                is_exact_number(t)
                    || is_text(t)
                    || matches!(
                        t,
                        DataType::Boolean
                            | DataType::Date32
                            | DataType::Time64(_)
                            | DataType::Timestamp(..)
                    )
            },
            "not a float",
        )
    }

    fn utc_or_none(t: &DataType) -> bool {
        match t {
            DataType::Date32 => true,
            DataType::Timestamp(_, tz) => tz
                .as_deref()
                .is_none_or(|z| matches!(z, "UTC" | "+00:00" | "Z")),
            _ => false,
        }
    }

    pub fn date_part(a: &[Expr], t: &[DataType]) -> R {
        let field = match a.first() {
            Some(Expr::Literal(v, _)) => v.try_as_str().flatten().map(str::to_owned),
            _ => None,
        };
        match field {
            Some(f) if super::extract_field(&f).is_some() => {}
            _ => return Err("a date part other than year to minute".to_owned()),
        }
        match t.get(1) {
            Some(t) if utc_or_none(t) => Ok(()),
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
                "year" | "quarter" | "month" | "week" | "day" | "hour" | "minute" | "second"
            )
        }) {
            return Err("a truncation unit other than year to second".to_owned());
        }
        // On a date, PostgreSQL's `date_trunc` answers a zoned timestamp.
        match t.get(1) {
            Some(t @ DataType::Timestamp(..)) if utc_or_none(t) => Ok(()),
            _ => Err("date_trunc of a date or zoned value".to_owned()),
        }
    }
}
