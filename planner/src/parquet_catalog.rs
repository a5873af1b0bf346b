//! [`ParquetCatalog`]: one object-store source's catalog, loaded and refreshed as a whole.
//!
//! A refresh lists the source (or takes its configured tables), builds a listing table per
//! table with its hive partition columns and inferred schema, and swaps the catalog in one
//! step: a query plans against either the old tables or the new ones, never a mix. Footers
//! come from DataFusion's metadata cache, which checks each file's size and modification
//! time, so a refresh re-reads only new or changed files; the cached file listings of the
//! source's tables are dropped first, so new files appear.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::TableReference;
use datafusion::datasource::listing::{ListingTable, ListingTableUrl};
use datafusion::execution::SessionState;
use object_store::ObjectStore;
use url::Url;

use crate::catalog::{self, TableLocation};
use crate::error::{PlanError, Result};

/// What to load for one object-store source.
#[derive(Debug, Clone)]
pub struct ParquetSourceSpec {
    /// Catalog (source) name.
    pub catalog: String,
    /// Schema the tables live in.
    pub schema: String,
    /// Folder URL the tables live under (ends with `/`).
    pub base: Url,
    /// Configured tables; empty means "discover the files and folders under `base`".
    pub tables: Vec<TableLocation>,
    /// Evaluate filters while decoding (late materialization) instead of after: fewer bytes
    /// fetched from a remote store, more CPU per row.
    pub pushdown_filters: bool,
}

/// What a source's catalog holds now.
#[derive(Debug, Clone, Default)]
pub struct CatalogStatus {
    /// Tables registered, `None` until the first load succeeds.
    pub tables: Option<usize>,
    /// When the last load or refresh succeeded.
    pub refreshed_at: Option<SystemTime>,
    /// Why the last attempt failed, if it did (no credentials).
    pub last_error: Option<String>,
    /// Changes with every successful load (0: never loaded), never repeating in a process: a
    /// result computed under one version may be stale under the next (the result cache keys
    /// on it).
    pub version: u64,
    /// What the last successful load found, hashed (tables, their columns and, for files,
    /// each file's path, size, modification time and ETag): two servers that loaded the same
    /// catalog agree on it, so results may be shared between them. `None` before a load.
    pub fingerprint: Option<Fingerprint>,
}

/// The next catalog version: one counter for every catalog of the process, so a source
/// removed and added again (a registry change) never comes back at a version a kept plan or
/// cached result was made under.
fn next_version() -> u64 {
    static VERSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    VERSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
}

/// A loaded catalog's content, hashed (the first 16 bytes of a SHA-256).
pub type Fingerprint = [u8; 16];

/// Hashes the parts of a loaded catalog into a [`CatalogStatus::fingerprint`]; the parts are
/// sorted first, so the order they were found in does not matter.
pub fn fingerprint(mut parts: Vec<String>) -> Fingerprint {
    use sha2::{Digest, Sha256};
    parts.sort_unstable();
    let mut h = Sha256::new();
    for part in &parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let mut print = Fingerprint::default();
    print.copy_from_slice(&h.finalize()[..16]);
    print
}

impl CatalogStatus {
    /// Records a load of `tables` tables, of [`fingerprint`] `fingerprint`, that started at
    /// `start`.
    pub fn loaded(
        &mut self,
        tables: usize,
        fingerprint: Fingerprint,
        start: Instant,
    ) -> RefreshSummary {
        self.tables = Some(tables);
        self.fingerprint = Some(fingerprint);
        self.refreshed_at = Some(SystemTime::now());
        self.last_error = None;
        self.version = next_version();
        RefreshSummary {
            tables,
            elapsed: start.elapsed(),
        }
    }

    /// Records a failed load (the previous tables stay); `reason` names no credentials.
    pub fn failed(&mut self, reason: String) {
        self.last_error = Some(reason);
    }
}

/// The outcome of a successful refresh.
#[derive(Debug, Clone)]
pub struct RefreshSummary {
    /// Tables registered.
    pub tables: usize,
    /// Wall time of the refresh.
    pub elapsed: Duration,
}

/// A source's catalog as the planner sees it: loaded and refreshed whole (by its source's
/// connector), so that a query plans against the old tables or the new ones, never a mix.
pub trait SourceCatalog: Send + Sync + std::fmt::Debug {
    /// A snapshot of what the catalog holds.
    fn status(&self) -> CatalogStatus;

    /// The path prefix its files show under in plans (`data/lake/` of
    /// `file:///data/lake/`), which reader keys must not see; `None` when it has none.
    fn location_prefix(&self) -> Option<String> {
        None
    }

    /// Its source was replaced or removed: a load still running must not put its tables
    /// back.
    fn retire(&self);
}

impl SourceCatalog for ParquetCatalog {
    fn status(&self) -> CatalogStatus {
        ParquetCatalog::status(self)
    }

    fn location_prefix(&self) -> Option<String> {
        let path = self.spec.base.path().trim_start_matches('/');
        (!path.is_empty()).then(|| path.to_owned())
    }

    fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// An object-store source's catalog and the state of its loading.
#[derive(Debug)]
pub struct ParquetCatalog {
    spec: ParquetSourceSpec,
    store: Arc<dyn ObjectStore>,
    state: Arc<SessionState>,
    status: RwLock<CatalogStatus>,
    /// Serializes refreshes (the timer and an admin call may overlap).
    refreshing: tokio::sync::Mutex<()>,
    /// Set when its source is replaced or removed: its loads no longer register tables.
    retired: std::sync::atomic::AtomicBool,
}

impl ParquetCatalog {
    pub(crate) fn new(
        spec: ParquetSourceSpec,
        store: Arc<dyn ObjectStore>,
        state: Arc<SessionState>,
    ) -> Self {
        Self {
            spec,
            store,
            state,
            status: RwLock::new(CatalogStatus::default()),
            refreshing: tokio::sync::Mutex::new(()),
            retired: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The catalog name.
    pub fn name(&self) -> &str {
        &self.spec.catalog
    }

    /// A snapshot of the catalog's state.
    pub fn status(&self) -> CatalogStatus {
        self.status
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Loads (or reloads) every table and swaps the catalog in.
    ///
    /// On failure the previous tables, if any, stay registered and the error is recorded in
    /// [`Self::status`] (`redact` is applied to it first).
    ///
    /// # Errors
    /// Listing, a footer read or partition inference failed.
    pub async fn refresh(&self, redact: impl Fn(&str) -> String) -> Result<RefreshSummary> {
        let _one_at_a_time = self.refreshing.lock().await;
        let start = Instant::now();
        let outcome = self.load().await;
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok((n, print)) => Ok(status.loaded(n, print, start)),
            Err(e) => {
                status.failed(redact(&e.to_string()));
                Err(e)
            }
        }
    }

    /// Registers the tables; their count and the catalog's fingerprint.
    async fn load(&self) -> Result<(usize, Fingerprint)> {
        let spec = &self.spec;
        let tables = if spec.tables.is_empty() {
            catalog::discover_tables(self.store.as_ref(), &spec.base).await?
        } else {
            spec.tables.clone()
        };
        let lists = self
            .state
            .runtime_env()
            .cache_manager
            .get_list_files_cache();
        let mut built = Vec::with_capacity(tables.len());
        let mut parts = Vec::new();
        for t in &tables {
            let reference =
                TableReference::full(spec.catalog.as_str(), spec.schema.as_str(), t.name.as_str());
            if let Some(cache) = &lists {
                // Forget the old listing so files added since show up.
                cache
                    .drop_table_entries(&reference)
                    .map_err(PlanError::Execution)?;
            }
            let table = catalog::parquet_table(
                &self.state,
                &t.url,
                reference.clone(),
                spec.pushdown_filters,
                DataType::Utf8,
            )
            .await
            .map_err(|e| with_table(e, &t.name))?;
            self.describe(&t.url, reference, &table, &mut parts)
                .await
                .map_err(|e| with_table(e, &t.name))?;
            built.push((t.name.clone(), table));
        }
        let n = built.len();
        if self.retired.load(std::sync::atomic::Ordering::Acquire) {
            return Err(PlanError::SourceUnavailable {
                name: spec.catalog.clone(),
                reason: "the source was replaced or removed".to_owned(),
            });
        }
        catalog::register_catalog(&self.state, &spec.catalog, &spec.schema, built)?;
        Ok((n, fingerprint(parts)))
    }

    /// Adds what identifies a table's content to `parts`: its name, schema and every file
    /// under it with size, modification time and ETag: the listing its scans will use, kept
    /// under `reference` in DataFusion's listing cache (dropped and made anew by this load;
    /// a listing under another key could be an old one).
    async fn describe(
        &self,
        url: &Url,
        reference: TableReference,
        table: &ListingTable,
        parts: &mut Vec<String>,
    ) -> Result<()> {
        use datafusion::catalog::TableProvider;
        use futures::TryStreamExt;
        let listing = ListingTableUrl::parse(url.as_str())
            .map_err(PlanError::Execution)?
            .with_table_ref(reference);
        parts.push(format!("table {url} {:?}", table.schema()));
        let files: Vec<_> = listing
            .list_all_files(self.state.as_ref(), self.store.as_ref(), ".parquet")
            .await
            .map_err(PlanError::Execution)?
            .try_collect()
            .await
            .map_err(PlanError::Execution)?;
        parts.extend(files.into_iter().map(|f| {
            format!(
                "file {} {} {} {:?}",
                f.location,
                f.size,
                f.last_modified.timestamp_nanos_opt().unwrap_or_default(),
                f.e_tag
            )
        }));
        Ok(())
    }
}

/// Prefixes an error with the table it happened in.
fn with_table(e: PlanError, table: &str) -> PlanError {
    match e {
        PlanError::Execution(df) => {
            PlanError::Execution(df.context(format!("loading table {table}")))
        }
        other => other,
    }
}
