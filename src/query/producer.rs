//! Running a planned query on the query runtime and streaming it to a door.
//!
//! A producer task on the DataFusion runtime pulls record batches, encodes them the door's way
//! ([`Encode`]) and hands the pieces over through a small bounded channel: a slow client stalls
//! the query (backpressure), a gone client closes the channel and the task drops the
//! DataFusion stream, which cancels the query. A door's workers only move pieces.
//!
//! The first pieces are held back until the result has produced `PREBUFFER_BYTES` or
//! `PREBUFFER_TIME` has passed since the first batch (or the result ended; a first batch that
//! big on its own goes out as its lead, the rest encoded after), so errors that show early —
//! a bad cast, `max_rows` exceeded, a timeout — are still the answer's refusal (its status
//! code). A failure after that ends the stream with the error, which a door sends
//! as a cut (never as a clean end).

use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{FutureExt, StreamExt};
use sluice_planner::{PlanError, PlannedQuery, Planner};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::encode::{Encode, MakeEncoder};
use super::registry::{QueryEntry, QueryState};
use crate::error::ApiError;
use crate::metrics as m;

/// Bytes held back before the answer starts.
const PREBUFFER_BYTES: u64 = 1 << 20;
/// Longest wait after the first batch before the response starts anyway.
const PREBUFFER_TIME: Duration = Duration::from_millis(50);
/// Encoded steps (a batch each) in flight between the query and the socket.
const CHANNEL_STEPS: usize = 4;

/// Everything the producer needs.
pub(super) struct QueryJob<E: Encode> {
    /// Shared planner.
    pub planner: Planner,
    /// The planned statement.
    pub planned: PlannedQuery,
    /// Makes the door's encoder for the result.
    pub encoder: MakeEncoder<E>,
    /// Rows allowed; one more is an error.
    pub max_rows: u64,
    /// When the query must be done.
    pub deadline: Instant,
    /// The query's timeout, for messages.
    pub timeout: Duration,
    /// The registry record to update.
    pub entry: std::sync::Arc<QueryEntry>,
    /// Held until the query ends: the server's concurrency slot.
    pub permit: OwnedSemaphorePermit,
    /// Held until the query ends: the key's concurrency slot, if it has a limit.
    pub key_permit: Option<OwnedSemaphorePermit>,
    /// The replica (and its executor) and slot of each source the query reads, acquired at
    /// statement start and held until it ends.
    pub acquired: sluice_actors::routing::Acquired,
    /// Whether a retry-safe failure of a replica before the first byte may be retried on
    /// another (bounded attempts, within the deadline).
    pub may_retry: bool,
    /// The query's audit record, completed when `entry` finishes.
    pub auditor: std::sync::Arc<crate::governance::QueryAuditor>,
    /// Keeps the result in the result cache once it completed, if it may be kept.
    pub cache: Option<crate::cache::Collector>,
    /// The query's span and what its remote statements tell their sources.
    pub trace: sluice_planner::QueryTrace,
    /// The query's span, once [`start`] made `trace.span` its execution's.
    pub query_span: tracing::Span,
}

/// Why a query stopped early.
#[derive(Debug)]
enum Failure {
    Plan(PlanError),
    Encode(ArrowError),
    TooLarge(u64),
    Timeout(Duration),
    Cancelled,
    ClientGone,
    Panic(String),
}

impl Failure {
    /// The client-facing error, the recorded state and the metric label.
    fn into_parts(self, query_id: &str) -> (ApiError, QueryState, &'static str) {
        let failed = |api: ApiError, label| (api, QueryState::Failed, label);
        match self {
            Self::Plan(e) => failed(ApiError::from_plan(e, query_id), "error"),
            Self::Encode(e) => failed(ApiError::internal(Some(query_id), &e), "error"),
            Self::TooLarge(max) => failed(
                ApiError::result_too_large(max).with_query(query_id),
                "result_too_large",
            ),
            Self::Timeout(t) => failed(ApiError::timeout(t).with_query(query_id), "query_timeout"),
            Self::Cancelled => (
                ApiError::cancelled().with_query(query_id),
                QueryState::Cancelled,
                "cancelled",
            ),
            Self::ClientGone => (
                ApiError::client_gone().with_query(query_id),
                QueryState::Cancelled,
                "cancelled",
            ),
            Self::Panic(detail) => failed(ApiError::panicked(query_id, &detail), "panic"),
        }
    }
}

/// A result as a door reads it: the held-back head, then pieces as the producer sends them;
/// a failure after the head ends it with the error (the door cuts its answer).
pub type ResultStream<P> = futures::stream::BoxStream<'static, Result<P, ApiError>>;

/// A statement that failed on a replica before its first byte, safe to run again elsewhere:
/// its slots, handed back for the next attempt, and the replicas to avoid.
pub(super) struct Retry {
    /// The server's concurrency slot.
    pub permit: OwnedSemaphorePermit,
    /// The key's slot.
    pub key_permit: Option<OwnedSemaphorePermit>,
    /// `(source, replica)` that failed.
    pub failed: Vec<(String, usize)>,
    /// The failure, for when no attempt is left.
    pub error: ApiError,
    /// The query's record, ended as cancelled if this retry is never taken up (the request
    /// was dropped before it read it).
    pub held: super::registry::EndIfDropped,
}

/// Why a query has no response yet.
pub(super) enum StartError {
    /// It failed before the first byte: the answer is this error.
    Failed(ApiError),
    /// It may run again on another replica.
    Retry(Box<Retry>),
}

impl From<ApiError> for StartError {
    fn from(e: ApiError) -> Self {
        Self::Failed(e)
    }
}

/// Starts the producer on `runtime` and waits for the head of the result.
///
/// # Errors
/// Any failure before the first byte, with its status and code, or a retry.
pub(super) async fn start<E: Encode>(
    job: QueryJob<E>,
    runtime: &tokio::runtime::Handle,
) -> Result<ResultStream<E::Piece>, StartError> {
    let (head_tx, head_rx) = oneshot::channel();
    let (tx, rx) = mpsc::channel::<Step<E::Piece>>(CHANNEL_STEPS);
    let query_id = job.entry.id.clone();
    // Execution and streaming, under the query's span; the remote statements hang under it.
    // (Without tracing, the query's own span: its log lines still name the query.)
    let span = if crate::telemetry::tracing_on() {
        tracing::info_span!(
            parent: &job.trace.span,
            "execute",
            sluice.rows = tracing::field::Empty,
            sluice.bytes = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        )
    } else {
        job.trace.span.clone()
    };
    let mut job = job;
    job.query_span = std::mem::replace(&mut job.trace.span, span.clone());
    runtime.spawn(tracing::Instrument::instrument(
        produce(job, head_tx, tx),
        span,
    ));
    let head = head_rx
        .await
        .map_err(|_| ApiError::internal(Some(&query_id), &"query task ended without a result"))??;
    let rest =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
            .flat_map(|step| match step {
                Ok(chunk) => futures::stream::iter(chunk.into_iter().map(Ok)).left_stream(),
                Err(e) => futures::stream::once(async move { Err(e) }).right_stream(),
            });
    Ok(futures::stream::iter(head.into_iter().map(Ok))
        .chain(rest)
        .boxed())
}

/// One encoded step of the result (a batch, or the end), as pieces sent in order; or the
/// failure that cuts the answer.
type Step<P> = Result<Vec<P>, ApiError>;

type HeadSender<P> = oneshot::Sender<Result<Vec<P>, StartError>>;

async fn produce<E: Encode>(
    mut job: QueryJob<E>,
    head_tx: HeadSender<E::Piece>,
    tx: mpsc::Sender<Step<E::Piece>>,
) {
    let entry = std::sync::Arc::clone(&job.entry);
    let mut collect = job.cache.take();
    // Alive until the entry has finished (below), which completes the record.
    let _auditor = std::sync::Arc::clone(&job.auditor);
    let mut head_tx = Some(head_tx);
    metrics::gauge!(m::QUERIES_IN_FLIGHT).increment(1.0);
    let outcome = tokio::select! {
        biased;
        () = entry.cancel.cancelled() => Err(Failure::Cancelled),
        // A panic anywhere in the query (this task, a DataFusion operator, a source's stream:
        // DataFusion resumes its tasks' panics in the task that polls them) is caught here:
        // the query fails, the slot and gauges are released, and the server keeps serving.
        r = tokio::time::timeout_at(
            job.deadline,
            std::panic::AssertUnwindSafe(run(&job, &mut head_tx, &tx, &mut collect)).catch_unwind(),
        ) => match r {
            Err(_) => Err(Failure::Timeout(job.timeout)),
            Ok(Err(panic)) => Err(Failure::Panic(panic_message(panic.as_ref()))),
            Ok(Ok(r)) => r,
        }
    };
    // A replica that could not serve, before any byte went out: hand the slots back for an
    // attempt on another replica; the query is not over.
    let outcome = match outcome {
        Err(Failure::Plan(e))
            if head_tx.is_some()
                && super::retry::replica_failed(
                    job.may_retry,
                    &e,
                    &job.acquired.retryable_failures(),
                ) =>
        {
            let failed = job.acquired.retryable_failures();
            let QueryJob {
                permit, key_permit, ..
            } = job;
            let retry = Retry {
                permit,
                key_permit,
                failed,
                error: ApiError::from_plan(e, &entry.id),
                held: super::registry::EndIfDropped::query(&entry),
            };
            if let Some(h) = head_tx.take() {
                let _ = h.send(Err(StartError::Retry(Box::new(retry))));
            }
            metrics::gauge!(m::QUERIES_IN_FLIGHT).decrement(1.0);
            return;
        }
        other => other,
    };
    // The DataFusion stream lived inside `run` and is dropped by now (which cancels the
    // engine's work). Release the concurrency slot before the client can hear the outcome, so
    // a client that retries at once after an error is not refused by its own finished query.
    // The result's schema, for a result the cache keeps.
    let schema = collect.as_ref().map(|_| job.planned.output_schema());
    let query_span = job.query_span.clone();
    drop(job);
    let label = match outcome {
        Ok(()) => {
            entry.finish(QueryState::Finished, None);
            if let (Some(c), Some(schema)) = (collect, schema) {
                c.finish(&schema);
            }
            "ok"
        }
        Err(failure) => {
            // A failed result is never kept (and requests waiting for it go on).
            drop(collect);
            let detail = format!("{failure:?}");
            let (api, state, label) = failure.into_parts(&entry.id);
            entry.finish(state, Some(&api));
            match head_tx.take() {
                Some(h) => {
                    // The handler may have given up waiting (client gone); nothing to do then.
                    let _ = h.send(Err(StartError::Failed(api)));
                }
                None => {
                    debug!(query_id = %entry.id, error = %detail, "Query failed mid-stream; aborting the response.");
                    // Awaited, not `try_send`: with the channel full (a slow client) the marker
                    // would be lost, the sender dropped, and the stream would end cleanly — a
                    // partial result passing for a whole one. Fails at once if the client left.
                    let _ = tx.send(Err(api)).await;
                }
            }
            label
        }
    };
    let here = tracing::Span::current();
    here.record("sluice.rows", entry.rows());
    here.record("sluice.bytes", entry.bytes());
    if label != "ok" {
        // (The same span twice without tracing: recording it again is harmless.)
        for span in [&here, &query_span] {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", label);
        }
    }
    let door = entry.door.as_str();
    metrics::counter!(m::QUERIES_TOTAL, "outcome" => label, "door" => door).increment(1);
    metrics::histogram!(m::QUERY_DURATION_SECONDS, "door" => door)
        .record(entry.elapsed().as_secs_f64());
    metrics::counter!(m::ROWS_STREAMED_TOTAL, "door" => door).increment(entry.rows());
    metrics::counter!(m::BYTES_STREAMED_TOTAL, "door" => door).increment(entry.bytes());
    metrics::gauge!(m::QUERIES_IN_FLIGHT).decrement(1.0);
}

/// The text of a caught panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".to_owned())
}

/// Pulls, checks and encodes batches; sends the head once, then chunks.
async fn run<E: Encode>(
    job: &QueryJob<E>,
    head_tx: &mut Option<HeadSender<E::Piece>>,
    tx: &mpsc::Sender<Step<E::Piece>>,
    collect: &mut Option<crate::cache::Collector>,
) -> Result<(), Failure> {
    let target: SchemaRef = job.planned.output_schema();
    let context = sluice_planner::QueryContext {
        id: job.entry.id.clone(),
        deadline: Some(job.deadline.into_std()),
        executors: job.acquired.executors.clone(),
        pulled: job.entry.pulled.clone(),
        trace: job.trace.clone(),
    };
    let mut stream = job
        .planner
        .execute(&job.planned, Some(context))
        .map_err(Failure::Plan)?;
    let mut encoder = (job.encoder)(&target).map_err(Failure::Encode)?;
    let mut head = encoder.start().map_err(Failure::Encode)?;
    let mut head_len: u64 = head.iter().map(E::size).sum();
    let mut rows: u64 = 0;
    let mut first_batch_at: Option<Instant> = None;
    // The rest of a first batch that filled the prebuffer on its own, encoded after the head.
    let mut deferred = None;

    // Phase 1: hold the head back until it is big or old enough, or the result ended.
    loop {
        let held_enough = first_batch_at
            .is_some_and(|t| head_len >= PREBUFFER_BYTES || t.elapsed() >= PREBUFFER_TIME);
        if held_enough {
            break;
        }
        // Wait for the next batch only as long as the prebuffer window allows; and stop if
        // the handler is gone (the client closed the connection before the first byte): a
        // remote statement may take long to produce anything.
        let deadline = first_batch_at.map(|t| t + PREBUFFER_TIME);
        let next = tokio::select! {
            biased;
            () = handler_gone(head_tx) => return Err(Failure::ClientGone),
            n = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, stream.next()).await.ok(),
                    None => Some(stream.next().await),
                }
            } => n,
        };
        let Some(next) = next else {
            break;
        };
        match next {
            None => {
                head.extend(encoder.finish().map_err(Failure::Encode)?);
                return send_head::<E>(job, head_tx, head, rows);
            }
            Some(batch) => {
                // The first rows go out as a small batch of their own: a client shows them
                // without waiting for a whole large batch to arrive and decode.
                let (lead, mut batch) = match batch {
                    Ok(b) if first_batch_at.is_none() => split_lead(b),
                    other => (None, other),
                };
                first_batch_at.get_or_insert_with(Instant::now);
                if let Some(lead) = lead {
                    let pieces =
                        encode_batch(job, &mut encoder, Ok(lead), &target, &mut rows, collect)?;
                    head_len += pieces.iter().map(E::size).sum::<u64>();
                    head.extend(pieces);
                    // A first batch that fills the prebuffer on its own (its memory, shared with
                    // the lead) sends the head with the lead, and the rest is encoded after it:
                    // half a millisecond sooner for a wide batch. Its rows are counted first, so
                    // `max_rows` exceeded is still the answer's status; its cast and encoding
                    // fail only on a bug.
                    let rest = batch.map_err(|e| Failure::Plan(PlanError::classify(e)))?;
                    if head_len + rest.get_array_memory_size() as u64 >= PREBUFFER_BYTES {
                        count_rows(job, &mut rows, rest.num_rows())?;
                        deferred = Some(rest);
                        break;
                    }
                    batch = Ok(rest);
                }
                let pieces = encode_batch(job, &mut encoder, batch, &target, &mut rows, collect)?;
                head_len += pieces.iter().map(E::size).sum::<u64>();
                head.extend(pieces);
            }
        }
    }
    send_head::<E>(job, head_tx, head, rows)?;
    if let Some(rest) = deferred {
        let pieces = encode_counted(job, &mut encoder, rest, &target, collect)?;
        send_chunk::<E>(job, tx, pieces, 0).await?;
    }

    // Phase 2: stream. Watch the channel too, so a client that leaves while the engine is
    // busy (a long aggregation) cancels the query now rather than at the next batch.
    stream_rest(
        job,
        &mut stream,
        &mut encoder,
        &target,
        &mut rows,
        tx,
        collect,
    )
    .await
}

/// Resolves when the handler waiting for the head has been dropped.
async fn handler_gone<P>(head_tx: &mut Option<HeadSender<P>>) {
    match head_tx.as_mut() {
        Some(h) => h.closed().await,
        None => std::future::pending().await,
    }
}

fn send_head<E: Encode>(
    job: &QueryJob<E>,
    head_tx: &mut Option<HeadSender<E::Piece>>,
    head: Vec<E::Piece>,
    rows: u64,
) -> Result<(), Failure> {
    job.entry.add_progress(rows, head.iter().map(E::size).sum());
    match head_tx.take() {
        Some(h) => h.send(Ok(head)).map_err(|_| Failure::ClientGone),
        None => Ok(()),
    }
}

async fn stream_rest<E: Encode>(
    job: &QueryJob<E>,
    stream: &mut SendableRecordBatchStream,
    encoder: &mut E,
    target: &SchemaRef,
    rows: &mut u64,
    tx: &mpsc::Sender<Step<E::Piece>>,
    collect: &mut Option<crate::cache::Collector>,
) -> Result<(), Failure> {
    loop {
        let next = tokio::select! {
            () = tx.closed() => return Err(Failure::ClientGone),
            n = stream.next() => n,
        };
        let before = *rows;
        let chunk = match next {
            None => {
                let tail = encoder.finish().map_err(Failure::Encode)?;
                send_chunk::<E>(job, tx, tail, 0).await?;
                return Ok(());
            }
            Some(batch) => encode_batch(job, encoder, batch, target, rows, collect)?,
        };
        send_chunk::<E>(job, tx, chunk, *rows - before).await?;
    }
}

async fn send_chunk<E: Encode>(
    job: &QueryJob<E>,
    tx: &mpsc::Sender<Step<E::Piece>>,
    chunk: Vec<E::Piece>,
    rows: u64,
) -> Result<(), Failure> {
    let len = chunk.iter().map(E::size).sum();
    if !chunk.is_empty() {
        tx.send(Ok(chunk)).await.map_err(|_| Failure::ClientGone)?;
    }
    job.entry.add_progress(rows, len);
    Ok(())
}

/// Rows of the first batch sent ahead on their own, in bytes of Arrow memory.
const LEAD_BYTES: usize = 64 * 1024;

/// `batch` as a leading slice of about [`LEAD_BYTES`] and the rest, when it is big enough
/// for that to matter; slices share the batch's buffers.
fn split_lead(
    batch: datafusion::arrow::array::RecordBatch,
) -> (
    Option<datafusion::arrow::array::RecordBatch>,
    datafusion::error::Result<datafusion::arrow::array::RecordBatch>,
) {
    let (n, size) = (batch.num_rows(), batch.get_array_memory_size());
    if n < 2 || size <= 2 * LEAD_BYTES {
        return (None, Ok(batch));
    }
    let lead = (n * LEAD_BYTES / size).clamp(1, n - 1);
    (Some(batch.slice(0, lead)), Ok(batch.slice(lead, n - lead)))
}

fn encode_batch<E: Encode>(
    job: &QueryJob<E>,
    encoder: &mut E,
    batch: datafusion::error::Result<datafusion::arrow::array::RecordBatch>,
    target: &SchemaRef,
    rows: &mut u64,
    collect: &mut Option<crate::cache::Collector>,
) -> Result<Vec<E::Piece>, Failure> {
    let batch = batch.map_err(|e| Failure::Plan(PlanError::classify(e)))?;
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    count_rows(job, rows, batch.num_rows())?;
    encode_counted(job, encoder, batch, target, collect)
}

/// Adds `n` rows to the result's count; over `max_rows` is [`Failure::TooLarge`].
fn count_rows<E: Encode>(job: &QueryJob<E>, rows: &mut u64, n: usize) -> Result<(), Failure> {
    *rows += n as u64;
    if *rows > job.max_rows {
        return Err(Failure::TooLarge(job.max_rows));
    }
    Ok(())
}

/// Casts, keeps (for the result cache) and encodes a batch whose rows are counted.
fn encode_counted<E: Encode>(
    job: &QueryJob<E>,
    encoder: &mut E,
    batch: datafusion::arrow::array::RecordBatch,
    target: &SchemaRef,
    collect: &mut Option<crate::cache::Collector>,
) -> Result<Vec<E::Piece>, Failure> {
    let batch = sluice_planner::output::to_plain(batch, target).map_err(|e| {
        warn!(query_id = %job.entry.id, error = %e, "Casting a result batch failed.");
        Failure::Encode(e)
    })?;
    if let Some(c) = collect
        && !c.push(&batch)
    {
        // Too big to keep: stream on without it.
        *collect = None;
    }
    encoder.batch(&batch).map_err(Failure::Encode)
}
