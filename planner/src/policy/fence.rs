//! The fence above a guarded table's policy: a logical node no predicate on its columns may be
//! pushed through (but the leakproof ones [`super::rule::LeakproofThroughFence`] moves), and
//! its physical form, which passes its input's batches through unchanged and refuses every
//! parent filter but DataFusion's own join and top-k filters over plain columns.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchemaRef, Result as DfResult, Statistics, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, DynamicFilterPhysicalExpr};
use datafusion::physical_plan::filter_pushdown::{FilterDescription, FilterPushdownPhase};
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};

/// What `EXPLAIN` prints for a fence; lines below it are hidden from callers who may not see
/// policies.
pub const FENCE_NAME: &str = "PolicyFence";

/// The physical fence's name, as plans print it.
pub const FENCE_EXEC_NAME: &str = "PolicyFenceExec";

/// The fence above one guarded table.
#[derive(Debug, Clone)]
pub struct PolicyFence {
    /// What it guards: the policy's filter and masks over the scan.
    pub input: LogicalPlan,
    /// The table, `source.schema.table`.
    pub table: String,
    /// The policies applied, by name.
    pub policies: Vec<String>,
    /// The columns a mask replaces: no predicate on them passes the fence (it would be
    /// evaluated on the mask's expression over hidden rows).
    pub masked: Vec<String>,
}

impl PolicyFence {
    /// The fence as a logical plan.
    pub fn into_plan(self) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(self),
        })
    }

    /// The fence a plan node is, if it is one.
    pub fn of(plan: &LogicalPlan) -> Option<&Self> {
        match plan {
            LogicalPlan::Extension(e) => e.node.as_any().downcast_ref::<Self>(),
            _ => None,
        }
    }
}

impl PartialEq for PolicyFence {
    fn eq(&self, other: &Self) -> bool {
        self.table == other.table && self.policies == other.policies && self.input == other.input
    }
}

impl Eq for PolicyFence {}

impl PartialOrd for PolicyFence {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some((&self.table, &self.policies).cmp(&(&other.table, &other.policies)))
    }
}

impl Hash for PolicyFence {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.table.hash(state);
        self.policies.hash(state);
        self.input.hash(state);
    }
}

impl UserDefinedLogicalNodeCore for PolicyFence {
    fn name(&self) -> &str {
        FENCE_NAME
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    /// Every column: DataFusion's filter pushdown stops here.
    fn prevent_predicate_push_down_columns(&self) -> std::collections::HashSet<String> {
        self.input
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{FENCE_NAME}: table={}, policies=[{}]",
            self.table,
            self.policies.join(", ")
        )
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let Some(input) = inputs.into_iter().next() else {
            return internal_err!("{FENCE_NAME} needs one input");
        };
        Ok(Self {
            input,
            table: self.table.clone(),
            policies: self.policies.clone(),
            masked: self.masked.clone(),
        })
    }

    /// A pass-through: the columns asked of it are the ones it asks of its input.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![output_columns.to_vec()])
    }

    fn supports_limit_pushdown(&self) -> bool {
        false
    }
}

/// The physical fence: its input's batches, unchanged.
#[derive(Debug)]
pub struct FenceExec {
    input: Arc<dyn ExecutionPlan>,
    table: String,
    properties: Arc<PlanProperties>,
}

impl FenceExec {
    /// A fence over `input`, guarding `table`.
    pub fn new(input: Arc<dyn ExecutionPlan>, table: String) -> Self {
        let properties = Arc::new(input.properties().as_ref().clone());
        Self {
            input,
            table,
            properties,
        }
    }
}

impl FenceExec {
    /// The same fence over another input.
    pub fn over(&self, input: Arc<dyn ExecutionPlan>) -> Self {
        Self::new(input, self.table.clone())
    }
}

impl DisplayAs for FenceExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{FENCE_EXEC_NAME}: table={}", self.table)
    }
}

/// Whether a filter DataFusion pushes down at run time (a hash join's build-side keys, a
/// top-k's threshold) may pass a fence: it must be DataFusion's dynamic filter, and over plain
/// columns only, so what it evaluates below is comparisons and set membership, which cannot
/// fail. A top-k over a computed expression (`ORDER BY 1 / (x - 42) LIMIT 5`) would otherwise
/// carry that expression below the policy.
fn may_pass(filter: &Arc<dyn PhysicalExpr>) -> bool {
    filter.downcast_ref::<DynamicFilterPhysicalExpr>().is_some()
        && filter
            .children()
            .iter()
            .all(|c| c.downcast_ref::<Column>().is_some())
}

impl ExecutionPlan for FenceExec {
    fn name(&self) -> &str {
        FENCE_EXEC_NAME
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some(input) = children.into_iter().next() else {
            return internal_err!("{FENCE_EXEC_NAME} needs one input");
        };
        Ok(Arc::new(Self::new(input, self.table.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    /// Its input's: join ordering still sees how large the guarded side is.
    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        match input_stats.first() {
            Some(s) => Ok(Arc::clone(s)),
            None => internal_err!("{FENCE_EXEC_NAME} needs one input"),
        }
    }

    fn gather_filters_for_pushdown(
        &self,
        phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> DfResult<FilterDescription> {
        if phase == FilterPushdownPhase::Post && parent_filters.iter().all(may_pass) {
            return FilterDescription::from_children(parent_filters, &self.children());
        }
        Ok(FilterDescription::all_unsupported(
            &parent_filters,
            &self.children(),
        ))
    }
}

/// Plans [`PolicyFence`]s as [`FenceExec`]s.
#[derive(Debug, Default)]
pub struct FencePlanner;

#[async_trait]
impl ExtensionPlanner for FencePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(fence) = node.as_any().downcast_ref::<PolicyFence>() else {
            return Ok(None);
        };
        let Some(input) = physical_inputs.first() else {
            return internal_err!("{FENCE_NAME} needs one input");
        };
        Ok(Some(Arc::new(FenceExec::new(
            Arc::clone(input),
            fence.table.clone(),
        ))))
    }
}
