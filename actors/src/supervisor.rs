//! [`SourceSupervisor`]: the registry of source actors. It answers which sources exist and how
//! they are, whether a query's sources can serve it, and whether the server is ready.
//!
//! Replicas and scoring come later; this is the seam they plug into.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};
use futures::future::join_all;
use sluice_planner::federation::RemoteExecutor;

use crate::lifecycle::{GetStatus, Shutdown, SourceStatus};
use crate::source_actor::{Acquire, Refresh, RefreshReport, SourceActor};

/// Add a started source actor under its catalog name.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RegisterSource {
    /// Catalog name.
    pub name: String,
    /// The actor.
    pub addr: Addr<SourceActor>,
}

/// Every source's status, sorted by name.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<SourceStatus>")]
pub struct ListSources;

/// A statement starts on these sources: can they serve it, and on which executors (for
/// remote sources; the replica is picked here)?
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Executors, SourceUnavailable>")]
pub struct AcquireSources {
    /// Catalog names the query reads.
    pub names: Vec<String>,
}

/// The executor of each remote source a statement reads, by name.
pub type Executors = BTreeMap<String, Arc<dyn RemoteExecutor>>;

/// The first source that cannot serve, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source {name} is unavailable: {reason}")]
pub struct SourceUnavailable {
    /// Catalog name.
    pub name: String,
    /// The last health-check error (no credentials).
    pub reason: String,
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

/// Holds the source actors.
#[derive(Default)]
pub struct SourceSupervisor {
    sources: BTreeMap<String, Addr<SourceActor>>,
}

impl SourceSupervisor {
    fn statuses(&self) -> impl Future<Output = Vec<SourceStatus>> + use<> {
        let sends: Vec<_> = self.sources.values().map(|a| a.send(GetStatus)).collect();
        async move {
            join_all(sends)
                .await
                .into_iter()
                // A mailbox error means the actor is gone; it is simply not listed.
                .filter_map(Result::ok)
                .collect()
        }
    }
}

impl Actor for SourceSupervisor {
    type Context = Context<Self>;
}

impl Handler<RegisterSource> for SourceSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RegisterSource, _: &mut Self::Context) {
        self.sources.insert(msg.name, msg.addr);
    }
}

impl Handler<ListSources> for SourceSupervisor {
    type Result = ResponseFuture<Vec<SourceStatus>>;

    fn handle(&mut self, _: ListSources, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.statuses())
    }
}

impl Handler<AcquireSources> for SourceSupervisor {
    type Result = ResponseFuture<Result<Executors, SourceUnavailable>>;

    fn handle(&mut self, msg: AcquireSources, _: &mut Self::Context) -> Self::Result {
        let sends: Vec<_> = msg
            .names
            .into_iter()
            .map(|name| {
                let addr = self.sources.get(&name).cloned();
                async move {
                    // Catalogs with no actor (none today) are not gated.
                    let Some(addr) = addr else {
                        return Ok((name, None));
                    };
                    match addr.send(Acquire).await {
                        Ok(Ok(executor)) => Ok((name, executor)),
                        Ok(Err(reason)) => Err(SourceUnavailable { name, reason }),
                        Err(_) => Err(SourceUnavailable {
                            name,
                            reason: "the source actor stopped".to_owned(),
                        }),
                    }
                }
            })
            .collect();
        Box::pin(async move {
            let mut executors = Executors::new();
            for r in join_all(sends).await {
                if let (name, Some(executor)) = r? {
                    executors.insert(name, executor);
                }
            }
            Ok(executors)
        })
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
        actix::ActorContext::stop(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthState;
    use crate::sources::object_store::ObjectStoreConnector;
    use std::time::Duration;

    #[actix::test]
    async fn readiness_and_gating_follow_health() {
        let dir = tempfile::tempdir().unwrap();
        let good =
            ObjectStoreConnector::new("good", dir.path().to_str().unwrap(), &Default::default())
                .unwrap();
        let bad = ObjectStoreConnector::new("bad", "/no/such/folder", &Default::default()).unwrap();
        let rt = tokio::runtime::Handle::current();
        let fast = |c: ObjectStoreConnector, n: &str| {
            SourceActor::new(n, Arc::new(c), rt.clone())
                .with_timing(Duration::from_millis(50), Duration::from_secs(1))
                .start()
        };
        let sup = SourceSupervisor::default().start();
        sup.send(RegisterSource {
            name: "good".into(),
            addr: fast(good, "good"),
        })
        .await
        .unwrap();
        sup.send(RegisterSource {
            name: "bad".into(),
            addr: fast(bad, "bad"),
        })
        .await
        .unwrap();
        // Wait for the first probes to finish rather than sleeping a fixed time.
        let mut sources = sup.send(ListSources).await.unwrap();
        for _ in 0..100 {
            if sources
                .iter()
                .all(|s| s.health.state != HealthState::Starting)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            sources = sup.send(ListSources).await.unwrap();
        }
        let bad_state = sources
            .iter()
            .find(|s| s.name == "bad")
            .map(|s| s.health.state);
        assert_eq!(bad_state, Some(HealthState::Unavailable));
        let names: Vec<_> = sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["bad", "good"]);
        let executors = sup
            .send(AcquireSources {
                names: vec!["good".into()],
            })
            .await
            .unwrap()
            .unwrap();
        assert!(executors.is_empty(), "an object store has no executor");
        let err = sup
            .send(AcquireSources {
                names: vec!["good".into(), "bad".into()],
            })
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.name, "bad");
        assert!(err.reason.contains("/no/such/folder"), "{}", err.reason);
    }
}
