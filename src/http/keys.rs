//! `/v1/keys`: key administration, for admin keys only.

use actix_web::{HttpResponse, web};
use sluice_schemas::api::{CreateKeyRequest, CreatedKey, ErrorBody, KeyList, KeyUsage};

use crate::error::Result;
use crate::governance::Principal;
use crate::query::QueryService;

/// Creates a key; its secret is in this answer only.
#[utoipa::path(post, path = "/v1/keys", tag = "keys",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "The key, with its secret shown this once", body = CreatedKey),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin key", body = ErrorBody),
        (status = 413, description = "`request_too_large`: a body over 64 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = ErrorBody),
        (status = 503, description = "`metadata_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create(
    principal: Principal,
    body: web::Json<CreateKeyRequest>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let created = service.create_key(&principal, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(created))
}

/// Every key, without secrets.
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    responses(
        (status = 200, description = "Every key, newest first", body = KeyList),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin key", body = ErrorBody),
        (status = 503, description = "`metadata_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(principal: Principal, service: web::Data<QueryService>) -> Result<HttpResponse> {
    let keys = service.list_keys(&principal).await?;
    Ok(HttpResponse::Ok().json(KeyList { keys }))
}

/// Revokes a key: every server sharing the store refuses it within `auth.key_sync_ms`.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 200, description = "Revoked (again, if it already was)", body = sluice_schemas::api::KeyInfo),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin key", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`metadata_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn revoke(
    principal: Principal,
    id: web::Path<String>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(service.revoke_key(&principal, &id).await?))
}

/// Gives a key a new secret; the old one keeps working for `auth.rotation_grace_ms`.
#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 200, description = "The new secret, shown this once", body = CreatedKey),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin key", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`metadata_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn rotate(
    principal: Principal,
    id: web::Path<String>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let rotated: CreatedKey = service.rotate_key(&principal, &id).await?;
    Ok(HttpResponse::Ok().json(rotated))
}

/// A key's queries, rows, bytes and errors per day.
#[utoipa::path(get, path = "/v1/keys/{id}/usage", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 200, description = "Usage per day (UTC)", body = KeyUsage),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin key", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`metadata_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn usage(
    principal: Principal,
    id: web::Path<String>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let usage: KeyUsage = service.key_usage(&principal, &id).await?;
    Ok(HttpResponse::Ok().json(usage))
}
