//! `GET /health`, `GET /ready`, `GET /metrics`.

use actix_web::{HttpResponse, web};
use sluice_schemas::api::{ErrorBody, Health, Readiness};

use super::HttpOptions;
use crate::error::Result;
use crate::query::QueryService;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process answers", body = Health)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".to_owned(),
    })
}

/// Readiness of Sluice itself: 503 while starting (first catalog loads), draining, or unable
/// to take queries (the audit log cannot keep their records: its store is down under
/// `policy = "reject"`, or its buffer is full); 200 otherwise. Each source's state is in the
/// body; one unavailable source does not make the server unready, or every replica would leave
/// the load balancer together.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Serving (whatever the sources' health, which the body gives)", body = Readiness),
        (status = 503, description = "Starting (first catalog loads), draining, or not accepting queries (`capacity` says why)", body = Readiness),
    ))]
pub async fn ready(service: web::Data<QueryService>) -> Result<HttpResponse> {
    let body = service.readiness();
    Ok(if body.ready {
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
pub async fn metrics(
    service: web::Data<QueryService>,
    options: web::Data<HttpOptions>,
) -> Result<HttpResponse> {
    publish_routing_gauges(service.router());
    crate::telemetry::publish_dropped_lines();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(options.prometheus.render()))
}

/// Sets the per-replica and per-source routing gauges from the routing table, just before a
/// scrape (labels: source name and replica index, bounded by the config).
fn publish_routing_gauges(router: &sluice_actors::Router) {
    use sluice_actors::health::HealthState;
    use sluice_actors::metrics as m;
    use sluice_actors::routing::stats::Circuit;
    for (name, route) in &router.table().sources {
        zero_source_counters(name, route);
        if let Some(gate) = &route.gate {
            metrics::gauge!(m::SOURCE_QUEUE_DEPTH, "source" => name.clone())
                .set(gate.load().1 as f64);
            metrics::gauge!(m::SOURCE_QUEUE_LIMIT, "source" => name.clone())
                .set(gate.max_queued() as f64);
        }
        let mut up = false;
        for r in &route.replicas {
            let s = r.stats.snapshot();
            let labels = [("source", name.clone()), ("replica", r.index.to_string())];
            let state = match s.state {
                HealthState::Healthy => 0.0,
                HealthState::Degraded => 1.0,
                HealthState::Unavailable => 2.0,
                HealthState::Starting => 3.0,
            };
            up |= matches!(s.state, HealthState::Healthy | HealthState::Degraded);
            let circuit = match s.circuit {
                Circuit::Closed => 0.0,
                Circuit::HalfOpen => 1.0,
                Circuit::Open => 2.0,
            };
            metrics::gauge!(m::REPLICA_STATE, &labels).set(state);
            metrics::gauge!(m::REPLICA_CIRCUIT, &labels).set(circuit);
            metrics::gauge!(m::REPLICA_SCORE, &labels).set(s.score.min(1e9));
            metrics::gauge!(m::REPLICA_IN_FLIGHT, &labels).set(f64::from(s.in_flight));
            metrics::counter!(m::REPLICA_STATEMENTS_TOTAL, &labels).absolute(s.statements);
            metrics::counter!(m::REPLICA_FAILURES_TOTAL, &labels).absolute(s.failures);
        }
        metrics::gauge!(m::SOURCE_UP, "source" => name.clone()).set(if up { 1.0 } else { 0.0 });
    }
}

/// Gives each source's event counters their series at 0 before their first event, so a rule's
/// `increase(...)` sees the first one and a dashboard finds the series (labels bounded by the
/// config: source, replica index, fallback).
fn zero_source_counters(name: &str, route: &sluice_actors::routing::SourceRoute) {
    use sluice_actors::metrics as m;
    let source = || ("source", name.to_owned());
    metrics::counter!(m::FAILOVERS_TOTAL, &[source()]).increment(0);
    if route.gate.is_some() {
        for reason in ["full", "timeout"] {
            metrics::counter!(
                m::SOURCE_QUEUE_REFUSALS_TOTAL,
                &[source(), ("reason", reason.to_owned())]
            )
            .increment(0);
        }
    }
    if let Some(fallback) = &route.fallback {
        metrics::counter!(
            m::FALLBACKS_TOTAL,
            &[source(), ("fallback", fallback.clone())]
        )
        .increment(0);
    }
    for r in &route.replicas {
        metrics::counter!(
            m::ACTOR_RESTARTS_TOTAL,
            &[source(), ("replica", r.index.to_string())]
        )
        .increment(0);
    }
    if route.connector.kind() == "snowflake" {
        for counter in [
            m::SNOWFLAKE_LOGINS_TOTAL,
            m::SNOWFLAKE_ABORTS_TOTAL,
            m::SNOWFLAKE_CHUNKS_TOTAL,
            m::SNOWFLAKE_CHUNK_URLS_RENEWED_TOTAL,
        ] {
            metrics::counter!(counter, &[source()]).increment(0);
        }
    }
}
