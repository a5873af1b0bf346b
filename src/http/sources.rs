//! `GET /v1/sources` and `POST /v1/sources/{name}/refresh`.

use std::time::UNIX_EPOCH;

use actix_web::{HttpResponse, web};
use sluice_actors::SourceStatus;
use sluice_actors::health::HealthState;
use sluice_actors::routing::stats::StatsSnapshot;
use sluice_actors::supervisor::{RefreshError, RefreshSource, statuses};
use sluice_schemas::api::{
    ErrorBody, Operation, QueueInfo, RefreshResponse, ReplicaInfo, SourceInfo, SourceList,
    SourceState,
};

use crate::auth::Principal;
use crate::error::{ApiError, Result};
use crate::state::AppState;

fn ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn state(s: HealthState) -> SourceState {
    match s {
        HealthState::Starting => SourceState::Starting,
        HealthState::Healthy => SourceState::Healthy,
        HealthState::Degraded => SourceState::Degraded,
        HealthState::Unavailable => SourceState::Unavailable,
    }
}

fn replica_info(index: usize, location: &str, s: &StatsSnapshot) -> ReplicaInfo {
    ReplicaInfo {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        location: location.to_owned(),
        state: state(s.state),
        circuit: s.circuit.as_str().to_owned(),
        score: s.score.is_finite().then_some(s.score),
        latency_ewma_ms: s.latency_ewma_ms,
        error_rate: s.error_rate,
        p50_ms: s.p50_ms,
        p99_ms: s.p99_ms,
        in_flight: s.in_flight,
        statements: s.statements,
        failures: s.failures,
        consecutive_failures: s.consecutive_failures,
        transitions: s.transitions,
        restarts: s.restarts,
        open_for_ms: s
            .open_for
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        state_since_ms: ms(s.since),
        last_error: s.last_error.clone(),
    }
}

/// A source as the API shows it: health with its evidence, never credentials.
pub fn source_info(s: &SourceStatus) -> SourceInfo {
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    SourceInfo {
        name: s.name.clone(),
        kind: s.kind.to_owned(),
        location: s.location.clone(),
        state: state(s.health.state),
        state_since_ms: ms(s.health.since),
        last_error: s.health.last_error.clone(),
        last_check_ms: s.health.last_check.map(ms),
        health_check_latency_ms: s.health.last_latency.map(|d| d.as_secs_f64() * 1000.0),
        consecutive_failures: s.health.consecutive_failures,
        tables: s.catalog.as_ref().and_then(|c| c.tables).map(|n| n as u64),
        refreshed_at_ms: s.catalog.as_ref().and_then(|c| c.refreshed_at).map(ms),
        refresh_error: s.catalog.as_ref().and_then(|c| c.last_error.clone()),
        replicas: s
            .replicas
            .iter()
            .map(|r| replica_info(r.index, &r.location, &r.stats))
            .collect(),
        queue: s.queue.map(|q| QueueInfo {
            capacity: n(q.capacity),
            running: n(q.running),
            queued: n(q.queued),
        }),
        fallback: s.fallback.clone(),
    }
}

/// Every source with its health, and each replica with its routing figures: state, circuit,
/// score, latency, in-flight statements, queue.
#[utoipa::path(get, path = "/v1/sources", tag = "sources",
    responses(
        (status = 200, description = "Every source with its health state and evidence (a reader key: only its granted sources, without locations or error texts)", body = SourceList),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: the key may not list", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(principal: Principal, state: web::Data<AppState>) -> Result<HttpResponse> {
    let sources = visible(&state, &principal)?;
    Ok(HttpResponse::Ok().json(SourceList { sources }))
}

/// The sources `principal` may see, as `GET /v1/sources` and MCP's `list_sources` show them.
///
/// # Errors
/// `permission_denied` for a key that may not list.
pub fn visible(state: &AppState, principal: &Principal) -> Result<Vec<SourceInfo>> {
    principal.require(Operation::List)?;
    let sources = statuses(&state.router);
    let planner = principal.planner(&state.planner);
    Ok(if principal.is_admin() {
        sources.iter().map(source_info).collect()
    } else {
        // A reader sees the sources it has grants in, and not where they are: no locations,
        // no error texts (which can name hosts and paths), only states and figures.
        sources
            .iter()
            .filter(|s| planner.grants().is_none_or(|g| g.sees_catalog(&s.name)))
            .map(|s| {
                let info = source_info(s);
                SourceInfo {
                    location: String::new(),
                    last_error: None,
                    refresh_error: None,
                    replicas: info
                        .replicas
                        .into_iter()
                        .map(|r| ReplicaInfo {
                            location: String::new(),
                            last_error: None,
                            ..r
                        })
                        .collect(),
                    fallback: None,
                    ..info
                }
            })
            .collect()
    })
}

/// Reloads a source's tables now (admin keys), so new files, tables and schema changes show
/// without waiting for `refresh_interval_ms`.
#[utoipa::path(post, path = "/v1/sources/{name}/refresh", tag = "sources",
    params(("name" = String, Path, description = "Source (catalog) name")),
    responses(
        (status = 200, description = "Reloaded", body = RefreshResponse),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: needs an admin key", body = ErrorBody),
        (status = 404, description = "`source_not_found`", body = ErrorBody),
        (status = 502, description = "`upstream_error`: the reload failed; the previous tables stay", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn refresh(
    principal: Principal,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    principal.require(Operation::Admin)?;
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
    // With a shared cache, results of this source are stale on every server now.
    state.cache.refreshed(&name).await;
    Ok(HttpResponse::Ok().json(RefreshResponse {
        name,
        tables: report.tables.map(|n| n as u64),
        elapsed_ms: report.elapsed.as_secs_f64() * 1000.0,
    }))
}
