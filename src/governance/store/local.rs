//! The store without PostgreSQL: `keys.json` (mode 0600, replaced atomically), `audit.jsonl`
//! (appended) and `usage.json` under a data directory; or, with no directory, this process's
//! memory (keys minted at start, audit records in the log only).
//!
//! Writers (servers and `sluice keys` on the same folder) take an exclusive lock on
//! `.lock` around every read-modify-write, so none loses another's change.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sluice_schemas::api::UsageDay;

use super::{Changed, KeyChange, MetadataStore, StoreError, empty_day, usage_deltas};
use crate::governance::keys::KeyRecord;
use crate::governance::records::AuditRecord;

const KEYS: &str = "keys.json";
const USAGE: &str = "usage.json";
const AUDIT: &str = "audit.jsonl";
const LOCK: &str = ".lock";

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeysFile {
    keys: Vec<KeyRecord>,
}

/// `key id -> day -> counters`.
type Usage = BTreeMap<String, BTreeMap<String, UsageDay>>;

/// Keys, audit and usage in a folder, or in memory.
#[derive(Debug)]
pub struct LocalStore {
    dir: Option<PathBuf>,
    /// The memory copy (the only copy without a folder). Held only between awaits.
    memory: Mutex<(KeysFile, Usage)>,
}

fn io(what: &str, path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

impl LocalStore {
    /// Keys in this process only.
    pub fn memory() -> Self {
        Self {
            dir: None,
            memory: Mutex::default(),
        }
    }

    /// Keys under `dir`, created (mode 0700) if missing.
    ///
    /// # Errors
    /// When the folder cannot be created or its files cannot be read.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(dir).map_err(|e| io("cannot create", dir, &e))?;
        let store = Self {
            dir: Some(dir.to_owned()),
            memory: Mutex::default(),
        };
        // Read once now so a corrupt file stops the start, not the first request.
        store.locked(|_, _| Ok(((), false, false)))?;
        Ok(store)
    }

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
        self.locked(|keys, _| {
            keys.keys.push(key.clone());
            Ok(((), true, false))
        })
    }

    async fn modify_key(&self, id: &str, change: KeyChange) -> Result<Option<Changed>, StoreError> {
        self.locked(|keys, _| {
            let Some(slot) = keys.keys.iter_mut().find(|k| k.id == id) else {
                return Ok((None, false, false));
            };
            let secret = change(slot)?;
            Ok((Some((slot.clone(), secret)), true, false))
        })
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.locked(|keys, _| Ok((keys.keys.iter().find(|k| k.id == id).cloned(), false, false)))
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.locked(|keys, _| {
            let mut all = keys.keys.clone();
            all.sort_by_key(|k| std::cmp::Reverse(k.created_at));
            Ok((all, false, false))
        })
    }

    async fn write_audit(&self, batch: &[AuditRecord]) -> Result<(), StoreError> {
        if let Some(dir) = &self.dir {
            let path = dir.join(AUDIT);
            let mut lines = Vec::with_capacity(batch.len() * 256);
            for r in batch {
                serde_json::to_writer(&mut lines, r)
                    .map_err(|e| StoreError::Corrupt(format!("cannot encode audit: {e}")))?;
                lines.push(b'\n');
            }
            let append = || -> std::io::Result<()> {
                let mut f = open_private(&path, true)?;
                f.write_all(&lines)?;
                f.sync_data()
            };
            append().map_err(|e| io("cannot append to", &path, &e))?;
        }
        let deltas = usage_deltas(batch);
        if deltas.is_empty() {
            return Ok(());
        }
        self.locked(|_, usage| {
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
            Ok(((), false, true))
        })
    }

    async fn usage(&self, id: &str) -> Result<Vec<UsageDay>, StoreError> {
        self.locked(|_, usage| {
            let days = usage
                .get(id)
                .map(|d| d.values().cloned().collect())
                .unwrap_or_default();
            Ok((days, false, false))
        })
    }

    fn describe(&self) -> String {
        match &self.dir {
            Some(d) => format!("files in {}", d.display()),
            None => "this process's memory".to_owned(),
        }
    }
}
