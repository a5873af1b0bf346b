//! OAuth 2.0 Protected Resource Metadata (RFC 9728): where an OAuth client (an MCP client
//! first of all) learns which authorization servers issue tokens for this server, for which
//! resource and with which scopes. Open, like `/health`; `404` without `[auth.oidc]`.

use actix_web::{HttpResponse, ResponseError, web};

use crate::error::{ApiError, Code};
use crate::query::QueryService;

/// The well-known path, and its form for the MCP endpoint (`/mcp`).
pub const PATHS: [&str; 2] = [
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
];

/// `GET /.well-known/oauth-protected-resource[/mcp]`.
pub async fn protected_resource(service: web::Data<QueryService>) -> HttpResponse {
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
