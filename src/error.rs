//! [`ApiError`]: every failure a client can see, with its status and stable code. The HTTP
//! mapping lives here and nowhere else.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use datafusion::error::DataFusionError;
use sluice_planner::PlanError;
use sluice_planner::error::causes;
use sluice_planner::federation::{ErrorClass, RemoteError};
use sluice_schemas::api::{ErrorBody, ErrorDetail};
use tracing::error;

/// How long clients are told to wait after `503` and `429`.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Every code a client can see (API.md), for turning a recorded code back into one.
const CODES: &[&str] = &[
    "bad_request",
    "sql_invalid",
    "read_only",
    "unauthenticated",
    "permission_denied",
    "table_not_found",
    "source_not_found",
    "query_not_found",
    "not_found",
    "method_not_allowed",
    "not_acceptable",
    "query_cancelled",
    "result_too_large",
    "request_too_large",
    "unsupported_media_type",
    "data_error",
    "rate_limited",
    "too_many_queries",
    "unsupported",
    "upstream_error",
    "source_unavailable",
    "shutting_down",
    "query_timeout",
    "internal",
    "metadata_unavailable",
    "audit_unavailable",
];

/// The static code equal to `code`; `internal` for one this server does not give.
pub fn static_code(code: &str) -> &'static str {
    CODES
        .iter()
        .find(|c| **c == code)
        .copied()
        .unwrap_or("internal")
}

/// A client-visible error.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code from API.md.
    pub code: &'static str,
    /// Message safe to show the client.
    pub message: String,
    /// The query this belongs to.
    pub query_id: Option<String>,
    /// Extra `WWW-Authenticate` / `Retry-After` headers.
    retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let retry_after = match status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => Some(RETRY_AFTER),
            _ => None,
        };
        Self {
            status,
            code,
            message: message.into(),
            query_id: None,
            retry_after,
        }
    }

    /// How long the client is told to wait (`Retry-After`), if at all.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Attaches the query id.
    pub fn with_query(mut self, id: &str) -> Self {
        self.query_id = Some(id.to_owned());
        self
    }

    /// `400 bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// `401 unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// `403 permission_denied`.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_denied", message)
    }

    /// `404` with the given code.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// `413 result_too_large`.
    pub fn result_too_large(max_rows: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "result_too_large",
            format!("the result has more than {max_rows} rows (max_rows); add a LIMIT or a filter"),
        )
    }

    /// `429 too_many_queries`.
    pub fn too_many_queries(limit: u32) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_queries",
            format!("the server is already running {limit} queries; retry shortly"),
        )
    }

    /// `429 rate_limited`: the key's request rate is used up; `Retry-After` is the wait until
    /// the next request would be let in, rounded up to whole seconds.
    pub fn rate_limited(per_second: u32, wait: Duration) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this API key's rate limit ({per_second} requests per second) is used up; retry in {} ms",
                wait.as_millis().max(1)
            ),
        );
        e.retry_after = Some(round_up_secs(wait));
        e
    }

    /// `429 too_many_queries`: the key's own concurrent-query limit.
    pub fn too_many_key_queries(limit: u32, retry: Duration) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_queries",
            format!("this API key already runs {limit} queries, its limit; retry when one ends"),
        );
        e.retry_after = Some(round_up_secs(retry));
        e
    }

    /// `503 metadata_unavailable`: the audit log cannot keep the record of a new query (its
    /// store is unreachable and the policy refuses to run unaudited).
    pub fn audit_unavailable() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metadata_unavailable",
            "queries are paused: the audit log's store is unreachable; retry shortly",
        );
        e.retry_after = Some(Duration::from_secs(1));
        e
    }

    /// `503 metadata_unavailable`: a key not seen before cannot be looked up in the store.
    pub fn metadata_unavailable() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metadata_unavailable",
            "the key store is unreachable; retry shortly",
        );
        e.retry_after = Some(Duration::from_secs(1));
        e
    }

    /// Sets `Retry-After` (rounded up to whole seconds, at least one).
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(round_up_secs(wait));
        self
    }

    /// The error for a statement its sources could not take: `503 source_unavailable` (no
    /// replica can serve, or no slot freed within the queue timeout) or `429
    /// too_many_queries` (the source's queue is full), each with `Retry-After`.
    pub fn from_route(e: &sluice_actors::routing::RouteError) -> Self {
        use sluice_actors::routing::RouteError as R;
        match e {
            R::Unavailable { retry_after, .. } | R::QueueTimeout { retry_after, .. } => {
                Self::source_unavailable(e.to_string()).with_retry_after(*retry_after)
            }
            R::QueueFull { retry_after, .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_queries",
                e.to_string(),
            )
            .with_retry_after(*retry_after),
        }
    }

    /// `503 source_unavailable`.
    pub fn source_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "source_unavailable",
            message,
        )
    }

    /// `502 upstream_error` with a message that is safe to show.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream_error", message)
    }

    /// `504 query_timeout`.
    pub fn timeout(timeout: Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "query_timeout",
            format!("the query did not finish within {} ms", timeout.as_millis()),
        )
    }

    /// `409 query_cancelled`: the answer of a query cancelled by `DELETE`.
    pub fn cancelled() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "query_cancelled",
            "the query was cancelled (DELETE /v1/queries/{id})",
        )
    }

    /// `413 request_too_large`.
    pub fn request_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large", message)
    }

    /// `406 not_acceptable`.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, "not_acceptable", message)
    }

    /// `415 unsupported_media_type`.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// `503 shutting_down`: the server is draining and takes no new queries.
    pub fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down; retry on another replica",
        )
    }

    /// `500 internal` for a panic caught at a task boundary: counted, logged under the
    /// query id, and never shown.
    pub fn panicked(query_id: &str, detail: &str) -> Self {
        metrics::counter!(crate::metrics::PANICS_TOTAL).increment(1);
        Self::internal(Some(query_id), &format!("panic: {detail}"))
    }

    /// `500 internal`: the detail goes to the log under the query id, not to the client.
    pub fn internal(query_id: Option<&str>, detail: &dyn std::fmt::Display) -> Self {
        error!(query_id = query_id.unwrap_or(""), error = %detail, "Internal error.");
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has details under this query id",
        );
        e.query_id = query_id.map(str::to_owned);
        e
    }

    /// Maps a planner error, logging what must not be shown. This is the one mapping from
    /// every DataFusion, Arrow and source error to a status and code, used before the first
    /// byte, after it (for `GET /v1/queries/{id}`) and for explain alike.
    pub fn from_plan(e: PlanError, query_id: &str) -> Self {
        let sql_invalid = |m: String| Self::new(StatusCode::BAD_REQUEST, "sql_invalid", m);
        let err = match &e {
            PlanError::Empty
            | PlanError::Parse(_)
            | PlanError::Invalid(_)
            | PlanError::TooDeep(_) => sql_invalid(e.to_string()),
            PlanError::TooLarge(m) => Self::request_too_large(m.clone()),
            PlanError::MultipleStatements(_) | PlanError::ReadOnly(_) => {
                Self::new(StatusCode::BAD_REQUEST, "read_only", e.to_string())
            }
            PlanError::TableNotFound(_) => Self::not_found("table_not_found", e.to_string()),
            PlanError::SourceUnavailable { .. } => Self::source_unavailable(e.to_string()),
            PlanError::Params(_) => Self::bad_request(e.to_string()),
            PlanError::Unsupported(_) => {
                Self::new(StatusCode::NOT_IMPLEMENTED, "unsupported", e.to_string())
            }
            PlanError::Data(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "data_error",
                e.to_string(),
            ),
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
                Self::source_unavailable(
                    "the query needs more memory than the server's limit allows right now; \
                     retry later, or reduce the data it sorts, groups or joins",
                )
                .with_query(query_id)
            }
            _ if let Some(r) = RemoteError::find(e) => {
                error!(query_id, error = %e, class = r.class.as_str(), "Remote statement failed.");
                let err = match r.class {
                    ErrorClass::Unavailable => Self::source_unavailable(r.message.clone()),
                    ErrorClass::Upstream => Self::upstream(r.message.clone()),
                    ErrorClass::Data => Self::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "data_error",
                        r.message.clone(),
                    ),
                    ErrorClass::Timeout => Self::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "query_timeout",
                        r.message.clone(),
                    ),
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

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
                query_id: self.query_id.clone(),
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let Some(after) = self.retry_after {
            resp.insert_header((header::RETRY_AFTER, after.as_secs().to_string()));
        }
        if let Some(id) = &self.query_id {
            resp.insert_header((crate::http::QUERY_ID_HEADER, id.as_str()));
        }
        resp.json(self.body())
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
        let cases: Vec<(PlanError, u16, &str)> = vec![
            (PlanError::Empty, 400, "sql_invalid"),
            (PlanError::MultipleStatements(2), 400, "read_only"),
            (PlanError::ReadOnly("INSERT".into()), 400, "read_only"),
            (
                PlanError::TableNotFound("a.b.c".into()),
                404,
                "table_not_found",
            ),
            (PlanError::Params("x".into()), 400, "bad_request"),
            (
                PlanError::Unsupported(DataFusionError::NotImplemented("x".into())),
                501,
                "unsupported",
            ),
            (
                PlanError::Execution(DataFusionError::ResourcesExhausted("x".into())),
                503,
                "source_unavailable",
            ),
            (
                PlanError::Execution(DataFusionError::Internal("secret detail".into())),
                500,
                "internal",
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
                .chain([(PlanError::Execution(wrapped), 502, "upstream_error")]);
        for (e, status, code) in cases {
            let api = ApiError::from_plan(e, "q1");
            assert_eq!(api.status.as_u16(), status, "{code}");
            assert_eq!(api.code, code);
            assert_eq!(api.query_id.as_deref(), Some("q1"));
            assert!(!api.message.contains("secret"));
        }
    }
}
