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
/// Gauge per source: how many statements may wait for a slot (`max_queued`); label `source`.
pub const SOURCE_QUEUE_LIMIT: &str = "sluice_source_queue_limit";
/// Counter per source: statements refused by its queue; labels `source`, `reason` (`full` | `timeout`).
pub const SOURCE_QUEUE_REFUSALS_TOTAL: &str = "sluice_source_queue_refusals_total";
/// Counter per statement retried on another replica before its first byte; label `source`.
pub const FAILOVERS_TOTAL: &str = "sluice_failovers_total";
/// Counter per query served by a fallback source; labels `source`, `fallback`.
pub const FALLBACKS_TOTAL: &str = "sluice_fallbacks_total";
/// Counter of Snowflake logins (sessions opened); label `source`.
pub const SNOWFLAKE_LOGINS_TOTAL: &str = "sluice_snowflake_logins_total";
/// Counter of Snowflake statements aborted (cancelled or timed out); label `source`.
pub const SNOWFLAKE_ABORTS_TOTAL: &str = "sluice_snowflake_aborts_total";
/// Counter of Snowflake result chunks fetched; label `source`.
pub const SNOWFLAKE_CHUNKS_TOTAL: &str = "sluice_snowflake_chunks_total";
/// Counter of Snowflake chunk URLs asked for again after they expired; label `source`.
pub const SNOWFLAKE_CHUNK_URLS_RENEWED_TOTAL: &str = "sluice_snowflake_chunk_urls_renewed_total";

use sluice_planner::metrics::{Described, Kind};

/// This crate's metrics (the data-path ones are the planner's).
pub const DESCRIBED: &[Described] = &[
    d(
        SOURCE_UP,
        Kind::Gauge,
        "1 while the source is healthy or degraded, 0 while unavailable or starting.",
    ),
    d(
        SOURCE_HEALTH_CHECKS_TOTAL,
        Kind::Counter,
        "Health checks of a source's replicas, by outcome (ok, error).",
    ),
    d(
        SOURCE_HEALTH_CHECK_SECONDS,
        Kind::Histogram,
        "Health-check latency of a source's replicas.",
    ),
    d(
        SOURCE_REFRESHES_TOTAL,
        Kind::Counter,
        "Catalog refreshes of a source, by outcome (ok, error).",
    ),
    d(
        ACTOR_RESTARTS_TOTAL,
        Kind::Counter,
        "Replica actors restarted by their supervisor after a fatal fault.",
    ),
    d(
        REPLICA_STATE,
        Kind::Gauge,
        "A replica's state: 0 healthy, 1 degraded, 2 unavailable, 3 starting.",
    ),
    d(
        REPLICA_CIRCUIT,
        Kind::Gauge,
        "A replica's circuit breaker: 0 closed, 1 half-open, 2 open.",
    ),
    d(
        REPLICA_SCORE,
        Kind::Gauge,
        "The router's score of a replica (lower is better; 1e9 while its circuit is open).",
    ),
    d(
        REPLICA_IN_FLIGHT,
        Kind::Gauge,
        "Statements running on a replica.",
    ),
    d(
        REPLICA_STATEMENTS_TOTAL,
        Kind::Counter,
        "Statements routed to a replica.",
    ),
    d(
        REPLICA_FAILURES_TOTAL,
        Kind::Counter,
        "Statements that failed because a replica could not serve them.",
    ),
    d(
        REPLICA_LATENCY_SECONDS,
        Kind::Histogram,
        "Time to a remote statement's first answer, per replica.",
    ),
    d(
        SOURCE_QUEUE_DEPTH,
        Kind::Gauge,
        "Statements waiting for one of a source's slots.",
    ),
    d(
        SOURCE_QUEUE_LIMIT,
        Kind::Gauge,
        "How many statements may wait for a source's slots (max_queued).",
    ),
    d(
        SOURCE_QUEUE_REFUSALS_TOTAL,
        Kind::Counter,
        "Statements refused by a source's queue, by reason (full, timeout).",
    ),
    d(
        FAILOVERS_TOTAL,
        Kind::Counter,
        "Statements retried on another replica before their first byte.",
    ),
    d(
        FALLBACKS_TOTAL,
        Kind::Counter,
        "Queries served by a source's fallback source, by source and fallback.",
    ),
    d(
        SNOWFLAKE_LOGINS_TOTAL,
        Kind::Counter,
        "Snowflake sessions opened.",
    ),
    d(
        SNOWFLAKE_ABORTS_TOTAL,
        Kind::Counter,
        "Snowflake statements aborted (cancelled or past their deadline).",
    ),
    d(
        SNOWFLAKE_CHUNKS_TOTAL,
        Kind::Counter,
        "Snowflake result chunks fetched.",
    ),
    d(
        SNOWFLAKE_CHUNK_URLS_RENEWED_TOTAL,
        Kind::Counter,
        "Snowflake result chunk URLs asked for again after they expired.",
    ),
];

const fn d(name: &'static str, kind: Kind, help: &'static str) -> Described {
    Described { name, kind, help }
}
