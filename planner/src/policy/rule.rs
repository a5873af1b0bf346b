//! The two rules: [`ApplyPolicies`] (analyzer) puts each guarded table's policy under a fence
//! where the table is read; [`LeakproofThroughFence`] (optimizer) moves the caller's
//! predicates that cannot fail or leak below the fence, so they still prune files and reach
//! the source.

use std::sync::Arc;

use datafusion::arrow::compute::can_cast_types;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DataFusionError, Result as DfResult};
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, ExprSchemable, Filter, LogicalPlan, Operator, Projection, TableScan,
    TableScanBuilder, cast, lit,
};
use datafusion::optimizer::analyzer::AnalyzerRule;
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::fence::PolicyFence;
use super::{PolicySet, TablePolicy};
use crate::federation::capability::is_comparison;

/// A policy that cannot apply to a table it matches (an unknown column, a filter that is not
/// boolean, a mask whose type cannot become the column's): the deployment's fault, never
/// shown to the caller, and the query is refused (fail closed).
#[derive(Debug, thiserror::Error)]
#[error("policy {policy} cannot guard {table}: {reason}")]
pub struct PolicyError {
    /// The policy.
    pub policy: String,
    /// The table it matched.
    pub table: String,
    /// What is wrong.
    pub reason: String,
}

/// Puts every matching policy's row filter and masks, under a [`PolicyFence`], where each
/// guarded table is read (subqueries and CTEs included). Runs first among the analyzer rules,
/// so type coercion sees the policy's expressions too.
#[derive(Debug)]
pub struct ApplyPolicies {
    set: Arc<PolicySet>,
    /// The session the policies' expressions are read in (its functions), without this rule.
    state: Box<SessionState>,
}

impl ApplyPolicies {
    /// The rule for `set`, reading expressions with `state`'s functions.
    pub fn new(set: Arc<PolicySet>, state: SessionState) -> Self {
        Self {
            set,
            state: Box::new(state),
        }
    }

    fn expr(
        &self,
        sql: &str,
        schema: &DFSchema,
        policy: &TablePolicy,
        table: &str,
    ) -> DfResult<Expr> {
        self.state
            .create_logical_expr(sql, schema)
            .map_err(|e| fault(policy, table, e.strip_backtrace()))
    }

    /// The fence, masks and filter over `scan`.
    fn guard(
        &self,
        scan: TableScan,
        table: String,
        policies: &[&TablePolicy],
    ) -> DfResult<LogicalPlan> {
        // What the plan above expects; the policy reads the whole row under it.
        let wanted = Arc::clone(&scan.projected_schema);
        let base = if scan.projection.is_some() || !scan.filters.is_empty() || scan.fetch.is_some()
        {
            TableScanBuilder::new(scan.table_name, scan.source).build()?
        } else {
            scan
        };
        let schema = Arc::clone(&base.projected_schema);
        let mut plan = LogicalPlan::TableScan(base);
        let mut filters = Vec::new();
        for p in policies {
            if let Some(sql) = &p.row_filter {
                let e = self.expr(sql, &schema, p, &table)?;
                match e.get_type(&schema) {
                    Ok(DataType::Boolean) => filters.push(e),
                    Ok(other) => {
                        return Err(fault(
                            p,
                            &table,
                            format!("its row filter is {other}, not boolean"),
                        ));
                    }
                    Err(e) => return Err(fault(p, &table, e.strip_backtrace())),
                }
            }
        }
        if let Some(predicate) = conjunction(filters) {
            plan = LogicalPlan::Filter(Filter::try_new(predicate, Arc::new(plan))?);
        }
        let mut masked = Vec::new();
        let mut exprs = Vec::with_capacity(wanted.fields().len());
        for (qualifier, field) in wanted.iter() {
            let column = Expr::Column(Column::from((qualifier, field)));
            // The first policy (by name) that masks the column decides.
            // A mask names its column as the table spells it, or in another case (Snowflake's
            // upper-case names); a table without the column is not masked by it.
            let mask = policies.iter().find_map(|p| {
                p.masks
                    .get(field.name())
                    .or_else(|| {
                        p.masks
                            .iter()
                            .find(|(c, _)| c.eq_ignore_ascii_case(field.name()))
                            .map(|(_, m)| m)
                    })
                    .map(|sql| (p, sql))
            });
            let Some((p, sql)) = mask else {
                exprs.push(column);
                continue;
            };
            let e = self.expr(sql, &schema, p, &table)?;
            let e = as_type(e, &schema, field.data_type()).map_err(|reason| {
                fault(p, &table, format!("its mask of {}: {reason}", field.name()))
            })?;
            masked.push(field.name().clone());
            exprs.push(e.alias_qualified(qualifier.cloned(), field.name()));
        }
        let input = LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(plan))?);
        Ok(PolicyFence {
            input,
            table,
            policies: policies.iter().map(|p| p.name.clone()).collect(),
            masked,
        }
        .into_plan())
    }
}

fn fault(policy: &TablePolicy, table: &str, reason: String) -> DataFusionError {
    DataFusionError::External(Box::new(PolicyError {
        policy: policy.name.clone(),
        table: table.to_owned(),
        reason,
    }))
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

/// A mask as the column's own type: a digest (`sha256(email)`) of a text column as its hex
/// text, `NULL` and castable types cast.
fn as_type(e: Expr, schema: &DFSchema, target: &DataType) -> Result<Expr, String> {
    let t = e.get_type(schema).map_err(|e| e.strip_backtrace())?;
    if &t == target {
        return Ok(e);
    }
    let e = if is_binary(&t) && is_string(target) {
        datafusion::functions::encoding::expr_fn::encode(e, lit("hex"))
    } else if t == DataType::Null || can_cast_types(&t, target) {
        e
    } else {
        return Err(format!("{t} cannot become the column's {target}"));
    };
    Ok(cast(e, target.clone()))
}

impl AnalyzerRule for ApplyPolicies {
    fn name(&self) -> &str {
        "sluice_apply_policies"
    }

    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> DfResult<LogicalPlan> {
        if self.set.is_empty() {
            return Ok(plan);
        }
        let catalog = &config.catalog.default_catalog;
        let schema = &config.catalog.default_schema;
        plan.transform_down_with_subqueries(|node| {
            if PolicyFence::of(&node).is_some() {
                // Applied already (a plan analyzed twice).
                return Ok(Transformed::new(node, false, TreeNodeRecursion::Jump));
            }
            let LogicalPlan::TableScan(scan) = node else {
                return Ok(Transformed::no(node));
            };
            // Table functions (`generate_series(1, 3)`, named `name()`) and a recursive CTE's
            // work table read no source.
            let table_function = matches!(&scan.table_name,
                datafusion::common::TableReference::Bare { table }
                    if table.strip_suffix("()").is_some_and(|f| self.state.table_functions().contains_key(f)));
            let work_table = datafusion::datasource::source_as_provider(&scan.source)
                .is_ok_and(|p| {
                    let any: &dyn std::any::Any = p.as_ref();
                    any.downcast_ref::<datafusion::datasource::cte_worktable::CteWorkTable>()
                        .is_some()
                });
            if work_table {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            }
            let full = scan.table_name.clone().resolve(catalog, schema);
            let policies = if table_function || full.schema.as_ref() == "information_schema" {
                Vec::new()
            } else {
                self.set.matching(&full.catalog, &full.schema, &full.table)
            };
            if policies.is_empty() {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            }
            let name = format!("{}.{}.{}", full.catalog, full.schema, full.table);
            let guarded = self.guard(scan, name, &policies)?;
            Ok(Transformed::new(guarded, true, TreeNodeRecursion::Jump))
        })
        .map(|t| t.data)
    }
}

/// Moves the conjuncts of a filter standing on a fence that cannot fail or leak
/// ([`leakproof`]) and read no masked column below it: they then prune files and row groups
/// and reach the source's statement. Everything else stays above.
#[derive(Debug, Default)]
pub struct LeakproofThroughFence;

impl OptimizerRule for LeakproofThroughFence {
    fn name(&self) -> &str {
        "sluice_leakproof_through_fence"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        let LogicalPlan::Filter(filter) = plan else {
            return Ok(Transformed::no(plan));
        };
        let Some(fence) = PolicyFence::of(&filter.input) else {
            return Ok(Transformed::no(LogicalPlan::Filter(filter)));
        };
        let schema = Arc::clone(fence.input.schema());
        let passes = |e: &Expr| {
            leakproof(e, &schema)
                && e.column_refs()
                    .iter()
                    .all(|c| !fence.masked.contains(&c.name))
        };
        let (below, above): (Vec<Expr>, Vec<Expr>) =
            split_conjunction_owned(filter.predicate.clone())
                .into_iter()
                .partition(passes);
        if below.is_empty() {
            return Ok(Transformed::no(LogicalPlan::Filter(filter)));
        }
        let mut moved = fence.clone();
        if let Some(p) = conjunction(below) {
            moved.input = LogicalPlan::Filter(Filter::try_new(p, Arc::new(moved.input))?);
        }
        let fenced = moved.into_plan();
        Ok(Transformed::yes(match conjunction(above) {
            Some(p) => LogicalPlan::Filter(Filter::try_new(p, Arc::new(fenced))?),
            None => fenced,
        }))
    }
}

/// Whether a predicate cannot fail, whatever row it meets, and calls nothing of the caller's:
/// comparisons, `IN` lists, `BETWEEN` and null tests of plain columns (or their widening
/// casts) and literals, under `AND`, `OR` and `NOT`. What PostgreSQL would call `LEAKPROOF`.
pub fn leakproof(e: &Expr, schema: &DFSchema) -> bool {
    let operand = |e: &Expr| operand(e, schema);
    match e {
        Expr::Alias(a) => leakproof(&a.expr, schema),
        Expr::Not(x)
        | Expr::IsNull(x)
        | Expr::IsNotNull(x)
        | Expr::IsTrue(x)
        | Expr::IsFalse(x)
        | Expr::IsNotTrue(x)
        | Expr::IsNotFalse(x)
        | Expr::IsUnknown(x)
        | Expr::IsNotUnknown(x) => leakproof(x, schema),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And | Operator::Or => leakproof(left, schema) && leakproof(right, schema),
            op if is_comparison(*op) => operand(left) && operand(right),
            _ => false,
        },
        Expr::InList(InList { expr, list, .. }) => {
            operand(expr) && list.iter().all(|e| matches!(e, Expr::Literal(..)))
        }
        Expr::Between(Between {
            expr, low, high, ..
        }) => operand(expr) && operand(low) && operand(high),
        Expr::Column(_) | Expr::Literal(..) => true,
        _ => false,
    }
}

/// A plain column, a literal, or a column cast to a type that holds every value of its own.
fn operand(e: &Expr, schema: &DFSchema) -> bool {
    match e {
        Expr::Column(_) | Expr::Literal(..) => true,
        Expr::Cast(c) => {
            matches!(*c.expr, Expr::Column(_))
                && c.expr
                    .get_type(schema)
                    .is_ok_and(|from| widening(&from, c.field.data_type()))
        }
        _ => false,
    }
}

/// Casts that cannot fail: integers to wider integers of the same signedness or to `Float64`,
/// `Float32` to `Float64`, and text to text.
fn widening(from: &DataType, to: &DataType) -> bool {
    use DataType as T;
    let rank = |t: &DataType| match t {
        T::Int8 => Some((true, 1)),
        T::Int16 => Some((true, 2)),
        T::Int32 => Some((true, 3)),
        T::Int64 => Some((true, 4)),
        T::UInt8 => Some((false, 1)),
        T::UInt16 => Some((false, 2)),
        T::UInt32 => Some((false, 3)),
        T::UInt64 => Some((false, 4)),
        _ => None,
    };
    match (from, to) {
        _ if from == to => true,
        (a, b) if is_string(a) && is_string(b) => true,
        (T::Float32, T::Float64) => true,
        (a, T::Float64) if rank(a).is_some() => true,
        (a, b) => match (rank(a), rank(b)) {
            (Some((sa, ra)), Some((sb, rb))) => (sa == sb && rb >= ra) || (!sa && sb && rb > ra),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::{col, in_list};

    use super::*;

    #[test]
    fn only_predicates_that_cannot_fail_are_leakproof() {
        let schema = DFSchema::try_from(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ]))
        .unwrap();
        let yes = [
            col("a").eq(lit(5)),
            col("a").gt(lit(1)).and(col("s").is_null()),
            in_list(col("s"), vec![lit("x"), lit("y")], false),
            cast(col("a"), DataType::Int64).lt_eq(lit(7_i64)),
            col("a")
                .between(lit(1), lit(3))
                .or(col("s").not_eq(lit("z"))),
        ];
        for e in yes {
            assert!(leakproof(&e, &schema), "{e}");
        }
        let no = [
            (lit(1) / (col("a") - lit(42))).gt(lit(0)),
            cast(col("s"), DataType::Int32).eq(lit(1)),
            cast(col("a"), DataType::Int8).eq(lit(1_i8)),
            col("s").like(lit("%x")),
            in_list(col("s"), vec![col("s")], false),
        ];
        for e in no {
            assert!(!leakproof(&e, &schema), "{e}");
        }
    }
}
