//! Request and response bodies of the HTTP API (`../shared/API.md`).

use serde::{Deserialize, Serialize};

/// `POST /v1/query` and `POST /v1/explain` JSON body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// One read-only SQL statement.
    pub sql: String,
    /// Values for `$1`-style (array) or `:name` / `$name` (object) placeholders.
    #[serde(default)]
    pub params: Option<QueryParams>,
    /// Wall-time limit; capped by the server's `limits.query_timeout_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Row limit; capped by the server's `limits.max_rows`.
    #[serde(default)]
    pub max_rows: Option<u64>,
}

/// Placeholder values: positional or named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QueryParams {
    /// `$1`, `$2`, ...
    Positional(Vec<serde_json::Value>),
    /// `:name` or `$name`.
    Named(serde_json::Map<String, serde_json::Value>),
}

/// Error body: `{"error": {"code", "message", "query_id"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable snake_case code (`sql_invalid`, `read_only`, ...).
    pub code: String,
    /// What went wrong, safe to show a user.
    pub message: String,
    /// The query this error belongs to, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
}
