//! PostgreSQL sources: one deadpool-postgres pool per replica, owned by the source actor, and
//! one [`PgExecutor`] per replica behind the planner's executor seam.
//!
//! Pools open connections lazily, on the runtime that asks for them (the query runtime: scans
//! and probes both run there). Each replica is checked and routed to on its own (see
//! `crate::routing`); the catalog is read from the first replica that answers. TLS follows
//! the URL's `sslmode` ([`tls`]).
//!
//! - [`catalog`]: discovery, and PostgreSQL types as Arrow types and comparison classes.
//! - [`executor`]: [`PgExecutor`], the [`RemoteExecutor`] of a replica.
//! - [`stream`]: one statement, streamed in batches, cancelled when dropped.
//! - [`decode`]: the binary wire format into the Arrow types the plan expects.
//! - [`tls`]: `sslmode` as libpq means it.
//!
//! Health: each check runs `SELECT 1` on a connection of its own, outside the pool, so a
//! pool busy with long queries does not read as a dead server. A pool that made statements
//! wait past `pool_wait_timeout_ms` since the last check, or has statements waiting now,
//! makes the source Degraded with that reason.

pub mod catalog;
pub mod decode;
pub mod executor;
pub mod stream;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::FutureExt;
use futures::future::BoxFuture;
use sluice_planner::federation::cost::Estimates;
use sluice_planner::federation::dialect::postgres::PostgresDialect;
use sluice_planner::federation::{RemoteCatalog, RemoteExecutor, RemoteSource};
use sluice_planner::redact::redact;
use sluice_planner::{CatalogStatus, Planner, SourceCatalog};
use sluice_schemas::PostgresSourceConfig;
use url::Url;

use self::executor::{PgExecutor, PgRemote};
use self::tls::{Roots, TlsMode, TlsSettings};
use super::{BuiltSource, Concurrency, Connector, ReplicaHandle, ReplicaProbe};
use crate::error::{Result, SourceError};

/// One replica: its executor (and pool) and how to reach it outside the pool.
struct Replica {
    executor: Arc<PgExecutor>,
    config: tokio_postgres::Config,
    tls: TlsSettings,
    display: String,
    max_size: usize,
    /// The health probe's own connection, reopened when it breaks.
    probe: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
}

/// A PostgreSQL source's pools.
pub struct PostgresConnector {
    replicas: Vec<Arc<Replica>>,
    catalog: Option<Arc<RemoteCatalog>>,
}

impl std::fmt::Debug for PostgresConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConnector")
            .field("replicas", &self.display_location())
            .finish_non_exhaustive()
    }
}

/// A replica URL split into what tokio-postgres reads and what Sluice reads itself.
///
/// # Errors
/// [`SourceError::Config`] for a string that does not parse, an unknown `sslmode`, or client
/// certificates (not supported).
pub fn parse_replica(url: &str) -> Result<(tokio_postgres::Config, TlsSettings)> {
    let bad = |e: &dyn std::fmt::Display| SourceError::Config(format!("not a PostgreSQL URL: {e}"));
    let Ok(mut parsed) = Url::parse(url) else {
        // key=value form: tokio-postgres knows disable, prefer and require.
        let config: tokio_postgres::Config = url.parse().map_err(|e| bad(&e))?;
        let mode = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => TlsMode::Disable,
            tokio_postgres::config::SslMode::Require => TlsMode::Require,
            _ => TlsMode::Prefer,
        };
        return Ok((config, TlsSettings { mode, roots: None }));
    };
    let mut mode = TlsMode::Prefer;
    let mut roots = None;
    let mut rest = Vec::new();
    for (k, v) in parsed.query_pairs() {
        match k.as_ref() {
            "sslmode" => {
                mode = TlsMode::parse(&v).ok_or_else(|| {
                    SourceError::Config(format!(
                        "sslmode={v}: expected disable, prefer, require, verify-ca or verify-full"
                    ))
                })?;
            }
            "sslrootcert" => {
                roots = Some(if v == "system" {
                    Roots::System
                } else {
                    Roots::File(v.into_owned())
                });
            }
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(SourceError::Config(format!(
                    "{k}: client certificates are not supported; use a password"
                )));
            }
            _ => rest.push((k.into_owned(), v.into_owned())),
        }
    }
    parsed.set_query(None);
    if !rest.is_empty() {
        // Form encoding writes a space as `+`, which a PostgreSQL URL reads as a plus
        // (`options=-c%20work_mem%3D64MB` would reach the server as `-c+work_mem=64MB`); a
        // literal plus was written as `%2B`, so every `+` here is a space.
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(rest)
            .finish()
            .replace('+', "%20");
        parsed.set_query(Some(&query));
    }
    let mut config: tokio_postgres::Config = parsed.as_str().parse().map_err(|e| bad(&e))?;
    config.ssl_mode(mode.ssl_mode());
    Ok((config, TlsSettings { mode, roots }))
}

impl PostgresConnector {
    /// Builds one pool per replica URL. Nothing connects yet.
    ///
    /// # Errors
    /// [`SourceError::Config`] for a URL that does not parse, no replicas, or unreadable TLS
    /// roots.
    pub fn new(cfg: &PostgresSourceConfig) -> Result<Self> {
        let name = cfg.name.as_str();
        if cfg.replicas.is_empty() {
            return Err(SourceError::Config("replicas must not be empty".to_owned()));
        }
        // Read once, here: a missing variable is a config error, not a failed login later.
        let password: Option<secrecy::SecretString> = cfg
            .password_env
            .as_deref()
            .map(|var| {
                std::env::var(var).map(Into::into).map_err(|_| {
                    SourceError::Config(format!(
                        "password_env: environment variable {var} is not set"
                    ))
                })
            })
            .transpose()?;
        let connect_timeout = Duration::from_millis(cfg.connect_timeout_ms);
        let max_size = usize::try_from(cfg.max_concurrency.max(1)).unwrap_or(1);
        let mut replicas = Vec::with_capacity(cfg.replicas.len());
        for (i, url) in cfg.replicas.iter().enumerate() {
            let in_replica = |e: SourceError| SourceError::Config(format!("replica {i}: {e}"));
            let (mut pg, tls) = parse_replica(url).map_err(in_replica)?;
            pg.connect_timeout(connect_timeout);
            if let Some(p) = &password {
                pg.password(secrecy::ExposeSecret::expose_secret(p).as_bytes());
            }
            pg.application_name(stream::APPLICATION_NAME);
            let (manager, cancel) = tls::manager(
                pg.clone(),
                &tls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            )
            .map_err(in_replica)?;
            let pool = Pool::builder(manager)
                .max_size(max_size)
                .wait_timeout(Some(Duration::from_millis(cfg.pool_wait_timeout_ms)))
                .create_timeout(Some(connect_timeout))
                .recycle_timeout(Some(Duration::from_secs(5)))
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(|e| SourceError::Config(format!("replica {i}: {e}")))?;
            let display = display_url(url);
            let remote = PgRemote {
                pool,
                cancel,
                pool_timeouts: Arc::new(AtomicU64::new(0)),
                cancels: Arc::new(tokio::sync::watch::channel(0).0),
            };
            replicas.push(Arc::new(Replica {
                executor: Arc::new(
                    PgExecutor::new(name, display.clone(), remote).with_address(&pg),
                ),
                config: pg,
                tls,
                display,
                max_size,
                probe: tokio::sync::Mutex::new(None),
            }));
        }
        Ok(Self {
            replicas,
            catalog: None,
        })
    }

    /// The executor of the replica that serves.
    pub fn primary(&self) -> Option<&Arc<PgExecutor>> {
        self.replicas.first().map(|r| &r.executor)
    }

    /// Attaches the catalog this source's refreshes reload.
    pub fn with_catalog(mut self, catalog: Arc<RemoteCatalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }
}

/// A URL without its password or query string.
fn display_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        // A key=value connection string: show only that it is one.
        Err(_) => "postgres (connection string)".to_owned(),
    }
}

impl Connector for PostgresConnector {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn display_location(&self) -> String {
        self.replicas
            .iter()
            .map(|r| r.display.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn health_check(&self) -> BoxFuture<'_, Result<()>> {
        // Any replica serving is the source serving; the router checks each on its own.
        async move {
            let mut last = SourceError::Config("no replicas".to_owned());
            for r in &self.replicas {
                match r.health_check().await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
        .boxed()
    }

    fn release_idle(&self) {
        for r in &self.replicas {
            r.executor.remote().pool.retain(|_, _| false);
        }
    }

    /// Waits for the cancel requests of statements cut short (a draining server cancels
    /// what is left), then closes the pools.
    fn close(&self) -> BoxFuture<'_, ()> {
        async move {
            for r in &self.replicas {
                let remote = r.executor.remote();
                let mut pending = remote.cancels.subscribe();
                let _ = pending.wait_for(|n| *n == 0).await;
                remote.pool.close();
            }
        }
        .boxed()
    }

    fn refresh(&self) -> BoxFuture<'_, Result<Option<usize>>> {
        // Replicas hold the same tables: the first that answers serves the refresh.
        async move {
            let mut last = Ok(None);
            for r in &self.replicas {
                last = super::refresh_remote(self.catalog.as_ref(), r.executor.as_ref()).await;
                if last.is_ok() {
                    return last;
                }
            }
            last
        }
        .boxed()
    }

    fn catalog_status(&self) -> Option<CatalogStatus> {
        self.catalog.as_ref().map(|c| c.status())
    }

    fn executor(&self) -> Option<Arc<dyn RemoteExecutor>> {
        self.primary()
            .map(|e| Arc::clone(e) as Arc<dyn RemoteExecutor>)
    }

    fn replica_handles(&self) -> Option<Vec<ReplicaHandle>> {
        Some(
            self.replicas
                .iter()
                .map(|r| ReplicaHandle {
                    display: r.display.clone(),
                    executor: Some(Arc::clone(&r.executor) as Arc<dyn RemoteExecutor>),
                    probe: Arc::clone(r) as Arc<dyn ReplicaProbe>,
                })
                .collect(),
        )
    }
}

impl ReplicaProbe for Replica {
    /// `SELECT 1` on the probe's own connection (outside the pool, so a pool busy with long
    /// queries does not read as a dead server), reopened when it broke.
    fn health_check(&self) -> BoxFuture<'_, Result<()>> {
        async move {
            let mut probe = self.probe.lock().await;
            if probe.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
                let client = tls::connect(&self.config, &self.tls)
                    .await
                    .map_err(|e| SourceError::Probe(redact(&e)))?;
                *probe = Some(client);
            }
            let Some(client) = probe.as_ref() else {
                return Err(SourceError::Probe("no probe connection".to_owned()));
            };
            if let Err(e) = client.simple_query("SELECT 1").await {
                *probe = None;
                return Err(SourceError::Probe(redact(&e.to_string())));
            }
            Ok(())
        }
        .boxed()
    }

    fn pressure(&self) -> Option<String> {
        let remote = self.executor.remote();
        let timed_out = remote.pool_timeouts.swap(0, Ordering::Relaxed);
        let status = remote.pool.status();
        // Waiting while the pool still opens connections is not saturation; waiting with
        // every connection open and busy is.
        let full = status.size >= self.max_size && status.available == 0;
        (timed_out > 0 || (full && status.waiting > 0)).then(|| {
            format!(
                "connection pool saturated: {} of {} connections busy, {} statements waiting, \
                 {timed_out} gave up waiting since the last check",
                status.size.saturating_sub(status.available),
                self.max_size,
                status.waiting
            )
        })
    }
}

/// Builds a PostgreSQL source: pools per replica, and its catalog registered with `planner`
/// (discovered on the first refresh).
///
/// # Errors
/// [`SourceError::Config`] for a URL or TLS setting that cannot be used.
pub fn build(pg: &PostgresSourceConfig, planner: &Planner) -> Result<BuiltSource> {
    let connector = PostgresConnector::new(pg)?;
    let schemas = (!pg.schemas.is_empty()).then(|| pg.schemas.clone());
    // The cost-aware cut asks the replicas for EXPLAIN estimates, in order.
    let estimates = (pg.pushdown == sluice_schemas::Pushdown::Full).then(|| {
        Arc::new(Estimates::new(
            connector
                .replicas
                .iter()
                .map(|r| Arc::clone(&r.executor) as Arc<dyn RemoteExecutor>)
                .collect(),
        ))
    });
    let catalog = planner.register_remote_source(
        RemoteSource {
            name: pg.name.clone(),
            dialect: PostgresDialect::shared(),
            pushdown: pg.pushdown,
            estimates,
        },
        schemas,
    );
    Ok(BuiltSource::new(
        pg.name.clone(),
        Arc::new(connector.with_catalog(catalog)),
        (pg.health_check_interval_ms, pg.refresh_interval_ms),
    )
    .with_routing(
        pg.fallback.clone(),
        Some(Concurrency {
            max: pg.max_concurrency,
            max_queued: pg.max_queued,
            queue_timeout: Duration::from_millis(pg.queue_timeout_ms),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            display_url("postgres://app:s3cret@db.example:5432/x?sslmode=disable"),
            "postgres://app@db.example:5432/x"
        );
        let cfg: PostgresSourceConfig =
            toml::from_str("name = \"pg\"\nreplicas = [\"postgres://a:pw@h/db\"]\n").unwrap();
        let c = PostgresConnector::new(&cfg).unwrap();
        assert_eq!(c.display_location(), "postgres://a@h/db");
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn the_password_comes_from_the_environment_never_the_url() {
        // PATH is set wherever tests run: it stands in for a password variable.
        let path = std::env::var("PATH").unwrap();
        let cfg: PostgresSourceConfig = toml::from_str(
            "name = \"pg\"\nreplicas = [\"postgres://a@h/db\"]\npassword_env = \"PATH\"\n",
        )
        .unwrap();
        let c = PostgresConnector::new(&cfg).unwrap();
        assert_eq!(
            c.replicas[0].config.get_password(),
            Some(path.as_bytes()),
            "the variable's value is the password"
        );
        assert!(!format!("{c:?}").contains(&path));
        assert!(!c.display_location().contains(&path));
        let cfg: PostgresSourceConfig = toml::from_str(
            "name = \"pg\"\nreplicas = [\"postgres://a@h/db\"]\npassword_env = \"SLUICE_NO_SUCH_VAR_42\"\n",
        )
        .unwrap();
        let err = PostgresConnector::new(&cfg).unwrap_err().to_string();
        assert!(err.contains("SLUICE_NO_SUCH_VAR_42 is not set"), "{err}");
    }

    #[test]
    fn tls_settings_come_off_the_url() {
        let (pg, tls) = parse_replica(
            "postgres://a@h/db?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(tls.mode, TlsMode::VerifyFull);
        assert_eq!(tls.roots, Some(Roots::File("/ca.pem".into())));
        assert_eq!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(pg.get_connect_timeout(), Some(&Duration::from_secs(3)));
        let (pg, _) =
            parse_replica("postgres://a@h/db?sslmode=disable&options=-c%20work_mem%3D64MB%2B1")
                .unwrap();
        assert_eq!(pg.get_options(), Some("-c work_mem=64MB+1"));
        let (_, tls) = parse_replica("postgres://a@h/db").unwrap();
        assert_eq!(tls.mode, TlsMode::Prefer);
        let (_, tls) = parse_replica("host=h user=a sslmode=disable").unwrap();
        assert_eq!(tls.mode, TlsMode::Disable);
        for bad in [
            "postgres://a@h/db?sslmode=sometimes",
            "postgres://a@h/db?sslcert=/c.pem",
            "postgres://a@h/db?nonsense=1",
        ] {
            assert!(parse_replica(bad).is_err(), "{bad}");
        }
        let cfg: PostgresSourceConfig = toml::from_str(
            "name = \"pg\"\nreplicas = [\"postgres://a@h/db?sslmode=verify-ca&sslrootcert=/nope.pem\"]\n",
        )
        .unwrap();
        let err = PostgresConnector::new(&cfg).unwrap_err().to_string();
        assert!(err.contains("sslrootcert /nope.pem"), "{err}");
    }
}
