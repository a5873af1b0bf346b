//! `GET /health`, `GET /ready`, `GET /metrics`.

use actix_web::{HttpResponse, web};
use sluice_actors::supervisor::GetReadiness;

use super::sources::source_json;
use crate::error::{ApiError, Result};
use crate::state::{AppState, Phase};

/// Liveness: the process answers.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Readiness of Sluice itself: 503 while starting (first catalog loads) or draining, 200
/// otherwise. Each source's state is in the body; one unavailable source does not make the
/// server unready, or every replica would leave the load balancer together.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse> {
    let phase = state.lifecycle.phase();
    let r = state
        .supervisor
        .send(GetReadiness)
        .await
        .map_err(|e| ApiError::internal(None, &e))?;
    let ready = phase == Phase::Serving;
    let body = serde_json::json!({
        "ready": ready,
        "phase": phase.as_str(),
        "sources": r.sources.iter().map(source_json).collect::<Vec<_>>(),
    });
    Ok(if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    })
}

/// Prometheus text format.
/// (Behind a key when `auth.protect_metrics` is set: the middleware decides.)
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.prometheus.render()))
}
