//! Spooled results (`[spool]`): a result written while it runs as segments in an object store,
//! answered as a manifest of segment URLs that clients fetch directly and in parallel.
//!
//! ```text
//!   query ──► writer (query runtime) ── first rows ──► manifest (inline rows, complete: false)
//!                │
//!                ├─ segment 0, 1, ... ──► <location>/<random prefix>/000000.arrow  (listed as written)
//!                ├─ _lease, renewed while it runs
//!                └─ end: _expires-<unix ms> marker, complete: true
//!
//!   GET  /v1/queries/{id}/spool        the manifest again, with fresh URLs
//!   DELETE /v1/queries/{id}/spool      acknowledged: the segments are deleted
//!   GET  /v1/queries/{id}/spool/{n}    segment n through Sluice (retrieval = proxy)
//!   sweeper: expired results, and prefixes whose lease went stale (a server stopped mid-query)
//! ```
//!
//! A result belongs to the key that ran it: the manifest, the proxy and the acknowledgement
//! answer only that key (anyone else gets `query_not_found`). Presigned URLs are bearer
//! capabilities good until they expire; they are handed only to that key.

mod sweep;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sluice_schemas::api::{Column, QueryResult, SpoolManifest, SpoolSegment};
use sluice_schemas::{SpoolConfig, SpoolFormat, SpoolRetrieval};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::error::{ApiError, Code};

/// The media type a client asks for a spooled answer with.
pub const MEDIA_TYPE: &str = "application/vnd.sluice.spool+json";

/// Rows a manifest shows inline at most.
const INLINE_ROWS: usize = 1_000;
/// JSON bytes of inline rows at most.
const INLINE_BYTES: usize = 1 << 20;

/// The spool: where segments go, how they are fetched, and the results held now.
pub struct Spool {
    store: Arc<dyn ObjectStore>,
    signer: Option<Arc<dyn Signer>>,
    root: Path,
    retrieval: SpoolRetrieval,
    format: SpoolFormat,
    segment_bytes: u64,
    expiry: Duration,
    lease: Duration,
    threshold_bytes: u64,
    max_per_key: u32,
    /// Results by query id: running, finished (until acknowledged or expired), or failed
    /// after their manifest was answered (kept to say why, until they expire).
    results: Mutex<HashMap<String, Arc<Spooled>>>,
    /// Cancelled when the server stops: running writers clean up and end.
    closing: CancellationToken,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("root", &self.root)
            .field("retrieval", &self.retrieval)
            .finish_non_exhaustive()
    }
}

/// One spooled result.
pub struct Spooled {
    query_id: String,
    /// The key that ran it (`None`: anonymous, with authentication off).
    owner: Option<String>,
    /// Its random folder under the spool's root.
    prefix: Path,
    state: Mutex<State>,
    /// Ends the writer: acknowledged, expired, or the server stops.
    cancel: CancellationToken,
    /// Cancelled when the writer has ended (and cleaned up after a failure), or when the place
    /// was given back before a writer took it.
    done: CancellationToken,
    /// A writer took it (an acknowledgement then waits for the writer's cleanup).
    writing: std::sync::atomic::AtomicBool,
}

/// A place held for one key's result until a writer takes it ([`Spool::write`]); given back
/// when dropped before that: the request that held it failed or went away, or its result was
/// streamed instead (`threshold_bytes`).
pub struct Reservation {
    spool: Arc<Spool>,
    spooled: Arc<Spooled>,
    taken: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.taken {
            self.spool.release(&self.spooled);
        }
    }
}

#[derive(Default)]
struct State {
    columns: Vec<Column>,
    inline: Vec<Vec<serde_json::Value>>,
    segments: Vec<Written>,
    outcome: Outcome,
}

/// A segment in the store.
#[derive(Debug, Clone)]
struct Written {
    path: Path,
    rows: u64,
    bytes: u64,
    sha256: String,
}

#[derive(Debug, Clone, Default)]
enum Outcome {
    /// Still being written.
    #[default]
    Running,
    /// Every segment is listed; deleted at `expires_at` unless acknowledged first.
    Complete { expires_at: SystemTime },
    /// Failed after its manifest was answered: its segments are deleted; the failure is kept
    /// until `until`.
    Failed {
        code: Code,
        message: String,
        until: SystemTime,
    },
}

impl Spooled {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn owned_by(&self, key_id: Option<&str>) -> bool {
        self.owner.as_deref() == key_id
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        Code::QueryNotFound,
        format!("no spooled result {id} for this key (acknowledged, expired, or never spooled)"),
    )
}

/// A store error's text with credentials and signatures taken out.
fn redacted(e: &dyn std::fmt::Display) -> String {
    sluice_actors::sources::object_store::redact(&e.to_string())
}

/// An object-store failure of the spool: logged, answered as `spool_unavailable`.
pub(crate) fn unavailable(
    query_id: Option<&str>,
    what: &str,
    e: &dyn std::fmt::Display,
) -> ApiError {
    let detail = redacted(e);
    metrics::counter!(crate::metrics::SPOOL_ERRORS_TOTAL).increment(1);
    warn!(query_id = query_id.unwrap_or(""), error = %detail, "Spool: {what} failed.");
    let e = ApiError::new(
        Code::SpoolUnavailable,
        format!("the spool location could not be used ({what}); retry later"),
    );
    match query_id {
        Some(id) => e.with_query(id),
        None => e,
    }
}

fn rfc3339(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Spool {
    /// Opens the store `config` names (no I/O; [`Self::check`] proves it works).
    ///
    /// # Errors
    /// The location or its options cannot be used.
    pub fn open(config: &SpoolConfig, closing: CancellationToken) -> Result<Self, String> {
        let opened = sluice_actors::sources::object_store::open(&config.location, &config.options)
            .map_err(|e| e.to_string())?;
        let retrieval = config.retrieval.unwrap_or(if opened.signer.is_some() {
            SpoolRetrieval::Presigned
        } else {
            SpoolRetrieval::Proxy
        });
        if retrieval == SpoolRetrieval::Presigned && opened.signer.is_none() {
            return Err("this location cannot presign URLs; use retrieval = \"proxy\"".into());
        }
        Ok(Self {
            store: opened.store,
            signer: opened.signer,
            root: opened.prefix,
            retrieval,
            format: config.format,
            segment_bytes: config.segment_bytes,
            expiry: Duration::from_millis(config.expiry_ms),
            lease: Duration::from_millis(config.lease_ms),
            threshold_bytes: config.threshold_bytes,
            max_per_key: config.max_results_per_key,
            results: Mutex::new(HashMap::new()),
            closing,
        })
    }

    /// Proves the location works before the server serves: writes an object, presigns its URL
    /// and reads it back through that URL without credentials (through the store for
    /// `proxy`), then deletes it.
    ///
    /// # Errors
    /// What failed, with credentials and signatures redacted.
    pub async fn check(&self) -> Result<(), String> {
        let redact = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {}", redacted(e));
        let path = self
            .root
            .clone()
            .join(format!("_check-{}", uuid::Uuid::new_v4().simple()));
        let body = Bytes::from(format!("sluice spool check {}", uuid::Uuid::new_v4()));
        self.store
            .put(&path, PutPayload::from(body.clone()))
            .await
            .map_err(|e| redact("write", &e))?;
        let read = async {
            let back = match (&self.signer, self.retrieval) {
                (Some(signer), SpoolRetrieval::Presigned) => {
                    let url = signer
                        .signed_url(http::Method::GET, &path, Duration::from_secs(60))
                        .await
                        .map_err(|e| redact("sign", &e))?;
                    let resp = reqwest::get(url)
                        .await
                        .map_err(|e| redact("read back through the signed URL", &e))?;
                    if !resp.status().is_success() {
                        return Err(format!(
                            "read back through the signed URL: HTTP {}",
                            resp.status()
                        ));
                    }
                    resp.bytes()
                        .await
                        .map_err(|e| redact("read back through the signed URL", &e))?
                }
                _ => self
                    .store
                    .get(&path)
                    .await
                    .map_err(|e| redact("read back", &e))?
                    .bytes()
                    .await
                    .map_err(|e| redact("read back", &e))?,
            };
            if back == body {
                Ok(())
            } else {
                Err("read back: the bytes differ from those written".to_owned())
            }
        }
        .await;
        let deleted = self
            .store
            .delete(&path)
            .await
            .map_err(|e| redact("delete", &e));
        read.and(deleted)
    }

    /// The segments' media type.
    pub fn format(&self) -> SpoolFormat {
        self.format
    }

    /// Bytes (of Arrow memory) past which a client that accepts both a stream and the spool
    /// gets the spool.
    pub fn threshold_bytes(&self) -> u64 {
        self.threshold_bytes
    }

    /// Holds a place for a new result of `owner`'s, before its query runs.
    ///
    /// # Errors
    /// `too_many_queries` when the key holds `max_results_per_key` already.
    pub fn reserve(
        self: &Arc<Self>,
        query_id: &str,
        owner: Option<&str>,
    ) -> Result<Reservation, ApiError> {
        let mut results = self.results.lock().unwrap_or_else(PoisonError::into_inner);
        let held = results.values().filter(|r| r.owned_by(owner)).count();
        if held >= self.max_per_key as usize {
            return Err(ApiError::new(
                Code::TooManyQueries,
                format!(
                    "this key holds {held} spooled results, its limit; acknowledge one (DELETE /v1/queries/{{id}}/spool) or let it expire"
                ),
            ));
        }
        let spooled = Arc::new(Spooled {
            query_id: query_id.to_owned(),
            owner: owner.map(str::to_owned),
            prefix: self
                .root
                .clone()
                .join(uuid::Uuid::new_v4().simple().to_string()),
            state: Mutex::new(State::default()),
            cancel: self.closing.child_token(),
            done: CancellationToken::new(),
            writing: std::sync::atomic::AtomicBool::new(false),
        });
        results.insert(query_id.to_owned(), Arc::clone(&spooled));
        Self::count(&results);
        Ok(Reservation {
            spool: Arc::clone(self),
            spooled,
            taken: false,
        })
    }

    /// Starts writing a result into the place `reservation` holds on `runtime`; answers once
    /// the first rows are inline (or the result ended), with the result to answer the manifest
    /// of.
    ///
    /// # Errors
    /// The query's failure before its first rows (nothing is left in the store).
    pub async fn write(
        self: &Arc<Self>,
        mut reservation: Reservation,
        columns: Vec<Column>,
        stream: crate::query::ResultStream<datafusion::arrow::array::RecordBatch>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Arc<Spooled>, ApiError> {
        reservation.taken = true;
        let spooled = Arc::clone(&reservation.spooled);
        spooled.lock().columns = columns;
        spooled
            .writing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        match writer::start(Arc::clone(self), Arc::clone(&spooled), stream, runtime).await {
            Ok(Ok(())) => Ok(spooled),
            Ok(Err(e)) => Err(e),
            // The writer panicked before the first rows (it records the failure).
            Err(_) => Err(ApiError::internal(
                Some(&spooled.query_id),
                &"the spool writer ended without an answer",
            )),
        }
    }

    /// Gives up a place [`Self::reserve`] held (its query never started).
    pub fn release(&self, spooled: &Spooled) {
        self.forget(&spooled.query_id);
        spooled.done.cancel();
    }

    /// Drops `query_id` from the results held.
    fn forget(&self, query_id: &str) {
        let mut results = self.results.lock().unwrap_or_else(PoisonError::into_inner);
        results.remove(query_id);
        Self::count(&results);
    }

    /// The result `query_id` when `key_id` owns it.
    fn find(&self, query_id: &str, key_id: Option<&str>) -> Result<Arc<Spooled>, ApiError> {
        self.results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(query_id)
            .filter(|r| r.owned_by(key_id))
            .cloned()
            .ok_or_else(|| not_found(query_id))
    }

    /// The manifest of `query_id` for `key_id`, with URLs made now; `base_url` is the server
    /// as the client reaches it (for proxy URLs).
    ///
    /// # Errors
    /// `query_not_found`; the query's own failure when it failed after it was answered;
    /// `spool_unavailable` when a URL cannot be signed.
    pub async fn manifest_of(
        &self,
        query_id: &str,
        key_id: Option<&str>,
        base_url: &str,
    ) -> Result<SpoolManifest, ApiError> {
        let spooled = self.find(query_id, key_id)?;
        self.manifest(&spooled, base_url).await
    }

    /// [`Self::manifest_of`] for a result in hand.
    pub(crate) async fn manifest(
        &self,
        spooled: &Spooled,
        base_url: &str,
    ) -> Result<SpoolManifest, ApiError> {
        let id = spooled.query_id.as_str();
        let (columns, inline, written, outcome) = {
            let state = spooled.lock();
            (
                state.columns.clone(),
                state.inline.clone(),
                state.segments.clone(),
                state.outcome.clone(),
            )
        };
        let now = SystemTime::now();
        let (complete, expires_at) = match outcome {
            Outcome::Running => (false, None),
            Outcome::Complete { expires_at } => (true, Some(expires_at)),
            Outcome::Failed { code, message, .. } => {
                return Err(ApiError::new(code, message).with_query(id));
            }
        };
        // A URL lives as long as the result; while it runs, `expiry` from now.
        let url_until = expires_at.unwrap_or(now + self.expiry);
        let valid_for = url_until
            .duration_since(now)
            .unwrap_or(Duration::from_secs(1));
        let mut segments = Vec::with_capacity(written.len());
        for (index, w) in written.iter().enumerate() {
            let url = match (&self.signer, self.retrieval) {
                (Some(signer), SpoolRetrieval::Presigned) => signer
                    .signed_url(http::Method::GET, &w.path, valid_for)
                    .await
                    .map_err(|e| unavailable(Some(id), "signing a segment URL", &e))?
                    .to_string(),
                _ => format!("{base_url}/v1/queries/{id}/spool/{index}"),
            };
            segments.push(SpoolSegment {
                url,
                index: index as u64,
                rows: w.rows,
                bytes: w.bytes,
                sha256: w.sha256.clone(),
                expires_at: rfc3339(url_until),
            });
        }
        Ok(SpoolManifest {
            query_id: id.to_owned(),
            schema: columns.clone(),
            inline: QueryResult {
                columns,
                rows: inline,
            },
            row_count: written.iter().map(|w| w.rows).sum(),
            segments,
            complete,
            format: self.format.content_type().to_owned(),
            ack: format!("/v1/queries/{id}/spool"),
            expires_at: expires_at.map(rfc3339),
        })
    }

    /// Acknowledges `query_id` for `key_id`: a running writer stops (its query is cancelled)
    /// and every segment is deleted before this returns.
    ///
    /// # Errors
    /// `query_not_found`; `spool_unavailable` when the store refused the deletes (the sweeper
    /// tries again once the result expires).
    pub async fn acknowledge(&self, query_id: &str, key_id: Option<&str>) -> Result<(), ApiError> {
        let spooled = self.find(query_id, key_id)?;
        self.forget(query_id);
        spooled.cancel.cancel();
        // A running writer deletes what it wrote (an upload in flight included) as it ends;
        // a place no writer took holds nothing.
        if spooled.writing.load(std::sync::atomic::Ordering::SeqCst) {
            spooled.done.cancelled().await;
        }
        self.delete_prefix(&spooled.prefix)
            .await
            .map_err(|e| unavailable(Some(query_id), "deleting acknowledged segments", &e))
    }

    /// Segment `index` of `query_id` for `key_id`, through Sluice: its size and bytes.
    ///
    /// # Errors
    /// `query_not_found` (not this key's, or no such segment listed); `spool_unavailable`.
    pub async fn segment(
        &self,
        query_id: &str,
        key_id: Option<&str>,
        index: usize,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, std::io::Error>>), ApiError> {
        let spooled = self.find(query_id, key_id)?;
        let path = {
            let state = spooled.lock();
            if let Outcome::Failed { code, message, .. } = &state.outcome {
                return Err(ApiError::new(*code, message.clone()).with_query(query_id));
            }
            state
                .segments
                .get(index)
                .map(|w| w.path.clone())
                .ok_or_else(|| {
                    ApiError::new(
                        Code::QueryNotFound,
                        format!("spooled result {query_id} lists no segment {index} (yet)"),
                    )
                })?
        };
        let got = self
            .store
            .get(&path)
            .await
            .map_err(|e| unavailable(Some(query_id), "reading a segment", &e))?;
        let size = got.meta.size;
        let id = query_id.to_owned();
        let stream = got
            .into_stream()
            .map(move |r| {
                r.map_err(|e| {
                    let _ = unavailable(Some(&id), "reading a segment", &e);
                    std::io::Error::other("the segment read was cut")
                })
            })
            .boxed();
        Ok((size, stream))
    }

    /// Deletes every object under `prefix`.
    async fn delete_prefix(&self, prefix: &Path) -> object_store::Result<()> {
        let listed: Vec<Path> = self
            .store
            .list(Some(prefix))
            .map(|m| m.map(|m| m.location))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<object_store::Result<_>>()?;
        let mut deleted = self
            .store
            .delete_stream(futures::stream::iter(listed.into_iter().map(Ok)).boxed());
        while let Some(r) = deleted.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sets the gauge of results held to `results`' size.
    fn count(results: &HashMap<String, Arc<Spooled>>) {
        metrics::gauge!(crate::metrics::SPOOL_RESULTS).set(results.len() as f64);
    }
}
