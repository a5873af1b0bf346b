//! Remote tables as DataFusion sees them: [`RemoteSource`] (a source's name, dialect and
//! `pushdown` setting), [`RemoteTable`] (one table's columns) and [`RemoteCatalog`] (a
//! source's tables, discovered through its executor and swapped in whole).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider, Session,
    TableProvider,
};
use datafusion::common::{Result as DfResult, Statistics, stats::Precision};
use datafusion::datasource::TableType;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use sluice_schemas::Pushdown;

use super::dialect::SourceDialect;
use super::exec::{RemoteScanExec, RemoteStatementSpec};
use super::executor::{ColumnClass, RemoteExecutor, RemoteTableDef};
use super::filters::{self, Fidelity};
use crate::error::{PlanError, Result};
use crate::parquet_catalog::{CatalogStatus, RefreshSummary, SourceCatalog};

/// A remote source as the planner knows it. Its executor is not here: it is asked for at
/// statement start.
#[derive(Debug)]
pub struct RemoteSource {
    /// Catalog name.
    pub name: String,
    /// How it spells SQL and what it computes exactly.
    pub dialect: Arc<dyn SourceDialect>,
    /// How much of a query it is sent.
    pub pushdown: Pushdown,
    /// Its planner's estimates, for the cost-aware cut; `None` for a source that gives none.
    pub estimates: Option<Arc<super::cost::Estimates>>,
}

/// A remote table or view.
#[derive(Debug)]
pub struct RemoteTable {
    source: Arc<RemoteSource>,
    def: Arc<RemoteTableDef>,
    schema: SchemaRef,
}

impl RemoteTable {
    /// A table of `source`.
    pub fn new(source: Arc<RemoteSource>, def: RemoteTableDef) -> Self {
        let dialect = source.dialect.as_ref();
        let schema = Arc::new(Schema::new(
            def.columns
                .iter()
                .map(|c| Field::new(dialect.local_name(&c.name), c.data_type.clone(), c.nullable))
                .collect::<Vec<_>>(),
        ));
        Self {
            source,
            def: Arc::new(def),
            schema,
        }
    }

    /// The source it belongs to.
    pub fn source(&self) -> &Arc<RemoteSource> {
        &self.source
    }

    /// Its definition at the source.
    pub fn def(&self) -> &RemoteTableDef {
        &self.def
    }

    /// The statement a scan sends, and the node that runs it. With `pushdown = "none"` every
    /// column is fetched and nothing else is sent; the projection is applied locally.
    ///
    /// # Errors
    /// When the projection does not fit the table.
    pub fn scan_exec(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
        kept_local: Option<String>,
    ) -> DfResult<RemoteScanExec> {
        let all: Vec<usize> = (0..self.def.columns.len()).collect();
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| all.clone());
        let dialect = self.source.dialect.as_ref();
        let (fetch, sql, projection) = match self.source.pushdown {
            Pushdown::None => (
                all.clone(),
                filters::select_sql(dialect, &self.def, &all, &[], None),
                Some(wanted),
            ),
            Pushdown::Filters | Pushdown::Full => {
                let sql = filters::select_sql(dialect, &self.def, &wanted, filters, limit);
                (wanted, sql, None)
            }
        };
        let fetched = Arc::new(self.schema.project(&fetch)?);
        let classes: Vec<ColumnClass> = fetch
            .iter()
            .filter_map(|&i| self.def.columns.get(i).map(|c| c.class))
            .collect();
        let rows = self.def.rows_estimate.and_then(|n| usize::try_from(n).ok());
        RemoteScanExec::try_new(RemoteStatementSpec {
            source: self.source.name.clone(),
            dialect: Arc::clone(&self.source.dialect),
            sql,
            fetched,
            projection,
            classes,
            rows_estimate: rows.map(|n| limit.map_or(n, |l| n.min(l))),
            kept_local,
            estimate: None,
            weighed: None,
            ordering: Vec::new(),
            narrowable: self.source.pushdown != Pushdown::None,
            guarded: false,
        })
    }
}

#[async_trait]
impl TableProvider for RemoteTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        if self.def.view {
            TableType::View
        } else {
            TableType::Base
        }
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.source.pushdown {
                Pushdown::None => TableProviderFilterPushDown::Unsupported,
                Pushdown::Filters | Pushdown::Full => {
                    match filters::render(self.source.dialect.as_ref(), f, &self.def) {
                        Some((_, Fidelity::Exact)) => TableProviderFilterPushDown::Exact,
                        Some((_, Fidelity::Inexact)) => TableProviderFilterPushDown::Inexact,
                        None => TableProviderFilterPushDown::Unsupported,
                    }
                }
            })
            .collect())
    }

    fn statistics(&self) -> Option<Statistics> {
        let n = usize::try_from(self.def.rows_estimate?).ok()?;
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.num_rows = Precision::Inexact(n);
        Some(stats)
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(self.scan_exec(projection, filters, limit, None)?))
    }
}

/// A remote source's catalog: discovered through its executor, refreshed whole.
#[derive(Debug)]
pub struct RemoteCatalog {
    source: Arc<RemoteSource>,
    schemas: Option<Vec<String>>,
    state: Arc<SessionState>,
    status: std::sync::RwLock<CatalogStatus>,
    refreshing: tokio::sync::Mutex<()>,
    /// Set when its source is replaced or removed: its loads no longer register tables.
    retired: std::sync::atomic::AtomicBool,
}

impl RemoteCatalog {
    pub(crate) fn new(
        source: Arc<RemoteSource>,
        schemas: Option<Vec<String>>,
        state: Arc<SessionState>,
    ) -> Self {
        Self {
            source,
            schemas,
            state,
            status: std::sync::RwLock::default(),
            refreshing: tokio::sync::Mutex::new(()),
            retired: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The source.
    pub fn source(&self) -> &Arc<RemoteSource> {
        &self.source
    }

    /// Reads the source's tables through `executor` and swaps them in; on failure the
    /// previous tables stay and the reason is recorded.
    ///
    /// # Errors
    /// [`PlanError::SourceUnavailable`] with the reason.
    pub async fn refresh_with(&self, executor: &dyn RemoteExecutor) -> Result<RefreshSummary> {
        let _one_at_a_time = self.refreshing.lock().await;
        let start = Instant::now();
        let outcome = match executor.tables(self.schemas.as_deref()).await {
            Ok(tables) => {
                // The tables and their columns; not the row estimates, which drift.
                let print = crate::parquet_catalog::fingerprint(
                    tables
                        .iter()
                        .map(|t| format!("{} {} {} {:?}", t.schema, t.name, t.view, t.columns))
                        .collect(),
                );
                self.register(tables)
                    .map(|n| (n, print))
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.message),
        };
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok((n, print)) => Ok(status.loaded(n, print, start)),
            Err(reason) => {
                status.failed(reason.clone());
                Err(PlanError::SourceUnavailable {
                    name: self.source.name.clone(),
                    reason,
                })
            }
        }
    }

    /// Registers `tables` as the catalog now, as a successful refresh would (for tests).
    #[cfg(test)]
    pub(crate) fn install(&self, tables: Vec<RemoteTableDef>) -> Result<usize> {
        let n = self.register(tables)?;
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        status.tables = Some(n);
        Ok(n)
    }

    /// Registers `tables` as the catalog, replacing the previous one in one step.
    fn register(&self, tables: Vec<RemoteTableDef>) -> Result<usize> {
        let mut schemas: BTreeMap<String, Arc<MemorySchemaProvider>> = BTreeMap::new();
        let n = tables.len();
        let dialect = self.source.dialect.as_ref();
        for def in tables {
            let schema = schemas
                .entry(dialect.local_name(&def.schema))
                .or_insert_with(|| Arc::new(MemorySchemaProvider::new()));
            let name = dialect.local_name(&def.name);
            schema
                .register_table(
                    name,
                    Arc::new(RemoteTable::new(Arc::clone(&self.source), def)),
                )
                .map_err(PlanError::Execution)?;
        }
        let provider = Arc::new(MemoryCatalogProvider::new());
        for (name, schema) in schemas {
            provider
                .register_schema(&name, schema)
                .map_err(PlanError::Execution)?;
        }
        if self.retired.load(std::sync::atomic::Ordering::Acquire) {
            return Err(PlanError::SourceUnavailable {
                name: self.source.name.clone(),
                reason: "the source was replaced or removed".to_owned(),
            });
        }
        self.state
            .catalog_list()
            .register_catalog(self.source.name.clone(), provider);
        Ok(n)
    }
}

impl SourceCatalog for RemoteCatalog {
    fn status(&self) -> CatalogStatus {
        self.status
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::Release);
    }
}
