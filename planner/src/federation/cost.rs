//! The cost-aware cut: each remote subtree the [`super::cut`] found is weighed against
//! keeping its top join or aggregate in Sluice, by the source's own estimates.
//!
//! The cut sends the largest subtree a source computes exactly. That is the cheapest plan
//! when the source narrows as well as Sluice does, and not when it does not: a correlated
//! aggregate (TPC-H Q17) decorrelates into an aggregate over every row of a large table that
//! PostgreSQL computes in full (and spills), where Sluice would first have narrowed it to the
//! few keys the join's other side holds ([`super::runtime_filter`]).
//!
//! So for a remote subtree whose chain of projections, filters and sorts ends at a join or an
//! aggregate, the alternatives are:
//! - **whole**: the source's cost for the statement, plus its rows crossing the wire and a
//!   fixed cost per statement;
//! - **split**: the join (or aggregate) in Sluice, each input weighed the same way on its own
//!   (recursively), plus each input's rows crossing the wire and Sluice's work per input row.
//!   For an inner or semi join on one key, the larger input's statement is costed with the
//!   runtime filter it will get: `key IN (…)` with as many made-up keys as the source expects
//!   the smaller side to hold distinct values (up to [`MAX_IN_LIST`]). Made-up keys cost as
//!   real ones: an estimate of `key = v` for a value that is not among the column's most
//!   common ones does not depend on `v`. Only a statement is costed narrowed: when the larger
//!   input was split below, it is costed as its whole statement narrowed (kept beside the
//!   split as `Choice::whole`), and that is taken where cheaper than the split as chosen. At
//!   run time DataFusion also hands the filter down to the split's input holding the key,
//!   which this does not cost: it weighs one level again, not every way to narrow a split.
//!
//! The split is taken when it is estimated at most [`MARGIN`] of the whole. Estimates come
//! from [`RemoteExecutor::estimate`] (PostgreSQL's `EXPLAIN (FORMAT JSON)`, with what its
//! cost leaves out added by the PostgreSQL executor: spills, and hash joins over large
//! tables), cached per statement text by [`Estimates`]; a source that gives none, or fails to
//! answer, keeps the largest subtree. Costs are in the source's units (PostgreSQL: one
//! sequential page read is 1.0, one row processed 0.01); the constants below put Sluice's own
//! work in the same units.
//! `EXPLAIN` shows each statement's estimate, and why the operator above it was kept local
//! (`kept_local_above=cost: …`) or why it was sent whole (`weighed=…`).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result as DfResult, internal_datafusion_err};
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};
use futures::future::BoxFuture;

use super::cut::{self, Found};
use super::executor::{ColumnClass, Estimate, RemoteExecutor};
use super::node::RemoteQueryNode;
use super::runtime_filter::MAX_IN_LIST;
use super::table::RemoteSource;

/// Per row crossing the wire: the source writes it, Sluice decodes it. Sluice decodes about
/// 2.2 M PostgreSQL rows a second (0.46 µs), and one of PostgreSQL's units took about 7 µs in
/// TPC-H Q17 sent whole (555,000 units in 4.1 s): 0.06, and the source's writing on top.
pub const WIRE_ROW: f64 = 0.08;
/// Bytes crossing the wire that cost as one page read.
pub const WIRE_BYTES_PER_UNIT: f64 = 8192.0;
/// Per input row of a join or an aggregate computed by Sluice (DataFusion's vectorised hash
/// tables, near PostgreSQL's `cpu_tuple_cost`).
pub const LOCAL_ROW: f64 = 0.01;
/// Per statement sent: a connection taken from the pool, a round trip, the source's planning
/// (about a millisecond).
pub const STATEMENT: f64 = 150.0;
/// The split is taken when its cost is at most this share of the whole's: a near tie keeps
/// the statement whole, which pulls fewer bytes.
pub const MARGIN: f64 = 0.95;

/// How long an estimate is kept.
const KEPT_FOR: Duration = Duration::from_secs(600);
/// How long a source that did not answer is left alone.
const FAILED_FOR: Duration = Duration::from_secs(30);
/// Estimates kept per source at most.
const MAX_KEPT: usize = 4096;
/// How long one estimate is waited for.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// A source's estimates: asked of its executors (the first that answers), kept per
/// statement text for [`KEPT_FOR`].
pub struct Estimates {
    executors: Vec<Arc<dyn RemoteExecutor>>,
    /// Until when each executor is passed over, after it failed to answer.
    resting: Mutex<Vec<Option<Instant>>>,
    kept: Mutex<HashMap<u64, (Instant, Option<Estimate>)>>,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for Estimates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Estimates")
            .field("executors", &self.executors.len())
            .finish_non_exhaustive()
    }
}

impl Estimates {
    /// Estimates asked of `executors` in order (a source's replicas).
    pub fn new(executors: Vec<Arc<dyn RemoteExecutor>>) -> Self {
        Self {
            resting: Mutex::new(vec![None; executors.len()]),
            executors,
            kept: Mutex::default(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The source's estimate for `sql`; `None` when it gives none or did not answer.
    pub async fn get(&self, sql: &str) -> Option<Estimate> {
        let key = self.hasher.hash_one(sql);
        let now = Instant::now();
        if let Some((until, kept)) = self.lock().get(&key)
            && *until > now
        {
            return *kept;
        }
        let mut answered = None;
        for (i, executor) in self.executors.iter().enumerate() {
            // A replica that did not answer is left alone for a while, so a hung one costs
            // one wait, not one per statement.
            if self.rests(i, now) {
                continue;
            }
            match tokio::time::timeout(ASK_TIMEOUT, executor.estimate(sql)).await {
                Ok(Ok(e)) => {
                    answered = Some(e);
                    break;
                }
                Ok(Err(e)) => {
                    tracing::debug!(source = executor.name(), error = %e.message, "No estimate.");
                    if e.class == super::error::ErrorClass::Unavailable {
                        self.rest(i);
                    }
                }
                Err(_) => {
                    tracing::debug!(source = executor.name(), "No estimate in time.");
                    self.rest(i);
                }
            }
        }
        let for_how_long = if answered.is_some() {
            KEPT_FOR
        } else {
            FAILED_FOR
        };
        let estimate = answered.flatten();
        let mut kept = self.lock();
        if kept.len() >= MAX_KEPT {
            kept.retain(|_, (until, _)| *until > now);
            if kept.len() >= MAX_KEPT {
                kept.clear();
            }
        }
        kept.insert(key, (now + for_how_long, estimate));
        estimate
    }

    fn rests(&self, i: usize, now: Instant) -> bool {
        let resting = self.resting.lock().unwrap_or_else(|p| p.into_inner());
        resting
            .get(i)
            .copied()
            .flatten()
            .is_some_and(|until| until > now)
    }

    fn rest(&self, i: usize) {
        let mut resting = self.resting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = resting.get_mut(i) {
            *slot = Some(Instant::now() + FAILED_FOR);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Instant, Option<Estimate>)>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `plan` (federated by [`super::cut::federate`]) with each remote subtree weighed, and its
/// top join or aggregate kept local where that is estimated cheaper.
///
/// # Errors
/// Only internal errors: a subtree that cannot be weighed is left as the cut made it.
pub async fn choose(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    let mut weighable: Vec<RemoteQueryNode> = Vec::new();
    plan.apply_with_subqueries(|node| {
        // Only a statement with a join or aggregate to keep local has an alternative: asking
        // for the estimate of a filtered scan would cost a round trip and decide nothing.
        if let Some(remote) = as_remote(node)
            && remote
                .origin
                .as_ref()
                .is_some_and(|o| o.source.estimates.is_some() && split_point(&o.subtree).is_some())
        {
            weighable.push(remote.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if weighable.is_empty() {
        return Ok(plan);
    }
    // By node, not by statement: two statements with the same text may stand for
    // differently qualified subtrees (a self join's two sides).
    let mut chosen: Vec<(RemoteQueryNode, LogicalPlan)> = Vec::new();
    for remote in weighable {
        if chosen.iter().any(|(n, _)| *n == remote) {
            continue;
        }
        let Some(origin) = remote.origin.as_ref() else {
            continue;
        };
        if let Some(choice) = weigh(
            &origin.subtree,
            &origin.source,
            remote.spec.kept_local.clone(),
        )
        .await?
        {
            chosen.push((remote, choice.plan));
        }
    }
    let plan = plan
        .transform_down_with_subqueries(|node| {
            let Some((_, replacement)) =
                as_remote(&node).and_then(|r| chosen.iter().find(|(n, _)| n == r))
            else {
                return Ok(Transformed::no(node));
            };
            Ok(Transformed::new(
                replacement.clone(),
                true,
                TreeNodeRecursion::Jump,
            ))
        })?
        .data;
    cut::mark_guarded(plan)
}

fn as_remote(plan: &LogicalPlan) -> Option<&RemoteQueryNode> {
    let LogicalPlan::Extension(e) = plan else {
        return None;
    };
    e.node.as_any().downcast_ref::<RemoteQueryNode>()
}

/// One way to compute a subtree, and what it is estimated to cost.
struct Choice {
    plan: LogicalPlan,
    /// Source cost plus wire plus Sluice's work.
    cost: f64,
    /// The subtree's rows, as the source estimates them.
    rows: f64,
    /// For a split: the subtree sent whole, which a runtime filter from the join above may
    /// make the cheaper of the two after all (a greedy choice below must not hide it).
    whole: Option<Box<Choice>>,
}

impl Choice {
    /// The statement, when the subtree is sent whole.
    fn remote(&self) -> Option<&RemoteQueryNode> {
        as_remote(&self.plan)
    }

    /// The subtree as one statement: this choice when it is one, else the whole it was
    /// weighed against.
    fn statement(&self) -> Option<&Self> {
        if self.remote().is_some() {
            Some(self)
        } else {
            self.whole.as_deref().filter(|w| w.remote().is_some())
        }
    }

    /// Says why the operator above was kept local, on the statement when it is one, and
    /// gives DataFusion the source's row estimate to order that operator's inputs by.
    fn kept_local(mut self, why: &str) -> Self {
        if let Some(remote) = self.remote() {
            let mut remote = remote.clone();
            remote.spec.kept_local = Some(why.to_owned());
            // The statement's own rows, before a runtime filter narrows them: the side
            // costed as narrowed must stay the probe side, which this keeps the larger.
            if let Some(e) = remote.spec.estimate {
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "an estimate"
                )]
                let rows = e.rows.max(1.0).ceil() as usize;
                remote.spec.rows_estimate = Some(rows);
            }
            self.plan = remote.into_plan();
        }
        self
    }
}

fn wire(e: &Estimate) -> f64 {
    e.rows * (WIRE_ROW + e.width / WIRE_BYTES_PER_UNIT)
}

/// Where a subtree may be split: the join or aggregate its chain of projections, filters,
/// aliases, sorts and limits ends at, and how deep it is.
fn split_point(plan: &LogicalPlan) -> Option<(usize, &LogicalPlan)> {
    let mut depth = 0;
    let mut node = plan;
    loop {
        match node {
            LogicalPlan::Join(j) if !j.on.is_empty() => return Some((depth, node)),
            LogicalPlan::Aggregate(_) => return Some((depth, node)),
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_) => {
                let [input] = node.inputs()[..] else {
                    return None;
                };
                node = input;
                depth += 1;
            }
            _ => return None,
        }
    }
}

/// `plan` with the inputs of the node `depth` levels down its chain replaced.
fn replace_at(plan: LogicalPlan, depth: usize, inputs: Vec<LogicalPlan>) -> DfResult<LogicalPlan> {
    if depth == 0 {
        return cut::with_inputs(plan, inputs);
    }
    let mut inputs = Some(inputs);
    plan.map_children(|child| {
        let inputs = inputs
            .take()
            .ok_or_else(|| internal_datafusion_err!("cost: a chain node with two inputs"))?;
        replace_at(child, depth - 1, inputs).map(Transformed::yes)
    })
    .map(|t| t.data)
}

/// The cheaper of sending `sub` whole and keeping its top join or aggregate local; `None`
/// when it cannot be weighed (no estimate, or not one statement).
fn weigh<'a>(
    sub: &'a LogicalPlan,
    source: &'a Arc<RemoteSource>,
    kept_local: Option<String>,
) -> BoxFuture<'a, DfResult<Option<Choice>>> {
    Box::pin(async move {
        let Some(estimates) = source.estimates.as_deref() else {
            return Ok(None);
        };
        let (plan, found) = cut::visit(sub.clone())?;
        let Found::Remote { classes, .. } = found else {
            return Ok(None);
        };
        let whole = cut::remote_node(plan, source, classes, kept_local)?;
        let Some(node) = as_remote(&whole) else {
            return Ok(None);
        };
        let Some(w) = estimates.get(&node.spec.sql).await else {
            return Ok(None);
        };
        let whole_cost = STATEMENT + w.cost + wire(&w);
        let mut node = node.clone();
        // Shown here; handed to DataFusion's join ordering only for the inputs of a split
        // ([`Choice::kept_local`]), whose sides are then all estimated by the source. A
        // statement kept whole may be joined with the cut's guesses, and a better number on
        // one side alone can flip the build side (TPC-H Q17 with part and lineitem in two
        // databases: the aggregate's statement, 198,000 rows by PostgreSQL against 600,000
        // by the cut, became the build side and lost the part keys' runtime filter, 2.0x).
        node.spec.estimate = Some(w);
        let Some((depth, at)) = split_point(sub) else {
            return Ok(Some(Choice {
                plan: node.into_plan(),
                cost: whole_cost,
                rows: w.rows,
                whole: None,
            }));
        };
        let split = match at {
            LogicalPlan::Aggregate(a) => {
                let Some(input) = weigh(&a.input, source, None).await? else {
                    return Ok(Some(whole_choice(node, whole_cost, w.rows, None)));
                };
                let cost = input.cost + input.rows * LOCAL_ROW;
                Some(("the aggregate", cost, vec![input]))
            }
            LogicalPlan::Join(j) => {
                let (Some(left), Some(right)) = (
                    weigh(&j.left, source, None).await?,
                    weigh(&j.right, source, None).await?,
                ) else {
                    return Ok(Some(whole_choice(node, whole_cost, w.rows, None)));
                };
                let (left, right) = narrowed(j, left, right, source, estimates).await;
                let cost = left.cost + right.cost + (left.rows + right.rows) * LOCAL_ROW;
                Some(("the join", cost, vec![left, right]))
            }
            _ => None,
        };
        let Some((what, split_cost, inputs)) = split else {
            return Ok(Some(whole_choice(node, whole_cost, w.rows, None)));
        };
        tracing::debug!(
            source = %source.name,
            sql = %node.spec.sql,
            whole = whole_cost,
            split = split_cost,
            inputs = ?inputs.iter().map(|c| (c.cost.round(), c.rows.round())).collect::<Vec<_>>(),
            "Weighed {what} in Sluice against sending it whole."
        );
        if split_cost > MARGIN * whole_cost {
            let why =
                format!("cost {whole_cost:.0} whole against {split_cost:.0} with {what} in Sluice");
            return Ok(Some(whole_choice(node, whole_cost, w.rows, Some(why))));
        }
        let why = format!(
            "cost: {split_cost:.0} with {what} in Sluice against {whole_cost:.0} sending it \
             whole ({} estimates)",
            source.name
        );
        let inputs: Vec<LogicalPlan> = inputs
            .into_iter()
            .map(|c| c.kept_local(&why).plan)
            .collect();
        let plan = replace_at(sub.clone(), depth, inputs)?;
        let whole = whole_choice(node, whole_cost, w.rows, None);
        Ok(Some(Choice {
            plan,
            cost: split_cost,
            rows: w.rows,
            whole: Some(Box::new(whole)),
        }))
    })
}

fn whole_choice(mut node: RemoteQueryNode, cost: f64, rows: f64, why: Option<String>) -> Choice {
    node.spec.weighed = why;
    Choice {
        plan: node.into_plan(),
        cost,
        rows,
        whole: None,
    }
}

/// The join's inputs with the larger one costed as its runtime filter will narrow it: an
/// inner or semi join on one key, the larger input (or, when it was split, its whole
/// statement) narrowed where that costs less than it did, its key an integer or text column,
/// and the smaller side's distinct keys few enough to go as a list.
async fn narrowed(
    join: &datafusion::logical_expr::Join,
    left: Choice,
    right: Choice,
    source: &RemoteSource,
    estimates: &Estimates,
) -> (Choice, Choice) {
    let one_key = matches!(
        join.join_type,
        JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi
    ) && join.on.len() == 1;
    let Some((l_key, r_key)) = join.on.first().filter(|_| one_key) else {
        return (left, right);
    };
    // DataFusion builds its hash table on the smaller side (by these same estimates).
    let right_builds = right.rows < left.rows;
    let (build, probe, build_key, probe_key) = if right_builds {
        (&right, &left, r_key, l_key)
    } else {
        (&left, &right, l_key, r_key)
    };
    // The probe sent whole, even when splitting it was the cheaper without the filter: only a
    // statement is costed narrowed (TPC-H Q2: `partsupp` joined with `supplier` was estimated
    // cheaper split when ANALYZE's sample overrated `ps_suppkey`'s distinct values, and the
    // nations' keys one join above then narrowed nothing in the model).
    let Some(statement) = probe.statement() else {
        return (left, right);
    };
    let Some(probe_sql) =
        narrowed_probe(build, statement, build_key, probe_key, source, estimates).await
    else {
        return (left, right);
    };
    let Some(n) = estimates.get(&probe_sql).await else {
        return (left, right);
    };
    let cost = STATEMENT + n.cost + wire(&n);
    tracing::debug!(
        source = %source.name,
        sql = %probe_sql,
        narrowed = cost,
        against = probe.cost,
        rows = n.rows,
        "Weighed an input narrowed by its join's keys."
    );
    if cost >= probe.cost {
        return (left, right);
    }
    let mut plan = statement.plan.clone();
    // The whole the split below was weighed against, taken instead of that split.
    if !std::ptr::eq(statement, probe)
        && let Some(node) = statement.remote()
    {
        let mut node = node.clone();
        node.spec.weighed = Some(format!(
            "cost {cost:.0} whole, narrowed by the join above, against {:.0} split",
            probe.cost
        ));
        plan = node.into_plan();
    }
    let narrowed = Choice {
        plan,
        cost,
        rows: n.rows,
        whole: None,
    };
    if right_builds {
        (narrowed, right)
    } else {
        (left, narrowed)
    }
}

/// The probe's statement with `key IN (…)` of as many made-up keys as the build side is
/// estimated to hold distinct values; `None` when the filter would not be a list.
async fn narrowed_probe(
    build: &Choice,
    probe: &Choice,
    build_key: &Expr,
    probe_key: &Expr,
    source: &RemoteSource,
    estimates: &Estimates,
) -> Option<String> {
    let probe_node = probe.remote()?;
    if !probe_node.spec.narrowable {
        return None;
    }
    let (Expr::Column(pk), Expr::Column(bk)) = (probe_key, build_key) else {
        return None;
    };
    let p = probe_node.schema.index_of_column(pk).ok()?;
    let class = *probe_node.spec.classes.get(p)?;
    let dialect = source.dialect.as_ref();
    let names = |n: usize| -> Vec<String> { (0..n).map(|i| format!("c{i}")).collect() };
    // The distinct keys the build side holds, as the source estimates them.
    let mut keys = build.rows;
    if let Some(b_node) = build.statement().and_then(Choice::remote)
        && let Ok(b) = b_node.schema.index_of_column(bk)
    {
        let cols: Vec<String> = names(b_node.spec.fetched.fields().len())
            .iter()
            .map(|n| dialect.quote(n))
            .collect();
        let distinct = format!(
            "SELECT DISTINCT {} FROM ({}) AS {}({})",
            dialect.quote(&format!("c{b}")),
            b_node.spec.sql,
            dialect.quote("sluice_rf"),
            cols.join(", ")
        );
        if let Some(d) = estimates.get(&distinct).await {
            keys = keys.min(d.rows);
        }
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "an estimate"
    )]
    let keys = keys.max(1.0).ceil() as usize;
    if keys > MAX_IN_LIST {
        return None;
    }
    let data_type = probe_node.spec.fetched_type(p)?;
    let list: Vec<String> = match (&data_type, class) {
        (DataType::Int16 | DataType::Int32 | DataType::Int64, ColumnClass::Exact) => {
            (1..=keys).map(|i| format!("-{i}")).collect()
        }
        (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, ColumnClass::Text) => (1
            ..=keys)
            .map(|i| format!("'sluice-estimate-{i}'"))
            .collect(),
        _ => return None,
    };
    let column = dialect.quote(&format!("c{}", probe_node.spec.fetched_index(p)?));
    Some(dialect.filtered(
        &probe_node.spec.sql,
        &names(probe_node.spec.fetched.fields().len()),
        &format!("{column} IN ({})", list.join(", ")),
    ))
}
