//! The bounded in-memory record of recent queries: their state, progress and outcome, what
//! cancels them, and the statement a replay runs again.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lru::LruCache;
use tokio_util::sync::CancellationToken;

use super::activity::{Activity, Ended};
use crate::error::ApiError;

/// Queries remembered; the oldest are forgotten first.
pub const RECENT_QUERIES: usize = 1024;

pub use sluice_schemas::api::{QueryError, QueryState, QueryStatus, SourcePull};

#[derive(Debug)]
struct Mutable {
    state: QueryState,
    sources: Vec<String>,
    error: Option<(String, String)>,
    elapsed: Option<Duration>,
    /// What it was asked: the statement as shown, and whether it ran or was explained.
    statement: Option<(String, sluice_schemas::api::Operation)>,
}

/// One query's live record.
#[derive(Debug)]
pub struct QueryEntry {
    /// Query id.
    pub id: String,
    /// The key that ran it.
    pub key_id: Option<String>,
    /// The door it came through.
    pub door: crate::governance::Door,
    /// Cancelled by `DELETE /v1/queries/{id}`.
    pub cancel: CancellationToken,
    /// What its remote statements pulled, per source.
    pub pulled: sluice_planner::PulledBySource,
    started: Instant,
    started_at: SystemTime,
    rows: AtomicU64,
    bytes: AtomicU64,
    inner: Mutex<Mutable>,
    /// Completed with the query's outcome when it ends. Weak: whoever runs the query holds it
    /// (the handler, then the producer), so a request dropped before it ends (the client left
    /// while it planned) is still recorded, by the auditor's own drop.
    audit: Mutex<Option<std::sync::Weak<crate::governance::QueryAuditor>>>,
    /// The statement and its parameters, so `GET /v1/queries/{id}/result` can run it again.
    request: Mutex<Option<sluice_schemas::api::QueryRequest>>,
    /// Whether the result cache answered: [`CACHE_UNASKED`], [`CACHE_HIT`] or [`CACHE_MISS`].
    cache: AtomicU8,
    /// Where its end is counted.
    activity: Arc<Activity>,
}

const CACHE_UNASKED: u8 = 0;
const CACHE_HIT: u8 = 1;
const CACHE_MISS: u8 = 2;

/// The longest statement text a query's record shows.
const SQL_SHOWN: usize = 4096;

impl QueryEntry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Mutable> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds streamed rows and bytes.
    pub fn add_progress(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Keeps the statement and its parameters (not its row cap: the full result is what a
    /// later `GET /v1/queries/{id}/result` asks for).
    pub fn set_request(&self, request: &sluice_schemas::api::QueryRequest) {
        let kept = sluice_schemas::api::QueryRequest {
            max_rows: None,
            ..request.clone()
        };
        *self.request.lock().unwrap_or_else(PoisonError::into_inner) = Some(kept);
        self.lock().statement = Some((shown(&request.sql), sluice_schemas::api::Operation::Query));
    }

    /// Records the statement an explain planned (not replayable: no request is kept).
    pub fn set_explained(&self, sql: &str) {
        self.lock().statement = Some((shown(sql), sluice_schemas::api::Operation::Explain));
    }

    /// The statement kept by [`Self::set_request`].
    pub fn request(&self) -> Option<sluice_schemas::api::QueryRequest> {
        self.request
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records whether the result cache answered.
    pub fn set_cache_hit(&self, hit: bool) {
        let v = if hit { CACHE_HIT } else { CACHE_MISS };
        self.cache.store(v, Ordering::Relaxed);
    }

    fn cache_hit(&self) -> Option<bool> {
        match self.cache.load(Ordering::Relaxed) {
            CACHE_HIT => Some(true),
            CACHE_MISS => Some(false),
            _ => None,
        }
    }

    /// Records the sources once planned.
    pub fn set_sources(&self, sources: Vec<String>) {
        self.lock().sources = sources;
    }

    /// The audit record this query completes when it ends.
    pub fn attach_audit(&self, auditor: &Arc<crate::governance::QueryAuditor>) {
        *self.audit.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::downgrade(auditor));
    }

    /// Ends the query; only the first end counts (true when this one did).
    pub fn finish(&self, state: QueryState, error: Option<&ApiError>) -> bool {
        {
            let mut m = self.lock();
            if m.state != QueryState::Running {
                return false;
            }
            m.state = state;
            m.error = error.map(|e| (e.code.as_str().to_owned(), e.message.clone()));
            m.elapsed = Some(self.started.elapsed());
        }
        self.activity.record(&Ended {
            elapsed: self.started.elapsed(),
            error: error.map(|e| e.code.as_str()),
            cache_hit: self.cache_hit(),
            bytes_sent: self.bytes(),
            pulled: self
                .pulled
                .snapshot()
                .into_iter()
                .map(|(source, _, _, bytes)| (source, bytes))
                .collect(),
        });
        let auditor = self
            .audit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .and_then(|w| w.upgrade());
        if let Some(a) = auditor {
            let _ = a.complete(error.map(|e| e.code), self.rows(), self.bytes());
        }
        true
    }

    /// Ends the query as failed with `e` (cancelled, when it was cancelled meanwhile).
    pub fn fail(&self, e: &ApiError) {
        let state = if self.cancel.is_cancelled() || e.code == crate::error::Code::QueryCancelled {
            QueryState::Cancelled
        } else {
            QueryState::Failed
        };
        self.finish(state, Some(e));
    }

    /// Current state.
    pub fn state(&self) -> QueryState {
        self.lock().state
    }

    /// Rows sent so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Bytes sent so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Wall time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A snapshot for the API.
    pub fn status(&self) -> QueryStatus {
        let m = self.lock();
        QueryStatus {
            query_id: self.id.clone(),
            state: m.state,
            rows: self.rows(),
            bytes: self.bytes(),
            elapsed_ms: u64::try_from(
                m.elapsed
                    .unwrap_or_else(|| self.started.elapsed())
                    .as_millis(),
            )
            .unwrap_or(u64::MAX),
            started_at_ms: self
                .started_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            sources: m.sources.clone(),
            per_source: self
                .pulled
                .snapshot()
                .into_iter()
                .map(|(source, statements, rows, bytes)| SourcePull {
                    source,
                    statements,
                    rows,
                    bytes,
                })
                .collect(),
            error: m.error.as_ref().map(|(code, message)| QueryError {
                code: code.clone(),
                message: message.clone(),
            }),
            sql: m.statement.as_ref().map(|(sql, _)| sql.clone()),
            operation: m.statement.as_ref().map(|(_, op)| *op),
            key_id: self.key_id.clone(),
            door: Some(self.door.as_str().to_owned()),
            cache_hit: self.cache_hit(),
        }
    }
}

/// Ends a query's record as cancelled (the client left) when dropped while it still holds the
/// record: a request dropped while its query plans or waits for a source's slot — before a
/// producer owns the query and ends it — would otherwise stay `running` in `/v1/queries`
/// for good. A record already ended (a refusal recorded its error) is left as it is.
pub struct EndIfDropped {
    entry: Option<Arc<QueryEntry>>,
    /// Whether an end here is counted in `sluice_queries_total` (queries are; explains are
    /// not counted there at all).
    counted: bool,
}

impl EndIfDropped {
    /// Holds a query's `entry` until [`Self::hand_over`].
    pub fn query(entry: &Arc<QueryEntry>) -> Self {
        Self {
            entry: Some(Arc::clone(entry)),
            counted: true,
        }
    }

    /// Holds an explain's `entry` until it is dropped.
    pub fn explain(entry: &Arc<QueryEntry>) -> Self {
        Self {
            entry: Some(Arc::clone(entry)),
            counted: false,
        }
    }

    /// Someone else (the producer, a stream) ends the record from here.
    pub fn hand_over(&mut self) {
        self.entry = None;
    }
}

impl Drop for EndIfDropped {
    fn drop(&mut self) {
        let Some(entry) = self.entry.take() else {
            return;
        };
        let gone = ApiError::client_gone().with_query(&entry.id);
        if entry.finish(QueryState::Cancelled, Some(&gone)) && self.counted {
            metrics::counter!(crate::metrics::QUERIES_TOTAL, "outcome" => "cancelled", "door" => entry.door.as_str())
                .increment(1);
        }
    }
}

/// `sql` cut to its first [`SQL_SHOWN`] bytes (at a character boundary).
fn shown(sql: &str) -> String {
    if sql.len() <= SQL_SHOWN {
        return sql.to_owned();
    }
    let mut end = SQL_SHOWN;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &sql[..end])
}

/// Recent queries by id, and the activity of the last minutes.
#[derive(Debug)]
pub struct QueryRegistry {
    entries: Mutex<LruCache<String, Arc<QueryEntry>>>,
    activity: Arc<Activity>,
}

impl Default for QueryRegistry {
    fn default() -> Self {
        let cap =
            std::num::NonZeroUsize::new(RECENT_QUERIES).unwrap_or(std::num::NonZeroUsize::MIN);
        Self {
            entries: Mutex::new(LruCache::new(cap)),
            activity: Arc::default(),
        }
    }
}

impl QueryRegistry {
    /// Records a new running query.
    pub fn start(
        &self,
        id: &str,
        key_id: Option<&str>,
        door: crate::governance::Door,
    ) -> Arc<QueryEntry> {
        let entry = Arc::new(QueryEntry {
            id: id.to_owned(),
            key_id: key_id.map(str::to_owned),
            door,
            cancel: CancellationToken::new(),
            pulled: sluice_planner::PulledBySource::default(),
            started: Instant::now(),
            started_at: SystemTime::now(),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            inner: Mutex::new(Mutable {
                state: QueryState::Running,
                sources: Vec::new(),
                error: None,
                elapsed: None,
                statement: None,
            }),
            audit: Mutex::new(None),
            request: Mutex::new(None),
            cache: AtomicU8::new(CACHE_UNASKED),
            activity: Arc::clone(&self.activity),
        });
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(id.to_owned(), Arc::clone(&entry));
        entry
    }

    /// What the queries of the last minutes did.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// A recent query by id.
    pub fn get(&self, id: &str) -> Option<Arc<QueryEntry>> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .peek(id)
            .cloned()
    }

    /// Cancels every running query that reads source `name` (a source removed while they
    /// ran); returns how many.
    pub fn cancel_reading(&self, name: &str) -> usize {
        let running = self.running_reading(name);
        for e in &running {
            tracing::warn!(query_id = %e.id, source = %name, "Query cancelled: a source it reads was removed.");
            e.cancel.cancel();
        }
        running.len()
    }

    /// The queries running now that read source `name`.
    pub fn running_reading(&self, name: &str) -> Vec<Arc<QueryEntry>> {
        self.list(usize::MAX, |e| {
            e.state() == sluice_schemas::api::QueryState::Running
                && e.lock().sources.iter().any(|s| s == name)
        })
    }

    /// Recent queries, newest first, that `visible` accepts, at most `limit`.
    pub fn list(
        &self,
        limit: usize,
        visible: impl Fn(&QueryEntry) -> bool,
    ) -> Vec<Arc<QueryEntry>> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(_, e)| e)
            .filter(|e| visible(e))
            .take(limit)
            .cloned()
            .collect()
    }
}

/// A fresh query id.
pub fn new_query_id() -> String {
    format!("q_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_and_first_end_wins() {
        let reg = QueryRegistry::default();
        let e = reg.start("q1", Some("key_a"), crate::governance::Door::Http);
        e.add_progress(10, 100);
        e.finish(
            QueryState::Failed,
            Some(&ApiError::timeout(Duration::from_millis(5))),
        );
        e.finish(QueryState::Finished, None);
        let s = reg.get("q1").unwrap().status();
        assert_eq!(s.state, QueryState::Failed);
        assert_eq!((s.rows, s.bytes), (10, 100));
        assert_eq!(s.error.unwrap().code, "query_timeout");
        assert!(reg.get("nope").is_none());
        reg.start("q2", None, crate::governance::Door::Http);
        let ids: Vec<_> = reg
            .list(10, |_| true)
            .iter()
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(ids, ["q2", "q1"]);
        assert_eq!(reg.list(10, |e| e.key_id.is_some()).len(), 1);
    }

    #[test]
    fn bounded() {
        let reg = QueryRegistry::default();
        for i in 0..RECENT_QUERIES + 5 {
            reg.start(&format!("q{i}"), None, crate::governance::Door::Http);
        }
        assert!(reg.get("q0").is_none());
        assert!(reg.get(&format!("q{}", RECENT_QUERIES + 4)).is_some());
    }
}
