//! Source dialects: how a source spells SQL, and its capability table — what it computes
//! exactly as DataFusion does. Anything not known to be exact stays local.
//!
//! - [`postgres`][]: PostgreSQL.
//! - [`snowflake`][]: Snowflake.

pub mod postgres;
pub mod snowflake;

use std::fmt::Debug;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, JoinType, Operator};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::unparser::dialect::Dialect as UnparserDialect;

use super::executor::RemoteColumn;

/// Checks the arguments of a function the source has: `Err` says why this call stays local.
pub type ArgCheck = fn(args: &[Expr], types: &[DataType]) -> Result<(), String>;

/// What a source computes exactly as DataFusion does. Each entry is a promise tested by the
/// differential suite (pushdown on against pushdown off); anything absent stays local.
#[derive(Debug)]
pub struct Capabilities {
    /// Scalar functions by DataFusion name, each with a check of its arguments.
    pub scalar_functions: &'static [(&'static str, ArgCheck)],
    /// Aggregate functions by DataFusion name, each with a check of its arguments.
    pub aggregate_functions: &'static [(&'static str, ArgCheck)],
    /// Window functions (ranking and offset functions) by DataFusion name; aggregate
    /// functions over windows follow [`Self::aggregate_functions`].
    pub window_functions: &'static [&'static str],
    /// Join types the source runs (null-aware anti joins and null-equal keys never).
    pub join_types: &'static [JoinType],
    /// Binary operators on these operand types that give DataFusion's result.
    pub operator: fn(Operator, &DataType, &DataType) -> bool,
    /// Casts the source performs exactly as DataFusion does.
    pub cast: fn(&DataType, &DataType) -> bool,
    /// Literals the source reads as the same value and type.
    pub literal: fn(&ScalarValue) -> bool,
    /// `LIKE` patterns the source matches as DataFusion does, given the escape character.
    pub like: fn(pattern: &Expr, escape: Option<char>) -> bool,
}

impl Capabilities {
    /// The check for scalar function `name`, if the source has it.
    pub fn scalar(&self, name: &str) -> Option<ArgCheck> {
        self.scalar_functions
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
    }

    /// The check for aggregate function `name`, if the source has it.
    pub fn aggregate(&self, name: &str) -> Option<ArgCheck> {
        self.aggregate_functions
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
    }
}

/// A source's SQL dialect and capability table.
pub trait SourceDialect: Send + Sync + Debug {
    /// Short name, for messages (`postgres`).
    fn name(&self) -> &'static str;

    /// DataFusion's unparser dialect, with Sluice's overrides (byte-order text, zoned
    /// timestamps, exact extractions).
    fn unparser(&self) -> &dyn UnparserDialect;

    /// What the source computes exactly as DataFusion does.
    fn capabilities(&self) -> &Capabilities;

    /// `name` as a quoted identifier.
    fn quote(&self, name: &str) -> String;

    /// The name Sluice shows for an object the source names `remote` (schemas, tables,
    /// columns). Statements always use the source's own spelling, quoted.
    fn local_name(&self, remote: &str) -> String {
        remote.to_owned()
    }

    /// How `column` is selected so that it arrives as its Arrow type.
    fn select_column(&self, column: &RemoteColumn) -> String;

    /// Whether `sum`s are sent cast to the type DataFusion gives them, so that the result's
    /// type does not rest on the engine's own inference (Snowflake's `SUM` of a
    /// `NUMBER(p, s)` is a `NUMBER(38, s)`, and emulators differ).
    fn pins_sum_types(&self) -> bool {
        false
    }

    /// `expr` compared and ordered byte for byte, as DataFusion orders UTF-8 text.
    fn byte_order(&self, expr: ast::Expr) -> ast::Expr;

    /// `sql` with its rows filtered by `predicate` over its columns, renamed `names` in
    /// order (runtime join filters).
    fn filtered(&self, sql: &str, names: &[String], predicate: &str) -> String {
        let names: Vec<String> = names.iter().map(|n| self.quote(n)).collect();
        format!(
            "SELECT * FROM ({sql}) AS {}({}) WHERE {predicate}",
            self.quote("sluice_rf"),
            names.join(", ")
        )
    }
}

/// The join types both dialects run (null-aware anti joins never: see [`Capabilities`]).
pub(crate) const JOIN_TYPES: &[JoinType] = &[
    JoinType::Inner,
    JoinType::Left,
    JoinType::Right,
    JoinType::Full,
    JoinType::LeftSemi,
    JoinType::LeftAnti,
    JoinType::RightSemi,
    JoinType::RightAnti,
];

/// Comparisons, `IS [NOT] DISTINCT FROM`, `AND` and `OR`: the same in every dialect (which
/// operands may be compared is the column classes' business).
pub(crate) fn compares_or_combines(op: Operator) -> bool {
    use Operator as O;
    matches!(
        op,
        O::Eq
            | O::NotEq
            | O::Lt
            | O::LtEq
            | O::Gt
            | O::GtEq
            | O::IsDistinctFrom
            | O::IsNotDistinctFrom
            | O::And
            | O::Or
    )
}

/// An integer or an exact decimal.
pub(crate) fn is_exact_number(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Decimal128(..))
}

/// UTF-8 text, in any of Arrow's layouts.
pub(crate) fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Argument checks shared by the dialects' capability tables.
pub(crate) mod args {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::Expr;

    use super::is_text;

    type R = Result<(), String>;

    /// Every type in `types` passes `ok`; else the first that does not, with `what` was
    /// expected.
    pub fn all(types: &[DataType], ok: impl Fn(&DataType) -> bool, what: &str) -> R {
        match types.iter().find(|t| !ok(t)) {
            None => Ok(()),
            Some(t) => Err(format!("an argument of type {t} ({what} expected)")),
        }
    }

    pub fn any(_: &[Expr], _: &[DataType]) -> R {
        Ok(())
    }

    pub fn exact_numbers(_: &[Expr], t: &[DataType]) -> R {
        all(
            t,
            |t| t.is_integer() || matches!(t, DataType::Decimal128(..)),
            "integer or decimal",
        )
    }

    pub fn comparable(_: &[Expr], t: &[DataType]) -> R {
        all(
            t,
            |t| !t.is_floating() && !matches!(t, DataType::Binary | DataType::List(_)),
            "not a float",
        )
    }

    pub fn text(_: &[Expr], t: &[DataType]) -> R {
        all(t, |t| is_text(t) || t.is_integer(), "text")
    }

    /// `substr(text, start[, count])` with literal start and count ≥ 1.
    pub fn text_then_positive_literals(a: &[Expr], t: &[DataType]) -> R {
        let Some(first) = t.first() else {
            return Err("no arguments".to_owned());
        };
        if !is_text(first) {
            return Err(format!("a first argument of type {first}"));
        }
        for e in a.iter().skip(1) {
            let ok = match e {
                Expr::Literal(v, _) => v
                    .clone()
                    .cast_to(&DataType::Int64)
                    .ok()
                    .and_then(|v| match v {
                        ScalarValue::Int64(Some(n)) => Some(n),
                        _ => None,
                    })
                    .is_some_and(|n| n >= 1),
                _ => false,
            };
            if !ok {
                return Err("a position that is not a positive literal".to_owned());
            }
        }
        Ok(())
    }
}
