//! `/v1/keys`: key administration, for admin keys only.

use actix_web::{HttpResponse, web};
use secrecy::ExposeSecret;
use sluice_schemas::api::{
    CreateKeyRequest, CreatedKey, ErrorBody, KeyList, KeyRole, KeyUsage, Operation,
};
use tracing::{error, info};

use crate::auth::Principal;
use crate::error::{ApiError, Result};
use crate::governance::keys::{NewKey, parse_time};
use crate::governance::store::StoreError;
use crate::state::AppState;

/// A store failure as clients see it: never its text.
fn store_error(e: &StoreError) -> ApiError {
    error!(error = %e, "Key administration failed in the metadata store.");
    ApiError::metadata_unavailable()
}

/// The request's grants, limits and expiry, checked.
pub fn new_key(body: CreateKeyRequest) -> std::result::Result<NewKey, String> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err("name must be 1 to 200 characters".to_owned());
    }
    let in_range = |v: u32| (1..=1_000_000_000).contains(&v);
    if body
        .rate_limit
        .is_some_and(|r| !in_range(r.per_second) || r.burst.is_some_and(|b| !in_range(b)))
    {
        return Err("rate_limit.per_second and burst must be 1 to 1000000000".to_owned());
    }
    if body
        .max_concurrent
        .is_some_and(|n| !(1..=1_000_000).contains(&n))
    {
        return Err("max_concurrent must be 1 to 1000000".to_owned());
    }
    for g in &body.grants {
        if [&g.source, &g.schema, &g.table]
            .iter()
            .any(|p| p.is_empty() || p.len() > 200)
        {
            return Err("grant patterns must be 1 to 200 characters".to_owned());
        }
    }
    let expires_at = body.expires_at.as_deref().map(parse_time).transpose()?;
    Ok(NewKey {
        name: name.to_owned(),
        role: body.role.unwrap_or(KeyRole::Reader),
        grants: body.grants,
        operations: body.operations,
        rate_limit: body.rate_limit,
        max_concurrent: body.max_concurrent,
        expires_at,
    })
}

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
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    principal.require(Operation::Admin)?;
    let new = new_key(body.into_inner()).map_err(ApiError::bad_request)?;
    let (record, secret) = state
        .governance
        .create_key(new)
        .await
        .map_err(|e| store_error(&e))?;
    info!(key_id = %record.id, by = principal.key_id().unwrap_or("anonymous"), role = ?record.role, "API key created.");
    Ok(HttpResponse::Created().json(CreatedKey {
        info: record.info(),
        key: secret.expose_secret().to_owned(),
    }))
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
pub async fn list(principal: Principal, state: web::Data<AppState>) -> Result<HttpResponse> {
    principal.require(Operation::Admin)?;
    let keys = state
        .governance
        .list_keys()
        .await
        .map_err(|e| store_error(&e))?;
    Ok(HttpResponse::Ok().json(KeyList {
        keys: keys.iter().map(|k| k.info()).collect(),
    }))
}

fn no_such_key(id: &str) -> ApiError {
    ApiError::not_found("not_found", format!("no API key {id}"))
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
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    principal.require(Operation::Admin)?;
    let record = state
        .governance
        .revoke(&id)
        .await
        .map_err(|e| store_error(&e))?
        .ok_or_else(|| no_such_key(&id))?;
    info!(key_id = %record.id, by = principal.key_id().unwrap_or("anonymous"), "API key revoked.");
    Ok(HttpResponse::Ok().json(record.info()))
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
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    principal.require(Operation::Admin)?;
    let (record, secret) = state
        .governance
        .rotate(&id)
        .await
        .map_err(|e| store_error(&e))?
        .ok_or_else(|| no_such_key(&id))?;
    info!(key_id = %record.id, by = principal.key_id().unwrap_or("anonymous"), "API key rotated.");
    Ok(HttpResponse::Ok().json(CreatedKey {
        info: record.info(),
        key: secret.expose_secret().to_owned(),
    }))
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
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    principal.require(Operation::Admin)?;
    let gov = &state.governance;
    // One indexed lookup, not a listing.
    if gov
        .store_key(id.to_string())
        .await
        .map_err(|e| store_error(&e))?
        .is_none()
    {
        return Err(no_such_key(&id));
    }
    let days = gov.usage(&id).await.map_err(|e| store_error(&e))?;
    Ok(HttpResponse::Ok().json(KeyUsage {
        id: id.into_inner(),
        days,
    }))
}
