//! Where keys, the audit log and usage live: PostgreSQL ([`postgres::PgStore`]) when
//! `[metadata] postgres_url` is set, else files under `[metadata] data_dir`
//! ([`local::LocalStore`]), else this process only (the same store without a folder).

pub mod local;
pub mod postgres;

use async_trait::async_trait;
use secrecy::SecretString;
use sluice_schemas::api::{Policy, UsageDay};

use super::keys::KeyRecord;
use super::records::AuditRecord;

/// A change to one key; it may hand back a new secret (rotation).
pub type KeyChange =
    Box<dyn FnOnce(&mut KeyRecord) -> Result<Option<SecretString>, StoreError> + Send>;

/// A changed key, and the secret its change made, if any.
pub type Changed = (KeyRecord, Option<SecretString>);

/// One source the registry holds: a `[[sources]]` entry as JSON, `${VAR}` references
/// unexpanded (no secret is ever stored).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredSource {
    /// Catalog name.
    pub name: String,
    /// The entry.
    pub record: serde_json::Value,
    /// The registry version that last wrote it.
    pub version: u64,
    /// Who wrote it (a key id), if known.
    #[serde(default)]
    pub updated_by: Option<String>,
}

/// The whole registry at one version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registry {
    /// Bumped by every change.
    pub version: u64,
    /// Every entry, by name.
    pub sources: Vec<StoredSource>,
}

/// What a registry write did.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryWrite {
    /// Written at `version`; `before` is the entry it replaced or deleted.
    Done {
        /// The registry's version with this change.
        version: u64,
        /// The entry before, if there was one.
        before: Option<serde_json::Value>,
    },
    /// A creation whose name is taken.
    Exists,
    /// A replacement or deletion of no entry.
    Missing,
}

/// How [`MetadataStore::put_source`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Only a new name.
    Create,
    /// Only an existing entry.
    Replace,
}

/// A store failure; the text is for the server log, never for clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or refused the statement.
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// The store holds something this version cannot read.
    #[error("metadata store corrupt: {0}")]
    Corrupt(String),
}

/// Keys, audit records and usage, wherever they live. Every server sharing a store sees the
/// same keys (each re-reads them every `auth.key_sync_ms`).
#[async_trait]
pub trait MetadataStore: Send + Sync + std::fmt::Debug {
    /// Adds a key.
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
    /// Changes key `id` under the store's lock on it (a row lock, or the folder's lock), so
    /// concurrent changes through several servers apply one after the other: a revocation is
    /// never undone by a rotation that read the key before it. `None` if there is no such key.
    async fn modify_key(&self, id: &str, change: KeyChange) -> Result<Option<Changed>, StoreError>;
    /// One key by id.
    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// The keys of these ids that exist, in one statement.
    async fn keys_by_id(&self, ids: &[String]) -> Result<Vec<KeyRecord>, StoreError>;
    /// Every key, newest first.
    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// Appends audit records and adds their queries to the usage counters, all or nothing:
    /// a batch written twice (a retry after a lost reply) is counted once.
    async fn write_audit(&self, batch: &[AuditRecord]) -> Result<(), StoreError>;
    /// A key's usage per day, oldest first.
    async fn usage(&self, id: &str) -> Result<Vec<UsageDay>, StoreError>;
    /// Every stored policy, by name.
    async fn policies(&self) -> Result<Vec<Policy>, StoreError>;
    /// Stores a policy: always when `replace`, else only if no policy has its name. Whether it
    /// was stored.
    async fn put_policy(&self, policy: &Policy, replace: bool) -> Result<bool, StoreError>;
    /// Deletes a policy; whether there was one.
    async fn delete_policy(&self, name: &str) -> Result<bool, StoreError>;
    /// The source registry's version (cheap: every server reads it each
    /// `metadata.registry_sync_ms`).
    async fn registry_version(&self) -> Result<u64, StoreError>;
    /// The whole source registry.
    async fn registry(&self) -> Result<Registry, StoreError>;
    /// Creates or replaces one registry entry (by `mode`) and bumps the version, in one step.
    async fn put_source(
        &self,
        name: &str,
        record: &serde_json::Value,
        mode: PutMode,
        by: Option<&str>,
    ) -> Result<RegistryWrite, StoreError>;
    /// Deletes one registry entry and bumps the version, in one step.
    async fn delete_source(&self, name: &str) -> Result<RegistryWrite, StoreError>;
    /// What and where, for the log (no credentials).
    fn describe(&self) -> String;
}

/// The usage counters one batch adds: `(key, day) -> (queries, rows, bytes, errors)`.
pub(crate) fn usage_deltas(
    batch: &[AuditRecord],
) -> std::collections::BTreeMap<(String, String), UsageDay> {
    let mut out: std::collections::BTreeMap<(String, String), UsageDay> = Default::default();
    for r in batch {
        let (Some(q), Some(key)) = (&r.query, &r.key_id) else {
            continue;
        };
        let day = r.at.format("%Y-%m-%d").to_string();
        let e = out
            .entry((key.clone(), day.clone()))
            .or_insert_with(|| empty_day(day));
        e.queries += 1;
        e.rows += q.rows;
        e.bytes += q.bytes;
        if r.outcome != "ok" {
            e.errors += 1;
        }
    }
    out
}

/// A day with no use yet.
pub(crate) fn empty_day(day: String) -> UsageDay {
    UsageDay {
        day,
        queries: 0,
        rows: 0,
        bytes: 0,
        errors: 0,
    }
}
