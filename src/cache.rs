//! The result cache: complete results of read-only statements, kept so the same question
//! from the same view of the data is answered without running it again.
//!
//! - **Key**: the statement in canonical spelling, its bound parameters, the asking key's
//!   effective grants (readers with different grants never share an entry; every other role
//!   sees all data and shares) and how the result was capped. The catalog version of every
//!   source the result read is stored with it and checked on each lookup: a refreshed source
//!   makes its entries misses at once.
//! - **What is kept**: only results that completed, of immutable statements (no `random()`,
//!   `now()`), not `EXPLAIN`, not served by a fallback, reading no source with `cache = false`,
//!   and at most `max_entry_bytes` of Arrow IPC. The batches are kept as decoded from that
//!   IPC, compact (no slice keeps a larger buffer alive), and re-encoded per request, so a hit
//!   is byte for byte what a miss sends, in every format.
//! - **Capacity**: weighted by IPC bytes with a TTL ([`moka`]). Concurrent identical
//!   requests wait for the one running (single flight) and are then served from the cache.
//!
//! Shared entries across servers (Redis) are not built yet.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use moka::notification::RemovalCause;
use sha2::{Digest, Sha256};
use sluice_planner::{PlannedQuery, Planner};
use sluice_schemas::api::QueryRequest;
use sluice_schemas::{CacheConfig, SourceConfig};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::auth::Principal;
use crate::metrics as m;

/// What identifies a result: a SHA-256 over everything that decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

/// One kept result.
#[derive(Debug)]
pub struct Cached {
    /// The result's schema, as clients receive it.
    pub schema: SchemaRef,
    /// Its batches, in the order they were produced (empty ones left out).
    pub batches: Vec<RecordBatch>,
    /// Rows in all.
    pub rows: u64,
    /// Sources read, sorted.
    pub sources: Vec<String>,
    /// Tables read, sorted.
    pub tables: Vec<String>,
    /// Each source's catalog version when the result was computed.
    versions: Vec<u64>,
    /// Hex SHA-256 of the IPC encoding: the content part of the ETag.
    digest: String,
    /// Bytes of IPC, the capacity it takes.
    weight: u32,
}

impl Cached {
    /// The strong ETag of this result in `format` (each format is its own representation).
    pub fn etag(&self, format: &str) -> String {
        format!("\"{}-{format}\"", &self.digest[..32])
    }
}

type Inflight = Arc<Mutex<HashMap<Key, watch::Receiver<()>>>>;

/// The server's result cache.
pub struct ResultCache {
    entries: Option<moka::sync::Cache<Key, Arc<Cached>>>,
    max_entry_bytes: u64,
    /// Sources configured with `cache = false`.
    uncached: HashSet<String>,
    /// Statements being computed by a leader that others wait for.
    inflight: Inflight,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("enabled", &self.entries.is_some())
            .field("max_entry_bytes", &self.max_entry_bytes)
            .finish_non_exhaustive()
    }
}

/// Statements longer than this are keyed on their exact text.
const NORMALIZE_AT_MOST: usize = 16 * 1024;

/// How long a follower waits for the statement's leader at most (then runs it itself).
const FOLLOW_AT_MOST: Duration = Duration::from_secs(60);

/// The outcome of a lookup.
pub enum Lookup {
    /// A valid entry.
    Hit(Arc<Cached>),
    /// Not there: this caller computes it (and holds the lease while it does), or computes
    /// it without a lease when another request's computation did not leave an entry.
    Miss(Option<Lease>),
}

/// Held by the request computing a result that others wait for; dropping it (the result
/// is stored, or will not be) lets them go on.
pub struct Lease {
    key: Key,
    inflight: Inflight,
    _done: watch::Sender<()>,
    rx: watch::Receiver<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut map = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&self.key).is_some_and(|r| r.same_channel(&self.rx)) {
            map.remove(&self.key);
        }
    }
}

impl ResultCache {
    /// A cache per `[cache]`; off when its capacity or TTL is 0.
    pub fn new(config: &CacheConfig, sources: &[SourceConfig]) -> Self {
        let entries = (config.capacity_bytes > 0 && config.ttl_ms > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.capacity_bytes)
                .weigher(|_: &Key, v: &Arc<Cached>| v.weight)
                .time_to_live(Duration::from_millis(config.ttl_ms))
                .eviction_listener(|_, v: Arc<Cached>, cause| {
                    metrics::gauge!(m::CACHE_BYTES).decrement(f64::from(v.weight));
                    metrics::gauge!(m::CACHE_ENTRIES).decrement(1.0);
                    let cause = match cause {
                        RemovalCause::Expired => "expired",
                        RemovalCause::Explicit => "invalidated",
                        RemovalCause::Replaced => "replaced",
                        RemovalCause::Size => "size",
                    };
                    metrics::counter!(m::CACHE_EVICTIONS_TOTAL, "cause" => cause).increment(1);
                })
                .build()
        });
        Self {
            entries,
            max_entry_bytes: config
                .max_entry_bytes
                .min(config.capacity_bytes)
                .min(u64::from(u32::MAX)),
            uncached: sources
                .iter()
                .filter(|s| !s.cache())
                .map(|s| s.name().to_owned())
                .collect(),
            inflight: Arc::default(),
        }
    }

    /// The key of `request` asked by `principal`, with `cap` saying how the result was cut
    /// (`""`: whole); `None` when the cache is off or the statement does not parse (planning
    /// then says why).
    pub fn key(&self, principal: &Principal, request: &QueryRequest, cap: &str) -> Option<Key> {
        self.entries.as_ref()?;
        // A long text is keyed as written: parsing it twice (here and to plan) would cost
        // more than a miss saves.
        let statement = if request.sql.len() > NORMALIZE_AT_MOST {
            request.sql.clone()
        } else {
            sluice_planner::validate::normalized(&request.sql)?
        };
        let params = serde_json::to_string(&request.params).ok()?;
        let view = match principal {
            Principal::Key(k) if k.record.role == sluice_schemas::api::KeyRole::Reader => {
                serde_json::to_string(&k.record.grants).ok()?
            }
            // Admins, analysts of every table, and an open server: the whole catalog.
            _ => "*".to_owned(),
        };
        let mut h = Sha256::new();
        for part in [statement.as_str(), &params, &view, cap] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        Some(Key(h.finalize().into()))
    }

    /// The entry for `key` if it is still valid; otherwise the right to compute it, after
    /// waiting (until `deadline`) for a request already computing it.
    pub async fn lookup(&self, key: Key, planner: &Planner, deadline: Instant) -> Lookup {
        if let Some(hit) = self.valid(key, planner) {
            return Lookup::Hit(hit);
        }
        let mut rx = match self.lead(key) {
            Ok(lease) => return Lookup::Miss(Some(lease)),
            Err(rx) => rx,
        };
        let until = deadline.min(Instant::now() + FOLLOW_AT_MOST);
        // Resolves when the leader drops its lease (stored, failed or not cacheable).
        let _ = tokio::time::timeout_at(until, rx.changed()).await;
        match self.valid(key, planner) {
            Some(hit) => Lookup::Hit(hit),
            None => Lookup::Miss(self.lead(key).ok()),
        }
    }

    fn valid(&self, key: Key, planner: &Planner) -> Option<Arc<Cached>> {
        let entries = self.entries.as_ref()?;
        let hit = entries.get(&key)?;
        if planner.catalogs_unchanged(&hit.sources, &hit.versions) {
            Some(hit)
        } else {
            entries.invalidate(&key);
            None
        }
    }

    fn lead(&self, key: Key) -> Result<Lease, watch::Receiver<()>> {
        let mut map = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rx) = map.get(&key) {
            return Err(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        map.insert(key, rx.clone());
        Ok(Lease {
            key,
            inflight: Arc::clone(&self.inflight),
            _done: tx,
            rx,
        })
    }

    /// Whether `planned`'s result may be kept: see the module's documentation.
    pub fn may_keep(&self, planned: &PlannedQuery) -> bool {
        self.entries.is_some()
            && planned.immutable
            && !planned.is_explain()
            && !planned.sources.iter().any(|s| self.uncached.contains(s))
    }

    /// A collector for the result of `planned`, stored under `key` when it completes, with
    /// the catalog versions the statement was resolved against (a refresh while it runs
    /// leaves an entry that is stale at once, never one that passes for current).
    pub fn collector(
        self: &Arc<Self>,
        key: Key,
        lease: Option<Lease>,
        planned: &PlannedQuery,
    ) -> Collector {
        Collector {
            cache: Arc::clone(self),
            key,
            _lease: lease,
            sources: planned.sources.clone(),
            versions: planned.versions.clone(),
            tables: planned.tables.clone(),
            writer: None,
            rows: 0,
        }
    }

    fn insert(&self, key: Key, cached: Cached) {
        if let Some(entries) = &self.entries {
            metrics::gauge!(m::CACHE_BYTES).increment(f64::from(cached.weight));
            metrics::gauge!(m::CACHE_ENTRIES).increment(1.0);
            entries.insert(key, Arc::new(cached));
        }
    }
}

/// Gathers a running result as Arrow IPC, up to the entry bound; stores it when the result
/// completed ([`Self::finish`]). Dropped unfinished (the query failed, or the result grew
/// past the bound), it stores nothing and lets waiting requests go on.
pub struct Collector {
    cache: Arc<ResultCache>,
    key: Key,
    _lease: Option<Lease>,
    sources: Vec<String>,
    versions: Vec<u64>,
    tables: Vec<String>,
    writer: Option<StreamWriter<Vec<u8>>>,
    rows: u64,
}

impl Collector {
    /// Adds a batch of the result; `false` when the result will not be kept (too big, or
    /// not encodable), and the collector should be dropped.
    pub fn push(&mut self, batch: &RecordBatch) -> bool {
        let writer = match &mut self.writer {
            Some(w) => w,
            None => match StreamWriter::try_new(Vec::new(), &batch.schema()) {
                Ok(w) => self.writer.insert(w),
                Err(_) => return false,
            },
        };
        self.rows += batch.num_rows() as u64;
        writer.write(batch).is_ok() && (writer.get_ref().len() as u64) <= self.cache.max_entry_bytes
    }

    /// Stores the completed result (of schema `schema`).
    pub fn finish(self, schema: &SchemaRef) {
        if let Err(e) = self.store(schema) {
            tracing::warn!(error = %e, "A result could not be kept in the cache.");
        }
    }

    fn store(mut self, schema: &SchemaRef) -> Result<(), ArrowError> {
        let mut writer = match self.writer.take() {
            Some(w) => w,
            None => StreamWriter::try_new(Vec::new(), schema)?,
        };
        writer.finish()?;
        let ipc = Bytes::from(writer.into_inner()?);
        let Ok(weight) = u32::try_from(ipc.len()) else {
            return Ok(());
        };
        if u64::from(weight) > self.cache.max_entry_bytes {
            return Ok(());
        }
        let digest = Sha256::digest(&ipc)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let batches = StreamReader::try_new(std::io::Cursor::new(ipc), None)?
            .collect::<Result<Vec<_>, _>>()?;
        let cached = Cached {
            schema: Arc::clone(schema),
            batches,
            rows: self.rows,
            sources: std::mem::take(&mut self.sources),
            tables: std::mem::take(&mut self.tables),
            versions: std::mem::take(&mut self.versions),
            digest,
            weight,
        };
        self.cache.insert(self.key, cached);
        Ok(())
    }
}
