//! `GET /v1/queries`, `GET /v1/queries/{id}` and `DELETE /v1/queries/{id}`.

use actix_web::{HttpResponse, web};
use sluice_schemas::api::{ErrorBody, QueryList, QueryState, QueryStatus};

use crate::auth::Principal;
use crate::error::{ApiError, Result};
use crate::queries::QueryEntry;
use crate::state::AppState;

/// Finds a query the caller may see: its own, or any for an admin.
fn visible(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<std::sync::Arc<QueryEntry>> {
    state
        .queries
        .get(id)
        .filter(|e| principal.is_admin() || e.key_id.as_deref() == principal.key_id())
        .ok_or_else(|| ApiError::not_found("query_not_found", format!("no recent query {id}")))
}

/// Recent queries the caller may see, newest first.
#[utoipa::path(get, path = "/v1/queries", tag = "queries",
    params(ListFilter),
    responses(
        (status = 200, description = "Recent queries, newest first", body = QueryList),
        (status = 400, description = "`bad_request`: a malformed query string", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(
    principal: Principal,
    filter: web::Query<ListFilter>,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let max = crate::queries::RECENT_QUERIES as u64;
    let limit = filter.limit.unwrap_or(50);
    if limit > max {
        return Err(ApiError::bad_request(format!(
            "limit must be at most {max}, the queries kept"
        )));
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let queries = state
        .queries
        .list(limit, |e| {
            (principal.is_admin() || e.key_id.as_deref() == principal.key_id())
                && filter.state.is_none_or(|s| e.state() == s)
        })
        .iter()
        .map(|e| e.status())
        .collect();
    Ok(HttpResponse::Ok().json(QueryList { queries }))
}

/// Query string of [`list`].
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListFilter {
    /// Only queries in this state.
    state: Option<QueryState>,
    /// At most this many (default 50, at most 1,024).
    #[param(minimum = 0, maximum = 1024)]
    limit: Option<u64>,
}

/// Status of a recent query (the last 1,024 are kept).
#[utoipa::path(get, path = "/v1/queries/{id}", tag = "queries",
    params(("id" = String, Path, description = "Query id (`X-Query-Id`)")),
    responses(
        (status = 200, description = "State, rows, bytes, elapsed, sources, error", body = QueryStatus),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`query_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get(
    principal: Principal,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let entry = visible(&state, &principal, &id)?;
    Ok(HttpResponse::Ok().json(entry.status()))
}

/// Cancels a running query, its remote statements included; a finished one is left as it
/// is. Answers the status.
#[utoipa::path(delete, path = "/v1/queries/{id}", tag = "queries",
    params(("id" = String, Path, description = "Query id (`X-Query-Id`)")),
    responses(
        (status = 200, description = "The query's status after the cancel", body = QueryStatus),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`query_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn cancel(
    principal: Principal,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let entry = visible(&state, &principal, &id)?;
    entry.cancel.cancel();
    // The producer records `cancelled` as it stops; say so now for a prompt answer.
    entry.finish(
        QueryState::Cancelled,
        Some(("query_cancelled", "cancelled by DELETE /v1/queries/{id}")),
    );
    Ok(HttpResponse::Ok().json(entry.status()))
}
