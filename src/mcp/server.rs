//! [`SluiceMcp`]: the tools, table resources and prompt, each doing exactly what the HTTP API
//! does for the same key (the same admission, grants, limits, audit and errors).

use std::time::Duration;

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use futures::StreamExt;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, Prompt, PromptArgument, PromptMessage, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate, Role,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value, json};
use sluice_schemas::McpConfig;
use sluice_schemas::api::{Operation, QueryRequest};
use tokio_util::sync::CancellationToken;

use super::Caller;
use super::tools::{self, DescribeArgs, ExplainArgs, ListTablesArgs, NoArgs, QueryArgs};
use crate::error::{ApiError, Code};
use crate::format::{BatchEncoder, RowLinesEncoder};
use crate::query::{Batches, Call, QueryService, ResultStream, RowCap, new_query_id};

/// How often a running `query` reports progress to a client that asked for it.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
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
    service: Arc<QueryService>,
    max_rows: u64,
    max_bytes: u64,
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
fn tool_error(e: &ApiError) -> CallToolResult {
    let hint = match e.code {
        Code::SqlInvalid => {
            " Fix the statement; describe_table shows the exact column names and types."
        }
        Code::TableNotFound | Code::SourceNotFound => {
            " Call list_tables to find the exact fully qualified name (source.schema.table)."
        }
        Code::ReadOnly => " Only one read-only statement (SELECT, WITH, EXPLAIN) is allowed.",
        Code::PermissionDenied => " This API key may not do this; ask for a key with the grant.",
        Code::QueryTimeout => {
            " Narrow the statement (filters, LIMIT, aggregates) or pass a larger timeout_ms."
        }
        Code::ResultTooLarge => " Add LIMIT or aggregate.",
        Code::RateLimited
        | Code::TooManyQueries
        | Code::SourceUnavailable
        | Code::MemoryExhausted => " Retry later.",
        Code::DataError => " A value made the statement fail; check casts and divisions.",
        _ => "",
    };
    let mut error = json!({"code": e.code.as_str(), "message": e.message});
    if let Some(wait) = e.retry_after() {
        error["retry_after_ms"] = json!(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
    }
    if let Some(id) = &e.query_id {
        error["query_id"] = json!(id);
    }
    let retry = e
        .retry_after()
        .map(|w| format!(" Retry after {} s.", w.as_secs().max(1)))
        .unwrap_or_default();
    let mut result = CallToolResult::error(vec![ContentBlock::text(format!(
        "{}: {}.{hint}{retry}",
        e.code,
        e.message.trim_end_matches('.')
    ))]);
    result.structured_content = Some(json!({ "error": error }));
    result
}

/// A successful result: the same JSON as structured content and as text (clients read one or
/// the other).
fn tool_ok(value: Value, extra: Vec<ContentBlock>) -> CallToolResult {
    let text = serde_json::to_string(&value).unwrap_or_default();
    let mut content = vec![ContentBlock::text(text)];
    content.extend(extra);
    let mut result = CallToolResult::success(content);
    result.structured_content = Some(value);
    result
}

fn args<T: serde::de::DeserializeOwned + Default>(
    arguments: Option<rmcp::model::JsonObject>,
) -> Result<T, McpError> {
    match arguments {
        None => Ok(T::default()),
        Some(a) => required(Some(a)),
    }
}

fn required<T: serde::de::DeserializeOwned>(
    arguments: Option<rmcp::model::JsonObject>,
) -> Result<T, McpError> {
    serde_json::from_value(Value::Object(arguments.unwrap_or_default()))
        .map_err(|e| McpError::invalid_params(format!("bad arguments: {e}"), None))
}

/// What a capped result collected.
struct Collected {
    rows: Vec<Value>,
    truncated: bool,
}

impl SluiceMcp {
    /// A new query id and its audit record, as the HTTP door opens them.
    fn call(&self, caller: &Caller, op: Operation) -> Call {
        self.service
            .call(&caller.principal, &caller.client, new_query_id(), op)
    }

    async fn query(
        &self,
        caller: &Caller,
        a: QueryArgs,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let call = self.call(caller, Operation::Query);
        let query_id = call.query_id.clone();
        let n = a
            .max_rows
            .unwrap_or(self.max_rows)
            .min(self.service.limits().max_rows);
        let request = QueryRequest {
            sql: a.sql,
            params: a.params,
            timeout_ms: a.timeout_ms,
            max_rows: None,
        };
        let work = call.record(async {
            let started = self
                .service
                .run(&call, &request, RowCap::Peek(n), Batches::maker())
                .await?;
            let entry = Arc::clone(&started.entry);
            let collected = self
                .collect(started.stream, n, &started.columns, &query_id)
                .await?;
            Ok((started.columns, entry, collected))
        });
        let answer = self.watched(work, &query_id, context).await;
        let (columns, entry, collected) = match answer {
            Ok(a) => a,
            Err(e) => return tool_error(&e),
        };
        let status = entry.status();
        let mut value = json!({
            "columns": columns,
            "row_count": collected.rows.len(),
            "rows": collected.rows,
            "truncated": collected.truncated,
            "query_id": query_id,
            "sources": status.sources,
            "elapsed_ms": entry.elapsed().as_secs_f64() * 1000.0,
        });
        let mut extra = Vec::new();
        if collected.truncated {
            let url = format!("{}/v1/queries/{query_id}/result", caller.base_url);
            value["full_result"] = json!({
                "url": url,
                "method": "GET",
                "headers": {"Authorization": "Bearer <the same API key>", "Accept": "application/vnd.apache.arrow.stream"},
                "formats": ["application/vnd.apache.arrow.stream", "application/vnd.apache.parquet", "text/csv", "application/x-ndjson", "application/json"],
                "hint": "Every row, streamed: read it with pyarrow.ipc.open_stream, polars or DuckDB, or aggregate in SQL instead.",
            });
            extra.push(ContentBlock::resource_link(
                Resource::new(url, format!("result of {query_id}"))
                    .with_description("The complete result, streamed (GET with the same API key; Accept picks the format)")
                    .with_mime_type("application/vnd.apache.arrow.stream"),
            ));
        }
        tool_ok(value, extra)
    }

    /// Runs `work` (a query: planning, waiting for its first rows, reading them) while
    /// sending progress to a client that asked for it, and gives up on it when the client
    /// leaves: dropping it drops the result stream, which cancels the query and its remote
    /// statements.
    async fn watched<T>(
        &self,
        work: impl Future<Output = Result<T, ApiError>>,
        query_id: &str,
        context: &RequestContext<RoleServer>,
    ) -> Result<T, ApiError> {
        let progress = context.meta.get_progress_token();
        let cancelled: CancellationToken = context.ct.clone();
        let started = std::time::Instant::now();
        let mut ticker = tokio::time::interval(PROGRESS_EVERY);
        ticker.tick().await;
        let mut ticks = 0_u32;
        tokio::pin!(work);
        loop {
            tokio::select! {
                r = &mut work => return r,
                () = cancelled.cancelled() => {
                    return Err(ApiError::client_gone().with_query(query_id));
                }
                _ = ticker.tick(), if progress.is_some() => {
                    ticks += 1;
                    let rows = self.service.rows_so_far(query_id);
                    if let Some(token) = &progress {
                        let param = ProgressNotificationParam::new(token.clone(), f64::from(ticks))
                            .with_message(format!(
                                "running for {:.1} s, {rows} rows so far",
                                started.elapsed().as_secs_f64()
                            ));
                        let _ = context.peer.notify_progress(param).await;
                    }
                }
            }
        }
    }

    /// Reads rows until `n` rows or the byte cap, then drains the rest (the plan stops at
    /// `n + 1` rows, so draining costs at most one more row than shown, or the rows the byte
    /// cap left out) so the query completes rather than being cut. Only rows that may be shown
    /// are turned into JSON.
    ///
    /// # Errors
    /// The query's failure, when it failed while streaming.
    async fn collect(
        &self,
        mut stream: ResultStream<RecordBatch>,
        n: u64,
        columns: &[sluice_schemas::api::Column],
        query_id: &str,
    ) -> Result<Collected, ApiError> {
        // The JSON around the rows (an upper bound: long figures, a source list).
        let frame = serde_json::to_string(&json!({"columns": columns, "query_id": query_id}))
            .map_or(0, |s| s.len())
            + 256;
        let budget = usize::try_from(self.max_bytes).unwrap_or(usize::MAX);
        let mut size = frame;
        let mut rows = Vec::new();
        let mut truncated = false;
        let mut lines = RowLinesEncoder::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if truncated {
                continue;
            }
            let room = usize::try_from(n)
                .unwrap_or(usize::MAX)
                .saturating_sub(rows.len());
            if room < batch.num_rows() {
                truncated = true;
            }
            let shown = batch.slice(0, room.min(batch.num_rows()));
            let encoded = lines
                .encode(&shown)
                .map_err(|e| ApiError::internal(Some(query_id), &e))?;
            for line in encoded.iter().flat_map(|b| b.split(|c| *c == b'\n')) {
                if line.is_empty() {
                    continue;
                }
                let cost = line.len() + usize::from(!rows.is_empty());
                if size + cost > budget {
                    truncated = true;
                    break;
                }
                let row: Value = serde_json::from_slice(line)
                    .map_err(|e| ApiError::internal(Some(query_id), &e))?;
                size += cost;
                rows.push(row);
            }
        }
        Ok(Collected { rows, truncated })
    }

    async fn list_tables(&self, caller: &Caller, a: ListTablesArgs) -> CallToolResult {
        let limit = a
            .limit
            .unwrap_or(tools::TABLES_PAGE)
            .clamp(1, tools::TABLES_PAGE_MAX);
        let tables = match self.service.tables(&caller.principal).await {
            Ok(t) => t,
            Err(e) => return tool_error(&e),
        };
        let mut page: Vec<Value> = Vec::new();
        let mut next = None;
        for t in tables.iter().filter(|t| {
            a.source
                .as_ref()
                .is_none_or(|s| t.source.eq_ignore_ascii_case(s))
                && a.pattern
                    .as_ref()
                    .is_none_or(|p| tools::matches(p, &t.name))
                && a.cursor
                    .as_ref()
                    .is_none_or(|c| t.name.as_str() > c.as_str())
        }) {
            if page.len() as u64 == limit {
                next = page
                    .last()
                    .and_then(|l| l["name"].as_str())
                    .map(str::to_owned);
                break;
            }
            page.push(json!({"name": t.name, "columns": t.columns}));
        }
        tool_ok(json!({"tables": page, "next_cursor": next}), Vec::new())
    }

    fn list_sources(&self, caller: &Caller) -> CallToolResult {
        match self.service.sources(&caller.principal) {
            Ok(sources) => {
                let sources: Vec<Value> = sources
                    .iter()
                    .map(|s| json!({"name": s.name, "kind": s.kind, "state": s.state, "tables": s.tables}))
                    .collect();
                tool_ok(json!({ "sources": sources }), Vec::new())
            }
            Err(e) => tool_error(&e),
        }
    }

    async fn describe(&self, caller: &Caller, a: DescribeArgs) -> CallToolResult {
        match self.service.describe(&caller.principal, &a.table).await {
            Ok(t) => tool_ok(json!({"name": t.name, "columns": t.columns}), Vec::new()),
            Err(e) => tool_error(&e),
        }
    }

    async fn explain(
        &self,
        caller: &Caller,
        a: ExplainArgs,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let call = self.call(caller, Operation::Explain);
        let request = QueryRequest {
            sql: a.sql,
            ..QueryRequest::default()
        };
        let work = self.service.explain(&call, &request);
        let answer = self.watched(work, &call.query_id, context).await;
        match answer {
            Ok(e) => tool_ok(serde_json::to_value(&e).unwrap_or_default(), Vec::new()),
            Err(e) => tool_error(&e),
        }
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

impl SluiceMcp {
    /// Takes a token from the key's bucket for a tool call, as `/v1` does per request; a
    /// refused query or explain is on the audit record like one refused at `/v1`'s door.
    fn charge(&self, caller: &Caller, request: &CallToolRequestParams) -> Result<(), ApiError> {
        let Err(e) = self.service.charge(&caller.principal) else {
            return Ok(());
        };
        let op = match request.name.as_ref() {
            "query" => Operation::Query,
            "explain" => Operation::Explain,
            _ => return Err(e),
        };
        Err(self.call(caller, op).refuse(e))
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
        let caller = Self::caller(&context)?;
        if let Err(e) = self.charge(&caller, &request) {
            return Ok(tool_error(&e).into());
        }
        let result = match request.name.as_ref() {
            "query" => {
                let a: QueryArgs = required(request.arguments)?;
                self.query(&caller, a, &context).await
            }
            "list_sources" => {
                let _: NoArgs = args(request.arguments)?;
                self.list_sources(&caller)
            }
            "list_tables" => self.list_tables(&caller, args(request.arguments)?).await,
            "describe_table" => self.describe(&caller, required(request.arguments)?).await,
            "explain" => {
                self.explain(&caller, required(request.arguments)?, &context)
                    .await
            }
            other => {
                return Err(McpError::invalid_params(
                    format!("no tool {other}; tools/list names them"),
                    None,
                ));
            }
        };
        Ok(result.into())
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
