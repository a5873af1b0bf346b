//! Describing a statement without running it: what a door that prepares statements (Flight SQL,
//! the PostgreSQL protocol) answers before any row exists. Checked exactly as a run is (read-only,
//! tables, grants), on the query runtime, bounded by the query timeout; the checked plan is kept,
//! so the run that follows does not parse or resolve it again.

use sluice_planner::{Described, Params};
use sluice_schemas::api::{Operation, QueryParams, QueryRequest};

use super::QueryService;
use crate::error::{ApiError, Result};
use crate::governance::Principal;

impl QueryService {
    /// The result schema and placeholders of `request`'s statement as `principal` would run it
    /// (its parameters bound and checked when given). Nothing runs and nothing is recorded:
    /// the caller records a refusal as a call when it has one (`query_id` names it).
    ///
    /// # Errors
    /// `permission_denied`, `shutting_down`, and the statement's planning errors with their
    /// codes (`sql_invalid`, `read_only`, `table_not_found`, ...); `timeout`.
    pub async fn describe_statement(
        &self,
        principal: &Principal,
        request: &QueryRequest,
        query_id: &str,
    ) -> Result<Described> {
        principal.require(Operation::Query)?;
        if self.lifecycle.is_draining() {
            return Err(ApiError::shutting_down());
        }
        let planner = self.view(principal, request);
        let sql = request.sql.clone();
        let params = request.params.clone().map(|p| match p {
            QueryParams::Positional(v) => Params::Positional(v),
            QueryParams::Named(m) => Params::Named(m),
        });
        let timeout = self.timeout(request.timeout_ms);
        let task = self
            .runtime
            .spawn(async move { planner.describe(&sql, params.as_ref()).await });
        let abort = task.abort_handle();
        match tokio::time::timeout(timeout, task).await {
            Err(_) => {
                abort.abort();
                Err(ApiError::timeout(timeout).with_query(query_id))
            }
            Ok(Err(join)) if join.is_panic() => {
                let detail = super::producer::panic_message(join.into_panic().as_ref());
                Err(ApiError::panicked(query_id, &detail))
            }
            Ok(Err(join)) => Err(ApiError::internal(Some(query_id), &join)),
            Ok(Ok(described)) => described.map_err(|e| ApiError::from_plan(e, query_id)),
        }
    }
}
