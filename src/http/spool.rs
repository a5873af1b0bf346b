//! `GET` and `DELETE /v1/queries/{id}/spool`, `GET /v1/queries/{id}/spool/{index}`: a spooled
//! result's manifest, its acknowledgement, and its segments through the server.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use sluice_schemas::api::{ErrorBody, SpoolManifest};

use super::query::{base_url, spooled};
use crate::error::Result;
use crate::governance::Principal;
use crate::query::QueryService;

/// The manifest of a spooled result, with fresh URLs: segments are listed as they are
/// written, `complete` says when the last one is. Only for the key that ran the query.
#[utoipa::path(get, path = "/v1/queries/{id}/spool", tag = "queries",
    params(("id" = String, Path, description = "Query id (the manifest's `query_id`)")),
    responses(
        (status = 200, description = "The manifest", body = SpoolManifest, content_type = "application/vnd.sluice.spool+json"),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`query_not_found`: not this key's, acknowledged, or expired", body = ErrorBody),
        (status = 409, description = "`query_cancelled`, or whatever code the query failed with after its manifest was answered (its segments are deleted)", body = ErrorBody),
        (status = 503, description = "`spool_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn manifest(
    req: HttpRequest,
    principal: Principal,
    id: web::Path<String>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let manifest = service
        .spool_manifest(&principal, &id, &base_url(&req))
        .await?;
    Ok(spooled(&manifest))
}

/// Acknowledges a spooled result: a running one stops (its query is cancelled), and every
/// segment is deleted before the answer.
#[utoipa::path(delete, path = "/v1/queries/{id}/spool", tag = "queries",
    params(("id" = String, Path, description = "Query id")),
    responses(
        (status = 204, description = "Acknowledged: the segments are gone"),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`query_not_found`", body = ErrorBody),
        (status = 503, description = "`spool_unavailable`: the store refused the deletes (the sweeper removes them at expiry)", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn acknowledge(
    principal: Principal,
    id: web::Path<String>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    service.spool_acknowledge(&principal, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// One segment of a spooled result, read through the server (`retrieval = "proxy"`, or a
/// client without access to the bucket). Only for the key that ran the query.
#[utoipa::path(get, path = "/v1/queries/{id}/spool/{index}", tag = "queries",
    params(
        ("id" = String, Path, description = "Query id"),
        ("index" = u64, Path, description = "The segment's `index`"),
    ),
    responses(
        (status = 200, description = "The segment's bytes (the manifest's `format`)", content_type = "application/octet-stream"),
        (status = 400, description = "`bad_request`: an index that is not a count", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`query_not_found`: not this key's, no such segment listed, acknowledged, or expired", body = ErrorBody),
        (status = 503, description = "`spool_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn segment(
    principal: Principal,
    path: web::Path<(String, usize)>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let (id, index) = path.into_inner();
    let (size, body) = service.spool_segment(&principal, &id, index).await?;
    let format = service
        .spool()
        .map_or("application/octet-stream", |s| s.format().content_type());
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .content_type(format)
        .no_chunking(size)
        .streaming(body))
}
