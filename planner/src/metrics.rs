//! Metric names of a source's data path, declared once. The planner's remote scans record
//! them; `sluice-actors` re-exports them for the object stores and the control plane.

/// Counter of requests to a source; labels `source`, `op` (`get` | `head` | `list` | `put` for
/// object stores, `query` for remote statements).
pub const SOURCE_REQUESTS_TOTAL: &str = "sluice_source_requests_total";
/// Counter of bytes read from a source (response bodies, or values of remote rows); label `source`.
pub const SOURCE_BYTES_READ_TOTAL: &str = "sluice_source_bytes_read_total";
/// Counter of failed source requests (after the store's own retries); labels `source`, `op`
/// (for PostgreSQL: `query`, or `connect` when no connection could be had).
pub const SOURCE_ERRORS_TOTAL: &str = "sluice_source_errors_total";
/// Histogram of source request latency in seconds (to the response head, or to a remote
/// statement's first row); labels `source`, `op`.
pub const SOURCE_REQUEST_SECONDS: &str = "sluice_source_request_seconds";
/// Counter of rows received from a remote source's statements; label `source`.
pub const SOURCE_ROWS_TOTAL: &str = "sluice_source_rows_total";
