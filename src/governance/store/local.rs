//! The store without PostgreSQL: `keys.json` (mode 0600, replaced atomically), `audit.jsonl`
//! (appended) and `usage.json` (the last [`USAGE_DAYS`] days) under a data directory; or, with
//! no directory, this process's memory (keys minted at start, audit records in the log only).
//!
//! Writers (servers and `sluice keys` on the same folder) take an exclusive lock on
//! `.lock` around every read-modify-write, so none loses another's change. The file work
//! (locks, writes, fsync) runs on tokio's blocking threads, never on an async worker.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sluice_schemas::api::{Policy, UsageDay};

use super::{
    Changed, KeyChange, MetadataStore, PutMode, Registry, RegistryWrite, StoreError, StoredSource,
    empty_day, usage_deltas,
};
use crate::governance::keys::KeyRecord;
use crate::governance::records::AuditRecord;

const KEYS: &str = "keys.json";
const USAGE: &str = "usage.json";
const AUDIT: &str = "audit.jsonl";
const LOCK: &str = ".lock";

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeysFile {
    keys: Vec<KeyRecord>,
    /// Policies added through `/v1/policies`, kept beside the keys under the same lock.
    #[serde(default)]
    policies: Vec<Policy>,
    /// Sources added through `/v1/sources`, and the registry's version.
    #[serde(default)]
    sources: Vec<StoredSource>,
    #[serde(default)]
    registry_version: u64,
}

/// `key id -> day -> counters`.
type Usage = BTreeMap<String, BTreeMap<String, UsageDay>>;

/// Days of usage kept per key (13 months); older days are dropped as new ones are written, so
/// `usage.json` stops growing with every day.
pub const USAGE_DAYS: i64 = 400;

/// Keys, audit and usage in a folder, or in memory.
#[derive(Debug, Clone)]
pub struct LocalStore(Arc<Files>);

#[derive(Debug)]
struct Files {
    dir: Option<PathBuf>,
    /// The memory copy (the only copy without a folder). Never held across an await.
    memory: Mutex<(KeysFile, Usage)>,
}

fn io(what: &str, path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

impl LocalStore {
    /// Keys in this process only.
    pub fn memory() -> Self {
        Self(Arc::new(Files {
            dir: None,
            memory: Mutex::default(),
        }))
    }

    /// Keys under `dir`, created (mode 0700) if missing.
    ///
    /// # Errors
    /// When the folder cannot be created or its files cannot be read.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(dir).map_err(|e| io("cannot create", dir, &e))?;
        let files = Files {
            dir: Some(dir.to_owned()),
            memory: Mutex::default(),
        };
        // Read once now so a corrupt file stops the start, not the first request.
        files.locked(|_, _| Ok(((), false, false)))?;
        Ok(Self(Arc::new(files)))
    }

    /// Runs `f` under the folder's lock ([`Files::locked`]): on a blocking thread when there is
    /// a folder, at once in memory.
    async fn locked<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut KeysFile, &mut Usage) -> Result<(T, bool, bool), StoreError>
        + Send
        + 'static,
    ) -> Result<T, StoreError> {
        if self.0.dir.is_none() {
            return self.0.locked(f);
        }
        let files = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || files.locked(f))
            .await
            .map_err(|e| StoreError::Unavailable(format!("the file store's task failed: {e}")))?
    }

    /// Appends audit lines to `audit.jsonl` on a blocking thread.
    async fn append_audit(&self, lines: Vec<u8>) -> Result<(), StoreError> {
        let Some(dir) = self.0.dir.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || {
            let path = dir.join(AUDIT);
            let append = || -> std::io::Result<()> {
                let mut f = open_private(&path, true)?;
                f.write_all(&lines)?;
                f.sync_data()
            };
            append().map_err(|e| io("cannot append to", &path, &e))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("the file store's task failed: {e}")))?
    }
}

impl Files {
    /// Runs `f` on the keys and usage under the folder's lock, writing back what it changed.
    fn locked<T>(
        &self,
        f: impl FnOnce(&mut KeysFile, &mut Usage) -> Result<(T, bool, bool), StoreError>,
    ) -> Result<T, StoreError> {
        let mut memory = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(dir) = &self.dir else {
            let (keys, usage) = &mut *memory;
            return f(keys, usage).map(|(t, _, _)| t);
        };
        let lock_path = dir.join(LOCK);
        let lock =
            open_private(&lock_path, false).map_err(|e| io("cannot open", &lock_path, &e))?;
        lock.lock().map_err(|e| io("cannot lock", &lock_path, &e))?;
        let mut keys: KeysFile = read_json(&dir.join(KEYS))?;
        let mut usage: Usage = read_json(&dir.join(USAGE))?;
        let (t, keys_changed, usage_changed) = f(&mut keys, &mut usage)?;
        if keys_changed {
            write_atomic(&dir.join(KEYS), &keys)?;
        }
        if usage_changed {
            write_atomic(&dir.join(USAGE), &usage)?;
        }
        drop(lock);
        Ok(t)
    }
}

/// Drops the days before `oldest` (`YYYY-MM-DD`, which sorts as text) and keys left with none.
fn prune(usage: &mut Usage, oldest: &str) {
    for days in usage.values_mut() {
        days.retain(|day, _| day.as_str() >= oldest);
    }
    usage.retain(|_, days| !days.is_empty());
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

fn open_private(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).read(true);
    if append {
        o.append(true);
    } else {
        o.write(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

fn read_json<T: Default + for<'de> Deserialize<'de>>(path: &Path) -> Result<T, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Ok(T::default()),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(io("cannot read", path, &e)),
    }
}

/// Writes `value` to a temporary file (0600) beside `path`, syncs it, and renames it over
/// `path`: a reader sees the old file or the new one, never half of one.
fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode {}: {e}", path.display())))?;
    let write = || -> std::io::Result<()> {
        let mut f = open_private(&tmp, false)?;
        f.set_len(0)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            // The rename itself reaches the disk with the folder's sync.
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| io("cannot write", path, &e))
}

#[async_trait]
impl MetadataStore for LocalStore {
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        self.locked(move |keys, _| {
            keys.keys.push(key);
            Ok(((), true, false))
        })
        .await
    }

    async fn modify_key(&self, id: &str, change: KeyChange) -> Result<Option<Changed>, StoreError> {
        let id = id.to_owned();
        self.locked(move |keys, _| {
            let Some(slot) = keys.keys.iter_mut().find(|k| k.id == id) else {
                return Ok((None, false, false));
            };
            let secret = change(slot)?;
            Ok((Some((slot.clone(), secret)), true, false))
        })
        .await
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let id = id.to_owned();
        self.locked(move |keys, _| {
            Ok((keys.keys.iter().find(|k| k.id == id).cloned(), false, false))
        })
        .await
    }

    async fn keys_by_id(&self, ids: &[String]) -> Result<Vec<KeyRecord>, StoreError> {
        let ids: std::collections::HashSet<String> = ids.iter().cloned().collect();
        self.locked(move |keys, _| {
            let found = keys
                .keys
                .iter()
                .filter(|k| ids.contains(&k.id))
                .cloned()
                .collect();
            Ok((found, false, false))
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.locked(|keys, _| {
            let mut all = keys.keys.clone();
            all.sort_by_key(|k| std::cmp::Reverse(k.created_at));
            Ok((all, false, false))
        })
        .await
    }

    async fn policies(&self) -> Result<Vec<Policy>, StoreError> {
        self.locked(|keys, _| {
            let mut all = keys.policies.clone();
            all.sort_by(|a, b| a.name.cmp(&b.name));
            Ok((all, false, false))
        })
        .await
    }

    async fn put_policy(&self, policy: &Policy, replace: bool) -> Result<bool, StoreError> {
        let policy = policy.clone();
        self.locked(move |keys, _| {
            match keys.policies.iter_mut().find(|p| p.name == policy.name) {
                Some(_) if !replace => return Ok((false, false, false)),
                Some(slot) => *slot = policy,
                None => keys.policies.push(policy),
            }
            Ok((true, true, false))
        })
        .await
    }

    async fn delete_policy(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.locked(move |keys, _| {
            let before = keys.policies.len();
            keys.policies.retain(|p| p.name != name);
            let gone = keys.policies.len() != before;
            Ok((gone, gone, false))
        })
        .await
    }

    async fn registry_version(&self) -> Result<u64, StoreError> {
        self.locked(|keys, _| Ok((keys.registry_version, false, false)))
            .await
    }

    async fn registry(&self) -> Result<Registry, StoreError> {
        self.locked(|keys, _| {
            let mut sources = keys.sources.clone();
            sources.sort_by(|a, b| a.name.cmp(&b.name));
            Ok((
                Registry {
                    version: keys.registry_version,
                    sources,
                },
                false,
                false,
            ))
        })
        .await
    }

    async fn put_source(
        &self,
        name: &str,
        record: &serde_json::Value,
        mode: PutMode,
        by: Option<&str>,
    ) -> Result<RegistryWrite, StoreError> {
        let (name, record, by) = (name.to_owned(), record.clone(), by.map(str::to_owned));
        self.locked(move |keys, _| {
            let slot = keys.sources.iter().position(|s| s.name == name);
            let before = match (mode, slot) {
                (PutMode::Create, Some(_)) => return Ok((RegistryWrite::Exists, false, false)),
                (PutMode::Replace, None) => return Ok((RegistryWrite::Missing, false, false)),
                (_, Some(i)) => Some(keys.sources.remove(i).record),
                (_, None) => None,
            };
            keys.registry_version += 1;
            let version = keys.registry_version;
            keys.sources.push(StoredSource {
                name,
                record,
                version,
                updated_by: by,
            });
            Ok((RegistryWrite::Done { version, before }, true, false))
        })
        .await
    }

    async fn delete_source(&self, name: &str) -> Result<RegistryWrite, StoreError> {
        let name = name.to_owned();
        self.locked(move |keys, _| {
            let Some(i) = keys.sources.iter().position(|s| s.name == name) else {
                return Ok((RegistryWrite::Missing, false, false));
            };
            let before = Some(keys.sources.remove(i).record);
            keys.registry_version += 1;
            let version = keys.registry_version;
            Ok((RegistryWrite::Done { version, before }, true, false))
        })
        .await
    }

    async fn write_audit(&self, batch: &[AuditRecord]) -> Result<(), StoreError> {
        if self.0.dir.is_some() {
            let mut lines = Vec::with_capacity(batch.len() * 256);
            for r in batch {
                serde_json::to_writer(&mut lines, r)
                    .map_err(|e| StoreError::Corrupt(format!("cannot encode audit: {e}")))?;
                lines.push(b'\n');
            }
            self.append_audit(lines).await?;
        }
        let deltas = usage_deltas(batch);
        if deltas.is_empty() {
            return Ok(());
        }
        let oldest = (chrono::Utc::now() - chrono::Duration::days(USAGE_DAYS))
            .format("%Y-%m-%d")
            .to_string();
        self.locked(move |_, usage| {
            for ((key, day), d) in deltas {
                let e = usage
                    .entry(key)
                    .or_default()
                    .entry(day.clone())
                    .or_insert_with(|| empty_day(day));
                e.queries += d.queries;
                e.rows += d.rows;
                e.bytes += d.bytes;
                e.errors += d.errors;
            }
            prune(usage, &oldest);
            Ok(((), false, true))
        })
        .await
    }

    async fn usage(&self, id: &str) -> Result<Vec<UsageDay>, StoreError> {
        let id = id.to_owned();
        self.locked(move |_, usage| {
            let days = usage
                .get(&id)
                .map(|d| d.values().cloned().collect())
                .unwrap_or_default();
            Ok((days, false, false))
        })
        .await
    }

    fn describe(&self) -> String {
        match &self.0.dir {
            Some(d) => format!("files in {}", d.display()),
            None => "this process's memory".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: &str, queries: u64) -> UsageDay {
        UsageDay {
            queries,
            ..empty_day(d.to_owned())
        }
    }

    #[test]
    fn usage_keeps_its_last_days_only() {
        let mut usage = Usage::new();
        let a = usage.entry("key_a".to_owned()).or_default();
        a.insert("2025-01-01".into(), day("2025-01-01", 1));
        a.insert("2026-11-30".into(), day("2026-11-30", 2));
        usage
            .entry("key_b".to_owned())
            .or_default()
            .insert("2024-06-01".into(), day("2024-06-01", 3));
        prune(&mut usage, "2025-11-01");
        assert_eq!(usage.len(), 1, "a key with no recent day is gone");
        assert_eq!(
            usage["key_a"].keys().collect::<Vec<_>>(),
            ["2026-11-30"],
            "only the recent day stays"
        );
    }

    #[tokio::test]
    async fn the_folder_store_works_from_async_code() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let (record, _) = KeyRecord::mint(
            crate::governance::keys::NewKey::admin("a"),
            chrono::Utc::now(),
        )
        .unwrap();
        store.insert_key(&record).await.unwrap();
        let found = store
            .keys_by_id(&[record.id.clone(), "key_000000000000".into()])
            .await
            .unwrap();
        assert_eq!(found, std::slice::from_ref(&record));
        let mut audited = AuditRecord::new(
            crate::governance::records::AuditKind::Query,
            Some(record.id.clone()),
            "ok",
        );
        audited.query = Some(crate::governance::records::QueryAudit {
            query_id: "q".into(),
            operation: "query".into(),
            sql: "SELECT 1".into(),
            sql_sha256: String::new(),
            tables: Vec::new(),
            sources: Vec::new(),
            rows: 1,
            bytes: 2,
            duration_ms: 3,
            error_code: None,
        });
        store.write_audit(&[audited]).await.unwrap();
        let usage = store.usage(&record.id).await.unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!((usage[0].queries, usage[0].rows), (1, 1));
        let lines = std::fs::read_to_string(dir.path().join(AUDIT)).unwrap();
        assert_eq!(lines.lines().count(), 1);
    }
}
