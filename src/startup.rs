//! [`Application`]: builds sources, actors, planner and the HTTP server from a config.
//!
//! Must be called inside an actix `System`; the DataFusion runtime is passed in, built by the
//! caller beside the System (not under it), so planning and execution never run on actix's
//! single-threaded workers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use sluice_actors::sources::object_store::{ObjectStoreConnector, redact};
use sluice_actors::sources::postgres::PostgresConnector;
use sluice_actors::supervisor::RegisterSource;
use sluice_actors::{SourceActor, SourceSupervisor};
use sluice_planner::{ParquetSourceSpec, Planner, PlannerOptions, SourceCatalog, TableLocation};
use sluice_schemas::{AuthMode, Config, SourceConfig};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::auth::{KeyStore, Role};
use crate::queries::QueryRegistry;
use crate::state::AppState;

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
    /// A key could not be minted.
    #[error("cannot mint an API key: {0}")]
    Random(#[from] getrandom::Error),
    /// The config uses a feature this version does not have.
    #[error("{0}")]
    Unsupported(String),
}

/// A built, bound, not yet running server.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    admin_key: Option<String>,
    supervisor: actix::Addr<SourceSupervisor>,
}

impl Application {
    /// Builds everything `config` describes and binds the listener.
    ///
    /// # Errors
    /// [`StartupError`] for unusable sources, a busy port or a failed key mint.
    pub async fn build(
        config: Config,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, StartupError> {
        if config.metadata.postgres_url.is_some() {
            return Err(StartupError::Unsupported(
                "metadata.postgres_url: keys in PostgreSQL are not supported in this version; \
                 remove it to keep keys in this process"
                    .to_owned(),
            ));
        }
        let planner = Planner::new(&PlannerOptions {
            memory_limit_bytes: usize::try_from(config.limits.memory_limit_bytes)
                .unwrap_or(usize::MAX),
            default_catalog: config.server.default_catalog.clone(),
            default_schema: config.server.default_schema.clone(),
            target_partitions: None,
        })?;
        let supervisor = SourceSupervisor::default().start();
        for source in &config.sources {
            let built = build_source(source, &planner, &runtime).await?;
            let interval = built.health_interval;
            let actor = SourceActor::new(built.name.clone(), built.connector, runtime.clone())
                .with_timing(
                    interval,
                    sluice_actors::source_actor::HEALTH_TIMEOUT.min(interval * 5),
                )
                .with_refresh(built.refresh_every, built.loaded)
                .start();
            supervisor.do_send(RegisterSource {
                name: built.name,
                addr: actor,
            });
        }

        let keys = KeyStore::default();
        let auth_required = config.auth.mode == AuthMode::ApiKey;
        let admin_key = if auth_required && keys.is_empty() {
            Some(keys.mint("admin", Role::Admin)?.1)
        } else {
            None
        };
        let state = web::Data::new(AppState {
            planner,
            supervisor: supervisor.clone(),
            runtime,
            queries: QueryRegistry::default(),
            keys,
            auth_required,
            protect_metrics: config.auth.protect_metrics,
            slots: Arc::new(Semaphore::new(
                config.limits.max_concurrent_queries as usize,
            )),
            prometheus: crate::metrics::install(),
            limits: config.limits.clone(),
        });
        spawn_metrics_upkeep(&state);
        let listen = config.server.listen;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
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
        .bind(listen)
        .map_err(|source| StartupError::Bind {
            addr: listen,
            source,
        })?;
        let addr = server.addrs().first().copied().unwrap_or(listen);
        Ok(Self {
            server: server.run(),
            addr,
            admin_key,
            supervisor,
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
        self.server.handle()
    }

    /// Serves until stopped (SIGINT/SIGTERM or the handle), then stops the actors.
    ///
    /// # Errors
    /// An I/O error from the server.
    pub async fn run(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.supervisor.do_send(sluice_actors::Shutdown);
        result
    }
}

/// A source ready to hand to its actor.
struct BuiltSource {
    name: String,
    connector: Arc<dyn sluice_actors::Connector>,
    health_interval: Duration,
    refresh_every: Option<Duration>,
    loaded: bool,
}

impl BuiltSource {
    /// Loads `catalog` once and describes the source; `timing` is the config's
    /// `(health_check_interval_ms, refresh_interval_ms)`, a refresh interval of 0 meaning
    /// on demand only.
    async fn load<C: SourceCatalog + 'static>(
        name: String,
        connector: Arc<dyn sluice_actors::Connector>,
        catalog: Arc<C>,
        (health_ms, refresh_ms): (u64, u64),
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        let loaded = first_load(&name, catalog, runtime).await;
        Self {
            name,
            connector,
            health_interval: Duration::from_millis(health_ms),
            refresh_every: (refresh_ms > 0).then(|| Duration::from_millis(refresh_ms)),
            loaded,
        }
    }
}

/// Builds a source's connector, registers its catalog with the planner and loads its tables
/// once before the server starts serving. A source that cannot load still starts: its actor
/// keeps retrying, queries on it answer `source_unavailable` with the reason meanwhile.
async fn build_source(
    source: &SourceConfig,
    planner: &Planner,
    runtime: &tokio::runtime::Handle,
) -> Result<BuiltSource, StartupError> {
    let name = source.name().to_owned();
    let err = |source| StartupError::Source {
        name: name.clone(),
        source,
    };
    let p = match source {
        SourceConfig::Parquet(p) => p,
        SourceConfig::Postgres(pg) => return build_postgres(pg, planner, runtime).await,
        SourceConfig::Snowflake(_) => {
            return Err(err(sluice_actors::SourceError::UnsupportedKind(
                source.kind(),
            )));
        }
    };
    let connector = ObjectStoreConnector::new(&name, &p.location, &p.options).map_err(err)?;
    let mut tables = Vec::with_capacity(p.tables.len());
    for t in &p.tables {
        let url = sluice_planner::catalog::join(connector.engine_base(), &t.path)
            .map_err(|e| err(sluice_actors::SourceError::Config(e.to_string())))?;
        tables.push(TableLocation {
            name: t.name.clone(),
            url,
        });
    }
    let catalog = planner.register_parquet_source(
        ParquetSourceSpec {
            catalog: name.clone(),
            schema: p.schema.clone(),
            base: connector.engine_base().clone(),
            tables,
            pushdown_filters: connector.pushdown_filters(),
        },
        connector.store(),
    );
    let connector = connector.with_catalog(Arc::clone(&catalog) as Arc<dyn SourceCatalog>);
    Ok(BuiltSource::load(
        name,
        Arc::new(connector),
        catalog,
        (p.health_check_interval_ms, p.refresh_interval_ms),
        runtime,
    )
    .await)
}

/// A PostgreSQL source: pools per replica, tables from its catalog.
async fn build_postgres(
    pg: &sluice_schemas::PostgresSourceConfig,
    planner: &Planner,
    runtime: &tokio::runtime::Handle,
) -> Result<BuiltSource, StartupError> {
    let name = pg.name.clone();
    let connector = PostgresConnector::new(pg).map_err(|source| StartupError::Source {
        name: name.clone(),
        source,
    })?;
    let remote = connector
        .primary()
        .cloned()
        .ok_or_else(|| StartupError::Source {
            name: name.clone(),
            source: sluice_actors::SourceError::Config("no replicas".to_owned()),
        })?;
    let schemas = (!pg.schemas.is_empty()).then(|| pg.schemas.clone());
    let catalog = planner.register_postgres_source(&name, remote, schemas);
    let connector = connector.with_catalog(Arc::clone(&catalog) as Arc<dyn SourceCatalog>);
    Ok(BuiltSource::load(
        name,
        Arc::new(connector),
        catalog,
        (pg.health_check_interval_ms, pg.refresh_interval_ms),
        runtime,
    )
    .await)
}

/// Loads a source's tables before the server serves; on failure the actor keeps retrying.
async fn first_load<C: SourceCatalog + 'static>(
    name: &str,
    catalog: Arc<C>,
    runtime: &tokio::runtime::Handle,
) -> bool {
    // Listing, footer reads and catalog queries run on the query runtime, which owns the
    // sources' connections.
    let loaded = runtime.spawn(async move { catalog.refresh().await }).await;
    match loaded {
        Ok(Ok(summary)) => {
            info!(source = %name, tables = summary.tables, elapsed_ms = summary.elapsed.as_millis(), "Source registered.");
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
