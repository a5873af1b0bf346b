use std::sync::atomic::{AtomicUsize, Ordering};

use futures::FutureExt;
use sluice_planner::federation::dialect::postgres::PostgresDialect;

use super::stats::HealthPolicy;
use super::*;

/// A replica's probe that is never called here.
struct Idle;

impl ReplicaProbe for Idle {
    fn health_check(&self) -> BoxFuture<'_, crate::error::Result<()>> {
        async { Ok(()) }.boxed()
    }
}

/// An executor that counts statements and never runs one (routing only needs its presence).
#[derive(Debug, Default)]
struct Counting(AtomicUsize);

impl RemoteExecutor for Counting {
    fn name(&self) -> &str {
        "pg"
    }
    fn compute_context(&self) -> &str {
        "test"
    }
    fn dialect(&self) -> Arc<dyn SourceDialect> {
        PostgresDialect::shared()
    }
    fn execute(
        &self,
        _: &str,
        _: SchemaRef,
        _: &StatementContext,
    ) -> Result<SendableRecordBatchStream, RemoteError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Err(RemoteError::new("pg", ErrorClass::Unavailable, "refused"))
    }
    fn tables<'a>(
        &'a self,
        _: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<Vec<RemoteTableDef>, RemoteError>> {
        async { Ok(Vec::new()) }.boxed()
    }
}

fn policy() -> HealthPolicy {
    HealthPolicy {
        failures_to_open: 3,
        successes_to_close: 2,
        open_for: Duration::from_millis(30),
        max_open_for: Duration::from_millis(100),
        stable_after: Duration::from_secs(60),
    }
}

fn route(n: usize, executors: bool) -> Arc<SourceRoute> {
    let dir = std::env::temp_dir();
    let connector = crate::sources::object_store::ObjectStoreConnector::new(
        "pg",
        dir.to_str().unwrap_or("/tmp"),
        &Default::default(),
    )
    .unwrap();
    Arc::new(SourceRoute {
        name: "pg".into(),
        connector: Arc::new(connector),
        replicas: (0..n)
            .map(|index| {
                Arc::new(Replica {
                    source: "pg".into(),
                    index,
                    display: format!("replica {index}"),
                    executor: executors
                        .then(|| Arc::new(Counting::default()) as Arc<dyn RemoteExecutor>),
                    probe: Arc::new(Idle),
                    stats: ReplicaStats::new(policy()),
                })
            })
            .collect(),
        fallback: Some("lake".into()),
        gate: None,
    })
}

fn open(r: &Replica) {
    for _ in 0..3 {
        r.stats
            .record_check(Err("refused".into()), None, Duration::ZERO);
    }
    assert_eq!(r.stats.circuit(), Circuit::Open);
}

#[test]
fn the_faster_replica_takes_the_load_and_open_ones_none() {
    let router = Router::default();
    let pg = route(3, false);
    router.publish(Arc::clone(&pg));
    for _ in 0..20 {
        pg.replicas[0]
            .stats
            .record_statement_ok(Duration::from_millis(1));
        pg.replicas[1]
            .stats
            .record_statement_ok(Duration::from_millis(40));
        pg.replicas[2]
            .stats
            .record_statement_ok(Duration::from_millis(1));
    }
    open(&pg.replicas[2]);
    let mut counts = [0; 3];
    for _ in 0..1000 {
        counts[router.decide("pg").unwrap()] += 1;
    }
    assert_eq!(counts[2], 0, "an open replica gets nothing: {counts:?}");
    // With two closed replicas both are always the two choices: the better wins every time
    // while neither has statements in flight.
    assert_eq!(counts, [1000, 0, 0]);
}

#[test]
fn in_flight_load_spreads_statements() {
    let pg = route(2, false);
    for r in &pg.replicas {
        r.stats.record_statement_ok(Duration::from_millis(5));
    }
    let mut held = Vec::new();
    for _ in 0..100 {
        match pg.pick(&[]) {
            Pick::Replica(lease) => held.push(lease),
            Pick::None { .. } => panic!("no replica"),
        }
    }
    let on_first = held.iter().filter(|l| l.replica.index == 0).count();
    assert!(
        (40..=60).contains(&on_first),
        "{on_first} of 100 on replica 0"
    );
    assert_eq!(pg.replicas[0].stats.in_flight() as usize, on_first);
    drop(held);
    assert_eq!(pg.replicas[0].stats.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn every_replica_open_leaves_one_trial_at_a_time() {
    let router = Router::default();
    let pg = route(2, true);
    router.publish(Arc::clone(&pg));
    open(&pg.replicas[0]);
    open(&pg.replicas[1]);
    let names = ["pg".to_owned()];
    let err = router
        .acquire(&names, "k", None, &Avoid::new())
        .await
        .unwrap_err();
    match &err {
        RouteError::Unavailable {
            retry_after,
            fallback,
            reason,
            ..
        } => {
            assert_eq!(*retry_after, Duration::from_secs(1), "at least a second");
            assert_eq!(fallback.as_deref(), Some("lake"));
            assert_eq!(reason, "refused");
        }
        other => panic!("{other:?}"),
    }
    tokio::time::advance(Duration::from_millis(35)).await;
    let trial = router
        .acquire(&names, "k", None, &Avoid::new())
        .await
        .unwrap();
    // The other replica is due too: it takes the second trial; a third finds no slot.
    let second = router
        .acquire(&names, "k", None, &Avoid::new())
        .await
        .unwrap();
    assert_ne!(second.replicas, trial.replicas);
    assert!(
        router
            .acquire(&names, "k", None, &Avoid::new())
            .await
            .is_err()
    );
    drop(second);
    // The trial statement fails for the replica's sake: it is avoided on the retry.
    let executor = trial.executors.get("pg").unwrap();
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
    let context = StatementContext {
        query_id: "q".into(),
        deadline: None,
        pulled: Arc::default(),
        span: tracing::Span::none(),
        traceparent: None,
    };
    assert!(executor.execute("SELECT 1", schema, &context).is_err());
    assert_eq!(
        trial.retryable_failures(),
        [("pg".to_owned(), trial.replicas[0].1)]
    );
    let failed = trial.replicas[0].1;
    assert_eq!(
        pg.replicas[failed].stats.circuit(),
        Circuit::Open,
        "the trial reopened it"
    );
}

#[tokio::test]
async fn a_failed_replica_is_avoided_on_retry() {
    let router = Router::default();
    let pg = route(2, true);
    router.publish(Arc::clone(&pg));
    let names = ["pg".to_owned()];
    for _ in 0..50 {
        let avoid = Avoid::from([("pg".to_owned(), vec![0])]);
        let got = router.acquire(&names, "k", None, &avoid).await.unwrap();
        assert_eq!(got.replicas, [("pg".to_owned(), 1)]);
    }
    let avoid = Avoid::from([("pg".to_owned(), vec![0, 1])]);
    assert!(matches!(
        router.acquire(&names, "k", None, &avoid).await,
        Err(RouteError::Unavailable { .. })
    ));
}
