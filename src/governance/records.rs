//! What the audit log records: authentication attempts, queries and administrative changes. Plain data: the log
//! (`audit`) queues them, the stores write them, and neither is imported here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// An authentication attempt.
    Auth,
    /// A query or explain.
    Query,
    /// An administrative change (the source registry, a config reload).
    Admin,
}

impl AuditKind {
    /// Its name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Query => "query",
            Self::Admin => "admin",
        }
    }
}

/// A query's part of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryAudit {
    /// Query id.
    pub query_id: String,
    /// `query` or `explain`.
    pub operation: String,
    /// The SQL as sent.
    pub sql: String,
    /// Its SHA-256, hex: finds the same statement across records.
    pub sql_sha256: String,
    /// Tables read (`source.schema.table`).
    pub tables: Vec<String>,
    /// Sources read.
    pub sources: Vec<String>,
    /// Rows returned.
    pub rows: u64,
    /// Bytes returned.
    pub bytes: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// The error code, when it failed.
    pub error_code: Option<String>,
}

/// An administrative change's part of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminChange {
    /// `source.create`, `source.replace`, `source.delete`, `config.reload`.
    pub action: String,
    /// What it changed: a source's name, or the config file's path.
    pub target: String,
    /// The entry before (none for a creation), without secrets.
    pub before: Option<serde_json::Value>,
    /// The entry after (none for a deletion), without secrets.
    pub after: Option<serde_json::Value>,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Unique: a batch retried after a lost reply is stored once.
    pub id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Authentication or query.
    pub kind: AuditKind,
    /// The key (claimed, for a failed authentication), or none.
    pub key_id: Option<String>,
    /// Client address.
    pub client: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// The door: `http`, `mcp`, `flight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<String>,
    /// `ok`, a refusal (`unknown_key`, `revoked`, ...) or the error code.
    pub outcome: String,
    /// For queries.
    pub query: Option<QueryAudit>,
    /// How many attempts this record stands for: 1, except for failed authentications, which
    /// are counted per client address and outcome over a window (a flood of bad keys is a
    /// few records, never one per request).
    #[serde(default = "one")]
    pub attempts: u64,
    /// For a bearer token: the issuer that signed it (never the token itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// For a bearer token: the subject it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// For a query with a trace (`[telemetry]` on): its W3C trace id, 32 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// For an administrative change: what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<AdminChange>,
}

fn one() -> u64 {
    1
}

impl AuditRecord {
    /// A record of `kind` now.
    pub fn new(kind: AuditKind, key_id: Option<String>, outcome: &str) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            at: Utc::now(),
            kind,
            key_id,
            client: None,
            user_agent: None,
            door: None,
            outcome: outcome.to_owned(),
            query: None,
            attempts: 1,
            issuer: None,
            subject: None,
            trace_id: None,
            change: None,
        }
    }
}

/// SHA-256 of a statement, hex.
pub fn sql_sha256(sql: &str) -> String {
    super::keys::digest(sql)
}
