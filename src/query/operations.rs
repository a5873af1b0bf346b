//! Operating the server itself: its log level.

use sluice_schemas::api::{LogLevel, Operation};

use super::QueryService;
use crate::error::{ApiError, Result};
use crate::governance::Principal;

impl QueryService {
    /// The log filter in force (admins).
    ///
    /// # Errors
    /// `permission_denied` for a reader.
    pub fn log_level(&self, principal: &Principal) -> Result<LogLevel> {
        principal.require(Operation::Admin)?;
        Ok(LogLevel {
            level: crate::telemetry::level().unwrap_or_default(),
        })
    }

    /// Replaces the log filter (admins); the change is logged with who made it.
    ///
    /// # Errors
    /// `permission_denied` for a reader, `bad_request` for a filter that does not parse
    /// (nothing changes).
    pub fn set_log_level(&self, principal: &Principal, level: &str) -> Result<LogLevel> {
        principal.require(Operation::Admin)?;
        crate::telemetry::set_level(level).map_err(|e| ApiError::bad_request(e.to_string()))?;
        tracing::warn!(
            key_id = principal.key_id().unwrap_or("anonymous"),
            filter = level,
            "Log level changed through the API."
        );
        self.log_level(principal)
    }
}
