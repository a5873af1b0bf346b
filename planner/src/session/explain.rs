//! What `EXPLAIN` and `/v1/explain` show: plans as text, the statements sent to each source,
//! and locations redacted for keys that may not see them.

use std::sync::Arc;

use datafusion::physical_plan::{ExecutionPlan, displayable};

use super::{PlannedQuery, Planner, RemoteStatement};
use crate::federation::RemoteScanExec;
use datafusion::logical_expr::LogicalPlan;

use crate::policy::fence::{FenceExec, PolicyFence};

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

    /// Whether this view hides what is below a policy fence (callers that may not see
    /// policies: their literals would tell what hidden rows hold).
    pub(super) fn hides_policies(&self) -> bool {
        self.policies.as_ref().is_some_and(|p| !p.reveals())
    }

    /// `text` as this view may show it: locations redacted for a key's view.
    fn shown(&self, text: &str) -> String {
        if self.grants.is_some() {
            self.redact_locations(text)
        } else {
            text.to_owned()
        }
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
            .map(|p| StringifiedPlan::new(p.plan_type.clone(), self.shown(&p.plan)))
            .collect();
        Arc::new(ExplainExec::new(explain.schema(), plans, explain.verbose()))
    }

    /// The statements a plan sends to remote sources, in plan order. For a view that hides
    /// policies, a statement under a policy fence is shown without its literals.
    pub fn remote_statements(&self, query: &PlannedQuery) -> Vec<RemoteStatement> {
        fn walk(
            plan: &Arc<dyn ExecutionPlan>,
            hide: bool,
            fenced: bool,
            out: &mut Vec<RemoteStatement>,
        ) {
            let any: &dyn std::any::Any = plan.as_ref();
            let fenced = fenced || any.downcast_ref::<FenceExec>().is_some();
            if let Some(scan) = any.downcast_ref::<RemoteScanExec>() {
                out.push(RemoteStatement {
                    source: scan.source_name().to_owned(),
                    sql: if hide && fenced {
                        without_literals(scan.sql())
                    } else {
                        scan.sql().to_owned()
                    },
                    kept_local: scan.kept_local().map(str::to_owned),
                    estimate: scan
                        .spec()
                        .estimate
                        .map(|e| (e, scan.spec().weighed.clone())),
                });
            }
            for child in plan.children() {
                walk(child, hide, fenced, out);
            }
        }
        let mut out = Vec::new();
        walk(&query.physical, self.hides_policies(), false, &mut out);
        out
    }

    /// The logical and physical plans as indented text, as this view may show them.
    pub fn explain(&self, query: &PlannedQuery) -> (String, String) {
        (
            self.shown(&self.logical_text(&query.logical)),
            self.shown(&self.physical_text(&query.physical)),
        )
    }

    /// A logical plan as indented text; without what is below each policy fence for a view
    /// that hides policies.
    fn logical_text(&self, plan: &LogicalPlan) -> String {
        if !self.hides_policies() {
            return plan.display_indent().to_string();
        }
        match without_guarded_inputs(plan) {
            Ok(p) => without_placeholders(&p.display_indent().to_string()),
            Err(_) => HIDDEN.to_owned(),
        }
    }

    /// A physical plan as indented text; without what is below each policy fence for a view
    /// that hides policies.
    fn physical_text(&self, plan: &Arc<dyn ExecutionPlan>) -> String {
        if !self.hides_policies() {
            return displayable(plan.as_ref()).indent(true).to_string();
        }
        match without_guarded_children(Arc::clone(plan)) {
            Ok(p) => without_placeholders(&displayable(p.as_ref()).indent(true).to_string()),
            Err(_) => HIDDEN.to_owned(),
        }
    }

    /// An `EXPLAIN`'s answer for a view that hides policies: the final logical and physical
    /// plans drawn without what is below each fence (`VERBOSE`'s intermediate plans are left
    /// out), locations redacted.
    pub(super) fn explain_without_policies(
        &self,
        explain: &Arc<dyn ExecutionPlan>,
        logical: &LogicalPlan,
        physical: &Arc<dyn ExecutionPlan>,
    ) -> Arc<dyn ExecutionPlan> {
        use datafusion::common::display::{PlanType, StringifiedPlan};
        use datafusion::physical_plan::explain::ExplainExec;
        let plans = vec![
            StringifiedPlan::new(
                PlanType::FinalLogicalPlan,
                self.shown(&self.logical_text(logical)),
            ),
            StringifiedPlan::new(
                PlanType::FinalPhysicalPlan,
                self.shown(&self.physical_text(physical)),
            ),
        ];
        Arc::new(ExplainExec::new(explain.schema(), plans, false))
    }
}

/// What stands for a plan that could not be drawn without its guarded parts.
const HIDDEN: &str = "(not shown: row filters or column masks guard a table this plan reads)";

/// `plan` with each policy fence's input replaced by an empty relation of its schema.
fn without_guarded_inputs(plan: &LogicalPlan) -> datafusion::common::Result<LogicalPlan> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::EmptyRelation;
    plan.clone()
        .transform_up_with_subqueries(|node| {
            let Some(fence) = PolicyFence::of(&node) else {
                return Ok(Transformed::no(node));
            };
            let mut bare = fence.clone();
            bare.input = LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema: Arc::clone(fence.input.schema()),
            });
            Ok(Transformed::yes(bare.into_plan()))
        })
        .map(|t| t.data)
}

/// `plan` with each policy fence's child replaced by an empty leaf of its schema.
fn without_guarded_children(
    plan: Arc<dyn ExecutionPlan>,
) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_plan::empty::EmptyExec;
    plan.transform_up(|node| {
        let any: &dyn std::any::Any = node.as_ref();
        let Some(fence) = any.downcast_ref::<FenceExec>() else {
            return Ok(Transformed::no(node));
        };
        let leaf: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(node.schema()));
        Ok(Transformed::yes(Arc::new(fence.over(leaf))))
    })
    .map(|t| t.data)
}

/// An indented plan drawn by [`without_guarded_inputs`] or [`without_guarded_children`]
/// without the empty leaf each fence stands on (the one line under it, ours, no literal in it).
fn without_placeholders(text: &str) -> String {
    use crate::policy::fence::FENCE_NAME;
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        if fence.take().is_some_and(|f| indent(line) > f) {
            continue;
        }
        if line.trim_start().starts_with(FENCE_NAME) {
            fence = Some(indent(line));
        }
        out.push_str(line);
    }
    out
}

/// A statement with every literal replaced by `?`.
fn without_literals(sql: &str) -> String {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    match Tokenizer::new(&GenericDialect {}, sql).tokenize() {
        Ok(tokens) => tokens
            .into_iter()
            .map(|t| match t {
                Token::Number(..)
                | Token::SingleQuotedString(_)
                | Token::DoubleQuotedString(_)
                | Token::NationalStringLiteral(_)
                | Token::EscapedStringLiteral(_)
                | Token::HexStringLiteral(_)
                | Token::DollarQuotedString(_) => "?".to_owned(),
                other => other.to_string(),
            })
            .collect(),
        Err(_) => "(not shown: row filters or column masks guard this statement)".to_owned(),
    }
}
