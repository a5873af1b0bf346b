//! `GET /v1/sources` and `POST /v1/sources/{name}/refresh`.

use actix_web::{HttpResponse, web};
use sluice_schemas::api::{ErrorBody, RefreshResponse, SourceList};

use crate::error::Result;
use crate::governance::Principal;
use crate::query::QueryService;

/// Every source with its health, and each replica with its routing figures: state, circuit,
/// score, latency, in-flight statements, queue.
#[utoipa::path(get, path = "/v1/sources", tag = "sources",
    responses(
        (status = 200, description = "Every source with its health state and evidence (a reader key: only its granted sources, without locations or error texts)", body = SourceList),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: the key may not list", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(principal: Principal, service: web::Data<QueryService>) -> Result<HttpResponse> {
    let sources = service.sources(&principal)?;
    Ok(HttpResponse::Ok().json(SourceList { sources }))
}

/// Reloads a source's tables now (admin keys), so new files, tables and schema changes show
/// without waiting for `refresh_interval_ms`.
#[utoipa::path(post, path = "/v1/sources/{name}/refresh", tag = "sources",
    params(("name" = String, Path, description = "Source (catalog) name")),
    responses(
        (status = 200, description = "Reloaded", body = RefreshResponse),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin key", body = ErrorBody),
        (status = 404, description = "`source_not_found`", body = ErrorBody),
        (status = 502, description = "`upstream_error`: the reload failed; the previous tables stay", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn refresh(
    principal: Principal,
    name: web::Path<String>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(service.refresh(&principal, &name).await?))
}
