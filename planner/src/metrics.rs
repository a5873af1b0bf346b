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

/// A metric's kind, for its `# TYPE` and `# HELP` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// One metric as `/metrics` describes it: each crate lists its own, and the server describes
/// them all at start, so every metric has its `# HELP` line before its first sample.
#[derive(Debug, Clone, Copy)]
pub struct Described {
    /// The full name, with its base unit (`_seconds`, `_bytes`) and `_total` for counters.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The `# HELP` text: what is counted, and its labels.
    pub help: &'static str,
}

/// This crate's metrics.
pub const DESCRIBED: &[Described] = &[
    Described {
        name: SOURCE_REQUESTS_TOTAL,
        kind: Kind::Counter,
        help: "Requests to a source (object store get/head/list/put, or a remote statement: query), by source and op.",
    },
    Described {
        name: SOURCE_BYTES_READ_TOTAL,
        kind: Kind::Counter,
        help: "Bytes read from a source: response bodies, or the values of remote rows.",
    },
    Described {
        name: SOURCE_ERRORS_TOTAL,
        kind: Kind::Counter,
        help: "Failed source requests after the store's own retries, by source and op (connect: no connection could be had).",
    },
    Described {
        name: SOURCE_REQUEST_SECONDS,
        kind: Kind::Histogram,
        help: "Source request latency: to the response head, or to a remote statement's first row.",
    },
    Described {
        name: SOURCE_ROWS_TOTAL,
        kind: Kind::Counter,
        help: "Rows received from a remote source's statements.",
    },
];
