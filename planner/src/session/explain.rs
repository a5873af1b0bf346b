//! What `EXPLAIN` and `/v1/explain` show: plans as text, the statements sent to each source,
//! and locations redacted for keys that may not see them.

use std::sync::Arc;

use datafusion::physical_plan::{ExecutionPlan, displayable};

use super::{PlannedQuery, Planner, RemoteStatement};
use crate::federation::RemoteScanExec;
use crate::policy::fence::FenceExec;

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
    fn hides_policies(&self) -> bool {
        self.policies.as_ref().is_some_and(|p| !p.reveals())
    }

    /// `text` as this view may show it: locations redacted for a key's view, and for a view
    /// that hides policies every operator below a policy fence left out.
    fn shown(&self, text: &str) -> String {
        let text = if self.grants.is_some() {
            self.redact_locations(text)
        } else {
            text.to_owned()
        };
        if self.hides_policies() {
            hide_below_fences(&text)
        } else {
            text
        }
    }

    /// An `EXPLAIN`'s precomputed text, with locations redacted and what policies guard
    /// hidden.
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
            self.shown(&query.logical.display_indent().to_string()),
            self.shown(
                &displayable(query.physical.as_ref())
                    .indent(true)
                    .to_string(),
            ),
        )
    }
}

/// An indented plan with every line below a policy fence left out (the fence's own line
/// stays). A plan in another format (tree, graphviz, JSON) that shows a fence is replaced
/// whole.
fn hide_below_fences(text: &str) -> String {
    use crate::policy::fence::FENCE_NAME;
    if !text.contains(FENCE_NAME) {
        return text.to_owned();
    }
    let indent = |l: &str| l.len() - l.trim_start().len();
    let indented = !text.contains('┌') && !text.trim_start().starts_with(['[', '{', '/', 'd']);
    if !indented {
        return "(not shown: row filters or column masks guard a table this plan reads)".to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let at = indent(line);
        match fence {
            Some(f) if at > f && !line.trim().is_empty() => continue,
            _ => fence = None,
        }
        if line.trim_start().starts_with(FENCE_NAME) {
            fence = Some(at);
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
