//! Describing a statement without running it: what a door that prepares statements (Flight SQL,
//! the PostgreSQL protocol) answers before any row exists. Checked exactly as a run is (read-only,
//! tables, grants), on the query runtime, bounded by the query timeout; the checked plan is kept,
//! so the run that follows does not parse or resolve it again.

use sluice_planner::{Described, PlanError};
use sluice_schemas::api::{Operation, QueryRequest};

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
        let deadline = super::plan::Deadline::after(self.timeout(request.timeout_ms));
        let (source, serving) = match self
            .describe_on(&planner, request, deadline, query_id)
            .await?
        {
            Ok(described) => return Ok(described),
            // As a run does: a source whose tables never loaded is served by its fallback.
            Err(PlanError::SourceUnavailable { name, reason }) => {
                self.fallback_for(name, reason, query_id)?
            }
            Err(e) => return Err(ApiError::from_plan(e, query_id)),
        };
        let fallback = super::plan::Fallback::new(&planner, source, serving);
        self.describe_on(&fallback.planner, request, deadline, query_id)
            .await?
            .map_err(|e| ApiError::from_plan(e, query_id))
    }

    /// One describe: `Err` for what stops the request, `Ok(Err)` for the statement's own.
    async fn describe_on(
        &self,
        planner: &sluice_planner::Planner,
        request: &QueryRequest,
        deadline: super::plan::Deadline,
        query_id: &str,
    ) -> Result<std::result::Result<Described, PlanError>> {
        let planner = planner.clone();
        let sql = request.sql.clone();
        let params = super::plan::planner_params(request);
        self.planning(
            async move { planner.describe(&sql, params.as_ref()).await },
            deadline,
            None,
            query_id,
        )
        .await
    }
}
