//! The plan of a statement: what runs locally, the SQL each source receives, and why anything
//! was not pushed down. Nothing is executed.

use sluice_schemas::api::{
    ExplainResponse, Operation, QueryRequest, RemoteStatementBody, StatementEstimate,
};

use super::plan::Deadline;
use super::registry::{EndIfDropped, QueryState};
use super::{Call, QueryService};
use crate::error::Result;

impl QueryService {
    /// The plan of `request` for `call`, under the row cap the query would get, so the plan
    /// and remote SQL shown are the ones that run.
    ///
    /// # Errors
    /// Admission refusals and the statement's planning errors, recorded.
    pub async fn explain(&self, call: &Call, request: &QueryRequest) -> Result<ExplainResponse> {
        call.record(async {
            self.admit(call, Operation::Explain)?;
            self.explain_admitted(call, request).await
        })
        .await
    }

    async fn explain_admitted(
        &self,
        call: &Call,
        request: &QueryRequest,
    ) -> Result<ExplainResponse> {
        let principal = &call.principal;
        call.auditor.set_sql(&request.sql);
        let max_rows = request
            .max_rows
            .unwrap_or(self.limits.max_rows)
            .min(self.limits.max_rows);
        let planner = self.view(principal, request);
        let entry = self
            .queries
            .start(&call.query_id, principal.key_id(), call.door);
        let _held = EndIfDropped::explain(&entry);
        entry.attach_audit(&call.auditor);
        entry.set_explained(&request.sql);
        let deadline = Deadline::after(self.timeout(None));
        let (planned, _) = self
            .plan(&planner, &entry, request, Some(max_rows), deadline)
            .await?;
        call.auditor.set_reads(&planned.tables, &planned.sources);
        entry.finish(QueryState::Finished, None);
        let (logical, mut physical) = planner.explain(&planned);
        if !principal.is_admin() {
            physical = planner.redact_locations(&physical);
        }
        let remote = planner
            .remote_statements(&planned)
            .into_iter()
            .map(|r| RemoteStatementBody {
                source: r.source,
                sql: r.sql,
                kept_local: r.kept_local,
                estimate: r.estimate.map(|(e, weighed)| StatementEstimate {
                    rows: e.rows,
                    width: e.width,
                    cost: e.cost,
                    weighed,
                }),
            })
            .collect();
        Ok(ExplainResponse {
            query_id: call.query_id.clone(),
            sources: planned.sources,
            tables: planned.tables,
            logical_plan: logical,
            physical_plan: physical,
            remote,
        })
    }
}
