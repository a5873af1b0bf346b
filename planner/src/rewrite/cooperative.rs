//! [`YieldAfterMultipliers`]: every operator that can multiply rows yields between batches.
//!
//! DataFusion's leaves already spend tokio's cooperative budget. But a join on a
//! low-cardinality key makes millions of batches out of one input batch, and the operator
//! above it (a sort, a limit, an aggregate) consumes them all in one poll. That poll never
//! returns, so neither the query's timeout, nor `DELETE`, nor a client leaving can stop it,
//! and the worker thread is lost to every other query. `CooperativeExec` on the output of
//! joins and `unnest` spends the budget per batch and yields when it runs out.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};
use datafusion::physical_plan::unnest::UnnestExec;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct YieldAfterMultipliers;

impl PhysicalOptimizerRule for YieldAfterMultipliers {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|p| {
            let any: &dyn std::any::Any = p.as_ref();
            let multiplies = any.is::<HashJoinExec>()
                || any.is::<CrossJoinExec>()
                || any.is::<NestedLoopJoinExec>()
                || any.is::<SortMergeJoinExec>()
                || any.is::<SymmetricHashJoinExec>()
                || any.is::<UnnestExec>();
            Ok(if multiplies {
                Transformed::yes(Arc::new(CooperativeExec::new(p)) as Arc<dyn ExecutionPlan>)
            } else {
                Transformed::no(p)
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "sluice_yield_after_multipliers"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
