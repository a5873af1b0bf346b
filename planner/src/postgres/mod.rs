//! PostgreSQL tables: discovery from the catalog, and a [`PgTable`] provider whose scans run
//! one generated `SELECT` (projection, filters, limit pushed down) and stream its rows.
//!
//! - [`types`]: PostgreSQL types to Arrow, and binary decoding.
//! - [`pushdown`]: which filters PostgreSQL evaluates exactly as DataFusion would, and the SQL.
//! - [`scan`]: [`scan::PgScanExec`], the remote statement as an execution plan.

pub mod pushdown;
pub mod scan;
pub mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider, Session,
    TableProvider,
};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableType;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use deadpool_postgres::Pool;
use futures::future::BoxFuture;

use crate::error::{PlanError, Result};
use types::PgType;

/// Sent on every remote session, so DBAs can tell Sluice's statements apart.
pub const APPLICATION_NAME: &str = "sluice";

/// Sends a cancel request for a running statement (over TLS when the source uses it).
pub type Canceller = Arc<
    dyn Fn(
            tokio_postgres::CancelToken,
        ) -> BoxFuture<'static, std::result::Result<(), tokio_postgres::Error>>
        + Send
        + Sync,
>;

/// How a source's statements reach PostgreSQL: the pool of the replica that serves, and how
/// to cancel a statement on it.
#[derive(Clone)]
pub struct PgRemote {
    /// Connections.
    pub pool: Pool,
    /// Cancel requests.
    pub cancel: Canceller,
    /// Statements that gave up waiting for a free connection; the source actor reads (and
    /// resets) it on each health check to report a saturated pool.
    pub pool_timeouts: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for PgRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRemote")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// One column of a remote table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgColumn {
    /// Name as PostgreSQL spells it.
    pub name: String,
    /// Type.
    pub ty: PgType,
    /// May hold NULL.
    pub nullable: bool,
    /// Text compares byte for byte for equality (every collation but a nondeterministic ICU
    /// one); true for non-text columns.
    pub deterministic: bool,
}

/// A remote table or view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTableDef {
    /// Schema.
    pub schema: String,
    /// Table or view name.
    pub name: String,
    /// A view or materialized view.
    pub view: bool,
    /// Columns in order.
    pub columns: Vec<PgColumn>,
}

/// Tables, views, materialized views, partitioned and foreign tables the login may read, with
/// their columns, outside the system schemas. Domains are described by their base type;
/// arrays by their element type. Needs PostgreSQL 12 or later (`collisdeterministic`).
const DISCOVER_SQL: &str = "\
SELECT n.nspname::text, c.relname::text, a.attname::text, NOT a.attnotnull, \
       coalesce(et.typname, bt.typname)::text, \
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, \
       et.oid IS NOT NULL, coalesce(co.collisdeterministic, true), c.relkind IN ('v', 'm') \
FROM pg_catalog.pg_class c \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
LEFT JOIN pg_catalog.pg_type et ON bt.typcategory = 'A' AND et.oid = bt.typelem \
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') \
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
  AND has_table_privilege(c.oid, 'SELECT') \
ORDER BY 1, 2, a.attnum";

/// How long reading the catalog may take.
const DISCOVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads every readable table's columns (optionally only in `schemas`).
///
/// # Errors
/// The connection or the catalog query failed.
pub async fn discover(
    client: &impl deadpool_postgres::GenericClient,
    schemas: Option<&[String]>,
) -> std::result::Result<Vec<PgTableDef>, tokio_postgres::Error> {
    let rows = client.query(DISCOVER_SQL, &[]).await?;
    let mut out: Vec<PgTableDef> = Vec::new();
    for row in rows {
        let schema: String = row.try_get(0)?;
        if schemas.is_some_and(|s| !s.contains(&schema)) {
            continue;
        }
        let table: String = row.try_get(1)?;
        let column = PgColumn {
            name: row.try_get(2)?,
            nullable: row.try_get(3)?,
            deterministic: row.try_get(7)?,
            ty: PgType::from_catalog(
                &row.try_get::<_, String>(4)?,
                row.try_get(5)?,
                row.try_get(6)?,
            ),
        };
        match out.last_mut() {
            Some(t) if t.schema == schema && t.name == table => t.columns.push(column),
            _ => out.push(PgTableDef {
                schema,
                name: table,
                view: row.try_get(8)?,
                columns: vec![column],
            }),
        }
    }
    Ok(out)
}

/// Registers catalog `catalog` holding `tables`, replacing any earlier one in one step.
///
/// # Errors
/// Never in practice (registration in memory).
pub fn register(
    state: &SessionState,
    catalog: &str,
    tables: Vec<PgTableDef>,
    remote: &PgRemote,
) -> Result<usize> {
    let mut schemas: BTreeMap<String, Arc<MemorySchemaProvider>> = BTreeMap::new();
    let n = tables.len();
    for def in tables {
        let schema = schemas
            .entry(def.schema.clone())
            .or_insert_with(|| Arc::new(MemorySchemaProvider::new()));
        let name = def.name.clone();
        schema
            .register_table(
                name,
                Arc::new(PgTable::new(catalog.to_owned(), def, remote.clone())),
            )
            .map_err(PlanError::Execution)?;
    }
    let provider = Arc::new(MemoryCatalogProvider::new());
    for (name, schema) in schemas {
        provider
            .register_schema(&name, schema)
            .map_err(PlanError::Execution)?;
    }
    state
        .catalog_list()
        .register_catalog(catalog.to_owned(), provider);
    Ok(n)
}

/// A PostgreSQL table as DataFusion sees it.
#[derive(Debug)]
pub struct PgTable {
    source: String,
    def: Arc<PgTableDef>,
    schema: SchemaRef,
    remote: PgRemote,
}

impl PgTable {
    /// A table of source `source` read through `remote`.
    pub fn new(source: String, def: PgTableDef, remote: PgRemote) -> Self {
        let schema = Arc::new(Schema::new(
            def.columns
                .iter()
                .map(|c| Field::new(&c.name, c.ty.arrow(), c.nullable))
                .collect::<Vec<_>>(),
        ));
        Self {
            source,
            def: Arc::new(def),
            schema,
            remote,
        }
    }
}

#[async_trait]
impl TableProvider for PgTable {
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
            .map(|f| match pushdown::render(f, &self.def) {
                Some((_, pushdown::Fidelity::Exact)) => TableProviderFilterPushDown::Exact,
                Some((_, pushdown::Fidelity::Inexact)) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.def.columns.len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&columns)?);
        let sql = pushdown::select_sql(&self.def, &columns, filters, limit);
        Ok(Arc::new(scan::PgScanExec::new(
            self.source.clone(),
            sql,
            columns
                .iter()
                .filter_map(|&i| self.def.columns.get(i).map(|c| c.ty.clone()))
                .collect(),
            schema,
            self.remote.clone(),
        )))
    }
}

/// A PostgreSQL source's catalog: discovered from the server, refreshed whole.
#[derive(Debug)]
pub struct PgCatalog {
    name: String,
    remote: PgRemote,
    schemas: Option<Vec<String>>,
    state: Arc<SessionState>,
    status: std::sync::RwLock<crate::CatalogStatus>,
    refreshing: tokio::sync::Mutex<()>,
}

impl PgCatalog {
    pub(crate) fn new(
        name: String,
        remote: PgRemote,
        schemas: Option<Vec<String>>,
        state: Arc<SessionState>,
    ) -> Self {
        Self {
            name,
            remote,
            schemas,
            state,
            status: std::sync::RwLock::default(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    async fn load(&self) -> std::result::Result<usize, String> {
        let failed = |e: &(dyn std::error::Error + 'static)| crate::redact::with_causes(e);
        let mut client = self.remote.pool.get().await.map_err(|e| failed(&e))?;
        // Read-only and bounded, like every statement Sluice sends.
        let tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(|e| failed(&e))?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}",
            DISCOVER_TIMEOUT.as_millis()
        ))
        .await
        .map_err(|e| failed(&e))?;
        let tables = discover(&tx, self.schemas.as_deref())
            .await
            .map_err(|e| failed(&e))?;
        tx.commit().await.map_err(|e| failed(&e))?;
        register(&self.state, &self.name, tables, &self.remote).map_err(|e| e.to_string())
    }
}

impl crate::parquet_catalog::SourceCatalog for PgCatalog {
    fn status(&self) -> crate::CatalogStatus {
        self.status
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn refresh(&self) -> futures::future::BoxFuture<'_, Result<crate::RefreshSummary>> {
        Box::pin(async move {
            let _one_at_a_time = self.refreshing.lock().await;
            let start = std::time::Instant::now();
            let outcome = self.load().await;
            let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
            match outcome {
                Ok(n) => {
                    status.tables = Some(n);
                    status.refreshed_at = Some(std::time::SystemTime::now());
                    status.last_error = None;
                    Ok(crate::RefreshSummary {
                        tables: n,
                        elapsed: start.elapsed(),
                    })
                }
                Err(e) => {
                    status.last_error = Some(e.clone());
                    Err(PlanError::SourceUnavailable {
                        name: self.name.clone(),
                        reason: e,
                    })
                }
            }
        })
    }
}
