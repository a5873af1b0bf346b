//! Refusals as PostgreSQL reports them: `ErrorResponse` with a SQLSTATE chosen from Sluice's
//! error code, the client-safe message, and the query id as the detail, so drivers branch on
//! the class (`42` syntax and names, `25006` read-only, `57014` cancelled) as with PostgreSQL.

use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::response::ErrorResponse;

use crate::error::{ApiError, Code};

/// SQLSTATEs this door answers with beyond those of Sluice's codes.
pub mod state {
    pub const SYNTAX_ERROR: &str = "42601";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const READ_ONLY_TRANSACTION: &str = "25006";
    pub const IN_FAILED_TRANSACTION: &str = "25P02";
    pub const NO_ACTIVE_TRANSACTION: &str = "25P01";
    pub const ACTIVE_TRANSACTION: &str = "25001";
    pub const INVALID_CURSOR_NAME: &str = "34000";
    pub const DUPLICATE_CURSOR: &str = "42P03";
    pub const INVALID_STATEMENT_NAME: &str = "26000";
    pub const DUPLICATE_STATEMENT: &str = "42P05";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const IDLE_SESSION_TIMEOUT: &str = "57P05";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const QUERY_CANCELED: &str = "57014";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const UNDEFINED_PARAMETER: &str = "42704";
    pub const CANT_CHANGE_RUNTIME_PARAM: &str = "55P02";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const INTERNAL: &str = "XX000";
}

/// The SQLSTATE of a Sluice error code.
pub fn sqlstate(code: Code) -> &'static str {
    match code {
        Code::BadRequest | Code::SqlInvalid => state::SYNTAX_ERROR,
        Code::ReadOnly => state::READ_ONLY_TRANSACTION,
        Code::Unauthenticated => state::INVALID_PASSWORD,
        Code::PermissionDenied | Code::InsufficientScope => state::INSUFFICIENT_PRIVILEGE,
        Code::TableNotFound => state::UNDEFINED_TABLE,
        Code::SourceNotFound | Code::QueryNotFound | Code::NotFound => "3D000",
        Code::MethodNotAllowed | Code::NotAcceptable | Code::UnsupportedMediaType => {
            state::FEATURE_NOT_SUPPORTED
        }
        Code::Unsupported => state::FEATURE_NOT_SUPPORTED,
        Code::QueryCancelled => state::QUERY_CANCELED,
        Code::PolicyExists
        | Code::PolicyFromConfig
        | Code::SourceExists
        | Code::SourceFromConfig => "42710",
        Code::NoConfigFile | Code::ConfigInvalid => "55000",
        Code::ResultTooLarge | Code::RequestTooLarge => state::PROGRAM_LIMIT_EXCEEDED,
        Code::DataError => "22000",
        Code::RateLimited | Code::TooManyQueries | Code::TooManySessions => "53400",
        Code::UpstreamError | Code::SourceUnavailable => "58000",
        Code::ShuttingDown => state::ADMIN_SHUTDOWN,
        Code::MetadataUnavailable | Code::SpoolUnavailable => "58030",
        Code::MemoryExhausted => "53200",
        Code::QueryTimeout => state::QUERY_CANCELED,
        Code::Internal => state::INTERNAL,
    }
}

/// An error to send: severity, SQLSTATE, message, and Sluice's code and query id.
#[derive(Debug, Clone)]
pub struct PgError {
    /// `ERROR` or `FATAL`.
    pub fatal: bool,
    /// The SQLSTATE.
    pub state: &'static str,
    /// The message.
    pub message: String,
    /// Sluice's code and the query id, as the detail.
    pub detail: Option<String>,
}

impl PgError {
    /// An `ERROR`.
    pub fn new(state: &'static str, message: impl Into<String>) -> Self {
        Self {
            fatal: false,
            state,
            message: message.into(),
            detail: None,
        }
    }

    /// A `FATAL`: the connection closes after it.
    pub fn fatal(state: &'static str, message: impl Into<String>) -> Self {
        Self {
            fatal: true,
            ..Self::new(state, message)
        }
    }

    /// The message.
    pub fn message(&self) -> PgWireBackendMessage {
        let severity = if self.fatal { "FATAL" } else { "ERROR" };
        let mut fields = vec![
            (b'S', severity.to_owned()),
            (b'V', severity.to_owned()),
            (b'C', self.state.to_owned()),
            (b'M', self.message.clone()),
        ];
        if let Some(d) = &self.detail {
            fields.push((b'D', d.clone()));
        }
        PgWireBackendMessage::ErrorResponse(ErrorResponse::new(fields))
    }
}

impl From<&ApiError> for PgError {
    fn from(e: &ApiError) -> Self {
        let detail = match &e.query_id {
            Some(id) => format!("sluice code {}, query {id}", e.code.as_str()),
            None => format!("sluice code {}", e.code.as_str()),
        };
        Self {
            fatal: false,
            state: sqlstate(e.code),
            message: e.message.clone(),
            detail: Some(detail),
        }
    }
}

impl From<ApiError> for PgError {
    fn from(e: ApiError) -> Self {
        (&e).into()
    }
}
