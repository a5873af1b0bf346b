//! Running a statement for a caller, from any door: the result cache first (a hit costs no
//! slot), then the key's and the server's slots, planning, routing to replicas (failing over
//! before the first byte) and the producer.

use sluice_actors::routing::Avoid;
use sluice_schemas::api::{Operation, QueryRequest};
use tracing::Instrument as _;

use super::answer::{CacheAnswer, RowCap, Started};
use super::encode::{Encode, MakeEncoder};
use super::plan::Deadline;
use super::producer::{self, QueryJob, StartError};
use super::registry::EndIfDropped;
use super::route::Route;
use super::{Call, QueryService, retry};
use crate::error::{ApiError, Result};
use crate::governance::Principal;
use crate::metrics as m;

impl QueryService {
    /// Runs one statement for `call` and starts its result, encoded by `encoder` on the query
    /// runtime. Admission is checked here whatever the door did before. The statement and its
    /// parameters are kept on the query's record, so [`Self::replay`] can run it again.
    ///
    /// # Errors
    /// Every refusal before the first piece, with its code; recorded on the query's record
    /// and its audit record.
    pub async fn run<E: Encode>(
        &self,
        call: &Call,
        request: &QueryRequest,
        cap: RowCap,
        encoder: MakeEncoder<E>,
    ) -> Result<Started<E::Piece>> {
        call.record(async {
            self.admit(call, Operation::Query)?;
            self.start(call, request, cap, encoder).await
        })
        .await
    }

    async fn start<E: Encode>(
        &self,
        call: &Call,
        request: &QueryRequest,
        cap: RowCap,
        encoder: MakeEncoder<E>,
    ) -> Result<Started<E::Piece>> {
        let principal = &call.principal;
        call.auditor.set_sql(&request.sql);
        let deadline = Deadline::after(self.timeout(request.timeout_ms));
        // The result cache, before any slot is taken: a hit costs no slot.
        let policies = self.policies(principal);
        let fingerprint = if policies.is_empty() {
            ""
        } else {
            policies.fingerprint()
        };
        let cache_key = self
            .cache
            .key(principal, request, &cap.cache_tag(), fingerprint);
        let mut ticket = None;
        if let Some(key) = cache_key {
            let looked = crate::telemetry::traced(|| {
                tracing::info_span!("cache lookup", sluice.cache_hit = tracing::field::Empty)
            });
            // A valid entry is answered without the lookup's future (which may wait on
            // another caller's run or ask Redis), boxed for the callers that need it.
            let found = match self.cache.valid(key, &self.planner) {
                Some(hit) => crate::cache::Lookup::Hit(hit),
                None => {
                    Box::pin(self.cache.lookup_missed(key, &self.planner, deadline.at))
                        .instrument(looked.clone())
                        .await
                }
            };
            looked.record(
                "sluice.cache_hit",
                matches!(found, crate::cache::Lookup::Hit(_)),
            );
            match found {
                crate::cache::Lookup::Hit(hit) => {
                    let entry = self
                        .queries
                        .start(&call.query_id, principal.key_id(), call.door);
                    entry.attach_audit(&call.auditor);
                    entry.set_request(request);
                    entry.set_cache_hit(true);
                    return super::hit::serve(
                        &self.runtime,
                        entry,
                        &call.auditor,
                        &encoder,
                        cap,
                        hit,
                    );
                }
                crate::cache::Lookup::Miss(t) => {
                    metrics::counter!(m::CACHE_MISSES_TOTAL).increment(1);
                    ticket = Some(t);
                }
            }
        }
        // Boxed: planning and execution make a future of many kilobytes, which every layer
        // above would otherwise carry (and copy as it is moved) on a cache hit too.
        let asked = Asked {
            deadline,
            policies,
            cache_key,
            ticket,
        };
        Box::pin(self.execute(call, request, cap, encoder, asked)).await
    }

    /// [`Self::start`] past the result cache: slots, planning, routing and the producer,
    /// under the policies and deadline the cache was asked with.
    async fn execute<E: Encode>(
        &self,
        call: &Call,
        request: &QueryRequest,
        cap: RowCap,
        encoder: MakeEncoder<E>,
        asked: Asked,
    ) -> Result<Started<E::Piece>> {
        let Asked {
            deadline,
            policies,
            cache_key,
            mut ticket,
        } = asked;
        let query_id = call.query_id.as_str();
        let principal = &call.principal;
        let auditor = &call.auditor;
        let (plan_rows, max_rows) = cap.limits();
        let (permit, key_permit) = self.take_slots(principal, query_id)?;
        // The policies the cache key was made with, whatever changed while it waited.
        let planner = self.view_with(principal, request, &policies);
        let entry = self.queries.start(query_id, principal.key_id(), call.door);
        let mut held = EndIfDropped::query(&entry);
        entry.attach_audit(auditor);
        entry.set_request(request);
        if ticket.is_some() {
            entry.set_cache_hit(false);
        }
        let count_refusal = |e: &ApiError| {
            // Failures after planning are counted by the producer.
            metrics::counter!(m::QUERIES_TOTAL, "outcome" => e.code.as_str(), "door" => call.door.as_str())
                .increment(1);
        };
        let mut route = Route {
            service: self,
            planner: &planner,
            entry: &entry,
            request,
            max_rows: plan_rows,
            deadline,
            key: principal.key_id().unwrap_or("anonymous"),
        };
        let (planned, fallback) = route
            .plan(&planner)
            .instrument(crate::telemetry::traced(|| tracing::info_span!("plan")))
            .await
            .inspect_err(count_refusal)?;
        auditor.set_reads(&planned.tables, &planned.sources);
        if let Err(e) = check_explain(principal, &planned) {
            let e = e.with_query(query_id);
            entry.fail(&e);
            return Err(e);
        }
        let (mut planned, mut acquired, mut fallback) = route
            .acquire(planned, fallback, &Avoid::new())
            .instrument(crate::telemetry::traced(|| {
                tracing::info_span!("source slots")
            }))
            .await
            .inspect_err(count_refusal)?;
        let (mut permit, mut key_permit) = (permit, key_permit);
        let mut avoid = Avoid::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let schema = planned.output_schema();
            let columns = crate::format::columns(&schema);
            let cache = match cache_key {
                Some(key) if fallback.is_none() && self.cache.may_keep(&planned) => {
                    Some(self.cache.collector(key, ticket.take(), &planned))
                }
                // Requests waiting for this result go on at once.
                _ => {
                    ticket = None;
                    None
                }
            };
            let job = QueryJob {
                planner: fallback
                    .as_ref()
                    .map_or_else(|| planner.clone(), |f| f.planner.clone()),
                planned,
                encoder: std::sync::Arc::clone(&encoder),
                max_rows,
                deadline: deadline.at,
                timeout: deadline.timeout,
                entry: std::sync::Arc::clone(&entry),
                permit,
                key_permit,
                acquired,
                may_retry: retry::may_retry(attempt),
                auditor: std::sync::Arc::clone(auditor),
                cache,
                trace: call.trace.clone(),
                query_span: tracing::Span::none(),
            };
            // The producer ends the record from here, whatever happens to this request.
            held.hand_over();
            let retry = match producer::start(job, &self.runtime).await {
                Ok(stream) => {
                    return Ok(Started {
                        stream,
                        columns,
                        fallback: fallback.map(|f| f.serving),
                        entry,
                        cache: CacheAnswer::Miss,
                    });
                }
                Err(StartError::Failed(e)) => {
                    // Ended by the producer already, unless its task ended without a word.
                    entry.fail(&e);
                    return Err(e);
                }
                Err(StartError::Retry(retry)) => *retry,
            };
            // Not over: planned again here (a retry lost on its way ends the record itself).
            held = retry.held;
            for (source, replica) in &retry.failed {
                metrics::counter!(sluice_actors::metrics::FAILOVERS_TOTAL, "source" => source.clone())
                    .increment(1);
                tracing::info!(query_id, source = %source, replica, attempt, "A replica failed before the first byte; retrying on another.");
                avoid.entry(source.clone()).or_default().push(*replica);
            }
            permit = retry.permit;
            key_permit = retry.key_permit;
            let replanned = if retry::time_left(deadline.at) {
                match route
                    .plan(&planner)
                    .instrument(crate::telemetry::traced(|| tracing::info_span!("plan")))
                    .await
                {
                    Ok((p, f)) => {
                        route
                            .acquire(p, f, &avoid)
                            .instrument(crate::telemetry::traced(|| {
                                tracing::info_span!("source slots")
                            }))
                            .await
                    }
                    Err(e) => Err(e),
                }
            } else {
                Err(retry.error)
            };
            match replanned {
                Ok((p, a, f)) => (planned, acquired, fallback) = (p, a, f),
                Err(e) => {
                    count_refusal(&e);
                    entry.fail(&e);
                    return Err(e);
                }
            }
        }
    }

    /// The full result of a recent query by the same key, run again under a new id and
    /// capped only by the server's `max_rows`. Nothing is recorded for an id the key did not
    /// run.
    ///
    /// # Errors
    /// `query_not_found` when the key ran no such recent query; then as [`Self::run`].
    pub async fn replay<E: Encode>(
        &self,
        principal: &Principal,
        client: &crate::governance::Client,
        id: &str,
        encoder: MakeEncoder<E>,
    ) -> Result<Started<E::Piece>> {
        let request = self.recent_request(principal, id)?;
        let call = self.call(principal, client, super::new_query_id(), Operation::Query);
        let cap = RowCap::Refuse(self.limits.max_rows);
        self.run(&call, &request, cap, encoder).await
    }
}

/// What [`QueryService::start`] asked the result cache with, for the run after a miss: the
/// deadline, the caller's policies, the key (none when the result may not be kept) and the
/// ticket to keep the result under.
struct Asked {
    deadline: Deadline,
    policies: std::sync::Arc<sluice_planner::PolicySet>,
    cache_key: Option<crate::cache::Key>,
    ticket: Option<crate::cache::Ticket>,
}

impl QueryService {
    /// The statement and parameters of a recent query, for the key that ran it only (admins
    /// included: the result is that key's view of the data).
    ///
    /// # Errors
    /// `query_not_found`.
    pub(super) fn recent_request(&self, principal: &Principal, id: &str) -> Result<QueryRequest> {
        self.queries
            .get(id)
            .filter(|e| e.key_id.as_deref() == principal.key_id())
            .and_then(|e| e.request())
            .ok_or_else(|| {
                ApiError::not_found(
                    crate::error::Code::QueryNotFound,
                    format!("no recent query {id} by this key (the last 1,024 queries are kept)"),
                )
            })
    }
}

/// `EXPLAIN ANALYZE` needs an admin (its output is made while it runs, from the plan's
/// internals, server paths included); `EXPLAIN` needs the explain operation.
fn check_explain(principal: &Principal, planned: &sluice_planner::PlannedQuery) -> Result<()> {
    if planned.is_analyze() && !principal.is_admin() {
        return Err(ApiError::permission_denied(
            "EXPLAIN ANALYZE needs an admin key; EXPLAIN (without ANALYZE) shows the plan",
        ));
    }
    if planned.is_explain() {
        return principal.require(Operation::Explain);
    }
    Ok(())
}
