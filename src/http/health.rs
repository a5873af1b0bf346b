//! `GET /health`, `GET /ready`, `GET /metrics`.

use actix_web::{HttpRequest, HttpResponse, web};
use sluice_actors::supervisor::GetReadiness;

use super::sources::source_json;
use crate::error::{ApiError, Result};
use crate::state::AppState;

/// Liveness: the process answers.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: every source has been checked and none is unavailable.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse> {
    let r = state
        .supervisor
        .send(GetReadiness)
        .await
        .map_err(|e| ApiError::internal(None, &e))?;
    let body = serde_json::json!({
        "ready": r.ready,
        "sources": r.sources.iter().map(source_json).collect::<Vec<_>>(),
    });
    Ok(if r.ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    })
}

/// Prometheus text format.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    if state.protect_metrics {
        crate::auth::authenticate(&req, &state.keys, true)?;
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.prometheus.render()))
}
