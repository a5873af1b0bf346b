//! `POST /v1/query` and `POST /v1/explain`.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use sluice_actors::routing::{Acquired, Avoid, RouteError};
use sluice_planner::{Params, PlanError, PlannedQuery, Planner};
use sluice_schemas::api::{
    ErrorBody, ExplainResponse, Operation, QueryParams, QueryRequest, QueryResult,
    RemoteStatementBody,
};
use tokio::time::Instant;

use super::openapi::Binary;
use super::{QUERY_ID_HEADER, QueryId, body};
use crate::auth::Principal;
use crate::error::{ApiError, Result};
use crate::exec::{self, QueryJob};
use crate::format::Format;
use crate::governance::QueryAuditor;
use crate::queries::{QueryEntry, QueryState};
use crate::state::AppState;

/// Runs one read-only statement and streams the result in the format `Accept` asks for.
///
/// The body is JSON, or the bare SQL as `text/plain` / `application/sql`. Rows stream as
/// they are produced; a failure after the first byte cuts the body without its final
/// chunk, and `GET /v1/queries/{id}` says why.
#[utoipa::path(post, path = "/v1/query", tag = "queries",
    request_body(content(
        (QueryRequest = "application/json"),
        (String = "application/sql", example = "SELECT n_name FROM nation ORDER BY 1 LIMIT 5"),
        (String = "text/plain"),
    )),
    params(
        ("Accept" = Option<String>, Header, description = "Result format: application/json (default), application/x-ndjson, text/csv, application/vnd.apache.arrow.stream, application/vnd.apache.parquet"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of a cached answer: 304 while it still holds"),
    ),
    responses(
        (status = 200, description = "The result, streamed", headers(
                ("x-query-id" = String, description = "The query's id"),
                ("x-sluice-cache" = String, description = "`hit` (served from the result cache) or `miss`"),
                ("etag" = String, description = "On a hit: the result's strong ETag in this format"),
            ),
            content(
                (QueryResult = "application/json"),
                (String = "application/x-ndjson"),
                (String = "text/csv"),
                (Binary = "application/vnd.apache.arrow.stream"),
                (Binary = "application/vnd.apache.parquet"),
            )),
        (status = 304, description = "Not Modified: the result is cached and its `ETag` was sent in `If-None-Match`"),
        (status = 400, description = "`bad_request`, `sql_invalid`, `read_only`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`table_not_found`", body = ErrorBody),
        (status = 406, description = "`not_acceptable`: no format serves the Accept", body = ErrorBody),
        (status = 409, description = "`query_cancelled`: cancelled by DELETE /v1/queries/{id}", body = ErrorBody),
        (status = 413, description = "`result_too_large` (over max_rows), `request_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`data_error`: the data made the statement fail", body = ErrorBody),
        (status = 403, description = "`permission_denied`: the key may not run queries (or EXPLAIN)", body = ErrorBody),
        (status = 429, description = "`rate_limited` or `too_many_queries`, with `Retry-After`", body = ErrorBody),
        (status = 501, description = "`unsupported`", body = ErrorBody),
        (status = 502, description = "`upstream_error`", body = ErrorBody),
        (status = 503, description = "`source_unavailable`, `shutting_down`, `metadata_unavailable`", body = ErrorBody),
        (status = 504, description = "`query_timeout`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn query(
    req: HttpRequest,
    QueryId(query_id): QueryId,
    principal: Principal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let auditor = auditor(&state, &req, &principal, &query_id, Operation::Query);
    audited(
        &auditor,
        run_query(&req, &query_id, &principal, payload, &state, &auditor),
    )
    .await
}

/// The audit record of a query or explain request.
pub fn auditor(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    query_id: &str,
    op: Operation,
) -> std::sync::Arc<QueryAuditor> {
    state
        .governance
        .query_auditor(principal, &crate::auth::client(req), query_id, op)
}

/// Runs `answer`; a refusal is recorded (a query that ran records itself when it ends, and
/// then this is a no-op).
pub async fn audited<T>(
    auditor: &QueryAuditor,
    answer: impl Future<Output = Result<T>>,
) -> Result<T> {
    let answer = answer.await;
    if let Err(e) = &answer {
        auditor.complete(Some(e.code), 0, 0);
    }
    answer
}

/// What a query or explain checks before reading its body: the key may perform `op`, the
/// server is not draining, the audit log can keep the record.
pub fn admit(state: &AppState, principal: &Principal, op: Operation, query_id: &str) -> Result<()> {
    principal
        .require(op)
        .and_then(|()| {
            if state.lifecycle.is_draining() {
                Err(ApiError::shutting_down())
            } else {
                state.governance.audit.admit()
            }
        })
        .map_err(|e| e.with_query(query_id))
}

async fn run_query(
    req: &HttpRequest,
    query_id: &str,
    principal: &Principal,
    payload: web::Payload,
    state: &AppState,
    auditor: &std::sync::Arc<QueryAuditor>,
) -> Result<HttpResponse> {
    admit(state, principal, Operation::Query, query_id)?;
    let format = Format::negotiate(req.headers())
        .map_err(|m| ApiError::not_acceptable(m).with_query(query_id))?;
    let request = read_request(req, payload, state.limits.max_request_bytes, query_id).await?;
    let max_rows = request
        .max_rows
        .unwrap_or(state.limits.max_rows)
        .min(state.limits.max_rows);
    let started = start(
        state,
        principal,
        query_id,
        auditor,
        &request,
        format,
        RowCap::Refuse(max_rows),
    )
    .await?;
    Ok(started.response(format, query_id, req.headers()))
}

/// The complete result of a recent query, for the key that ran it: its statement and
/// parameters run again (a new query, under a new id), capped only by the server's
/// `limits.max_rows`, streamed in the format `Accept` asks for. MCP's `query` tool links here
/// when it had to truncate.
#[utoipa::path(get, path = "/v1/queries/{id}/result", tag = "queries",
    params(
        ("id" = String, Path, description = "Query id (`X-Query-Id`, or MCP's `query_id`)"),
        ("Accept" = Option<String>, Header, description = "Result format, as for POST /v1/query"),
    ),
    responses(
        (status = 200, description = "The full result, streamed", headers(("x-query-id" = String, description = "The id of this run")),
            content(
                (QueryResult = "application/json"),
                (String = "application/x-ndjson"),
                (String = "text/csv"),
                (Binary = "application/vnd.apache.arrow.stream"),
                (Binary = "application/vnd.apache.parquet"),
            )),
        (status = 304, description = "Not Modified: the result is cached and its `ETag` was sent in `If-None-Match`"),
        (status = 400, description = "`sql_invalid`: the statement no longer plans (a table changed)", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`", body = ErrorBody),
        (status = 404, description = "`query_not_found`: no recent query by this key with that id, or `table_not_found`", body = ErrorBody),
        (status = 406, description = "`not_acceptable`", body = ErrorBody),
        (status = 409, description = "`query_cancelled`: this run was cancelled by DELETE /v1/queries/{id}", body = ErrorBody),
        (status = 413, description = "`result_too_large`: over the server's `limits.max_rows`", body = ErrorBody),
        (status = 422, description = "`data_error`", body = ErrorBody),
        (status = 501, description = "`unsupported`", body = ErrorBody),
        (status = 429, description = "`rate_limited` or `too_many_queries`, with `Retry-After`", body = ErrorBody),
        (status = 502, description = "`upstream_error`", body = ErrorBody),
        (status = 503, description = "`source_unavailable`, `shutting_down`", body = ErrorBody),
        (status = 504, description = "`query_timeout`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn result(
    req: HttpRequest,
    id: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    // Only the key that ran it, admins included: the result is that key's view of the data.
    let request = state
        .queries
        .get(&id)
        .filter(|e| e.key_id.as_deref() == principal.key_id())
        .and_then(|e| e.request())
        .ok_or_else(|| {
            ApiError::not_found(
                "query_not_found",
                format!("no recent query {id} by this key (the last 1,024 queries are kept)"),
            )
        })?;
    let query_id = crate::queries::new_query_id();
    let auditor = auditor(&state, &req, &principal, &query_id, Operation::Query);
    audited(&auditor, async {
        admit(&state, &principal, Operation::Query, &query_id)?;
        let format = Format::negotiate(req.headers())
            .map_err(|m| ApiError::not_acceptable(m).with_query(&query_id))?;
        let cap = RowCap::Refuse(state.limits.max_rows);
        let started = start(
            &state, &principal, &query_id, &auditor, &request, format, cap,
        )
        .await?;
        Ok(started.response(format, &query_id, req.headers()))
    })
    .await
}

/// What a statement does with rows past its cap.
#[derive(Debug, Clone, Copy)]
pub enum RowCap {
    /// More than this many is `413 result_too_large` (`/v1/query`).
    Refuse(u64),
    /// Plan for one more than this many (`LIMIT n + 1`, pushed down) and let that one row
    /// through, so the reader can tell the result went on (MCP's `truncated`).
    Peek(u64),
}

impl RowCap {
    /// How the cut shows in a cache key: a peeked result is not the whole one.
    fn cache_tag(self) -> String {
        match self {
            Self::Refuse(_) => String::new(),
            Self::Peek(n) => format!("peek:{n}"),
        }
    }
}

/// Whether an answer came from the result cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheAnswer {
    /// Served from the cache; the result's strong ETag in this format.
    Hit(String),
    /// The statement ran.
    Miss,
}

/// A statement that produced its first bytes.
pub struct Started {
    /// The encoded result, streamed.
    pub body: exec::Body,
    /// The source serving in place of one that is down, if any.
    pub fallback: Option<String>,
    /// The record the statement updates as it runs.
    pub entry: std::sync::Arc<QueryEntry>,
    /// The result's columns, as JSON bodies describe them.
    pub columns: Vec<sluice_schemas::api::Column>,
    /// Served from the result cache or run.
    pub cache: CacheAnswer,
}

impl Started {
    /// The `200` streaming the body; or, for a cached result whose ETag the client sent in
    /// `If-None-Match`, `304 Not Modified` without it.
    pub fn response(
        self,
        format: Format,
        query_id: &str,
        headers: &actix_web::http::header::HeaderMap,
    ) -> HttpResponse {
        use actix_web::http::header;
        let not_modified = match &self.cache {
            CacheAnswer::Hit(etag) => headers
                .get_all(header::IF_NONE_MATCH)
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag)),
            CacheAnswer::Miss => false,
        };
        let mut response = if not_modified {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        };
        response
            .insert_header((QUERY_ID_HEADER, query_id))
            .insert_header((header::CACHE_CONTROL, "private"));
        match &self.cache {
            CacheAnswer::Hit(etag) => {
                response
                    .insert_header((CACHE_HEADER, "hit"))
                    .insert_header((header::ETAG, etag.as_str()));
            }
            CacheAnswer::Miss => {
                response.insert_header((CACHE_HEADER, "miss"));
            }
        }
        if not_modified {
            // Nothing is sent: the record says so (0 rows, 0 bytes) before the body goes.
            self.entry.finish(QueryState::Finished, None);
            return response.finish();
        }
        response.content_type(format.content_type());
        if let Some(f) = &self.fallback {
            response.insert_header((FALLBACK_HEADER, f.as_str()));
        }
        response.streaming(self.body)
    }
}

/// Says whether a result came from the result cache (`hit`) or ran (`miss`).
pub const CACHE_HEADER: &str = "x-sluice-cache";

/// A cached result as a response body, encoded a batch at a time as the client reads (a
/// kept result can be megabytes, and several clients may read it at once); the query's
/// record is finished when the last piece went out, or cancelled if the client left.
struct HitBody {
    hit: std::sync::Arc<crate::cache::Cached>,
    encoder: Box<dyn crate::format::BatchEncoder>,
    /// The next batch to encode; at `batches.len()` the encoder's end; past it, done.
    next: usize,
    pending: std::collections::VecDeque<bytes::Bytes>,
    entry: std::sync::Arc<QueryEntry>,
    /// Alive until the entry finishes, which completes the audit record with what was sent.
    _auditor: std::sync::Arc<QueryAuditor>,
    sent: u64,
}

impl HitBody {
    /// The encoder's next pieces: a batch, its end, or `None` once both are out.
    fn encode_next(
        &mut self,
    ) -> Option<std::result::Result<Vec<bytes::Bytes>, datafusion::arrow::error::ArrowError>> {
        let at = self.next;
        self.next += 1;
        match self.hit.batches.get(at) {
            Some(batch) => Some(self.encoder.encode(batch)),
            None if at == self.hit.batches.len() => Some(self.encoder.finish().map(|b| vec![b])),
            None => None,
        }
    }
}

impl futures::Stream for HitBody {
    type Item = std::result::Result<bytes::Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        loop {
            if let Some(piece) = self.pending.pop_front() {
                if piece.is_empty() {
                    continue;
                }
                self.sent += piece.len() as u64;
                return std::task::Poll::Ready(Some(Ok(piece)));
            }
            match self.encode_next() {
                Some(Ok(pieces)) => self.pending.extend(pieces),
                Some(Err(e)) => {
                    let e = ApiError::internal(Some(&self.entry.id), &e);
                    self.entry.add_progress(0, self.sent);
                    self.entry
                        .finish(QueryState::Failed, Some((e.code, &e.message)));
                    // Cut without the final chunk: a partial result never passes for whole.
                    return std::task::Poll::Ready(Some(Err(std::io::Error::other(
                        "encoding a cached result failed",
                    ))));
                }
                None => {
                    if self.entry.state() == QueryState::Running {
                        let rows = self.hit.rows;
                        self.entry.add_progress(rows, self.sent);
                        self.entry.finish(QueryState::Finished, None);
                        metrics::counter!(crate::metrics::QUERIES_TOTAL, "outcome" => "ok")
                            .increment(1);
                        metrics::counter!(crate::metrics::ROWS_STREAMED_TOTAL).increment(rows);
                        metrics::counter!(crate::metrics::BYTES_STREAMED_TOTAL)
                            .increment(self.sent);
                    }
                    return std::task::Poll::Ready(None);
                }
            }
        }
    }
}

impl Drop for HitBody {
    fn drop(&mut self) {
        if self.entry.state() == QueryState::Running {
            self.entry.add_progress(0, self.sent);
            self.entry.finish(
                QueryState::Cancelled,
                Some(("query_cancelled", "the client closed the connection")),
            );
        }
    }
}

/// Answers from the cached result `hit`: the body in `format`, the record `entry` finished
/// as it goes out.
fn serve_hit(
    entry: std::sync::Arc<QueryEntry>,
    auditor: &std::sync::Arc<QueryAuditor>,
    format: Format,
    cap: RowCap,
    hit: std::sync::Arc<crate::cache::Cached>,
) -> Result<Started> {
    metrics::counter!(crate::metrics::CACHE_HITS_TOTAL).increment(1);
    entry.set_sources(hit.sources.clone());
    auditor.set_reads(&hit.tables, &hit.sources);
    let over = match cap {
        RowCap::Refuse(n) => (hit.rows > n).then_some(n),
        RowCap::Peek(_) => None,
    };
    // The head is made here, so a failure to start still gets its status code.
    let started = match over {
        Some(n) => Err(ApiError::result_too_large(n).with_query(&entry.id)),
        None => format
            .encoder(&hit.schema)
            .and_then(|mut encoder| encoder.start().map(|head| (encoder, head)))
            .map_err(|e| ApiError::internal(Some(&entry.id), &e)),
    };
    let (encoder, head) = match started {
        Ok(s) => s,
        Err(e) => {
            entry.finish(QueryState::Failed, Some((e.code, &e.message)));
            return Err(e);
        }
    };
    let etag = hit.etag(
        format
            .content_type()
            .rsplit('/')
            .next()
            .unwrap_or("octet-stream"),
    );
    let columns = crate::format::columns(&hit.schema);
    Ok(Started {
        body: Box::pin(HitBody {
            hit,
            encoder,
            next: 0,
            pending: std::collections::VecDeque::from([head]),
            entry: std::sync::Arc::clone(&entry),
            _auditor: std::sync::Arc::clone(auditor),
            sent: 0,
        }),
        fallback: None,
        entry,
        columns,
        cache: CacheAnswer::Hit(etag),
    })
}

/// Runs one statement for `principal`, from any door (`/v1/query`, a stored query's result,
/// MCP's `query` tool): admission is the caller's; this takes the key's and the server's
/// slots, plans, routes to replicas (failing over before the first byte) and starts the
/// producer. The statement and its parameters are kept on the query's record, so
/// `GET /v1/queries/{id}/result` can run it again.
///
/// # Errors
/// Every refusal before the first byte, with its status and code; recorded on the entry and
/// the audit record.
pub async fn start(
    state: &AppState,
    principal: &Principal,
    query_id: &str,
    auditor: &std::sync::Arc<QueryAuditor>,
    request: &QueryRequest,
    format: Format,
    cap: RowCap,
) -> Result<Started> {
    let query_id = query_id.to_owned();
    auditor.set_sql(&request.sql);
    let limits = &state.limits;
    let timeout = Duration::from_millis(
        request
            .timeout_ms
            .unwrap_or(limits.query_timeout_ms)
            .clamp(1, limits.query_timeout_ms),
    );
    let (plan_rows, max_rows) = match cap {
        RowCap::Refuse(n) => (n, n),
        RowCap::Peek(n) => (n, n.saturating_add(1)),
    };
    let deadline = Instant::now() + timeout;
    // The result cache, before any slot is taken: a hit costs no slot.
    let cache_key = state.cache.key(principal, request, &cap.cache_tag());
    let mut ticket = None;
    if let Some(key) = cache_key {
        match state.cache.lookup(key, &state.planner, deadline).await {
            crate::cache::Lookup::Hit(hit) => {
                let entry = state.queries.start(&query_id, principal.key_id());
                entry.attach_audit(auditor);
                entry.set_request(request);
                return serve_hit(entry, auditor, format, cap, hit);
            }
            crate::cache::Lookup::Miss(t) => {
                metrics::counter!(crate::metrics::CACHE_MISSES_TOTAL).increment(1);
                ticket = Some(t);
            }
        }
    }
    let key_permit = match principal {
        Principal::Key(k) => state
            .governance
            .limiter
            .start_query(&k.record)
            .map_err(|e| e.with_query(&query_id))?,
        Principal::Anonymous => None,
    };
    let permit = std::sync::Arc::clone(&state.slots)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::too_many_queries(limits.max_concurrent_queries).with_query(&query_id)
        })?;
    let planner = principal.planner(&state.planner);
    let entry = state.queries.start(&query_id, principal.key_id());
    entry.attach_audit(auditor);
    entry.set_request(request);
    let count_refusal = |e: &ApiError| {
        // Failures after planning are counted by the producer.
        metrics::counter!(crate::metrics::QUERIES_TOTAL, "outcome" => e.code).increment(1);
    };
    let key = principal.key_id().unwrap_or("anonymous");
    let mut route = Route {
        state,
        planner: &planner,
        entry: &entry,
        request,
        max_rows: plan_rows,
        deadline,
        timeout,
        key,
    };
    let (planned, fallback) = route.plan(&planner).await.inspect_err(count_refusal)?;
    auditor.set_reads(&planned.tables, &planned.sources);
    let refused = if planned.is_analyze() && !principal.is_admin() {
        // Its output is made while it runs, from the plan's internals (server paths included).
        Some(ApiError::permission_denied(
            "EXPLAIN ANALYZE needs an admin key; EXPLAIN (without ANALYZE) shows the plan",
        ))
    } else if planned.is_explain() {
        principal.require(Operation::Explain).err()
    } else {
        None
    };
    if let Some(e) = refused {
        let e = e.with_query(&query_id);
        entry.finish(QueryState::Failed, Some((e.code, &e.message)));
        return Err(e);
    }
    let (mut planned, mut acquired, mut fallback) = route
        .acquire(planned, fallback, &Avoid::new())
        .await
        .inspect_err(count_refusal)?;
    let (mut permit, mut key_permit) = (permit, key_permit);
    let mut avoid = Avoid::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let columns = crate::format::columns(&planned.output_schema());
        let cache = match cache_key {
            Some(key) if fallback.is_none() && state.cache.may_keep(&planned) => {
                Some(state.cache.collector(key, ticket.take(), &planned))
            }
            // Requests waiting for this result go on at once.
            _ => {
                ticket = None;
                None
            }
        };
        let job = QueryJob {
            planner: fallback
                .as_ref()
                .map_or_else(|| planner.clone(), |f| f.planner.clone()),
            planned,
            format,
            max_rows,
            deadline,
            timeout,
            entry: std::sync::Arc::clone(&entry),
            permit,
            key_permit,
            acquired,
            may_retry: attempt < MAX_ATTEMPTS,
            auditor: std::sync::Arc::clone(auditor),
            cache,
        };
        match exec::start(job, &state.runtime).await {
            Ok(body) => {
                return Ok(Started {
                    body,
                    fallback: fallback.map(|f| f.serving),
                    entry,
                    columns,
                    cache: CacheAnswer::Miss,
                });
            }
            Err(exec::StartError::Failed(e)) => return Err(e),
            Err(exec::StartError::Retry(retry)) => {
                let retry = *retry;
                for (source, replica) in &retry.failed {
                    metrics::counter!(sluice_actors::metrics::FAILOVERS_TOTAL, "source" => source.clone())
                        .increment(1);
                    tracing::info!(query_id = %query_id, source = %source, replica, attempt, "A replica failed before the first byte; retrying on another.");
                    avoid.entry(source.clone()).or_default().push(*replica);
                }
                permit = retry.permit;
                key_permit = retry.key_permit;
                let replanned = if Instant::now() >= deadline {
                    Err(retry.error)
                } else {
                    match route.plan(&planner).await {
                        Ok((p, f)) => route.acquire(p, f, &avoid).await,
                        Err(e) => Err(e),
                    }
                };
                match replanned {
                    Ok((p, a, f)) => {
                        (planned, acquired, fallback) = (p, a, f);
                    }
                    Err(e) => {
                        count_refusal(&e);
                        entry.finish(QueryState::Failed, Some((e.code, &e.message)));
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// Attempts of one statement across replicas: the first and up to two failovers.
const MAX_ATTEMPTS: u32 = 3;

/// Names the source that served a query in place of the one it asked for.
pub const FALLBACK_HEADER: &str = "x-sluice-fallback";

/// A query served by a fallback: the planner that reads the fallback's tables under the
/// asked-for name, and which source that is.
struct Fallback {
    planner: Planner,
    source: String,
    serving: String,
}

impl Fallback {
    fn new(planner: &Planner, source: String, serving: String) -> Self {
        Self {
            planner: planner.with_fallbacks(&[(source.clone(), serving.clone())]),
            source,
            serving,
        }
    }

    fn count(&self, query_id: &str) {
        metrics::counter!(sluice_actors::metrics::FALLBACKS_TOTAL, "source" => self.source.clone(), "fallback" => self.serving.clone())
            .increment(1);
        tracing::info!(query_id, source = %self.source, fallback = %self.serving, "Every replica is down; the fallback serves.");
    }

    /// The sources to acquire: the fallback in place of the source it stands in for.
    fn names(this: Option<&Self>, sources: &[String]) -> Vec<String> {
        sources
            .iter()
            .map(|s| match this {
                Some(f) if *s == f.source => f.serving.clone(),
                _ => s.clone(),
            })
            .collect()
    }
}

/// Everything a statement needs to take its sources' replicas and slots.
struct Route<'a> {
    state: &'a AppState,
    planner: &'a Planner,
    entry: &'a std::sync::Arc<QueryEntry>,
    request: &'a QueryRequest,
    max_rows: u64,
    deadline: Instant,
    timeout: Duration,
    key: &'a str,
}

impl Route<'_> {
    /// Plans the statement with `planner` (see [`plan`]).
    async fn plan(&self, planner: &Planner) -> Result<(PlannedQuery, Option<Fallback>)> {
        plan(
            self.state,
            planner,
            self.entry,
            self.request,
            Some(self.max_rows),
            self.deadline,
            self.timeout,
        )
        .await
    }

    /// Takes a slot and a replica on each source `planned` reads (never one in `avoid`);
    /// when every replica of a source with a fallback is down, plans again with the fallback
    /// standing in for it. A refusal is recorded on the entry.
    async fn acquire(
        &mut self,
        planned: PlannedQuery,
        fallback: Option<Fallback>,
        avoid: &Avoid,
    ) -> Result<(PlannedQuery, Acquired, Option<Fallback>)> {
        let id = self.entry.id.clone();
        let refused = |e: ApiError| {
            let e = e.with_query(&id);
            self.entry
                .finish(QueryState::Failed, Some((e.code, &e.message)));
            e
        };
        let router = &self.state.router;
        let deadline = Some(self.deadline.into_std());
        let names = Fallback::names(fallback.as_ref(), &planned.sources);
        match router.acquire(&names, self.key, deadline, avoid).await {
            Ok(a) => {
                if let Some(f) = &fallback {
                    f.count(&id);
                }
                Ok((planned, a, fallback))
            }
            Err(RouteError::Unavailable {
                source_name,
                fallback: Some(serving),
                ..
            }) if fallback.is_none() => {
                let f = Fallback::new(self.planner, source_name, serving);
                let (planned, _) = self.plan(&f.planner).await?;
                let names = Fallback::names(Some(&f), &planned.sources);
                let acquired = router
                    .acquire(&names, self.key, deadline, avoid)
                    .await
                    .map_err(|e| refused(ApiError::from_route(&e)))?;
                f.count(&id);
                Ok((planned, acquired, Some(f)))
            }
            Err(e) => Err(refused(ApiError::from_route(&e))),
        }
    }
}

/// The plan of a statement: logical and physical, the sources and tables it reads, and the
/// exact SQL each remote source runs. Nothing is executed.
#[utoipa::path(post, path = "/v1/explain", tag = "queries",
    request_body(content(
        (QueryRequest = "application/json"),
        (String = "application/sql", example = "SELECT count(*) FROM lineitem WHERE l_quantity > 45"),
        (String = "text/plain"),
    )),
    responses(
        (status = 200, description = "The plan", body = ExplainResponse, headers(("x-query-id" = String, description = "The id this explain ran under"))),
        (status = 400, description = "`bad_request`, `sql_invalid`, `read_only`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: the key may not explain", body = ErrorBody),
        (status = 404, description = "`table_not_found`", body = ErrorBody),
        (status = 409, description = "`query_cancelled`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = ErrorBody),
        (status = 413, description = "`request_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`data_error`: constant folding met bad data", body = ErrorBody),
        (status = 501, description = "`unsupported`", body = ErrorBody),
        (status = 503, description = "`source_unavailable`, `shutting_down`, `metadata_unavailable`", body = ErrorBody),
        (status = 504, description = "`query_timeout`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn explain(
    req: HttpRequest,
    QueryId(query_id): QueryId,
    principal: Principal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let auditor = auditor(&state, &req, &principal, &query_id, Operation::Explain);
    audited(
        &auditor,
        run_explain(&req, &query_id, &principal, payload, &state, &auditor),
    )
    .await
}

async fn run_explain(
    req: &HttpRequest,
    query_id: &str,
    principal: &Principal,
    payload: web::Payload,
    state: &AppState,
    auditor: &std::sync::Arc<QueryAuditor>,
) -> Result<HttpResponse> {
    admit(state, principal, Operation::Explain, query_id)?;
    let request = read_request(req, payload, state.limits.max_request_bytes, query_id).await?;
    let explained = explain_statement(state, principal, query_id, auditor, &request).await?;
    Ok(HttpResponse::Ok()
        .insert_header((QUERY_ID_HEADER, query_id))
        .json(explained))
}

/// The plan of `request` for `principal` (admission is the caller's): what runs locally, the
/// SQL each source receives, under the row cap the query would get.
///
/// # Errors
/// The statement's planning errors, recorded on its entry.
pub async fn explain_statement(
    state: &AppState,
    principal: &Principal,
    query_id: &str,
    auditor: &std::sync::Arc<QueryAuditor>,
    request: &QueryRequest,
) -> Result<ExplainResponse> {
    auditor.set_sql(&request.sql);
    let timeout = Duration::from_millis(state.limits.query_timeout_ms);
    // The same row cap as the query would get, so the plan and remote SQL shown are the
    // ones that run.
    let max_rows = request
        .max_rows
        .unwrap_or(state.limits.max_rows)
        .min(state.limits.max_rows);
    let planner = principal.planner(&state.planner);
    let entry = state.queries.start(query_id, principal.key_id());
    entry.attach_audit(auditor);
    let (planned, _) = plan(
        state,
        &planner,
        &entry,
        request,
        Some(max_rows),
        Instant::now() + timeout,
        timeout,
    )
    .await?;
    auditor.set_reads(&planned.tables, &planned.sources);
    entry.finish(QueryState::Finished, None);
    let (logical, mut physical) = planner.explain(&planned);
    if !principal.is_admin() {
        physical = planner.redact_locations(&physical);
    }
    let remote = planner
        .remote_statements(&planned)
        .into_iter()
        .map(|r| RemoteStatementBody {
            source: r.source,
            sql: r.sql,
            kept_local: r.kept_local,
        })
        .collect();
    Ok(ExplainResponse {
        query_id: query_id.to_owned(),
        sources: planned.sources,
        tables: planned.tables,
        logical_plan: logical,
        physical_plan: physical,
        remote,
    })
}

async fn read_request(
    req: &HttpRequest,
    payload: web::Payload,
    limit: u64,
    query_id: &str,
) -> Result<QueryRequest> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let bytes = body::read(payload, limit)
        .await
        .map_err(|e| e.with_query(query_id))?;
    body::parse(req, &bytes).map_err(|e| e.with_query(query_id))
}

/// Plans on the query runtime (planning lists files and reads footers), bounded by the
/// deadline and cancellable. A failure is recorded on `entry` before it is returned.
async fn plan(
    state: &AppState,
    planner: &Planner,
    entry: &QueryEntry,
    request: &QueryRequest,
    max_rows: Option<u64>,
    deadline: Instant,
    timeout: Duration,
) -> Result<(PlannedQuery, Option<Fallback>)> {
    plan_inner(state, planner, entry, request, max_rows, deadline, timeout)
        .await
        .inspect_err(|e| {
            let ended = if entry.cancel.is_cancelled() {
                QueryState::Cancelled
            } else {
                QueryState::Failed
            };
            entry.finish(ended, Some((e.code, &e.message)));
        })
}

async fn plan_inner(
    state: &AppState,
    planner: &Planner,
    entry: &QueryEntry,
    request: &QueryRequest,
    max_rows: Option<u64>,
    deadline: Instant,
    timeout: Duration,
) -> Result<(PlannedQuery, Option<Fallback>)> {
    let (name, reason) = match plan_once(
        state,
        planner,
        None,
        entry,
        request,
        max_rows,
        (deadline, timeout),
    )
    .await?
    {
        Ok(planned) => return Ok((planned, None)),
        Err(PlanError::SourceUnavailable { name, reason }) => (name, reason),
        Err(e) => return Err(ApiError::from_plan(e, &entry.id)),
    };
    // A source that is down (its tables never loaded, or every replica of an object store
    // is open) with a fallback: the fallback's tables stand in.
    let route = state.router.route(&name).filter(|r| r.all_down());
    let Some(serving) = route.as_ref().and_then(|r| r.fallback.clone()) else {
        let err = ApiError::from_plan(PlanError::SourceUnavailable { name, reason }, &entry.id);
        // Retry when a replica's cool-down ends.
        return Err(match route {
            Some(r) => err.with_retry_after(r.retry_after()),
            None => err,
        });
    };
    let fallback = Fallback::new(planner, name, serving);
    match plan_once(
        state,
        &fallback.planner,
        Some(&fallback.source),
        entry,
        request,
        max_rows,
        (deadline, timeout),
    )
    .await?
    {
        Ok(planned) => Ok((planned, Some(fallback))),
        Err(e) => Err(ApiError::from_plan(e, &entry.id)),
    }
}

/// One planning attempt: `Err` for what stops the request (timeout, cancel, panic), `Ok(Err)`
/// for the statement's own planning error. Object-store sources whose every replica is down
/// are refused before planning lists their files (`standing_in`: the source a fallback
/// serves, never refused); remote ones are left to the router's trickle.
async fn plan_once(
    state: &AppState,
    planner: &Planner,
    standing_in: Option<&str>,
    entry: &QueryEntry,
    request: &QueryRequest,
    max_rows: Option<u64>,
    (deadline, timeout): (Instant, Duration),
) -> Result<std::result::Result<PlannedQuery, PlanError>> {
    let id = entry.id.as_str();
    let router = std::sync::Arc::clone(&state.router);
    let skip = standing_in.map(str::to_owned);
    let gate: sluice_planner::SourceGate = std::sync::Arc::new(move |name: &str| {
        if skip.as_deref() == Some(name) {
            return None;
        }
        let route = router.route(name)?;
        let scan_only = route.replicas.iter().all(|r| r.executor.is_none());
        (scan_only && route.all_down()).then(|| {
            route
                .health()
                .last_error
                .unwrap_or_else(|| "every replica is down".to_owned())
        })
    });
    let planner = planner.clone();
    let sql = request.sql.clone();
    let params = request.params.clone().map(|p| match p {
        QueryParams::Positional(v) => Params::Positional(v),
        QueryParams::Named(m) => Params::Named(m),
    });
    let task = state.runtime.spawn(async move {
        planner
            .plan_gated(&sql, params.as_ref(), max_rows, Some(&gate))
            .await
    });
    let abort = task.abort_handle();
    let planned = tokio::select! {
        () = entry.cancel.cancelled() => {
            abort.abort();
            return Err(ApiError::cancelled().with_query(id));
        }
        r = tokio::time::timeout_at(deadline, task) => match r {
            Err(_) => {
                abort.abort();
                return Err(ApiError::timeout(timeout).with_query(id));
            }
            Ok(Err(join)) if join.is_panic() => {
                let detail = crate::exec::panic_message(join.into_panic().as_ref());
                return Err(ApiError::panicked(id, &detail));
            }
            Ok(Err(join)) => return Err(ApiError::internal(Some(id), &join)),
            Ok(Ok(planned)) => planned,
        },
    };
    if let Ok(p) = &planned {
        entry.set_sources(p.sources.clone());
    }
    Ok(planned)
}
