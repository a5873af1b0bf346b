//! [`SourceSupervisor`]: the registry of sources and their replicas.
//!
//! It starts one [`SourceActor`] per logical source (catalog refreshes) and one
//! [`ReplicaActor`] per replica (health checks, circuit timers) under actix's supervisor, which
//! restarts a replica actor that stopped on a fatal fault. It publishes each source's route to
//! the [`Router`], which the query path reads without a mailbox round trip.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};

use crate::lifecycle::{QueueStatus, ReplicaStatus, Shutdown, SourceStatus};
use crate::replica_actor::ReplicaActor;
use crate::routing::gate::FairGate;
use crate::routing::stats::{HealthPolicy, ReplicaStats};
use crate::routing::{Replica, Router, SourceRoute};
use crate::source_actor::{Refresh, RefreshReport, SourceActor};
use crate::sources::{BuiltSource, replicas_of};

/// Add a built source: start its actors and publish its route.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterSource {
    /// The source.
    pub built: BuiltSource,
    /// Whether its tables were loaded just now (before the actor).
    pub loaded: bool,
    /// One check of each replica, in order, made before the source is admitted (a source
    /// added or replaced while serving); empty at start, when the replicas' actors check
    /// first.
    pub probes: Vec<crate::sources::Checked>,
}

/// Stop a source's actors and take its route out of the router (a source removed from the
/// registry). Statements running on it keep their replica until they end; its pools close
/// when the last of them lets go. Answers whether there was one.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct RemoveSource {
    /// Catalog name.
    pub name: String,
}

/// Reload one source's tables now.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<RefreshReport, RefreshError>")]
pub struct RefreshSource {
    /// Catalog name.
    pub name: String,
}

/// Why [`RefreshSource`] did not refresh.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// No source has this name.
    #[error("no source is named {0}")]
    NotFound(String),
    /// The source could not be reached or its tables not loaded (no credentials in the text).
    #[error("source {name} could not be refreshed: {reason}")]
    Failed {
        /// Catalog name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// Holds the actors of every source.
pub struct SourceSupervisor {
    router: Arc<Router>,
    runtime: tokio::runtime::Handle,
    sources: BTreeMap<String, Addr<SourceActor>>,
    /// Each source's replica actors.
    replicas: BTreeMap<String, Vec<Addr<ReplicaActor>>>,
}

impl SourceSupervisor {
    /// A supervisor publishing to `router`, running checks on `runtime`.
    pub fn new(router: Arc<Router>, runtime: tokio::runtime::Handle) -> Self {
        Self {
            router,
            runtime,
            sources: BTreeMap::new(),
            replicas: BTreeMap::new(),
        }
    }

    /// Stops source `name`'s actors (without their addresses, supervised ones are not
    /// restarted); whether it had any.
    fn stop_actors(&mut self, name: &str) -> bool {
        let source = self.sources.remove(name);
        let replicas = self.replicas.remove(name).unwrap_or_default();
        if let Some(addr) = &source {
            addr.do_send(Shutdown);
        }
        for addr in &replicas {
            addr.do_send(Shutdown);
        }
        source.is_some() || !replicas.is_empty()
    }
}

impl Actor for SourceSupervisor {
    type Context = Context<Self>;
}

impl Handler<RegisterSource> for SourceSupervisor {
    type Result = ();

    /// A source of a name already registered is replaced: the old one's actors stop once the
    /// new route is published, so no statement finds the source missing in between.
    fn handle(&mut self, msg: RegisterSource, _: &mut Self::Context) {
        let b = msg.built;
        let old_source = self.sources.remove(&b.name);
        let old_replicas = self.replicas.remove(&b.name).unwrap_or_default();
        let policy = HealthPolicy::for_interval(b.health_interval);
        let replicas: Vec<Arc<Replica>> = replicas_of(&b.connector)
            .into_iter()
            .enumerate()
            .map(|(index, h)| {
                Arc::new(Replica {
                    source: b.name.clone(),
                    index,
                    display: h.display,
                    executor: h.executor,
                    probe: h.probe,
                    stats: ReplicaStats::new(policy),
                })
            })
            .collect();
        for (r, c) in replicas.iter().zip(msg.probes) {
            r.stats.record_check(c.outcome, c.pressure, c.latency);
        }
        let mut actors = Vec::with_capacity(replicas.len());
        for r in &replicas {
            let actor = ReplicaActor::new(
                Arc::clone(r),
                self.runtime.clone(),
                b.health_interval,
                b.check_timeout(),
            );
            actors.push(actix::Supervisor::start(move |_| actor));
        }
        self.replicas.insert(b.name.clone(), actors);
        let gate = b.concurrency.map(|c| {
            FairGate::new(
                usize::try_from(c.max).unwrap_or(usize::MAX),
                usize::try_from(c.max_queued).unwrap_or(usize::MAX),
                c.queue_timeout,
            )
        });
        let source = SourceActor::new(
            b.name.clone(),
            Arc::clone(&b.connector),
            self.runtime.clone(),
        )
        .with_tick(b.health_interval)
        .with_refresh(b.refresh_every, msg.loaded)
        .start();
        self.sources.insert(b.name.clone(), source);
        self.router.publish(Arc::new(SourceRoute {
            name: b.name,
            connector: b.connector,
            replicas,
            fallback: b.fallback,
            gate,
        }));
        if let Some(addr) = old_source {
            addr.do_send(Shutdown);
        }
        for addr in old_replicas {
            addr.do_send(Shutdown);
        }
    }
}

impl Handler<RemoveSource> for SourceSupervisor {
    type Result = bool;

    fn handle(&mut self, msg: RemoveSource, _: &mut Self::Context) -> bool {
        let routed = self.router.unpublish(&msg.name).is_some();
        self.stop_actors(&msg.name) || routed
    }
}

/// Every source's status, sorted by name, from the router's table (no actor is asked).
pub fn statuses(router: &Router) -> Vec<SourceStatus> {
    router.table().sources.values().map(|r| status(r)).collect()
}

/// One source's status.
pub fn status(route: &SourceRoute) -> SourceStatus {
    SourceStatus {
        name: route.name.clone(),
        kind: route.connector.kind(),
        location: route.connector.display_location(),
        health: route.health(),
        catalog: route.connector.catalog_status(),
        replicas: route
            .replicas
            .iter()
            .map(|r| ReplicaStatus {
                index: r.index,
                location: r.display.clone(),
                stats: r.stats.snapshot(),
            })
            .collect(),
        queue: route.gate.as_ref().map(|g| {
            let (running, queued) = g.load();
            QueueStatus {
                capacity: g.capacity(),
                running,
                queued,
            }
        }),
        fallback: route.fallback.clone(),
    }
}

impl Handler<RefreshSource> for SourceSupervisor {
    type Result = ResponseFuture<Result<RefreshReport, RefreshError>>;

    fn handle(&mut self, msg: RefreshSource, _: &mut Self::Context) -> Self::Result {
        let addr = self.sources.get(&msg.name).cloned();
        Box::pin(async move {
            let name = msg.name;
            let Some(addr) = addr else {
                return Err(RefreshError::NotFound(name));
            };
            match addr.send(Refresh).await {
                Ok(Ok(report)) => Ok(report),
                Ok(Err(reason)) => Err(RefreshError::Failed { name, reason }),
                Err(_) => Err(RefreshError::Failed {
                    name,
                    reason: "the source actor stopped".to_owned(),
                }),
            }
        })
    }
}

impl Handler<Shutdown> for SourceSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, ctx: &mut Self::Context) {
        for addr in self.sources.values() {
            addr.do_send(msg);
        }
        for addr in self.replicas.values().flatten() {
            addr.do_send(msg);
        }
        // Without addresses a supervised actor is not restarted.
        self.sources.clear();
        self.replicas.clear();
        actix::ActorContext::stop(ctx);
    }
}

#[cfg(test)]
mod tests;
