//! Metric names of the query path, declared once, and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Counter of finished queries; label `outcome` (`ok`, an error code, `cancelled`).
pub const QUERIES_TOTAL: &str = "sluice_queries_total";
/// Histogram of query wall time in seconds, from request to last byte.
pub const QUERY_DURATION_SECONDS: &str = "sluice_query_duration_seconds";
/// Counter of result rows sent.
pub const ROWS_STREAMED_TOTAL: &str = "sluice_rows_streamed_total";
/// Counter of result bytes sent.
pub const BYTES_STREAMED_TOTAL: &str = "sluice_bytes_streamed_total";
/// Gauge of queries running now.
pub const QUERIES_IN_FLIGHT: &str = "sluice_queries_in_flight";

/// Counter of panics caught at a query's task boundary (the query failed; the server kept
/// serving).
pub const PANICS_TOTAL: &str = "sluice_panics_total";

/// Counter of requests refused by a key's limits; label `reason` (`rate`, `concurrency`).
pub const RATE_LIMITED_TOTAL: &str = "sluice_rate_limited_total";
/// Counter of authentication attempts; label `outcome` (`ok`, `unknown_key`, `revoked`, ...).
pub const AUTH_TOTAL: &str = "sluice_auth_attempts_total";
/// Counter of reads of an OpenID issuer's signing keys; labels `outcome` (`ok`, `failed`) and
/// `why` (`start`, `interval`, `unknown key`).
pub const JWKS_FETCHES_TOTAL: &str = "sluice_jwks_fetches_total";
/// Counter of lookups of keys this server does not hold (or holds an older copy of); label
/// `outcome` (`found`, `absent`, `unavailable`).
pub const KEY_LOOKUPS_TOTAL: &str = "sluice_key_lookups_total";
/// Counter of statements the key lookups sent the metadata store (one per batch).
pub const KEY_LOOKUP_STATEMENTS_TOTAL: &str = "sluice_key_lookup_statements_total";
/// Counter of failed authentication attempts folded into aggregate audit records.
pub const AUTH_FAILURES_AGGREGATED_TOTAL: &str = "sluice_auth_failures_aggregated_total";
/// Gauge of audit records accepted and not yet in the store (the buffer while it is down).
pub const AUDIT_PENDING: &str = "sluice_audit_buffered";
/// Counter of audit records written to the store.
pub const AUDIT_WRITTEN_TOTAL: &str = "sluice_audit_written_total";
/// Counter of failed audit batch writes (each is retried).
pub const AUDIT_WRITE_ERRORS_TOTAL: &str = "sluice_audit_write_errors_total";
/// Counter of audit records that found the queue full and live only in the log.
pub const AUDIT_DROPPED_TOTAL: &str = "sluice_audit_dropped_total";
/// Counter of queries refused because the audit log could not keep their record.
pub const AUDIT_REFUSED_TOTAL: &str = "sluice_audit_refused_total";

/// Counter of results served from the result cache.
pub const CACHE_HITS_TOTAL: &str = "sluice_cache_hits_total";
/// Counter of cacheable requests the cache could not answer (the statement ran).
pub const CACHE_MISSES_TOTAL: &str = "sluice_cache_misses_total";
/// Counter of entries removed; label `cause` (`size`, `expired`, `invalidated`, `replaced`).
pub const CACHE_EVICTIONS_TOTAL: &str = "sluice_cache_evictions_total";
/// Gauge of bytes (Arrow IPC) the result cache holds.
pub const CACHE_BYTES: &str = "sluice_cache_bytes";
/// Gauge of results the result cache holds.
pub const CACHE_ENTRIES: &str = "sluice_cache_entries";
/// Counter of local misses answered from the shared cache (Redis); each is also a hit.
pub const CACHE_SHARED_HITS_TOTAL: &str = "sluice_cache_shared_hits_total";
/// Counter of results written to the shared cache (Redis).
pub const CACHE_SHARED_STORES_TOTAL: &str = "sluice_cache_shared_stores_total";
/// Counter of failed or timed-out exchanges with the shared cache (Redis).
pub const CACHE_SHARED_ERRORS_TOTAL: &str = "sluice_cache_shared_errors_total";
/// Gauge: 1 while the shared cache (Redis) answers, 0 while it does not (or before it did).
pub const CACHE_SHARED_UP: &str = "sluice_cache_shared_up";

/// Gauge of open MCP sessions (handshake era).
pub const MCP_SESSIONS: &str = "sluice_mcp_sessions";
/// Counter of MCP handshakes refused by a session cap; label `reason` (`key`, `server`).
pub const MCP_SESSIONS_REFUSED_TOTAL: &str = "sluice_mcp_sessions_refused_total";

/// Gauge, always 1; label `version`: which build is serving.
pub const BUILD_INFO: &str = "sluice_build_info";
/// Counter of HTTP requests answered; labels `route` (the matched route's pattern, or `other`),
/// `method`, `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "sluice_http_requests_total";
/// Histogram of the time to an HTTP response's head, in seconds; labels `route`, `method`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "sluice_http_request_duration_seconds";
/// Gauge: the server-wide limit on queries running at once (`limits.max_concurrent_queries`).
pub const QUERIES_MAX_CONCURRENT: &str = "sluice_queries_max_concurrent";
/// Gauge: 1 while the metadata store answers, 0 while it does not.
pub const METADATA_STORE_UP: &str = "sluice_metadata_store_up";
/// Counter of MCP tool calls; labels `tool` (one of the server's tools, or `other`), `outcome`
/// (`ok` or an error code).
pub const MCP_TOOL_CALLS_TOTAL: &str = "sluice_mcp_tool_calls_total";
/// Counter of log lines dropped because the log writer was behind (the non-blocking writer's
/// buffer was full).
pub const LOG_LINES_DROPPED_TOTAL: &str = "sluice_log_lines_dropped_total";
/// Gauge: the source registry version this server has applied.
pub const REGISTRY_VERSION: &str = "sluice_registry_version";
/// Counter of registry entries this server could not apply (a missing environment variable, a
/// location its build refuses), counted each time the registry changes.
pub const REGISTRY_APPLY_ERRORS_TOTAL: &str = "sluice_registry_apply_errors_total";
/// Counter of sources started, replaced or stopped while serving; label `action` (`added`,
/// `changed`, `removed`).
pub const SOURCE_CHANGES_TOTAL: &str = "sluice_source_changes_total";

/// Gauge of spooled results held now (running, or finished and not yet acknowledged or
/// expired).
pub const SPOOL_RESULTS: &str = "sluice_spool_results";
/// Counter of spool segments written.
pub const SPOOL_SEGMENTS_TOTAL: &str = "sluice_spool_segments_total";
/// Counter of bytes written to the spool in segments.
pub const SPOOL_BYTES_TOTAL: &str = "sluice_spool_bytes_written_total";
/// Counter of spooled results the sweeper deleted (expired, or left by a stopped server).
pub const SPOOL_SWEPT_TOTAL: &str = "sluice_spool_swept_total";
/// Counter of spool store operations that failed (writes, reads, deletes, listings).
pub const SPOOL_ERRORS_TOTAL: &str = "sluice_spool_errors_total";

use sluice_planner::metrics::{Described, Kind};

/// The server's own metrics.
pub const DESCRIBED: &[Described] = &[
    d(
        BUILD_INFO,
        Kind::Gauge,
        "Always 1; the version label names the build serving.",
    ),
    d(
        HTTP_REQUESTS_TOTAL,
        Kind::Counter,
        "HTTP requests answered, by route pattern, method and status.",
    ),
    d(
        HTTP_REQUEST_DURATION_SECONDS,
        Kind::Histogram,
        "Time to an HTTP response's head, by route pattern and method.",
    ),
    d(
        QUERIES_TOTAL,
        Kind::Counter,
        "Finished queries, by door and outcome (ok, cancelled, or the error code).",
    ),
    d(
        QUERY_DURATION_SECONDS,
        Kind::Histogram,
        "Query wall time from request to last byte, by door.",
    ),
    d(
        ROWS_STREAMED_TOTAL,
        Kind::Counter,
        "Result rows sent, by door.",
    ),
    d(
        BYTES_STREAMED_TOTAL,
        Kind::Counter,
        "Result bytes sent, by door.",
    ),
    d(QUERIES_IN_FLIGHT, Kind::Gauge, "Queries running now."),
    d(
        QUERIES_MAX_CONCURRENT,
        Kind::Gauge,
        "The server-wide limit on queries running at once.",
    ),
    d(
        PANICS_TOTAL,
        Kind::Counter,
        "Panics caught at a query's task boundary (the query failed; the server kept serving).",
    ),
    d(
        RATE_LIMITED_TOTAL,
        Kind::Counter,
        "Requests refused by a key's limits, by reason (rate, concurrency).",
    ),
    d(
        AUTH_TOTAL,
        Kind::Counter,
        "Authentication attempts, by door and outcome (ok, or why not).",
    ),
    d(
        JWKS_FETCHES_TOTAL,
        Kind::Counter,
        "Reads of an OpenID issuer's signing keys, by outcome and why.",
    ),
    d(
        KEY_LOOKUPS_TOTAL,
        Kind::Counter,
        "Lookups of keys this server does not hold, by outcome (found, absent, unavailable).",
    ),
    d(
        KEY_LOOKUP_STATEMENTS_TOTAL,
        Kind::Counter,
        "Statements the key lookups sent the metadata store (one per batch).",
    ),
    d(
        AUTH_FAILURES_AGGREGATED_TOTAL,
        Kind::Counter,
        "Failed authentication attempts folded into aggregate audit records.",
    ),
    d(
        SPOOL_RESULTS,
        Kind::Gauge,
        "Spooled results held now: running, or finished and not yet acknowledged or expired.",
    ),
    d(
        SPOOL_SEGMENTS_TOTAL,
        Kind::Counter,
        "Spool segments written.",
    ),
    d(
        SPOOL_BYTES_TOTAL,
        Kind::Counter,
        "Bytes written to the spool in segments.",
    ),
    d(
        SPOOL_SWEPT_TOTAL,
        Kind::Counter,
        "Spooled results the sweeper deleted: expired, or left by a server stopped mid-query.",
    ),
    d(
        SPOOL_ERRORS_TOTAL,
        Kind::Counter,
        "Spool store operations that failed (writes, reads, deletes, listings).",
    ),
    d(
        REGISTRY_VERSION,
        Kind::Gauge,
        "The source registry version this server has applied.",
    ),
    d(
        REGISTRY_APPLY_ERRORS_TOTAL,
        Kind::Counter,
        "Source registry entries this server could not apply, counted at each registry change.",
    ),
    d(
        SOURCE_CHANGES_TOTAL,
        Kind::Counter,
        "Sources started, replaced or stopped while serving, by action.",
    ),
    d(
        METADATA_STORE_UP,
        Kind::Gauge,
        "1 while the metadata store answers, 0 while it does not.",
    ),
    d(
        AUDIT_PENDING,
        Kind::Gauge,
        "Audit records accepted and not yet in the store.",
    ),
    d(
        AUDIT_WRITTEN_TOTAL,
        Kind::Counter,
        "Audit records written to the store.",
    ),
    d(
        AUDIT_WRITE_ERRORS_TOTAL,
        Kind::Counter,
        "Failed audit batch writes (each is retried).",
    ),
    d(
        AUDIT_DROPPED_TOTAL,
        Kind::Counter,
        "Audit records that found the queue full and live only in the log.",
    ),
    d(
        AUDIT_REFUSED_TOTAL,
        Kind::Counter,
        "Queries refused because the audit log could not keep their record.",
    ),
    d(
        CACHE_HITS_TOTAL,
        Kind::Counter,
        "Results served from the result cache.",
    ),
    d(
        CACHE_MISSES_TOTAL,
        Kind::Counter,
        "Cacheable requests the result cache could not answer (the statement ran).",
    ),
    d(
        CACHE_EVICTIONS_TOTAL,
        Kind::Counter,
        "Result cache entries removed, by cause (size, expired, invalidated, replaced).",
    ),
    d(
        CACHE_BYTES,
        Kind::Gauge,
        "Bytes (Arrow IPC) the result cache holds.",
    ),
    d(
        CACHE_ENTRIES,
        Kind::Gauge,
        "Results the result cache holds.",
    ),
    d(
        CACHE_SHARED_HITS_TOTAL,
        Kind::Counter,
        "Local misses answered from the shared cache (Redis); each is also a hit.",
    ),
    d(
        CACHE_SHARED_STORES_TOTAL,
        Kind::Counter,
        "Results written to the shared cache (Redis).",
    ),
    d(
        CACHE_SHARED_ERRORS_TOTAL,
        Kind::Counter,
        "Failed or timed-out exchanges with the shared cache (Redis).",
    ),
    d(
        CACHE_SHARED_UP,
        Kind::Gauge,
        "1 while the shared cache (Redis) answers, 0 while it does not.",
    ),
    d(
        MCP_SESSIONS,
        Kind::Gauge,
        "Open MCP sessions (handshake era).",
    ),
    d(
        MCP_SESSIONS_REFUSED_TOTAL,
        Kind::Counter,
        "MCP handshakes refused by a session cap, by reason (key, server).",
    ),
    d(
        MCP_TOOL_CALLS_TOTAL,
        Kind::Counter,
        "MCP tool calls, by tool and outcome (ok, or the error code).",
    ),
    d(
        LOG_LINES_DROPPED_TOTAL,
        Kind::Counter,
        "Log lines dropped because the log writer was behind.",
    ),
];

const fn d(name: &'static str, kind: Kind, help: &'static str) -> Described {
    Described { name, kind, help }
}

/// Every metric of every crate, described.
pub fn all() -> impl Iterator<Item = &'static Described> {
    DESCRIBED
        .iter()
        .chain(sluice_actors::metrics::DESCRIBED)
        .chain(sluice_planner::metrics::DESCRIBED)
}

/// Buckets for every `*_seconds` histogram, 1 ms to 5 min.
const SECONDS_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle (later calls reuse it, so
/// several servers in one test process share it).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&SECONDS_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours renders nothing
            // new, which is visible in /metrics rather than fatal.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("A metrics recorder was already installed.");
            }
            describe();
            handle
        })
        .clone()
}

/// Gives every metric its `# HELP` line, and every metric without labels its first sample (0),
/// so a rule or a panel finds the series before the first event: an alert on
/// `increase(sluice_audit_write_errors_total[5m]) > 0` must see the 0 before the 1.
fn describe() {
    for m in all() {
        let help = m.help;
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, help),
            Kind::Gauge => metrics::describe_gauge!(m.name, help),
            Kind::Histogram => metrics::describe_histogram!(m.name, help),
        }
    }
    for name in [
        PANICS_TOTAL,
        KEY_LOOKUP_STATEMENTS_TOTAL,
        AUTH_FAILURES_AGGREGATED_TOTAL,
        AUDIT_WRITTEN_TOTAL,
        AUDIT_WRITE_ERRORS_TOTAL,
        AUDIT_DROPPED_TOTAL,
        AUDIT_REFUSED_TOTAL,
        CACHE_HITS_TOTAL,
        CACHE_MISSES_TOTAL,
        CACHE_SHARED_HITS_TOTAL,
        CACHE_SHARED_STORES_TOTAL,
        CACHE_SHARED_ERRORS_TOTAL,
        LOG_LINES_DROPPED_TOTAL,
        REGISTRY_APPLY_ERRORS_TOTAL,
        SPOOL_SEGMENTS_TOTAL,
        SPOOL_BYTES_TOTAL,
        SPOOL_SWEPT_TOTAL,
        SPOOL_ERRORS_TOTAL,
    ] {
        metrics::counter!(name).absolute(0);
    }
    for action in ["added", "changed", "removed"] {
        metrics::counter!(SOURCE_CHANGES_TOTAL, "action" => action).absolute(0);
    }
    for reason in ["rate", "concurrency"] {
        metrics::counter!(RATE_LIMITED_TOTAL, "reason" => reason).absolute(0);
    }
    for outcome in ["found", "absent", "unavailable"] {
        metrics::counter!(KEY_LOOKUPS_TOTAL, "outcome" => outcome).absolute(0);
    }
    for cause in ["size", "expired", "invalidated", "replaced"] {
        metrics::counter!(CACHE_EVICTIONS_TOTAL, "cause" => cause).absolute(0);
    }
    for reason in ["key", "server"] {
        metrics::counter!(MCP_SESSIONS_REFUSED_TOTAL, "reason" => reason).absolute(0);
    }
    for name in [
        AUDIT_PENDING,
        CACHE_BYTES,
        CACHE_ENTRIES,
        MCP_SESSIONS,
        QUERIES_IN_FLIGHT,
        REGISTRY_VERSION,
        SPOOL_RESULTS,
    ] {
        metrics::gauge!(name).increment(0.0);
    }
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}
