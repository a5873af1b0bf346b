use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::*;
use crate::health::HealthState;
use crate::routing::{Avoid, RouteError};
use crate::sources::object_store::ObjectStoreConnector;
use crate::sources::{Connector, ReplicaHandle, ReplicaProbe};

/// Waits (polling the router's table, which needs no actor) until `done` holds; no wall-clock
/// bound (a hung test is the harness's to stop), but a long wait says what it sees.
async fn until(router: &Router, done: impl Fn(&[SourceStatus]) -> bool) -> Vec<SourceStatus> {
    let start = Instant::now();
    let mut told = 0;
    loop {
        let s = statuses(router);
        if done(&s) {
            return s;
        }
        if start.elapsed().as_secs() / 10 > told {
            told = start.elapsed().as_secs() / 10;
            eprintln!("still waiting after {} s; sources: {s:#?}", told * 10);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn register(sup: &Addr<SourceSupervisor>, name: &str, connector: Arc<dyn Connector>) {
    sup.do_send(RegisterSource {
        built: BuiltSource::new(name.to_owned(), connector, (50, 0)),
        loaded: true,
        probes: Vec::new(),
    });
}

#[actix::test]
async fn health_follows_checks_and_gates_statements() {
    let dir = tempfile::tempdir().unwrap();
    let good = ObjectStoreConnector::new("good", dir.path().to_str().unwrap(), &Default::default())
        .unwrap();
    let bad = ObjectStoreConnector::new("bad", "/no/such/folder", &Default::default()).unwrap();
    let router = Router::new();
    let sup = SourceSupervisor::new(Arc::clone(&router), tokio::runtime::Handle::current()).start();
    register(&sup, "good", Arc::new(good));
    register(&sup, "bad", Arc::new(bad));
    let sources = until(&router, |s| {
        s.len() == 2 && s.iter().all(|s| s.health.state != HealthState::Starting)
    })
    .await;
    let names: Vec<_> = sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["bad", "good"]);
    assert_eq!(sources[0].health.state, HealthState::Unavailable);
    assert_eq!(sources[1].health.state, HealthState::Healthy);
    assert_eq!(sources[0].replicas.len(), 1);
    let acquired = router
        .acquire(&["good".into()], "k", None, &Avoid::new())
        .await
        .unwrap();
    assert!(
        acquired.executors.is_empty(),
        "an object store has no executor"
    );
    let err = router
        .acquire(&["good".into(), "bad".into()], "k", None, &Avoid::new())
        .await
        .unwrap_err();
    match err {
        RouteError::Unavailable {
            source_name,
            reason,
            ..
        } => {
            assert_eq!(source_name, "bad");
            assert!(reason.contains("/no/such/folder"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    sup.send(Shutdown).await.unwrap();
}

/// A source whose one replica's check panics the first `n` times, then passes.
#[derive(Debug)]
struct Panicky {
    panicked: AtomicBool,
}

struct PanickyProbe(Arc<Panicky>);

impl ReplicaProbe for PanickyProbe {
    fn health_check(&self) -> BoxFuture<'_, crate::error::Result<()>> {
        async move {
            if !self.0.panicked.swap(true, Ordering::SeqCst) {
                panic!("a fault in a source's check");
            }
            Ok(())
        }
        .boxed()
    }
}

impl Connector for Panicky {
    fn kind(&self) -> &'static str {
        "parquet"
    }
    fn display_location(&self) -> String {
        "test".into()
    }
    fn health_check(&self) -> BoxFuture<'_, crate::error::Result<()>> {
        async { Ok(()) }.boxed()
    }
    fn refresh(&self) -> BoxFuture<'_, crate::error::Result<Option<usize>>> {
        async { Ok(None) }.boxed()
    }
    fn catalog_status(&self) -> Option<sluice_planner::CatalogStatus> {
        None
    }
    fn replica_handles(&self) -> Option<Vec<ReplicaHandle>> {
        None
    }
}

#[actix::test]
async fn a_panicking_check_restarts_its_actor_with_backoff() {
    let panicky = Arc::new(Panicky {
        panicked: AtomicBool::new(false),
    });
    struct Wrapper(Arc<Panicky>);
    impl std::fmt::Debug for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Wrapper")
        }
    }
    impl Connector for Wrapper {
        fn kind(&self) -> &'static str {
            self.0.kind()
        }
        fn display_location(&self) -> String {
            self.0.display_location()
        }
        fn health_check(&self) -> BoxFuture<'_, crate::error::Result<()>> {
            self.0.health_check()
        }
        fn refresh(&self) -> BoxFuture<'_, crate::error::Result<Option<usize>>> {
            self.0.refresh()
        }
        fn catalog_status(&self) -> Option<sluice_planner::CatalogStatus> {
            None
        }
        fn replica_handles(&self) -> Option<Vec<ReplicaHandle>> {
            Some(vec![ReplicaHandle {
                display: "test".into(),
                executor: None,
                probe: Arc::new(PanickyProbe(Arc::clone(&self.0))),
            }])
        }
    }
    let router = Router::new();
    let sup = SourceSupervisor::new(Arc::clone(&router), tokio::runtime::Handle::current()).start();
    register(&sup, "p", Arc::new(Wrapper(panicky)));
    let sources = until(&router, |s| {
        s.first()
            .is_some_and(|s| s.health.state == HealthState::Healthy)
    })
    .await;
    let r = &sources[0].replicas[0].stats;
    assert_eq!(r.restarts, 1, "restarted once");
    assert_eq!(r.state, HealthState::Healthy, "and checking again");
    sup.send(Shutdown).await.unwrap();
}
