//! [`SluiceMcp`]: the tools, table resources and prompt, each doing exactly what the HTTP API
//! does for the same key (the same admission, grants, limits, audit and errors). The tools'
//! calls are in `calls`.

use std::sync::Arc;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    Prompt, PromptArgument, PromptMessage, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate, Role, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::json;
use sluice_schemas::McpConfig;

use super::Caller;
use super::results::{args, required, tool_error};
use super::tools::{self, NoArgs, QueryArgs};
use crate::query::QueryService;

/// Resources a `resources/list` page holds.
const RESOURCES_PAGE: usize = 500;
/// How long clients may reuse a list answer (`ttlMs`).
const LIST_TTL_MS: u64 = 60_000;

const INSTRUCTIONS: &str = "Sluice is a read-only federated SQL gateway: every source (Parquet on \
object storage, PostgreSQL, Snowflake) is a catalog, and one SQL statement can join across them. \
Find tables with list_sources and list_tables, read columns with describe_table, then run one \
read-only statement with query, naming tables fully as source.schema.table. Results are capped; \
`truncated` says exactly whether rows were left out, and `full_result` streams all of them.";

/// The MCP server: shared by every session and stateless request; the caller comes with each
/// request.
#[derive(Clone)]
pub struct SluiceMcp {
    pub(super) service: Arc<QueryService>,
    /// Rows a `query` result holds when the call does not say.
    pub(super) max_rows: u64,
    /// Bytes of compact JSON a `query` result holds at most.
    pub(super) max_bytes: u64,
}

impl SluiceMcp {
    /// The server over `service` with the `[mcp]` result caps.
    pub fn new(service: Arc<QueryService>, config: &McpConfig) -> Self {
        Self {
            service,
            max_rows: config.max_rows,
            max_bytes: config.max_result_bytes,
        }
    }

    fn caller(context: &RequestContext<RoleServer>) -> Result<Caller, McpError> {
        Caller::of(context.extensions.get::<http::request::Parts>()).ok_or_else(|| {
            McpError::internal_error("the request reached MCP without its caller", None)
        })
    }
}

/// A tool's failure as a result the model can read and act on.
impl SluiceMcp {
    /// A tool call, answered.
    async fn call_tool_in(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let caller = Self::caller(&context)?;
        if let Err(e) = self.charge(&caller, &request) {
            return Ok(tool_error(&e));
        }
        // The tools that run statements are boxed: their futures are large, and rmcp's
        // futures hold this one by value, so in a debug build their poll frames (each a copy)
        // outgrew an actix worker's 2 MiB stack.
        let result = match request.name.as_ref() {
            "query" => {
                let a: QueryArgs = required(request.arguments)?;
                Box::pin(self.query(&caller, a, &context)).await
            }
            "list_sources" => {
                let _: NoArgs = args(request.arguments)?;
                self.list_sources(&caller)
            }
            "list_tables" => self.list_tables(&caller, args(request.arguments)?).await,
            "describe_table" => self.describe(&caller, required(request.arguments)?).await,
            "explain" => {
                Box::pin(self.explain(&caller, required(request.arguments)?, &context)).await
            }
            other => {
                return Err(McpError::invalid_params(
                    format!("no tool {other}; tools/list names them"),
                    None,
                ));
            }
        };
        Ok(result)
    }

    /// The tables `caller` may read, as resources.
    async fn table_resources(&self, caller: &Caller) -> Result<Vec<Resource>, McpError> {
        let tables = self
            .service
            .tables(&caller.principal)
            .await
            .map_err(|e| McpError::invalid_request(e.message, None))?;
        Ok(tables
            .iter()
            .map(|t| {
                Resource::new(table_uri(&t.source, &t.schema, &t.table), t.name.clone())
                    .with_description(format!("Columns of {} ({} columns)", t.name, t.columns))
                    .with_mime_type("application/json")
            })
            .collect())
    }
}

/// `sluice://{source}/{schema}/{table}`.
fn table_uri(source: &str, schema: &str, table: &str) -> String {
    format!("sluice://{source}/{schema}/{table}")
}

/// The table a `sluice://` URI names, as `source.schema.table`.
fn table_of(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("sluice://")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [source, schema, table]
            if !source.is_empty() && !schema.is_empty() && !table.is_empty() =>
        {
            Some(format!("{source}.{schema}.{table}"))
        }
        _ => None,
    }
}

const PROMPT: &str = "sql_assistant";

impl SluiceMcp {
    async fn prompt(
        &self,
        caller: &Caller,
        question: Option<String>,
    ) -> Result<GetPromptResult, McpError> {
        let sources = self
            .service
            .sources(&caller.principal)
            .map_err(|e| McpError::invalid_request(e.message, None))?;
        let tables = self
            .service
            .tables(&caller.principal)
            .await
            .map_err(|e| McpError::invalid_request(e.message, None))?;
        let mut text = String::from(
            "You are answering questions with SQL through Sluice, a read-only federated SQL gateway.\n\n\
             Rules of this server:\n\
             - One read-only statement per query call (SELECT, WITH, EXPLAIN); nothing that writes.\n\
             - Name tables fully: source.schema.table. Look them up with list_tables and their columns with \
             describe_table before writing SQL; never guess a column.\n\
             - The dialect is Apache DataFusion SQL (close to PostgreSQL): double-quote identifiers with capitals, \
             single-quote strings, CAST(x AS type), date_trunc, INTERVAL '1 day', LIMIT/OFFSET.\n\
             - A statement may join tables of different sources; filters and aggregates are pushed to each source.\n\
             - Prefer aggregates and LIMIT. Results are capped: `truncated: true` means rows were left out; say so, \
             and use `full_result` or a narrower statement rather than presenting partial rows as the whole answer.\n\n",
        );
        text.push_str("Sources:\n");
        for s in &sources {
            text.push_str(&format!(
                "- {} ({}, {:?}, {} tables)\n",
                s.name,
                s.kind,
                s.state,
                s.tables.map_or_else(|| "?".to_owned(), |n| n.to_string())
            ));
        }
        const SHOWN: usize = 200;
        text.push_str(&format!("\nTables ({} in all):\n", tables.len()));
        for t in tables.iter().take(SHOWN) {
            text.push_str(&format!("- {} ({} columns)\n", t.name, t.columns));
        }
        if tables.len() > SHOWN {
            text.push_str("- ... more: call list_tables with a pattern\n");
        }
        if let Some(q) = question {
            text.push_str(&format!("\nQuestion: {q}\n"));
        }
        let mut result = GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]);
        result.description =
            Some("The catalog this key may read and the SQL rules of this server".to_owned());
        Ok(result)
    }
}

impl ServerHandler for SluiceMcp {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_prompts()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("sluice", env!("CARGO_PKG_VERSION")).with_title("Sluice"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(
            ListToolsResult::with_all_items(tools::all(self.max_rows, self.max_bytes))
                .with_ttl_ms(LIST_TTL_MS)
                .with_cache_scope(CacheScope::Public),
        )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let tool: &'static str = match request.name.as_ref() {
            "query" => "query",
            "list_sources" => "list_sources",
            "list_tables" => "list_tables",
            "describe_table" => "describe_table",
            "explain" => "explain",
            _ => "other",
        };
        let span = tool_span(tool, &context);
        let result =
            tracing::Instrument::instrument(self.call_tool_in(request, context), span.clone())
                .await;
        let outcome = match &result {
            Ok(r) if r.is_error == Some(true) => r
                .structured_content
                .as_ref()
                .and_then(|v| v["error"]["code"].as_str())
                .and_then(crate::error::Code::parse)
                .map_or("error", crate::error::Code::as_str),
            Ok(_) => "ok",
            Err(_) => "invalid_params",
        };
        if outcome != "ok" {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", outcome);
        }
        metrics::counter!(crate::metrics::MCP_TOOL_CALLS_TOTAL, "tool" => tool, "outcome" => outcome)
            .increment(1);
        result.map(Into::into)
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let caller = Self::caller(&context)?;
        let all = self.table_resources(&caller).await?;
        let cursor = request.and_then(|r| r.cursor);
        let mut page: Vec<Resource> = all
            .into_iter()
            .filter(|r| cursor.as_ref().is_none_or(|c| r.uri.as_str() > c.as_str()))
            .take(RESOURCES_PAGE + 1)
            .collect();
        let next = (page.len() > RESOURCES_PAGE).then(|| {
            page.truncate(RESOURCES_PAGE);
            page.last().map(|r| r.uri.clone())
        });
        let mut result = ListResourcesResult::with_all_items(page)
            .with_ttl_ms(LIST_TTL_MS)
            .with_cache_scope(CacheScope::Private);
        result.next_cursor = next.flatten();
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let template = ResourceTemplate::new("sluice://{source}/{schema}/{table}", "table")
            .with_title("Table schema")
            .with_description("The columns of source.schema.table with their Arrow types, as JSON")
            .with_mime_type("application/json");
        Ok(ListResourceTemplatesResult::with_all_items(vec![template])
            .with_ttl_ms(LIST_TTL_MS)
            .with_cache_scope(CacheScope::Public))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let caller = Self::caller(&context)?;
        let not_found = || {
            McpError::resource_not_found(
                format!("no resource {}; resources/list names them", request.uri),
                None,
            )
        };
        let name = table_of(&request.uri).ok_or_else(not_found)?;
        // A table the key may not read does not exist, as on /v1/tables.
        let t = self
            .service
            .describe(&caller.principal, &name)
            .await
            .map_err(|_| not_found())?;
        let text = serde_json::to_string(&json!({"name": t.name, "columns": t.columns}))
            .unwrap_or_default();
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, request.uri.clone()).with_mime_type("application/json"),
        ])
        .into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let prompt = Prompt::new(
            PROMPT,
            Some("The catalog this key may read and the SQL rules of this server, to start a data question"),
            Some(vec![
                PromptArgument::new("question")
                    .with_description("The question to answer with SQL")
                    .with_required(false),
            ]),
        )
        .with_title("Query Sluice");
        Ok(ListPromptsResult::with_all_items(vec![prompt])
            .with_ttl_ms(LIST_TTL_MS)
            .with_cache_scope(CacheScope::Public))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        if request.name != PROMPT {
            return Err(McpError::invalid_params(
                format!("no prompt {}; prompts/list names it", request.name),
                None,
            ));
        }
        let caller = Self::caller(&context)?;
        let question = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("question"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        Ok(self.prompt(&caller, question).await?.into())
    }
}

/// The span of an MCP tool call: it continues the trace the client named in the request's
/// `_meta.traceparent`, else in the HTTP request's `traceparent` header.
fn tool_span(tool: &'static str, context: &RequestContext<RoleServer>) -> tracing::Span {
    use crate::telemetry::propagation::{TRACEPARENT, TRACESTATE, continue_trace};
    let span = tracing::info_span!(
        target: "sluice::span",
        "MCP tool call",
        otel.name = %format_args!("tools/call {tool}"),
        otel.kind = "server",
        mcp.method.name = "tools/call",
        gen_ai.tool.name = tool,
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    if !crate::telemetry::tracing_on() {
        return span;
    }
    let meta = |k: &str| context.meta.get(k).and_then(|v| v.as_str());
    let parts = context.extensions.get::<http::request::Parts>();
    let header = |k: &str| {
        parts
            .and_then(|p| p.headers.get(k))
            .and_then(|v| v.to_str().ok())
    };
    match meta(TRACEPARENT) {
        Some(tp) => continue_trace(&span, Some(tp), meta(TRACESTATE)),
        None => continue_trace(&span, header(TRACEPARENT), header(TRACESTATE)),
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_uris_round_trip() {
        let uri = table_uri("local", "public", "nation");
        assert_eq!(table_of(&uri).as_deref(), Some("local.public.nation"));
        assert_eq!(table_of("sluice://local/public"), None);
        assert_eq!(table_of("sluice://local/public/a/b"), None);
        assert_eq!(table_of("file:///etc/passwd"), None);
    }
}
