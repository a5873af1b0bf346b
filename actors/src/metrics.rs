//! Metric names of the control plane, declared once.

/// Gauge, 1 when the source is healthy or degraded, 0 when unavailable or starting; label `source`.
pub const SOURCE_UP: &str = "sluice_source_up";
/// Counter of health checks; labels `source`, `outcome` (`ok` | `error`).
pub const SOURCE_HEALTH_CHECKS_TOTAL: &str = "sluice_source_health_checks_total";
/// Histogram of health-check latency in seconds; label `source`.
pub const SOURCE_HEALTH_CHECK_SECONDS: &str = "sluice_source_health_check_seconds";
/// Counter of object-store requests; labels `source`, `op` (`get` | `head` | `list` | `put`).
pub const SOURCE_REQUESTS_TOTAL: &str = "sluice_source_requests_total";
/// Counter of bytes read from a source (response bodies); label `source`.
pub const SOURCE_BYTES_READ_TOTAL: &str = "sluice_source_bytes_read_total";
/// Counter of failed source requests (after the store's own retries); labels `source`, `op`.
pub const SOURCE_ERRORS_TOTAL: &str = "sluice_source_errors_total";
/// Histogram of source request latency in seconds (to the response head); labels `source`, `op`.
pub const SOURCE_REQUEST_SECONDS: &str = "sluice_source_request_seconds";
/// Counter of catalog refreshes; labels `source`, `outcome` (`ok` | `error`).
pub const SOURCE_REFRESHES_TOTAL: &str = "sluice_source_refreshes_total";
