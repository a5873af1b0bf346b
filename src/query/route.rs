//! Taking a slot and a replica on each source a planned statement reads, with the fallback
//! standing in when every replica of a source is down.

use sluice_actors::routing::{Acquired, Avoid, RouteError};
use sluice_planner::{PlannedQuery, Planner};
use sluice_schemas::api::QueryRequest;

use super::QueryService;
use super::plan::{Deadline, Fallback};
use super::registry::QueryEntry;
use crate::error::{ApiError, Result};

/// Everything a statement needs to (re)plan and take its sources' replicas and slots.
pub(super) struct Route<'a> {
    pub service: &'a QueryService,
    pub planner: &'a Planner,
    pub entry: &'a std::sync::Arc<QueryEntry>,
    pub request: &'a QueryRequest,
    pub max_rows: u64,
    pub deadline: Deadline,
    /// Whose slots (a source's fair queue is per key).
    pub key: &'a str,
}

impl Route<'_> {
    /// Plans the statement with `planner`.
    pub async fn plan(&self, planner: &Planner) -> Result<(PlannedQuery, Option<Fallback>)> {
        self.service
            .plan(
                planner,
                self.entry,
                self.request,
                Some(self.max_rows),
                self.deadline,
            )
            .await
    }

    /// Takes a slot and a replica on each source `planned` reads (never one in `avoid`);
    /// when every replica of a source with a fallback is down, plans again with the fallback
    /// standing in for it. A refusal is recorded on the entry. A query cancelled while it
    /// waits for a slot (`DELETE /v1/queries/{id}`, a server stopping) leaves the queue at
    /// once.
    pub async fn acquire(
        &mut self,
        planned: PlannedQuery,
        fallback: Option<Fallback>,
        avoid: &Avoid,
    ) -> Result<(PlannedQuery, Acquired, Option<Fallback>)> {
        let entry = std::sync::Arc::clone(self.entry);
        tokio::select! {
            biased;
            () = entry.cancel.cancelled() => {
                let e = ApiError::cancelled().with_query(&entry.id);
                entry.fail(&e);
                Err(e)
            }
            taken = self.take(planned, fallback, avoid) => taken,
        }
    }

    /// [`Self::acquire`], not watching the query's cancellation.
    async fn take(
        &mut self,
        planned: PlannedQuery,
        fallback: Option<Fallback>,
        avoid: &Avoid,
    ) -> Result<(PlannedQuery, Acquired, Option<Fallback>)> {
        let id = self.entry.id.clone();
        let refused = |e: ApiError| {
            let e = e.with_query(&id);
            self.entry.fail(&e);
            e
        };
        let router = &self.service.router;
        let deadline = Some(self.deadline.at);
        let names = Fallback::names(fallback.as_ref(), &planned.sources);
        match router.acquire(&names, self.key, deadline, avoid).await {
            Ok(a) => {
                if let Some(f) = &fallback {
                    f.count(&id);
                }
                Ok((planned, a, fallback))
            }
            Err(RouteError::Unavailable {
                source_name,
                fallback: Some(serving),
                ..
            }) if fallback.is_none() => {
                let f = Fallback::new(self.planner, source_name, serving);
                let (planned, _) = self.plan(&f.planner).await?;
                let names = Fallback::names(Some(&f), &planned.sources);
                let acquired = router
                    .acquire(&names, self.key, deadline, avoid)
                    .await
                    .map_err(|e| refused(ApiError::from_route(&e)))?;
                f.count(&id);
                Ok((planned, acquired, Some(f)))
            }
            Err(e) => Err(refused(ApiError::from_route(&e))),
        }
    }
}
