//! [`AwaitJoinFilters`]: a remote statement on the probe side of a hash join waits for the
//! join's build side before it is sent, so the join's keys narrow what the source sends.
//!
//! DataFusion hands the join's dynamic filter to the probe side's scan, but operators in
//! between (a round-robin repartition) may start pulling that scan at once. A remote
//! statement cannot be narrowed once sent, so its node waits for the filter to be complete:
//! only filters made by hash joins (never a top-k's, which needs this statement's rows to
//! complete), matched by the expression id DataFusion keeps across remapped copies.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::HashJoinExec;

use super::exec::RemoteScanExec;

/// Marks the join filters remote scans must wait for.
#[derive(Debug, Default)]
pub struct AwaitJoinFilters;

impl PhysicalOptimizerRule for AwaitJoinFilters {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut joins = HashSet::new();
        plan.apply(|p| {
            let any: &dyn std::any::Any = p.as_ref();
            if any.is::<HashJoinExec>() {
                joins.extend(
                    p.dynamic_expressions_produced()
                        .iter()
                        .filter_map(|f| f.expression_id()),
                );
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if joins.is_empty() {
            return Ok(plan);
        }
        plan.transform_up(|p| {
            let any: &dyn std::any::Any = p.as_ref();
            Ok(match any.downcast_ref::<RemoteScanExec>() {
                Some(scan) => match scan.awaiting(&joins) {
                    Some(new) => Transformed::yes(Arc::new(new) as Arc<dyn ExecutionPlan>),
                    None => Transformed::no(p),
                },
                None => Transformed::no(p),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "sluice_await_join_filters"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
