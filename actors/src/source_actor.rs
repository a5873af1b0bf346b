//! [`SourceActor`]: owns one logical source's catalog refreshes.
//!
//! Health lives with each replica ([`crate::ReplicaActor`]); this actor reloads the source's
//! tables on a timer (and on demand), on the query runtime, never inside the handler.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseActFuture, WrapFuture,
};
use tracing::{info, warn};

use crate::lifecycle::Shutdown;
use crate::metrics;
use crate::sources::Connector;

/// How often sources are probed unless configured.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// How long one probe may take before it counts as failed.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a source's tables are reloaded unless configured.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Reload the source's tables now (the admin call); answers how many it has.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<RefreshReport, String>")]
pub struct Refresh;

/// Answer to [`Refresh`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshReport {
    /// Tables after the refresh; `None` for a source without a catalog.
    pub tables: Option<usize>,
    /// How long it took.
    pub elapsed: Duration,
}

/// One configured logical source's catalog upkeep.
pub struct SourceActor {
    name: String,
    connector: Arc<dyn Connector>,
    runtime: tokio::runtime::Handle,
    /// How often a due refresh is looked for (the health interval).
    tick: Duration,
    refreshing: bool,
    /// `None`: only on demand (and until the first load succeeds).
    refresh_every: Option<Duration>,
    last_refresh: Option<Instant>,
}

impl SourceActor {
    /// A source actor whose refreshes run on `runtime`.
    pub fn new(
        name: impl Into<String>,
        connector: Arc<dyn Connector>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            name: name.into(),
            connector,
            runtime,
            tick: HEALTH_INTERVAL,
            refreshing: false,
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

    /// How often a due refresh is looked for; a source whose tables never loaded retries
    /// this often.
    pub fn with_tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    fn refresh_due(&self) -> bool {
        let loaded = self
            .connector
            .catalog_status()
            .is_none_or(|s| s.tables.is_some());
        match (self.last_refresh, self.refresh_every) {
            // Never loaded: keep trying on every tick.
            _ if !loaded => true,
            (None, _) => true,
            (Some(at), Some(every)) => at.elapsed() >= every,
            (Some(_), None) => false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.refreshing || !self.refresh_due() {
            return;
        }
        self.refreshing = true;
        let connector = Arc::clone(&self.connector);
        let task = self.runtime.spawn(async move { connector.refresh().await });
        ctx.spawn(task.into_actor(self).map(|joined, act, _| {
            act.refreshing = false;
            let outcome = joined
                .unwrap_or_else(|_| Err(crate::SourceError::Catalog("refresh task failed".into())))
                .map_err(|e| e.to_string());
            act.refreshed(&outcome);
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
}

impl Actor for SourceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.tick, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Refresh> for SourceActor {
    type Result = ResponseActFuture<Self, Result<RefreshReport, String>>;

    fn handle(&mut self, _: Refresh, _: &mut Self::Context) -> Self::Result {
        let connector = Arc::clone(&self.connector);
        let task = self.runtime.spawn(async move {
            let start = Instant::now();
            let outcome = connector.refresh().await.map_err(|e| e.to_string());
            (outcome, start.elapsed())
        });
        Box::pin(task.into_actor(self).map(|joined, act, _ctx| {
            let (outcome, elapsed) =
                joined.unwrap_or_else(|_| (Err("refresh task failed".to_owned()), Duration::ZERO));
            act.refreshed(&outcome);
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
