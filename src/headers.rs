//! Names of the headers (and gRPC metadata keys) Sluice's answers carry, shared by every door
//! so each says the same thing the same way.

/// The query's id, on every answer about a query (`X-Query-Id`).
pub const QUERY_ID: &str = "x-query-id";

/// Whether a result came from the result cache (`hit`) or ran (`miss`).
pub const CACHE: &str = "x-sluice-cache";

/// The source that served a query in place of one whose every replica is down.
pub const FALLBACK: &str = "x-sluice-fallback";

/// The trace a response belongs to (W3C trace id, 32 hex digits), when `[telemetry]` is on.
pub const TRACE_ID: &str = "x-trace-id";
