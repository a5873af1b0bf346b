//! The service's orchestration without a server or a door: the order of admission, and
//! cache-or-run (a hit answers without a slot). The service runs over the embedded data, in an
//! actix System (its source actors need one), with the query runtime of the test itself.

use std::sync::Arc;

use futures::StreamExt;
use sluice_schemas::Config;
use sluice_schemas::api::{CreateKeyRequest, Grant, KeyRole, Operation, QueryRequest};

use super::{Batches, CacheAnswer, QueryService, RowCap, Started, new_query_id};
use crate::error::Code;
use crate::governance::{Client, Principal};

async fn service(f: impl FnOnce(&mut Config)) -> Arc<QueryService> {
    let mut config = Config::embedded(&crate::embedded_data_dir());
    f(&mut config);
    let (service, sources, _) =
        QueryService::build_from(&config, None, tokio::runtime::Handle::current())
            .await
            .unwrap();
    service.load(sources).await;
    service
}

/// A reader key with `operations` (all of a reader's when `None`), as its principal.
async fn reader(service: &QueryService, operations: Option<Vec<Operation>>) -> Principal {
    let created = service
        .create_key(
            &Principal::Anonymous,
            CreateKeyRequest {
                name: "r".into(),
                role: Some(KeyRole::Reader),
                grants: vec![Grant {
                    source: "local".into(),
                    schema: "*".into(),
                    table: "*".into(),
                }],
                operations,
                rate_limit: None,
                max_concurrent: None,
                expires_at: None,
                attributes: Default::default(),
            },
        )
        .await
        .unwrap();
    service
        .authenticate(Some(&created.key), &Client::default())
        .await
        .unwrap()
}

async fn run(
    service: &QueryService,
    principal: &Principal,
    sql: &str,
) -> crate::error::Result<Started<datafusion::arrow::array::RecordBatch>> {
    let call = service.call(
        principal,
        &Client::default(),
        new_query_id(),
        Operation::Query,
    );
    let request = QueryRequest {
        sql: sql.to_owned(),
        ..QueryRequest::default()
    };
    service
        .run(&call, &request, RowCap::Refuse(1_000_000), Batches::maker())
        .await
}

async fn rows(started: Started<datafusion::arrow::array::RecordBatch>) -> usize {
    started
        .stream
        .map(|b| b.unwrap().num_rows())
        .fold(0, |a, n| async move { a + n })
        .await
}

#[actix_web::test]
async fn admission_checks_what_the_key_may_do_before_whether_the_server_takes_queries() {
    let service = service(|c| c.auth.mode = sluice_schemas::AuthMode::ApiKey).await;
    let lister = reader(&service, Some(vec![Operation::List])).await;
    let querier = reader(&service, None).await;
    assert_eq!(
        run(&service, &querier, "SELECT 1")
            .await
            .map(|_| ())
            .err()
            .map(|e| e.code),
        None
    );
    service.lifecycle.set(sluice_schemas::api::Phase::Draining);
    // A key that may not query is told so even while the server drains: the first check is
    // what the key may do, the second whether the server takes queries.
    let e = run(&service, &lister, "SELECT 1").await.err().unwrap();
    assert_eq!(e.code, Code::PermissionDenied);
    let e = run(&service, &querier, "SELECT 1").await.err().unwrap();
    assert_eq!(e.code, Code::ShuttingDown);
    assert!(e.query_id.is_some(), "a refusal names its query");
    assert!(!service.readiness().ready, "a draining server is not ready");
}

#[actix_web::test]
async fn a_cached_answer_takes_no_slot_and_a_run_needs_one() {
    let service = service(|c| {
        c.auth.mode = sluice_schemas::AuthMode::None;
        c.limits.max_concurrent_queries = 1;
    })
    .await;
    let anyone = Principal::Anonymous;
    let sql = "SELECT n_name FROM nation ORDER BY n_name";
    let first = run(&service, &anyone, sql).await.unwrap();
    assert_eq!(first.cache, CacheAnswer::Miss);
    assert_eq!(rows(first).await, 25);
    // The one slot is taken by a query that runs for minutes (its first rows never come, so
    // its caller waits: a task of its own).
    let busy = {
        let service = Arc::clone(&service);
        actix_web::rt::spawn(
            async move { run(&service, &Principal::Anonymous, SLOW).await.map(|_| ()) },
        )
    };
    while service.slots.available_permits() > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let again = run(&service, &anyone, sql).await.unwrap();
    assert!(
        matches!(again.cache, CacheAnswer::Hit { .. }),
        "{:?}",
        again.cache
    );
    assert_eq!(rows(again).await, 25, "the hit is the whole result");
    let e = run(&service, &anyone, "SELECT 2").await.err().unwrap();
    assert_eq!(e.code, Code::TooManyQueries, "a run needs the slot");
    // The slot comes back when the busy query's caller leaves.
    busy.abort();
    while service.slots.available_permits() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        rows(run(&service, &anyone, "SELECT 3").await.unwrap()).await,
        1
    );
}

/// A statement that keeps the engine busy for minutes without producing a row.
const SLOW: &str = "SELECT sum(value) FROM generate_series(1, 10000000000)";
