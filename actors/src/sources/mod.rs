//! Connectors: what each kind of source needs to be reached and checked, and the one place
//! source kinds are registered ([`build`]).
//!
//! A `Connector` is owned by its [`crate::SourceActor`]; the actor calls
//! [`Connector::health_check`] on a timer. Scan sources (Parquet on object stores) hand their
//! store to the planner, which reads through it directly; remote sources (PostgreSQL) hand the
//! planner a [`RemoteExecutor`] per statement. Data never goes through an actor.
//!
//! Adding a kind: a module of its own with a `build` function, its config in
//! `sluice-schemas`, and one arm in [`build`].

pub mod metered;
pub mod object_store;
pub mod postgres;
pub mod snowflake;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sluice_planner::federation::RemoteExecutor;
use sluice_planner::{CatalogStatus, Planner};
use sluice_schemas::SourceConfig;

use crate::error::Result;

/// One configured source's connection handles.
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The config `kind` (`parquet`, `postgres`, `snowflake`).
    fn kind(&self) -> &'static str;

    /// Where the source lives, safe to show: no credentials, no query string.
    fn display_location(&self) -> String;

    /// A cheap probe (a list, a HEAD, `SELECT 1`).
    ///
    /// # Errors
    /// The reason the source cannot serve now, without credentials in the text.
    ///
    /// # Cancellation
    /// Dropping the future abandons the probe; the caller bounds it with a timeout.
    fn health_check(&self) -> BoxFuture<'_, Result<()>>;

    /// Reloads the source's tables (new files, new tables, changed schemas); returns how
    /// many tables it now has, or `None` for a source with no catalog to refresh.
    ///
    /// # Errors
    /// Why the tables could not be loaded (without credentials); the previous tables stay.
    fn refresh(&self) -> BoxFuture<'_, Result<Option<usize>>>;

    /// The state of the source's catalog, if it has one.
    fn catalog_status(&self) -> Option<CatalogStatus>;

    /// Load the source is under that makes it Degraded though its probe passes (a saturated
    /// pool), read after each passing check. It may reset what it counts.
    fn pressure(&self) -> Option<String> {
        None
    }

    /// The executor of a source with one replica (remote sources only).
    fn executor(&self) -> Option<Arc<dyn RemoteExecutor>> {
        None
    }

    /// The replicas of a source with several, each with its own executor and probe; `None`:
    /// the connector is its only replica (see [`replicas_of`]).
    fn replica_handles(&self) -> Option<Vec<ReplicaHandle>> {
        None
    }

    /// Ends what the source keeps open at the far end (Snowflake sessions) when the server
    /// stops.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Lets go of idle connections now (a source replaced or removed while serving: its
    /// running statements keep theirs, nothing else will ask for more).
    fn release_idle(&self) {}
}

/// How a replica's actor checks it.
pub trait ReplicaProbe: Send + Sync {
    /// A cheap probe of this replica alone.
    ///
    /// # Errors
    /// Why it cannot serve now (no credentials in the text).
    fn health_check(&self) -> BoxFuture<'_, Result<()>>;

    /// Load that makes the replica Degraded though its probe passes (a saturated pool).
    fn pressure(&self) -> Option<String> {
        None
    }
}

/// What one check of a replica found.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Passed, or why not (no credentials in the text).
    pub outcome: std::result::Result<(), String>,
    /// Load that makes it Degraded though it passed (read after a passing check only: the
    /// pool's counters reset when read).
    pub pressure: Option<String>,
    /// How long the check took.
    pub latency: Duration,
}

/// One check of `probe`, bounded by `timeout`: what a replica's actor does on its timer, and
/// what a source added while serving goes through before it is admitted.
pub async fn check(probe: &dyn ReplicaProbe, timeout: Duration) -> Checked {
    let start = std::time::Instant::now();
    let outcome = match tokio::time::timeout(timeout, probe.health_check()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(crate::error::SourceError::Timeout(timeout).to_string()),
    };
    let pressure = outcome.is_ok().then(|| probe.pressure()).flatten();
    Checked {
        outcome,
        pressure,
        latency: start.elapsed(),
    }
}

/// One replica of a source: where it is, its executor and its probe.
pub struct ReplicaHandle {
    /// Location without credentials.
    pub display: String,
    /// Its executor (remote sources).
    pub executor: Option<Arc<dyn RemoteExecutor>>,
    /// Its probe.
    pub probe: Arc<dyn ReplicaProbe>,
}

/// A single-replica source's connector as its replica's probe.
struct WholeSource(Arc<dyn Connector>);

impl ReplicaProbe for WholeSource {
    fn health_check(&self) -> BoxFuture<'_, Result<()>> {
        self.0.health_check()
    }

    fn pressure(&self) -> Option<String> {
        self.0.pressure()
    }
}

/// The replicas of `connector`: its own list, or the connector itself as the one replica.
pub fn replicas_of(connector: &Arc<dyn Connector>) -> Vec<ReplicaHandle> {
    connector.replica_handles().unwrap_or_else(|| {
        vec![ReplicaHandle {
            display: connector.display_location(),
            executor: connector.executor(),
            probe: Arc::new(WholeSource(Arc::clone(connector))),
        }]
    })
}

/// Reloads a remote source's catalog through `executor`: [`Connector::refresh`] for sources
/// with an executor.
pub(crate) async fn refresh_remote(
    catalog: Option<&Arc<sluice_planner::federation::RemoteCatalog>>,
    executor: &dyn RemoteExecutor,
) -> Result<Option<usize>> {
    let Some(catalog) = catalog else {
        return Ok(None);
    };
    let summary = catalog.refresh_with(executor).await.map_err(|e| {
        crate::error::SourceError::Catalog(sluice_planner::redact::redact(&e.to_string()))
    })?;
    Ok(Some(summary.tables))
}

/// A source built from its config, ready for its actor: catalog registered with the planner,
/// nothing read yet.
pub struct BuiltSource {
    /// Catalog name.
    pub name: String,
    /// Its connector.
    pub connector: Arc<dyn Connector>,
    /// `health_check_interval_ms`.
    pub health_interval: Duration,
    /// `refresh_interval_ms`; `None` for on demand only.
    pub refresh_every: Option<Duration>,
    /// A source with the same tables, for when every replica is down.
    pub fallback: Option<String>,
    /// `max_concurrency`, `max_queued` and `queue_timeout_ms`, for sources with a limit.
    pub concurrency: Option<Concurrency>,
}

/// A source's statement slots and queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    /// Statements running at once.
    pub max: u32,
    /// Statements waiting at most.
    pub max_queued: u32,
    /// How long one waits at most.
    pub queue_timeout: Duration,
}

impl BuiltSource {
    /// `timing` is the config's `(health_check_interval_ms, refresh_interval_ms)`, a refresh
    /// interval of 0 meaning on demand only.
    pub fn new(
        name: String,
        connector: Arc<dyn Connector>,
        (health_ms, refresh_ms): (u64, u64),
    ) -> Self {
        Self {
            name,
            connector,
            health_interval: Duration::from_millis(health_ms),
            refresh_every: (refresh_ms > 0).then(|| Duration::from_millis(refresh_ms)),
            fallback: None,
            concurrency: None,
        }
    }

    /// How long one check of its replicas may take: [`crate::source_actor::HEALTH_TIMEOUT`],
    /// or five health-check intervals if that is shorter.
    pub fn check_timeout(&self) -> Duration {
        crate::source_actor::HEALTH_TIMEOUT.min(self.health_interval * 5)
    }

    /// Sets the fallback and the concurrency limit.
    pub fn with_routing(
        mut self,
        fallback: Option<String>,
        concurrency: Option<Concurrency>,
    ) -> Self {
        self.fallback = fallback;
        self.concurrency = concurrency;
        self
    }
}

/// Builds a source of any kind and registers its catalog with `planner`, without I/O.
///
/// # Errors
/// [`SourceError`](crate::error::SourceError) for a config that cannot be used, or a kind this version lacks.
pub fn build(config: &SourceConfig, planner: &Planner) -> Result<BuiltSource> {
    match config {
        SourceConfig::Parquet(p) => object_store::build(p, planner),
        SourceConfig::Postgres(p) => postgres::build(p, planner),
        SourceConfig::Snowflake(s) => snowflake::build(s, planner),
    }
}

/// Checks what [`build`] would refuse, without registering anything or connecting: URLs,
/// options, TLS roots, credentials.
///
/// # Errors
/// Why the source cannot be built.
pub fn validate(config: &SourceConfig) -> Result<()> {
    match config {
        SourceConfig::Parquet(p) => {
            object_store::ObjectStoreConnector::new(&p.name, &p.location, &p.options).map(drop)
        }
        SourceConfig::Postgres(p) => postgres::PostgresConnector::new(p).map(drop),
        SourceConfig::Snowflake(s) => snowflake::SnowflakeConnector::new(s).map(drop),
    }
}
