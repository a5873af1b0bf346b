//! [`PgScanExec`]: one remote `SELECT`, streamed in batches.
//!
//! Each execution takes a connection from the source's pool and, in one round trip, opens a
//! `READ ONLY` transaction (with `statement_timeout` from the query's remaining time,
//! `application_name` = `sluice:<query id>`, `TimeZone` = UTC and standard strings) and runs
//! the statement unnamed (no separate prepare); then it reads rows as they arrive. tokio-postgres stops reading
//! the socket while a batch waits to be consumed, so PostgreSQL blocks on a full socket and
//! memory holds about one batch, never the table.
//!
//! # Cancellation
//! From the moment a connection is taken until the last row, the connection is held by an
//! [`InFlight`] guard. Dropping the stream anywhere in between (client gone, timeout,
//! `DELETE /v1/queries/{id}`, an error) sends PostgreSQL a cancel request for that backend and
//! closes the connection instead of returning it to the pool: it may still be mid-statement or
//! in an aborted transaction. After the last row the transaction is committed in the
//! background and the connection goes back to the pool.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions,
};
use deadpool_postgres::{Object, PoolError};
use futures::StreamExt;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{CancelToken, RowStream};

use super::PgRemote;
use super::types::{self, PgType};
use crate::metrics;
use crate::redact::redact;
use crate::session::QueryContext;

/// Rows per batch.
const BATCH_ROWS: usize = 8192;
/// Used when the query carries no deadline (tests, benches).
const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);
/// PostgreSQL's own `statement_timeout` is the query's remaining time plus this, so Sluice's
/// timeout fires first (a clean 504 and a cancel); the server's is the backstop should Sluice
/// itself stall or die.
const STATEMENT_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// How a remote statement failed, for the HTTP edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteErrorKind {
    /// The source could not be reached or went away (no free connection, refused, closed).
    Unavailable,
    /// The source ran the statement and failed it.
    Upstream,
    /// The source's statement timeout fired.
    Timeout,
}

/// Why a remote statement failed, classified for the HTTP edge.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    /// Source (catalog) name.
    pub source_name: String,
    /// What kind of failure.
    pub kind: RemoteErrorKind,
    /// Safe to show: no credentials or connection details.
    pub message: String,
}

impl RemoteError {
    fn into_df(source: &str, kind: RemoteErrorKind, message: String) -> DataFusionError {
        DataFusionError::External(Box::new(Self {
            source_name: source.to_owned(),
            kind,
            message,
        }))
    }

    fn pool(source: &str, e: PoolError) -> DataFusionError {
        let message = match &e {
            PoolError::Timeout(_) => format!(
                "source {source} has no free connection: every pooled connection stayed busy past \
                 the wait timeout"
            ),
            _ => format!("source {source} refused a connection"),
        };
        tracing::warn!(source, error = %e, "Getting a connection failed.");
        ::metrics::counter!(metrics::SOURCE_ERRORS_TOTAL, "source" => source.to_owned(), "op" => "connect")
            .increment(1);
        Self::into_df(source, RemoteErrorKind::Unavailable, message)
    }

    fn statement(source: &str, e: &tokio_postgres::Error) -> DataFusionError {
        tracing::warn!(source, error = %e, "Remote statement failed.");
        ::metrics::counter!(metrics::SOURCE_ERRORS_TOTAL, "source" => source.to_owned(), "op" => "query")
            .increment(1);
        let (kind, message) = match e.as_db_error() {
            Some(db) if db.code() == &tokio_postgres::error::SqlState::QUERY_CANCELED => (
                RemoteErrorKind::Timeout,
                format!(
                    "source {source} cancelled the remote statement: {}",
                    db.message()
                ),
            ),
            Some(db) => (
                RemoteErrorKind::Upstream,
                format!(
                    "source {source} failed the remote statement: {} (SQLSTATE {})",
                    db.message(),
                    db.code().code()
                ),
            ),
            None if e.is_closed() => (
                RemoteErrorKind::Unavailable,
                format!("source {source} closed the connection"),
            ),
            None => (
                RemoteErrorKind::Unavailable,
                format!("source {source} could not be read from"),
            ),
        };
        Self::into_df(source, kind, redact(&message))
    }

    fn decode(source: &str, column: &str, e: &str) -> DataFusionError {
        Self::into_df(
            source,
            RemoteErrorKind::Upstream,
            format!("column {column} of source {source}: {e}"),
        )
    }
}

/// A remote `SELECT` as an execution plan (one partition).
#[derive(Debug)]
pub struct PgScanExec {
    source: String,
    sql: String,
    types: Arc<Vec<PgType>>,
    schema: SchemaRef,
    remote: PgRemote,
    properties: Arc<PlanProperties>,
}

impl PgScanExec {
    pub(crate) fn new(
        source: String,
        sql: String,
        types: Vec<PgType>,
        schema: SchemaRef,
        remote: PgRemote,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            source,
            sql,
            types: Arc::new(types),
            schema,
            remote,
            properties,
        }
    }

    /// The statement sent to the source.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The source (catalog) it is sent to.
    pub fn source_name(&self) -> &str {
        &self.source
    }
}

impl DisplayAs for PgScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PostgresScanExec: source={}, sql={}",
            self.source, self.sql
        )
    }
}

impl ExecutionPlan for PgScanExec {
    fn name(&self) -> &'static str {
        "PostgresScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let query = context.session_config().get_extension::<QueryContext>();
        let (query_id, timeout) = match query.as_deref() {
            Some(q) => (
                q.id.clone(),
                q.deadline.saturating_duration_since(Instant::now()),
            ),
            None => ("-".to_owned(), DEFAULT_STATEMENT_TIMEOUT),
        };
        let scan = Scan {
            source: self.source.clone(),
            sql: self.sql.clone(),
            types: Arc::clone(&self.types),
            schema: Arc::clone(&self.schema),
            remote: self.remote.clone(),
            query_id,
            timeout,
            in_flight: None,
            rows: None,
            started: Instant::now(),
            first_row: true,
            done: false,
        };
        let stream = futures::stream::try_unfold(scan, |mut s| async move {
            let batch = s.next_batch().await?;
            Ok(batch.map(|b| (b, s)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}

/// A pooled connection running one remote statement. Until [`InFlight::finish`], dropping it
/// cancels the statement and closes the connection.
struct InFlight {
    conn: Option<Object>,
    cancel: CancelToken,
    remote: PgRemote,
}

impl InFlight {
    fn client(&self) -> Option<&tokio_postgres::Client> {
        self.conn.as_deref().map(|c| &**c)
    }

    /// The statement ended: commit in the background, then the connection returns to the pool.
    fn finish(mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if conn.batch_execute("COMMIT").await.is_err() {
                    drop(Object::take(conn));
                }
            });
        } else {
            drop(Object::take(conn));
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        drop(Object::take(conn));
        let cancel = (self.remote.cancel)(self.cancel.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = cancel.await {
                    tracing::warn!(error = %e, "Cancelling a remote statement failed.");
                }
            });
        }
    }
}

/// Any value, as its raw binary bytes.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// One execution's state.
struct Scan {
    source: String,
    sql: String,
    types: Arc<Vec<PgType>>,
    schema: SchemaRef,
    remote: PgRemote,
    query_id: String,
    timeout: Duration,
    in_flight: Option<InFlight>,
    rows: Option<std::pin::Pin<Box<RowStream>>>,
    started: Instant,
    first_row: bool,
    done: bool,
}

impl Scan {
    async fn start(&mut self) -> DfResult<()> {
        let source = self.source.clone();
        let conn = self.remote.pool.get().await.map_err(|e| {
            if matches!(e, PoolError::Timeout(_)) {
                self.remote
                    .pool_timeouts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            RemoteError::pool(&source, e)
        })?;
        let cancel = conn.cancel_token();
        let in_flight = self.in_flight.insert(InFlight {
            conn: Some(conn),
            cancel,
            remote: self.remote.clone(),
        });
        let Some(client) = in_flight.client() else {
            return Err(RemoteError::into_df(
                &source,
                RemoteErrorKind::Unavailable,
                format!("source {source} lost its connection"),
            ));
        };
        let ms = (self.timeout + STATEMENT_TIMEOUT_MARGIN)
            .as_millis()
            .clamp(1, i32::MAX as u128);
        // Only [A-Za-z0-9_:-] reach the quoted literal.
        let app: String = format!("{}:{}", super::APPLICATION_NAME, self.query_id)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'))
            .collect();
        let preamble = format!(
            "BEGIN READ ONLY; SET LOCAL statement_timeout = {ms}; \
             SET LOCAL application_name = '{app}'; SET LOCAL TimeZone = 'UTC'; \
             SET LOCAL standard_conforming_strings = on"
        );
        ::metrics::counter!(metrics::SOURCE_REQUESTS_TOTAL, "source" => source.clone(), "op" => "query")
            .increment(1);
        self.started = Instant::now();
        // Pipelined: the transaction's settings, then the statement (unnamed: parse, bind and
        // execute in one message), in one round trip. The server runs them in order; if the
        // preamble fails, so does the statement.
        let (begun, rows) = futures::join!(
            client.batch_execute(&preamble),
            client.query_typed_raw(self.sql.as_str(), std::iter::empty::<(String, Type)>())
        );
        begun.map_err(|e| RemoteError::statement(&source, &e))?;
        let rows = rows.map_err(|e| RemoteError::statement(&source, &e))?;
        self.rows = Some(Box::pin(rows));
        Ok(())
    }

    async fn next_batch(&mut self) -> DfResult<Option<RecordBatch>> {
        if self.done {
            return Ok(None);
        }
        if self.rows.is_none() {
            self.start().await?;
        }
        let Some(rows) = self.rows.as_mut() else {
            return Ok(None);
        };
        let source = self.source.as_str();
        let mut builders: Vec<_> = self
            .types
            .iter()
            .map(|t| types::builder(t, BATCH_ROWS))
            .collect();
        let mut n = 0usize;
        let mut bytes = 0u64;
        while n < BATCH_ROWS {
            let Some(row) = rows.next().await else {
                break;
            };
            let row = row.map_err(|e| RemoteError::statement(source, &e))?;
            if self.first_row {
                self.first_row = false;
                ::metrics::histogram!(metrics::SOURCE_REQUEST_SECONDS, "source" => source.to_owned(), "op" => "query")
                    .record(self.started.elapsed().as_secs_f64());
                check_types(source, &row, &self.types, &self.schema)?;
            }
            for (i, (b, ty)) in builders.iter_mut().zip(self.types.iter()).enumerate() {
                let column = || self.schema.field(i).name().as_str();
                let raw: Option<Raw<'_>> = row
                    .try_get(i)
                    .map_err(|e| RemoteError::decode(source, column(), &e.to_string()))?;
                let raw = raw.map(|r| r.0);
                bytes += raw.map_or(0, |r| r.len() as u64);
                types::append(b.as_mut(), ty, raw)
                    .map_err(|e| RemoteError::decode(source, column(), &e.0))?;
            }
            n += 1;
        }
        ::metrics::counter!(metrics::SOURCE_BYTES_READ_TOTAL, "source" => source.to_owned())
            .increment(bytes);
        if n < BATCH_ROWS {
            // The end of the rows.
            self.done = true;
            self.rows = None;
            if let Some(f) = self.in_flight.take() {
                f.finish();
            }
            if n == 0 {
                return Ok(None);
            }
        }
        let columns: Vec<ArrayRef> = builders.iter_mut().map(|b| b.finish()).collect();
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        Ok(Some(batch))
    }
}

/// The types PostgreSQL sent are the ones discovered: a table altered since its columns were
/// loaded is refused with a clear error rather than misread.
fn check_types(
    source: &str,
    row: &tokio_postgres::Row,
    expected: &[PgType],
    schema: &SchemaRef,
) -> DfResult<()> {
    for (i, (column, ty)) in row.columns().iter().zip(expected).enumerate() {
        if !ty.accepts(column.type_()) {
            return Err(RemoteError::decode(
                source,
                schema.field(i).name(),
                &format!(
                    "PostgreSQL sent type {} but {} was discovered: the table changed since its \
                     columns were loaded; refresh the source",
                    column.type_().name(),
                    ty.name()
                ),
            ));
        }
    }
    Ok(())
}
