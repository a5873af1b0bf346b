//! [`RemoteScanExec`]: one statement sent to a remote source, as an execution plan (one
//! partition). The same node serves a single table's scan and a whole pushed-down subtree.
//!
//! The executor that runs it is not part of the plan: [`ExecutionPlan::execute`] takes it from
//! the query's [`QueryContext`], filled at statement start, so the source actor can pick the
//! replica. Nothing is sent until the stream is first polled; by then a hash join above has
//! built its other side, and the join's dynamic filter (its keys' bounds and, when few, the
//! keys themselves) is added to the statement as a `WHERE` over its result
//! ([`runtime_filter`]).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result as DfResult, Statistics, stats::Precision};
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation, PushedDown,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions,
};
use futures::{StreamExt, TryStreamExt};

use super::context::QueryContext;
use super::dialect::SourceDialect;
use super::error::{ErrorClass, RemoteError};
use super::executor::{ColumnClass, StatementContext};
use super::runtime_filter;

/// What a [`RemoteScanExec`] sends and expects back.
#[derive(Debug, Clone)]
pub struct RemoteStatementSpec {
    /// Source (catalog) name.
    pub source: String,
    /// The source's dialect.
    pub dialect: Arc<dyn SourceDialect>,
    /// The statement.
    pub sql: String,
    /// What the statement returns, column by column.
    pub fetched: SchemaRef,
    /// Columns of `fetched` this node outputs (`None`: all). Only a scan of a source with
    /// `pushdown = "none"` fetches more than it outputs.
    pub projection: Option<Vec<usize>>,
    /// How each fetched column compares at the source (for runtime filters).
    pub classes: Vec<ColumnClass>,
    /// The source's estimate of the rows, if any.
    pub rows_estimate: Option<usize>,
    /// Why the operator above this statement was not sent with it, for `EXPLAIN`.
    pub kept_local: Option<String>,
    /// The source's own estimate of the statement, when the cost-aware cut asked for one.
    pub estimate: Option<super::executor::Estimate>,
    /// Why the statement was sent whole when keeping part of it local was weighed too.
    pub weighed: Option<String>,
    /// The order of the statement's rows, `(output column, ascending, nulls first)`, when
    /// it ends with an `ORDER BY` of its own columns: DataFusion keeps it (and sorts no
    /// more).
    pub ordering: Vec<(usize, bool, bool)>,
    /// Whether joins above may narrow the statement with their keys (not for a source with
    /// `pushdown = "none"`, the reference that gets nothing but whole tables).
    pub narrowable: bool,
    /// Under a policy fence: what it pulls is not reported per source for the query (its
    /// rows may include rows the policy hides, when the source cannot run the row filter).
    pub guarded: bool,
}

impl RemoteStatementSpec {
    /// The fetched column behind output column `i`.
    pub fn fetched_index(&self, i: usize) -> Option<usize> {
        match &self.projection {
            Some(p) => p.get(i).copied(),
            None => (i < self.fetched.fields().len()).then_some(i),
        }
    }

    /// `, estimate=…` and `, weighed=…` for `EXPLAIN`, when there are.
    pub(crate) fn fmt_estimate(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.estimate {
            write!(
                f,
                ", estimate=rows {:.0} width {:.0} cost {:.0}",
                e.rows, e.width, e.cost
            )?;
        }
        if let Some(why) = &self.weighed {
            write!(f, ", weighed={why}")?;
        }
        Ok(())
    }

    /// The type of output column `i`.
    pub fn fetched_type(&self, i: usize) -> Option<datafusion::arrow::datatypes::DataType> {
        let f = self.fetched_index(i)?;
        Some(self.fetched.field(f).data_type().clone())
    }
}

/// A statement sent to a remote source.
#[derive(Debug)]
pub struct RemoteScanExec {
    spec: Arc<RemoteStatementSpec>,
    schema: SchemaRef,
    /// Dynamic filters pushed here by operators above (joins, top-k).
    runtime_filters: Vec<Arc<dyn PhysicalExpr>>,
    /// Expression ids of the filters made by hash joins, which the statement waits for.
    awaited: Arc<HashSet<u64>>,
    properties: Arc<PlanProperties>,
}

impl RemoteScanExec {
    /// A node for `spec`.
    ///
    /// # Errors
    /// When the projection does not fit the fetched schema.
    pub fn try_new(spec: RemoteStatementSpec) -> DfResult<Self> {
        let schema = match &spec.projection {
            Some(p) => Arc::new(spec.fetched.project(p)?),
            None => Arc::clone(&spec.fetched),
        };
        let mut equivalence = EquivalenceProperties::new(Arc::clone(&schema));
        if spec.projection.is_none() && !spec.ordering.is_empty() {
            let keys = spec.ordering.iter().filter_map(|&(i, asc, nulls_first)| {
                let field = schema.fields().get(i)?;
                Some(PhysicalSortExpr::new(
                    Arc::new(Column::new(field.name(), i)),
                    SortOptions {
                        descending: !asc,
                        nulls_first,
                    },
                ))
            });
            equivalence.add_orderings([keys.collect::<Vec<_>>()]);
        }
        let properties = Arc::new(PlanProperties::new(
            equivalence,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            spec: Arc::new(spec),
            schema,
            runtime_filters: Vec::new(),
            awaited: Arc::default(),
            properties,
        })
    }

    /// This node, waiting for its runtime filters made by the hash joins whose filter ids
    /// are `joins`; `None` when it holds none of them.
    pub fn awaiting(&self, joins: &HashSet<u64>) -> Option<Self> {
        let awaited: HashSet<u64> = self
            .runtime_filters
            .iter()
            .filter_map(|f| f.expression_id())
            .filter(|id| joins.contains(id))
            .collect();
        (!awaited.is_empty() && awaited != *self.awaited).then(|| Self {
            spec: Arc::clone(&self.spec),
            schema: Arc::clone(&self.schema),
            runtime_filters: self.runtime_filters.clone(),
            awaited: Arc::new(awaited),
            properties: Arc::clone(&self.properties),
        })
    }

    /// What it sends and expects back.
    pub fn spec(&self) -> &RemoteStatementSpec {
        &self.spec
    }

    /// The statement as planned (without runtime filters, which exist only while running).
    pub fn sql(&self) -> &str {
        &self.spec.sql
    }

    /// The source it is sent to.
    pub fn source_name(&self) -> &str {
        &self.spec.source
    }

    /// Why the operator above it was kept local, if one was.
    pub fn kept_local(&self) -> Option<&str> {
        self.spec.kept_local.as_deref()
    }
}

impl DisplayAs for RemoteScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RemoteScanExec: source={}, sql={}",
            self.spec.source, self.spec.sql
        )?;
        if !self.runtime_filters.is_empty() {
            write!(f, ", runtime_filters={}", self.runtime_filters.len())?;
        }
        self.spec.fmt_estimate(f)
    }
}

impl ExecutionPlan for RemoteScanExec {
    fn name(&self) -> &'static str {
        "RemoteScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    /// The runtime filters it holds: a join computes its filter only when a consumer shows
    /// it here.
    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        for filter in &self.runtime_filters {
            if f(filter)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn partition_statistics(&self, _partition: Option<usize>) -> DfResult<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.schema);
        if let Some(n) = self.spec.rows_estimate {
            stats.num_rows = Precision::Inexact(n);
        }
        Ok(Arc::new(stats))
    }

    /// Keeps the dynamic filters of joins above (to add to the statement when it starts);
    /// every filter stays where it was too (`No`), so none depends on the source applying it.
    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> DfResult<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let filters: Vec<Arc<dyn PhysicalExpr>> = child_pushdown_result
            .parent_filters
            .iter()
            .map(|f| Arc::clone(&f.filter))
            .collect();
        let dynamic: Vec<_> = filters
            .iter()
            .filter(|f| {
                self.spec.narrowable && f.downcast_ref::<DynamicFilterPhysicalExpr>().is_some()
            })
            .cloned()
            .collect();
        let mut result: FilterPushdownPropagation<Arc<dyn ExecutionPlan>> =
            FilterPushdownPropagation {
                filters: vec![PushedDown::No; filters.len()],
                updated_node: None,
            };
        if !dynamic.is_empty() {
            let mut runtime_filters = self.runtime_filters.clone();
            runtime_filters.extend(dynamic);
            result.updated_node = Some(Arc::new(Self {
                spec: Arc::clone(&self.spec),
                schema: Arc::clone(&self.schema),
                runtime_filters,
                awaited: Arc::clone(&self.awaited),
                properties: Arc::clone(&self.properties),
            }));
        }
        Ok(result)
    }

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let spec = Arc::clone(&self.spec);
        let query = context.session_config().get_extension::<QueryContext>();
        let executor = query
            .as_ref()
            .and_then(|q| q.executors.get(&spec.source).cloned())
            .ok_or_else(|| {
                RemoteError::new(
                    &spec.source,
                    ErrorClass::Unavailable,
                    format!("source {} has no executor for this query", spec.source),
                )
            })?;
        let trace = query.as_ref().map(|q| q.trace.clone()).unwrap_or_default();
        // A span only for a traced query (its `traceparent` is known): without tracing, a
        // remote statement costs no span.
        let span = if trace.hooks.is_none() {
            tracing::Span::none()
        } else {
            tracing::info_span!(
            parent: &trace.span,
            "remote statement",
            otel.name = %format_args!("SELECT {}", spec.source),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            db.system = tracing::field::Empty,
            db.operation = "SELECT",
            server.address = tracing::field::Empty,
            sluice.source = %spec.source,
            sluice.replica = tracing::field::Empty,
            sluice.statement_hash = tracing::field::Empty,
            sluice.rows = tracing::field::Empty,
            sluice.arrow_bytes = tracing::field::Empty,
            )
        };
        let statement = StatementContext {
            query_id: query
                .as_ref()
                .map_or_else(|| "-".to_owned(), |q| q.id.clone()),
            deadline: query.as_ref().and_then(|q| q.deadline),
            pulled: query
                .as_ref()
                .filter(|_| !spec.guarded)
                .map(|q| q.pulled.source(&spec.source))
                .unwrap_or_default(),
            // The statement's own span, which the source's log then names as the parent.
            traceparent: trace
                .hooks
                .and_then(|h| (h.traceparent)(&span))
                .or_else(|| trace.traceparent.clone()),
            span: span.clone(),
        };
        let (statement_text, hooks) = (trace.statement_text, trace.hooks);
        let filters = self.runtime_filters.clone();
        let awaited = Arc::clone(&self.awaited);
        let schema = Arc::clone(&self.schema);
        let start = async move {
            // The hash joins above build their other side first: their keys narrow the
            // statement. (The query's deadline and cancellation bound the wait.)
            for f in &filters {
                if let Some(d) = f.downcast_ref::<DynamicFilterPhysicalExpr>()
                    && f.expression_id().is_some_and(|id| awaited.contains(&id))
                {
                    d.wait_complete().await;
                }
            }
            let sql = runtime_filter::apply(&spec, &filters);
            if let Some(h) = hooks {
                statement
                    .span
                    .record("sluice.statement_hash", (h.statement_hash)(&sql));
                if statement_text {
                    (h.set_attribute)(&statement.span, "db.query.text", sql.clone());
                }
            }
            statement.pulled.statement();
            let stream = executor
                .execute(&sql, Arc::clone(&spec.fetched), &statement)
                .map_err(|e| {
                    statement.span.record("otel.status_code", "ERROR");
                    RemoteError::into_df(e)
                })?;
            let pulled = Arc::clone(&statement.pulled);
            let projection = spec.projection.clone();
            let rows = ::metrics::counter!(crate::metrics::SOURCE_ROWS_TOTAL, "source" => spec.source.clone());
            let mut tally = SpanTally::new(statement.span.clone());
            Ok::<_, datafusion::error::DataFusionError>(stream.map(move |batch| {
                let batch: RecordBatch = batch.inspect_err(|_| tally.failed())?;
                tally.add(&batch);
                pulled.add_rows(batch.num_rows() as u64);
                rows.increment(batch.num_rows() as u64);
                match &projection {
                    Some(p) => Ok(batch.project(p)?),
                    None => Ok(batch),
                }
            }))
        };
        let stream =
            futures::stream::once(tracing::Instrument::instrument(start, span)).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// A remote statement's rows and Arrow bytes, written on its span when the stream is dropped
/// (ended, failed or cancelled).
struct SpanTally {
    span: tracing::Span,
    rows: u64,
    bytes: u64,
}

impl SpanTally {
    fn new(span: tracing::Span) -> Self {
        Self {
            span,
            rows: 0,
            bytes: 0,
        }
    }

    fn add(&mut self, batch: &RecordBatch) {
        if self.span.is_none() {
            return;
        }
        self.rows += batch.num_rows() as u64;
        self.bytes += batch.get_array_memory_size() as u64;
    }

    fn failed(&self) {
        self.span.record("otel.status_code", "ERROR");
    }
}

impl Drop for SpanTally {
    fn drop(&mut self) {
        if self.span.is_none() {
            return;
        }
        self.span.record("sluice.rows", self.rows);
        self.span.record("sluice.arrow_bytes", self.bytes);
    }
}
