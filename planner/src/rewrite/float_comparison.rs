//! [`FloatComparisonRule`]: a float compared with a decimal literal compares as floats.
//!
//! Sluice reads `1.5` as an exact decimal (as PostgreSQL, Trino and DuckDB do). DataFusion's
//! type coercion then turns `float_col > 1.5` into `CAST(float_col AS DECIMAL(30, 15)) > 1.5`,
//! which fails on the first NaN or infinite value ("Cast error: Overflowing on NaN"), rounds the
//! column to 15 decimal places, and cannot be pushed to a source. PostgreSQL and DuckDB compare
//! a float with a numeric literal as floats; this rule does the same, after type coercion: the
//! cast of the float side is dropped and the literal becomes the nearest `f64`. Comparisons
//! (`=`, `<>`, `<`, `<=`, `>`, `>=`), `BETWEEN` and `IN` lists are rewritten; anything else is
//! left as it is.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    Between, BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, Operator,
};
use datafusion::optimizer::AnalyzerRule;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct FloatComparisonRule;

impl AnalyzerRule for FloatComparisonRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            // Expressions read the node's inputs (a leaf's own schema).
            let inputs = plan.inputs();
            let schema = if inputs.is_empty() {
                plan.schema().as_ref().clone()
            } else {
                merge_schema(&inputs)
            };
            // A rewritten expression keeps the name it had: a projection's schema, a GROUP BY
            // that refers to it by position and the optimizer's invariants depend on it.
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|e| {
                let name = names.save(&e);
                let t = e.transform_up(|e| rewrite(e, &|x: &Expr| x.get_type(&schema).ok()))?;
                Ok(if t.transformed {
                    t.update_data(|e| name.restore(e))
                } else {
                    t
                })
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "sluice_float_comparison"
    }
}

fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
    )
}

/// The float expression under a cast to decimal, widened to `f64` when it is an `f32`.
fn float_under_decimal_cast(e: &Expr, type_of: &dyn Fn(&Expr) -> Option<DataType>) -> Option<Expr> {
    let Expr::Cast(Cast { expr, field }) = e else {
        return None;
    };
    if !matches!(
        field.data_type(),
        DataType::Decimal128(..) | DataType::Decimal256(..)
    ) {
        return None;
    }
    match type_of(expr)? {
        DataType::Float64 => Some(expr.as_ref().clone()),
        DataType::Float32 | DataType::Float16 => Some(datafusion::logical_expr::cast(
            expr.as_ref().clone(),
            DataType::Float64,
        )),
        _ => None,
    }
}

/// A decimal constant (maybe under casts to other decimal types) as the nearest `f64`.
fn decimal_as_f64(e: &Expr) -> Option<Expr> {
    match e {
        Expr::Literal(
            v @ (ScalarValue::Decimal128(Some(_), ..) | ScalarValue::Decimal256(Some(_), ..)),
            _,
        ) => {
            // Through the text: parsing rounds correctly, as PostgreSQL's numeric-to-float does.
            let f: f64 = v.to_string().parse().ok()?;
            Some(Expr::Literal(ScalarValue::Float64(Some(f)), None))
        }
        Expr::Cast(Cast { expr, field })
            if matches!(
                field.data_type(),
                DataType::Decimal128(..) | DataType::Decimal256(..)
            ) =>
        {
            decimal_as_f64(expr)
        }
        _ => None,
    }
}

fn rewrite(e: Expr, type_of: &dyn Fn(&Expr) -> Option<DataType>) -> Result<Transformed<Expr>> {
    let out = match &e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_comparison(*op) => {
            match (
                float_under_decimal_cast(left, type_of),
                decimal_as_f64(right),
                decimal_as_f64(left),
                float_under_decimal_cast(right, type_of),
            ) {
                (Some(l), Some(r), _, _) | (_, _, Some(l), Some(r)) => Some(Expr::BinaryExpr(
                    BinaryExpr::new(Box::new(l), *op, Box::new(r)),
                )),
                _ => None,
            }
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => match (
            float_under_decimal_cast(expr, type_of),
            decimal_as_f64(low),
            decimal_as_f64(high),
        ) {
            (Some(x), Some(l), Some(h)) => Some(Expr::Between(Between::new(
                Box::new(x),
                *negated,
                Box::new(l),
                Box::new(h),
            ))),
            _ => None,
        },
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => float_under_decimal_cast(expr, type_of).and_then(|x| {
            let items = list
                .iter()
                .map(decimal_as_f64)
                .collect::<Option<Vec<_>>>()?;
            Some(Expr::InList(InList::new(Box::new(x), items, *negated)))
        }),
        _ => None,
    };
    Ok(match out {
        Some(e) => Transformed::yes(e),
        None => Transformed::no(e),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Float64Array, RecordBatch};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    #[tokio::test]
    async fn floats_compare_with_decimal_literals_as_floats() {
        let mut config = SessionConfig::new();
        config.options_mut().sql_parser.parse_float_as_decimal = true;
        let ctx = SessionContext::new_with_config(config);
        ctx.add_analyzer_rule(Arc::new(FloatComparisonRule));
        let schema = Arc::new(Schema::new(vec![Field::new("f", DataType::Float64, true)]));
        let values = Float64Array::from(vec![
            Some(f64::NAN),
            Some(1.5),
            Some(0.1),
            None,
            Some(f64::INFINITY),
        ]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap();
        ctx.register_batch("t", batch).unwrap();
        for (sql, n) in [
            // Without the rule each of these fails on NaN: the float is cast to a decimal.
            ("SELECT count(*) FROM t WHERE f > 1.0", 3),
            ("SELECT count(*) FROM t WHERE 0.1 = f", 1),
            ("SELECT count(*) FROM t WHERE f BETWEEN 0.05 AND 2.0", 2),
            ("SELECT count(*) FROM t WHERE f IN (0.1, 1.5)", 2),
            ("SELECT count(*) FROM t WHERE CAST(f AS REAL) < 1.0", 1),
        ] {
            let df = ctx.sql(sql).await.unwrap();
            let plan = df
                .clone()
                .into_optimized_plan()
                .unwrap()
                .display_indent()
                .to_string();
            assert!(!plan.contains("Decimal"), "{sql}: {plan}");
            let batches = df.collect().await.unwrap();
            let got = batches[0]
                .column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .unwrap()
                .value(0);
            assert_eq!(got, n, "{sql}");
        }
    }
}
