//! The tables a planner's view shows, for listings and descriptions.

use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;

use super::{Planner, TableInfo};

impl Planner {
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

fn table_info(catalog: &str, schema: &str, table: &str, provider: &dyn TableProvider) -> TableInfo {
    TableInfo {
        catalog: catalog.to_owned(),
        schema: schema.to_owned(),
        table: table.to_owned(),
        columns: crate::output::plain_schema(&provider.schema()),
    }
}
