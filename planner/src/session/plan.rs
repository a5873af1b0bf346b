//! The per-query pipeline: parse, validate, resolve and check a statement (kept by text while
//! its sources are unchanged), then bind, cap, optimize, federate and plan it physically; and
//! start executing a plan.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::TableReference;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream, execute_stream};

use super::{KeptPlan, PlannedQuery, Planner, SourceGate};
use crate::error::{PlanError, Result};
use crate::federation::QueryContext;
use crate::params::{self, Params};
use crate::validate;

/// A statement's result schema and placeholders, from [`Planner::describe`].
#[derive(Debug, Clone)]
pub struct Described {
    /// The result's schema.
    pub schema: SchemaRef,
    /// Each placeholder (`$1`, `$name`) in order, with its inferred type.
    pub placeholders: Vec<(String, Option<DataType>)>,
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

impl Planner {
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
        let kept = self.checked(sql, &state, gate).await?;
        let KeptPlan {
            plan,
            sources,
            tables,
            immutable,
            versions,
            fingerprints,
            described: _,
        } = KeptPlan::clone(&kept);
        let mut plan = params::bind(plan, params)?;
        if let Some(max) = max_rows {
            plan = cap_rows(plan, max)?;
        }
        let logical = state.optimize(&plan).map_err(PlanError::classify)?;
        // The largest subtrees each remote source computes exactly become one statement.
        let logical = crate::federation::cut::federate(logical).map_err(PlanError::classify)?;
        // … unless the source's own estimates say keeping a join or aggregate here is cheaper.
        let logical = crate::federation::cost::choose(logical)
            .await
            .map_err(PlanError::classify)?;
        let physical = state
            .query_planner()
            .create_physical_plan(&logical, &state)
            .await
            .map_err(PlanError::classify)?;
        // A key's view shows no server paths, in EXPLAIN's answer either, and a caller who
        // may not see policies nothing below their fences (the plans drawn again without what
        // is below them: their printed text cannot be cut safely, a literal may hold a line
        // break).
        let physical = match &logical {
            LogicalPlan::Explain(e) if self.hides_policies() => {
                let inner = state
                    .query_planner()
                    .create_physical_plan(&e.plan, &state)
                    .await
                    .map_err(PlanError::classify)?;
                self.explain_without_policies(&physical, &e.plan, &inner)
            }
            _ if self.grants.is_some() || self.policies.is_some() => self.redact_explain(physical),
            _ => physical,
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

    /// What `sql` answers, without running it: checked as [`Self::plan`] checks it (read-only,
    /// tables, grants) and kept, its result schema and each placeholder's type (`$1`, ...;
    /// `None` where DataFusion cannot infer it). With `params`, they are bound and checked too.
    ///
    /// # Errors
    /// As [`Self::plan`].
    pub async fn describe(&self, sql: &str, params: Option<&Params>) -> Result<Described> {
        let kept = self.checked(sql, &self.state, None).await?;
        let types = kept
            .plan
            .get_parameter_types()
            .map_err(PlanError::classify)?;
        let mut placeholders: Vec<(String, Option<DataType>)> = types.into_iter().collect();
        // `$2` before `$10`.
        placeholders.sort_by_key(|(id, _)| {
            (
                id.get(1..)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(u64::MAX),
                id.clone(),
            )
        });
        // Types as execution will produce them where every value is known: the analyzer
        // coerces them, and no optimizer rule may change a plan's schema after it (DataFusion
        // checks), so the analyzed schema is the executed one without the optimizer's cost.
        // A statement with unbound placeholders says what it can.
        let analyzed = |plan: LogicalPlan| -> Result<SchemaRef> {
            let plan = self
                .state
                .analyzer()
                .execute_and_check(plan, self.state.config_options(), |_, _| {})
                .map_err(PlanError::classify)?;
            Ok(crate::output::plain_schema(&Arc::new(
                plan.schema().as_arrow().clone(),
            )))
        };
        let schema = match params {
            Some(_) => analyzed(params::bind(kept.plan.clone(), params)?)?,
            None if placeholders.is_empty() => match kept.described.get() {
                Some(s) => Arc::clone(s),
                None => {
                    let s = analyzed(kept.plan.clone())?;
                    Arc::clone(kept.described.get_or_init(|| s))
                }
            },
            None => crate::output::plain_schema(&Arc::new(kept.plan.schema().as_arrow().clone())),
        };
        Ok(Described {
            schema,
            placeholders,
        })
    }

    /// `sql` parsed, resolved and checked: its kept plan (its sources asked to `gate` again),
    /// or planned now and kept.
    async fn checked(
        &self,
        sql: &str,
        state: &SessionState,
        gate: Option<&SourceGate>,
    ) -> Result<Arc<KeptPlan>> {
        match self.kept_plan(sql) {
            Some(k) => {
                check_gate(&k.sources, gate)?;
                Ok(k)
            }
            None => self.plan_statement(sql, state, gate).await,
        }
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
            described: Arc::default(),
        });
        self.plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(sql.to_owned(), Arc::clone(&kept));
        Ok(kept)
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
            // A source outside the grants is missing, loaded or not, and its table is what
            // is missing: a reader never learns which sources exist beyond its grants.
            if self
                .grants
                .as_ref()
                .is_none_or(|g| g.sees_catalog(&full.catalog))
            {
                self.check_loaded(&full.catalog)?;
                // A source removed while serving is said to be gone; a name that never was a
                // source stays a missing table (as the contract has it).
                if self.base.catalog(&full.catalog).is_none() && self.was_removed(&full.catalog) {
                    return Err(PlanError::SourceNotFound(full.catalog.to_string()));
                }
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
        let remote = reads_remote(&query.physical);
        if context.is_some() || remote {
            let mut config = task.session_config().clone();
            if remote {
                // A hash join hands its probe side the build side's keys as a list (not only
                // a hash-table lookup) up to this many: a remote statement on that side can
                // only be narrowed by a list (benches/RESULTS.md, federation). Only then: over
                // local files the longer lists cost more to build and test than they save
                // (embedded DataFusion with them, TPC-H SF 1: Q2 40 → 52 ms, Q11 26 → 42 ms).
                let opts = config.options_mut();
                opts.optimizer.hash_join_inlist_pushdown_max_distinct_values =
                    crate::federation::runtime_filter::MAX_IN_LIST;
                opts.optimizer.hash_join_inlist_pushdown_max_size = 1 << 20;
            }
            if let Some(ctx) = context {
                config = config.with_extension(Arc::new(ctx));
            }
            task = Arc::new(
                datafusion::execution::TaskContext::from(self.state.as_ref())
                    .with_session_config(config),
            );
        }
        execute_stream(Arc::clone(&query.physical), task).map_err(PlanError::classify)
    }
}

/// Whether `plan` sends a statement to a remote source.
fn reads_remote(plan: &Arc<dyn ExecutionPlan>) -> bool {
    use datafusion::common::tree_node::TreeNode;
    plan.exists(|p| {
        let any: &dyn std::any::Any = p.as_ref();
        Ok(any.is::<crate::federation::exec::RemoteScanExec>())
    })
    .unwrap_or(false)
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
