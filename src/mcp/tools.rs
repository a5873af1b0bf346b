//! The tools' definitions: names, descriptions written for a model, input and output schemas,
//! and their arguments.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde::Deserialize;
use serde_json::{Value, json};

/// Arguments of `query`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryArgs {
    pub sql: String,
    #[serde(default)]
    pub max_rows: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub params: Option<sluice_schemas::api::QueryParams>,
}

/// Arguments of `list_tables`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListTablesArgs {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Arguments of `describe_table`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeArgs {
    pub table: String,
}

/// Arguments of `explain`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainArgs {
    pub sql: String,
}

/// Arguments of `list_sources` (none).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// Tables a `list_tables` page holds unless asked otherwise, and at most.
pub const TABLES_PAGE: u64 = 100;
pub const TABLES_PAGE_MAX: u64 = 1000;

fn object(v: Value) -> Arc<JsonObject> {
    Arc::new(match v {
        Value::Object(o) => o,
        _ => JsonObject::new(),
    })
}

fn tool(name: &'static str, title: &str, description: String, input: Value, output: Value) -> Tool {
    let annotations = ToolAnnotations::with_title(title)
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(false);
    Tool::new(name, description, object(input))
        .with_title(title)
        .with_raw_output_schema(object(output))
        .with_annotations(annotations)
}

const COLUMNS_SCHEMA: &str = r#"{"type": "array", "items": {"type": "object",
    "properties": {"name": {"type": "string"}, "type": {"type": "string", "description": "Arrow data type"},
                   "nullable": {"type": "boolean"}},
    "required": ["name", "type", "nullable"]}}"#;

fn columns_schema() -> Value {
    serde_json::from_str(COLUMNS_SCHEMA).unwrap_or(Value::Null)
}

/// Every tool, as `tools/list` shows them.
pub fn all(max_rows: u64, max_bytes: u64) -> Vec<Tool> {
    vec![
        tool(
            "query",
            "Run SQL",
            format!(
                "Run one read-only SQL statement (SELECT, WITH, EXPLAIN) across every source and get the rows. \
                 Look tables up first with list_tables / describe_table, and name them fully: source.schema.table \
                 (for example local.public.nation). The dialect is Apache DataFusion SQL, close to PostgreSQL: \
                 double-quote identifiers with capitals, single-quote strings, use CAST(x AS type), LIMIT/OFFSET, \
                 date_trunc, COUNT(*) FILTER (WHERE ...). Prefer aggregates (COUNT, SUM, GROUP BY) and LIMIT over \
                 fetching raw rows. The result is capped at max_rows rows (default {max_rows}) and {max_bytes} bytes \
                 of JSON; `truncated` is true exactly when more rows exist than are shown, and then `full_result` \
                 gives a URL that streams every row (GET it with the same API key; Accept picks Arrow, Parquet, CSV \
                 or JSON). Integers beyond 2^53 and wide decimals come as strings so no digit is lost. \
                 `params` binds $1-style (array) or :name (object) placeholders."
            ),
            json!({
                "type": "object",
                "properties": {
                    "sql": {"type": "string", "description": "One read-only SQL statement with fully qualified table names"},
                    "max_rows": {"type": "integer", "minimum": 0, "description": format!("Rows to return at most (default {max_rows}); more rows set truncated")},
                    "timeout_ms": {"type": "integer", "minimum": 1, "description": "Wall-time limit in milliseconds (capped by the server)"},
                    "params": {"description": "Values for $1-style (array) or :name (object) placeholders",
                               "oneOf": [{"type": "array"}, {"type": "object"}]}
                },
                "required": ["sql"],
                "additionalProperties": false
            }),
            json!({
                "type": "object",
                "properties": {
                    "columns": columns_schema(),
                    "rows": {"type": "array", "items": {"type": "array"}, "description": "One array per row, cells in column order"},
                    "row_count": {"type": "integer", "description": "Rows in `rows`"},
                    "truncated": {"type": "boolean", "description": "True exactly when the result has more rows than shown"},
                    "query_id": {"type": "string"},
                    "sources": {"type": "array", "items": {"type": "string"}},
                    "elapsed_ms": {"type": "number"},
                    "full_result": {
                        "type": "object",
                        "description": "Present when truncated: how to fetch every row",
                        "properties": {
                            "url": {"type": "string"},
                            "method": {"type": "string"},
                            "headers": {"type": "object"},
                            "formats": {"type": "array", "items": {"type": "string"}},
                            "hint": {"type": "string"},
                            "spooled": {
                                "type": "object",
                                "description": "With a spool configured: the same URL answers a manifest of segment URLs to fetch in parallel",
                                "properties": {
                                    "url": {"type": "string"},
                                    "method": {"type": "string"},
                                    "headers": {"type": "object"},
                                    "hint": {"type": "string"}
                                }
                            }
                        },
                        "required": ["url", "method"]
                    }
                },
                "required": ["columns", "rows", "row_count", "truncated", "query_id", "sources", "elapsed_ms"]
            }),
        ),
        tool(
            "list_sources",
            "List sources",
            "The data sources behind this server (each is the first part of a table name) with their kind \
             (parquet, postgres, snowflake), health state and table count. Call it first to see what exists."
                .to_owned(),
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
            json!({
                "type": "object",
                "properties": {"sources": {"type": "array", "items": {"type": "object",
                    "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                                   "state": {"type": "string"}, "tables": {"type": ["integer", "null"]}},
                    "required": ["name", "kind", "state"]}}},
                "required": ["sources"]
            }),
        ),
        tool(
            "list_tables",
            "List tables",
            format!(
                "Tables this key may read, as fully qualified names (source.schema.table) with their column count, \
                 sorted. Filter by `source`, and by `pattern`: a case-insensitive substring, or a glob with * and ? \
                 (e.g. *order*). Pages hold `limit` tables (default {TABLES_PAGE}, at most {TABLES_PAGE_MAX}); pass \
                 `next_cursor` back as `cursor` for the next page. Then describe_table for columns."
            ),
            json!({
                "type": "object",
                "properties": {
                    "source": {"type": "string", "description": "Only this source"},
                    "pattern": {"type": "string", "description": "Substring or glob (* and ?) matched against source.schema.table"},
                    "cursor": {"type": "string", "description": "next_cursor of the previous page"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": TABLES_PAGE_MAX}
                },
                "additionalProperties": false
            }),
            json!({
                "type": "object",
                "properties": {
                    "tables": {"type": "array", "items": {"type": "object",
                        "properties": {"name": {"type": "string"}, "columns": {"type": "integer"}},
                        "required": ["name", "columns"]}},
                    "next_cursor": {"type": ["string", "null"]}
                },
                "required": ["tables"]
            }),
        ),
        tool(
            "describe_table",
            "Describe a table",
            "The columns of one table with their Arrow types and nullability. Give the fully qualified name \
             from list_tables (source.schema.table); use these column names, exactly, in query."
                .to_owned(),
            json!({
                "type": "object",
                "properties": {"table": {"type": "string", "description": "source.schema.table"}},
                "required": ["table"],
                "additionalProperties": false
            }),
            json!({
                "type": "object",
                "properties": {"name": {"type": "string"}, "columns": columns_schema()},
                "required": ["name", "columns"]
            }),
        ),
        tool(
            "explain",
            "Explain SQL",
            "How a statement would run, without running it: the sources it reads, the exact SQL each remote \
             source receives (what is pushed down), and the local plan. Use it to check a heavy query first."
                .to_owned(),
            json!({
                "type": "object",
                "properties": {"sql": {"type": "string", "description": "One read-only SQL statement"}},
                "required": ["sql"],
                "additionalProperties": false
            }),
            json!({
                "type": "object",
                "properties": {
                    "query_id": {"type": "string"},
                    "sources": {"type": "array", "items": {"type": "string"}},
                    "tables": {"type": "array", "items": {"type": "string"}},
                    "remote": {"type": "array", "items": {"type": "object"}},
                    "logical_plan": {"type": "string"},
                    "physical_plan": {"type": "string"}
                },
                "required": ["query_id", "sources", "remote", "logical_plan", "physical_plan"]
            }),
        ),
    ]
}

/// True when `name` matches `pattern`: a glob (the grants' `*` and `?`) when it has either,
/// else a substring; both case-insensitive.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.to_lowercase(), name.to_lowercase());
    if p.contains(['*', '?']) {
        sluice_planner::grants::glob(&p, &n)
    } else {
        n.contains(&p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("ORDER", "local.public.orders"));
        assert!(matches("*.orders", "local.public.orders"));
        assert!(matches("local.*.line?tem", "local.public.lineitem"));
        assert!(!matches("*.order", "local.public.orders"));
        assert!(!matches("pg.*", "local.public.orders"));
        assert!(matches("*", "x"));
    }

    #[test]
    fn every_tool_is_read_only_with_schemas() {
        let tools = all(500, 65_536);
        let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "query",
                "list_sources",
                "list_tables",
                "describe_table",
                "explain"
            ]
        );
        for t in &tools {
            assert_eq!(t.input_schema.get("type"), Some(&json!("object")));
            assert!(t.output_schema.is_some(), "{}", t.name);
            let a = t.annotations.as_ref().unwrap();
            assert_eq!(a.read_only_hint, Some(true));
        }
    }
}
