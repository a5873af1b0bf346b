//! The tools: each call goes to the query service with the caller's key, and its answer (or
//! refusal) comes back as a tool result a model can read.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use futures::StreamExt;
use rmcp::RoleServer;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, ProgressNotificationParam, Resource,
};
use rmcp::service::RequestContext;
use serde_json::{Value, json};
use sluice_schemas::api::{Operation, QueryRequest};
use tokio_util::sync::CancellationToken;

use super::Caller;
use super::results::{tool_error, tool_ok};
use super::server::SluiceMcp;
use super::tools::{self, DescribeArgs, ExplainArgs, ListTablesArgs, QueryArgs};
use crate::error::ApiError;
use crate::format::{BatchEncoder, RowLinesEncoder};
use crate::query::{Batches, Call, ResultStream, RowCap, new_query_id};

/// How often a running `query` reports progress to a client that asked for it.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

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

    pub(super) async fn query(
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
            defaults: None,
            spool: false,
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
            if self.service.spool().is_some() {
                value["full_result"]["spooled"] = json!({
                    "url": url,
                    "method": "GET",
                    "headers": {"Authorization": "Bearer <the same API key>", "Accept": crate::spool::MEDIA_TYPE},
                    "hint": "Every row, spooled: the answer is a manifest whose segment URLs (whole Arrow IPC or Parquet files) a notebook fetches in parallel without going through Sluice; GET its `ack` URL until `complete`, then DELETE it.",
                });
            }
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

    pub(super) async fn list_tables(&self, caller: &Caller, a: ListTablesArgs) -> CallToolResult {
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

    pub(super) fn list_sources(&self, caller: &Caller) -> CallToolResult {
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

    pub(super) async fn describe(&self, caller: &Caller, a: DescribeArgs) -> CallToolResult {
        match self.service.describe(&caller.principal, &a.table).await {
            Ok(t) => tool_ok(json!({"name": t.name, "columns": t.columns}), Vec::new()),
            Err(e) => tool_error(&e),
        }
    }

    pub(super) async fn explain(
        &self,
        caller: &Caller,
        a: ExplainArgs,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let call = self.call(caller, Operation::Explain);
        let request = QueryRequest {
            defaults: None,
            spool: false,
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

    /// Takes a token from the key's bucket for a tool call, as `/v1` does per request; a
    /// refused query or explain is on the audit record like one refused at `/v1`'s door.
    pub(super) fn charge(
        &self,
        caller: &Caller,
        request: &CallToolRequestParams,
    ) -> Result<(), ApiError> {
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
