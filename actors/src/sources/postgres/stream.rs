//! One remote statement, streamed in batches.
//!
//! Each statement takes a connection from the pool and, in one round trip, opens a `READ
//! ONLY` transaction (with `statement_timeout` from the query's remaining time,
//! `application_name` = `sluice:<query id>`, `TimeZone` = UTC and standard strings) and runs
//! the statement unnamed (no separate prepare); then it reads rows as they arrive.
//! tokio-postgres stops reading the socket while a batch waits to be consumed, so PostgreSQL
//! blocks on a full socket and memory holds about one batch, never the table.
//!
//! # Cancellation
//! From the moment a connection is taken until the last row, the connection is held by an
//! [`InFlight`] guard. Dropping the stream anywhere in between (client gone, timeout,
//! `DELETE /v1/queries/{id}`, an error) sends PostgreSQL a cancel request for that backend and
//! closes the connection instead of returning it to the pool: it may still be mid-statement or
//! in an aborted transaction. After the last row the transaction is committed in the
//! background and the connection goes back to the pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result as DfResult;
use deadpool_postgres::{Object, PoolError};
use futures::StreamExt;
use sluice_planner::datafusion;
use sluice_planner::federation::{ErrorClass, Pulled, RemoteError};
use sluice_planner::redact::redact;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{CancelToken, RowStream};

use super::decode::ColumnDecoder;
use super::executor::PgRemote;
use crate::metrics;

/// Rows per batch.
const BATCH_ROWS: usize = 8192;
/// Used when the query carries no deadline (tests, benches).
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);
/// PostgreSQL's own `statement_timeout` is the query's remaining time plus this, so Sluice's
/// timeout fires first (a clean 504 and a cancel); the server's is the backstop should Sluice
/// itself stall or die.
const STATEMENT_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// Sent on every remote session, so DBAs can tell Sluice's statements apart.
pub const APPLICATION_NAME: &str = "sluice";

/// A statement's failure, classified and counted.
pub fn statement_error(source: &str, e: &tokio_postgres::Error) -> RemoteError {
    tracing::warn!(source, error = %e, "Remote statement failed.");
    ::metrics::counter!(metrics::SOURCE_ERRORS_TOTAL, "source" => source.to_owned(), "op" => "query")
        .increment(1);
    let (class, message) = match e.as_db_error() {
        Some(db) if db.code() == &tokio_postgres::error::SqlState::QUERY_CANCELED => (
            ErrorClass::Timeout,
            format!(
                "source {source} cancelled the remote statement: {}",
                db.message()
            ),
        ),
        // Class 22, data exception: the data made the statement fail (a cast, overflow,
        // division by zero), as it would have locally.
        Some(db) if db.code().code().starts_with("22") => (
            ErrorClass::Data,
            format!(
                "source {source}: {} (SQLSTATE {})",
                db.message(),
                db.code().code()
            ),
        ),
        // Class 08, connection exception; 53, insufficient resources; 57P0x, shutdown.
        Some(db)
            if db.code().code().starts_with("08")
                || db.code().code().starts_with("53")
                || db.code().code().starts_with("57P") =>
        {
            (
                ErrorClass::Unavailable,
                format!("source {source} cannot serve now: {}", db.message()),
            )
        }
        Some(db) => (
            ErrorClass::Upstream,
            format!(
                "source {source} failed the remote statement: {} (SQLSTATE {})",
                db.message(),
                db.code().code()
            ),
        ),
        None if e.is_closed() => (
            ErrorClass::Unavailable,
            format!("source {source} closed the connection"),
        ),
        None => (
            ErrorClass::Unavailable,
            format!("source {source} could not be read from"),
        ),
    };
    RemoteError::new(source, class, redact(&message))
}

fn pool_error(source: &str, e: PoolError) -> RemoteError {
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
    RemoteError::new(source, ErrorClass::Unavailable, message)
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
            let pending = Arc::clone(&self.remote.cancels);
            pending.send_modify(|n| *n += 1);
            rt.spawn(async move {
                if let Err(e) = cancel.await {
                    tracing::warn!(error = %e, "Cancelling a remote statement failed.");
                }
                pending.send_modify(|n| *n = n.saturating_sub(1));
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

/// One statement's state, from the first poll to the last row.
pub struct Statement {
    /// Source name.
    pub source: String,
    /// The SQL.
    pub sql: String,
    /// What the rows must be.
    pub schema: SchemaRef,
    /// How to reach the replica.
    pub remote: PgRemote,
    /// For `application_name`.
    pub query_id: String,
    /// The query's W3C `traceparent`, sent as a trailing comment (sqlcommenter's form) so
    /// PostgreSQL's statement log names the trace.
    traceparent: Option<String>,
    /// The time left.
    pub timeout: Duration,
    /// Where bytes are counted.
    pub pulled: Arc<Pulled>,
    in_flight: Option<InFlight>,
    rows: Option<std::pin::Pin<Box<RowStream>>>,
    decoders: Option<Vec<ColumnDecoder>>,
    started: Instant,
    handed_on: bool,
    done: bool,
}

impl Statement {
    /// The same, naming `traceparent` in a comment after the statement (only the characters
    /// of a W3C `traceparent` are kept, so the comment cannot end early).
    #[must_use]
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent.map(|t| {
            t.chars()
                .filter(|c| c.is_ascii_hexdigit() || *c == '-')
                .collect()
        });
        self
    }

    /// A statement that starts on its first [`Self::next_batch`].
    #[allow(clippy::too_many_arguments, reason = "one constructor, fields by name")]
    pub fn new(
        source: String,
        sql: String,
        schema: SchemaRef,
        remote: PgRemote,
        query_id: String,
        timeout: Duration,
        pulled: Arc<Pulled>,
    ) -> Self {
        Self {
            source,
            sql,
            schema,
            remote,
            query_id,
            traceparent: None,
            timeout,
            pulled,
            in_flight: None,
            rows: None,
            decoders: None,
            started: Instant::now(),
            handed_on: false,
            done: false,
        }
    }

    async fn start(&mut self) -> Result<(), RemoteError> {
        let source = self.source.clone();
        let conn = self.remote.pool.get().await.map_err(|e| {
            if matches!(e, PoolError::Timeout(_)) {
                self.remote
                    .pool_timeouts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            pool_error(&source, e)
        })?;
        let cancel = conn.cancel_token();
        let in_flight = self.in_flight.insert(InFlight {
            conn: Some(conn),
            cancel,
            remote: self.remote.clone(),
        });
        let Some(client) = in_flight.client() else {
            return Err(RemoteError::new(
                &source,
                ErrorClass::Unavailable,
                format!("source {source} lost its connection"),
            ));
        };
        let ms = (self.timeout + STATEMENT_TIMEOUT_MARGIN)
            .as_millis()
            .clamp(1, i32::MAX as u128);
        // Only [A-Za-z0-9_:-] reach the quoted literal.
        let app: String = format!("{APPLICATION_NAME}:{}", self.query_id)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'))
            .collect();
        let preamble = format!(
            "BEGIN READ ONLY; SET LOCAL statement_timeout = {ms}; \
             SET LOCAL application_name = '{app}'; SET LOCAL TimeZone = 'UTC'; \
             SET LOCAL standard_conforming_strings = on"
        );
        let sent = match &self.traceparent {
            Some(t) => format!("{} /*traceparent='{t}'*/", self.sql),
            None => self.sql.clone(),
        };
        ::metrics::counter!(metrics::SOURCE_REQUESTS_TOTAL, "source" => source.clone(), "op" => "query")
            .increment(1);
        self.started = Instant::now();
        // Pipelined: the transaction's settings, then the statement (unnamed: parse, bind and
        // execute in one message), in one round trip. The server runs them in order; if the
        // preamble fails, so does the statement.
        let (begun, rows) = futures::join!(
            client.batch_execute(&preamble),
            client.query_typed_raw(sent.as_str(), std::iter::empty::<(String, Type)>())
        );
        begun.map_err(|e| statement_error(&source, &e))?;
        let rows = rows.map_err(|e| statement_error(&source, &e))?;
        self.rows = Some(Box::pin(rows));
        Ok(())
    }

    /// The next batch, `None` after the last row.
    ///
    /// # Errors
    /// A [`RemoteError`] (as a DataFusion error): the statement failed, or a value does not
    /// fit its column.
    pub async fn next_batch(&mut self) -> DfResult<Option<RecordBatch>> {
        let handed_on = self.handed_on;
        let batch = self.read_batch().await.map_err(|e| {
            // Once rows were handed on, running the statement again would repeat them.
            if handed_on { e.not_retryable() } else { e }.into_df()
        })?;
        self.handed_on |= batch.is_some();
        Ok(batch)
    }

    async fn read_batch(&mut self) -> Result<Option<RecordBatch>, RemoteError> {
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
        let mut builders: Option<Vec<Box<dyn datafusion::arrow::array::ArrayBuilder>>> = None;
        let mut n = 0usize;
        let mut bytes = 0u64;
        while n < BATCH_ROWS {
            let Some(row) = rows.next().await else {
                break;
            };
            let row = row.map_err(|e| statement_error(source, &e))?;
            let decoders = match &self.decoders {
                Some(d) => d,
                None => {
                    ::metrics::histogram!(metrics::SOURCE_REQUEST_SECONDS, "source" => source.to_owned(), "op" => "query")
                        .record(self.started.elapsed().as_secs_f64());
                    self.decoders.insert(decoders(source, &row, &self.schema)?)
                }
            };
            let builders = builders
                .get_or_insert_with(|| decoders.iter().map(|d| d.builder(BATCH_ROWS)).collect());
            for (i, (b, d)) in builders.iter_mut().zip(decoders.iter()).enumerate() {
                let column = || self.schema.field(i).name().as_str();
                let raw: Option<Raw<'_>> = row
                    .try_get(i)
                    .map_err(|e| RemoteError::value(source, column(), e))?;
                let raw = raw.map(|r| r.0);
                bytes += raw.map_or(0, |r| r.len() as u64);
                d.append(b.as_mut(), raw).map_err(|e| {
                    let err = RemoteError::value(source, column(), &e);
                    // A value too wide for its type is the data's doing, as an overflow is.
                    if e.misfit {
                        RemoteError {
                            class: ErrorClass::Data,
                            ..err
                        }
                    } else {
                        err
                    }
                })?;
            }
            n += 1;
        }
        ::metrics::counter!(metrics::SOURCE_BYTES_READ_TOTAL, "source" => source.to_owned())
            .increment(bytes);
        self.pulled.add_bytes(bytes);
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
        let columns: Vec<ArrayRef> = builders
            .unwrap_or_default()
            .iter_mut()
            .map(|b| b.finish())
            .collect();
        RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )
        .map(Some)
        .map_err(|e| RemoteError::new(source, ErrorClass::Upstream, e.to_string()))
    }
}

/// One decoder per column, from the types PostgreSQL sent to those the plan expects.
fn decoders(
    source: &str,
    row: &tokio_postgres::Row,
    schema: &SchemaRef,
) -> Result<Vec<ColumnDecoder>, RemoteError> {
    let columns = row.columns();
    if columns.len() != schema.fields().len() {
        return Err(RemoteError::new(
            source,
            ErrorClass::Upstream,
            format!(
                "source {source} returned {} columns where {} are expected",
                columns.len(),
                schema.fields().len()
            ),
        ));
    }
    columns
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            ColumnDecoder::new(c.type_(), f.data_type())
                .map_err(|e| RemoteError::value(source, f.name(), e))
        })
        .collect()
}
