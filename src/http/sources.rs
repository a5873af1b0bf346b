//! `GET`/`POST /v1/sources`, `PUT`/`DELETE /v1/sources/{name}` and
//! `POST /v1/sources/{name}/refresh`.

use actix_web::{HttpResponse, web};
use sluice_schemas::api::{ErrorBody, RefreshResponse, SourceChange, SourceList};

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
    Ok(HttpResponse::Ok().json(SourceList {
        sources,
        registry_version: service.registry_version(&principal),
    }))
}

/// Adds a source to the registry (admins): the fields of one `[[sources]]` entry, as JSON,
/// checked as `sluice check` checks the file. Secrets are named, never written: `${VAR}`
/// references (expanded by each server from its own environment), `password_env`,
/// `private_key_path`. This server applies it before answering (the answer shows it after its
/// first load); every server sharing the metadata store applies it within
/// `metadata.registry_sync_ms`.
#[utoipa::path(post, path = "/v1/sources", tag = "sources",
    request_body(content = Object, description = "One source, with the fields of a `[[sources]]` entry (`name`, `kind`, ...)", content_type = "application/json"),
    responses(
        (status = 201, description = "Stored and applied here", body = SourceChange),
        (status = 400, description = "`bad_request`: every problem with the entry (as `sluice check` reports them), or a secret written into it", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin", body = ErrorBody),
        (status = 409, description = "`source_exists`; `source_from_config`: the config file defines this name", body = ErrorBody),
        (status = 413, description = "`request_too_large`: a body over the limit", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = ErrorBody),
        (status = 503, description = "`metadata_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create(
    principal: Principal,
    body: web::Json<serde_json::Value>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let change = service
        .put_source(&principal, None, body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(change))
}

/// Replaces a registry source (admins): add or remove replicas, change limits, pushdown,
/// fallback, cache. The body's `name` must be the path's. Statements running on a replica
/// that is gone finish there; the source's tables are swapped when its new catalog has loaded.
#[utoipa::path(put, path = "/v1/sources/{name}", tag = "sources",
    params(("name" = String, Path, description = "Source (catalog) name")),
    request_body(content = Object, description = "The whole new entry, as for `POST /v1/sources`", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored and applied here", body = SourceChange),
        (status = 400, description = "`bad_request`: every problem with the entry, or a name other than the path's", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin", body = ErrorBody),
        (status = 404, description = "`source_not_found`: no registry source of this name", body = ErrorBody),
        (status = 409, description = "`source_from_config`: the config file defines it; change it there", body = ErrorBody),
        (status = 413, description = "`request_too_large`: a body over the limit", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = ErrorBody),
        (status = 503, description = "`metadata_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn replace(
    principal: Principal,
    name: web::Path<String>,
    body: web::Json<serde_json::Value>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let change = service
        .put_source(&principal, Some(&name), body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(change))
}

/// Deletes a registry source (admins): queries reading it are cancelled, new ones get
/// `source_not_found`, its actors stop and its pools close.
#[utoipa::path(delete, path = "/v1/sources/{name}", tag = "sources",
    params(("name" = String, Path, description = "Source (catalog) name")),
    responses(
        (status = 200, description = "Deleted", body = SourceChange),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin", body = ErrorBody),
        (status = 404, description = "`source_not_found`: no registry source of this name", body = ErrorBody),
        (status = 409, description = "`source_from_config`: the config file defines it", body = ErrorBody),
        (status = 503, description = "`metadata_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn delete(
    principal: Principal,
    name: web::Path<String>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(service.delete_source(&principal, &name).await?))
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
