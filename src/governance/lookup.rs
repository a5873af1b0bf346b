//! Looking up keys this server does not hold (or holds an older copy of) in the store, so a
//! key created or rotated through another server works on its first use, without letting a
//! flood of made-up keys cost a store statement each.
//!
//! Lookups are batched: ids wait in one pending set, and a single task reads them with one
//! statement (`WHERE id = ANY(...)`), at most one statement in flight and at most one per
//! [`MIN_GAP`]. An id found absent is remembered for [`ABSENT_FOR`] (a bounded cache), so the
//! same made-up key is refused without asking again. Whatever the flood, the store sees at
//! most one statement per `MIN_GAP`; a real key the server holds never waits here.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::keys::KeyRecord;
use super::store::{MetadataStore, StoreError};

/// The shortest time between two lookup statements.
pub const MIN_GAP: Duration = Duration::from_millis(100);
/// How long an id found absent is refused without asking the store again.
pub const ABSENT_FOR: Duration = Duration::from_secs(10);
/// Ids remembered as absent; past it, the oldest are forgotten.
const ABSENT_IDS: usize = 16_384;
/// Ids waiting for the next statement; past it, more are refused as unavailable (retry).
const PENDING_IDS: usize = 4_096;
/// How long a lookup may wait for its statement's answer before the key is refused as
/// unavailable (the store's own pool and connect bounds are 5 s each).
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// What the store said of one id.
#[derive(Debug, Clone)]
pub enum Found {
    /// The key's current record.
    Key(Box<KeyRecord>),
    /// No key has this id.
    Absent,
}

/// The answer of one statement, shared by everyone whose id it read.
type Answer = Option<Result<Arc<HashMap<String, KeyRecord>>, ()>>;

struct Batch {
    ids: HashSet<String>,
    done: watch::Sender<Answer>,
}

impl Batch {
    fn new() -> Self {
        Self {
            ids: HashSet::new(),
            done: watch::channel(None).0,
        }
    }
}

/// The batched lookups of one server.
pub struct Lookups {
    pending: Mutex<Batch>,
    absent: Mutex<lru::LruCache<String, Instant>>,
    /// Wakes the lookup task: ids are waiting, or the lookups are gone.
    wake: Arc<Notify>,
}

impl Drop for Lookups {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookups").finish_non_exhaustive()
    }
}

/// Why an id could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The store failed the statement.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many ids are already waiting.
    #[error("too many keys are waiting to be looked up")]
    Busy,
}

impl Lookups {
    /// The lookups against `store`, their task spawned on `runtime` (where the store's
    /// connections live); it ends when the returned value is dropped.
    pub fn start(store: Arc<dyn MetadataStore>, runtime: &tokio::runtime::Handle) -> Arc<Self> {
        let cap = NonZeroUsize::new(ABSENT_IDS).unwrap_or(NonZeroUsize::MIN);
        let wake = Arc::new(Notify::new());
        let this = Arc::new(Self {
            pending: Mutex::new(Batch::new()),
            absent: Mutex::new(lru::LruCache::new(cap)),
            wake: Arc::clone(&wake),
        });
        runtime.spawn(run(Arc::downgrade(&this), store, wake));
        this
    }

    /// What the store holds for `id`, from the next statement (or the absent cache).
    ///
    /// # Errors
    /// The store failed, or too many ids are waiting.
    pub async fn find(&self, id: &str) -> Result<Found, LookupError> {
        if self.known_absent(id) {
            return Ok(Found::Absent);
        }
        let mut done = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if pending.ids.len() >= PENDING_IDS && !pending.ids.contains(id) {
                return Err(LookupError::Busy);
            }
            pending.ids.insert(id.to_owned());
            pending.done.subscribe()
        };
        self.wake.notify_one();
        // Bounded: were the lookup task gone, a caller must hear so rather than wait forever.
        let answer = tokio::time::timeout(ANSWER_WITHIN, done.wait_for(Option::is_some))
            .await
            .map_err(|_| StoreError::Unavailable("no key lookup answered in time".to_owned()))?
            .map_err(|_| StoreError::Unavailable("the key lookup task stopped".to_owned()))?
            .clone();
        match answer {
            Some(Ok(found)) => Ok(found
                .get(id)
                .map_or(Found::Absent, |k| Found::Key(Box::new(k.clone())))),
            _ => Err(StoreError::Unavailable("the key lookup failed".to_owned()).into()),
        }
    }

    fn known_absent(&self, id: &str) -> bool {
        let mut absent = self.absent.lock().unwrap_or_else(PoisonError::into_inner);
        match absent.get(id) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                absent.pop(id);
                false
            }
            None => false,
        }
    }

    /// A key was created here: it is no longer absent.
    pub fn exists(&self, id: &str) {
        self.absent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop(id);
    }
}

/// Takes the pending batch and reads it with one statement, no sooner than [`MIN_GAP`] after
/// the previous one, until the lookups are dropped.
async fn run(lookups: std::sync::Weak<Lookups>, store: Arc<dyn MetadataStore>, wake: Arc<Notify>) {
    let mut last: Option<Instant> = None;
    loop {
        let Some(this) = lookups.upgrade() else {
            return;
        };
        let empty = this
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ids
            .is_empty();
        if empty {
            // Not holding the lookups while idle, so dropping them ends this task.
            drop(this);
            wake.notified().await;
            continue;
        }
        if let Some(at) = last {
            tokio::time::sleep_until(at + MIN_GAP).await;
        }
        last = Some(Instant::now());
        let batch = std::mem::replace(
            &mut *this.pending.lock().unwrap_or_else(PoisonError::into_inner),
            Batch::new(),
        );
        let ids: Vec<String> = batch.ids.into_iter().collect();
        metrics::counter!(crate::metrics::KEY_LOOKUP_STATEMENTS_TOTAL).increment(1);
        let answer = match store.keys_by_id(&ids).await {
            Ok(records) => {
                let found: HashMap<String, KeyRecord> =
                    records.into_iter().map(|k| (k.id.clone(), k)).collect();
                let until = Instant::now() + ABSENT_FOR;
                let mut absent = this.absent.lock().unwrap_or_else(PoisonError::into_inner);
                for id in ids.iter().filter(|id| !found.contains_key(*id)) {
                    absent.put(id.clone(), until);
                }
                Ok(Arc::new(found))
            }
            Err(e) => {
                tracing::warn!(error = %e, keys = ids.len(), "Keys could not be looked up.");
                Err(())
            }
        };
        // Nobody waiting any more is fine.
        let _ = batch.done.send(Some(answer));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::governance::store::local::LocalStore;

    /// A store that counts the statements it is sent.
    #[derive(Debug)]
    struct Counting {
        inner: LocalStore,
        statements: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl MetadataStore for Counting {
        async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
            self.inner.insert_key(key).await
        }
        async fn modify_key(
            &self,
            id: &str,
            change: crate::governance::store::KeyChange,
        ) -> Result<Option<crate::governance::store::Changed>, StoreError> {
            self.inner.modify_key(id, change).await
        }
        async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
            self.inner.key(id).await
        }
        async fn keys_by_id(&self, ids: &[String]) -> Result<Vec<KeyRecord>, StoreError> {
            self.statements.fetch_add(1, Ordering::Relaxed);
            self.inner.keys_by_id(ids).await
        }
        async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
            self.inner.keys().await
        }
        async fn write_audit(
            &self,
            batch: &[crate::governance::records::AuditRecord],
        ) -> Result<(), StoreError> {
            self.inner.write_audit(batch).await
        }
        async fn usage(&self, id: &str) -> Result<Vec<sluice_schemas::api::UsageDay>, StoreError> {
            self.inner.usage(id).await
        }
        async fn policies(&self) -> Result<Vec<sluice_schemas::api::Policy>, StoreError> {
            self.inner.policies().await
        }
        async fn put_policy(
            &self,
            policy: &sluice_schemas::api::Policy,
            replace: bool,
        ) -> Result<bool, StoreError> {
            self.inner.put_policy(policy, replace).await
        }
        async fn delete_policy(&self, name: &str) -> Result<bool, StoreError> {
            self.inner.delete_policy(name).await
        }
        async fn registry_version(&self) -> Result<u64, StoreError> {
            self.inner.registry_version().await
        }
        async fn registry(&self) -> Result<crate::governance::store::Registry, StoreError> {
            self.inner.registry().await
        }
        async fn put_source(
            &self,
            name: &str,
            record: &serde_json::Value,
            mode: crate::governance::store::PutMode,
            by: Option<&str>,
        ) -> Result<crate::governance::store::RegistryWrite, StoreError> {
            self.inner.put_source(name, record, mode, by).await
        }
        async fn delete_source(
            &self,
            name: &str,
        ) -> Result<crate::governance::store::RegistryWrite, StoreError> {
            self.inner.delete_source(name).await
        }
        fn describe(&self) -> String {
            "counting".into()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_made_up_ids_costs_one_statement_per_gap() {
        let store = Arc::new(Counting {
            inner: LocalStore::memory(),
            statements: AtomicUsize::new(0),
        });
        let (real, _) = KeyRecord::mint(
            crate::governance::keys::NewKey::admin("a"),
            chrono::Utc::now(),
        )
        .unwrap();
        store.insert_key(&real).await.unwrap();
        let lookups = Lookups::start(
            Arc::clone(&store) as Arc<dyn MetadataStore>,
            &tokio::runtime::Handle::current(),
        );
        let started = Instant::now();
        let asks = (0..2_000).map(|i| {
            let lookups = Arc::clone(&lookups);
            async move { lookups.find(&format!("key_{i:012x}")).await }
        });
        let answers = futures::future::join_all(asks).await;
        assert!(answers.iter().all(|a| matches!(a, Ok(Found::Absent))));
        let statements = store.statements.load(Ordering::Relaxed);
        let gaps = started.elapsed().as_millis() / MIN_GAP.as_millis() + 1;
        assert!(
            statements as u128 <= gaps,
            "{statements} statements in {gaps} gaps"
        );
        // The same made-up ids again: answered from the absent cache, no statement.
        let before = store.statements.load(Ordering::Relaxed);
        assert!(matches!(
            lookups.find("key_000000000001").await,
            Ok(Found::Absent)
        ));
        assert_eq!(store.statements.load(Ordering::Relaxed), before);
        // A real key is found.
        assert!(matches!(lookups.find(&real.id).await, Ok(Found::Key(k)) if k.id == real.id));
        // The absent cache forgets after its time.
        tokio::time::advance(ABSENT_FOR).await;
        let before = store.statements.load(Ordering::Relaxed);
        let _ = lookups.find("key_000000000001").await;
        assert_eq!(store.statements.load(Ordering::Relaxed), before + 1);
    }
}
