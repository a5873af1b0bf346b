//! Row filters and column masks, applied on DataFusion's resolved plan where each table is
//! read, before anything of the caller's runs.
//!
//! ```text
//!   the caller's operators (filters, joins, projections, UDFs)     ← see visible, masked rows
//!   ─────────── PolicyFence (a plan node nothing of the caller's passes) ───────────
//!   Projection: masks replace their columns (encode(sha256(email), 'hex') AS email)
//!   Filter: every matching policy's row filter, ANDed
//!   TableScan
//! ```
//!
//! - **Where.** An analyzer rule ([`rule::ApplyPolicies`]) runs first, before type coercion,
//!   and rewrites every `TableScan` of a table a policy matches (subqueries and CTEs
//!   included) into the shape above. Joins, grouping, windows and subqueries all read the
//!   fence's output, so they see masked values and visible rows only.
//! - **The fence.** [`fence::PolicyFence`] tells DataFusion's filter pushdown that no
//!   predicate on its columns may pass it, and its physical form [`fence::FenceExec`] refuses
//!   every parent filter except join and top-k filters over plain columns (comparisons and
//!   set membership, which cannot fail). A second optimizer rule
//!   ([`rule::LeakproofThroughFence`]) lets through only the caller's predicates that are
//!   shown not to fail or leak: comparisons, `IN` lists, `IS NULL`, `BETWEEN` of plain columns
//!   (and widening casts of them) with literals, combined by `AND`, `OR`, `NOT`, as
//!   PostgreSQL lets only `LEAKPROOF` functions below a security barrier. Everything else
//!   (division, casts that can fail, regular expressions, any UDF) runs above the fence, on
//!   the rows the policy let through.
//! - **Pushdown.** The federation cut never sends a fence: the statement a source receives for
//!   a guarded table is its scan with the row filter (and the masks, where the source can
//!   compute them) plus the leakproof predicates, so the source has nothing to reorder the
//!   policy around. The operators above run in Sluice.
//! - **Telling nothing.** For callers that may not see the policies (`reveal = false`),
//!   `EXPLAIN` shows the fence and nothing below it, and the statements sent under a fence
//!   without their literals.

pub mod fence;
pub mod rule;

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr as SqlExpr};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use sha2::{Digest, Sha256};

use crate::grants::glob;

/// One policy as it applies to one caller: its principal attributes already substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePolicy {
    /// The policy's name.
    pub name: String,
    /// A glob over `source.schema.table`.
    pub tables: String,
    /// A boolean SQL expression over the table's columns, if the policy filters rows.
    pub row_filter: Option<String>,
    /// Column name → a SQL expression over the table's columns that replaces it.
    pub masks: BTreeMap<String, String>,
}

/// Every policy that applies to one caller, and what identifies them as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySet {
    policies: Vec<TablePolicy>,
    fingerprint: String,
    reveal: bool,
}

impl PolicySet {
    /// The set of `policies` (ordered by name, so masks of the same column resolve the same
    /// way everywhere); `reveal`: whether `EXPLAIN` may show their expressions (admins).
    pub fn new(mut policies: Vec<TablePolicy>, reveal: bool) -> Self {
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        let mut h = Sha256::new();
        let mut part = |s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        for p in &policies {
            part(&p.name);
            part(&p.tables);
            part(p.row_filter.as_deref().unwrap_or("\u{0}"));
            for (column, mask) in &p.masks {
                part(column);
                part(mask);
            }
        }
        part(if reveal { "reveal" } else { "hide" });
        let fingerprint = hex::encode(&h.finalize()[..16]);
        Self {
            policies,
            fingerprint,
            reveal,
        }
    }

    /// 32 hex digits over every policy's resolved expressions: two callers share cached plans
    /// and results only when theirs are equal.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// True when no policy applies.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Whether `EXPLAIN` may show what is below a fence.
    pub fn reveals(&self) -> bool {
        self.reveal
    }

    /// The policies guarding `catalog.schema.table`, by name.
    pub fn matching(&self, catalog: &str, schema: &str, table: &str) -> Vec<&TablePolicy> {
        let full = format!("{catalog}.{schema}.{table}");
        self.policies
            .iter()
            .filter(|p| glob(&p.tables, &full))
            .collect()
    }
}

/// Parses a policy expression (a row filter or a mask), as DataFusion will read it.
///
/// # Errors
/// Why it is not one valid expression.
fn parse(sql: &str) -> Result<SqlExpr, String> {
    Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| {
            let e = p.parse_expr()?;
            p.expect_token(&datafusion::sql::sqlparser::tokenizer::Token::EOF)?;
            Ok(e)
        })
        .map_err(|e| e.to_string())
}

/// The attribute a `principal.attr('name')` call asks for; `Err` for a malformed call,
/// `Ok(None)` for any other expression.
fn attribute_call(e: &SqlExpr) -> Result<Option<String>, String> {
    let SqlExpr::Function(f) = e else {
        return Ok(None);
    };
    let name = f.name.to_string().to_ascii_lowercase();
    if !name.starts_with("principal.") {
        return Ok(None);
    }
    if name != "principal.attr" {
        return Err(format!(
            "{} is not a principal function (principal.attr('name') is)",
            f.name
        ));
    }
    let arg = match &f.args {
        ast::FunctionArguments::List(list) if list.args.len() == 1 => list.args.first(),
        _ => None,
    };
    match arg {
        Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(SqlExpr::Value(v)))) => {
            match &v.value {
                ast::Value::SingleQuotedString(s) if !s.is_empty() => Ok(Some(s.clone())),
                _ => Err("principal.attr takes one attribute name in single quotes".into()),
            }
        }
        _ => Err("principal.attr takes one attribute name in single quotes".into()),
    }
}

/// Checks a policy expression when it is stored: one expression, and every
/// `principal.attr(...)` well formed.
///
/// # Errors
/// Why it cannot be used.
pub fn check_expression(sql: &str) -> Result<(), String> {
    let mut e = parse(sql)?;
    let mut bad = None;
    let _ = ast::visit_expressions_mut(&mut e, |e| {
        if let Err(why) = attribute_call(e) {
            bad = Some(why);
            return ControlFlow::Break(());
        }
        ControlFlow::<()>::Continue(())
    });
    bad.map_or(Ok(()), Err)
}

/// `sql` with every `principal.attr('name')` replaced by the caller's attribute as a string
/// literal, or `NULL` when the caller has none (a row filter comparing with it then lets no
/// row through: fail closed).
///
/// # Errors
/// A malformed expression or call.
pub fn resolve_attributes(
    sql: &str,
    attribute: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut e = parse(sql)?;
    let mut bad = None;
    let _ = ast::visit_expressions_mut(&mut e, |e| {
        match attribute_call(e) {
            Ok(Some(name)) => {
                let value = match attribute(&name) {
                    Some(v) => ast::Value::SingleQuotedString(v),
                    None => ast::Value::Null,
                };
                *e = SqlExpr::value(value);
            }
            Ok(None) => {}
            Err(why) => {
                bad = Some(why);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::<()>::Continue(())
    });
    match bad {
        Some(why) => Err(why),
        None => Ok(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_become_literals_and_missing_ones_null() {
        let attr = |n: &str| (n == "region").then(|| "EM'EA".to_owned());
        assert_eq!(
            resolve_attributes("region = principal.attr('region')", &attr).unwrap(),
            "region = 'EM''EA'"
        );
        assert_eq!(
            resolve_attributes("team = principal.attr('team') OR x > 1", &attr).unwrap(),
            "team = NULL OR x > 1"
        );
        assert!(resolve_attributes("principal.attr(region)", &attr).is_err());
        assert!(resolve_attributes("principal.name()", &attr).is_err());
        assert!(resolve_attributes("a = 1; DROP TABLE t", &attr).is_err());
        assert!(check_expression("sha256(email)").is_ok());
        assert!(check_expression("principal.attr('a', 'b') = x").is_err());
    }

    #[test]
    fn fingerprints_follow_resolved_expressions() {
        let p = |f: &str| TablePolicy {
            name: "p".into(),
            tables: "pg.*".into(),
            row_filter: Some(f.into()),
            masks: BTreeMap::new(),
        };
        let a = PolicySet::new(vec![p("region = 'EMEA'")], false);
        let b = PolicySet::new(vec![p("region = 'APAC'")], false);
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(
            a.fingerprint(),
            PolicySet::new(vec![p("region = 'EMEA'")], false).fingerprint()
        );
        assert_ne!(
            a.fingerprint(),
            PolicySet::new(vec![p("region = 'EMEA'")], true).fingerprint()
        );
        assert_eq!(a.matching("pg", "public", "orders").len(), 1);
        assert!(a.matching("lake", "public", "orders").is_empty());
    }
}
