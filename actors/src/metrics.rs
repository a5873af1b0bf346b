//! Metric names of the control plane, declared once.

/// Gauge, 1 when the source is healthy or degraded, 0 when unavailable or starting; label `source`.
pub const SOURCE_UP: &str = "sluice_source_up";
/// Counter of health checks; labels `source`, `replica` (its index), `outcome` (`ok` | `error`).
pub const SOURCE_HEALTH_CHECKS_TOTAL: &str = "sluice_source_health_checks_total";
/// Histogram of health-check latency in seconds; labels `source`, `replica`.
pub const SOURCE_HEALTH_CHECK_SECONDS: &str = "sluice_source_health_check_seconds";
pub use sluice_planner::metrics::{
    SOURCE_BYTES_READ_TOTAL, SOURCE_ERRORS_TOTAL, SOURCE_REQUEST_SECONDS, SOURCE_REQUESTS_TOTAL,
};
/// Counter of catalog refreshes; labels `source`, `outcome` (`ok` | `error`).
pub const SOURCE_REFRESHES_TOTAL: &str = "sluice_source_refreshes_total";
/// Counter of replica actor restarts after a fatal fault; labels `source`, `replica`.
pub const ACTOR_RESTARTS_TOTAL: &str = "sluice_actor_restarts_total";
/// Gauge per replica: 0 healthy, 1 degraded, 2 unavailable, 3 starting; labels `source`, `replica`.
pub const REPLICA_STATE: &str = "sluice_replica_state";
/// Gauge per replica: 0 closed, 1 half-open, 2 open; labels `source`, `replica`.
pub const REPLICA_CIRCUIT: &str = "sluice_replica_circuit";
/// Gauge per replica: the router's score (lower is better; 1e9 while open); labels `source`, `replica`.
pub const REPLICA_SCORE: &str = "sluice_replica_score";
/// Gauge per replica: statements running; labels `source`, `replica`.
pub const REPLICA_IN_FLIGHT: &str = "sluice_replica_in_flight";
/// Counter per replica: statements routed to it; labels `source`, `replica`.
pub const REPLICA_STATEMENTS_TOTAL: &str = "sluice_replica_statements_total";
/// Counter per replica: statements that failed because it could not serve; labels `source`, `replica`.
pub const REPLICA_FAILURES_TOTAL: &str = "sluice_replica_failures_total";
/// Histogram per replica: time to a remote statement's first answer, seconds; labels `source`, `replica`.
pub const REPLICA_LATENCY_SECONDS: &str = "sluice_replica_latency_seconds";
/// Gauge per source: statements waiting for a slot; label `source`.
pub const SOURCE_QUEUE_DEPTH: &str = "sluice_source_queue_depth";
/// Counter per source: statements refused by its queue; labels `source`, `reason` (`full` | `timeout`).
pub const SOURCE_QUEUE_REFUSALS_TOTAL: &str = "sluice_source_queue_refusals_total";
/// Counter per statement retried on another replica before its first byte; label `source`.
pub const FAILOVERS_TOTAL: &str = "sluice_failovers_total";
/// Counter per query served by a fallback source; labels `source`, `fallback`.
pub const FALLBACKS_TOTAL: &str = "sluice_fallbacks_total";
