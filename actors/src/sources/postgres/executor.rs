//! [`PgExecutor`]: PostgreSQL behind the planner's [`RemoteExecutor`] seam, one per replica.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use sluice_planner::datafusion;
use sluice_planner::federation::dialect::postgres::PostgresDialect;
use sluice_planner::federation::{
    ErrorClass, RemoteError, RemoteExecutor, RemoteTableDef, SourceDialect, StatementContext,
};
use sluice_planner::redact::with_causes;

use super::catalog::{DISCOVER_TIMEOUT, discover};
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

    async fn discover(&self, schemas: Option<&[String]>) -> Result<Vec<RemoteTableDef>, String> {
        let failed = |e: &(dyn std::error::Error + 'static)| with_causes(e);
        let mut client = self.remote.pool.get().await.map_err(|e| failed(&e))?;
        // Read-only and bounded, like every statement Sluice sends.
        let tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(|e| failed(&e))?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}",
            DISCOVER_TIMEOUT.as_millis()
        ))
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
