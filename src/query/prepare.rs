//! Describing a statement without running it: what a door that prepares statements (Flight SQL,
//! the PostgreSQL protocol) answers before any row exists. Checked exactly as a run is (read-only,
//! tables, grants), on the query runtime, bounded by the query timeout; the checked plan is kept,
//! so the run that follows does not parse or resolve it again.

use sluice_planner::{Described, Params, PlanError};
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
        let params = request.params.clone().map(|p| match p {
            QueryParams::Positional(v) => Params::Positional(v),
            QueryParams::Named(m) => Params::Named(m),
        });
        let timeout = self.timeout(request.timeout_ms);
        let deadline = super::plan::Deadline::after(timeout);
        let first = self
            .describe_on(&planner, &request.sql, params.clone(), deadline, query_id)
            .await?;
        let (source, serving) = match first {
            Ok(described) => return Ok(described),
            Err(PlanError::SourceUnavailable { name, reason }) => {
                // As a run does: a source whose tables never loaded is served by its fallback.
                match self
                    .router
                    .route(&name)
                    .filter(|r| r.all_down())
                    .and_then(|r| r.fallback.clone())
                {
                    Some(serving) => (name, serving),
                    None => {
                        return Err(ApiError::from_plan(
                            PlanError::SourceUnavailable { name, reason },
                            query_id,
                        ));
                    }
                }
            }
            Err(e) => return Err(ApiError::from_plan(e, query_id)),
        };
        let fallback = super::plan::Fallback::new(&planner, source, serving);
        self.describe_on(&fallback.planner, &request.sql, params, deadline, query_id)
            .await?
            .map_err(|e| ApiError::from_plan(e, query_id))
    }

    /// One describe on the query runtime, by `deadline`; given up (and stopped) when the
    /// caller goes away. `Err` for what stops the request, `Ok(Err)` for the statement's own.
    async fn describe_on(
        &self,
        planner: &sluice_planner::Planner,
        sql: &str,
        params: Option<Params>,
        deadline: super::plan::Deadline,
        query_id: &str,
    ) -> Result<std::result::Result<Described, PlanError>> {
        let planner = planner.clone();
        let sql = sql.to_owned();
        let task = self
            .runtime
            .spawn(async move { planner.describe(&sql, params.as_ref()).await });
        // Dropped with the call (the client left): the planning stops too.
        let _abort = AbortOnDrop(task.abort_handle());
        match tokio::time::timeout_at(deadline.at, task).await {
            Err(_) => Err(ApiError::timeout(deadline.timeout).with_query(query_id)),
            Ok(Err(join)) if join.is_panic() => {
                let detail = super::producer::panic_message(join.into_panic().as_ref());
                Err(ApiError::panicked(query_id, &detail))
            }
            Ok(Err(join)) => Err(ApiError::internal(Some(query_id), &join)),
            Ok(Ok(described)) => Ok(described),
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
