//! [`Application`]: builds sources, actors, planner and the HTTP server from a config.
//!
//! Must be called inside an actix `System`; the DataFusion runtime is passed in, built by the
//! caller beside the System (not under it), so planning and execution never run on actix's
//! single-threaded workers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_web::{App, HttpServer, web};
use sluice_actors::SourceSupervisor;
use sluice_actors::sources::BuiltSource;
use sluice_actors::sources::object_store::redact;
use sluice_actors::supervisor::RegisterSource;
use sluice_planner::{Planner, PlannerOptions};
use sluice_schemas::{AuthMode, Config};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::governance::Governance;
use crate::governance::keys::NewKey;
use crate::queries::QueryRegistry;
use crate::state::{AppState, Lifecycle, Phase};
use secrecy::ExposeSecret;

/// Stack of each query-runtime thread. Planning is protected against deep recursion by
/// DataFusion (`recursive_protection`), but not every pass is (tree walks, `Drop` of deep
/// plans, the SQL unparser); the parser's nesting limit and the set-operation limit
/// (`sluice_planner::validate`) bound how deep a statement can be, and this is enough stack
/// for the deepest one they allow (the hostile-SQL corpus in the test suite holds it).
pub const QUERY_THREAD_STACK_BYTES: usize = 32 << 20;

/// The multi-thread runtime queries plan and run on, beside (never under) the actix System.
/// `workers`: `None` for one per core.
///
/// # Errors
/// When the OS refuses the threads.
pub fn query_runtime(
    workers: Option<usize>,
    name: &str,
) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        b.worker_threads(n);
    }
    b.thread_name(name)
        .thread_stack_size(QUERY_THREAD_STACK_BYTES)
        .enable_all()
        .build()
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
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
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The metadata store (keys, audit) could not be opened or written.
    #[error("{0}")]
    Metadata(#[from] crate::governance::store::StoreError),
    /// The config uses a feature this version does not have.
    #[error("{0}")]
    Unsupported(String),
}

/// A bound server, serving since [`Application::build`] returned (after its sources' first
/// loads).
pub struct Application {
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
    handle: actix_web::dev::ServerHandle,
    addr: SocketAddr,
    admin_key: Option<String>,
    supervisor: actix::Addr<SourceSupervisor>,
    state: web::Data<AppState>,
    connectors: Vec<Arc<dyn sluice_actors::sources::Connector>>,
}

/// How long closing the sources' remote sessions may hold up a stop.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Application {
    /// Builds everything `config` describes and binds the listener.
    ///
    /// # Errors
    /// [`StartupError`] for unusable sources, a busy port or a failed key mint.
    pub async fn build(
        config: Config,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, StartupError> {
        let planner = Planner::new(&PlannerOptions {
            memory_limit_bytes: usize::try_from(config.limits.memory_limit_bytes)
                .unwrap_or(usize::MAX),
            default_catalog: config.server.default_catalog.clone(),
            default_schema: config.server.default_schema.clone(),
            target_partitions: None,
        })?;
        let router = sluice_actors::Router::new();
        let supervisor =
            SourceSupervisor::new(std::sync::Arc::clone(&router), runtime.clone()).start();
        // Connectors and catalogs first (no I/O): a config error stops the start here.
        let mut built = Vec::with_capacity(config.sources.len());
        for source in &config.sources {
            built.push(
                sluice_actors::sources::build(source, &planner).map_err(|e| {
                    StartupError::Source {
                        name: source.name().to_owned(),
                        source: e,
                    }
                })?,
            );
        }

        let governance = Governance::start(&config, &runtime).await?;
        let auth_required = config.auth.mode == AuthMode::ApiKey;
        // An empty store gets one admin key, printed once (the in-memory store of the
        // embedded default is empty on every start).
        let admin_key = if auth_required && governance.is_empty() {
            let (record, secret) = governance.create_key(NewKey::admin("admin")).await?;
            info!(key_id = %record.id, "The key store was empty: minted an admin key.");
            Some(secret.expose_secret().to_owned())
        } else {
            None
        };
        let state = web::Data::new(AppState {
            planner,
            supervisor: supervisor.clone(),
            router,
            runtime: runtime.clone(),
            queries: QueryRegistry::default(),
            governance,
            auth_required,
            protect_metrics: config.auth.protect_metrics,
            slots: Arc::new(Semaphore::new(
                config.limits.max_concurrent_queries as usize,
            )),
            prometheus: crate::metrics::install(),
            limits: config.limits.clone(),
            drain_timeout: Duration::from_millis(config.server.drain_timeout_ms),
            lifecycle: Lifecycle::default(),
            closing: tokio_util::sync::CancellationToken::new(),
            cache: Arc::new(crate::cache::ResultCache::new(
                &config.cache,
                &config.sources,
                &runtime,
            )),
        });
        spawn_metrics_upkeep(&state);
        let listen = config.server.listen;
        let app_state = state.clone();
        let mcp = web::Data::new(crate::mcp::Mcp::new(state.clone(), &config.mcp, listen));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(mcp.clone())
                .configure(crate::mcp::routes)
                .wrap(actix_web::middleware::from_fn(crate::http::authenticate))
                .wrap(
                    actix_web::middleware::Logger::new("%a \"%r\" %s %b %Dms")
                        .log_target("sluice::http"),
                )
                .configure(crate::http::routes)
        })
        // Results go out as several small writes (head, schema, batches, end marker); with Nagle's
        // algorithm on, a keep-alive client's delayed ACK stalls each response by up to 40 ms.
        .tcp_nodelay(true)
        // A client that closes its side has left: drop its handler (and so cancel its query)
        // even before the first byte of the answer. HTTP clients never half-close to wait.
        .h1_allow_half_closed(false)
        // Signals are ours: they start a drain (see `drain_on_signal`), not an abrupt stop.
        .disable_signals()
        .shutdown_timeout(5)
        .bind(listen)
        .map_err(|source| StartupError::Bind {
            addr: listen,
            source,
        })?;
        // The rule for `auth.mode = "none"` holds for the address actually bound, whatever
        // `--listen` or an environment override made of the config's.
        let addrs = server.addrs();
        for addr in &addrs {
            config
                .check_auth_listen(*addr)
                .map_err(StartupError::Unsupported)?;
        }
        let addr = addrs.first().copied().unwrap_or(listen);
        let server = server.run();
        let handle = server.handle();
        // Serving from here: `/health` answers, `/ready` says 503 until the sources loaded.
        let serving = actix_web::rt::spawn(server);
        let loads = built
            .into_iter()
            .map(|b| async { (first_load(&b, &runtime).await, b) });
        let mut connectors = Vec::new();
        for (loaded, b) in futures::future::join_all(loads).await {
            connectors.push(Arc::clone(&b.connector));
            let check_timeout =
                sluice_actors::source_actor::HEALTH_TIMEOUT.min(b.health_interval * 5);
            // Sent, not queued: the routes are published before the server says it is ready.
            supervisor
                .send(RegisterSource {
                    built: b,
                    loaded,
                    check_timeout,
                })
                .await
                .map_err(|e| {
                    StartupError::Unsupported(format!("the source supervisor stopped: {e}"))
                })?;
        }
        state.lifecycle.set(Phase::Serving);
        Ok(Self {
            serving,
            handle,
            addr,
            admin_key,
            supervisor,
            state,
            connectors,
        })
    }

    /// The bound address (the real port when `:0` was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The admin key minted at start, if auth is on.
    pub fn admin_key(&self) -> Option<&str> {
        self.admin_key.as_deref()
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.handle.clone()
    }

    /// What SIGTERM does, as a handle: see [`Drainer::drain`].
    pub fn drainer(&self) -> Drainer {
        Drainer {
            state: self.state.clone(),
            handle: self.handle.clone(),
        }
    }

    /// Serves until stopped (SIGINT/SIGTERM, which drain first, or the handle), then stops
    /// the actors.
    ///
    /// # Errors
    /// An I/O error from the server.
    pub async fn run(self) -> std::io::Result<()> {
        let signals =
            actix_web::rt::spawn(drain_on_signal(self.state.clone(), self.handle.clone()));
        let result = match self.serving.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        };
        signals.abort();
        // Sessions at the far end (Snowflake's) are ended, on the runtime that opened them.
        let connectors = self.connectors;
        let closing = self.state.runtime.spawn(async move {
            futures::future::join_all(connectors.iter().map(|c| c.close())).await;
        });
        if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
            warn!("Closing the sources' sessions did not finish in time.");
        }
        // The last audit records reach the store before the process ends.
        let audit = std::sync::Arc::clone(&self.state.governance.audit);
        let flushed = self
            .state
            .runtime
            .spawn(async move { audit.flush(CLOSE_TIMEOUT).await })
            .await;
        if !matches!(flushed, Ok(true)) {
            warn!(
                pending = self.state.governance.audit.pending(),
                "Audit records not yet in the store at stop (they are in the log)."
            );
        }
        self.supervisor.do_send(sluice_actors::Shutdown);
        result
    }
}

/// Starts a drain of one server; cheap to clone.
#[derive(Clone)]
pub struct Drainer {
    state: web::Data<AppState>,
    handle: actix_web::dev::ServerHandle,
}

impl Drainer {
    /// Drains, as SIGTERM does: `/ready` answers 503 and new queries `503 shutting_down` at
    /// once; the server stops when the running queries have finished, or cancels them after
    /// `server.drain_timeout_ms`.
    pub async fn drain(self) {
        drain(self.state, self.handle).await;
    }
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
            warn!(source = %name, error = %redact(&e.to_string()), "Source tables could not be loaded; retrying on each health check.");
            false
        }
        Err(e) => {
            warn!(source = %name, error = %e, "Source registration task failed.");
            false
        }
    }
}

/// Waits for SIGTERM or SIGINT, then drains.
async fn drain_on_signal(state: web::Data<AppState>, handle: actix_web::dev::ServerHandle) {
    let term = async {
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    info!("Signal received: draining (new queries are refused, running ones finish).");
    drain(state, handle).await;
}

/// Draining: `/ready` answers 503 and new queries `shutting_down` at once; running queries
/// have `server.drain_timeout_ms` to finish; the rest are then cancelled (their remote
/// statements with them) and the server stops once they let go.
async fn drain(state: web::Data<AppState>, handle: actix_web::dev::ServerHandle) {
    state.lifecycle.set(Phase::Draining);
    let all = state.limits.max_concurrent_queries;
    // Taking every slot means every running query has released its own.
    let slots = Arc::clone(&state.slots);
    let drained = tokio::time::timeout(
        state.drain_timeout,
        Arc::clone(&slots).acquire_many_owned(all),
    )
    .await;
    if drained.is_err() {
        let running = state.queries.list(usize::MAX, |e| {
            e.state() == crate::queries::QueryState::Running
        });
        warn!(
            queries = running.len(),
            "Draining: cancelling the queries still running at the drain deadline."
        );
        for e in &running {
            e.cancel.cancel();
        }
        // A cancelled query lets go of its slot once its streams are dropped, which sends the
        // remote cancels.
        if tokio::time::timeout(CLOSE_TIMEOUT, slots.acquire_many_owned(all))
            .await
            .is_err()
        {
            warn!("Draining: cancelled queries did not end in time; stopping anyway.");
        }
    }
    // MCP's event streams stay open until told: end them, or the stop waits them out.
    state.closing.cancel();
    handle.stop(true).await;
}

/// Prometheus histograms need periodic upkeep when no exporter thread runs.
fn spawn_metrics_upkeep(state: &web::Data<AppState>) {
    let handle = state.prometheus.clone();
    state.runtime.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}
