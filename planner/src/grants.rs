//! What a key may read, enforced twice on DataFusion's own objects, never on SQL text:
//!
//! 1. **The catalog view.** A restricted [`crate::Planner`] plans in a catalog that holds only
//!    the granted sources, schemas and tables ([`GrantedCatalogList`]). Name resolution, CTEs,
//!    subqueries, `information_schema` (built by DataFusion from the session's catalog list)
//!    and `SHOW TABLES` all see that view, so a denied table is exactly as missing as one that
//!    does not exist: the same error, the same listings.
//! 2. **The resolved plan.** After planning, every `TableScan` of the logical plan, subqueries
//!    included, is checked against the grants ([`Grants::check_plan`]); a scan outside them is
//!    refused as not found. With (1) in place this cannot fire; it is the second lock.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, TableReference};
use datafusion::logical_expr::LogicalPlan;
use sluice_schemas::api::Grant;

use crate::error::{PlanError, Result};

/// `*` matches any run of characters (none included), `?` exactly one; everything else
/// itself, case and all. (Small enough to own: the glob crates match paths, with `/` rules
/// and escapes that names do not need.)
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and the name position it has consumed up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A key's grants, ready for matching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    rules: Vec<Grant>,
}

impl Grants {
    /// Grants from their API form.
    pub fn new(rules: &[Grant]) -> Self {
        Self {
            rules: rules.to_vec(),
        }
    }

    /// True when some table of `catalog` may be granted.
    pub fn sees_catalog(&self, catalog: &str) -> bool {
        self.rules.iter().any(|g| glob(&g.source, catalog))
    }

    /// True when some table of `catalog.schema` may be granted.
    pub fn sees_schema(&self, catalog: &str, schema: &str) -> bool {
        self.rules
            .iter()
            .any(|g| glob(&g.source, catalog) && glob(&g.schema, schema))
    }

    /// True when `catalog.schema.table` is granted.
    pub fn allows(&self, catalog: &str, schema: &str, table: &str) -> bool {
        self.rules
            .iter()
            .any(|g| glob(&g.source, catalog) && glob(&g.schema, schema) && glob(&g.table, table))
    }

    /// Refuses a plan that scans a table outside the grants, subqueries included, as
    /// [`PlanError::TableNotFound`] (a reader never learns a denied table exists).
    /// `information_schema` is allowed: it is built from the granted view. So are the scans
    /// of the session's table functions (`generate_series(1, 3)`), which DataFusion names
    /// `name()`, unqualified: they read no source.
    ///
    /// # Errors
    /// The first ungranted table.
    pub fn check_plan(
        &self,
        plan: &LogicalPlan,
        default_catalog: &str,
        default_schema: &str,
        is_table_function: impl Fn(&str) -> bool,
    ) -> Result<()> {
        let mut denied = None;
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                if let TableReference::Bare { table } = &scan.table_name
                    && table.strip_suffix("()").is_some_and(&is_table_function)
                {
                    return Ok(TreeNodeRecursion::Continue);
                }
                let full = scan
                    .table_name
                    .clone()
                    .resolve(default_catalog, default_schema);
                if full.schema.as_ref() != "information_schema"
                    && !self.allows(&full.catalog, &full.schema, &full.table)
                {
                    denied = Some(format!("{}.{}.{}", full.catalog, full.schema, full.table));
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(PlanError::classify)?;
        match denied {
            Some(name) => Err(PlanError::TableNotFound(name)),
            None => Ok(()),
        }
    }
}

/// The catalogs a key may see: the real list, filtered by its grants on every call (so
/// sources and tables refreshed later are seen, or hidden, at once).
#[derive(Debug)]
pub struct GrantedCatalogList {
    inner: Arc<dyn CatalogProviderList>,
    grants: Arc<Grants>,
}

impl GrantedCatalogList {
    /// A view of `inner` through `grants`.
    pub fn new(inner: Arc<dyn CatalogProviderList>, grants: Arc<Grants>) -> Self {
        Self { inner, grants }
    }
}

impl CatalogProviderList for GrantedCatalogList {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        // A key's view is read-only; catalogs are registered on the planner itself.
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        self.inner
            .catalog_names()
            .into_iter()
            .filter(|c| self.grants.sees_catalog(c))
            .collect()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if !self.grants.sees_catalog(name) {
            return None;
        }
        let inner = self.inner.catalog(name)?;
        Some(Arc::new(GrantedCatalog {
            name: name.to_owned(),
            inner,
            grants: Arc::clone(&self.grants),
        }))
    }
}

#[derive(Debug)]
struct GrantedCatalog {
    name: String,
    inner: Arc<dyn CatalogProvider>,
    grants: Arc<Grants>,
}

impl CatalogProvider for GrantedCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner
            .schema_names()
            .into_iter()
            .filter(|s| self.grants.sees_schema(&self.name, s))
            .collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if !self.grants.sees_schema(&self.name, name) {
            return None;
        }
        let inner = self.inner.schema(name)?;
        Some(Arc::new(GrantedSchema {
            catalog: self.name.clone(),
            schema: name.to_owned(),
            inner,
            grants: Arc::clone(&self.grants),
        }))
    }
}

#[derive(Debug)]
struct GrantedSchema {
    catalog: String,
    schema: String,
    inner: Arc<dyn SchemaProvider>,
    grants: Arc<Grants>,
}

impl GrantedSchema {
    fn allows(&self, table: &str) -> bool {
        self.grants.allows(&self.catalog, &self.schema, table)
    }
}

#[async_trait]
impl SchemaProvider for GrantedSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner
            .table_names()
            .into_iter()
            .filter(|t| self.allows(t))
            .collect()
    }

    async fn table(
        &self,
        name: &str,
    ) -> std::result::Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if !self.allows(name) {
            return Ok(None);
        }
        self.inner.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.allows(name) && self.inner.table_exist(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, n, ok) in [
            ("*", "", true),
            ("*", "orders", true),
            ("orders*", "orders", true),
            ("orders*", "orders_2024", true),
            ("orders*", "order", false),
            ("orders*", "Orders", false),
            ("*_2024", "orders_2024", true),
            ("o?ders", "orders", true),
            ("o?ders", "oders", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("", "", true),
            ("", "x", false),
            ("orders", "orders ", false),
            ("ordérs", "orders", false),
        ] {
            assert_eq!(glob(p, n), ok, "{p} vs {n}");
        }
    }

    #[test]
    fn grants_match_each_level() {
        let g = Grants::new(&[Grant {
            source: "pg".into(),
            schema: "public".into(),
            table: "orders*".into(),
        }]);
        assert!(g.sees_catalog("pg") && !g.sees_catalog("local"));
        assert!(g.sees_schema("pg", "public") && !g.sees_schema("pg", "secret"));
        assert!(g.allows("pg", "public", "orders_items"));
        assert!(!g.allows("pg", "public", "customer"));
        assert!(!g.allows("pg", "other", "orders"));
        assert!(!Grants::default().sees_catalog("pg"));
    }
}

#[cfg(test)]
mod plan_tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::catalog::MemorySchemaProvider;
    use datafusion::catalog::memory::MemoryCatalogProvider;
    use datafusion::datasource::empty::EmptyTable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    /// The second lock alone: a plan made without the granted view (so it could resolve
    /// anything) is refused on its scans, subqueries and CTEs included.
    #[tokio::test]
    async fn the_plan_check_refuses_what_the_view_would_have_hidden() {
        let ctx = SessionContext::new_with_config(
            SessionConfig::new().with_default_catalog_and_schema("pg", "public"),
        );
        let schema = Arc::new(MemorySchemaProvider::new());
        let table = Arc::new(EmptyTable::new(Arc::new(Schema::new(vec![Field::new(
            "x",
            DataType::Int32,
            true,
        )]))));
        for t in ["orders", "customer"] {
            schema
                .register_table(t.to_owned(), Arc::clone(&table) as _)
                .unwrap();
        }
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog.register_schema("public", schema).unwrap();
        ctx.register_catalog("pg", catalog);
        let grants = Grants::new(&[Grant {
            source: "pg".into(),
            schema: "public".into(),
            table: "orders*".into(),
        }]);
        let tf = |_: &str| false;
        for (sql, ok) in [
            ("SELECT * FROM orders", true),
            (
                "SELECT * FROM pg.public.orders o WHERE o.x IN (SELECT 1)",
                true,
            ),
            ("SELECT * FROM customer", false),
            (
                "WITH orders AS (SELECT * FROM customer) SELECT * FROM orders",
                false,
            ),
            (
                "SELECT * FROM orders WHERE x IN (SELECT x FROM pg.public.customer)",
                false,
            ),
            (
                "SELECT * FROM orders WHERE EXISTS (SELECT 1 FROM customer)",
                false,
            ),
            ("SELECT (SELECT max(x) FROM customer) FROM orders", false),
            ("SELECT x FROM orders UNION SELECT x FROM customer", false),
        ] {
            let plan = ctx.state().create_logical_plan(sql).await.unwrap();
            let got = grants.check_plan(&plan, "pg", "public", tf);
            assert_eq!(got.is_ok(), ok, "{sql}: {got:?}");
            if let Err(e) = got {
                assert!(
                    matches!(e, PlanError::TableNotFound(ref n) if n == "pg.public.customer"),
                    "{e:?}"
                );
            }
        }
    }
}
