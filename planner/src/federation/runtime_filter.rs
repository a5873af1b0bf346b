//! Runtime join filters: the dynamic filter a hash join pushes to its probe side (the build
//! side's key bounds and, when small, its keys), added to a remote statement as a `WHERE` over
//! its result when the statement starts.
//!
//! The filter only ever narrows what the source sends: the join still checks every row, so a
//! filter (or a conjunct of one) that cannot be expressed exactly is simply left out. Lists
//! longer than [`MAX_IN_LIST`] go as their bounds only. A partitioned join's filter routes
//! each row to its partition's keys by a hash the source does not have; it goes as the union
//! of every partition's keys, which holds every row the join can keep.

use std::sync::Arc;

use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    self as pe, CaseExpr, DynamicFilterPhysicalExpr, InListExpr, IsNotNullExpr, IsNullExpr, NotExpr,
};
use datafusion::sql::unparser::Unparser;

use super::exec::RemoteStatementSpec;
use super::executor::ColumnClass;
use super::placeholders;

/// Keys sent as a list at most; more go as their bounds only. (PostgreSQL hashes a long `IN`
/// list, so a few thousand keys cost it little; the session lets DataFusion build lists this
/// long, see [`crate::Planner::new`].)
pub const MAX_IN_LIST: usize = 10_000;

/// The statement with the current state of `filters` applied, or as planned when none
/// applies.
pub fn apply(spec: &RemoteStatementSpec, filters: &[Arc<dyn PhysicalExpr>]) -> String {
    let predicates: Vec<String> = filters
        .iter()
        .filter_map(|f| {
            let current = match f.downcast_ref::<DynamicFilterPhysicalExpr>() {
                Some(d) => d.current().ok()?,
                None => Arc::clone(f),
            };
            let expr = to_logical(&current, spec)?;
            // Nothing known yet (a top-k before its first batch) or nothing to narrow.
            if matches!(expr, Expr::Literal(ScalarValue::Boolean(Some(true)), _)) {
                return None;
            }
            let sql = Unparser::new(spec.dialect.unparser())
                .expr_to_sql(&expr)
                .ok()?;
            Some(sql.to_string())
        })
        .collect();
    if predicates.is_empty() {
        return spec.sql.clone();
    }
    let names: Vec<String> = (0..spec.fetched.fields().len()).map(column_name).collect();
    spec.dialect
        .filtered(&spec.sql, &names, &predicates.join(" AND "))
}

fn column_name(i: usize) -> String {
    format!("c{i}")
}

/// The part of `e` that the source evaluates exactly as DataFusion, as a logical expression
/// over the statement's columns renamed `c0`, `c1`, …; `None` when nothing is.
fn to_logical(e: &Arc<dyn PhysicalExpr>, spec: &RemoteStatementSpec) -> Option<Expr> {
    if let Some(b) = e.downcast_ref::<pe::BinaryExpr>() {
        let op = *b.op();
        return match op {
            // A conjunct that cannot go is left out: the rest still narrows.
            Operator::And => match (to_logical(b.left(), spec), to_logical(b.right(), spec)) {
                (Some(l), Some(r)) => Some(l.and(r)),
                (Some(x), None) | (None, Some(x)) => Some(x),
                (None, None) => None,
            },
            Operator::Or => Some(to_logical(b.left(), spec)?.or(to_logical(b.right(), spec)?)),
            Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                let (l, lc) = operand(b.left(), spec)?;
                let (r, rc) = operand(b.right(), spec)?;
                let class = lc.or(rc)?;
                let (l, r) = match class {
                    ColumnClass::Exact => (l, r),
                    ColumnClass::Text if op != Operator::Eq => (placeholders::byte_order(l), r),
                    ColumnClass::Text => (l, r),
                    _ => return None,
                };
                Some(Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(l),
                    op,
                    Box::new(r),
                )))
            }
            _ => None,
        };
    }
    if let Some(list) = e.downcast_ref::<InListExpr>() {
        if list.negated() || list.list().len() > MAX_IN_LIST {
            return None;
        }
        let (expr, class) = operand(list.expr(), spec)?;
        if !matches!(class?, ColumnClass::Exact | ColumnClass::Text) {
            return None;
        }
        let items = list
            .list()
            .iter()
            .map(|i| literal(i, spec))
            .collect::<Option<Vec<_>>>()?;
        if items.is_empty() {
            return None;
        }
        return Some(Expr::InList(InList::new(Box::new(expr), items, false)));
    }
    if let Some(case) = e.downcast_ref::<CaseExpr>() {
        // Each branch is one partition's keys: any row the join keeps passes one of them.
        let branches = case
            .when_then_expr()
            .iter()
            .map(|(_, then)| then)
            .chain(case.else_expr());
        let mut any: Option<Expr> = None;
        for b in branches {
            if let Some(l) = b.downcast_ref::<pe::Literal>()
                && l.value() == &ScalarValue::Boolean(Some(false))
            {
                continue;
            }
            let x = to_logical(b, spec)?;
            any = Some(match any {
                Some(a) => a.or(x),
                None => x,
            });
        }
        return any;
    }
    if let Some(n) = e.downcast_ref::<IsNullExpr>() {
        return Some(operand(n.arg(), spec)?.0.is_null());
    }
    if let Some(n) = e.downcast_ref::<IsNotNullExpr>() {
        return Some(operand(n.arg(), spec)?.0.is_not_null());
    }
    if let Some(n) = e.downcast_ref::<NotExpr>() {
        // Only the negation of an exact whole: a dropped conjunct inside would widen it.
        let inner = to_logical(n.arg(), spec)?;
        return exact_whole(n.arg()).then(|| Expr::Not(Box::new(inner)));
    }
    if let Some(l) = e.downcast_ref::<pe::Literal>() {
        return matches!(l.value(), ScalarValue::Boolean(Some(_)))
            .then(|| Expr::Literal(l.value().clone(), None));
    }
    None
}

/// True when [`to_logical`] keeps every part of `e`.
fn exact_whole(e: &Arc<dyn PhysicalExpr>) -> bool {
    if let Some(b) = e.downcast_ref::<pe::BinaryExpr>()
        && *b.op() == Operator::And
    {
        return exact_whole(b.left()) && exact_whole(b.right());
    }
    true
}

/// A column (possibly cast) or a literal, with the column's class.
fn operand(
    e: &Arc<dyn PhysicalExpr>,
    spec: &RemoteStatementSpec,
) -> Option<(Expr, Option<ColumnClass>)> {
    if let Some(c) = e.downcast_ref::<pe::Column>() {
        let fetched = spec.fetched_index(c.index())?;
        let class = *spec.classes.get(fetched)?;
        return Some((
            Expr::Column(Column::new_unqualified(column_name(fetched))),
            Some(class),
        ));
    }
    if let Some(c) = e.downcast_ref::<pe::CastExpr>() {
        let inner = c.expr().downcast_ref::<pe::Column>()?;
        let from = spec.fetched_type(inner.index())?;
        if !(spec.dialect.capabilities().cast)(&from, c.cast_type()) {
            return None;
        }
        let (expr, class) = operand(c.expr(), spec)?;
        return Some((
            Expr::Cast(Cast::new(Box::new(expr), c.cast_type().clone())),
            class,
        ));
    }
    literal(e, spec).map(|l| (l, None))
}

fn literal(e: &Arc<dyn PhysicalExpr>, spec: &RemoteStatementSpec) -> Option<Expr> {
    let l = e.downcast_ref::<pe::Literal>()?;
    let v = l.value();
    (!v.is_null() && (spec.dialect.capabilities().literal)(v))
        .then(|| Expr::Literal(v.clone(), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::dialect::postgres::PostgresDialect;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::expressions::{BinaryExpr, Column as PCol, lit};

    fn spec(classes: Vec<ColumnClass>) -> RemoteStatementSpec {
        let fetched = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
        ]));
        RemoteStatementSpec {
            source: "pg".into(),
            dialect: PostgresDialect::shared(),
            sql: "SELECT \"k\", \"f\" FROM \"s\".\"t\"".into(),
            fetched,
            projection: None,
            classes,
            rows_estimate: None,
            kept_local: None,
            estimate: None,
            weighed: None,
            ordering: vec![],
            narrowable: true,
            guarded: false,
        }
    }

    fn key() -> Arc<dyn PhysicalExpr> {
        Arc::new(PCol::new("k", 0))
    }

    fn range(lo: i64, hi: i64) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(
            Arc::new(BinaryExpr::new(key(), Operator::GtEq, lit(lo))),
            Operator::And,
            Arc::new(BinaryExpr::new(key(), Operator::LtEq, lit(hi))),
        ))
    }

    fn in_list(n: i64) -> Arc<dyn PhysicalExpr> {
        let schema = spec(vec![]).fetched;
        Arc::new(
            InListExpr::try_new_from_array(
                key(),
                Arc::new(Int64Array::from_iter_values(0..n)),
                false,
                &schema,
            )
            .unwrap(),
        )
    }

    fn both(n: i64) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(range(0, n - 1), Operator::And, in_list(n)))
    }

    #[test]
    fn keys_go_as_a_list_when_few_and_as_bounds_always() {
        let s = spec(vec![ColumnClass::Exact, ColumnClass::Float]);
        let sql = apply(&s, &[both(3)]);
        assert_eq!(
            sql,
            "SELECT * FROM (SELECT \"k\", \"f\" FROM \"s\".\"t\") AS \"sluice_rf\"(\"c0\", \"c1\") \
             WHERE (((\"c0\" >= 0) AND (\"c0\" <= 2)) AND \"c0\" IN (0, 1, 2))"
        );
        let many = apply(&s, &[both(MAX_IN_LIST as i64 + 1)]);
        assert!(
            many.ends_with(&format!(
                "WHERE ((\"c0\" >= 0) AND (\"c0\" <= {MAX_IN_LIST}))"
            )),
            "{many}"
        );
    }

    #[test]
    fn a_partitioned_join_sends_the_union_of_its_partitions_keys() {
        use datafusion::physical_expr::expressions::CaseExpr;
        let routing: Arc<dyn PhysicalExpr> =
            Arc::new(BinaryExpr::new(key(), Operator::Modulo, lit(2i64)));
        let case: Arc<dyn PhysicalExpr> = Arc::new(
            CaseExpr::try_new(
                Some(routing),
                vec![(lit(0i64), range(1, 3)), (lit(1i64), lit(false))],
                Some(range(7, 9)),
            )
            .unwrap(),
        );
        let s = spec(vec![ColumnClass::Exact, ColumnClass::Float]);
        let sql = apply(&s, &[case]);
        assert!(
            sql.ends_with(
                "WHERE (((\"c0\" >= 1) AND (\"c0\" <= 3)) OR ((\"c0\" >= 7) AND (\"c0\" <= 9)))"
            ),
            "{sql}"
        );
    }

    #[test]
    fn what_cannot_be_exact_is_left_out() {
        // Floats order NaN and -0 differently: no bounds on them; an OR with such a side
        // cannot go either.
        let f: Arc<dyn PhysicalExpr> = Arc::new(PCol::new("f", 1));
        let on_float: Arc<dyn PhysicalExpr> =
            Arc::new(BinaryExpr::new(Arc::clone(&f), Operator::GtEq, lit(1.5)));
        let s = spec(vec![ColumnClass::Exact, ColumnClass::Float]);
        assert_eq!(apply(&s, &[Arc::clone(&on_float)]), s.sql);
        let either: Arc<dyn PhysicalExpr> =
            Arc::new(BinaryExpr::new(range(1, 2), Operator::Or, on_float));
        assert_eq!(apply(&s, &[either]), s.sql);
        // Nothing known yet.
        assert_eq!(apply(&s, &[lit(true)]), s.sql);
    }
}
