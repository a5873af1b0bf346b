//! Snowflake sources: Sluice's own client for the driver protocol (the one every official
//! driver speaks), one session per source, and one [`SfExecutor`] behind the planner's
//! executor seam.
//!
//! - [`client`]: login (password or key pair), statements, polling, abort, heartbeat, token
//!   renewal and re-login, retries.
//! - [`auth`]: the key-pair JWT.
//! - [`executor`]: statements as record-batch streams, `max_concurrency` slots, chunks
//!   fetched with bounded prefetch, abort on drop.
//! - [`decode`]: Snowflake's Arrow and JSON encodings into the Arrow types the plan expects.
//! - [`catalog`]: discovery through `information_schema`.
//! - [`protocol`]: the JSON of the protocol.
//!
//! Health: a heartbeat (which keeps the session alive) and `SELECT 1`, which needs no
//! running warehouse. Statements waiting for a slot make the source Degraded.

pub mod auth;
pub mod catalog;
pub mod client;
pub mod decode;
pub mod executor;
pub mod protocol;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use sluice_planner::federation::dialect::snowflake::SnowflakeDialect;
use sluice_planner::federation::{RemoteCatalog, RemoteExecutor, RemoteSource};
use sluice_planner::redact::redact;
use sluice_planner::{CatalogStatus, Planner, SourceCatalog};
use sluice_schemas::{SnowflakeAuth, SnowflakeSourceConfig};
use url::Url;

use self::auth::KeyPair;
use self::client::{Client, ClientConfig, Credentials};
use self::executor::SfExecutor;
use super::{BuiltSource, Connector};
use crate::error::{Result, SourceError};

/// A Snowflake source's session and executor.
pub struct SnowflakeConnector {
    executor: Arc<SfExecutor>,
    display: String,
    catalog: Option<Arc<RemoteCatalog>>,
}

impl std::fmt::Debug for SnowflakeConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnowflakeConnector")
            .field("location", &self.display)
            .finish_non_exhaustive()
    }
}

/// The account's public endpoint, or the configured URL.
fn base_url(cfg: &SnowflakeSourceConfig) -> Result<Url> {
    let text = cfg
        .url
        .clone()
        .unwrap_or_else(|| format!("https://{}.snowflakecomputing.com", cfg.account));
    let url = Url::parse(&text)
        .map_err(|e| SourceError::Config(format!("url `{text}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(SourceError::Config(format!(
            "url `{text}` is not an http(s) URL"
        )));
    }
    Ok(url)
}

fn env(name: &str, what: &str) -> Result<String> {
    std::env::var(name)
        .map_err(|_| SourceError::Config(format!("{what}: environment variable {name} is not set")))
}

/// The credentials the config points at, read now.
fn credentials(auth: &SnowflakeAuth) -> Result<Credentials> {
    match auth {
        SnowflakeAuth::Password { password_env } => Ok(Credentials::Password(
            env(password_env, "password_env")?.into(),
        )),
        SnowflakeAuth::Keypair {
            private_key_path,
            private_key_passphrase_env,
        } => {
            let pem = std::fs::read_to_string(private_key_path).map_err(|e| {
                SourceError::Config(format!(
                    "private_key_path {private_key_path} cannot be read: {e}"
                ))
            })?;
            let passphrase = private_key_passphrase_env
                .as_deref()
                .map(|n| env(n, "private_key_passphrase_env"))
                .transpose()?;
            Ok(Credentials::KeyPair(Box::new(KeyPair::from_pem(
                &pem,
                passphrase.as_deref(),
            )?)))
        }
    }
}

impl SnowflakeConnector {
    /// Reads the credentials and builds the client. Nothing is sent yet.
    ///
    /// # Errors
    /// [`SourceError::Config`] for a URL that cannot be used, a missing password variable, or
    /// a key that cannot be read or decrypted.
    pub fn new(cfg: &SnowflakeSourceConfig) -> Result<Self> {
        let base = base_url(cfg)?;
        let credentials = credentials(&cfg.auth)?;
        let display = format!("{} as {}", base.as_str().trim_end_matches('/'), cfg.user);
        // Statements that can share a session: the same account, login, role, warehouse and
        // database (tables are named `schema.table` in the statements).
        let context = format!(
            "snowflake {} {} {} {:?} {:?} {:?}",
            base, cfg.account, cfg.user, cfg.role, cfg.warehouse, cfg.database
        );
        let client = Client::new(
            &cfg.name,
            ClientConfig {
                base,
                account: cfg.account.clone(),
                user: cfg.user.clone(),
                credentials,
                warehouse: cfg.warehouse.clone(),
                database: cfg.database.clone(),
                schema: cfg.schema.clone(),
                role: cfg.role.clone(),
                request_timeout: Duration::from_millis(cfg.request_timeout_ms),
            },
        )
        .map_err(SourceError::Config)?;
        let executor = SfExecutor::new(
            &cfg.name,
            context,
            Arc::new(client),
            usize::try_from(cfg.max_concurrency).unwrap_or(1),
            usize::try_from(cfg.prefetch_chunks).unwrap_or(1),
        );
        Ok(Self {
            executor: Arc::new(executor),
            display,
            catalog: None,
        })
    }

    /// Attaches the catalog this source's refreshes reload.
    pub fn with_catalog(mut self, catalog: Arc<RemoteCatalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }
}

impl Connector for SnowflakeConnector {
    fn kind(&self) -> &'static str {
        "snowflake"
    }

    fn display_location(&self) -> String {
        self.display.clone()
    }

    fn health_check(&self) -> BoxFuture<'_, Result<()>> {
        async move {
            let client = self.executor.client();
            let failed = |e: sluice_planner::federation::RemoteError| {
                SourceError::Catalog(redact(&e.message))
            };
            client.heartbeat().await.map_err(failed)?;
            let request_id = uuid::Uuid::new_v4().to_string();
            let lease = client.lease().await.map_err(failed)?;
            client
                .query(
                    &lease,
                    "SELECT 1",
                    &request_id,
                    "sluice:health",
                    Duration::from_secs(30),
                )
                .await
                .map_err(failed)?;
            Ok(())
        }
        .boxed()
    }

    fn pressure(&self) -> Option<String> {
        let (running, waiting, slots) = self.executor.load();
        (waiting > 0).then(|| {
            format!(
                "statement slots saturated: {running} of {slots} running, {waiting} waiting \
                 (max_concurrency)"
            )
        })
    }

    fn refresh(&self) -> BoxFuture<'_, Result<Option<usize>>> {
        super::refresh_remote(self.catalog.as_ref(), self.executor.as_ref()).boxed()
    }

    fn catalog_status(&self) -> Option<CatalogStatus> {
        self.catalog.as_ref().map(|c| c.status())
    }

    fn executor(&self) -> Option<Arc<dyn RemoteExecutor>> {
        Some(Arc::clone(&self.executor) as Arc<dyn RemoteExecutor>)
    }

    /// Deletes the pooled sessions (`/session?delete=true`).
    fn close(&self) -> BoxFuture<'_, ()> {
        self.executor.client().close().boxed()
    }
}

/// Builds a Snowflake source: its client (credentials read now), and its catalog registered
/// with `planner` (discovered on the first refresh).
///
/// # Errors
/// [`SourceError::Config`] for a URL or credentials that cannot be used.
pub fn build(cfg: &SnowflakeSourceConfig, planner: &Planner) -> Result<BuiltSource> {
    let connector = SnowflakeConnector::new(cfg)?;
    let schemas = (!cfg.schemas.is_empty()).then(|| cfg.schemas.clone());
    let catalog = planner.register_remote_source(
        RemoteSource {
            name: cfg.name.clone(),
            dialect: SnowflakeDialect::shared(),
            pushdown: cfg.pushdown,
            // Snowflake's EXPLAIN gives partitions and bytes, not rows: nothing to weigh yet.
            estimates: None,
        },
        schemas,
    );
    Ok(BuiltSource::new(
        cfg.name.clone(),
        Arc::new(connector.with_catalog(catalog)),
        (cfg.health_check_interval_ms, cfg.refresh_interval_ms),
    )
    .with_routing(
        cfg.fallback.clone(),
        Some(super::Concurrency {
            max: cfg.max_concurrency,
            max_queued: cfg.max_queued,
            queue_timeout: std::time::Duration::from_millis(cfg.queue_timeout_ms),
        }),
    ))
}
