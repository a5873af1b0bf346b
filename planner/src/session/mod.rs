//! The [`Planner`]: one DataFusion session state shared by all queries, with the memory pool,
//! catalogs and defaults from config; per query it parses, validates, binds and plans.
//!
//! One type, its `impl` split by concern (as DataFusion splits `SessionContext`'s):
//! - this file: the session, its options and its views (a key's grants, fallbacks);
//! - `sources`: registering sources, their catalogs' versions and fingerprints;
//! - `plan`: the per-query pipeline and execution;
//! - `explain`: plans as text, remote statements, redaction;
//! - `catalog`: the tables a view shows.

mod catalog;
mod explain;
mod plan;
mod sources;

pub use plan::Described;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::CatalogProviderList;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;

use crate::error::{PlanError, Result};
use crate::grants::{GrantedCatalogList, Grants};
use crate::parquet_catalog::{Fingerprint, SourceCatalog};

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
    /// `Some` for a view with row filters and column masks (see [`crate::policy`]).
    policies: Option<Arc<crate::policy::PolicySet>>,
    /// Every catalog, under any restricted view.
    base: Arc<dyn CatalogProviderList>,
    /// Statements planned before, by text: their checked, unbound logical plans. Each view
    /// (restricted, with fallbacks) has its own, as its plans resolve to other tables.
    plans: PlanCache,
    /// This view with other name defaults ([`Planner::with_defaults`]), kept so a session's
    /// statements share one view and its kept plans.
    with_defaults: DefaultsViews,
    /// Sources removed while serving (and not added again): a name in one of them is
    /// `source_not_found`, not a missing table. Shared by every view.
    removed: Arc<RwLock<std::collections::BTreeSet<String>>>,
}

type DefaultsViews = Arc<std::sync::Mutex<lru::LruCache<(String, String), Planner>>>;

/// Name-default views each view keeps.
const DEFAULTS_VIEWS: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(32) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};

fn defaults_views() -> DefaultsViews {
    Arc::new(std::sync::Mutex::new(lru::LruCache::new(DEFAULTS_VIEWS)))
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
    /// The result schema of a statement without placeholders, once described
    /// ([`Planner::describe`]): a prepared statement is described again at each execution.
    described: Arc<std::sync::OnceLock<SchemaRef>>,
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

/// A statement sent to a source, for `EXPLAIN`.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteStatement {
    /// Source (catalog) name.
    pub source: String,
    /// The exact SQL.
    pub sql: String,
    /// Why the operator above it was not sent with it, if one was kept local.
    pub kept_local: Option<String>,
    /// The source's estimate of it, and why it was sent whole, when the cost-aware cut
    /// weighed it.
    pub estimate: Option<(crate::federation::Estimate, Option<String>)>,
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
        // How many build-side keys a hash join hands its probe side as a list stays at
        // DataFusion's default here and is raised per query, for plans with a remote
        // statement only (`Planner::execute`).
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
            .with_optimizer_rule(Arc::new(crate::policy::rule::LeakproofThroughFence))
            .with_physical_optimizer_rule(Arc::new(crate::rewrite::YieldAfterMultipliers))
            .with_physical_optimizer_rule(Arc::new(
                crate::federation::join_filters::AwaitJoinFilters,
            ))
            .with_query_planner(Arc::new(crate::federation::node::FederatingQueryPlanner))
            .build();
        // The guarded functions replace DataFusion's of the same names.
        #[allow(unused_mut, reason = "the test hooks add to it")]
        let mut functions = crate::functions::guarded();
        functions.push(crate::digest::sha256());
        #[cfg(feature = "test-hooks")]
        functions.extend([
            crate::test_hooks::panic_udf(),
            crate::test_hooks::fault_udf(),
            crate::test_hooks::leak_udf(),
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
            policies: None,
            base,
            plans: plan_cache(),
            with_defaults: defaults_views(),
            removed: Arc::default(),
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
            policies: self.policies.clone(),
            base: Arc::clone(&self.base),
            plans: plan_cache(),
            with_defaults: defaults_views(),
            removed: Arc::clone(&self.removed),
        }
    }

    /// The same view with `set`'s row filters and column masks applied where each table they
    /// match is read (see [`crate::policy`]). Costs a session build: keep it per caller and
    /// policy fingerprint, not per request. An empty set changes nothing.
    pub fn with_policies(&self, set: Arc<crate::policy::PolicySet>) -> Self {
        if set.is_empty() {
            return self.clone();
        }
        let mut rules = self.state.analyzer().rules.clone();
        rules.insert(
            0,
            Arc::new(crate::policy::rule::ApplyPolicies::new(
                Arc::clone(&set),
                SessionState::clone(&self.state),
            )),
        );
        let mut config = self.state.config().clone();
        // DataFusion 55 moves leaf expressions (struct field access, `file_row_index()`) into
        // the inputs of any node whose schema allows it, a fence's included: below the policy.
        config
            .options_mut()
            .optimizer
            .enable_leaf_expression_pushdown = false;
        let mut state = SessionStateBuilder::new_from_existing(SessionState::clone(&self.state))
            .with_config(config)
            .with_analyzer_rules(rules)
            .build();
        // A row's position in its file, or the file's name, tells where hidden rows are.
        for name in ["file_row_index", "input_file_name"] {
            use datafusion::execution::FunctionRegistry as _;
            let _ = state.deregister_udf(name);
        }
        Self {
            state: Arc::new(state),
            catalogs: Arc::clone(&self.catalogs),
            grants: self.grants.clone(),
            policies: Some(set),
            base: Arc::clone(&self.base),
            plans: plan_cache(),
            with_defaults: defaults_views(),
            removed: Arc::clone(&self.removed),
        }
    }

    /// The policies this view applies, if any.
    pub fn policies(&self) -> Option<&Arc<crate::policy::PolicySet>> {
        self.policies.as_ref()
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
            policies: self.policies.clone(),
            base: Arc::clone(&self.base),
            plans: plan_cache(),
            with_defaults: defaults_views(),
            removed: Arc::clone(&self.removed),
        }
    }

    /// The same view, with bare table names resolving in `catalog`.`schema` (a client's session
    /// options) instead of the server's defaults. Built once per pair (a session build) and kept
    /// with this view, so a session's statements share it and its kept plans.
    pub fn with_defaults(&self, catalog: &str, schema: &str) -> Self {
        let key = (catalog.to_owned(), schema.to_owned());
        let mut views = self
            .with_defaults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(view) = views.get(&key) {
            return view.clone();
        }
        let view = self.build_with_defaults(catalog, schema);
        views.put(key, view.clone());
        view
    }

    fn build_with_defaults(&self, catalog: &str, schema: &str) -> Self {
        let mut config = self.state.config().clone();
        let catalog_options = &mut config.options_mut().catalog;
        catalog_options.default_catalog = catalog.to_owned();
        catalog_options.default_schema = schema.to_owned();
        let state = SessionStateBuilder::new_from_existing(SessionState::clone(&self.state))
            .with_config(config)
            .build();
        Self {
            state: Arc::new(state),
            catalogs: Arc::clone(&self.catalogs),
            grants: self.grants.clone(),
            policies: self.policies.clone(),
            base: Arc::clone(&self.base),
            plans: plan_cache(),
            with_defaults: defaults_views(),
            removed: Arc::clone(&self.removed),
        }
    }

    /// The catalog and schema bare table names resolve in.
    pub fn defaults(&self) -> (String, String) {
        let options = &self.state.config_options().catalog;
        (
            options.default_catalog.clone(),
            options.default_schema.clone(),
        )
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_defaults_view_is_built_once_and_resolves_elsewhere() {
        let p = Planner::new(&PlannerOptions {
            memory_limit_bytes: 64 << 20,
            default_catalog: Some("a".into()),
            default_schema: Some("public".into()),
            target_partitions: Some(1),
        })
        .unwrap();
        let one = p.with_defaults("b", "s");
        let again = p.with_defaults("b", "s");
        assert!(Arc::ptr_eq(&one.state, &again.state), "the view is kept");
        assert!(
            Arc::ptr_eq(&one.plans, &again.plans),
            "and so are its plans"
        );
        assert_eq!(one.defaults(), ("b".to_owned(), "s".to_owned()));
        assert_eq!(p.defaults(), ("a".to_owned(), "public".to_owned()));
        let other = p.with_defaults("b", "t");
        assert!(!Arc::ptr_eq(&one.state, &other.state));
    }

    fn spec(name: &str, tables: &[&str]) -> crate::ParquetSourceSpec {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/tpch");
        let base = url::Url::from_directory_path(dir.canonicalize().unwrap()).unwrap();
        crate::ParquetSourceSpec {
            catalog: name.into(),
            schema: "public".into(),
            tables: tables
                .iter()
                .map(|t| crate::catalog::TableLocation {
                    name: (*t).to_owned(),
                    url: base.join(&format!("{t}.parquet")).unwrap(),
                })
                .collect(),
            base,
            pushdown_filters: false,
        }
    }

    /// A source replaced through a staging planner: its tables swap when the new catalog
    /// loads, its version (what kept plans and cached results are checked against) when it is
    /// adopted, and never to one it had before; a removed source is `source_not_found`.
    #[tokio::test]
    async fn sources_are_replaced_whole_and_removed_for_good() {
        let p = Planner::new(&PlannerOptions::default()).unwrap();
        let store: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new());
        let staging = p.staging();
        staging
            .load_parquet_source(spec("lake", &["nation"]), Arc::clone(&store))
            .await
            .unwrap();
        // Loaded apart: its tables show, its status is not this planner's yet.
        assert_eq!(p.catalog_version("lake"), 0);
        p.plan("SELECT * FROM lake.public.nation", None, None)
            .await
            .unwrap();
        p.adopt(&staging);
        let first = p.catalog_version("lake");
        assert!(first > 0);

        let staging = p.staging();
        staging
            .load_parquet_source(spec("lake", &["region"]), Arc::clone(&store))
            .await
            .unwrap();
        assert_eq!(p.catalog_version("lake"), first, "not adopted yet");
        assert!(matches!(
            p.plan("SELECT * FROM lake.public.nation", None, None).await,
            Err(PlanError::TableNotFound(_))
        ));
        p.adopt(&staging);
        let second = p.catalog_version("lake");
        assert!(second > first);

        assert!(p.deregister_source("lake"));
        assert_eq!(p.catalog_version("lake"), 0);
        assert!(matches!(
            p.plan("SELECT * FROM lake.public.region", None, None).await,
            Err(PlanError::SourceNotFound(ref n)) if n == "lake"
        ));
        assert!(!p.deregister_source("lake"));
        // Back again: at a version it never had.
        let staging = p.staging();
        staging
            .load_parquet_source(spec("lake", &["region"]), store)
            .await
            .unwrap();
        p.adopt(&staging);
        assert!(p.catalog_version("lake") > second);
    }
}
