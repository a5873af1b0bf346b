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
            handle
        })
        .clone()
}
