//! `GET`/`PUT /v1/admin/log`: the server log's level, read and changed while serving, and
//! `POST /v1/admin/reload`: the config file read again (admins).

use actix_web::{HttpResponse, web};
use sluice_schemas::api::{ErrorBody, LogLevel, ReloadReport};

use crate::error::Result;
use crate::governance::Principal;
use crate::query::QueryService;

/// The log filter in force on this server.
#[utoipa::path(get, path = "/v1/admin/log", tag = "operations",
    responses(
        (status = 200, description = "The filter in force", body = LogLevel),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin key", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get(principal: Principal, service: web::Data<QueryService>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(service.log_level(&principal)?))
}

/// Replaces this server's log filter (traces are not affected); it holds until the next
/// change, `SIGHUP` (which reads `[log] level` from the config file again) or a restart.
#[utoipa::path(put, path = "/v1/admin/log", tag = "operations",
    request_body = LogLevel,
    responses(
        (status = 200, description = "The filter now in force", body = LogLevel),
        (status = 400, description = "`bad_request`: not a level or filter; nothing changed", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin key", body = ErrorBody),
        (status = 413, description = "`request_too_large`: a body over 64 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn put(
    principal: Principal,
    body: web::Json<LogLevel>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(service.set_log_level(&principal, &body.level)?))
}

/// Reads the config file again, as `SIGHUP` does: its `[[sources]]` are applied all or nothing
/// (an invalid file changes nothing and the answer says why), and its `[log] level`; the
/// answer names the other sections that changed and apply only at the next start.
#[utoipa::path(post, path = "/v1/admin/reload", tag = "operations",
    responses(
        (status = 200, description = "Applied", body = ReloadReport),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin key", body = ErrorBody),
        (status = 409, description = "`no_config_file`: started without one (the embedded default)", body = ErrorBody),
        (status = 422, description = "`config_invalid`: the file does not load, with every problem; nothing changed", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn reload(
    principal: Principal,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(service.reload_config(&principal).await?))
}
