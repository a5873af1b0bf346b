//! `GET /v1/sources`.

use std::time::UNIX_EPOCH;

use actix_web::{HttpResponse, web};
use sluice_actors::SourceStatus;
use sluice_actors::supervisor::{ListSources, RefreshError, RefreshSource};

use crate::auth::Principal;
use crate::error::{ApiError, Result};
use crate::state::AppState;

/// A source as JSON: health with its evidence, never credentials.
pub fn source_json(s: &SourceStatus) -> serde_json::Value {
    let ms = |t: std::time::SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    serde_json::json!({
        "name": s.name,
        "kind": s.kind,
        "location": s.location,
        "state": s.health.state.as_str(),
        "state_since_ms": ms(s.health.since),
        "last_error": s.health.last_error,
        "last_check_ms": s.health.last_check.map(ms),
        "health_check_latency_ms": s.health.last_latency.map(|d| d.as_secs_f64() * 1000.0),
        "consecutive_failures": s.health.consecutive_failures,
        "tables": s.catalog.as_ref().and_then(|c| c.tables),
        "refreshed_at_ms": s.catalog.as_ref().and_then(|c| c.refreshed_at).map(ms),
        "refresh_error": s.catalog.as_ref().and_then(|c| c.last_error.clone()),
    })
}

/// Every source with its health.
pub async fn list(_principal: Principal, state: web::Data<AppState>) -> Result<HttpResponse> {
    let sources = state
        .supervisor
        .send(ListSources)
        .await
        .map_err(|e| ApiError::internal(None, &e))?;
    let body: Vec<_> = sources.iter().map(source_json).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "sources": body })))
}

/// `POST /v1/sources/{name}/refresh` (admin): reload a source's tables now, so new files,
/// tables and schema changes show without waiting for `refresh_interval_ms`.
pub async fn refresh(
    principal: Principal,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    if !principal.is_admin() {
        return Err(ApiError::permission_denied(
            "refreshing a source needs an admin key",
        ));
    }
    let name = name.into_inner();
    let report = state
        .supervisor
        .send(RefreshSource { name: name.clone() })
        .await
        .map_err(|e| ApiError::internal(None, &e))?
        .map_err(|e| match e {
            RefreshError::NotFound(_) => ApiError::not_found("source_not_found", e.to_string()),
            // The reason is the health probe's or the loader's text, already free of credentials.
            RefreshError::Failed { .. } => ApiError::upstream(e.to_string()),
        })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "name": name,
        "tables": report.tables,
        "elapsed_ms": report.elapsed.as_secs_f64() * 1000.0,
    })))
}
