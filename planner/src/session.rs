//! The [`Planner`]: one DataFusion session state shared by all queries, with the memory pool,
//! catalogs and defaults from config; per query it parses, validates, binds and plans.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProviderList, TableProvider};
use datafusion::common::TableReference;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::{
    ExecutionPlan, SendableRecordBatchStream, displayable, execute_stream,
};
use datafusion::prelude::SessionConfig;
use object_store::ObjectStore;
use url::Url;

use crate::error::{PlanError, Result};
use crate::federation::{QueryContext, RemoteCatalog, RemoteScanExec, RemoteSource};
use crate::grants::{GrantedCatalogList, Grants};
use crate::params::{self, Params};
use crate::parquet_catalog::{Fingerprint, ParquetCatalog, ParquetSourceSpec, SourceCatalog};
use crate::validate;

/// Settings the planner takes from the server config.
#[derive(Debug, Clone)]
pub struct PlannerOptions {
    /// Memory all running queries may hold together.
    pub memory_limit_bytes: usize,
    /// Catalog bare names resolve in.
    pub default_catalog: Option<String>,
    /// Schema bare names resolve in.
    pub default_schema: Option<String>,
    /// Partitions per scan; `None` uses the number of cores.
    pub target_partitions: Option<usize>,
}

impl Default for PlannerOptions {
    fn default() -> Self {
        Self {
            memory_limit_bytes: 2 << 30,
            default_catalog: None,
            default_schema: None,
            target_partitions: None,
        }
    }
}

/// Catalog used when none is configured; it holds nothing, so bare names fail to resolve.
const NO_DEFAULT_CATALOG: &str = "sluice";

/// Plans and runs read-only SQL over the registered sources.
///
/// Cheap to clone; all clones share catalogs, object stores and the memory pool.
#[derive(Clone)]
pub struct Planner {
    state: Arc<SessionState>,
    catalogs: Arc<RwLock<BTreeMap<String, Arc<dyn SourceCatalog>>>>,
    /// `Some` for a key's restricted view (see [`crate::grants`]).
    grants: Option<Arc<Grants>>,
    /// Every catalog, under any restricted view.
    base: Arc<dyn CatalogProviderList>,
    /// Statements planned before, by text: their checked, unbound logical plans. Each view
    /// (restricted, with fallbacks) has its own, as its plans resolve to other tables.
    plans: PlanCache,
}

/// A statement's plan as far as it does not depend on its parameters' values: parsed,
/// resolved, checked read-only and against the grants, not yet bound or optimized.
#[derive(Debug, Clone)]
struct KeptPlan {
    plan: LogicalPlan,
    sources: Vec<String>,
    tables: Vec<String>,
    immutable: bool,
    /// Each source's catalog version when it was planned: a refresh makes it stale.
    versions: Vec<u64>,
    /// Each source's catalog fingerprint, read just after `versions`.
    fingerprints: Vec<Option<Fingerprint>>,
}

type PlanCache = Arc<std::sync::Mutex<lru::LruCache<String, Arc<KeptPlan>>>>;

/// Statements whose plans each view keeps.
const KEPT_PLANS: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(256) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};

fn plan_cache() -> PlanCache {
    Arc::new(std::sync::Mutex::new(lru::LruCache::new(KEPT_PLANS)))
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner")
            .field("session_id", &self.state.session_id())
            .finish()
    }
}

/// A statement planned for execution.
#[derive(Debug, Clone)]
pub struct PlannedQuery {
    /// The optimized logical plan.
    pub logical: LogicalPlan,
    /// The physical plan to execute.
    pub physical: Arc<dyn ExecutionPlan>,
    /// Catalogs (sources) the statement reads, sorted.
    pub sources: Vec<String>,
    /// Fully qualified tables the statement reads, sorted.
    pub tables: Vec<String>,
    /// No function in the statement may answer differently on the same data (`random()`,
    /// `now()`, `uuid()` may): its result can be reused while its sources are unchanged.
    pub immutable: bool,
    /// Each source's catalog version the statement was resolved against, in `sources`' order
    /// ([`Planner::catalogs_unchanged`] tells whether a result of it is still current).
    pub versions: Vec<u64>,
    /// Each source's catalog fingerprint (read after `versions`): what another server must
    /// have loaded to use a result of it.
    pub fingerprints: Vec<Option<Fingerprint>>,
}

impl PlannedQuery {
    /// True for `EXPLAIN` and `EXPLAIN ANALYZE` statements.
    pub fn is_explain(&self) -> bool {
        matches!(
            self.logical,
            LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)
        )
    }

    /// True for `EXPLAIN ANALYZE`, whose output is made while it runs.
    pub fn is_analyze(&self) -> bool {
        matches!(self.logical, LogicalPlan::Analyze(_))
    }

    /// The schema of the result as clients will receive it (string views as plain strings).
    pub fn output_schema(&self) -> SchemaRef {
        crate::output::plain_schema(&self.physical.schema())
    }
}

/// Asks `gate` about each of `sources`: `Some(reason)` stops the statement.
fn check_gate(sources: &[String], gate: Option<&SourceGate>) -> Result<()> {
    if let Some(gate) = gate {
        for name in sources {
            if let Some(reason) = gate(name) {
                return Err(PlanError::SourceUnavailable {
                    name: name.clone(),
                    reason,
                });
            }
        }
    }
    Ok(())
}

/// A statement sent to a source, for `EXPLAIN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStatement {
    /// Source (catalog) name.
    pub source: String,
    /// The exact SQL.
    pub sql: String,
    /// Why the operator above it was not sent with it, if one was kept local.
    pub kept_local: Option<String>,
}

/// A table as the catalog describes it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Source (catalog) name.
    pub catalog: String,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Columns, with string views shown as the plain strings clients receive.
    pub columns: SchemaRef,
}

/// Asked for each source a statement reads, before planning touches it: why it cannot serve
/// now, if it cannot.
pub type SourceGate = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A catalog list where some names are served by other catalogs (fallbacks).
#[derive(Debug)]
struct AliasedCatalogList {
    inner: Arc<dyn CatalogProviderList>,
    aliases: BTreeMap<String, String>,
}

impl CatalogProviderList for AliasedCatalogList {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn datafusion::catalog::CatalogProvider>,
    ) -> Option<Arc<dyn datafusion::catalog::CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        self.inner.catalog_names()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn datafusion::catalog::CatalogProvider>> {
        let serving = self.aliases.get(name).map_or(name, String::as_str);
        self.inner.catalog(serving)
    }
}

impl Planner {
    /// A planner with no sources yet.
    ///
    /// # Errors
    /// When DataFusion's runtime (memory pool, disk manager) cannot be built.
    pub fn new(options: &PlannerOptions) -> Result<Self> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(
                options
                    .default_catalog
                    .as_deref()
                    .unwrap_or(NO_DEFAULT_CATALOG),
                options.default_schema.as_deref().unwrap_or("public"),
            );
        if let Some(n) = options.target_partitions {
            config = config.with_target_partitions(n);
        }
        let opts = config.options_mut();
        // Plain strings: what Arrow clients and JSON/CSV expect, and ~1.8x smaller on the wire.
        opts.execution.parquet.schema_force_view_types = false;
        // Row-level filter pushdown stays at DataFusion's default (off): on TPC-H SF 1 it made
        // Sluice 1.15x slower than embedded DataFusion in sum, Q6 1.9x and Q9 1.8x
        // (benches/RESULTS.md). Row-group and page pruning by statistics work without it.
        // `1.10` is an exact decimal, as in PostgreSQL, Trino and DuckDB, not a float.
        opts.sql_parser.parse_float_as_decimal = true;
        // A hash join hands its probe side the build side's keys as a list (not only a
        // hash-table lookup) up to this many: a remote statement on that side can only be
        // narrowed by a list (benches/RESULTS.md, federation).
        opts.optimizer.hash_join_inlist_pushdown_max_distinct_values =
            crate::federation::runtime_filter::MAX_IN_LIST;
        opts.optimizer.hash_join_inlist_pushdown_max_size = 1 << 20;
        // Spilled sorts are fine; a hash join over the limit fails cleanly instead. The pool is
        // fair: operators that can spill (sorts, aggregations) each get an equal share of what
        // the unspillable ones (hash-join build sides) leave, so one huge sort spills at its
        // share instead of taking the memory every other running query needs.
        let pool = datafusion::execution::memory_pool::TrackConsumersPool::new(
            datafusion::execution::memory_pool::FairSpillPool::new(options.memory_limit_bytes),
            std::num::NonZeroUsize::MIN.saturating_add(4),
        );
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .build_arc()
            .map_err(PlanError::Execution)?;
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_analyzer_rule(Arc::new(crate::rewrite::FloatComparisonRule))
            .with_physical_optimizer_rule(Arc::new(crate::rewrite::YieldAfterMultipliers))
            .with_physical_optimizer_rule(Arc::new(
                crate::federation::join_filters::AwaitJoinFilters,
            ))
            .with_query_planner(Arc::new(crate::federation::node::FederatingQueryPlanner))
            .build();
        // The guarded functions replace DataFusion's of the same names.
        #[allow(unused_mut, reason = "the test hooks add to it")]
        let mut functions = crate::functions::guarded();
        #[cfg(feature = "test-hooks")]
        functions.extend([
            crate::test_hooks::panic_udf(),
            crate::test_hooks::fault_udf(),
        ]);
        for f in functions {
            use datafusion::execution::FunctionRegistry as _;
            state
                .register_udf(Arc::new(f))
                .map_err(PlanError::Execution)?;
        }
        let base = Arc::clone(state.catalog_list());
        Ok(Self {
            state: Arc::new(state),
            catalogs: Arc::default(),
            grants: None,
            base,
            plans: plan_cache(),
        })
    }

    /// The same planner seeing only what `grants` allow: its catalog, `information_schema`
    /// and listings hold only granted tables, and every plan it makes is checked against
    /// them (see [`crate::grants`]). Sources registered or refreshed later show through it.
    /// Costs a session build: keep it per key, not per request.
    pub fn restricted(&self, grants: Arc<Grants>) -> Self {
        let view = Arc::new(GrantedCatalogList::new(
            Arc::clone(self.unrestricted_catalogs()),
            Arc::clone(&grants),
        ));
        let state = SessionStateBuilder::new_from_existing(SessionState::clone(&self.state))
            .with_catalog_list(view)
            .build();
        Self {
            state: Arc::new(state),
            catalogs: Arc::clone(&self.catalogs),
            grants: Some(grants),
            base: Arc::clone(&self.base),
            plans: plan_cache(),
        }
    }

    /// The same planner where each `(name, serving)` pair's catalog `name` is served by
    /// source `serving`'s tables: a source's fallback standing in for it. Names, grants and
    /// the reads recorded stay the asked-for source's; only the tables behind them change.
    pub fn with_fallbacks(&self, pairs: &[(String, String)]) -> Self {
        let aliases: BTreeMap<String, String> = pairs.iter().cloned().collect();
        let aliased: Arc<dyn CatalogProviderList> = Arc::new(AliasedCatalogList {
            inner: Arc::clone(&self.base),
            aliases: aliases.clone(),
        });
        let list = match &self.grants {
            Some(g) => Arc::new(GrantedCatalogList::new(aliased, Arc::clone(g))) as _,
            None => aliased,
        };
        let state = SessionStateBuilder::new_from_existing(SessionState::clone(&self.state))
            .with_catalog_list(list)
            .build();
        let mut catalogs = self
            .catalogs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (name, serving) in &aliases {
            if let Some(c) = catalogs.get(serving).cloned() {
                catalogs.insert(name.clone(), c);
            }
        }
        Self {
            state: Arc::new(state),
            catalogs: Arc::new(RwLock::new(catalogs)),
            grants: self.grants.clone(),
            base: Arc::clone(&self.base),
            plans: plan_cache(),
        }
    }

    /// The grants this planner is restricted to, if any.
    pub fn grants(&self) -> Option<&Arc<Grants>> {
        self.grants.as_ref()
    }

    /// The full catalog list under any restricted view.
    fn unrestricted_catalogs(&self) -> &Arc<dyn datafusion::catalog::CatalogProviderList> {
        self.state.catalog_list()
    }

    /// True when a source (catalog) of this name is registered.
    pub fn has_catalog(&self, name: &str) -> bool {
        self.state.catalog_list().catalog(name).is_some()
    }

    /// Makes `store` serve every URL with the scheme and authority of `url`.
    pub fn register_object_store(&self, url: &Url, store: Arc<dyn ObjectStore>) {
        self.state.runtime_env().register_object_store(url, store);
    }

    /// Registers an object-store source as catalog `spec.catalog`. Nothing is read yet: the
    /// tables appear with the returned catalog's first [`ParquetCatalog::refresh`]; until then
    /// queries on the source fail with [`PlanError::SourceUnavailable`].
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
        sources.len() == versions.len()
            && sources
                .iter()
                .zip(versions)
                .all(|(s, v)| self.catalog_version(s) == *v)
    }

    /// The catalog of source `name`, if it has one that loads.
    pub fn source_catalog(&self, name: &str) -> Option<Arc<dyn SourceCatalog>> {
        self.catalogs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Parses, validates, binds and plans `sql`.
    ///
    /// `max_rows`, when given, caps the plan at `max_rows + 1` rows so the caller can tell
    /// "exactly the limit" from "over it" without running the query to completion.
    ///
    /// # Errors
    /// [`PlanError`] classified by cause: empty, parse, several statements, read-only,
    /// unknown table, invalid SQL, parameters, unsupported.
    pub async fn plan(
        &self,
        sql: &str,
        params: Option<&Params>,
        max_rows: Option<u64>,
    ) -> Result<PlannedQuery> {
        self.plan_gated(sql, params, max_rows, None).await
    }

    /// [`Self::plan`], asking `gate` about each source the statement reads before any of
    /// them is touched (planning an object-store scan lists its files): `Some(reason)` stops
    /// it with [`PlanError::SourceUnavailable`].
    ///
    /// # Errors
    /// As [`Self::plan`].
    pub async fn plan_gated(
        &self,
        sql: &str,
        params: Option<&Params>,
        max_rows: Option<u64>,
        gate: Option<&SourceGate>,
    ) -> Result<PlannedQuery> {
        // Each statement gets its own start time, as `SessionContext::sql` does: `now()`,
        // `current_date` and friends fold to it while optimizing, and are one instant in the
        // whole statement.
        let mut state = SessionState::clone(&self.state);
        state.mark_start_execution();
        let kept = match self.kept_plan(sql) {
            Some(k) => {
                check_gate(&k.sources, gate)?;
                k
            }
            None => self.plan_statement(sql, &state, gate).await?,
        };
        let KeptPlan {
            plan,
            sources,
            tables,
            immutable,
            versions,
            fingerprints,
        } = KeptPlan::clone(&kept);
        let mut plan = params::bind(plan, params)?;
        if let Some(max) = max_rows {
            plan = cap_rows(plan, max)?;
        }
        let logical = state.optimize(&plan).map_err(PlanError::classify)?;
        // The largest subtrees each remote source computes exactly become one statement.
        let logical = crate::federation::cut::federate(logical).map_err(PlanError::classify)?;
        let physical = state
            .query_planner()
            .create_physical_plan(&logical, &state)
            .await
            .map_err(PlanError::classify)?;
        // A key's view shows no server paths, in EXPLAIN's answer either.
        let physical = if self.grants.is_some() {
            self.redact_explain(physical)
        } else {
            physical
        };
        Ok(PlannedQuery {
            logical,
            physical,
            sources,
            tables,
            immutable,
            versions,
            fingerprints,
        })
    }

    /// The kept plan of `sql`, if its sources' catalogs have not changed since.
    fn kept_plan(&self, sql: &str) -> Option<Arc<KeptPlan>> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        let kept = plans.get(sql)?;
        if self.catalogs_unchanged(&kept.sources, &kept.versions) {
            Some(Arc::clone(kept))
        } else {
            plans.pop(sql);
            None
        }
    }

    /// Parses, resolves and checks `sql` (read-only, grants), and keeps the result.
    async fn plan_statement(
        &self,
        sql: &str,
        state: &SessionState,
        gate: Option<&SourceGate>,
    ) -> Result<Arc<KeptPlan>> {
        let statement = validate::parse_single_read_only(sql)?;
        let refs = state
            .resolve_table_references(&statement)
            .map_err(PlanError::classify)?;
        let (sources, tables) = self.check_tables(&refs)?;
        // Before anything touches a source (planning an object-store scan lists its files).
        check_gate(&sources, gate)?;
        let versions = self.catalog_versions(&sources);
        let fingerprints = self.catalog_fingerprints(&sources);
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(PlanError::classify)?;
        validate::check_plan(&plan)?;
        if let Some(grants) = &self.grants {
            let options = self.state.config_options();
            let functions = self.state.table_functions();
            grants.check_plan(
                &plan,
                &options.catalog.default_catalog,
                &options.catalog.default_schema,
                |name| functions.contains_key(name),
            )?;
        }
        // Before optimizing, which folds `now()` into a literal.
        let immutable = validate::is_immutable(&plan);
        let kept = Arc::new(KeptPlan {
            plan,
            sources,
            tables,
            immutable,
            versions,
            fingerprints,
        });
        self.plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(sql.to_owned(), Arc::clone(&kept));
        Ok(kept)
    }

    /// `text` with every object-store source's location prefix replaced by its name
    /// (`work/data/tpch/nation.parquet` becomes `local/nation.parquet`).
    pub fn redact_locations(&self, text: &str) -> String {
        let catalogs = self.catalogs.read().unwrap_or_else(|p| p.into_inner());
        let mut out = text.to_owned();
        for (name, catalog) in catalogs.iter() {
            if let Some(prefix) = catalog.location_prefix() {
                let prefix = if prefix.ends_with('/') {
                    prefix
                } else {
                    format!("{prefix}/")
                };
                out = out.replace(&prefix, &format!("{name}/"));
            }
        }
        out
    }

    /// An `EXPLAIN`'s precomputed text, with locations redacted.
    fn redact_explain(&self, plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        use datafusion::common::display::StringifiedPlan;
        use datafusion::physical_plan::explain::ExplainExec;
        let any: &dyn std::any::Any = plan.as_ref();
        let Some(explain) = any.downcast_ref::<ExplainExec>() else {
            return plan;
        };
        let plans = explain
            .stringified_plans()
            .iter()
            .map(|p| StringifiedPlan::new(p.plan_type.clone(), self.redact_locations(&p.plan)))
            .collect();
        Arc::new(ExplainExec::new(explain.schema(), plans, explain.verbose()))
    }

    /// Resolves every table reference against the catalog; unknown ones are
    /// [`PlanError::TableNotFound`] with the fully qualified name.
    fn check_tables(&self, refs: &[TableReference]) -> Result<(Vec<String>, Vec<String>)> {
        let options = self.state.config_options();
        let default_catalog = &options.catalog.default_catalog;
        let default_schema = &options.catalog.default_schema;
        let mut sources = BTreeSet::new();
        let mut tables = BTreeSet::new();
        for r in refs {
            // Table functions (`generate_series(1, 3)`) show up as bare references too.
            if let TableReference::Bare { table } = r
                && self.state.table_functions().contains_key(table.as_ref())
            {
                continue;
            }
            let full = r.clone().resolve(default_catalog, default_schema);
            let name = format!("{}.{}.{}", full.catalog, full.schema, full.table);
            // A source outside the grants is missing, loaded or not.
            if self
                .grants
                .as_ref()
                .is_none_or(|g| g.sees_catalog(&full.catalog))
            {
                self.check_loaded(&full.catalog)?;
            }
            let exists = full.schema.as_ref() == "information_schema"
                || self
                    .state
                    .catalog_list()
                    .catalog(&full.catalog)
                    .and_then(|c| c.schema(&full.schema))
                    .is_some_and(|s| s.table_exist(&full.table));
            if !exists {
                return Err(PlanError::TableNotFound(name));
            }
            if full.schema.as_ref() != "information_schema" {
                sources.insert(full.catalog.to_string());
                tables.insert(name);
            }
        }
        Ok((sources.into_iter().collect(), tables.into_iter().collect()))
    }

    /// A source whose tables never loaded cannot say which tables it has: every name in it
    /// is [`PlanError::SourceUnavailable`], not "not found".
    fn check_loaded(&self, catalog: &str) -> Result<()> {
        let Some(source) = self.source_catalog(catalog) else {
            return Ok(());
        };
        let status = source.status();
        if status.tables.is_some() {
            return Ok(());
        }
        Err(PlanError::SourceUnavailable {
            name: catalog.to_owned(),
            reason: status
                .last_error
                .unwrap_or_else(|| "its tables are still loading".to_owned()),
        })
    }

    /// Starts executing a planned query. Dropping the stream cancels it, remote statements
    /// included. `context` gives remote statements the query id, deadline and executors.
    ///
    /// # Errors
    /// When execution cannot start.
    pub fn execute(
        &self,
        query: &PlannedQuery,
        context: Option<QueryContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut task = self.state.task_ctx();
        if let Some(ctx) = context {
            let config = task.session_config().clone().with_extension(Arc::new(ctx));
            task = Arc::new(
                datafusion::execution::TaskContext::from(self.state.as_ref())
                    .with_session_config(config),
            );
        }
        execute_stream(Arc::clone(&query.physical), task).map_err(PlanError::classify)
    }

    /// The statements a plan sends to remote sources, in plan order.
    pub fn remote_statements(&self, query: &PlannedQuery) -> Vec<RemoteStatement> {
        fn walk(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<RemoteStatement>) {
            let any: &dyn std::any::Any = plan.as_ref();
            if let Some(scan) = any.downcast_ref::<RemoteScanExec>() {
                out.push(RemoteStatement {
                    source: scan.source_name().to_owned(),
                    sql: scan.sql().to_owned(),
                    kept_local: scan.kept_local().map(str::to_owned),
                });
            }
            for child in plan.children() {
                walk(child, out);
            }
        }
        let mut out = Vec::new();
        walk(&query.physical, &mut out);
        out
    }

    /// The logical and physical plans as indented text.
    pub fn explain(&self, query: &PlannedQuery) -> (String, String) {
        (
            query.logical.display_indent().to_string(),
            displayable(query.physical.as_ref())
                .indent(true)
                .to_string(),
        )
    }

    /// Every table of every catalog, sorted (information_schema excluded).
    pub async fn tables(&self) -> Vec<TableInfo> {
        let mut out = Vec::new();
        let list = self.state.catalog_list();
        let mut catalogs = list.catalog_names();
        catalogs.sort();
        for c in catalogs {
            let Some(catalog) = list.catalog(&c) else {
                continue;
            };
            let mut schemas = catalog.schema_names();
            schemas.sort();
            for s in schemas {
                let Some(schema) = catalog.schema(&s) else {
                    continue;
                };
                let mut names = schema.table_names();
                names.sort();
                for t in names {
                    if let Ok(Some(provider)) = schema.table(&t).await {
                        out.push(table_info(&c, &s, &t, provider.as_ref()));
                    }
                }
            }
        }
        out
    }

    /// One table by `catalog.schema.table` (or a shorter name resolved with the defaults).
    pub async fn table(&self, name: &str) -> Option<TableInfo> {
        let options = self.state.config_options();
        let full = TableReference::parse_str(name).resolve(
            &options.catalog.default_catalog,
            &options.catalog.default_schema,
        );
        let schema = self
            .state
            .catalog_list()
            .catalog(&full.catalog)?
            .schema(&full.schema)?;
        let provider = schema.table(&full.table).await.ok()??;
        Some(table_info(
            &full.catalog,
            &full.schema,
            &full.table,
            provider.as_ref(),
        ))
    }
}

/// Caps the rows a statement produces at `max + 1`, so the caller can tell "exactly the
/// limit" from "over it". `EXPLAIN` and `EXPLAIN ANALYZE` must stay the root of their plan:
/// the cap goes on the query under them, which is also what `ANALYZE` then runs.
fn cap_rows(plan: LogicalPlan, max: u64) -> Result<LogicalPlan> {
    use datafusion::logical_expr::{Analyze, Explain};
    // DataFusion keeps LIMIT values as i64 in places; 2^63 would wrap negative.
    let fetch = max.saturating_add(1).min(i64::MAX as u64);
    let fetch = usize::try_from(fetch).unwrap_or(usize::MAX);
    let limit = |p: LogicalPlan| {
        LogicalPlanBuilder::from(p)
            .limit(0, Some(fetch))
            .and_then(LogicalPlanBuilder::build)
            .map_err(PlanError::classify)
    };
    match plan {
        LogicalPlan::Explain(e) => {
            let inner = cap_rows(Arc::unwrap_or_clone(e.plan), max)?;
            Ok(LogicalPlan::Explain(Explain {
                plan: Arc::new(inner),
                ..e
            }))
        }
        LogicalPlan::Analyze(a) => {
            let inner = limit(Arc::unwrap_or_clone(a.input))?;
            Ok(LogicalPlan::Analyze(Analyze {
                input: Arc::new(inner),
                ..a
            }))
        }
        other => limit(other),
    }
}

fn table_info(catalog: &str, schema: &str, table: &str, provider: &dyn TableProvider) -> TableInfo {
    TableInfo {
        catalog: catalog.to_owned(),
        schema: schema.to_owned(),
        table: table.to_owned(),
        columns: crate::output::plain_schema(&provider.schema()),
    }
}
