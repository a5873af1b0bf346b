//! OAuth 2.0 Protected Resource Metadata (RFC 9728): where an OAuth client (an MCP client
//! first of all) learns which authorization servers issue tokens for this server, for which
//! resource and with which scopes. Open, like `/health`; `404` without `[auth.oidc]`.

use actix_web::{HttpResponse, ResponseError, web};
use sluice_schemas::api::{ErrorBody, ProtectedResource};

use crate::error::{ApiError, Code};
use crate::query::QueryService;

/// The well-known path, and its form for the MCP endpoint (`/mcp`).
pub const PATHS: [&str; 2] = [
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
];

/// Protected Resource Metadata (RFC 9728): the authorization servers that issue tokens for
/// this server, its resource identifier and the scopes a token needs. Open.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource", tag = "operations",
    responses(
        (status = 200, description = "The metadata", body = ProtectedResource),
        (status = 404, description = "No `[auth.oidc]`: this server takes API keys only", body = ErrorBody),
    ))]
pub async fn protected_resource(service: web::Data<QueryService>) -> HttpResponse {
    metadata(&service)
}

/// The same metadata at the path form for the MCP endpoint.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource/mcp", tag = "operations",
    responses(
        (status = 200, description = "The metadata", body = ProtectedResource),
        (status = 404, description = "No `[auth.oidc]`: this server takes API keys only", body = ErrorBody),
    ))]
pub async fn protected_resource_mcp(service: web::Data<QueryService>) -> HttpResponse {
    metadata(&service)
}

fn metadata(service: &QueryService) -> HttpResponse {
    match service.protected_resource() {
        Some(metadata) => HttpResponse::Ok()
            // Clients may keep it a while; it changes only with the config.
            .insert_header(("Cache-Control", "max-age=300"))
            .json(metadata),
        None => ApiError::not_found(
            Code::NotFound,
            "this server accepts no OAuth tokens (no [auth.oidc]); use an API key",
        )
        .error_response(),
    }
}
