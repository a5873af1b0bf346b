//! [`ApiError`]: every failure a caller can see, with its stable [`Code`]. Protocol-neutral:
//! each door turns a code into its wire form (an HTTP status, a JSON-RPC error, a gRPC status);
//! the HTTP status of each code is the contract's table (API.md), kept here once as
//! [`Code::http_status`] because every door carried over HTTP uses it.

use std::time::Duration;

use datafusion::error::DataFusionError;
use sluice_planner::PlanError;
use sluice_planner::error::causes;
use sluice_planner::federation::{ErrorClass, RemoteError};
use sluice_schemas::api::{ErrorBody, ErrorDetail};
use tracing::error;

/// How long clients are told to wait after a refusal for capacity (`503`, `429`).
const RETRY_AFTER: Duration = Duration::from_secs(5);

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = ($text:literal, $status:literal),)*) => {
        /// A stable error code (API.md). Its text is what clients match on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, for tables and tests.
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            /// The snake_case text clients see.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            /// The code whose text is `text`.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// The HTTP status API.md gives this code.
            pub fn http_status(self) -> u16 {
                match self {
                    $(Self::$variant => $status,)*
                }
            }
        }
    };
}

codes! {
    /// The request is malformed.
    BadRequest = ("bad_request", 400),
    /// The statement is wrong (found while planning or running).
    SqlInvalid = ("sql_invalid", 400),
    /// Not a single read-only statement.
    ReadOnly = ("read_only", 400),
    /// No valid credentials.
    Unauthenticated = ("unauthenticated", 401),
    /// The caller may not perform this operation.
    PermissionDenied = ("permission_denied", 403),
    /// A valid bearer token lacks a scope this server requires.
    InsufficientScope = ("insufficient_scope", 403),
    /// No such table, or one the caller may not see.
    TableNotFound = ("table_not_found", 404),
    /// No such source.
    SourceNotFound = ("source_not_found", 404),
    /// No such recent query for this caller.
    QueryNotFound = ("query_not_found", 404),
    /// No such thing (a route, a key).
    NotFound = ("not_found", 404),
    /// The method is not allowed on this route.
    MethodNotAllowed = ("method_not_allowed", 405),
    /// No result format serves the request.
    NotAcceptable = ("not_acceptable", 406),
    /// The query was cancelled.
    QueryCancelled = ("query_cancelled", 409),
    /// `POST /v1/policies` with a name that is taken.
    PolicyExists = ("policy_exists", 409),
    /// A policy from the config file, which the API cannot change.
    PolicyFromConfig = ("policy_from_config", 409),
    /// `POST /v1/sources` with a name that is taken.
    SourceExists = ("source_exists", 409),
    /// A source from the config file, which the API cannot change.
    SourceFromConfig = ("source_from_config", 409),
    /// `POST /v1/admin/reload` on a server started without a config file.
    NoConfigFile = ("no_config_file", 409),
    /// The config file does not load; nothing was changed.
    ConfigInvalid = ("config_invalid", 422),
    /// The result has more rows than allowed.
    ResultTooLarge = ("result_too_large", 413),
    /// The request body is too large.
    RequestTooLarge = ("request_too_large", 413),
    /// The request body's type is not accepted.
    UnsupportedMediaType = ("unsupported_media_type", 415),
    /// The data made a valid statement fail.
    DataError = ("data_error", 422),
    /// The caller's request rate is used up.
    RateLimited = ("rate_limited", 429),
    /// Too many queries run (the server's, the key's or a source's limit).
    TooManyQueries = ("too_many_queries", 429),
    /// The key holds as many MCP sessions as it may.
    TooManySessions = ("too_many_sessions", 429),
    /// A feature the engine does not implement.
    Unsupported = ("unsupported", 501),
    /// A source's engine failed the statement.
    UpstreamError = ("upstream_error", 502),
    /// No replica of a source can serve now.
    SourceUnavailable = ("source_unavailable", 503),
    /// The server is draining.
    ShuttingDown = ("shutting_down", 503),
    /// The key store or the audit log's store cannot be used now.
    MetadataUnavailable = ("metadata_unavailable", 503),
    /// The spool location (`[spool]`) could not be written or read now.
    SpoolUnavailable = ("spool_unavailable", 503),
    /// The query needs more memory than the server's pool has free: the pool is shared by
    /// every running query, so the same statement can succeed once fewer run (503, with
    /// `Retry-After`); a statement that needs more than the whole pool fails each time and has
    /// to sort, group or join less.
    MemoryExhausted = ("memory_exhausted", 503),
    /// The query ran past its timeout.
    QueryTimeout = ("query_timeout", 504),
    /// A fault in Sluice: details only in the server log, under the query id.
    Internal = ("internal", 500),
}

impl Code {
    /// Refusals for capacity, which tell the client when to come back.
    fn waits(self) -> bool {
        matches!(self.http_status(), 429 | 503)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client-visible error.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// Stable code from API.md.
    pub code: Code,
    /// Message safe to show the client.
    pub message: String,
    /// The query this belongs to.
    pub query_id: Option<String>,
    /// How long the client should wait before trying again, if at all.
    retry_after: Option<Duration>,
    /// The authentication challenge (RFC 6750 `WWW-Authenticate` value) a refusal of
    /// credentials carries.
    challenge: Option<std::sync::Arc<str>>,
}

impl ApiError {
    /// An error with code and message (refusals for capacity wait 5 s by default).
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            query_id: None,
            retry_after: code.waits().then_some(RETRY_AFTER),
            challenge: None,
        }
    }

    /// The authentication challenge, if this refuses credentials.
    pub fn challenge(&self) -> Option<&str> {
        self.challenge.as_deref()
    }

    /// Attaches the authentication challenge.
    #[must_use]
    pub fn with_challenge(mut self, challenge: &std::sync::Arc<str>) -> Self {
        self.challenge = Some(std::sync::Arc::clone(challenge));
        self
    }

    /// How long the client is told to wait (`Retry-After`), if at all.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Attaches the query id.
    #[must_use]
    pub fn with_query(mut self, id: &str) -> Self {
        self.query_id = Some(id.to_owned());
        self
    }

    /// Sets `Retry-After` (rounded up to whole seconds, at least one).
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(round_up_secs(wait));
        self
    }

    /// `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    /// `unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, message)
    }

    /// `permission_denied`.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(Code::PermissionDenied, message)
    }

    /// A `404` code (`table_not_found`, `source_not_found`, `query_not_found`, `not_found`).
    pub fn not_found(code: Code, message: impl Into<String>) -> Self {
        Self::new(code, message)
    }

    /// `result_too_large`.
    pub fn result_too_large(max_rows: u64) -> Self {
        Self::new(
            Code::ResultTooLarge,
            format!("the result has more than {max_rows} rows (max_rows); add a LIMIT or a filter"),
        )
    }

    /// `too_many_queries`: the server's own limit.
    pub fn too_many_queries(limit: u32) -> Self {
        Self::new(
            Code::TooManyQueries,
            format!("the server is already running {limit} queries; retry shortly"),
        )
    }

    /// `rate_limited`: the key's request rate is used up; the wait is until the next request
    /// would be let in, rounded up to whole seconds.
    pub fn rate_limited(per_second: u32, wait: Duration) -> Self {
        Self::new(
            Code::RateLimited,
            format!(
                "this API key's rate limit ({per_second} requests per second) is used up; retry in {} ms",
                wait.as_millis().max(1)
            ),
        )
        .with_retry_after(wait)
    }

    /// `too_many_queries`: the key's own concurrent-query limit.
    pub fn too_many_key_queries(limit: u32, retry: Duration) -> Self {
        Self::new(
            Code::TooManyQueries,
            format!("this API key already runs {limit} queries, its limit; retry when one ends"),
        )
        .with_retry_after(retry)
    }

    /// `metadata_unavailable`: the audit log cannot keep the record of a new query (its
    /// store is unreachable and the policy refuses to run unaudited, or its buffer is full).
    pub fn audit_unavailable() -> Self {
        Self::new(
            Code::MetadataUnavailable,
            "queries are paused: the audit log's store is unreachable; retry shortly",
        )
        .with_retry_after(Duration::from_secs(1))
    }

    /// `metadata_unavailable`: a key not seen before cannot be looked up in the store.
    pub fn metadata_unavailable() -> Self {
        Self::new(
            Code::MetadataUnavailable,
            "the key store is unreachable; retry shortly",
        )
        .with_retry_after(Duration::from_secs(1))
    }

    /// The error for a statement its sources could not take: `source_unavailable` (no
    /// replica can serve, or no slot freed within the queue timeout) or `too_many_queries`
    /// (the source's queue is full), each with `Retry-After`.
    pub fn from_route(e: &sluice_actors::routing::RouteError) -> Self {
        use sluice_actors::routing::RouteError as R;
        match e {
            R::Unavailable { retry_after, .. } | R::QueueTimeout { retry_after, .. } => {
                Self::source_unavailable(e.to_string()).with_retry_after(*retry_after)
            }
            R::QueueFull { retry_after, .. } => {
                Self::new(Code::TooManyQueries, e.to_string()).with_retry_after(*retry_after)
            }
        }
    }

    /// `source_unavailable`.
    pub fn source_unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::SourceUnavailable, message)
    }

    /// `upstream_error` with a message that is safe to show.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(Code::UpstreamError, message)
    }

    /// `query_timeout`.
    pub fn timeout(timeout: Duration) -> Self {
        Self::new(
            Code::QueryTimeout,
            format!("the query did not finish within {} ms", timeout.as_millis()),
        )
    }

    /// `query_cancelled`: the answer of a query cancelled by its caller.
    pub fn cancelled() -> Self {
        Self::new(
            Code::QueryCancelled,
            "the query was cancelled (DELETE /v1/queries/{id})",
        )
    }

    /// `query_cancelled` for a query whose client left.
    pub fn client_gone() -> Self {
        Self::new(Code::QueryCancelled, "the client closed the connection")
    }

    /// `request_too_large`.
    pub fn request_too_large(message: impl Into<String>) -> Self {
        Self::new(Code::RequestTooLarge, message)
    }

    /// `not_acceptable`.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(Code::NotAcceptable, message)
    }

    /// `unsupported_media_type`.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(Code::UnsupportedMediaType, message)
    }

    /// `shutting_down`: the server is draining and takes no new queries.
    pub fn shutting_down() -> Self {
        Self::new(
            Code::ShuttingDown,
            "the server is shutting down; retry on another replica",
        )
    }

    /// `internal` for a panic caught at a task boundary: counted, logged under the query
    /// id, and never shown.
    pub fn panicked(query_id: &str, detail: &str) -> Self {
        metrics::counter!(crate::metrics::PANICS_TOTAL).increment(1);
        Self::internal(Some(query_id), &format!("panic: {detail}"))
    }

    /// `internal`: the detail goes to the log under the query id, not to the client.
    pub fn internal(query_id: Option<&str>, detail: &dyn std::fmt::Display) -> Self {
        error!(query_id = query_id.unwrap_or(""), error = %detail, "Internal error.");
        let mut e = Self::new(
            Code::Internal,
            "internal error; the server log has details under this query id",
        );
        e.query_id = query_id.map(str::to_owned);
        e
    }

    /// Maps a planner error, logging what must not be shown. This is the one mapping from
    /// every DataFusion, Arrow and source error to a code, used before the first byte, after
    /// it (for the query's status) and for explain alike.
    pub fn from_plan(e: PlanError, query_id: &str) -> Self {
        let err = match &e {
            PlanError::Empty
            | PlanError::Parse(_)
            | PlanError::Invalid(_)
            | PlanError::TooDeep(_) => Self::new(Code::SqlInvalid, e.to_string()),
            PlanError::TooLarge(m) => Self::request_too_large(m.clone()),
            PlanError::MultipleStatements(_) | PlanError::ReadOnly(_) => {
                Self::new(Code::ReadOnly, e.to_string())
            }
            PlanError::TableNotFound(_) => Self::not_found(Code::TableNotFound, e.to_string()),
            PlanError::SourceNotFound(_) => Self::not_found(Code::SourceNotFound, e.to_string()),
            PlanError::SourceUnavailable { .. } => Self::source_unavailable(e.to_string()),
            PlanError::Params(_) => Self::bad_request(e.to_string()),
            PlanError::Unsupported(_) => Self::new(Code::Unsupported, e.to_string()),
            PlanError::Data(_) => Self::new(Code::DataError, e.to_string()),
            PlanError::Execution(df) => return Self::from_execution(df, query_id),
        };
        err.with_query(query_id)
    }

    fn from_execution(e: &DataFusionError, query_id: &str) -> Self {
        if let Some(detail) = panic_in(e) {
            return Self::panicked(query_id, &detail);
        }
        match e.find_root() {
            DataFusionError::ResourcesExhausted(_) => {
                tracing::warn!(query_id, error = %e, "Query exceeded the memory limit.");
                Self::new(
                    Code::MemoryExhausted,
                    "the query needs more memory than the server's pool has free; retry when \
                     fewer queries run, or reduce the data it sorts, groups or joins",
                )
                .with_query(query_id)
            }
            _ if let Some(r) = RemoteError::find(e) => {
                error!(query_id, error = %e, class = r.class.as_str(), "Remote statement failed.");
                let err = match r.class {
                    ErrorClass::Unavailable => Self::source_unavailable(r.message.clone()),
                    ErrorClass::Upstream => Self::upstream(r.message.clone()),
                    ErrorClass::Data => Self::new(Code::DataError, r.message.clone()),
                    ErrorClass::Timeout => Self::new(Code::QueryTimeout, r.message.clone()),
                    ErrorClass::Cancelled => Self::cancelled(),
                };
                err.with_query(query_id)
            }
            _ if is_upstream(e) => {
                error!(query_id, error = %e, "Upstream read failed.");
                Self::upstream(
                    "reading from a source failed; the server log has details under this query id",
                )
                .with_query(query_id)
            }
            _ => Self::internal(Some(query_id), &format!("{e:?}")),
        }
    }

    /// The JSON body every HTTP-carried door sends.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message: self.message.clone(),
                query_id: self.query_id.clone(),
            },
        }
    }
}

/// `Retry-After` is whole seconds: round up so a client that waits it is let in.
fn round_up_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(Duration::from_secs(1))
}

/// The panic message when `e` is a task that DataFusion joined and found panicked.
fn panic_in(e: &DataFusionError) -> Option<String> {
    causes(e).find_map(|err| {
        let join = match err.downcast_ref::<DataFusionError>() {
            Some(DataFusionError::ExecutionJoin(j)) => Some(j.as_ref()),
            _ => err.downcast_ref::<tokio::task::JoinError>(),
        };
        join.filter(|j| j.is_panic()).map(ToString::to_string)
    })
}

/// True when an object store or the file system failed somewhere in `e`'s chain (also when
/// the Parquet reader wraps it).
fn is_upstream(e: &DataFusionError) -> bool {
    causes(e).any(|err| {
        err.is::<object_store::Error>()
            || err.is::<std::io::Error>()
            || matches!(
                err.downcast_ref::<DataFusionError>(),
                Some(DataFusionError::ObjectStore(_) | DataFusionError::IoError(_))
            )
    })
}

/// Result with [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_errors_map_to_codes() {
        let cases: Vec<(PlanError, u16, Code)> = vec![
            (PlanError::Empty, 400, Code::SqlInvalid),
            (PlanError::MultipleStatements(2), 400, Code::ReadOnly),
            (PlanError::ReadOnly("INSERT".into()), 400, Code::ReadOnly),
            (
                PlanError::TableNotFound("a.b.c".into()),
                404,
                Code::TableNotFound,
            ),
            (PlanError::Params("x".into()), 400, Code::BadRequest),
            (
                PlanError::Unsupported(DataFusionError::NotImplemented("x".into())),
                501,
                Code::Unsupported,
            ),
            (
                PlanError::Execution(DataFusionError::ResourcesExhausted("x".into())),
                503,
                Code::MemoryExhausted,
            ),
            (
                PlanError::Execution(DataFusionError::Internal("secret detail".into())),
                500,
                Code::Internal,
            ),
        ];
        // The Parquet reader wraps a failed GET twice; it is still the source's failure.
        let missing = object_store::Error::NotFound {
            path: "t/part-1.parquet".into(),
            source: "gone".into(),
        };
        let wrapped = DataFusionError::ParquetError(Box::new(
            datafusion::parquet::errors::ParquetError::External(Box::new(missing)),
        ));
        let cases =
            cases
                .into_iter()
                .chain([(PlanError::Execution(wrapped), 502, Code::UpstreamError)]);
        for (e, status, code) in cases {
            let api = ApiError::from_plan(e, "q1");
            assert_eq!(api.code.http_status(), status, "{code}");
            assert_eq!(api.code, code);
            assert_eq!(api.query_id.as_deref(), Some("q1"));
            assert!(!api.message.contains("secret"));
        }
    }

    #[test]
    fn codes_are_distinct_and_capacity_refusals_wait() {
        let texts: std::collections::BTreeSet<&str> =
            Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(texts.len(), Code::ALL.len(), "every code has its own text");
        for c in Code::ALL {
            let waits = ApiError::new(*c, "x").retry_after().is_some();
            assert_eq!(waits, matches!(c.http_status(), 429 | 503), "{c}");
        }
    }
}
