//! Planning a statement on the query runtime: bounded by its deadline, cancellable, and with a
//! fallback standing in for a source whose every replica is down.

use std::time::Duration;

use sluice_planner::{Params, PlanError, PlannedQuery, Planner};
use sluice_schemas::api::{QueryParams, QueryRequest};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::QueryService;
use super::registry::QueryEntry;
use crate::error::{ApiError, Result};

/// A query served by a fallback: the planner that reads the fallback's tables under the
/// asked-for name, and which source that is.
pub(super) struct Fallback {
    pub planner: Planner,
    pub source: String,
    pub serving: String,
}

impl Fallback {
    pub fn new(planner: &Planner, source: String, serving: String) -> Self {
        Self {
            planner: planner.with_fallbacks(&[(source.clone(), serving.clone())]),
            source,
            serving,
        }
    }

    pub fn count(&self, query_id: &str) {
        metrics::counter!(sluice_actors::metrics::FALLBACKS_TOTAL, "source" => self.source.clone(), "fallback" => self.serving.clone())
            .increment(1);
        tracing::info!(query_id, source = %self.source, fallback = %self.serving, "Every replica is down; the fallback serves.");
    }

    /// The sources to acquire: the fallback in place of the source it stands in for.
    pub fn names(this: Option<&Self>, sources: &[String]) -> Vec<String> {
        sources
            .iter()
            .map(|s| match this {
                Some(f) if *s == f.source => f.serving.clone(),
                _ => s.clone(),
            })
            .collect()
    }
}

/// When a statement must be planned by, and the timeout that deadline came from (for the
/// message).
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    pub at: Instant,
    pub timeout: Duration,
}

impl Deadline {
    pub fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now() + timeout,
            timeout,
        }
    }
}

impl QueryService {
    /// Plans on the query runtime (planning lists files and reads footers), bounded by the
    /// deadline and cancellable. A failure is recorded on `entry` before it is returned.
    pub(super) async fn plan(
        &self,
        planner: &Planner,
        entry: &QueryEntry,
        request: &QueryRequest,
        max_rows: Option<u64>,
        deadline: Deadline,
    ) -> Result<(PlannedQuery, Option<Fallback>)> {
        let planned = async {
            let (name, reason) = match self
                .plan_once(planner, None, entry, request, max_rows, deadline)
                .await?
            {
                Ok(planned) => return Ok((planned, None)),
                Err(PlanError::SourceUnavailable { name, reason }) => (name, reason),
                Err(e) => return Err(ApiError::from_plan(e, &entry.id)),
            };
            let (name, serving) = self.fallback_for(name, reason, &entry.id)?;
            let fallback = Fallback::new(planner, name, serving);
            match self
                .plan_once(
                    &fallback.planner,
                    Some(&fallback.source),
                    entry,
                    request,
                    max_rows,
                    deadline,
                )
                .await?
            {
                Ok(planned) => Ok((planned, Some(fallback))),
                Err(e) => Err(ApiError::from_plan(e, &entry.id)),
            }
        };
        planned.await.inspect_err(|e| entry.fail(e))
    }

    /// A source that is down (its tables never loaded, or every replica of an object store is
    /// open) with a fallback: `(source, fallback)`, the fallback's tables to stand in. Without
    /// one, the refusal, with when to retry (a replica's cool-down's end).
    ///
    /// # Errors
    /// `source_unavailable`.
    pub(super) fn fallback_for(
        &self,
        name: String,
        reason: String,
        id: &str,
    ) -> Result<(String, String)> {
        let route = self.router.route(&name).filter(|r| r.all_down());
        let Some(serving) = route.as_ref().and_then(|r| r.fallback.clone()) else {
            let err = ApiError::from_plan(PlanError::SourceUnavailable { name, reason }, id);
            return Err(match route {
                Some(r) => err.with_retry_after(r.retry_after()),
                None => err,
            });
        };
        Ok((name, serving))
    }

    /// One planning attempt: `Err` for what stops the request (timeout, cancel, panic),
    /// `Ok(Err)` for the statement's own planning error. Object-store sources whose every
    /// replica is down are refused before planning lists their files (`standing_in`: the
    /// source a fallback serves, never refused); remote ones are left to the router's trickle.
    async fn plan_once(
        &self,
        planner: &Planner,
        standing_in: Option<&str>,
        entry: &QueryEntry,
        request: &QueryRequest,
        max_rows: Option<u64>,
        deadline: Deadline,
    ) -> Result<std::result::Result<PlannedQuery, PlanError>> {
        let id = entry.id.as_str();
        let router = std::sync::Arc::clone(&self.router);
        let skip = standing_in.map(str::to_owned);
        let gate: sluice_planner::SourceGate = std::sync::Arc::new(move |name: &str| {
            if skip.as_deref() == Some(name) {
                return None;
            }
            let route = router.route(name)?;
            let scan_only = route.replicas.iter().all(|r| r.executor.is_none());
            (scan_only && route.all_down()).then(|| {
                route
                    .health()
                    .last_error
                    .unwrap_or_else(|| "every replica is down".to_owned())
            })
        });
        let planner = planner.clone();
        let sql = request.sql.clone();
        let params = planner_params(request);
        let planned = self
            .planning(
                async move {
                    planner
                        .plan_gated(&sql, params.as_ref(), max_rows, Some(&gate))
                        .await
                },
                deadline,
                Some(&entry.cancel),
                id,
            )
            .await?;
        if let Ok(p) = &planned {
            entry.set_sources(p.sources.clone());
        }
        Ok(planned)
    }

    /// Runs planning `work` on the query runtime (planning lists files and reads footers),
    /// until `deadline`; stopped when `cancel` fires, and when the caller goes away (this
    /// future dropped: the client left).
    ///
    /// # Errors
    /// `query_timeout`, `query_cancelled`, `internal` for a panic or a lost task.
    pub(super) async fn planning<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
        deadline: Deadline,
        cancel: Option<&CancellationToken>,
        id: &str,
    ) -> Result<T> {
        let task = self.runtime.spawn(work);
        let _abort = AbortOnDrop(task.abort_handle());
        let cancelled = async {
            match cancel {
                Some(c) => c.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = cancelled => Err(ApiError::cancelled().with_query(id)),
            r = tokio::time::timeout_at(deadline.at, task) => match r {
                Err(_) => Err(ApiError::timeout(deadline.timeout).with_query(id)),
                Ok(Err(join)) if join.is_panic() => {
                    let detail = super::producer::panic_message(join.into_panic().as_ref());
                    Err(ApiError::panicked(id, &detail))
                }
                Ok(Err(join)) => Err(ApiError::internal(Some(id), &join)),
                Ok(Ok(done)) => Ok(done),
            },
        }
    }
}

/// A request's parameters as the planner takes them.
pub(super) fn planner_params(request: &QueryRequest) -> Option<Params> {
    request.params.clone().map(|p| match p {
        QueryParams::Positional(v) => Params::Positional(v),
        QueryParams::Named(m) => Params::Named(m),
    })
}

/// Aborts a task when dropped (a finished one is left as it is).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
