//! Remote statements end when the query does; the source's health follows the server; TLS.

use std::time::{Duration, Instant};

use serde_json::json;
use sluice_schemas::{Config, SourceConfig};

use super::{app_with, json_rows, service_env, setup, setup_on, source, wait_source};
use crate::{ARROW, SLOW_PG_SECONDS, TestApp};

/// Backends running a statement for this query id.
pub(crate) async fn active(pg: &tokio_postgres::Client, query_id: &str) -> i64 {
    pg.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'",
        &[&format!("sluice:{query_id}")],
    )
    .await
    .unwrap()
    .get(0)
}

/// Waits until the newest running query has a statement running on the server.
pub(crate) async fn wait_active(pg: &tokio_postgres::Client, app: &TestApp) -> String {
    let mut waiting = crate::Waiting::new("the slow statement in pg_stat_activity");
    loop {
        let running = app.latest_running().await;
        if let Some(id) = &running
            && active(pg, id).await > 0
        {
            return id.clone();
        }
        waiting.pause(format!("{running:?}")).await;
    }
}

/// Waits until the remote statement of query `id` is gone, then checks that Sluice cancelled it
/// (the server's log says so under the query's application name): not left to finish, and not
/// ended by the `statement_timeout` Sluice sets as a backstop.
pub(crate) async fn assert_cancelled(pg: &tokio_postgres::Client, id: &str) {
    let mut waiting = crate::Waiting::new(format!("the remote statement of {id} to end"));
    loop {
        let n = active(pg, id).await;
        if n == 0 {
            break;
        }
        waiting.pause(n).await;
    }
    let log = std::fs::read_to_string(service_env("SLUICE_TEST_PG_LOG").unwrap()).unwrap();
    let mark = format!("|sluice:{id}|ERROR:  canceling statement due to user request");
    assert!(
        log.lines().any(|l| l.contains(&mark)),
        "the statement of {id} ended without being cancelled"
    );
}

pub(crate) fn slow_view() -> String {
    format!("CREATE VIEW slow AS SELECT pg_sleep({SLOW_PG_SECONDS}) IS NULL AS done;")
}

/// A query sent in the background: its answer, once it comes.
pub(super) type Pending = actix_web::rt::task::JoinHandle<reqwest::Result<reqwest::Response>>;

/// Sends `sql` (answered as Arrow) in the background.
fn send_in_background(app: &TestApp, sql: &str) -> Pending {
    let req = app
        .req(reqwest::Method::POST, "/v1/query")
        .header("Accept", ARROW)
        .json(&json!({ "sql": sql }));
    actix_web::rt::spawn(async move { req.send().await })
}

/// Starts `sql` in the background and returns once its statement runs on the server.
pub(super) async fn start_slow(
    app: &TestApp,
    pg: &tokio_postgres::Client,
    sql: &str,
) -> (String, Pending) {
    let running = send_in_background(app, sql);
    (wait_active(pg, app).await, running)
}

#[actix_web::test]
async fn cancel_disconnect_and_timeout_stop_the_remote_statement() {
    let Some((pg, url, schema)) = setup(&slow_view()).await else {
        return;
    };
    let app = app_with(source("pg", &url, &schema)).await;
    let sql = format!("SELECT * FROM pg.{schema}.slow");

    // DELETE /v1/queries/{id}.
    let (id, running) = start_slow(&app, &pg, &sql).await;
    app.cancel(&id).await;
    assert_cancelled(&pg, &id).await;
    drop(running);

    // The client goes away.
    let (id, running) = start_slow(&app, &pg, &sql).await;
    running.abort();
    assert_cancelled(&pg, &id).await;

    // A timeout: 504 for the client, and the statement gone from the server.
    let resp = app
        .query(json!({ "sql": sql, "timeout_ms": 700 }), ARROW)
        .await;
    let body = app.expect_error(resp, 504, "query_timeout").await;
    let id = body["error"]["query_id"].as_str().unwrap().to_owned();
    assert_cancelled(&pg, &id).await;

    // No connection was left behind mid-statement, and the source still answers.
    json_rows(
        &app,
        &format!("SELECT count(*) FROM pg.{schema}.slow WHERE false"),
    )
    .await;
    // (Discarded connections close as soon as their backend reads the end of the stream.)
    let mut waiting = crate::Waiting::new("no connection left mid-statement");
    loop {
        let stuck: i64 = pg
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'sluice%' \
                 AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)') \
                 AND query LIKE $1",
                &[&format!("%{schema}%")],
            )
            .await
            .unwrap()
            .get(0);
        if stuck == 0 {
            break;
        }
        waiting.pause(format!("{stuck} connections busy")).await;
    }
}

/// A server whose source `pg` (on `schema`) runs one statement at a time, the next waiting up
/// to `queue_timeout_ms` for the slot.
async fn one_slot(url: &str, schema: &str, queue_timeout_ms: u64) -> TestApp {
    let mut src = source("pg", url, schema);
    src.max_concurrency = 1;
    src.queue_timeout_ms = queue_timeout_ms;
    app_with(src).await
}

/// Sends a query that waits for `pg`'s one slot (held by `busy`); returns once it waits, with
/// its id and its request.
async fn queue_one(app: &TestApp, schema: &str, busy: &str) -> (String, Pending) {
    let queued = send_in_background(app, &format!("SELECT 1 FROM pg.{schema}.slow"));
    wait_source(app, "pg", |s| s["queue"]["queued"] == 1).await;
    let listed = app.get_json("/v1/queries?state=running").await;
    let ids: Vec<&str> = listed["queries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["query_id"].as_str())
        .filter(|id| *id != busy)
        .collect();
    assert_eq!(ids.len(), 1, "{listed}");
    (ids[0].to_owned(), queued)
}

#[actix_web::test]
async fn a_busy_source_queues_then_answers_source_unavailable() {
    let Some((pg, url, schema)) = setup(&slow_view()).await else {
        return;
    };
    let app = one_slot(&url, &schema, 300).await;
    let sql = format!("SELECT * FROM pg.{schema}.slow");
    let (id, busy) = start_slow(&app, &pg, &sql).await;
    let started = Instant::now();
    let resp = app
        .query(
            json!({ "sql": format!("SELECT 1 FROM pg.{schema}.slow") }),
            ARROW,
        )
        .await;
    assert!(resp.headers().contains_key("retry-after"));
    let body = app.expect_error(resp, 503, "source_unavailable").await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "it queued first: {waited:?}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no free slot within its queue timeout"),
        "{body}"
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sluice_source_queue_refusals_total")
                && l.contains("source=\"pg\"")
                && l.contains("reason=\"timeout\"")),
        "{metrics}"
    );
    // The slot is taken, the source itself is fine.
    let s = super::source_status(&app, "pg").await;
    assert_eq!(s["state"], "healthy", "{s}");
    assert_eq!(s["queue"]["running"], 1, "{s}");
    assert_eq!(s["queue"]["capacity"], 1, "{s}");
    app.cancel(&id).await;
    drop(busy);
    wait_source(&app, "pg", |s| s["queue"]["running"] == 0).await;
}

#[actix_web::test]
async fn a_query_that_waits_for_a_slot_ends_cancelled_when_its_client_leaves_or_it_is_cancelled() {
    let Some((pg, url, schema)) = setup(&slow_view()).await else {
        return;
    };
    let app = one_slot(&url, &schema, 3_600_000).await;
    let (busy_id, busy) = start_slow(&app, &pg, &format!("SELECT * FROM pg.{schema}.slow")).await;
    // A second query waits for the one slot (it is `running` to the API meanwhile); its
    // client leaves while it waits.
    let (id, queued) = queue_one(&app, &schema, &busy_id).await;
    queued.abort();
    // Its record ends, as cancelled, and it leaves the queue; the query holding the slot is
    // untouched.
    let ended = app.wait_query(&id, |v| v["state"] != "running").await;
    assert_eq!(ended["state"], "cancelled", "{ended}");
    assert_eq!(ended["error"]["code"], "query_cancelled", "{ended}");
    let s = wait_source(&app, "pg", |s| s["queue"]["queued"] == 0).await;
    assert_eq!(s["queue"]["running"], 1, "{s}");
    let held = app.get_json(&format!("/v1/queries/{busy_id}")).await;
    assert_eq!(held["state"], "running", "{held}");

    // One cancelled while it waits leaves the queue at once, and its client hears so.
    let (id, queued) = queue_one(&app, &schema, &busy_id).await;
    app.cancel(&id).await;
    let answer = queued.await.unwrap().unwrap();
    let body = app.expect_error(answer, 409, "query_cancelled").await;
    assert_eq!(body["error"]["query_id"], id.as_str(), "{body}");
    let s = wait_source(&app, "pg", |s| s["queue"]["queued"] == 0).await;
    assert_eq!(s["queue"]["running"], 1, "{s}");
    app.cancel(&busy_id).await;
    drop(busy);
    assert_cancelled(&pg, &busy_id).await;
}

#[actix_web::test]
async fn a_stopped_server_makes_the_source_unavailable_until_it_returns() {
    let turn = super::spare_turn().await;
    let Some((_pg, url, schema)) = setup_on(
        "SLUICE_TEST_PG_SPARE_URL",
        "CREATE TABLE t (x int4); INSERT INTO t VALUES (1), (2);",
    )
    .await
    else {
        return;
    };
    let app = app_with(source("spare", &url, &schema)).await;
    let sql = format!("SELECT sum(x) FROM spare.{schema}.t");
    assert_eq!(json_rows(&app, &sql).await["rows"], json!([[3]]));

    let spare = turn.stop().await;
    // Every query answers clearly, before and after health notices (how fast is a
    // benchmark's figure).
    let check = || async {
        let resp = app.query(json!({ "sql": sql }), "application/json").await;
        let body = app.expect_error(resp, 503, "source_unavailable").await;
        assert!(
            body["error"]["message"].as_str().unwrap().contains("spare"),
            "{body}"
        );
    };
    check().await;
    let s = wait_source(&app, "spare", |s| s["state"] == "unavailable").await;
    check().await;
    let reason = s["last_error"].as_str().unwrap();
    assert!(
        reason.contains("refused") || reason.contains("connect"),
        "{s}"
    );
    app.assert_serving().await;

    drop(spare);
    wait_source(&app, "spare", |s| s["state"] == "healthy").await;
    assert_eq!(json_rows(&app, &sql).await["rows"], json!([[3]]));
}

/// Whether the backend running `query_id` uses TLS.
async fn backend_ssl(pg: &tokio_postgres::Client, query_id: &str) -> bool {
    pg.query_one(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = $1",
        &[&format!("sluice:{query_id}")],
    )
    .await
    .unwrap()
    .get(0)
}

#[actix_web::test]
async fn tls_follows_sslmode() {
    let Some((pg, url, schema)) = setup(&slow_view()).await else {
        return;
    };
    let Some(ca) = service_env("SLUICE_TEST_PG_CA") else {
        return;
    };
    let with = |mode: &str| format!("{url}?sslmode={mode}");
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={ca}");
    let app = TestApp::spawn_unready_with(|c: &mut Config| {
        for (name, url) in [
            ("plain", with("disable")),
            ("enc", with("require")),
            ("verified", verified.clone()),
            ("untrusted", with("verify-full")),
        ] {
            c.sources
                .push(SourceConfig::Postgres(source(name, &url, &schema)));
        }
    })
    .await;
    for (name, ssl) in [("plain", false), ("enc", true), ("verified", true)] {
        let (id, running) =
            start_slow(&app, &pg, &format!("SELECT * FROM {name}.{schema}.slow")).await;
        assert_eq!(backend_ssl(&pg, &id).await, ssl, "{name}");
        app.cancel(&id).await;
        drop(running);
    }
    // verify-full against the system's roots: the test CA is not among them.
    let s = super::source_status(&app, "untrusted").await;
    assert_eq!(s["state"], "unavailable", "{s}");
    assert!(
        s["last_error"].as_str().unwrap().contains("certificate"),
        "{s}"
    );
    let resp = app
        .query(
            json!({ "sql": format!("SELECT * FROM untrusted.{schema}.slow") }),
            "application/json",
        )
        .await;
    app.expect_error(resp, 503, "source_unavailable").await;
}
