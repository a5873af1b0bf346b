//! Metric names of the control plane, declared once.

/// Gauge, 1 when the source is healthy or degraded, 0 when unavailable or starting; label `source`.
pub const SOURCE_UP: &str = "sluice_source_up";
/// Counter of health checks; labels `source`, `outcome` (`ok` | `error`).
pub const SOURCE_HEALTH_CHECKS_TOTAL: &str = "sluice_source_health_checks_total";
/// Histogram of health-check latency in seconds; label `source`.
pub const SOURCE_HEALTH_CHECK_SECONDS: &str = "sluice_source_health_check_seconds";
pub use sluice_planner::metrics::{
    SOURCE_BYTES_READ_TOTAL, SOURCE_ERRORS_TOTAL, SOURCE_REQUEST_SECONDS, SOURCE_REQUESTS_TOTAL,
};
/// Counter of catalog refreshes; labels `source`, `outcome` (`ok` | `error`).
pub const SOURCE_REFRESHES_TOTAL: &str = "sluice_source_refreshes_total";
