//! The JSON of Snowflake's driver protocol, as far as Sluice reads it. Every field real
//! Snowflake may leave out (or an emulator omits) is optional.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Every response: `data` plus success or an error code and message.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    /// The payload (on failure, at most an error code and SQL state).
    pub data: Option<T>,
    /// `false`: the request failed; see `code` and `message`.
    #[serde(default)]
    pub success: bool,
    /// Snowflake's error code (`002003`), or a progress code (`333333`).
    #[serde(default)]
    pub code: Option<String>,
    /// Snowflake's message.
    #[serde(default)]
    pub message: Option<String>,
}

/// `data` of a failed request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorData {
    /// SQL state (`42S02`).
    #[serde(default)]
    pub sql_state: Option<String>,
    /// Error code again.
    #[serde(default)]
    pub error_code: Option<String>,
    /// Where to poll a statement still running.
    #[serde(default)]
    pub get_result_url: Option<String>,
    /// The statement's id.
    #[serde(default)]
    pub query_id: Option<String>,
}

/// `data` of a login or a token renewal.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginData {
    /// The session token (login).
    #[serde(default)]
    pub token: Option<String>,
    /// The session token (renewal).
    #[serde(default)]
    pub session_token: Option<String>,
    /// Renews the session token without logging in again.
    #[serde(default)]
    pub master_token: Option<String>,
}

/// One column of a result.
#[derive(Debug, Clone, Deserialize)]
pub struct RowType {
    /// Column name.
    pub name: String,
    /// Snowflake's type, lower case (`fixed`, `text`, `timestamp_ntz`, …).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Digits, for `fixed`.
    #[serde(default)]
    pub precision: Option<i64>,
    /// Fractional digits: decimals for `fixed`, of a second for times and timestamps.
    #[serde(default)]
    pub scale: Option<i64>,
    /// May hold NULL.
    #[serde(default = "yes")]
    pub nullable: bool,
}

fn yes() -> bool {
    true
}

/// One further part of a large result, fetched from its URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chunk {
    /// Where it is (a pre-signed object-store URL).
    pub url: String,
    /// Rows it holds.
    #[serde(default)]
    pub row_count: u64,
    /// Bytes once decompressed.
    #[serde(default)]
    pub uncompressed_size: u64,
}

/// `data` of a statement's result.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryData {
    /// Snowflake's id of the statement.
    #[serde(default)]
    pub query_id: Option<String>,
    /// The columns.
    #[serde(default)]
    pub rowtype: Vec<RowType>,
    /// `arrow` or `json`.
    #[serde(default)]
    pub query_result_format: Option<String>,
    /// The first rows, as a base64 Arrow IPC stream (empty when there are none).
    #[serde(default)]
    pub rowset_base64: Option<String>,
    /// The first rows as JSON strings (the `json` format).
    #[serde(default)]
    pub rowset: Option<Vec<Vec<Option<String>>>>,
    /// Further parts.
    #[serde(default)]
    pub chunks: Vec<Chunk>,
    /// Headers to send with each chunk request.
    #[serde(default)]
    pub chunk_headers: Option<BTreeMap<String, String>>,
    /// The result's master key, sent as the SSE-C key when there are no chunk headers.
    #[serde(default)]
    pub qrmk: Option<String>,
}
