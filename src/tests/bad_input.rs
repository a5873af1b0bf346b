//! Every bad input gets its status and code from API.md, leaks nothing internal, and leaves
//! the server serving.

use reqwest::Method;
use serde_json::json;

use crate::{ARROW, SLOW_SQL, TestApp};

#[actix_web::test]
async fn malformed_json_is_bad_request() {
    let app = TestApp::spawn().await;
    for body in [
        r#"{"sql": "SELECT 1""#,
        r#"{"sql": 1}"#,
        r#"{"query": "SELECT 1"}"#,
        "[]",
    ] {
        let resp = app
            .req(Method::POST, "/v1/query")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let v = app.expect_error(resp, 400, "bad_request").await;
        assert!(
            v["error"]["query_id"]
                .as_str()
                .is_some_and(|q| q.starts_with("q_"))
        );
    }
    let resp = app
        .req(Method::POST, "/v1/query")
        .header("Content-Type", "application/xml")
        .body("<sql/>")
        .send()
        .await
        .unwrap();
    app.expect_error(resp, 415, "unsupported_media_type").await;
    app.assert_serving().await;
}

#[actix_web::test]
async fn empty_and_multiple_statements() {
    let app = TestApp::spawn().await;
    for sql in ["", "   ", ";", "-- only a comment"] {
        let resp = app.query(json!({ "sql": sql }), ARROW).await;
        app.expect_error(resp, 400, "sql_invalid").await;
    }
    let resp = app.query(json!({"sql": "SELECT 1; SELECT 2"}), ARROW).await;
    app.expect_error(resp, 400, "read_only").await;
    app.assert_serving().await;
}

#[actix_web::test]
async fn writes_and_session_statements_are_read_only_errors() {
    let app = TestApp::spawn().await;
    for sql in [
        "CREATE TABLE t (a INT)",
        "INSERT INTO lineitem SELECT * FROM lineitem",
        "DELETE FROM nation",
        "DROP TABLE nation",
        "COPY (SELECT 1) TO '/tmp/sluice-test-copy.csv'",
        "SET datafusion.execution.batch_size = 1",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/'",
        "CREATE VIEW v AS SELECT 1",
    ] {
        let resp = app.query(json!({ "sql": sql }), ARROW).await;
        app.expect_error(resp, 400, "read_only").await;
    }
    assert!(!std::path::Path::new("/tmp/sluice-test-copy.csv").exists());
    // The catalog is unchanged: no table `t`, no view `v`.
    let resp = app.query(json!({"sql": "SELECT * FROM v"}), ARROW).await;
    app.expect_error(resp, 404, "table_not_found").await;
    app.assert_serving().await;
}

#[actix_web::test]
async fn unknown_table_and_column() {
    let app = TestApp::spawn().await;
    let resp = app
        .query(json!({"sql": "SELECT * FROM no_such_table"}), ARROW)
        .await;
    let v = app.expect_error(resp, 404, "table_not_found").await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("local.public.no_such_table")
    );
    let resp = app
        .query(json!({"sql": "SELECT * FROM nope.public.lineitem"}), ARROW)
        .await;
    app.expect_error(resp, 404, "table_not_found").await;
    let resp = app
        .query(json!({"sql": "SELECT no_such_column FROM lineitem"}), ARROW)
        .await;
    let v = app.expect_error(resp, 400, "sql_invalid").await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_column")
    );
    let resp = app.query(json!({"sql": "SELEC 1"}), ARROW).await;
    app.expect_error(resp, 400, "sql_invalid").await;
    app.assert_serving().await;
}

#[actix_web::test]
async fn bad_accept_is_not_acceptable() {
    let app = TestApp::spawn().await;
    for accept in ["text/html", "image/png", "application/json;q=0"] {
        let resp = app.query(json!({"sql": "SELECT 1"}), accept).await;
        assert!(resp.headers().contains_key("x-query-id"));
        let v = app.expect_error(resp, 406, "not_acceptable").await;
        assert!(v["error"]["message"].as_str().unwrap().contains("Accept"));
    }
    app.assert_serving().await;
}

#[actix_web::test]
async fn missing_or_wrong_key() {
    let app = TestApp::spawn().await;
    let url = format!("{}/v1/query", app.url);
    let cases = [
        app.client.post(&url),
        app.client.post(&url).bearer_auth("sluice_wrong"),
        app.client.post(&url).header("X-API-Key", "nope"),
        app.client
            .post(&url)
            .header("Authorization", format!("Basic {}", app.key)),
    ];
    for req in cases {
        let resp = req.json(&json!({"sql": "SELECT 1"})).send().await.unwrap();
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        app.expect_error(resp, 401, "unauthenticated").await;
    }
    for path in ["/v1/sources", "/v1/tables", "/v1/queries/q_x"] {
        let resp = app
            .client
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        app.expect_error(resp, 401, "unauthenticated").await;
    }
    // The other header form works.
    let resp = app
        .client
        .post(&url)
        .header("X-API-Key", &app.key)
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[actix_web::test]
async fn params_bind_and_mismatches_are_rejected() {
    let app = TestApp::spawn().await;
    let sql = "SELECT n_name FROM nation WHERE n_nationkey = $1";
    let resp = app
        .query(json!({"sql": sql, "params": [7]}), "application/json")
        .await;
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["rows"], json!([["GERMANY"]]));
    // Named, both spellings.
    for sql in [
        "SELECT n_name FROM nation WHERE n_nationkey = :k",
        "SELECT n_name FROM nation WHERE n_nationkey = $k",
    ] {
        let resp = app
            .query(json!({"sql": sql, "params": {"k": 7}}), "application/json")
            .await;
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["rows"], json!([["GERMANY"]]), "{sql}");
    }
    // A value is never spliced into SQL: an injection attempt is just a non-matching string.
    let resp = app
        .query(
            json!({"sql": "SELECT count(*) AS n FROM nation WHERE n_name = $1",
                   "params": ["x' OR '1'='1"]}),
            "application/json",
        )
        .await;
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["rows"], json!([[0]]));
    for (params, needle) in [
        (json!(["abc"]), "does not fit type Int64"),
        (json!([1.5]), "does not fit"),
        (json!([]), "no value"),
        (json!([1, 2]), "2 params"),
        (json!({"k": 1}), "positional"),
        (json!([[1]]), "must be a string"),
    ] {
        let resp = app
            .query(json!({"sql": sql, "params": params}), ARROW)
            .await;
        let v = app.expect_error(resp, 400, "bad_request").await;
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{params}: {msg}");
    }
    let resp = app.query(json!({"sql": sql}), ARROW).await;
    app.expect_error(resp, 400, "bad_request").await;
    app.assert_serving().await;
}

#[actix_web::test]
async fn timeout_is_504() {
    let app = TestApp::spawn().await;
    // The statement would run for minutes: the answer is the timeout's.
    let resp = app
        .query(json!({"sql": SLOW_SQL, "timeout_ms": 300}), ARROW)
        .await;
    let v = app.expect_error(resp, 504, "query_timeout").await;
    let id = v["error"]["query_id"].as_str().unwrap();
    let status = app.wait_query(id, |_| true).await;
    assert_eq!(status["state"], "failed");
    assert_eq!(status["error"]["code"], "query_timeout");
    app.assert_serving().await;
}

#[actix_web::test]
async fn over_max_rows_is_413() {
    let app = TestApp::spawn().await;
    let resp = app
        .query(
            json!({"sql": "SELECT * FROM lineitem", "max_rows": 100}),
            ARROW,
        )
        .await;
    app.expect_error(resp, 413, "result_too_large").await;
    // Over the limit within a first batch big enough to go out as its lead alone (the rest is
    // encoded after the head): still refused before the first byte.
    let resp = app
        .query(
            json!({"sql": "SELECT * FROM lineitem", "max_rows": 8000}),
            ARROW,
        )
        .await;
    app.expect_error(resp, 413, "result_too_large").await;
    // Exactly the limit is fine.
    let resp = app
        .query(
            json!({"sql": "SELECT * FROM nation", "max_rows": 25}),
            ARROW,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        crate::total_rows(&crate::read_arrow(&resp.bytes().await.unwrap())),
        25
    );
    // The server's limit caps what a request asks for.
    let app = TestApp::spawn_with(|c| c.limits.max_rows = 10).await;
    let resp = app
        .query(
            json!({"sql": "SELECT * FROM nation", "max_rows": 1000}),
            ARROW,
        )
        .await;
    app.expect_error(resp, 413, "result_too_large").await;
    app.assert_serving().await;
}

#[actix_web::test]
async fn concurrency_limit_is_429() {
    let app = TestApp::spawn_with(|c| c.limits.max_concurrent_queries = 1).await;
    let slow = app.query(json!({"sql": SLOW_SQL, "timeout_ms": 5000}), ARROW);
    let second = async {
        // Only once the slow query holds the one slot.
        for _ in 0..200 {
            if app.latest_running().await.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        app.query(json!({"sql": "SELECT 1"}), ARROW).await
    };
    let (slow, second) = futures::join!(slow, second);
    assert!(second.headers().contains_key("retry-after"));
    app.expect_error(second, 429, "too_many_queries").await;
    app.expect_error(slow, 504, "query_timeout").await;
    // The slot is released.
    app.assert_serving().await;
}

#[actix_web::test]
async fn memory_limit_fails_cleanly() {
    let app = TestApp::spawn_with(|c| c.limits.memory_limit_bytes = 2 << 20).await;
    let resp = app
        .query(
            json!({"sql": "SELECT count(*) FROM lineitem a JOIN lineitem b ON a.l_comment = b.l_comment"}),
            ARROW,
        )
        .await;
    // A code of its own: the server's memory pool, not a source, is what ran out; the same
    // statement may pass when fewer queries share the pool, so the client is told when to retry.
    assert!(resp.headers().contains_key("retry-after"));
    let v = app.expect_error(resp, 503, "memory_exhausted").await;
    assert!(v["error"]["message"].as_str().unwrap().contains("memory"));
    app.assert_serving().await;
}

#[actix_web::test]
async fn unknown_routes_and_queries_are_404() {
    let app = TestApp::spawn().await;
    let resp = app
        .req(Method::GET, "/v1/queries/q_nope")
        .send()
        .await
        .unwrap();
    app.expect_error(resp, 404, "query_not_found").await;
    let resp = app
        .req(Method::DELETE, "/v1/queries/q_nope")
        .send()
        .await
        .unwrap();
    app.expect_error(resp, 404, "query_not_found").await;
    let resp = app.req(Method::GET, "/v1/nope").send().await.unwrap();
    assert_eq!(resp.status(), 404);
}
