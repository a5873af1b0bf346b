//! The query service: everything a door needs to run, explain, list, describe and replay a
//! statement for a caller, with no wire types in its signatures. Doors (`http/`, `mcp/`)
//! translate their wire format to these calls and the typed answers back; every rule enforced
//! here (admission, grants, limits, audit, cache, routing, failover) holds on every door.
//!
//! ```text
//!   door ──► authenticate ──► call (id + audit record) ──► run / explain / tables / ...
//!                                                             │
//!      admit (operation, draining, audit) ◄───────────────────┘
//!         │
//!         ▼
//!      result cache ── hit ──► encode the kept batches on the query runtime ──► Started
//!         │ miss
//!         ▼
//!      key slot ─► server slot ─► plan (fallback when a source is down) ─► route to replicas
//!                                                                            │
//!      Started ◄── producer on the query runtime (head held back) ◄──────────┘
//!                     ▲        │ a replica failed before the first piece
//!                     └────────┘ plan and route again, avoiding it (3 attempts)
//! ```
//!
//! # Layout
//! - [`QueryService`], [`Call`]: the service and one caller's request (its id and audit).
//! - `admission`: what every statement passes before it runs, in order.
//! - `run`, `hit`, `producer`, `encode`: running a statement and streaming its result.
//! - `plan`, `route`, `retry`: planning, fallback, replicas and failover decisions.
//! - `explain`, `catalog`, `recent`, `keys`: the other use cases.
//! - `registry`: the record of recent queries; `activity`: their second-by-second sums.
//!   `lifecycle`: phases, readiness, drain.

mod activity;
mod admission;
mod answer;
mod catalog;
mod encode;
mod explain;
mod hit;
mod keys;
mod lifecycle;
mod operations;
mod plan;
mod policies;
mod prepare;
mod producer;
mod recent;
mod registry;
mod retry;
mod route;
mod run;
mod source_admin;
mod source_set;
mod spooled;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use sluice_actors::SourceSupervisor;
use sluice_actors::sources::BuiltSource;
use sluice_actors::supervisor::RegisterSource;
use sluice_planner::{Planner, PlannerOptions};
use sluice_schemas::api::{Operation, QueryRequest};
use sluice_schemas::{AuthMode, Config, LimitsConfig};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use self::lifecycle::Lifecycle;
use tracing::{info, warn};

pub use answer::{CacheAnswer, RowCap, Started};
pub use encode::{Batches, Encode, MakeEncoder};
pub use producer::ResultStream;
pub use registry::new_query_id;
pub use spooled::StreamedOrSpooled;

use self::registry::QueryRegistry;
use crate::cache::ResultCache;
use crate::error::{ApiError, Result};
use crate::governance::{Client, Governance, Principal, QueryAuditor};

/// The protocol-neutral service every door calls.
pub struct QueryService {
    planner: Planner,
    supervisor: Addr<SourceSupervisor>,
    router: Arc<sluice_actors::Router>,
    /// The DataFusion runtime queries plan and run on.
    runtime: tokio::runtime::Handle,
    queries: QueryRegistry,
    governance: Arc<Governance>,
    /// Whether callers need a key (`auth.mode = "api_key"`).
    auth_required: bool,
    limits: LimitsConfig,
    drain_timeout: Duration,
    /// One permit per running query.
    slots: Arc<Semaphore>,
    lifecycle: Lifecycle,
    cache: Arc<ResultCache>,
    /// Cancelled when the server stops: ends doors' open streams and sessions.
    closing: CancellationToken,
    /// Protected Resource Metadata, with `[auth.oidc]`.
    protected_resource: Option<sluice_schemas::api::ProtectedResource>,
    /// Whether remote statements' spans carry their SQL (`[telemetry] statement_text`).
    trace_statements: bool,
    /// The running sources, and the path that changes them.
    source_set: source_set::SourceSet,
    /// The config file the server started from, and what it said then (for reloads).
    config_file: Option<(std::path::PathBuf, Config)>,
    /// Where big results are spooled (`[spool]`), checked at start.
    spool: Option<Arc<crate::spool::Spool>>,
}

impl std::fmt::Debug for QueryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryService")
            .field("phase", &self.lifecycle.phase())
            .finish_non_exhaustive()
    }
}

/// Why the service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A source's config cannot be used.
    #[error("source {name}: {source}")]
    Source {
        /// Source name.
        name: String,
        /// Cause.
        #[source]
        source: sluice_actors::SourceError,
    },
    /// The planner could not be built.
    #[error("planner: {0}")]
    Planner(#[from] sluice_planner::PlanError),
    /// The metadata store (keys, audit) could not be opened or written.
    #[error("{0}")]
    Metadata(#[from] crate::governance::store::StoreError),
    /// The spool location cannot be used.
    #[error("spool {location}: {reason}")]
    Spool {
        /// `[spool] location`.
        location: String,
        /// What failed (credentials redacted).
        reason: String,
    },
}

/// The sources a new service has built but not yet loaded ([`QueryService::load`]).
pub struct Unloaded(Vec<(sluice_schemas::SourceConfig, BuiltSource)>);

impl QueryService {
    /// Builds the planner, the source actors, governance and the cache that `config`
    /// describes, on `runtime` (the query runtime); must be called inside an actix System.
    /// Sources are built (a config error stops here) but not yet loaded; an empty key store
    /// gets one admin key, returned this once.
    ///
    /// # Errors
    /// Unusable sources, planner options or metadata store.
    ///
    /// `file`: the config file `config` came from, which `POST /v1/admin/reload` and `SIGHUP`
    /// read again, and what it said at start (before command-line overrides such as
    /// `--listen`, so a reload compares like with like).
    pub async fn build_from(
        config: &Config,
        file: Option<(std::path::PathBuf, Config)>,
        runtime: tokio::runtime::Handle,
    ) -> Result<(Arc<Self>, Unloaded, Option<String>), BuildError> {
        let planner = Planner::new(&PlannerOptions {
            memory_limit_bytes: usize::try_from(config.limits.memory_limit_bytes)
                .unwrap_or(usize::MAX),
            default_catalog: config.server.default_catalog.clone(),
            default_schema: config.server.default_schema.clone(),
            target_partitions: None,
        })?;
        let router = sluice_actors::Router::new();
        let supervisor = SourceSupervisor::new(Arc::clone(&router), runtime.clone()).start();
        // Connectors and catalogs first (no I/O): a config error stops the start here.
        let mut built = Vec::with_capacity(config.sources.len());
        for source in &config.sources {
            built.push((
                source.clone(),
                sluice_actors::sources::build(source, &planner).map_err(|e| {
                    BuildError::Source {
                        name: source.name().to_owned(),
                        source: e,
                    }
                })?,
            ));
        }
        let governance = Governance::start(config, &runtime).await?;
        let auth_required = config.auth.mode == AuthMode::ApiKey;
        // An empty store gets one admin key, printed once (the in-memory store of the
        // embedded default is empty on every start).
        let admin_key = if auth_required && governance.is_empty() {
            Some(governance.mint_first_admin().await?)
        } else {
            None
        };
        let protected_resource = match (&config.auth.oidc, &config.auth.resource) {
            (Some(_), Some(resource)) => Some(sluice_schemas::api::ProtectedResource {
                resource: resource.clone(),
                authorization_servers: governance.issuers(),
                scopes_supported: config.auth.scopes.clone(),
                bearer_methods_supported: vec!["header".to_owned()],
                resource_name: "Sluice".to_owned(),
            }),
            _ => None,
        };
        let closing = CancellationToken::new();
        let spool = match &config.spool {
            Some(c) => Some(open_spool(c, closing.child_token(), &runtime).await?),
            None => None,
        };
        let service = Arc::new(Self {
            spool,
            protected_resource,
            planner,
            supervisor,
            router,
            queries: QueryRegistry::default(),
            governance,
            auth_required,
            slots: Arc::new(Semaphore::new(
                config.limits.max_concurrent_queries as usize,
            )),
            limits: config.limits.clone(),
            trace_statements: config.telemetry.statement_text,
            drain_timeout: Duration::from_millis(config.server.drain_timeout_ms),
            lifecycle: Lifecycle::default(),
            closing,
            cache: Arc::new(ResultCache::new(&config.cache, &config.sources, &runtime)),
            runtime,
            source_set: source_set::SourceSet::new(config.metadata.registry_local_files),
            config_file: file,
        });
        Ok((service, Unloaded(built), admin_key))
    }

    /// Loads every source's tables for the first time and hands the sources to their actors
    /// (a source that cannot load is retried by its actor), then applies the source registry;
    /// the service serves from here.
    pub async fn load(&self, sources: Unloaded) {
        // No change through the API or a reload until the file's sources are in place.
        let mut held = self.source_set.hold().await;
        let loads = sources
            .0
            .into_iter()
            .map(|(c, b)| async { (first_load(&b, &self.runtime).await, c, b) });
        let mut started = Vec::new();
        for (loaded, config, b) in futures::future::join_all(loads).await {
            started.push((config, Arc::clone(&b.connector)));
            // Sent, not queued: the routes are published before the server says it is ready.
            if let Err(e) = self
                .supervisor
                .send(RegisterSource {
                    built: b,
                    loaded,
                    probes: Vec::new(),
                })
                .await
            {
                warn!(error = %e, "The source supervisor stopped; a source is not registered.");
            }
        }
        self.started_with(&mut held, started);
        drop(held);
        // The registry's sources, before the server says it is ready (a store that cannot
        // be read now is read again on the next tick).
        self.sync_registry(true).await;
        self.lifecycle.set(sluice_schemas::api::Phase::Serving);
    }

    /// Every running source's connector (to end their remote sessions at stop).
    pub fn source_connectors(&self) -> Vec<Arc<dyn sluice_actors::sources::Connector>> {
        self.source_set.connectors()
    }

    /// Stops the source actors.
    pub fn stop_sources(&self) {
        self.supervisor.do_send(sluice_actors::Shutdown);
    }

    /// The query runtime.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Server-wide limits.
    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    /// Cancelled when the server stops: doors end their open streams and sessions.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// The router's published table, for the doors' gauges.
    pub fn router(&self) -> &sluice_actors::Router {
        &self.router
    }

    /// Writes the audit records still queued to the store, within `within`; true when all
    /// are there.
    pub async fn flush_audit(&self, within: Duration) -> bool {
        let audit = Arc::clone(&self.governance.audit);
        matches!(
            self.runtime
                .spawn(async move { audit.flush(within).await })
                .await,
            Ok(true)
        )
    }

    /// Audit records not yet in the store.
    pub fn audit_pending(&self) -> u64 {
        self.governance.audit.pending()
    }

    /// Protected Resource Metadata (RFC 9728), when bearer tokens are accepted.
    pub fn protected_resource(&self) -> Option<&sluice_schemas::api::ProtectedResource> {
        self.protected_resource.as_ref()
    }

    /// Whether callers need a key (`auth.mode = "api_key"`).
    pub fn authenticates(&self) -> bool {
        self.auth_required
    }

    /// Who presents `secret` (everyone is an anonymous admin when authentication is off).
    ///
    /// # Errors
    /// `unauthenticated`; `metadata_unavailable` when the key store cannot be asked.
    pub async fn authenticate(&self, secret: Option<&str>, client: &Client) -> Result<Principal> {
        if !self.auth_required {
            return Ok(Principal::Anonymous);
        }
        self.governance.authenticate(secret, client).await
    }

    /// Takes one request from the caller's rate-limit bucket.
    ///
    /// # Errors
    /// `rate_limited`, with the wait.
    pub fn charge(&self, principal: &Principal) -> Result<()> {
        match principal {
            Principal::Key(k) => self.governance.limiter.check_rate(&k.record),
            Principal::Anonymous => Ok(()),
        }
    }

    /// Opens the record of one query or explain request by `principal` under `query_id`.
    pub fn call(
        &self,
        principal: &Principal,
        client: &Client,
        query_id: String,
        operation: Operation,
    ) -> Call {
        let auditor = self
            .governance
            .query_auditor(principal, client, &query_id, operation);
        // A child of the door's span (the HTTP request, the MCP tool call), which continued
        // the client's trace; in the `sluice::span` target, which every log filter lets
        // through, so each log line of the query names it.
        let span = tracing::info_span!(
            target: "sluice::span",
            "query",
            otel.name = %format_args!("{} {}", operation.as_str(), client.door.as_str()),
            query_id = %query_id,
            trace_id = tracing::field::Empty,
            sluice.door = client.door.as_str(),
            sluice.operation = operation.as_str(),
            sluice.key_id = principal.key_id().unwrap_or("anonymous"),
            otel.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        let trace_id = crate::telemetry::propagation::trace_id(&span);
        if let Some(id) = &trace_id {
            span.record("trace_id", id.as_str());
        }
        auditor.set_trace_id(trace_id);
        let traceparent = crate::telemetry::propagation::traceparent(&span);
        let trace = sluice_planner::QueryTrace {
            hooks: traceparent
                .is_some()
                .then_some(crate::telemetry::propagation::HOOKS),
            traceparent,
            span,
            statement_text: self.trace_statements,
        };
        Call {
            principal: principal.clone(),
            query_id,
            door: client.door,
            auditor,
            activity: Arc::clone(self.queries.activity()),
            started: std::time::Instant::now(),
            trace,
        }
    }

    /// The row filters and column masks that apply to `principal`.
    fn policies(&self, principal: &Principal) -> Arc<sluice_planner::PolicySet> {
        self.governance.policies.resolve(principal)
    }

    /// The planner `principal` sees: its grants' view with its policies applied.
    fn planner_for(&self, principal: &Principal) -> sluice_planner::Planner {
        principal.planner(
            &self.planner,
            &self.policies(principal),
            &self.governance.anonymous_views,
        )
    }

    /// The planner `principal` sees, with a session's catalog and schema for bare names.
    fn view(&self, principal: &Principal, request: &QueryRequest) -> sluice_planner::Planner {
        self.view_with(principal, request, &self.policies(principal))
    }

    /// [`Self::view`] with `policies` resolved already (the ones a cache key was made with).
    fn view_with(
        &self,
        principal: &Principal,
        request: &QueryRequest,
        policies: &Arc<sluice_planner::PolicySet>,
    ) -> sluice_planner::Planner {
        let planner = principal.planner(&self.planner, policies, &self.governance.anonymous_views);
        match &request.defaults {
            Some(d) => planner.with_defaults(&d.catalog, &d.schema),
            None => planner,
        }
    }

    /// The timeout a request gets: its own, capped by the server's.
    fn timeout(&self, asked_ms: Option<u64>) -> Duration {
        let max = self.limits.query_timeout_ms;
        Duration::from_millis(asked_ms.unwrap_or(max).clamp(1, max))
    }
}

/// One query or explain request: who asks, under which id, and its audit record (completed
/// exactly once: by the query's end, a refusal, or, dropped unfinished, as cancelled).
pub struct Call {
    /// Who asks.
    pub principal: Principal,
    /// The query's id.
    pub query_id: String,
    /// The door it came through.
    pub door: crate::governance::Door,
    auditor: Arc<QueryAuditor>,
    /// Where a refusal is counted (a query that ran counts itself).
    activity: Arc<activity::Activity>,
    started: std::time::Instant,
    /// The query's span, what its remote statements tell their sources, and whether their
    /// spans carry their SQL.
    trace: sluice_planner::QueryTrace,
}

impl Call {
    /// Runs `work` for this call; a refusal is recorded on the audit record (a query that ran
    /// records itself when it ends, and then this is a no-op).
    ///
    /// # Errors
    /// `work`'s, with this call's query id.
    pub async fn record<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        tracing::Instrument::instrument(work, self.trace.span.clone())
            .await
            .map_err(|e| self.refuse(e))
    }

    /// The statement, for the record of a call refused before it ran.
    pub fn note_sql(&self, sql: &str) {
        self.auditor.set_sql(sql);
    }

    /// Records `e` as this call's answer (a refusal before anything ran: on the audit record
    /// and in the server's activity) and returns it with the call's query id.
    pub fn refuse(&self, e: ApiError) -> ApiError {
        let e = if e.query_id.is_none() {
            e.with_query(&self.query_id)
        } else {
            e
        };
        self.trace.span.record("otel.status_code", "ERROR");
        self.trace.span.record("error.type", e.code.as_str());
        if self.auditor.complete(Some(e.code), 0, 0) {
            self.activity.record(&activity::Ended {
                elapsed: self.started.elapsed(),
                error: Some(e.code.as_str()),
                cache_hit: None,
                bytes_sent: 0,
                pulled: Vec::new(),
            });
        }
        e
    }
}

/// Opens the spool and proves it works (write, sign, read back, delete) on the query runtime,
/// which then owns its connections; its sweeper starts with it.
async fn open_spool(
    config: &sluice_schemas::SpoolConfig,
    closing: CancellationToken,
    runtime: &tokio::runtime::Handle,
) -> Result<Arc<crate::spool::Spool>, BuildError> {
    let failed = |reason: String| BuildError::Spool {
        location: config.location.clone(),
        reason,
    };
    let spool = Arc::new(crate::spool::Spool::open(config, closing).map_err(failed)?);
    let checking = Arc::clone(&spool);
    runtime
        .spawn(async move { checking.check().await })
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(failed)?;
    spool.spawn_sweeper(runtime);
    Ok(spool)
}

/// Loads a source's tables for the first time; on failure the actor keeps retrying.
async fn first_load(source: &BuiltSource, runtime: &tokio::runtime::Handle) -> bool {
    let name = &source.name;
    let connector = Arc::clone(&source.connector);
    let start = std::time::Instant::now();
    // Listing, footer reads and catalog queries run on the query runtime, which owns the
    // sources' connections.
    let loaded = runtime
        .spawn(async move { connector.refresh().await })
        .await;
    match loaded {
        Ok(Ok(tables)) => {
            info!(source = %name, tables = tables.unwrap_or(0), elapsed_ms = start.elapsed().as_millis(), "Source registered.");
            true
        }
        Ok(Err(e)) => {
            let redacted = sluice_actors::sources::object_store::redact(&e.to_string());
            warn!(source = %name, error = %redacted, "Source tables could not be loaded; retrying on each health check.");
            false
        }
        Err(e) => {
            warn!(source = %name, error = %e, "Source registration task failed.");
            false
        }
    }
}
