//! Writing one result into segments while it runs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use futures::{FutureExt, StreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use sluice_schemas::SpoolFormat;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{INLINE_BYTES, INLINE_ROWS, Outcome, Spool, Spooled, Written, unavailable, unix_ms};
use crate::error::{ApiError, Code};
use crate::format::{ArrowStreamEncoder, BatchEncoder, ParquetEncoder, RowLinesEncoder};
use crate::query::ResultStream;

/// What the writer tells the request that started it: the first rows are in (or the result
/// ended), or the query failed before that (nothing is left in the store).
pub(super) type Ready = Result<(), ApiError>;

/// Starts writing `stream` into `spooled`'s segments on `runtime`; the receiver hears once the
/// first rows are inline.
pub(crate) fn start(
    spool: Arc<Spool>,
    spooled: Arc<Spooled>,
    stream: ResultStream<RecordBatch>,
    runtime: &tokio::runtime::Handle,
) -> oneshot::Receiver<Ready> {
    let (tx, rx) = oneshot::channel();
    runtime.spawn(async move {
        let watched = std::panic::AssertUnwindSafe(write(
            Arc::clone(&spool),
            Arc::clone(&spooled),
            stream,
            tx,
        ))
        .catch_unwind()
        .await;
        if let Err(panic) = watched {
            // The request (if it still waits) hears the sender drop; the result fails, and
            // what it wrote goes.
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let e = ApiError::panicked(&spooled.query_id, &format!("spool writer: {detail}"));
            if let Err(d) = spool.delete_prefix(&spooled.prefix).await {
                let _ = unavailable(Some(&spooled.query_id), "deleting a failed result", &d);
            }
            {
                let mut state = spooled.lock();
                if matches!(state.outcome, Outcome::Running) {
                    state.outcome = Outcome::Failed {
                        code: e.code,
                        message: e.message,
                        until: SystemTime::now() + spool.expiry,
                    };
                }
            }
            spooled.done.cancel();
        }
    });
    rx
}

async fn write(
    spool: Arc<Spool>,
    spooled: Arc<Spooled>,
    mut stream: ResultStream<RecordBatch>,
    ready: oneshot::Sender<Ready>,
) {
    let mut ready = Some(ready);
    let lease = spooled.prefix.clone().join("_lease");
    let renewing = CancellationToken::new();
    let mut renewal = None;
    let produced = async {
        put(&spool, &spooled, &lease, Bytes::from_static(b"running")).await?;
        renewal = Some(tokio::spawn(renew(
            Arc::clone(&spool),
            Arc::clone(&spooled),
            lease.clone(),
            renewing.clone(),
        )));
        produce(&spool, &spooled, &mut stream, &mut ready).await
    }
    .await;
    // The query ends here either way (a cancelled writer cancels it).
    drop(stream);
    renewing.cancel();
    // A renewal in flight lands before the lease is deleted, never after.
    if let Some(renewal) = renewal {
        let _ = renewal.await;
    }
    let ended = match produced {
        Ok(()) => finish(&spool, &spooled, &lease).await,
        Err(e) => Err(e),
    };
    if let Err(e) = ended {
        if let Err(d) = spool.delete_prefix(&spooled.prefix).await {
            let _ = unavailable(
                Some(&spooled.query_id),
                "deleting a failed result's segments",
                &d,
            );
        }
        match ready.take() {
            // Not answered yet: the request answers the failure, and nothing is kept.
            Some(tx) => {
                spool.release(&spooled);
                let _ = tx.send(Err(e));
            }
            None => {
                spooled.lock().outcome = Outcome::Failed {
                    code: e.code,
                    message: e.message,
                    until: SystemTime::now() + spool.expiry,
                };
            }
        }
    } else if let Some(tx) = ready.take() {
        let _ = tx.send(Ok(()));
    }
    spooled.done.cancel();
}

/// The result is complete: the marker that says when it expires (for any server's sweeper),
/// the lease gone, every segment listed.
async fn finish(spool: &Spool, spooled: &Spooled, lease: &Path) -> Result<(), ApiError> {
    let expires_at = SystemTime::now() + spool.expiry;
    let marker = spooled
        .prefix
        .clone()
        .join(format!("_expires-{}", unix_ms(expires_at)));
    put(spool, spooled, &marker, Bytes::new()).await?;
    if let Err(e) = spool.store.delete(lease).await {
        let _ = unavailable(Some(&spooled.query_id), "deleting a lease", &e);
    }
    spooled.lock().outcome = Outcome::Complete { expires_at };
    Ok(())
}

async fn put(spool: &Spool, spooled: &Spooled, path: &Path, body: Bytes) -> Result<(), ApiError> {
    spool
        .store
        .put(path, PutPayload::from(body))
        .await
        .map(|_| ())
        .map_err(|e| unavailable(Some(&spooled.query_id), "writing", &e))
}

/// Rewrites the lease every third of its lifetime until `stop`.
async fn renew(spool: Arc<Spool>, spooled: Arc<Spooled>, lease: Path, stop: CancellationToken) {
    let every = (spool.lease / 3).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if let Err(e) = put(&spool, &spooled, &lease, Bytes::from_static(b"running")).await {
            warn!(query_id = %spooled.query_id, code = %e.code, "Spool: a lease was not renewed.");
        }
    }
}

/// One segment being encoded.
struct Segment {
    encoder: Box<dyn BatchEncoder>,
    pieces: Vec<Bytes>,
    /// Encoded bytes for Arrow; the rows' Arrow memory for Parquet (whose writer holds a row
    /// group before it emits bytes).
    size: u64,
    rows: u64,
    parquet: bool,
}

impl Segment {
    fn new(format: SpoolFormat, schema: &SchemaRef) -> Result<Self, ApiError> {
        let (mut encoder, parquet): (Box<dyn BatchEncoder>, bool) = match format {
            SpoolFormat::Arrow => (
                Box::new(ArrowStreamEncoder::new(schema).map_err(bad)?),
                false,
            ),
            SpoolFormat::Parquet => (Box::new(ParquetEncoder::new(schema).map_err(bad)?), true),
        };
        let head = encoder.start().map_err(bad)?;
        Ok(Self {
            encoder,
            pieces: vec![head],
            size: 0,
            rows: 0,
            parquet,
        })
    }

    fn push(&mut self, batch: &RecordBatch) -> Result<(), ApiError> {
        let pieces = self.encoder.encode(batch).map_err(bad)?;
        self.size += if self.parquet {
            batch.get_array_memory_size() as u64
        } else {
            pieces.iter().map(|p| p.len() as u64).sum()
        };
        self.pieces.extend(pieces);
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn close(mut self) -> Result<(Vec<Bytes>, u64), ApiError> {
        let tail = self.encoder.finish().map_err(bad)?;
        self.pieces.push(tail);
        self.pieces.retain(|p| !p.is_empty());
        Ok((self.pieces, self.rows))
    }
}

fn bad(e: datafusion::arrow::error::ArrowError) -> ApiError {
    ApiError::internal(None, &format!("encoding a spool segment: {e}"))
}

/// Reads the result: the first rows inline (then `ready` hears), every row into segments. An
/// upload still running is waited for, whatever happened, so a cleanup after a failure finds
/// every object it must delete.
async fn produce(
    spool: &Arc<Spool>,
    spooled: &Arc<Spooled>,
    stream: &mut ResultStream<RecordBatch>,
    ready: &mut Option<oneshot::Sender<Ready>>,
) -> Result<(), ApiError> {
    let mut uploading = None;
    let read = read_all(spool, spooled, stream, ready, &mut uploading).await;
    match uploading.take() {
        Some(h) => {
            let last = listed(spooled, h).await;
            read.and(last)
        }
        None => read,
    }
}

type Upload = JoinHandle<Result<Written, ApiError>>;

async fn read_all(
    spool: &Arc<Spool>,
    spooled: &Arc<Spooled>,
    stream: &mut ResultStream<RecordBatch>,
    ready: &mut Option<oneshot::Sender<Ready>>,
    uploading: &mut Option<Upload>,
) -> Result<(), ApiError> {
    let mut lines = RowLinesEncoder::new();
    let mut inline_bytes = 0;
    let mut inline_full = false;
    let mut segment: Option<Segment> = None;
    let mut index = 0_usize;
    loop {
        let item = tokio::select! {
            biased;
            () = spooled.cancel.cancelled() => {
                return Err(ApiError::new(Code::QueryCancelled, "the spooled result was acknowledged or the server is stopping"));
            }
            item = stream.next() => item,
        };
        let Some(batch) = item else { break };
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        if !inline_full {
            inline_full = take_inline(spooled, &mut lines, &mut inline_bytes, &batch)?;
            if inline_full && let Some(tx) = ready.take() {
                let _ = tx.send(Ok(()));
            }
        }
        let open = match segment.as_mut() {
            Some(s) => s,
            None => segment.insert(Segment::new(spool.format, &batch.schema())?),
        };
        open.push(&batch)?;
        if open.size >= spool.segment_bytes
            && let Some(full) = segment.take()
        {
            upload_next(spool, spooled, full, &mut index, uploading).await?;
        }
    }
    if let Some(last) = segment.take() {
        upload_next(spool, spooled, last, &mut index, uploading).await?;
    }
    Ok(())
}

/// Closes `segment` and starts its upload once the one before it is listed: one upload runs
/// while the next segment is encoded.
async fn upload_next(
    spool: &Arc<Spool>,
    spooled: &Arc<Spooled>,
    segment: Segment,
    index: &mut usize,
    uploading: &mut Option<Upload>,
) -> Result<(), ApiError> {
    let (pieces, rows) = segment.close()?;
    if let Some(h) = uploading.take() {
        listed(spooled, h).await?;
    }
    let path = spooled
        .prefix
        .clone()
        .join(format!("{:06}.{}", *index, spool.format.extension()));
    *index += 1;
    let spool = Arc::clone(spool);
    let id = spooled.query_id.clone();
    *uploading = Some(tokio::spawn(async move {
        let mut h = Sha256::new();
        let mut bytes = 0_u64;
        for p in &pieces {
            h.update(p);
            bytes += p.len() as u64;
        }
        let sha256 = format!("{:x}", h.finalize());
        spool
            .store
            .put(&path, PutPayload::from_iter(pieces))
            .await
            .map_err(|e| unavailable(Some(&id), "writing a segment", &e))?;
        Ok(Written {
            path,
            rows,
            bytes,
            sha256,
        })
    }));
    Ok(())
}

/// Waits for an upload and lists its segment.
async fn listed(spooled: &Spooled, upload: Upload) -> Result<(), ApiError> {
    let written = upload
        .await
        .map_err(|e| ApiError::internal(Some(&spooled.query_id), &e))??;
    metrics::counter!(crate::metrics::SPOOL_SEGMENTS_TOTAL).increment(1);
    metrics::counter!(crate::metrics::SPOOL_BYTES_TOTAL).increment(written.bytes);
    spooled.lock().segments.push(written);
    Ok(())
}

/// Adds the batch's first rows to the inline preview; true once it is full.
fn take_inline(
    spooled: &Spooled,
    lines: &mut RowLinesEncoder,
    size: &mut usize,
    batch: &RecordBatch,
) -> Result<bool, ApiError> {
    let mut state = spooled.lock();
    let room = INLINE_ROWS.saturating_sub(state.inline.len());
    let shown = batch.slice(0, room.min(batch.num_rows()));
    let encoded = lines
        .encode(&shown)
        .map_err(|e| ApiError::internal(Some(&spooled.query_id), &e))?;
    for line in encoded.iter().flat_map(|b| b.split(|c| *c == b'\n')) {
        if line.is_empty() {
            continue;
        }
        if *size + line.len() > INLINE_BYTES {
            return Ok(true);
        }
        let row: Vec<serde_json::Value> = serde_json::from_slice(line)
            .map_err(|e| ApiError::internal(Some(&spooled.query_id), &e))?;
        *size += line.len();
        state.inline.push(row);
    }
    Ok(state.inline.len() >= INLINE_ROWS)
}
