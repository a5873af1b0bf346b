//! [`SourceActor`]: owns one source's connector and health, and checks it on a timer.
//!
//! The probe itself runs on the query runtime (the one whose tasks own the source's network
//! connections), never inside the handler: the actor only starts it and records the result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, MessageResult,
    ResponseActFuture, WrapFuture,
};
use tracing::{info, warn};

use sluice_planner::federation::RemoteExecutor;

use crate::error::SourceError;
use crate::health::{HealthState, SourceHealth};
use crate::lifecycle::{GetStatus, Shutdown, SourceStatus};
use crate::metrics;
use crate::sources::Connector;

/// How often sources are probed.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// How long one probe may take before it counts as failed.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a source's tables are reloaded unless configured.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Reload the source's tables now (the admin call); answers how many it has.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<RefreshReport, String>")]
pub struct Refresh;

/// A statement starts on this source: answers the executor it runs on (remote sources), or
/// why the source cannot serve.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Option<Arc<dyn RemoteExecutor>>, String>")]
pub struct Acquire;

/// Answer to [`Refresh`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshReport {
    /// Tables after the refresh; `None` for a source without a catalog.
    pub tables: Option<usize>,
    /// How long it took.
    pub elapsed: Duration,
}

/// One configured source.
pub struct SourceActor {
    name: String,
    connector: Arc<dyn Connector>,
    health: SourceHealth,
    runtime: tokio::runtime::Handle,
    interval: Duration,
    timeout: Duration,
    checking: bool,
    /// `None`: only on demand (and until the first load succeeds).
    refresh_every: Option<Duration>,
    last_refresh: Option<Instant>,
}

/// Probes a source and, when asked, reloads its tables; both count as the check's outcome.
async fn probe(
    connector: Arc<dyn Connector>,
    timeout: Duration,
    refresh: bool,
) -> (Result<Option<usize>, String>, Duration) {
    let start = Instant::now();
    let checked = match tokio::time::timeout(timeout, connector.health_check()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(SourceError::Timeout(timeout).to_string()),
    };
    let latency = start.elapsed();
    let outcome = match checked {
        // The refresh is bounded by the store's own request timeouts and retries, not by the
        // probe's timeout: a big lake's footers can take longer than a list.
        Ok(()) if refresh => connector.refresh().await.map_err(|e| e.to_string()),
        Ok(()) => Ok(None),
        Err(e) => Err(e),
    };
    (outcome, latency)
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
            refresh_every: Some(REFRESH_INTERVAL),
            last_refresh: None,
        }
    }

    /// Sets how often the tables are reloaded (`None`: only on demand), and notes that they
    /// were just loaded (at start, before the actor).
    pub fn with_refresh(mut self, every: Option<Duration>, loaded_now: bool) -> Self {
        self.refresh_every = every;
        if loaded_now {
            self.last_refresh = Some(Instant::now());
        }
        self
    }

    fn refresh_due(&self) -> bool {
        let loaded = self
            .connector
            .catalog_status()
            .is_none_or(|s| s.tables.is_some());
        match (self.last_refresh, self.refresh_every) {
            // Never loaded: keep trying on every check.
            _ if !loaded => true,
            (None, _) => true,
            (Some(at), Some(every)) => at.elapsed() >= every,
            (Some(_), None) => false,
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
        let refresh = self.refresh_due();
        let probe = self
            .runtime
            .spawn(probe(Arc::clone(&self.connector), self.timeout, refresh));
        ctx.spawn(probe.into_actor(self).map(move |joined, act, _ctx| {
            act.checking = false;
            let (outcome, latency) = joined
                .unwrap_or_else(|_| (Err("health check task failed".to_owned()), Duration::ZERO));
            if refresh {
                act.refreshed(&outcome);
            }
            act.record(outcome.map(|_| ()), latency);
        }));
    }

    fn refreshed(&mut self, outcome: &Result<Option<usize>, String>) {
        let label = if outcome.is_ok() { "ok" } else { "error" };
        ::metrics::counter!(metrics::SOURCE_REFRESHES_TOTAL, "source" => self.name.clone(), "outcome" => label)
            .increment(1);
        match outcome {
            Ok(tables) => {
                self.last_refresh = Some(Instant::now());
                if let Some(n) = tables {
                    info!(source = %self.name, tables = n, "Source tables refreshed.");
                }
            }
            Err(e) => {
                warn!(source = %self.name, error = %e, "Source tables could not be refreshed.")
            }
        }
    }

    fn record(&mut self, outcome: Result<(), String>, latency: Duration) {
        let source = self.name.clone();
        let label = if outcome.is_ok() { "ok" } else { "error" };
        ::metrics::counter!(metrics::SOURCE_HEALTH_CHECKS_TOTAL, "source" => source.clone(), "outcome" => label)
            .increment(1);
        ::metrics::histogram!(metrics::SOURCE_HEALTH_CHECK_SECONDS, "source" => source.clone())
            .record(latency.as_secs_f64());
        let pressure = if outcome.is_ok() {
            self.connector.pressure()
        } else {
            None
        };
        if self.health.record_check(outcome, pressure, latency) {
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
            catalog: self.connector.catalog_status(),
        })
    }
}

impl Handler<Acquire> for SourceActor {
    type Result = MessageResult<Acquire>;

    fn handle(&mut self, _: Acquire, _: &mut Self::Context) -> Self::Result {
        if self.health.state == HealthState::Unavailable {
            return MessageResult(Err(self
                .health
                .last_error
                .clone()
                .unwrap_or_else(|| "failing health checks".to_owned())));
        }
        MessageResult(Ok(self.connector.executor()))
    }
}

impl Handler<Refresh> for SourceActor {
    type Result = ResponseActFuture<Self, Result<RefreshReport, String>>;

    fn handle(&mut self, _: Refresh, _: &mut Self::Context) -> Self::Result {
        let connector = Arc::clone(&self.connector);
        let timeout = self.timeout;
        let task = self.runtime.spawn(async move {
            let start = Instant::now();
            let (outcome, latency) = probe(connector, timeout, true).await;
            (outcome, latency, start.elapsed())
        });
        Box::pin(task.into_actor(self).map(|joined, act, _ctx| {
            let (outcome, latency, elapsed) = joined.unwrap_or_else(|_| {
                (
                    Err("refresh task failed".to_owned()),
                    Duration::ZERO,
                    Duration::ZERO,
                )
            });
            act.refreshed(&outcome);
            act.record(outcome.clone().map(|_| ()), latency);
            outcome.map(|tables| RefreshReport { tables, elapsed })
        }))
    }
}

impl Handler<Shutdown> for SourceActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        actix::ActorContext::stop(ctx);
    }
}
