//! `/v1/policies`: row filters and column masks, for admins only.

use actix_web::{HttpResponse, web};
use sluice_schemas::api::{ErrorBody, Policy, PolicyInfo, PolicyList};

use crate::error::{ApiError, Result};
use crate::governance::Principal;
use crate::query::QueryService;

/// Every policy: the config's (`origin: "config"`) and the store's.
#[utoipa::path(get, path = "/v1/policies", tag = "policies",
    responses(
        (status = 200, description = "Every policy, by name", body = PolicyList),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(principal: Principal, service: web::Data<QueryService>) -> Result<HttpResponse> {
    let policies = service.list_policies(&principal)?;
    Ok(HttpResponse::Ok().json(PolicyList { policies }))
}

/// Adds a policy to the metadata store; every server applies it within `auth.key_sync_ms`
/// (this one from its next statement).
#[utoipa::path(post, path = "/v1/policies", tag = "policies",
    request_body = Policy,
    responses(
        (status = 201, description = "Stored", body = PolicyInfo),
        (status = 413, description = "`request_too_large`: a body over the limit", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = ErrorBody),
        (status = 400, description = "`bad_request`: a policy that cannot be used", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin", body = ErrorBody),
        (status = 409, description = "`policy_exists`, `policy_from_config`", body = ErrorBody),
        (status = 503, description = "`metadata_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create(
    principal: Principal,
    body: web::Json<Policy>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let stored = service
        .put_policy(&principal, body.into_inner(), false)
        .await?;
    Ok(HttpResponse::Created().json(stored))
}

/// Creates or replaces a stored policy; the body's `name` must be the path's.
#[utoipa::path(put, path = "/v1/policies/{name}", tag = "policies",
    params(("name" = String, Path, description = "Policy name")),
    request_body = Policy,
    responses(
        (status = 200, description = "Stored", body = PolicyInfo),
        (status = 413, description = "`request_too_large`: a body over the limit", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = ErrorBody),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin", body = ErrorBody),
        (status = 409, description = "`policy_from_config`", body = ErrorBody),
        (status = 503, description = "`metadata_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn replace(
    principal: Principal,
    name: web::Path<String>,
    body: web::Json<Policy>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let policy = body.into_inner();
    if policy.name != *name {
        return Err(ApiError::bad_request(format!(
            "the body names policy {:?}, the path {:?}",
            policy.name, *name
        )));
    }
    let stored = service.put_policy(&principal, policy, true).await?;
    Ok(HttpResponse::Ok().json(stored))
}

/// Deletes a stored policy.
#[utoipa::path(delete, path = "/v1/policies/{name}", tag = "policies",
    params(("name" = String, Path, description = "Policy name")),
    responses(
        (status = 200, description = "Deleted: `{\"deleted\": name}`"),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`policy_from_config`", body = ErrorBody),
        (status = 503, description = "`metadata_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn delete(
    principal: Principal,
    name: web::Path<String>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    service.delete_policy(&principal, &name).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "deleted": *name })))
}
