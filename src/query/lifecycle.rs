//! Where the server is in its life (starting, serving, draining), whether it can take queries
//! (readiness joins its own capacity: the audit log), and the drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use sluice_schemas::api::{Capacity, Phase, Readiness};
use tracing::warn;

use super::QueryService;
use super::registry::QueryState;

/// Where the server is in its life, for readiness and for refusing new queries while
/// draining.
#[derive(Debug, Default)]
pub struct Lifecycle(AtomicU8);

impl Lifecycle {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Serving,
            _ => Phase::Draining,
        }
    }

    /// Moves to `phase`; draining is never left.
    pub fn set(&self, phase: Phase) {
        let v = match phase {
            Phase::Starting => 0,
            Phase::Serving => 1,
            Phase::Draining => 2,
        };
        self.0.fetch_max(v, Ordering::AcqRel);
    }

    /// True once the server was asked to stop.
    pub fn is_draining(&self) -> bool {
        self.phase() == Phase::Draining
    }
}

/// How long cancelled queries may take to let go of their slots when a drain ends.
const LET_GO_TIMEOUT: Duration = Duration::from_secs(5);

impl QueryService {
    /// Readiness of Sluice itself: ready while serving and able to take queries (the audit
    /// log can keep their records). Each source's state is reported, but one unavailable
    /// source does not make the server unready, or every replica would leave the load
    /// balancer together.
    pub fn readiness(&self) -> Readiness {
        let phase = self.lifecycle.phase();
        let audit = self.governance.audit.status();
        let free = u32::try_from(self.slots.available_permits()).unwrap_or(u32::MAX);
        let running = self.limits.max_concurrent_queries.saturating_sub(free);
        let capacity = Capacity {
            accepting_queries: audit.admits,
            audit: audit.state,
            audit_buffered: audit.buffered,
            audit_buffer_records: audit.capacity,
            queries_running: running,
            max_concurrent_queries: self.limits.max_concurrent_queries,
        };
        Readiness {
            ready: phase == Phase::Serving && capacity.accepting_queries,
            phase,
            capacity,
            sources: self.all_sources(),
        }
    }

    /// Drains, as SIGTERM does: readiness fails and new queries are refused with
    /// `shutting_down` at once; returns when the running queries have finished, or after
    /// cancelling those still running at `server.drain_timeout_ms`. Open MCP event streams are
    /// told to end.
    pub async fn drain(&self) {
        self.lifecycle.set(Phase::Draining);
        let all = self.limits.max_concurrent_queries;
        // Taking every slot means every running query has released its own.
        let slots = Arc::clone(&self.slots);
        let drained = tokio::time::timeout(
            self.drain_timeout,
            Arc::clone(&slots).acquire_many_owned(all),
        )
        .await;
        if drained.is_err() {
            warn!(
                queries = self.cancel_running(),
                "Draining: cancelled the queries still running at the drain deadline."
            );
            // A cancelled query lets go of its slot once its streams are dropped, which sends
            // the remote cancels.
            if tokio::time::timeout(LET_GO_TIMEOUT, slots.acquire_many_owned(all))
                .await
                .is_err()
            {
                warn!("Draining: cancelled queries did not end in time; stopping anyway.");
            }
        }
        self.closing.cancel();
    }

    /// Stops at once, as the process ending would, for a server whose runtime outlives it
    /// (one embedded in another program, or a test's): new queries are refused, running ones
    /// cancelled, and the listeners and tasks on the query runtime (Flight SQL, PostgreSQL,
    /// MCP streams, the spool's sweeper) told to end. Without it they would serve on, holding
    /// the sources' pools, after the HTTP server that owned them is gone.
    pub fn stop_now(&self) {
        self.lifecycle.set(Phase::Draining);
        self.cancel_running();
        self.closing.cancel();
    }

    /// Cancels every running query; how many there were.
    fn cancel_running(&self) -> usize {
        let running = self
            .queries
            .list(usize::MAX, |e| e.state() == QueryState::Running);
        for e in &running {
            e.cancel.cancel();
        }
        running.len()
    }
}
