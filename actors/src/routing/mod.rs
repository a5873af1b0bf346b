//! Routing: which replica of a source a statement runs on, decided on the query path without a
//! mailbox round trip.
//!
//! The supervisor publishes a [`RoutingTable`] (an immutable snapshot behind an `ArcSwap`):
//! every logical source with its replicas, fallback and concurrency gate. Each replica's live
//! figures ([`ReplicaStats`]) are atomics its actor (active checks) and the statements that
//! run on it (passive signals) keep current; the router reads them when a statement starts,
//! picks by score with the power of two choices, and pins the statement to that replica for
//! its whole life ([`Acquired`]). When every replica of a source is open, the least bad one
//! past its cool-down still takes one trial statement at a time (the trickle) instead of a
//! blanket refusal.
//!
//! - [`stats`]: a replica's figures, score, and health/circuit state machine.
//! - [`gate`]: `max_concurrency` with a fair queue across keys.

pub mod gate;
pub mod stats;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use arc_swap::ArcSwap;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::Stream;
use futures::future::BoxFuture;
use sluice_planner::datafusion;
use sluice_planner::federation::dialect::SourceDialect;
use sluice_planner::federation::{
    ErrorClass, RemoteError, RemoteExecutor, RemoteTableDef, StatementContext,
};

use self::gate::{FairGate, GatePermit, GateRefusal};
use self::stats::{Circuit, ReplicaStats};
use crate::health::{HealthState, SourceHealth};
use crate::sources::{Connector, ReplicaProbe};

/// One replica of a logical source.
pub struct Replica {
    /// The logical source's catalog name.
    pub source: String,
    /// Position in the source's `replicas` list.
    pub index: usize,
    /// Where it lives, without credentials.
    pub display: String,
    /// Its executor (remote sources), which owns its pool.
    pub executor: Option<Arc<dyn RemoteExecutor>>,
    /// How its actor checks it.
    pub probe: Arc<dyn ReplicaProbe>,
    /// Live figures and health.
    pub stats: ReplicaStats,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("source", &self.source)
            .field("index", &self.index)
            .field("display", &self.display)
            .finish_non_exhaustive()
    }
}

/// A logical source as the router sees it.
pub struct SourceRoute {
    /// Catalog name.
    pub name: String,
    /// Its connector (catalog, kind, location).
    pub connector: Arc<dyn Connector>,
    /// Its replicas, in config order.
    pub replicas: Vec<Arc<Replica>>,
    /// A source with the same tables that serves when every replica is down.
    pub fallback: Option<String>,
    /// Its `max_concurrency`, if it has one.
    pub gate: Option<Arc<FairGate>>,
}

impl std::fmt::Debug for SourceRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceRoute")
            .field("name", &self.name)
            .field("replicas", &self.replicas)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

/// The most replicas one source may have (the router picks without allocating).
pub const MAX_REPLICAS: usize = 64;

/// What a statement starting now gets from one source.
enum Pick {
    /// A replica, normally or as the trickle's one trial.
    Replica(Lease),
    /// Nothing: every replica is open and none may take a trial now.
    None {
        retry_after: Duration,
        reason: String,
    },
}

impl SourceRoute {
    /// Picks a replica for a statement starting now, never one of `avoid` (replica indexes
    /// that already failed this statement).
    ///
    /// Closed replicas compete by the power of two choices: two at random, the lower score
    /// wins. With none closed, the least bad open replica past its cool-down takes the
    /// statement as its one trial; replicas without an executor (object stores: no passive
    /// signal to learn from) are left to their checks.
    fn pick(&self, avoid: &[usize]) -> Pick {
        let mut closed = [0usize; MAX_REPLICAS];
        let mut n = 0;
        for r in &self.replicas {
            if n < MAX_REPLICAS && !avoid.contains(&r.index) && r.stats.circuit() == Circuit::Closed
            {
                closed[n] = r.index;
                n += 1;
            }
        }
        let chosen = match n {
            0 => None,
            1 => Some(closed[0]),
            _ => {
                let a = fastrand::usize(..n);
                let mut b = fastrand::usize(..n - 1);
                if b >= a {
                    b += 1;
                }
                let (ra, rb) = (&self.replicas[closed[a]], &self.replicas[closed[b]]);
                Some(if ra.stats.score() <= rb.stats.score() {
                    closed[a]
                } else {
                    closed[b]
                })
            }
        };
        if let Some(i) = chosen {
            return Pick::Replica(Lease::new(Arc::clone(&self.replicas[i]), false));
        }
        // The trickle: the open replica whose cool-down ended first (least recently failed).
        let mut candidates: Vec<&Arc<Replica>> = self
            .replicas
            .iter()
            .filter(|r| !avoid.contains(&r.index) && r.executor.is_some())
            .collect();
        candidates.sort_by_key(|r| r.stats.open_remaining().unwrap_or_default());
        for r in candidates {
            if r.stats.try_trial() {
                return Pick::Replica(Lease::new(Arc::clone(r), true));
            }
        }
        let retry_after = self.retry_after();
        let reason = self
            .replicas
            .iter()
            .filter(|r| !avoid.contains(&r.index))
            .find_map(|r| r.stats.snapshot().last_error)
            .unwrap_or_else(|| "every replica failed this statement".to_owned());
        Pick::None {
            retry_after,
            reason,
        }
    }

    /// When a replica may take statements again: the shortest remaining cool-down, at least
    /// a second.
    pub fn retry_after(&self) -> Duration {
        self.replicas
            .iter()
            .filter_map(|r| r.stats.open_remaining())
            .min()
            .unwrap_or_default()
            .max(Duration::from_secs(1))
    }

    /// True when no replica's circuit is closed: nothing but a trial would reach it.
    pub fn all_down(&self) -> bool {
        self.replicas
            .iter()
            .all(|r| r.stats.circuit() != Circuit::Closed)
    }

    /// The source's health: its best replica's (a source serves while any replica does).
    pub fn health(&self) -> SourceHealth {
        let rank = |s: HealthState| match s {
            HealthState::Healthy => 0,
            HealthState::Degraded => 1,
            HealthState::Starting => 2,
            HealthState::Unavailable => 3,
        };
        let best = self
            .replicas
            .iter()
            .map(|r| r.stats.snapshot())
            .min_by_key(|s| rank(s.state));
        match best {
            Some(s) => SourceHealth {
                state: s.state,
                since: s.since,
                last_error: s.last_error,
                last_check: s.last_check,
                last_latency: s.last_check_latency,
                consecutive_failures: s.consecutive_failures,
            },
            None => SourceHealth::default(),
        }
    }
}

/// Every source, as of one moment of the registry.
#[derive(Debug, Default)]
pub struct RoutingTable {
    /// By catalog name.
    pub sources: BTreeMap<String, Arc<SourceRoute>>,
}

/// Why a statement cannot start on a source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No replica can serve now.
    #[error("source {source_name} is unavailable: {reason}")]
    Unavailable {
        /// Catalog name.
        source_name: String,
        /// The last failure (no credentials).
        reason: String,
        /// When a replica's cool-down ends.
        retry_after: Duration,
        /// The source's fallback, if it has one.
        fallback: Option<String>,
    },
    /// Its queue is full.
    #[error("source {source_name} has {queued} statements waiting, its limit; retry shortly")]
    QueueFull {
        /// Catalog name.
        source_name: String,
        /// Statements waiting.
        queued: usize,
        /// Estimated wait.
        retry_after: Duration,
    },
    /// Waited for a slot as long as allowed.
    #[error("source {source_name} had no free slot within its queue timeout")]
    QueueTimeout {
        /// Catalog name.
        source_name: String,
        /// Estimated wait.
        retry_after: Duration,
    },
}

/// Replicas a statement already failed on, by source, so a retry goes elsewhere.
pub type Avoid = BTreeMap<String, Vec<usize>>;

/// The executor of each remote source a statement reads, by name.
pub type Executors = BTreeMap<String, Arc<dyn RemoteExecutor>>;

/// What a statement holds from its sources for its whole life: its replicas (pinned), their
/// executors, and its concurrency slots.
#[derive(Default)]
pub struct Acquired {
    /// Executors by source name (remote sources only).
    pub executors: Executors,
    /// `(source, replica index)` of every source the statement reads.
    pub replicas: Vec<(String, usize)>,
    failed: Arc<Mutex<Vec<(String, usize)>>>,
    _permits: Vec<GatePermit>,
    _leases: Vec<Lease>,
}

impl std::fmt::Debug for Acquired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquired")
            .field("replicas", &self.replicas)
            .finish_non_exhaustive()
    }
}

impl Acquired {
    /// The replicas that failed this statement because they could not serve (unreachable,
    /// connection lost): a whole new attempt elsewhere may succeed.
    pub fn retryable_failures(&self) -> Vec<(String, usize)> {
        self.failed.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

/// The router: reads the published table; never blocks on an actor.
#[derive(Debug, Default)]
pub struct Router {
    table: ArcSwap<RoutingTable>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Publishes `route`, replacing a source of the same name.
    pub fn publish(&self, route: Arc<SourceRoute>) {
        self.table.rcu(|t| {
            let mut sources = t.sources.clone();
            sources.insert(route.name.clone(), Arc::clone(&route));
            RoutingTable { sources }
        });
    }

    /// Takes source `name` out of the table: statements starting from here do not find it;
    /// those running keep the replica they were leased. The route it had, if any.
    pub fn unpublish(&self, name: &str) -> Option<Arc<SourceRoute>> {
        let mut removed = None;
        self.table.rcu(|t| {
            let mut sources = t.sources.clone();
            removed = sources.remove(name);
            RoutingTable { sources }
        });
        removed
    }

    /// The current table.
    pub fn table(&self) -> Arc<RoutingTable> {
        self.table.load_full()
    }

    /// One source's route.
    pub fn route(&self, name: &str) -> Option<Arc<SourceRoute>> {
        self.table.load().sources.get(name).cloned()
    }

    /// Takes, for a statement starting now, a slot (in `key`'s fair turn) and a replica on
    /// each of `names`, avoiding replicas that already failed it.
    ///
    /// # Errors
    /// [`RouteError`] for the first source that cannot take it.
    pub async fn acquire(
        &self,
        names: &[String],
        key: &str,
        deadline: Option<Instant>,
        avoid: &Avoid,
    ) -> Result<Acquired, RouteError> {
        let table = self.table.load_full();
        let mut acquired = Acquired::default();
        for name in names {
            // Catalogs with no route (none today) are not gated.
            let Some(route) = table.sources.get(name) else {
                continue;
            };
            if let Some(gate) = &route.gate {
                let permit = gate.acquire(key, deadline).await.inspect_err(|r| {
                    let reason = match r {
                        GateRefusal::Full { .. } => "full",
                        GateRefusal::TimedOut { .. } => "timeout",
                    };
                    ::metrics::counter!(crate::metrics::SOURCE_QUEUE_REFUSALS_TOTAL, "source" => name.clone(), "reason" => reason)
                        .increment(1);
                });
                let permit = permit.map_err(|r| match r {
                    GateRefusal::Full { retry_after } => RouteError::QueueFull {
                        source_name: name.clone(),
                        queued: gate.load().1,
                        retry_after,
                    },
                    GateRefusal::TimedOut { retry_after } => RouteError::QueueTimeout {
                        source_name: name.clone(),
                        retry_after,
                    },
                })?;
                acquired._permits.push(permit);
            }
            let avoid = avoid.get(name).map_or(&[][..], Vec::as_slice);
            let lease = match route.pick(avoid) {
                Pick::Replica(lease) => lease,
                Pick::None {
                    retry_after,
                    reason,
                } => {
                    return Err(RouteError::Unavailable {
                        source_name: name.clone(),
                        reason,
                        retry_after,
                        fallback: route.fallback.clone(),
                    });
                }
            };
            let replica = Arc::clone(&lease.replica);
            acquired.replicas.push((name.clone(), replica.index));
            match &replica.executor {
                Some(inner) => {
                    let routed = RoutedExecutor {
                        inner: Arc::clone(inner),
                        replica: Arc::clone(&replica),
                        _lease: lease,
                        failed: Arc::clone(&acquired.failed),
                    };
                    acquired.executors.insert(name.clone(), Arc::new(routed));
                }
                None => acquired._leases.push(lease),
            }
        }
        Ok(acquired)
    }

    /// Picks without a gate or an executor wrapper: the decision alone (benchmarks).
    pub fn decide(&self, name: &str) -> Option<usize> {
        let route = self.route(name)?;
        match route.pick(&[]) {
            Pick::Replica(lease) => Some(lease.replica.index),
            Pick::None { .. } => None,
        }
    }
}

/// A statement's hold on a replica: counted in its in-flight figure until dropped.
struct Lease {
    replica: Arc<Replica>,
    trial: bool,
}

impl Lease {
    fn new(replica: Arc<Replica>, trial: bool) -> Self {
        replica.stats.start_statement();
        Self { replica, trial }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.replica.stats.end_statement();
        if self.trial {
            self.replica.stats.end_trial();
        }
    }
}

/// A replica's executor for one statement: runs on it, and tells its figures how each remote
/// statement went (the passive health signal).
struct RoutedExecutor {
    inner: Arc<dyn RemoteExecutor>,
    replica: Arc<Replica>,
    _lease: Lease,
    failed: Arc<Mutex<Vec<(String, usize)>>>,
}

impl std::fmt::Debug for RoutedExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedExecutor")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

/// Records a remote statement's outcome on its replica.
#[derive(Clone)]
struct Observer {
    replica: Arc<Replica>,
    failed: Arc<Mutex<Vec<(String, usize)>>>,
    started: Instant,
}

impl Observer {
    fn error(&self, e: &RemoteError) {
        match e.class {
            ErrorClass::Unavailable => {
                if let Some(state) = self
                    .replica
                    .stats
                    .record_statement_failure(e.message.clone())
                {
                    tracing::warn!(
                        source = %self.replica.source,
                        replica = self.replica.index,
                        state = state.as_str(),
                        error = %e.message,
                        "Replica health changed on a failed statement."
                    );
                }
                // The whole statement is planned and run again from scratch on a retry, so
                // rows this remote statement already handed on are discarded with it: any
                // failure of the replica qualifies, as long as the client has no byte yet
                // (which the caller decides).
                if let Ok(mut f) = self.failed.lock() {
                    f.push((self.replica.source.clone(), self.replica.index));
                }
            }
            // The statement's own fault or the deadline: the replica answered.
            ErrorClass::Upstream
            | ErrorClass::Data
            | ErrorClass::Timeout
            | ErrorClass::Cancelled => {}
        }
    }

    fn answered(&self) {
        let latency = self.started.elapsed();
        self.replica.stats.record_statement_ok(latency);
        ::metrics::histogram!(
            crate::metrics::REPLICA_LATENCY_SECONDS,
            "source" => self.replica.source.clone(),
            "replica" => self.replica.index.to_string()
        )
        .record(latency.as_secs_f64());
    }
}

impl RemoteExecutor for RoutedExecutor {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn compute_context(&self) -> &str {
        self.inner.compute_context()
    }

    fn dialect(&self) -> Arc<dyn SourceDialect> {
        self.inner.dialect()
    }

    fn execute(
        &self,
        sql: &str,
        schema: SchemaRef,
        context: &StatementContext,
    ) -> Result<SendableRecordBatchStream, RemoteError> {
        context.span.record("sluice.replica", self.replica.index);
        let observer = Observer {
            replica: Arc::clone(&self.replica),
            failed: Arc::clone(&self.failed),
            started: Instant::now(),
        };
        match self.inner.execute(sql, schema, context) {
            Ok(inner) => Ok(Box::pin(Observed {
                inner,
                observer,
                answered: false,
            })),
            Err(e) => {
                observer.error(&e);
                Err(e)
            }
        }
    }

    fn tables<'a>(
        &'a self,
        schemas: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<Vec<RemoteTableDef>, RemoteError>> {
        self.inner.tables(schemas)
    }
}

/// A remote statement's stream that reports its first answer (its latency) and its failures.
struct Observed {
    inner: SendableRecordBatchStream,
    observer: Observer,
    answered: bool,
}

impl Stream for Observed {
    type Item = Result<RecordBatch, DataFusionError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Err(e))) => {
                if let Some(r) = RemoteError::find(e) {
                    self.observer.error(r);
                }
                self.answered = true;
            }
            Poll::Ready(Some(Ok(_)) | None) if !self.answered => {
                self.answered = true;
                self.observer.answered();
            }
            _ => {}
        }
        polled
    }
}

impl RecordBatchStream for Observed {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests;
