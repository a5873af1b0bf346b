//! [`RemoteQueryNode`]: a subtree the cut sends to one source, as a leaf of the logical plan;
//! and the query planner that federates every plan before DataFusion plans it physically.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchemaRef, Result as DfResult};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use super::exec::{RemoteScanExec, RemoteStatementSpec};

/// A subtree computed by one source: its statement and the schema it stands in for.
#[derive(Debug, Clone)]
pub struct RemoteQueryNode {
    /// What is sent and expected back.
    pub spec: RemoteStatementSpec,
    /// The replaced subtree's schema (qualifiers included), so the plan above resolves.
    pub schema: DFSchemaRef,
    /// The subtree it replaced and its source, for the cost-aware cut to weigh; `None` for a
    /// single table's scan.
    pub origin: Option<Arc<Origin>>,
}

/// What a [`RemoteQueryNode`] was cut from.
#[derive(Debug)]
pub struct Origin {
    /// The logical subtree the statement computes.
    pub subtree: LogicalPlan,
    /// The source that computes it.
    pub source: Arc<super::table::RemoteSource>,
}

impl RemoteQueryNode {
    /// The node as a logical plan.
    pub fn into_plan(self) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(self),
        })
    }

    fn key(&self) -> (&str, &str) {
        (&self.spec.source, &self.spec.sql)
    }
}

impl PartialEq for RemoteQueryNode {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key() && self.schema == other.schema
    }
}

impl Eq for RemoteQueryNode {}

impl PartialOrd for RemoteQueryNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.key().cmp(&other.key()))
    }
}

impl Hash for RemoteQueryNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl UserDefinedLogicalNodeCore for RemoteQueryNode {
    fn name(&self) -> &str {
        "RemoteQuery"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "RemoteQuery: source={}, sql={}",
            self.spec.source, self.spec.sql
        )?;
        if let Some(why) = &self.spec.kept_local {
            write!(f, ", kept_local_above={why}")?;
        }
        self.spec.fmt_estimate(f)
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        _inputs: Vec<LogicalPlan>,
    ) -> DfResult<Self> {
        Ok(self.clone())
    }

    fn supports_limit_pushdown(&self) -> bool {
        false
    }
}

/// Plans [`RemoteQueryNode`]s as [`RemoteScanExec`]s.
#[derive(Debug, Default)]
pub struct RemoteQueryPlanner;

#[async_trait]
impl ExtensionPlanner for RemoteQueryPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        _physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(remote) = node.as_any().downcast_ref::<RemoteQueryNode>() else {
            return Ok(None);
        };
        Ok(Some(Arc::new(RemoteScanExec::try_new(
            remote.spec.clone(),
        )?)))
    }
}

/// Federates each plan (see [`super::cut`]), then plans it with DataFusion's planner and
/// [`RemoteQueryPlanner`]. `EXPLAIN` and `EXPLAIN ANALYZE` go through here too, so they show
/// what runs.
#[derive(Debug, Default)]
pub struct FederatingQueryPlanner;

#[async_trait]
impl QueryPlanner for FederatingQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let federated = super::cut::federate(logical_plan.clone())?;
        DefaultPhysicalPlanner::with_extension_planners(vec![
            Arc::new(RemoteQueryPlanner),
            Arc::new(crate::policy::fence::FencePlanner),
        ])
        .create_physical_plan(&federated, session)
        .await
    }
}
