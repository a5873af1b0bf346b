//! `GET /health`, `GET /ready`, `GET /metrics`.

use actix_web::{HttpResponse, web};
use sluice_actors::supervisor::ListSources;

use sluice_schemas::api::{ErrorBody, Health, Phase, Readiness};

use super::sources::source_info;
use crate::error::{ApiError, Result};
use crate::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process answers", body = Health)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".to_owned(),
    })
}

/// Readiness of Sluice itself: 503 while starting (first catalog loads) or draining, 200
/// otherwise. Each source's state is in the body; one unavailable source does not make the
/// server unready, or every replica would leave the load balancer together.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Serving (whatever the sources' health, which the body gives)", body = Readiness),
        (status = 503, description = "Starting (first catalog loads) or draining", body = Readiness),
    ))]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse> {
    let phase = state.lifecycle.phase();
    let sources = state
        .supervisor
        .send(ListSources)
        .await
        .map_err(|e| ApiError::internal(None, &e))?;
    let ready = phase == Phase::Serving;
    let body = Readiness {
        ready,
        phase,
        sources: sources.iter().map(source_info).collect(),
    };
    Ok(if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    })
}

/// Prometheus text format.
/// Behind a key when `auth.protect_metrics` is set.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "`unauthenticated`, when `auth.protect_metrics` is set", body = ErrorBody),
    ))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.prometheus.render()))
}
