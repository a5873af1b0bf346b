//! `GET /v1/me` and `GET /v1/stats`: who the caller is, and what the server did lately (the
//! console's sign-in and its charts).

use actix_web::{HttpResponse, web};
use sluice_schemas::api::{ErrorBody, ServerStats, WhoAmI};

use crate::error::Result;
use crate::governance::Principal;
use crate::query::QueryService;

/// Who the server takes the caller for, and what it may do.
#[utoipa::path(get, path = "/v1/me", tag = "operations",
    responses(
        (status = 200, description = "The caller", body = WhoAmI),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn me(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(principal.whoami())
}

/// `GET /v1/stats`'s query.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Seconds back from now (default 300, at most 600).
    #[param(minimum = 1, maximum = 600)]
    window_s: Option<u64>,
}

/// The queries of the last minutes, second by second: counts, errors by code, latency
/// quantiles, cache hits and bytes per source (admins only).
#[utoipa::path(get, path = "/v1/stats", tag = "operations",
    params(StatsQuery),
    responses(
        (status = 200, description = "One sample per second with any query ending in it", body = ServerStats),
        (status = 400, description = "`bad_request`: a malformed query string or a window outside 1 to 600", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: not an admin", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn stats(
    principal: Principal,
    query: web::Query<StatsQuery>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let stats: ServerStats = service.stats(&principal, query.window_s.unwrap_or(300))?;
    Ok(HttpResponse::Ok().json(stats))
}
