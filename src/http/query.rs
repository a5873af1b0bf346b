//! `POST /v1/query`, `POST /v1/explain` and `GET /v1/queries/{id}/result`.

use std::sync::Arc;

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;
use sluice_schemas::api::{
    ErrorBody, ExplainResponse, Operation, QueryRequest, QueryResult, SpoolManifest,
};

use super::QueryId;
use super::body::{self, Binary};
use crate::error::{ApiError, Result};
use crate::format::{BatchEncoder, Format, SpoolPreference};
use crate::governance::Principal;
use crate::headers;
use crate::query::{CacheAnswer, MakeEncoder, QueryService, RowCap, Started, StreamedOrSpooled};
use crate::web::{client, discard_body, read_body};

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
        ("Accept" = Option<String>, Header, description = "Result format: application/json (default), application/x-ndjson, text/csv, application/vnd.apache.arrow.stream, application/vnd.apache.parquet; application/vnd.sluice.spool+json for a spooled manifest (below a streamed format: the manifest only past `[spool] threshold_bytes`)"),
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
                (SpoolManifest = "application/vnd.sluice.spool+json"),
            )),
        (status = 304, description = "Not Modified: the result is cached and its `ETag` was sent in `If-None-Match`"),
        (status = 400, description = "`bad_request`, `sql_invalid`, `read_only`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`table_not_found`", body = ErrorBody),
        (status = 406, description = "`not_acceptable`: no format serves the Accept, or a spooled answer without `[spool]`", body = ErrorBody),
        (status = 409, description = "`query_cancelled`: cancelled by DELETE /v1/queries/{id}", body = ErrorBody),
        (status = 413, description = "`result_too_large` (over max_rows), `request_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`data_error`: the data made the statement fail", body = ErrorBody),
        (status = 403, description = "`permission_denied`: the key may not run queries (or EXPLAIN)", body = ErrorBody),
        (status = 429, description = "`rate_limited` or `too_many_queries`, with `Retry-After`", body = ErrorBody),
        (status = 501, description = "`unsupported`", body = ErrorBody),
        (status = 502, description = "`upstream_error`", body = ErrorBody),
        (status = 503, description = "`source_unavailable`, `memory_exhausted` (the server's memory pool), `shutting_down`, `metadata_unavailable`, `spool_unavailable`", body = ErrorBody),
        (status = 504, description = "`query_timeout`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn query(
    req: HttpRequest,
    QueryId(query_id): QueryId,
    principal: Principal,
    mut payload: web::Payload,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let call = service.call(&principal, &client(&req), query_id, Operation::Query);
    let answer = call
        .record(async {
            // Refused before the body is parsed: a key that may not query has its upload
            // dropped unread (drained so the refusal reaches an HTTP/2 client).
            let accept = match service
                .admit(&call, Operation::Query)
                .and_then(|()| accept(&req))
            {
                Ok(a) => a,
                Err(e) => {
                    discard_body(&mut payload, service.limits().max_request_bytes).await;
                    return Err(e);
                }
            };
            let spool = Format::spool_preference(accept, crate::spool::MEDIA_TYPE);
            // Read before an `Accept` no format serves is refused: `"spool": true` answers a
            // manifest whatever `Accept` says.
            let negotiated = Format::negotiate(accept).map_err(ApiError::not_acceptable);
            let request = read_request(&req, payload, &service).await?;
            // Only spooled answers name URLs (reading the forwarding headers is not free).
            let base = || base_url(&req);
            if request.spool || spool == SpoolPreference::Always {
                // Rare paths are boxed: the common one's future stays small to move.
                let manifest = Box::pin(service.run_spooled(&call, &request, &base())).await?;
                return Ok(Answer::Spooled(Box::new(manifest)));
            }
            let format = negotiated?;
            if spool == SpoolPreference::AboveThreshold && service.spool().is_some() {
                return match Box::pin(service.run_streamed_or_spooled(
                    &call,
                    &request,
                    &base(),
                    encoder(format),
                ))
                .await?
                {
                    StreamedOrSpooled::Streamed(started) => Ok(Answer::Streamed(format, started)),
                    StreamedOrSpooled::Spooled(manifest) => Ok(Answer::Spooled(manifest)),
                };
            }
            let max_rows = service.limits().max_rows;
            let cap = RowCap::Refuse(request.max_rows.unwrap_or(max_rows).min(max_rows));
            let started = service.run(&call, &request, cap, encoder(format)).await?;
            Ok(Answer::Streamed(format, started))
        })
        .await?;
    Ok(match answer {
        Answer::Streamed(format, started) => respond(started, format, req.headers()),
        Answer::Spooled(manifest) => spooled(&manifest),
    })
}

/// What `POST /v1/query` answers.
enum Answer {
    Streamed(Format, Started<Bytes>),
    Spooled(Box<SpoolManifest>),
}

/// A spooled result's manifest.
pub(super) fn spooled(manifest: &SpoolManifest) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((headers::QUERY_ID, manifest.query_id.as_str()))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .content_type(crate::spool::MEDIA_TYPE)
        .json(manifest)
}

/// The server as the client reached it, for URLs in answers.
pub(super) fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// The `Accept` header's text.
fn accept(req: &HttpRequest) -> Result<Option<&str>> {
    req.headers()
        .get(header::ACCEPT)
        .map(|v| v.to_str())
        .transpose()
        .map_err(|_| ApiError::not_acceptable("Accept is not valid text"))
}

/// The format `Accept` asks for.
fn negotiate(req: &HttpRequest) -> Result<Format> {
    Format::negotiate(accept(req)?).map_err(ApiError::not_acceptable)
}

/// Encoders of `format`, made on the query runtime for each result.
fn encoder(format: Format) -> MakeEncoder<Box<dyn BatchEncoder>> {
    Arc::new(move |schema: &SchemaRef| format.encoder(schema))
}

async fn read_request(
    req: &HttpRequest,
    payload: web::Payload,
    service: &QueryService,
) -> Result<QueryRequest> {
    let bytes = read_body(payload, service.limits().max_request_bytes).await?;
    body::parse(req, &bytes)
}

/// The `200` streaming the result; or, for a cached result whose `ETag` the client sent in
/// `If-None-Match`, `304 Not Modified` without it. A result cut after its first bytes ends
/// the body without its terminating chunk, so no client takes it for a whole one.
fn respond(started: Started<Bytes>, format: Format, request: &HeaderMap) -> HttpResponse {
    let etag = match &started.cache {
        CacheAnswer::Hit { version } => {
            let subtype = format
                .content_type()
                .rsplit('/')
                .next()
                .unwrap_or("octet-stream");
            Some(format!("\"{version}-{subtype}\""))
        }
        CacheAnswer::Miss => None,
    };
    let not_modified = etag.as_ref().is_some_and(|etag| {
        request
            .get_all(header::IF_NONE_MATCH)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
    });
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((headers::QUERY_ID, started.entry.id.as_str()))
        .insert_header((header::CACHE_CONTROL, "private"));
    match &etag {
        Some(etag) => {
            response
                .insert_header((headers::CACHE, "hit"))
                .insert_header((header::ETAG, etag.as_str()));
        }
        None => {
            response.insert_header((headers::CACHE, "miss"));
        }
    }
    if not_modified {
        started.unchanged();
        return response.finish();
    }
    response.content_type(format.content_type());
    if let Some(f) = &started.fallback {
        response.insert_header((headers::FALLBACK, f.as_str()));
    }
    response.streaming(
        started
            .stream
            .map(|piece| piece.map_err(|_| std::io::Error::other("the result was cut"))),
    )
}

/// The complete result of a recent query, for the key that ran it: its statement and
/// parameters run again (a new query, under a new id), capped only by the server's
/// `limits.max_rows`, streamed in the format `Accept` asks for. MCP's `query` tool links here
/// when it had to truncate.
#[utoipa::path(get, path = "/v1/queries/{id}/result", tag = "queries",
    params(
        ("id" = String, Path, description = "Query id (`X-Query-Id`, or MCP's `query_id`)"),
        ("Accept" = Option<String>, Header, description = "Result format, as for POST /v1/query; application/vnd.sluice.spool+json spools it"),
    ),
    responses(
        (status = 200, description = "The full result, streamed", headers(("x-query-id" = String, description = "The id of this run")),
            content(
                (QueryResult = "application/json"),
                (String = "application/x-ndjson"),
                (String = "text/csv"),
                (Binary = "application/vnd.apache.arrow.stream"),
                (Binary = "application/vnd.apache.parquet"),
                (SpoolManifest = "application/vnd.sluice.spool+json"),
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
        (status = 503, description = "`source_unavailable`, `memory_exhausted`, `shutting_down`, `metadata_unavailable`, `spool_unavailable`", body = ErrorBody),
        (status = 504, description = "`query_timeout`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn result(
    req: HttpRequest,
    id: web::Path<String>,
    principal: Principal,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    if Format::spool_preference(accept(&req)?, crate::spool::MEDIA_TYPE) == SpoolPreference::Always
    {
        let manifest = service
            .replay_spooled(&principal, &client(&req), &id, &base_url(&req))
            .await?;
        return Ok(spooled(&manifest));
    }
    let format = negotiate(&req)?;
    let started = service
        .replay(&principal, &client(&req), &id, encoder(format))
        .await?;
    Ok(respond(started, format, req.headers()))
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
        (status = 503, description = "`source_unavailable`, `memory_exhausted`, `shutting_down`, `metadata_unavailable`", body = ErrorBody),
        (status = 504, description = "`query_timeout`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn explain(
    req: HttpRequest,
    QueryId(query_id): QueryId,
    principal: Principal,
    mut payload: web::Payload,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let call = service.call(&principal, &client(&req), query_id, Operation::Explain);
    let explained = call
        .record(async {
            if let Err(e) = service.admit(&call, Operation::Explain) {
                discard_body(&mut payload, service.limits().max_request_bytes).await;
                return Err(e);
            }
            let request = read_request(&req, payload, &service).await?;
            service.explain(&call, &request).await
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((headers::QUERY_ID, call.query_id.as_str()))
        .json(explained))
}
