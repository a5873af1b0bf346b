//! What `EXPLAIN` and `/v1/explain` show: plans as text, the statements sent to each source,
//! and locations redacted for keys that may not see them.

use std::sync::Arc;

use datafusion::physical_plan::{ExecutionPlan, displayable};

use super::{PlannedQuery, Planner, RemoteStatement};
use crate::federation::RemoteScanExec;

impl Planner {
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
    pub(super) fn redact_explain(&self, plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
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
}
