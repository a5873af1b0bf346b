//! Catalogs from sources: every source is a catalog, object-store sources get one schema of
//! listing tables over Parquet files or folders.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::common::TableReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SessionState;
use object_store::ObjectStore;
use url::Url;

use crate::error::{PlanError, Result};

/// One table to expose: a name and a file or folder URL under the source's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLocation {
    /// Table name in SQL.
    pub name: String,
    /// `file:///...`, `s3://...`, `az://...`: a folder ends with `/`.
    pub url: Url,
}

/// Lists the tables directly under `base`: each `*.parquet` file (named by its stem) and each
/// folder (named after it). Names that are not plain lower-case identifiers are lower-cased;
/// hidden entries (`.`/`_` prefixes, as Spark and Hive write them) are skipped.
pub async fn discover_tables(store: &dyn ObjectStore, base: &Url) -> Result<Vec<TableLocation>> {
    let listing = ListingTableUrl::parse(base.as_str()).map_err(PlanError::Execution)?;
    let prefix = listing.prefix();
    let found = store
        .list_with_delimiter(Some(prefix))
        .await
        .map_err(|e| PlanError::Execution(e.into()))?;
    let mut tables = Vec::new();
    for dir in found.common_prefixes {
        if let Some(name) = dir.filename().filter(|n| !is_hidden(n)) {
            tables.push(TableLocation {
                name: name.to_ascii_lowercase(),
                url: join(base, &format!("{name}/"))?,
            });
        }
    }
    for obj in found.objects {
        let Some(file) = obj.location.filename() else {
            continue;
        };
        if let Some(stem) = file.strip_suffix(".parquet").filter(|s| !is_hidden(s)) {
            tables.push(TableLocation {
                name: stem.to_ascii_lowercase(),
                url: join(base, file)?,
            });
        }
    }
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    tables.dedup_by(|a, b| a.name == b.name);
    Ok(tables)
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// `base` joined with a relative path; `base` must end with `/`.
pub fn join(base: &Url, relative: &str) -> Result<Url> {
    base.join(relative).map_err(|e| {
        PlanError::Execution(datafusion::error::DataFusionError::Configuration(format!(
            "bad table path {relative:?}: {e}"
        )))
    })
}

/// Builds a listing table over Parquet at `location` (a file, or a folder read recursively),
/// inferring its schema once and each file's statistics once. In a folder, hive-style `key=value/`
/// levels become partition columns of type `partition_type`, after the file columns; filters on
/// them prune files before anything is read. `reference` scopes DataFusion's listing cache to this
/// table.
pub async fn parquet_table(
    state: &SessionState,
    location: &Url,
    reference: TableReference,
    pushdown_filters: bool,
    partition_type: DataType,
) -> Result<Arc<ListingTable>> {
    let url = ListingTableUrl::parse(location.as_str())
        .map_err(PlanError::Execution)?
        .with_table_ref(reference);
    // The session's Parquet options carry `schema_force_view_types = false`.
    let mut parquet = state.table_options().parquet.clone();
    parquet.global.pushdown_filters = pushdown_filters;
    let format = ParquetFormat::default().with_options(parquet);
    let mut options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    if url.is_collection() {
        let partitions = options
            .infer_partitions(state, &url)
            .await
            .map_err(PlanError::Execution)?;
        options = options.with_table_partition_cols(
            partitions
                .into_iter()
                .map(|name| (name, partition_type.clone()))
                .collect(),
        );
    }
    let schema: SchemaRef = options
        .infer_schema(state, &url)
        .await
        .map_err(PlanError::Execution)?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    // Each file's statistics are read from its footer once, not on every plan: the runtime's
    // cache keeps them per table and file, checked against the file's size and modification
    // time (as DataFusion's own `register_parquet` does).
    let statistics = state.runtime_env().cache_manager.get_file_statistic_cache();
    Ok(Arc::new(
        ListingTable::try_new(config)
            .map_err(PlanError::Execution)?
            .with_cache(statistics),
    ))
}

/// Registers catalog `catalog` with one schema holding `tables`, replacing any earlier one in
/// one step.
pub fn register_catalog(
    state: &SessionState,
    catalog: &str,
    schema: &str,
    tables: Vec<(String, Arc<ListingTable>)>,
) -> Result<()> {
    let schema_provider = Arc::new(MemorySchemaProvider::new());
    for (name, table) in tables {
        schema_provider
            .register_table(name, table)
            .map_err(PlanError::Execution)?;
    }
    let catalog_provider = Arc::new(MemoryCatalogProvider::new());
    catalog_provider
        .register_schema(schema, schema_provider)
        .map_err(PlanError::Execution)?;
    state
        .catalog_list()
        .register_catalog(catalog.to_owned(), catalog_provider);
    Ok(())
}
