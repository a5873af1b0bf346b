//! [`Application`]: the query service and the doors a config describes, on one actix-web
//! server.
//!
//! Must be called inside an actix `System`; the DataFusion runtime is passed in, built by the
//! caller beside the System (not under it), so planning and execution never run on actix's
//! single-threaded workers.
//!
//! A new door is added here: build it over the [`QueryService`] and mount it (an actix door
//! with `.configure(...)`, or its own listener spawned beside the HTTP server).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use sluice_schemas::Config;
use tracing::{info, warn};

use crate::query::{BuildError, QueryService};

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
    /// The query service could not be built (sources, planner, metadata store).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The config uses a feature this version does not have, or an address it may not.
    #[error("{0}")]
    Unsupported(String),
    /// `[server.tls]` cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The Flight SQL door could not start.
    #[error(transparent)]
    Flight(#[from] crate::flight::FlightError),
    /// The PostgreSQL-protocol door could not start.
    #[error(transparent)]
    Pg(#[from] crate::pg::PgError),
}

/// A bound server, serving since [`Application::build`] returned (after its sources' first
/// loads).
pub struct Application {
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
    handle: actix_web::dev::ServerHandle,
    addr: SocketAddr,
    /// `https` with `[server.tls]`.
    scheme: &'static str,
    admin_key: Option<String>,
    service: Arc<QueryService>,
    /// The Flight SQL listener's address and task, with `[flight]`.
    flight: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
    /// The PostgreSQL listener's address, whether it offers TLS, and its task, with `[pg]`.
    pg: Option<(SocketAddr, bool, tokio::task::JoinHandle<()>)>,
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
        Self::build_from(config, None, runtime).await
    }

    /// [`Self::build`] for a server started from the config file at `file` (with what it said
    /// before command-line overrides), which `SIGHUP` and `POST /v1/admin/reload` read again.
    ///
    /// # Errors
    /// As [`Self::build`].
    pub async fn build_from(
        config: Config,
        file: Option<(std::path::PathBuf, Config)>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, StartupError> {
        // The recorder first: what building the service counts (the first key-set reads, the
        // first key sync) is not lost.
        let prometheus = crate::metrics::install();
        let (service, sources, admin_key) =
            QueryService::build_from(&config, file, runtime).await?;
        let options = web::Data::new(crate::http::HttpOptions {
            protect_metrics: config.auth.protect_metrics,
            prometheus,
        });
        spawn_metrics_upkeep(&service, &options);
        metrics::gauge!(crate::metrics::QUERIES_MAX_CONCURRENT)
            .set(f64::from(config.limits.max_concurrent_queries));
        let listen = config.server.listen;
        let mcp = web::Data::new(crate::mcp::Mcp::new(
            Arc::clone(&service),
            &config.mcp,
            listen,
        ));
        let data = web::Data::from(Arc::clone(&service));
        let tls = match &config.server.tls {
            Some(tls) => Some(crate::tls::server_config(tls, service.runtime())?),
            None => None,
        };
        // Flight SQL on its own listener, with the same certificate.
        let flight = match &config.flight {
            Some(f) => {
                let bound = crate::flight::bind(Arc::clone(&service), f, tls.as_ref())?;
                config
                    .check_auth_listen(bound.addr())
                    .map_err(StartupError::Unsupported)?;
                Some(bound)
            }
            None => None,
        };
        // The PostgreSQL protocol on its own listener, with the same certificate.
        let pg = match &config.pg {
            Some(p) => {
                let bound = crate::pg::bind(Arc::clone(&service), p, tls.as_ref())?;
                config
                    .check_auth_listen(bound.addr())
                    .map_err(StartupError::Unsupported)?;
                Some(bound)
            }
            None => None,
        };
        let console = web::Data::new(crate::console::Console::new(
            &config,
            service.name_defaults(),
            flight.as_ref().map(|f| f.addr()),
            pg.as_ref().map(|p| p.addr()),
        ));
        let console_enabled = config.console.enabled;
        if console_enabled {
            let console = console.clone();
            service
                .runtime()
                .spawn(async move { console.discover().await });
        }
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(options.clone())
                .app_data(mcp.clone())
                .app_data(console.clone())
                .configure(crate::mcp::routes)
                .configure(crate::console::routes(console_enabled))
                .wrap(actix_web::middleware::from_fn(crate::http::authenticate))
                .wrap(actix_web::middleware::from_fn(crate::http::observe))
                .configure(crate::http::routes)
        })
        // A verified client certificate stays with its connection (`[[auth.certificate_rules]]`).
        .on_connect(crate::tls::on_connect)
        // Results go out as several small writes (head, schema, batches, end marker); with Nagle's
        // algorithm on, a keep-alive client's delayed ACK stalls each response by up to 40 ms.
        .tcp_nodelay(true)
        // A client that closes its side has left: drop its handler (and so cancel its query)
        // even before the first byte of the answer. HTTP clients never half-close to wait.
        .h1_allow_half_closed(false)
        // Signals are ours: they start a drain (see `drain_on_signal`), not an abrupt stop.
        .disable_signals()
        .shutdown_timeout(5);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = match tls {
            Some(tls) => server.bind_rustls_0_23(listen, tls),
            None => server.bind(listen),
        }
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
        service.load(sources).await;
        service.follow_registry(std::time::Duration::from_millis(
            config.metadata.registry_sync_ms,
        ));
        let flight = flight.map(|b| (b.addr(), b.serve()));
        let pg = pg.map(|b| (b.addr(), b.tls(), b.serve()));
        Ok(Self {
            serving,
            handle,
            addr,
            scheme,
            admin_key,
            service,
            flight,
            pg,
        })
    }

    /// `postgresql://host:port` of the PostgreSQL listener (`?sslmode=require` when it offers TLS).
    pub fn pg_url(&self) -> Option<String> {
        self.pg.as_ref().map(|(addr, tls, _)| {
            if *tls {
                format!("postgresql://{addr}?sslmode=require")
            } else {
                format!("postgresql://{addr}")
            }
        })
    }

    /// `grpc://host:port` (`grpc+tls://` with `[server.tls]`) of the Flight SQL listener.
    pub fn flight_url(&self) -> Option<String> {
        let scheme = if self.scheme == "https" {
            "grpc+tls"
        } else {
            "grpc"
        };
        self.flight
            .as_ref()
            .map(|(addr, _)| format!("{scheme}://{addr}"))
    }

    /// The bound address (the real port when `:0` was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`, or `https://` with `[server.tls]`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The admin key minted at start (auth on and the key store was empty).
    pub fn admin_key(&self) -> Option<&str> {
        self.admin_key.as_deref()
    }

    /// Whether callers need a key (`auth.mode = "api_key"`).
    pub fn authenticates(&self) -> bool {
        self.service.authenticates()
    }

    /// On each `SIGHUP` from `hangups`, reads the config file again as
    /// `POST /v1/admin/reload` does: sources all or nothing, the log level (a file that does
    /// not load changes nothing; the log says how many problems it has, never their text,
    /// which can quote a line of the file).
    #[cfg(unix)]
    pub fn reload_on(&self, mut hangups: tokio::signal::unix::Signal) {
        let service = Arc::clone(&self.service);
        self.service.runtime().spawn(async move {
            while hangups.recv().await.is_some() {
                let principal = crate::governance::Principal::Anonymous;
                match service.reload_config(&principal).await {
                    Ok(r) => warn!(
                        added = ?r.added,
                        removed = ?r.removed,
                        changed = ?r.changed,
                        log_level = %r.log_level,
                        restart_required = ?r.restart_required,
                        "SIGHUP: config file read again."
                    ),
                    Err(e) => warn!(code = %e.code, "SIGHUP: the config file was not applied; nothing changed."),
                }
            }
        });
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.handle.clone()
    }

    /// What SIGTERM does, as a handle: see [`Drainer::drain`].
    pub fn drainer(&self) -> Drainer {
        Drainer {
            service: Arc::clone(&self.service),
            handle: self.handle.clone(),
        }
    }

    /// Serves until stopped (SIGINT/SIGTERM, which drain first, or the handle), then stops
    /// the actors.
    ///
    /// # Errors
    /// An I/O error from the server.
    pub async fn run(self) -> std::io::Result<()> {
        let signals = actix_web::rt::spawn(drain_on_signal(self.drainer()));
        let result = match self.serving.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        };
        signals.abort();
        // The Flight and PostgreSQL listeners stop with the service's drain (`closing`); their
        // calls and connections end there.
        self.service.closing().cancel();
        let listeners = [
            self.flight.map(|(_, task)| ("Flight SQL", task)),
            self.pg.map(|(_, _, task)| ("PostgreSQL", task)),
        ];
        for (name, task) in listeners.into_iter().flatten() {
            let abort = task.abort_handle();
            if tokio::time::timeout(CLOSE_TIMEOUT, task).await.is_err() {
                abort.abort();
                warn!("The {name} listener did not stop in time; its connections were closed.");
            }
        }
        // Sessions at the far end (Snowflake's) are ended, on the runtime that opened them.
        let connectors = self.service.source_connectors();
        let closing = self.service.runtime().spawn(async move {
            futures::future::join_all(connectors.iter().map(|c| c.close())).await;
        });
        if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
            warn!("Closing the sources' sessions did not finish in time.");
        }
        // The last audit records reach the store before the process ends.
        if !self.service.flush_audit(CLOSE_TIMEOUT).await {
            warn!(
                pending = self.service.audit_pending(),
                "Audit records not yet in the store at stop (they are in the log)."
            );
        }
        self.service.stop_sources();
        result
    }
}

/// Starts a drain of one server; cheap to clone.
#[derive(Clone)]
pub struct Drainer {
    service: Arc<QueryService>,
    handle: actix_web::dev::ServerHandle,
}

impl Drainer {
    /// Drains, as SIGTERM does: `/ready` answers 503 and new queries `503 shutting_down` at
    /// once; the server stops when the running queries have finished, or cancels them after
    /// `server.drain_timeout_ms`.
    pub async fn drain(self) {
        self.service.drain().await;
        self.handle.stop(true).await;
    }

    /// Stops at once, without draining: see [`QueryService::stop_now`]. The HTTP server is
    /// told to stop without waiting for its connections.
    pub fn stop_now(&self) {
        self.service.stop_now();
        drop(self.handle.stop(false));
    }
}

/// Waits for SIGTERM or SIGINT, then drains.
async fn drain_on_signal(drainer: Drainer) {
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
    drainer.drain().await;
}

/// Prometheus histograms need periodic upkeep when no exporter thread runs.
fn spawn_metrics_upkeep(service: &QueryService, options: &crate::http::HttpOptions) {
    let handle = options.prometheus.clone();
    let closing = service.closing().clone();
    service.runtime().spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tokio::select! {
                () = closing.cancelled() => return,
                _ = tick.tick() => handle.run_upkeep(),
            }
        }
    });
}
