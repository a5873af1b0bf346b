//! Registering sources and reading their catalogs' versions and fingerprints.

use std::sync::Arc;

use object_store::ObjectStore;
use url::Url;

use super::Planner;
use crate::error::Result;
use crate::federation::{RemoteCatalog, RemoteSource};
use crate::parquet_catalog::{Fingerprint, ParquetCatalog, ParquetSourceSpec, SourceCatalog};

impl Planner {
    /// Makes `store` serve every URL with the scheme and authority of `url`.
    pub fn register_object_store(&self, url: &Url, store: Arc<dyn ObjectStore>) {
        self.state.runtime_env().register_object_store(url, store);
    }

    /// Registers an object-store source as catalog `spec.catalog`. Nothing is read yet: the
    /// tables appear with the returned catalog's first [`ParquetCatalog::refresh`]; until then
    /// queries on the source fail with [`crate::PlanError::SourceUnavailable`].
    pub fn register_parquet_source(
        &self,
        spec: ParquetSourceSpec,
        store: Arc<dyn ObjectStore>,
    ) -> Arc<ParquetCatalog> {
        self.register_object_store(&spec.base, Arc::clone(&store));
        let name = spec.catalog.clone();
        let catalog = Arc::new(ParquetCatalog::new(spec, store, Arc::clone(&self.state)));
        self.catalogs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, Arc::clone(&catalog) as Arc<dyn SourceCatalog>);
        catalog
    }

    /// Registers a remote source (PostgreSQL, Snowflake); its tables appear with the returned
    /// catalog's first refresh. `schemas` limits discovery to those schemas.
    pub fn register_remote_source(
        &self,
        source: RemoteSource,
        schemas: Option<Vec<String>>,
    ) -> Arc<RemoteCatalog> {
        let name = source.name.clone();
        let catalog = Arc::new(RemoteCatalog::new(
            Arc::new(source),
            schemas,
            Arc::clone(&self.state),
        ));
        self.catalogs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, Arc::clone(&catalog) as Arc<dyn SourceCatalog>);
        catalog
    }

    /// [`Self::register_parquet_source`], then the first load.
    ///
    /// # Errors
    /// When listing or reading a footer fails.
    pub async fn load_parquet_source(
        &self,
        spec: ParquetSourceSpec,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Arc<ParquetCatalog>> {
        let catalog = self.register_parquet_source(spec, store);
        catalog.refresh(str::to_owned).await?;
        Ok(catalog)
    }

    /// How many times source `name`'s catalog has loaded (0: never, or no such catalog). A
    /// result computed under one version may be stale under the next.
    pub fn catalog_version(&self, name: &str) -> u64 {
        self.source_catalog(name).map_or(0, |c| c.status().version)
    }

    /// [`Self::catalog_version`] of each of `sources`.
    pub fn catalog_versions(&self, sources: &[String]) -> Vec<u64> {
        sources.iter().map(|s| self.catalog_version(s)).collect()
    }

    /// Each of `sources`' catalog fingerprint (what it loaded, hashed: the same on every
    /// server that loaded the same catalog); `None` for one not loaded.
    pub fn catalog_fingerprints(&self, sources: &[String]) -> Vec<Option<Fingerprint>> {
        sources
            .iter()
            .map(|s| self.source_catalog(s).and_then(|c| c.status().fingerprint))
            .collect()
    }

    /// Whether every one of `sources` is still at its version in `versions` (as
    /// [`Self::catalog_versions`] gave them): nothing planned or computed under them is stale.
    pub fn catalogs_unchanged(&self, sources: &[String], versions: &[u64]) -> bool {
        // Version 0 is no catalog (never loaded, or removed): nothing made under it holds.
        sources.len() == versions.len()
            && sources
                .iter()
                .zip(versions)
                .all(|(s, v)| *v != 0 && self.catalog_version(s) == *v)
    }

    /// A planner that registers sources apart from this one (the catalogs [`Self::adopt`]
    /// takes), on the same session: their tables become visible here when their first load
    /// succeeds, replacing a source of the same name's in one step, while its catalog status
    /// (versions, loaded or not) stays the previous one's until adopted. A source is replaced
    /// this way without a moment when its tables are missing.
    pub fn staging(&self) -> Self {
        Self {
            catalogs: Arc::default(),
            ..self.clone()
        }
    }

    /// Takes the catalogs registered through `staging` (see [`Self::staging`]).
    pub fn adopt(&self, staging: &Self) {
        let staged =
            std::mem::take(&mut *staging.catalogs.write().unwrap_or_else(|p| p.into_inner()));
        let mut catalogs = self.catalogs.write().unwrap_or_else(|p| p.into_inner());
        for (name, catalog) in staged {
            if let Some(previous) = catalogs.insert(name, catalog) {
                previous.retire();
            }
        }
    }

    /// Removes source `name`: its catalog and its tables. Plans kept and results cached under
    /// it are stale from here (its version is gone); statements running on it keep what they
    /// hold; a statement naming it is `source_not_found` until it is added again. Whether there
    /// was one.
    pub fn deregister_source(&self, name: &str) -> bool {
        let had = self
            .catalogs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .inspect(|c| c.retire())
            .is_some();
        let list: &dyn std::any::Any = self.state.catalog_list().as_ref();
        let removed = list
            .downcast_ref::<datafusion::catalog::MemoryCatalogProviderList>()
            .and_then(|l| l.catalogs.remove(name))
            .is_some();
        if had || removed {
            self.removed
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_owned());
        }
        had || removed
    }

    /// Whether source `name` was removed while serving (and not added again).
    pub fn was_removed(&self, name: &str) -> bool {
        self.removed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
    }

    /// The catalog of source `name`, if it has one that loads.
    pub fn source_catalog(&self, name: &str) -> Option<Arc<dyn SourceCatalog>> {
        self.catalogs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}
