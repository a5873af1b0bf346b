//! [`PgExecutor`]: PostgreSQL behind the planner's [`RemoteExecutor`] seam, one per replica.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use sluice_planner::datafusion;
use sluice_planner::federation::dialect::postgres::PostgresDialect;
use sluice_planner::federation::{
    ErrorClass, Estimate, RemoteError, RemoteExecutor, RemoteTableDef, SourceDialect,
    StatementContext,
};
use sluice_planner::redact::with_causes;

use super::catalog::{DISCOVER_TIMEOUT, discover};

/// How long PostgreSQL may take to plan a statement for an estimate.
const EXPLAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Added to a hash aggregate's own cost per doubling of the partitions PostgreSQL plans to
/// spill it into (`Planned Partitions`), as a share of that cost. PostgreSQL charges a spill
/// as sequential I/O; on TPC-H SF 1 at the default `work_mem`, the aggregate of Q20 (planned
/// into 32 partitions) took about 0.45 s more than its estimate said, Q13's (4 partitions)
/// about what it said. 0.1 per doubling keeps both choices right (any share from 0.04 to 0.4
/// does); Sluice's own aggregates do not spill at these sizes.
const SPILL_SHARE: f64 = 0.1;

/// Added to a hash join per row of its two inputs when its hash table is larger than
/// [`HASH_CACHED_BYTES`]. PostgreSQL prices a probe at a few thousandths of a page read
/// whatever the table's size; with the tables in memory, what a join adds to its two scans
/// was measured (TPC-H SF 1, `EXPLAIN (ANALYZE, TIMING OFF)`, `benches/RESULTS.md`) at 53 ns a
/// row for a 0.6 MB table (10,000 suppliers), 78 ns for 1.7 MB (30,000 customers) and 242 ns
/// for 8.4 MB (150,000 customers): 69 µs for each unit PostgreSQL prices that last join at,
/// where its scans take 2–5 µs a unit; about 0.05 units a row more than it is priced. Below
/// the threshold the join is left as PostgreSQL prices it (a surcharge there sent TPC-H Q17's
/// join of `lineitem` with about 200 parts to Sluice as well, 13–27% slower).
const HASH_JOIN_ROW: f64 = 0.05;
/// A hash table entry's bytes beyond its row's width (PostgreSQL's tuple header and bucket).
const HASH_ENTRY_BYTES: f64 = 48.0;
/// A hash table up to this size is taken to be priced right (it stays in the caches).
const HASH_CACHED_BYTES: f64 = 4.0 * 1024.0 * 1024.0;

/// The top plan node's rows and width from `EXPLAIN (FORMAT JSON)`'s text, and its total cost
/// with the [`surcharge`]s added.
fn parse_explain(text: &str) -> Option<Estimate> {
    let doc: serde_json::Value = serde_json::from_str(text).ok()?;
    let plan = doc.get(0)?.get("Plan")?;
    Some(Estimate {
        rows: number(plan, "Plan Rows")?,
        width: number(plan, "Plan Width")?,
        cost: number(plan, "Total Cost")? + surcharge(plan, 1.0),
    })
}

/// A number of a plan node's.
fn number(plan: &serde_json::Value, key: &str) -> Option<f64> {
    plan.get(key).and_then(serde_json::Value::as_f64)
}

/// Whether a plan node has `key` set to `value`.
fn has(plan: &serde_json::Value, key: &str, value: impl Into<serde_json::Value>) -> bool {
    plan.get(key) == Some(&value.into())
}

/// What PostgreSQL's cost leaves out under `plan`, run by `processes` processes (below a
/// `Gather`, a node's rows are each process's): [`SPILL_SHARE`] of the own cost of each hash
/// aggregate planned to spill, and [`HASH_JOIN_ROW`] per input row of each hash join whose
/// table is larger than [`HASH_CACHED_BYTES`], the rows of all processes counted (the work, not
/// the time it takes on as many cores: on a small machine the cores are shared with Sluice).
fn surcharge(plan: &serde_json::Value, processes: f64) -> f64 {
    let children = plan
        .get("Plans")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // Below a `Gather`, PostgreSQL's parallel divisor: the workers and the leader's share.
    let below_processes =
        number(plan, "Workers Planned").map_or(processes, |w| w + (1.0 - 0.3 * w).max(0.0));
    let below: f64 = children.iter().map(|c| surcharge(c, below_processes)).sum();
    let join = if has(plan, "Node Type", "Hash Join") {
        hash_join(children, processes)
    } else {
        0.0
    };
    let partitions = number(plan, "Planned Partitions").unwrap_or(0.0);
    if partitions <= 1.0 {
        return below + join;
    }
    let own = number(plan, "Total Cost").unwrap_or(0.0)
        - children
            .iter()
            .filter_map(|c| number(c, "Total Cost"))
            .sum::<f64>();
    below + join + own.max(0.0) * SPILL_SHARE * partitions.log2()
}

/// [`HASH_JOIN_ROW`] per row of a hash join's two inputs (`children`), all `processes`
/// counted, when its table is larger than [`HASH_CACHED_BYTES`]; else nothing.
fn hash_join(children: &[serde_json::Value], processes: f64) -> f64 {
    // A parallel hash is one table the processes share, each having built a part of it; any
    // other is built whole by each process.
    let table_bytes: f64 = children
        .iter()
        .filter(|c| has(c, "Node Type", "Hash"))
        .map(|c| {
            let shared = if has(c, "Parallel Aware", true) {
                processes
            } else {
                1.0
            };
            number(c, "Plan Rows").unwrap_or(0.0)
                * (number(c, "Plan Width").unwrap_or(0.0) + HASH_ENTRY_BYTES)
                * shared
        })
        .sum();
    if table_bytes <= HASH_CACHED_BYTES {
        return 0.0;
    }
    let rows: f64 = children
        .iter()
        .filter(|c| {
            has(c, "Parent Relationship", "Outer") || has(c, "Parent Relationship", "Inner")
        })
        .filter_map(|c| number(c, "Plan Rows"))
        .sum();
    HASH_JOIN_ROW * rows * processes
}

use super::stream::{DEFAULT_STATEMENT_TIMEOUT, Statement};

/// Sends a cancel request for a running statement (over TLS when the source uses it).
pub type Canceller = Arc<
    dyn Fn(tokio_postgres::CancelToken) -> BoxFuture<'static, Result<(), tokio_postgres::Error>>
        + Send
        + Sync,
>;

/// How statements reach one replica: its pool, and how to cancel a statement on it.
#[derive(Clone)]
pub struct PgRemote {
    /// Connections.
    pub pool: Pool,
    /// Cancel requests.
    pub cancel: Canceller,
    /// Statements that gave up waiting for a free connection; the connector reads (and
    /// resets) it on each health check to report a saturated pool.
    pub pool_timeouts: Arc<AtomicU64>,
    /// Cancel requests sent and not yet answered; a stopping server waits for them.
    pub cancels: Arc<tokio::sync::watch::Sender<usize>>,
}

impl std::fmt::Debug for PgRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRemote")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// Runs a source's statements on one replica.
#[derive(Debug)]
pub struct PgExecutor {
    source: String,
    context: String,
    remote: PgRemote,
    dialect: Arc<dyn SourceDialect>,
    /// `host:port` of the replica, for traces' `server.address`.
    address: String,
}

impl PgExecutor {
    /// An executor of source `source` on the replica reached through `remote`; `context`
    /// names the database and login (no password).
    pub fn new(source: &str, context: String, remote: PgRemote) -> Self {
        Self {
            source: source.to_owned(),
            context,
            remote,
            dialect: PostgresDialect::shared(),
            address: String::new(),
        }
    }

    /// The same, naming the replica's first host and port in traces (`server.address`).
    #[must_use]
    pub fn with_address(mut self, config: &tokio_postgres::Config) -> Self {
        let host = config.get_hosts().first().map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        });
        let port = config.get_ports().first().copied().unwrap_or(5432);
        self.address = host.map(|h| format!("{h}:{port}")).unwrap_or_default();
        self
    }

    /// The replica's pool and counters.
    pub fn remote(&self) -> &PgRemote {
        &self.remote
    }

    /// PostgreSQL's estimate for `sql`. A statement PostgreSQL refuses is `Upstream`; no
    /// connection, `Unavailable`.
    async fn explain(&self, sql: &str) -> Result<Estimate, RemoteError> {
        let unavailable = |e: &(dyn std::error::Error + 'static)| {
            RemoteError::new(&self.source, ErrorClass::Unavailable, with_causes(e))
        };
        let refused = |e: tokio_postgres::Error| {
            let class = if e.as_db_error().is_some() {
                ErrorClass::Upstream
            } else {
                ErrorClass::Unavailable
            };
            RemoteError::new(&self.source, class, with_causes(&e))
        };
        let mut client = self.remote.pool.get().await.map_err(|e| unavailable(&e))?;
        let tx = bounded_read_only(&mut client, EXPLAIN_TIMEOUT)
            .await
            .map_err(refused)?;
        let messages = tx
            .simple_query(&format!("EXPLAIN (FORMAT JSON) {sql}"))
            .await
            .map_err(refused)?;
        tx.commit().await.map_err(refused)?;
        messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0),
                _ => None,
            })
            .and_then(parse_explain)
            .ok_or_else(|| {
                RemoteError::new(
                    &self.source,
                    ErrorClass::Upstream,
                    "EXPLAIN answered no plan Sluice can read".to_owned(),
                )
            })
    }

    async fn discover(&self, schemas: Option<&[String]>) -> Result<Vec<RemoteTableDef>, String> {
        let failed = |e: &(dyn std::error::Error + 'static)| with_causes(e);
        let mut client = self.remote.pool.get().await.map_err(|e| failed(&e))?;
        let tx = bounded_read_only(&mut client, DISCOVER_TIMEOUT)
            .await
            .map_err(|e| failed(&e))?;
        let tables = discover(&tx, schemas).await.map_err(|e| failed(&e))?;
        tx.commit().await.map_err(|e| failed(&e))?;
        Ok(tables)
    }
}

impl RemoteExecutor for PgExecutor {
    fn name(&self) -> &str {
        &self.source
    }

    fn compute_context(&self) -> &str {
        &self.context
    }

    fn dialect(&self) -> Arc<dyn SourceDialect> {
        Arc::clone(&self.dialect)
    }

    fn execute(
        &self,
        sql: &str,
        schema: SchemaRef,
        context: &StatementContext,
    ) -> Result<SendableRecordBatchStream, RemoteError> {
        context.span.record("db.system", "postgresql");
        if !self.address.is_empty() {
            context.span.record("server.address", self.address.as_str());
        }
        let timeout = context.deadline.map_or(DEFAULT_STATEMENT_TIMEOUT, |d| {
            d.saturating_duration_since(Instant::now())
        });
        let statement = Statement::new(
            self.source.clone(),
            sql.to_owned(),
            Arc::clone(&schema),
            self.remote.clone(),
            context.query_id.clone(),
            timeout,
            Arc::clone(&context.pulled),
        )
        .with_traceparent(context.traceparent.clone());
        let stream = futures::stream::try_unfold(statement, |mut s| async move {
            let batch = s.next_batch().await?;
            Ok(batch.map(|b| (b, s)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    /// `EXPLAIN (FORMAT JSON)` in a read-only transaction: the top plan node's rows, width
    /// and total cost, with what PostgreSQL's cost leaves out added ([`surcharge`]).
    fn estimate<'a>(
        &'a self,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<Option<Estimate>, RemoteError>> {
        Box::pin(async move { self.explain(sql).await.map(Some) })
    }

    fn tables<'a>(
        &'a self,
        schemas: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<Vec<RemoteTableDef>, RemoteError>> {
        Box::pin(async move {
            self.discover(schemas)
                .await
                .map_err(|e| RemoteError::new(&self.source, ErrorClass::Unavailable, e))
        })
    }
}

/// A read-only transaction whose statements stop after `timeout`, like every statement
/// Sluice sends.
async fn bounded_read_only(
    client: &mut deadpool_postgres::Object,
    timeout: Duration,
) -> Result<deadpool_postgres::Transaction<'_>, tokio_postgres::Error> {
    let tx = client.build_transaction().read_only(true).start().await?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        timeout.as_millis()
    ))
    .await?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explain_gives_its_top_nodes_rows_width_and_cost() {
        let text = r#"[{"Plan": {"Node Type": "Aggregate", "Startup Cost": 1.5,
            "Total Cost": 555113.29, "Plan Rows": 1, "Plan Width": 32, "Plans": []}}]"#;
        assert_eq!(
            parse_explain(text),
            Some(Estimate {
                rows: 1.0,
                width: 32.0,
                cost: 555_113.29
            })
        );
        // Q20's aggregate: 87,009 of its own, planned into 32 partitions.
        let text = r#"[{"Plan": {"Node Type": "Aggregate", "Total Cost": 284402.0,
            "Plan Rows": 487742, "Plan Width": 48, "Planned Partitions": 32,
            "Plans": [{"Node Type": "Seq Scan", "Total Cost": 197393.0, "Plan Rows": 925653,
                       "Plan Width": 21}]}}]"#;
        let e = parse_explain(text).unwrap();
        assert!(
            (e.cost - (284_402.0 + 87_009.0 * 0.5)).abs() < 0.01,
            "{e:?}"
        );
        // Q13's join alone: 150,000 customers hashed (8.4 MB), 1,484,848 orders probing it.
        let join = |customers: u32, parallel: bool| {
            format!(
                r#"{{"Node Type": "Hash Join", "Parallel Aware": {parallel},
                "Total Cost": 56454.0, "Plan Rows": 1484848, "Plan Width": 16, "Plans": [
                  {{"Node Type": "Seq Scan", "Parent Relationship": "Outer",
                    "Parallel Aware": {parallel}, "Total Cost": 45427.0,
                    "Plan Rows": 1484848, "Plan Width": 16}},
                  {{"Node Type": "Hash", "Parent Relationship": "Inner",
                    "Parallel Aware": {parallel}, "Total Cost": 5254.0,
                    "Plan Rows": {customers}, "Plan Width": 8}},
                  {{"Node Type": "Result", "Parent Relationship": "InitPlan",
                    "Total Cost": 0.01, "Plan Rows": 1000, "Plan Width": 4}}]}}"#
            )
        };
        let top = |plan: String| format!(r#"[{{"Plan": {plan}}}]"#);
        let gather = |workers: u32, plan: String| {
            format!(
                r#"{{"Node Type": "Gather", "Workers Planned": {workers},
                "Total Cost": 60000.0, "Plan Rows": 3563635, "Plan Width": 16,
                "Plans": [{plan}]}}"#
            )
        };
        let cost = |text: String| parse_explain(&text).map(|e| e.cost).unwrap_or(f64::NAN);
        let near = |got: f64, want: f64| assert!((got - want).abs() < 0.01, "{got} != {want}");
        // The inputs' rows count, an InitPlan's do not.
        near(
            cost(top(join(150_000, false))),
            56_454.0 + 0.05 * (1_484_848.0 + 150_000.0),
        );
        // 40,000 customers (2.2 MB) stay as PostgreSQL prices them.
        near(cost(top(join(40_000, false))), 56_454.0);
        // Below a Gather of two workers rows are each of 2.4 processes': the same 40,000 are
        // a 5.4 MB table when it is one parallel hash, and every row counts 2.4 times ...
        near(
            cost(top(gather(2, join(40_000, true)))),
            60_000.0 + 0.05 * 2.4 * (1_484_848.0 + 40_000.0),
        );
        // ... but 2.2 MB when each process builds its own.
        near(cost(top(gather(2, join(40_000, false)))), 60_000.0);
        // Four workers: the leader adds nothing (4 processes, not 4 - 0.2).
        near(
            cost(top(gather(4, join(40_000, true)))),
            60_000.0 + 0.05 * 4.0 * (1_484_848.0 + 40_000.0),
        );
        assert_eq!(parse_explain("[]"), None);
        assert_eq!(parse_explain(r#"[{"Plan": {"Total Cost": 1}}]"#), None);
        assert_eq!(parse_explain("not json"), None);
    }
}
