//! [`ReplicaActor`]: owns one replica's active health checks and its circuit timers.
//!
//! Checks run every interval with ±10% jitter (so replicas and servers do not probe in
//! step), on the query runtime (which owns the replica's connections), never inside the
//! handler. While the replica's circuit is open and cooling down, no check runs: a dead
//! replica costs nothing. A check that panics is a fatal fault of this actor: it stops, and
//! the actix supervisor restarts it after an exponential backoff, counting restarts; the
//! panic never leaves the check's task.

use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Supervised, WrapFuture,
};
use tracing::{error, info, warn};

use crate::health::HealthState;
use crate::lifecycle::Shutdown;
use crate::metrics;
use crate::routing::Replica;

/// The longest backoff before a restarted actor checks again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One replica's checker.
pub struct ReplicaActor {
    replica: Arc<Replica>,
    runtime: tokio::runtime::Handle,
    interval: Duration,
    timeout: Duration,
    checking: bool,
    stopping: bool,
}

impl ReplicaActor {
    /// Checks `replica` every `interval`, each check bounded by `timeout`.
    pub fn new(
        replica: Arc<Replica>,
        runtime: tokio::runtime::Handle,
        interval: Duration,
        timeout: Duration,
    ) -> Self {
        Self {
            replica,
            runtime,
            interval,
            timeout,
            checking: false,
            stopping: false,
        }
    }

    fn labels(&self) -> (String, String) {
        (self.replica.source.clone(), self.replica.index.to_string())
    }

    fn schedule(&self, ctx: &mut Context<Self>, after: Duration) {
        ctx.run_later(after, |act, ctx| {
            act.check(ctx);
            let jitter = 0.9 + fastrand::f64() * 0.2;
            let next = act.interval.mul_f64(jitter);
            act.schedule(ctx, next);
        });
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        if self.checking || !self.replica.stats.begin_probe() {
            return;
        }
        self.checking = true;
        let probe = Arc::clone(&self.replica.probe);
        let timeout = self.timeout;
        let task = self
            .runtime
            .spawn(async move { crate::sources::check(probe.as_ref(), timeout).await });
        ctx.spawn(task.into_actor(self).map(|joined, act, ctx| {
            act.checking = false;
            match joined {
                Ok(c) => act.record(c.outcome, c.pressure, c.latency),
                Err(e) if e.is_panic() => {
                    error!(
                        source = %act.replica.source,
                        replica = act.replica.index,
                        "A replica check panicked; restarting its actor."
                    );
                    ctx.stop();
                }
                Err(_) => {}
            }
        }));
    }

    fn record(&mut self, outcome: Result<(), String>, pressure: Option<String>, latency: Duration) {
        let label = if outcome.is_ok() { "ok" } else { "error" };
        let (source, replica) = self.labels();
        ::metrics::counter!(metrics::SOURCE_HEALTH_CHECKS_TOTAL, "source" => source.clone(), "replica" => replica.clone(), "outcome" => label)
            .increment(1);
        ::metrics::histogram!(metrics::SOURCE_HEALTH_CHECK_SECONDS, "source" => source, "replica" => replica)
            .record(latency.as_secs_f64());
        if let Some(state) = self.replica.stats.record_check(outcome, pressure, latency) {
            let r = &self.replica;
            match state {
                HealthState::Healthy => {
                    info!(source = %r.source, replica = r.index, location = %r.display, "Replica became healthy.");
                }
                _ => warn!(
                    source = %r.source,
                    replica = r.index,
                    location = %r.display,
                    state = state.as_str(),
                    error = r.stats.snapshot().last_error.as_deref().unwrap_or(""),
                    "Replica health changed."
                ),
            }
        }
    }
}

impl Actor for ReplicaActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.stopping {
            ctx.stop();
            return;
        }
        let restarts = self.replica.stats.restarts();
        let backoff = if restarts == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(100)
                .saturating_mul(1 << restarts.min(16))
                .min(MAX_BACKOFF)
        };
        self.schedule(ctx, backoff);
    }
}

impl Supervised for ReplicaActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.checking = false;
        let n = self.replica.stats.count_restart();
        let (source, replica) = self.labels();
        ::metrics::counter!(metrics::ACTOR_RESTARTS_TOTAL, "source" => source, "replica" => replica)
            .increment(1);
        warn!(source = %self.replica.source, replica = self.replica.index, restarts = n, "Replica actor restarted.");
    }
}

impl Handler<Shutdown> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.stopping = true;
        ctx.stop();
    }
}
