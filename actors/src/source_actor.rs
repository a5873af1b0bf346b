//! [`SourceActor`]: owns one source's connector and health, and checks it on a timer.
//!
//! The probe itself runs on the query runtime (the one whose tasks own the source's network
//! connections), never inside the handler: the actor only starts it and records the result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, MessageResult, WrapFuture};
use tracing::{info, warn};

use crate::error::SourceError;
use crate::health::{HealthState, SourceHealth};
use crate::lifecycle::{GetStatus, Shutdown, SourceStatus};
use crate::metrics;
use crate::sources::Connector;

/// How often sources are probed.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// How long one probe may take before it counts as failed.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// One configured source.
pub struct SourceActor {
    name: String,
    connector: Arc<dyn Connector>,
    health: SourceHealth,
    runtime: tokio::runtime::Handle,
    interval: Duration,
    timeout: Duration,
    checking: bool,
}

impl SourceActor {
    /// A source actor whose probes run on `runtime`.
    pub fn new(
        name: impl Into<String>,
        connector: Arc<dyn Connector>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            name: name.into(),
            connector,
            health: SourceHealth::default(),
            runtime,
            interval: HEALTH_INTERVAL,
            timeout: HEALTH_TIMEOUT,
            checking: false,
        }
    }

    /// Overrides the probe interval and timeout (tests use short ones).
    pub fn with_timing(mut self, interval: Duration, timeout: Duration) -> Self {
        self.interval = interval;
        self.timeout = timeout;
        self
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        if self.checking {
            return;
        }
        self.checking = true;
        let connector = Arc::clone(&self.connector);
        let timeout = self.timeout;
        let probe = self.runtime.spawn(async move {
            let start = Instant::now();
            let outcome = match tokio::time::timeout(timeout, connector.health_check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(SourceError::Timeout(timeout).to_string()),
            };
            (outcome, start.elapsed())
        });
        ctx.spawn(probe.into_actor(self).map(|joined, act, _ctx| {
            act.checking = false;
            let (outcome, latency) = joined
                .unwrap_or_else(|_| (Err("health check task failed".to_owned()), Duration::ZERO));
            act.record(outcome, latency);
        }));
    }

    fn record(&mut self, outcome: Result<(), String>, latency: Duration) {
        let source = self.name.clone();
        let label = if outcome.is_ok() { "ok" } else { "error" };
        ::metrics::counter!(metrics::SOURCE_HEALTH_CHECKS_TOTAL, "source" => source.clone(), "outcome" => label)
            .increment(1);
        ::metrics::histogram!(metrics::SOURCE_HEALTH_CHECK_SECONDS, "source" => source.clone())
            .record(latency.as_secs_f64());
        if self.health.record(outcome, latency) {
            let state = self.health.state;
            match state {
                HealthState::Healthy => info!(source = %source, "Source became healthy."),
                _ => warn!(
                    source = %source,
                    state = state.as_str(),
                    error = self.health.last_error.as_deref().unwrap_or(""),
                    "Source health changed."
                ),
            }
        }
        let up = matches!(
            self.health.state,
            HealthState::Healthy | HealthState::Degraded
        );
        ::metrics::gauge!(metrics::SOURCE_UP, "source" => source).set(if up { 1.0 } else { 0.0 });
    }
}

impl Actor for SourceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.check(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.check(ctx));
    }
}

impl Handler<GetStatus> for SourceActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(SourceStatus {
            name: self.name.clone(),
            kind: self.connector.kind(),
            location: self.connector.display_location(),
            health: self.health.clone(),
        })
    }
}

impl Handler<Shutdown> for SourceActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        actix::ActorContext::stop(ctx);
    }
}
