//! Entries shared between servers through Redis (`[cache] redis_url`).
//!
//! A result kept by one server is also written to Redis (`SET … PX ttl`), so another server
//! behind the same load balancer answers its first request for it from there. Two things
//! must hold before a server serves an entry it did not compute:
//!
//! - **Same catalog**: every source the result read has the fingerprint the computing server
//!   had (tables, columns, files with size, modification time and ETag). A server that has
//!   not yet seen new files computes its own answer, and one that has is never answered from
//!   an older listing.
//! - **No refresh since**: `POST /v1/sources/{name}/refresh` on any server increments the
//!   source's generation in Redis (`sluice:gen:{name}`): the way to say "the data behind
//!   this source changed" for sources whose catalog does not show it (PostgreSQL,
//!   Snowflake). An entry stores the generations read before its statement ran; one that
//!   differs from the current generation is a miss. Every server reads the generations with
//!   each Redis lookup and once a second, so its local copies follow within a second.
//!
//! Redis is a cache, never a dependency: an error or a timeout logs one warning per outage,
//! counts in `sluice_cache_shared_errors_total`, and the server goes on with its local cache
//! alone, trying Redis again after a second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::Key;
use crate::metrics as m;

/// How long one Redis exchange may take before the server goes on without it.
const EXCHANGE_AT_MOST: Duration = Duration::from_millis(500);
/// How long Redis is left alone after a failure.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// How often the sources' generations are read.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// What starts every value this module writes (and the version of its layout).
const MAGIC: &[u8; 4] = b"SLC1";

/// What an entry in Redis says about itself, before its Arrow IPC.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Header {
    pub rows: u64,
    pub sources: Vec<String>,
    pub tables: Vec<String>,
    /// Each source's catalog fingerprint when the result was computed.
    pub prints: Vec<sluice_planner::Fingerprint>,
    /// Each source's generation read before the statement ran.
    pub gens: Vec<u64>,
    pub digest: String,
}

/// Encodes an entry: magic, header length, header (JSON), Arrow IPC stream.
pub(super) fn encode(header: &Header, ipc: &[u8]) -> Option<Vec<u8>> {
    let head = serde_json::to_vec(header).ok()?;
    let len = u32::try_from(head.len()).ok()?;
    let mut out = Vec::with_capacity(8 + head.len() + ipc.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(ipc);
    Some(out)
}

/// The header and the IPC of an entry [`encode`] wrote; `None` for anything else.
pub(super) fn decode(value: &Bytes) -> Option<(Header, Bytes)> {
    let rest = value.strip_prefix(MAGIC)?;
    let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let head = rest.get(4..4 + len)?;
    let header = serde_json::from_slice(head).ok()?;
    let start = MAGIC.len() + 4 + len;
    Some((header, value.slice(start..)))
}

/// An entry read from Redis, decoded (on the query runtime: up to `max_entry_bytes` of IPC
/// is not decoded on an HTTP worker).
pub(super) struct Fetched {
    pub header: Header,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Bytes of IPC.
    pub weight: u32,
    /// The IPC stream the batches were read from.
    pub ipc: Bytes,
}

/// An entry [`encode`] wrote, decoded; `None` for anything else.
fn decode_entry(value: Vec<u8>) -> Option<Fetched> {
    let (header, ipc) = decode(&Bytes::from(value))?;
    let weight = u32::try_from(ipc.len()).ok()?;
    let reader = StreamReader::try_new(std::io::Cursor::new(ipc.clone()), None).ok()?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>().ok()?;
    Some(Fetched {
        header,
        schema,
        batches,
        weight,
        ipc,
    })
}

/// Sources' generations as read from Redis (0 for one never refreshed).
pub(super) type Gens = HashMap<String, u64>;

/// The Redis side of the result cache.
pub(super) struct Shared {
    conn: ConnectionManager,
    /// The query runtime: the connection's tasks live there, whoever asks.
    runtime: tokio::runtime::Handle,
    ttl_ms: u64,
    /// Every running source, the generations read for each exchange.
    sources: RwLock<Vec<String>>,
    /// The generations as last read.
    known: RwLock<Gens>,
    /// After a failure, Redis is not asked again before this.
    paused_until: Mutex<Option<Instant>>,
    /// Whether the last exchange failed (one warning per outage).
    down: AtomicBool,
    /// `host:port`, for logs (the URL may hold a password).
    target: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

fn result_key(key: Key) -> String {
    format!("sluice:result:{}", hex::encode(key.0))
}

fn gen_key(source: &str) -> String {
    format!("sluice:gen:{source}")
}

impl Shared {
    /// A client of `url` (not connected yet: the first exchange connects, so a server starts
    /// whether Redis is up or not), polling generations while the returned value lives.
    pub(super) fn start(
        url: &str,
        ttl_ms: u64,
        sources: Vec<String>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Arc<Self>, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let target = client.get_connection_info().addr().to_string();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(EXCHANGE_AT_MOST))
            .set_response_timeout(Some(EXCHANGE_AT_MOST))
            .set_number_of_retries(1);
        let conn = {
            let _in = runtime.enter();
            ConnectionManager::new_lazy_with_config(client, config)?
        };
        metrics::gauge!(m::CACHE_SHARED_UP).set(0.0);
        let shared = Arc::new(Self {
            conn,
            runtime: runtime.clone(),
            ttl_ms,
            sources: RwLock::new(sources),
            known: RwLock::default(),
            paused_until: Mutex::new(None),
            down: AtomicBool::new(false),
            target,
        });
        runtime.spawn(poll(Arc::downgrade(&shared)));
        Ok(shared)
    }

    /// Starts (`true`) or stops reading `source`'s generation: a source added or removed
    /// while serving.
    pub(super) fn follow(&self, source: &str, running: bool) {
        let mut sources = self.sources.write().unwrap_or_else(PoisonError::into_inner);
        sources.retain(|s| s != source);
        if running {
            sources.push(source.to_owned());
        }
    }

    /// `source`'s generation as last read.
    pub(super) fn known(&self, source: &str) -> u64 {
        self.known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(source)
            .copied()
            .unwrap_or(0)
    }

    /// The generations as last read.
    pub(super) fn known_all(&self) -> Gens {
        self.known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes what an `MGET` of `names`' generations read (in their order) as the generations
    /// known now.
    fn learn(&self, names: &[String], read: Vec<Option<u64>>) -> Gens {
        let gens: Gens = names
            .iter()
            .cloned()
            .zip(read.into_iter().map(Option::unwrap_or_default))
            .collect();
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        known.clone_from(&gens);
        gens
    }

    fn paused(&self) -> bool {
        self.paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until)
    }

    fn failed(&self, what: &str, error: &str) {
        metrics::counter!(m::CACHE_SHARED_ERRORS_TOTAL).increment(1);
        *self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + PAUSE_AFTER_FAILURE);
        if !self.down.swap(true, Ordering::Relaxed) {
            metrics::gauge!(m::CACHE_SHARED_UP).set(0.0);
            tracing::warn!(redis = %self.target, during = what, error, "The shared result cache (Redis) is unreachable; answering from this server's cache alone until it is back.");
        }
    }

    fn succeeded(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(redis = %self.target, "The shared result cache (Redis) is reachable again.");
        }
        metrics::gauge!(m::CACHE_SHARED_UP).set(1.0);
    }

    /// Runs `exchange` on the query runtime, bounded in time; `None` (and a recorded failure)
    /// when Redis is paused, unreachable or slow.
    async fn exchange<T, F>(&self, what: &'static str, exchange: F) -> Option<T>
    where
        T: Send + 'static,
        F: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        if self.paused() {
            return None;
        }
        let run = self
            .runtime
            .spawn(tokio::time::timeout(EXCHANGE_AT_MOST, exchange));
        match run.await {
            Ok(Ok(Ok(v))) => {
                self.succeeded();
                Some(v)
            }
            Ok(Ok(Err(e))) => {
                self.failed(what, &e.to_string());
                None
            }
            Ok(Err(_)) => {
                self.failed(what, "timed out");
                None
            }
            Err(e) => {
                self.failed(what, &e.to_string());
                None
            }
        }
    }

    /// The entry under `key` (if any) and every source's generation now, in one round trip;
    /// `None` when Redis cannot say.
    pub(super) async fn fetch(&self, key: Key) -> Option<(Option<Fetched>, Gens)> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        let names = self.names();
        // MGET needs a key: with no source running, the generation of one that never exists.
        let mut keys: Vec<String> = names.iter().map(|s| gen_key(s)).collect();
        if keys.is_empty() {
            keys.push(gen_key(""));
        }
        pipe.get(result_key(key)).mget(keys);
        let (value, gens) = self
            .exchange("lookup", async move {
                let (value, gens): (Option<Vec<u8>>, Vec<Option<u64>>) =
                    pipe.query_async(&mut conn).await?;
                Ok((value.and_then(decode_entry), gens))
            })
            .await?;
        Some((value, self.learn(&names, gens)))
    }

    /// Writes `value` under `key` with the cache's TTL, in the background.
    pub(super) fn put(self: &Arc<Self>, key: Key, value: Vec<u8>) {
        if self.paused() {
            return;
        }
        let me = Arc::clone(self);
        self.runtime.spawn(async move {
            let mut conn = me.conn.clone();
            let ttl = me.ttl_ms;
            let stored = me
                .exchange("store", async move {
                    redis::cmd("SET")
                        .arg(result_key(key))
                        .arg(value)
                        .arg("PX")
                        .arg(ttl)
                        .query_async::<()>(&mut conn)
                        .await
                })
                .await;
            if stored.is_some() {
                metrics::counter!(m::CACHE_SHARED_STORES_TOTAL).increment(1);
            }
        });
    }

    /// Says that `source` was refreshed: its entries on every server are stale.
    pub(super) async fn bump(&self, source: &str) {
        let mut conn = self.conn.clone();
        let k = gen_key(source);
        let new = self
            .exchange("refresh", async move {
                redis::cmd("INCR")
                    .arg(k)
                    .query_async::<u64>(&mut conn)
                    .await
            })
            .await;
        if let Some(g) = new {
            let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
            known.insert(source.to_owned(), g);
        }
    }

    /// The sources whose generations are read, now.
    fn names(&self) -> Vec<String> {
        self.sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn read_gens(&self) {
        let mut conn = self.conn.clone();
        let names = self.names();
        if names.is_empty() {
            return;
        }
        let keys: Vec<String> = names.iter().map(|s| gen_key(s)).collect();
        let read = self
            .exchange("generations", async move {
                redis::cmd("MGET")
                    .arg(keys)
                    .query_async::<Vec<Option<u64>>>(&mut conn)
                    .await
            })
            .await;
        if let Some(read) = read {
            self.learn(&names, read);
        }
    }
}

/// Reads the generations every [`POLL_EVERY`] while the cache lives.
async fn poll(shared: Weak<Shared>) {
    loop {
        match shared.upgrade() {
            Some(s) => s.read_gens().await,
            None => return,
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_and_anything_else_is_refused() {
        let header = Header {
            rows: 3,
            sources: vec!["local".into()],
            tables: vec!["local.public.nation".into()],
            prints: vec![[7; 16]],
            gens: vec![7],
            digest: "d".into(),
        };
        let value = Bytes::from(encode(&header, b"IPC").unwrap_or_default());
        let (back, ipc) = decode(&value).unwrap_or_else(|| panic!("decodes"));
        assert_eq!((back.rows, back.gens, &ipc[..]), (3, vec![7], &b"IPC"[..]));
        for bad in [
            &b""[..],
            b"SLC1",
            b"SLC1\xff\xff\xff\xff{}",
            b"XXXX\x02\0\0\0{}",
        ] {
            assert!(decode(&Bytes::copy_from_slice(bad)).is_none(), "{bad:?}");
        }
    }
}
