//! `GET /v1/queries/{id}` and `DELETE /v1/queries/{id}`.

use actix_web::{HttpResponse, web};

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

/// `GET /v1/queries?state=running&limit=50`: recent queries the caller may see, newest first.
pub async fn list(
    principal: Principal,
    filter: web::Query<ListFilter>,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let limit = filter
        .limit
        .unwrap_or(50)
        .min(crate::queries::RECENT_QUERIES);
    let queries: Vec<_> = state
        .queries
        .list(limit, |e| {
            (principal.is_admin() || e.key_id.as_deref() == principal.key_id())
                && filter.state.is_none_or(|s| e.state() == s)
        })
        .iter()
        .map(|e| e.status())
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "queries": queries })))
}

/// Query string of [`list`].
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFilter {
    state: Option<crate::queries::QueryState>,
    limit: Option<usize>,
}

/// Status of a recent query.
pub async fn get(
    principal: Principal,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let entry = visible(&state, &principal, &id)?;
    Ok(HttpResponse::Ok().json(entry.status()))
}

/// Cancels a running query; a finished one is left as it is. Answers the status.
pub async fn cancel(
    principal: Principal,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let entry = visible(&state, &principal, &id)?;
    entry.cancel.cancel();
    // The producer records `cancelled` as it stops; say so now for a prompt answer.
    entry.finish(
        crate::queries::QueryState::Cancelled,
        Some(("cancelled", "cancelled by DELETE /v1/queries/{id}")),
    );
    Ok(HttpResponse::Ok().json(entry.status()))
}
