//! The result cache: complete results of read-only statements, kept so the same question
//! from the same view of the data is answered without running it again.
//!
//! - **Key**: the statement in canonical spelling, its bound parameters, the asking key's
//!   effective grants (readers with different grants never share an entry; every other role
//!   sees all data and shares), the fingerprint of its row filters and column masks (resolved
//!   with its attributes: different policies never share) and how the result was capped. The catalog version of every
//!   source the result read is stored with it and checked on each lookup: a refreshed source
//!   makes its entries misses at once.
//! - **What is kept**: only results that completed, of immutable statements (no `random()`,
//!   `now()`), not `EXPLAIN`, not served by a fallback, reading no source with `cache = false`,
//!   and at most `max_entry_bytes` of Arrow IPC. The batches are kept as decoded from that
//!   IPC, compact (no slice keeps a larger buffer alive), and re-encoded per request, so a hit
//!   is byte for byte what a miss sends, in every format. A small result (up to 32 KiB) also
//!   keeps its IPC stream, which an Arrow hit sends as it is.
//! - **Capacity**: weighted by IPC bytes (twice for a result that keeps its stream) with a
//!   TTL ([`moka`]). Concurrent identical
//!   requests wait for the one running (single flight) and are then served from the cache.
//!
//! - **Shared** ([`shared`]): with `redis_url`, kept results are also written to Redis and a
//!   local miss asks Redis before running the statement, so servers share hits.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
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

use crate::governance::Principal;
use crate::metrics as m;

mod shared;

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
    /// Each source's refresh generation (shared through Redis; 0 without) before it ran.
    gens: Vec<u64>,
    /// Hex SHA-256 of the IPC encoding: the content part of the ETag.
    digest: String,
    /// Bytes of IPC.
    weight: u32,
    /// The IPC stream itself, kept for a small result (up to [`KEEP_IPC_AT_MOST`] bytes): an
    /// Arrow answer from the cache sends it as it is, encoding nothing.
    pub ipc: Option<Bytes>,
}

/// A kept result of at most this many IPC bytes keeps its IPC stream beside its batches.
pub const KEEP_IPC_AT_MOST: u64 = 32 * 1024;

/// The IPC stream a result of `weight` IPC bytes keeps beside its batches: a small one's only.
fn kept_ipc(weight: u32, ipc: &Bytes) -> Option<Bytes> {
    (u64::from(weight) <= KEEP_IPC_AT_MOST).then(|| ipc.clone())
}

impl Cached {
    /// What names this result's content: the first half of its IPC digest.
    pub fn version(&self) -> &str {
        self.digest.get(..32).unwrap_or(&self.digest)
    }

    /// Bytes of its Arrow IPC encoding.
    pub fn ipc_bytes(&self) -> u64 {
        u64::from(self.weight)
    }

    /// The capacity it takes: its IPC bytes, twice when the stream is kept too.
    fn charge(&self) -> u32 {
        if self.ipc.is_some() {
            self.weight.saturating_mul(2)
        } else {
            self.weight
        }
    }
}

type Inflight = Arc<Mutex<HashMap<Key, watch::Receiver<()>>>>;

/// The server's result cache.
pub struct ResultCache {
    entries: Option<moka::sync::Cache<Key, Arc<Cached>>>,
    max_entry_bytes: u64,
    /// Sources configured with `cache = false`.
    uncached: RwLock<HashSet<String>>,
    /// Statements being computed by a leader that others wait for.
    inflight: Inflight,
    /// Entries shared with other servers through Redis, when configured.
    shared: Option<Arc<shared::Shared>>,
    /// Statements' canonical spellings by exact text: a dashboard repeats its text, and
    /// parsing it again for every hit cost more than the rest of the key.
    spellings: Mutex<lru::LruCache<String, Arc<str>>>,
}

/// Statement texts whose canonical spelling is kept.
const SPELLINGS: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(1024) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("enabled", &self.entries.is_some())
            .field("max_entry_bytes", &self.max_entry_bytes)
            .field("shared", &self.shared)
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
    /// Not there: this caller computes it, with the ticket to keep what it computes.
    Miss(Ticket),
}

/// What a miss needs to keep its result: the lease others wait on (if it holds it) and the
/// sources' generations read before the statement runs.
pub struct Ticket {
    lease: Option<Lease>,
    gens: shared::Gens,
    /// The generations came from Redis just now: the result may be shared.
    share: bool,
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
    /// A cache per `[cache]`; off when its capacity or TTL is 0. With `redis_url`, entries
    /// are shared through Redis, whose client runs on `runtime` (the query runtime).
    pub fn new(
        config: &CacheConfig,
        sources: &[SourceConfig],
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        let entries = (config.capacity_bytes > 0 && config.ttl_ms > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.capacity_bytes)
                .weigher(|_: &Key, v: &Arc<Cached>| v.charge())
                .time_to_live(Duration::from_millis(config.ttl_ms))
                .eviction_listener(|_, v: Arc<Cached>, cause| {
                    metrics::gauge!(m::CACHE_BYTES).decrement(f64::from(v.charge()));
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
        let shared = match config.redis_url.as_deref().filter(|u| !u.is_empty()) {
            // Sources can be added while serving (the registry), so even a server started
            // with none shares.
            Some(url) if entries.is_some() => {
                let names = sources.iter().map(|s| s.name().to_owned()).collect();
                match shared::Shared::start(url, config.ttl_ms, names, runtime) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "cache.redis_url is not usable; the result cache is local only.");
                        None
                    }
                }
            }
            _ => None,
        };
        Self {
            shared,
            spellings: Mutex::new(lru::LruCache::new(SPELLINGS)),
            entries,
            max_entry_bytes: config
                .max_entry_bytes
                .min(config.capacity_bytes)
                .min(u64::from(u32::MAX)),
            uncached: RwLock::new(
                sources
                    .iter()
                    .filter(|s| !s.cache())
                    .map(|s| s.name().to_owned())
                    .collect(),
            ),
            inflight: Arc::default(),
        }
    }

    /// The key of `request` asked by `principal`, with `cap` saying how the result was cut
    /// (`""`: whole) and `policies` the fingerprint of the row filters and masks applied to it
    /// (`""`: none; callers with different policies never share an entry, here or in Redis);
    /// `None` when the cache is off or the statement does not parse (planning then says why).
    pub fn key(
        &self,
        principal: &Principal,
        request: &QueryRequest,
        cap: &str,
        policies: &str,
    ) -> Option<Key> {
        self.entries.as_ref()?;
        // A long text is keyed as written: parsing it twice (here and to plan) would cost
        // more than a miss saves.
        let statement: Arc<str> = if request.sql.len() > NORMALIZE_AT_MOST {
            Arc::from(request.sql.as_str())
        } else {
            self.spelling(&request.sql)?
        };
        let params = serde_json::to_string(&request.params).ok()?;
        let view = match principal {
            Principal::Key(k) if k.record.role == sluice_schemas::api::KeyRole::Reader => {
                serde_json::to_string(&k.record.grants).ok()?
            }
            // Admins, analysts of every table, and an open server: the whole catalog.
            _ => "*".to_owned(),
        };
        // Bare names resolve elsewhere under a session's catalog and schema.
        let defaults = request
            .defaults
            .as_ref()
            .map(|d| format!("{}\u{0}{}", d.catalog, d.schema))
            .unwrap_or_default();
        let mut h = Sha256::new();
        for part in [&*statement, &params, &view, cap, &defaults, policies] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        Some(Key(h.finalize().into()))
    }

    /// `sql` in canonical spelling (see [`sluice_planner::validate::normalized`]), remembered
    /// by its exact text.
    fn spelling(&self, sql: &str) -> Option<Arc<str>> {
        let mut kept = self
            .spellings
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = kept.get(sql) {
            return Some(Arc::clone(s));
        }
        drop(kept);
        let spelled: Arc<str> = Arc::from(sluice_planner::validate::normalized(sql)?);
        self.spellings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(sql.to_owned(), Arc::clone(&spelled));
        Some(spelled)
    }

    /// After [`Self::valid`] found no entry for `key` here: the entry from a request already
    /// computing it (waited for until `deadline`) or from Redis; otherwise the right to
    /// compute it.
    pub async fn lookup_missed(&self, key: Key, planner: &Planner, deadline: Instant) -> Lookup {
        let mut rx = match self.lead(key) {
            Ok(lease) => return self.ask_shared(key, planner, Some(lease)).await,
            Err(rx) => rx,
        };
        let until = deadline.min(Instant::now() + FOLLOW_AT_MOST);
        // Resolves when the leader drops its lease (stored, failed or not cacheable).
        let _ = tokio::time::timeout_at(until, rx.changed()).await;
        match self.valid(key, planner) {
            Some(hit) => Lookup::Hit(hit),
            None => match self.lead(key) {
                Ok(lease) => self.ask_shared(key, planner, Some(lease)).await,
                Err(_) => self.ask_shared(key, planner, None).await,
            },
        }
    }

    /// After a local miss: the entry from Redis if it is valid here (it is then kept
    /// locally too), otherwise a ticket with the generations Redis gave.
    async fn ask_shared(&self, key: Key, planner: &Planner, lease: Option<Lease>) -> Lookup {
        let Some(shared) = &self.shared else {
            return Lookup::Miss(Ticket {
                lease,
                gens: shared::Gens::new(),
                share: false,
            });
        };
        let Some((value, gens)) = shared.fetch(key).await else {
            // Redis cannot say: this server's own view of the generations.
            return Lookup::Miss(Ticket {
                lease,
                gens: shared.known_all(),
                share: false,
            });
        };
        if let Some(cached) = value.and_then(|v| self.adopt(v, &gens, planner)) {
            metrics::counter!(m::CACHE_SHARED_HITS_TOTAL).increment(1);
            let cached = Arc::new(cached);
            self.insert_arc(key, Arc::clone(&cached));
            return Lookup::Hit(cached);
        }
        Lookup::Miss(Ticket {
            lease,
            gens,
            share: true,
        })
    }

    /// An entry another server wrote, if it holds here: same catalogs (fingerprints), no
    /// refresh since (generations), no source this server does not cache.
    fn adopt(
        &self,
        fetched: shared::Fetched,
        gens: &shared::Gens,
        planner: &Planner,
    ) -> Option<Cached> {
        let shared::Fetched {
            header,
            schema,
            batches,
            weight,
            ipc,
        } = fetched;
        let n = header.sources.len();
        if header.prints.len() != n
            || header.gens.len() != n
            || header.sources.iter().any(|s| self.is_uncached(s))
        {
            return None;
        }
        // Versions first: a refresh between the two reads leaves the local copy stale at
        // once rather than current under a catalog it was not checked against.
        let versions = planner.catalog_versions(&header.sources);
        let prints = planner.catalog_fingerprints(&header.sources);
        let same_catalogs = prints
            .iter()
            .zip(&header.prints)
            .all(|(mine, theirs)| *mine == Some(*theirs));
        let no_refresh = header
            .sources
            .iter()
            .zip(&header.gens)
            .all(|(s, g)| gens.get(s).copied().unwrap_or(0) == *g);
        if !(same_catalogs && no_refresh) {
            return None;
        }
        Some(Cached {
            schema,
            batches,
            rows: header.rows,
            sources: header.sources,
            tables: header.tables,
            versions,
            gens: header.gens,
            digest: header.digest,
            weight,
            ipc: kept_ipc(weight, &ipc),
        })
    }

    /// The entry `key` names if it still holds (its sources unchanged), looked up in this
    /// server only; when there is none, [`Self::lookup_missed`] asks further.
    pub fn valid(&self, key: Key, planner: &Planner) -> Option<Arc<Cached>> {
        let entries = self.entries.as_ref()?;
        let hit = entries.get(&key)?;
        let no_refresh = self.shared.as_ref().is_none_or(|shared| {
            hit.sources
                .iter()
                .zip(&hit.gens)
                .all(|(s, g)| shared.known(s) == *g)
        });
        if no_refresh && planner.catalogs_unchanged(&hit.sources, &hit.versions) {
            Some(hit)
        } else {
            entries.invalidate(&key);
            None
        }
    }

    fn is_uncached(&self, source: &str) -> bool {
        self.uncached
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(source)
    }

    /// Follows a source added, changed (`Some(its cache setting)`) or removed (`None`) while
    /// serving: whether its results may be kept, and its generation in the shared cache.
    pub fn follow(&self, source: &str, cache: Option<bool>) {
        {
            let mut uncached = self
                .uncached
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if cache == Some(false) {
                uncached.insert(source.to_owned());
            } else {
                uncached.remove(source);
            }
        }
        if let Some(shared) = &self.shared {
            shared.follow(source, cache.is_some());
        }
    }

    /// Says that `source` was refreshed on purpose (`POST /v1/sources/{name}/refresh`): with
    /// a shared cache, its entries are stale on every server, not only this one.
    pub async fn refreshed(&self, source: &str) {
        if let Some(shared) = &self.shared {
            shared.bump(source).await;
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
            && !planned.sources.iter().any(|s| self.is_uncached(s))
    }

    /// A collector for the result of `planned`, stored under `key` when it completes, with
    /// the catalog versions the statement was resolved against and the generations read
    /// before it ran (a refresh while it runs leaves an entry that is stale at once, never
    /// one that passes for current). Without a `ticket` (a retry), the result is kept here
    /// only.
    pub fn collector(
        self: &Arc<Self>,
        key: Key,
        ticket: Option<Ticket>,
        planned: &PlannedQuery,
    ) -> Collector {
        let (lease, gens, share) = match ticket {
            Some(t) => (t.lease, t.gens, t.share),
            None => (
                None,
                self.shared
                    .as_ref()
                    .map(|s| s.known_all())
                    .unwrap_or_default(),
                false,
            ),
        };
        Collector {
            cache: Arc::clone(self),
            key,
            _lease: lease,
            sources: planned.sources.clone(),
            versions: planned.versions.clone(),
            gens: planned
                .sources
                .iter()
                .map(|s| gens.get(s).copied().unwrap_or(0))
                .collect(),
            // Only what every source's loaded catalog says can be checked elsewhere.
            prints: share
                .then(|| planned.fingerprints.iter().copied().collect())
                .flatten(),
            tables: planned.tables.clone(),
            writer: None,
            rows: 0,
        }
    }

    fn insert_arc(&self, key: Key, cached: Arc<Cached>) {
        if let Some(entries) = &self.entries {
            metrics::gauge!(m::CACHE_BYTES).increment(f64::from(cached.charge()));
            metrics::gauge!(m::CACHE_ENTRIES).increment(1.0);
            entries.insert(key, cached);
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
    gens: Vec<u64>,
    /// The sources' catalog fingerprints the statement was resolved against, when the
    /// result is also to be written to Redis.
    prints: Option<Vec<sluice_planner::Fingerprint>>,
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
        let digest = hex::encode(Sha256::digest(&ipc));
        let batches = StreamReader::try_new(std::io::Cursor::new(ipc.clone()), None)?
            .collect::<Result<Vec<_>, _>>()?;
        let cached = Arc::new(Cached {
            schema: Arc::clone(schema),
            batches,
            rows: self.rows,
            sources: std::mem::take(&mut self.sources),
            tables: std::mem::take(&mut self.tables),
            versions: std::mem::take(&mut self.versions),
            gens: std::mem::take(&mut self.gens),
            digest,
            weight,
            ipc: kept_ipc(weight, &ipc),
        });
        self.cache.insert_arc(self.key, Arc::clone(&cached));
        if let (Some(shared), Some(prints)) = (&self.cache.shared, self.prints.take()) {
            let header = shared::Header {
                rows: cached.rows,
                sources: cached.sources.clone(),
                tables: cached.tables.clone(),
                prints,
                gens: cached.gens.clone(),
                digest: cached.digest.clone(),
            };
            if let Some(value) = shared::encode(&header, &ipc) {
                shared.put(self.key, value);
            }
        }
        Ok(())
    }
}
