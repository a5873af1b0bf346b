//! [`SfExecutor`]: Snowflake behind the planner's [`RemoteExecutor`] seam.
//!
//! One statement: wait for one of the source's `max_concurrency` slots (statements beyond
//! it queue, to protect the warehouse), send it with the query id as `QUERY_TAG`, poll until
//! it is done, then stream its rows: the first part inline (`rowsetBase64`, or the JSON
//! `rowset`), then its further chunks, fetched `prefetch` at a time and handed on in
//! order. Memory holds about `prefetch` chunks however big the result is.
//!
//! # Cancellation
//! From the query request until Snowflake has answered it, an [`AbortGuard`] is held:
//! dropping the stream then (client gone, `DELETE /v1/queries/{id}`, Sluice's timeout) sends
//! `abort-request` for the statement's request id. Once Snowflake has answered, the
//! statement is over and only its stored result is read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use sluice_planner::datafusion;
use sluice_planner::federation::dialect::snowflake::SnowflakeDialect;
use sluice_planner::federation::{
    ErrorClass, Pulled, RemoteError, RemoteExecutor, RemoteTableDef, SourceDialect,
    StatementContext,
};
use tokio::sync::Semaphore;

use super::catalog::{self, Row};
use super::client::{Client, Followed};
use super::decode;
use super::protocol::{Chunk, QueryData, RowType};
use crate::metrics;

/// Used when the query carries no deadline (tests, benches, discovery).
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs a source's statements on its Snowflake session.
#[derive(Debug)]
pub struct SfExecutor {
    source: String,
    context: String,
    client: Arc<Client>,
    dialect: Arc<dyn SourceDialect>,
    slots: Arc<Semaphore>,
    max_concurrency: usize,
    waiting: Arc<AtomicU64>,
    prefetch: usize,
}

/// Sends `abort-request` for a statement when dropped while armed.
struct AbortGuard {
    client: Arc<Client>,
    session: Followed,
    sql: String,
    request_id: String,
    armed: bool,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let client = Arc::clone(&self.client);
        // The session may still be running the statement: out of the pool until aborted.
        let session = self.session.retire();
        let sql = std::mem::take(&mut self.sql);
        let request_id = std::mem::take(&mut self.request_id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                match client.abort(&session, &sql, &request_id).await {
                    Ok(()) => {
                        tracing::info!(source = client.source(), request_id, "Aborted a Snowflake statement.");
                        client.give_back(session);
                    }
                    Err(e) => tracing::warn!(source = client.source(), error = %e, "Aborting a Snowflake statement failed."),
                }
            });
        }
    }
}

/// Everything a statement's stream needs, owned.
#[derive(Clone)]
struct Run {
    client: Arc<Client>,
    schema: SchemaRef,
    pulled: Arc<Pulled>,
}

impl Run {
    fn source(&self) -> &str {
        self.client.source()
    }

    fn count_bytes(&self, n: usize) {
        let n = n as u64;
        self.pulled.add_bytes(n);
        ::metrics::counter!(metrics::SOURCE_BYTES_READ_TOTAL, "source" => self.source().to_owned())
            .increment(n);
    }

    fn upstream(&self, why: impl std::fmt::Display) -> RemoteError {
        RemoteError::new(
            self.source(),
            ErrorClass::Upstream,
            format!("source {}: {why}", self.source()),
        )
    }

    /// Converts a batch Snowflake sent (columns in `rowtype` order) into the expected schema.
    fn convert_one(
        &self,
        b: &RecordBatch,
        rowtype: &[RowType],
    ) -> Result<RecordBatch, RemoteError> {
        if self.schema.fields().is_empty() {
            // Rows without columns were asked for (`SELECT 1`): only the count counts.
            return RecordBatch::try_new_with_options(
                Arc::clone(&self.schema),
                Vec::new(),
                &RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
            )
            .map_err(|e| self.upstream(e));
        }
        decode::convert(b, rowtype, &self.schema).map_err(|why| {
            let mut e = self.upstream(why);
            e.class = ErrorClass::Data;
            e
        })
    }

    /// An Arrow IPC stream's batches.
    fn read_ipc(&self, buffer: Buffer) -> Result<Vec<RecordBatch>, RemoteError> {
        decode::read_ipc(buffer).map_err(|why| self.upstream(why))
    }

    /// JSON rows as one batch in Snowflake's Arrow encodings.
    fn read_json(
        &self,
        rows: &[Vec<Option<String>>],
        rowtype: &[RowType],
    ) -> Result<(Vec<RecordBatch>, Vec<RowType>), RemoteError> {
        if rows.is_empty() {
            return Ok((Vec::new(), rowtype.to_vec()));
        }
        let (columns, types) = decode::from_json(rows, rowtype).map_err(|why| {
            let mut e = self.upstream(why);
            e.class = ErrorClass::Data;
            e
        })?;
        let fields: Vec<_> = columns
            .iter()
            .zip(&types)
            .map(|(c, t)| {
                datafusion::arrow::datatypes::Field::new(&t.name, c.data_type().clone(), true)
            })
            .collect();
        let batch = RecordBatch::try_new_with_options(
            Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )
        .map_err(|e| self.upstream(e))?;
        Ok((vec![batch], types))
    }

    /// The rows that came with the answer, as Snowflake encoded them (converted as they are
    /// handed on), and their row types. The base64 text is dropped once decoded.
    fn first_part(
        &self,
        data: &mut QueryData,
    ) -> Result<(Vec<RecordBatch>, Vec<RowType>), RemoteError> {
        if let Some(rows) = data.rowset.take()
            && data.rowset_base64.as_deref().is_none_or(str::is_empty)
        {
            self.count_bytes(rows.iter().flatten().flatten().map(String::len).sum());
            return self.read_json(&rows, &data.rowtype);
        }
        let encoded = data.rowset_base64.take().unwrap_or_default();
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|e| self.upstream(format!("rowsetBase64 is not base64: {e}")))?;
        drop(encoded);
        self.count_bytes(bytes.len());
        Ok((
            self.read_ipc(Buffer::from_vec(bytes))?,
            data.rowtype.clone(),
        ))
    }
}

/// Batches as Snowflake encoded them, and the row types that say how.
type Part = (Vec<RecordBatch>, Arc<Vec<RowType>>);

/// One batch as Snowflake encoded it, and its row types.
type Encoded = (RecordBatch, Arc<Vec<RowType>>);

/// A finished statement's rows as Snowflake encoded them, part by part: the first part,
/// then the chunks, `prefetch` fetched at a time, in order. Empty batches are left out.
fn parts(
    run: &Run,
    mut data: QueryData,
    prefetch: usize,
) -> Result<
    impl futures::Stream<Item = Result<Encoded, RemoteError>> + Send + 'static + use<>,
    RemoteError,
> {
    let (first, first_types) = run.first_part(&mut data)?;
    let chunks = Chunks {
        run: run.clone(),
        query_id: data.query_id.clone(),
        headers: Arc::new(chunk_headers(&data)),
        rowtype: Arc::new(data.rowtype.clone()),
        json: data
            .query_result_format
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case("json")),
    };
    let rest = stream::iter(data.chunks.into_iter().enumerate())
        .map(move |(i, c)| chunks.clone().fetch(i, c))
        .buffered(prefetch);
    Ok(
        stream::once(async move { Ok((first, Arc::new(first_types))) })
            .chain(rest)
            .map_ok(|(batches, types)| {
                stream::iter(
                    batches
                        .into_iter()
                        .filter(|b| b.num_rows() > 0)
                        .map(move |b| Ok((b, Arc::clone(&types)))),
                )
            })
            .try_flatten(),
    )
}

/// Where the further chunks of one result are, and how to read them.
#[derive(Clone)]
struct Chunks {
    run: Run,
    query_id: Option<String>,
    headers: Arc<Vec<(String, String)>>,
    rowtype: Arc<Vec<RowType>>,
    json: bool,
}

/// The headers a chunk request carries: the result's own, or its key as SSE-C.
fn chunk_headers(data: &QueryData) -> Vec<(String, String)> {
    match (&data.chunk_headers, &data.qrmk) {
        (Some(h), _) if !h.is_empty() => h.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        (_, Some(key)) => vec![
            (
                "x-amz-server-side-encryption-customer-algorithm".to_owned(),
                "AES256".to_owned(),
            ),
            (
                "x-amz-server-side-encryption-customer-key".to_owned(),
                key.clone(),
            ),
        ],
        _ => Vec::new(),
    }
}

impl Chunks {
    /// Chunk `index` as Snowflake encoded it, with its row types; an expired URL is asked
    /// for again through the result.
    async fn fetch(self, index: usize, chunk: Chunk) -> Result<Part, RemoteError> {
        let client = &self.run.client;
        let mut body = client.chunk(&chunk.url, &self.headers).await?;
        if body.is_none() {
            let query_id = self.query_id.as_deref().ok_or_else(|| {
                self.run
                    .upstream("a chunk URL expired and the result has no query id")
            })?;
            metrics_counter(
                crate::metrics::SNOWFLAKE_CHUNK_URLS_RENEWED_TOTAL,
                self.run.source(),
            );
            let lease = client.lease().await?;
            let fresh = client.result(&lease, query_id).await?;
            let again = fresh.chunks.get(index).ok_or_else(|| {
                self.run
                    .upstream("the result lost a chunk when asked again")
            })?;
            body = client.chunk(&again.url, &chunk_headers(&fresh)).await?;
        }
        let body = body.ok_or_else(|| {
            RemoteError::new(
                self.run.source(),
                ErrorClass::Unavailable,
                format!(
                    "source {}: a result chunk's URL expired twice",
                    self.run.source()
                ),
            )
        })?;
        metrics_counter(crate::metrics::SNOWFLAKE_CHUNKS_TOTAL, self.run.source());
        self.run.count_bytes(body.len());
        if self.json {
            // Rows as JSON arrays, separated by commas, without the enclosing brackets.
            let mut text = Vec::with_capacity(body.len() + 2);
            text.push(b'[');
            text.extend_from_slice(&body);
            text.push(b']');
            let rows: Vec<Vec<Option<String>>> = serde_json::from_slice(&text).map_err(|e| {
                self.run
                    .upstream(format!("a JSON chunk that does not read: {e}"))
            })?;
            let (batches, types) = self.run.read_json(&rows, &self.rowtype)?;
            return Ok((batches, Arc::new(types)));
        }
        Ok((
            self.run.read_ipc(Buffer::from(body))?,
            Arc::clone(&self.rowtype),
        ))
    }
}

fn metrics_counter(name: &'static str, source: &str) {
    ::metrics::counter!(name, "source" => source.to_owned()).increment(1);
}

impl SfExecutor {
    /// An executor of source `source` on `client`; `context` names the account, user, role
    /// and warehouse (no secrets).
    pub fn new(
        source: &str,
        context: String,
        client: Arc<Client>,
        max_concurrency: usize,
        prefetch: usize,
    ) -> Self {
        let max_concurrency = max_concurrency.max(1);
        Self {
            source: source.to_owned(),
            context,
            client,
            dialect: SnowflakeDialect::shared(),
            slots: Arc::new(Semaphore::new(max_concurrency)),
            max_concurrency,
            waiting: Arc::new(AtomicU64::new(0)),
            prefetch: prefetch.max(1),
        }
    }

    /// The client.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// `(statements running, statements waiting for a slot, slots)`.
    pub fn load(&self) -> (usize, u64, usize) {
        (
            self.max_concurrency - self.slots.available_permits(),
            self.waiting.load(Ordering::Relaxed),
            self.max_concurrency,
        )
    }

    /// Runs `sql` and streams its rows as `schema`.
    fn stream(
        &self,
        sql: String,
        schema: SchemaRef,
        context: &StatementContext,
    ) -> impl futures::Stream<Item = Result<RecordBatch, RemoteError>> + Send + 'static {
        let run = Run {
            client: Arc::clone(&self.client),
            schema,
            pulled: Arc::clone(&context.pulled),
        };
        let slots = Arc::clone(&self.slots);
        let waiting = Arc::clone(&self.waiting);
        let prefetch = self.prefetch;
        // `sluice:<query id>`, and the trace when the query has one, so Snowflake's query
        // history finds both.
        let tag = match &context.traceparent {
            Some(t) => format!("sluice:{};traceparent={t}", context.query_id),
            None => format!("sluice:{}", context.query_id),
        };
        let deadline = context.deadline;
        let start = async move {
            let left = || {
                deadline.map_or(DEFAULT_STATEMENT_TIMEOUT, |d| {
                    d.saturating_duration_since(Instant::now())
                })
            };
            let source = run.source().to_owned();
            waiting.fetch_add(1, Ordering::Relaxed);
            let permit = tokio::time::timeout(left(), slots.acquire_owned()).await;
            waiting.fetch_sub(1, Ordering::Relaxed);
            let permit = match permit {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => {
                    return Err(RemoteError::new(
                        &source,
                        ErrorClass::Unavailable,
                        format!("source {source} is shutting down"),
                    ));
                }
                Err(_) => {
                    return Err(RemoteError::new(
                        &source,
                        ErrorClass::Timeout,
                        format!(
                            "source {source}: every one of its statement slots stayed busy until the query's time ran out"
                        ),
                    ));
                }
            };
            ::metrics::counter!(metrics::SOURCE_REQUESTS_TOTAL, "source" => source.clone(), "op" => "query")
                .increment(1);
            let started = Instant::now();
            let lease = run.client.lease().await?;
            let mut guard = AbortGuard {
                client: Arc::clone(&run.client),
                session: lease.follow(),
                sql: sql.clone(),
                request_id: uuid::Uuid::new_v4().to_string(),
                armed: true,
            };
            let answer = run
                .client
                .query(&lease, &sql, &guard.request_id, &tag, left())
                .await;
            // Snowflake answered (rows or its own error): the statement is over there.
            guard.armed = answer
                .as_ref()
                .is_err_and(|e| matches!(e.class, ErrorClass::Timeout | ErrorClass::Unavailable));
            drop(guard);
            drop(lease);
            let data = answer?;
            ::metrics::histogram!(metrics::SOURCE_REQUEST_SECONDS, "source" => source.clone(), "op" => "query")
                .record(started.elapsed().as_secs_f64());
            let convert = run.clone();
            let all = parts(&run, data, prefetch)?
                .and_then(move |(b, types)| std::future::ready(convert.convert_one(&b, &types)))
                // The slot is held until the last chunk has been read.
                .map(move |b| {
                    let _slot = &permit;
                    b
                });
            Ok::<_, RemoteError>(all)
        };
        stream::once(start).try_flatten()
    }

    /// Runs a discovery statement and returns its rows as text, by upper-case column name.
    async fn rows(&self, sql: &str) -> Result<Vec<Row>, RemoteError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let lease = self.client.lease().await?;
        let data = self
            .client
            .query(
                &lease,
                sql,
                &request_id,
                "sluice:discovery",
                DEFAULT_STATEMENT_TIMEOUT,
            )
            .await?;
        drop(lease);
        let run = Run {
            client: Arc::clone(&self.client),
            schema: Arc::new(datafusion::arrow::datatypes::Schema::empty()),
            pulled: Arc::new(Pulled::default()),
        };
        let names: Vec<String> = data
            .rowtype
            .iter()
            .map(|r| r.name.to_ascii_uppercase())
            .collect();
        let batches: Vec<RecordBatch> = parts(&run, data, 1)?
            .map_ok(|(b, _)| b)
            .try_collect()
            .await?;
        // As Snowflake encodes them: NUMBER as integers or decimals at their scale, text as
        // text; columns that do not read as text (timestamps) are not among those read.
        let mut out = Vec::new();
        for batch in batches {
            let texts: Vec<Option<ArrayRef>> = batch
                .columns()
                .iter()
                .map(|c| cast(c, &DataType::Utf8).ok())
                .collect();
            for i in 0..batch.num_rows() {
                let row: Row = names
                    .iter()
                    .zip(&texts)
                    .map(|(n, c)| {
                        let value = c
                            .as_ref()
                            .map(|c| c.as_string::<i32>())
                            .and_then(|c| (!c.is_null(i)).then(|| c.value(i).to_owned()));
                        (n.clone(), value)
                    })
                    .collect();
                out.push(row);
            }
        }
        Ok(out)
    }
}

impl RemoteExecutor for SfExecutor {
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
        context.span.record("db.system", "snowflake");
        let source = self.source.clone();
        let mut handed_on = false;
        let stream = self
            .stream(sql.to_owned(), Arc::clone(&schema), context)
            .map(move |item| match item {
                Ok(b) => {
                    handed_on = true;
                    Ok(b)
                }
                Err(e) => {
                    tracing::warn!(source, error = %e, "Snowflake statement failed.");
                    ::metrics::counter!(metrics::SOURCE_ERRORS_TOTAL, "source" => source.clone(), "op" => "query")
                        .increment(1);
                    // Once rows were handed on, running the statement again would repeat them.
                    Err(if handed_on { e.not_retryable() } else { e }.into_df())
                }
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn tables<'a>(
        &'a self,
        schemas: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<Vec<RemoteTableDef>, RemoteError>> {
        Box::pin(async move {
            let tables = self.rows(&catalog::tables_sql(schemas)).await?;
            let columns = self.rows(&catalog::columns_sql(schemas)).await?;
            Ok(catalog::assemble(&tables, &columns))
        })
    }
}
