//! Every answer tells the truth: statements DataFusion answers are answered, no statement
//! takes the process down, panics never pass for success, errors follow their cause, the
//! HTTP surface answers with the documented status for every misuse, authentication sits
//! in one place, and `/ready` speaks for Sluice.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{ARROW, SLOW_SQL, TestApp};

/// `POST /v1/query` with bare SQL, answered as JSON.
async fn sql(app: &TestApp, sql: &str) -> reqwest::Response {
    app.req(Method::POST, "/v1/query")
        .header("Content-Type", "application/sql")
        .body(sql.to_owned())
        .send()
        .await
        .unwrap()
}

/// The value of an unlabelled counter in `/metrics` (0 when absent).
async fn counter(app: &TestApp, name: &str) -> f64 {
    app.metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn time_functions_explain_show_and_describe_are_answered() {
    let app = TestApp::spawn().await;
    for q in [
        "SELECT now(), current_date, current_timestamp, current_time",
        "SELECT count(*) FROM orders WHERE o_orderdate > now() - INTERVAL '7 days'",
        "EXPLAIN SELECT 1",
        "EXPLAIN VERBOSE SELECT count(*) FROM nation",
        "EXPLAIN ANALYZE SELECT count(*) FROM nation",
        "SHOW TABLES",
        "SHOW COLUMNS FROM nation",
        "DESCRIBE nation",
    ] {
        let resp = sql(&app, q).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{q}: {body}");
        assert!(!body["rows"].as_array().unwrap().is_empty(), "{q}: {body}");
    }
    // now() is one instant in a statement.
    let body: Value = sql(&app, "SELECT now() = now() AS same")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["rows"], json!([[true]]));
}

#[actix_web::test]
async fn explain_analyze_runs_the_query_under_the_row_cap() {
    let app = TestApp::spawn().await;
    let resp = app
        .query(
            json!({"sql": "EXPLAIN ANALYZE SELECT l_orderkey FROM lineitem", "max_rows": 10}),
            "application/json",
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let plan = body["rows"][0][1].as_str().unwrap();
    // The cap (max_rows + 1) is on the query ANALYZE ran, which produced no more rows.
    assert!(plan.contains("fetch=11"), "{plan}");
    assert!(plan.contains("output_rows=11"), "{plan}");
}

#[actix_web::test]
async fn no_statement_takes_the_process_down() {
    let app = TestApp::spawn().await;
    let unions = format!("SELECT 1{}", " UNION ALL SELECT 1".repeat(3000));
    let chain = format!("SELECT 1{}", " + 1".repeat(20_000));
    let parens = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    for q in [&unions, &chain, &parens] {
        let resp = sql(&app, q).await;
        let v = app.expect_error(resp, 400, "sql_invalid").await;
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("more than") || msg.contains("deeper than"),
            "{msg}"
        );
    }
    // Within the limits, deep statements are answered.
    let unions = format!(
        "SELECT count(*) FROM (SELECT 1{})",
        " UNION ALL SELECT 1".repeat(999)
    );
    let body: Value = sql(&app, &unions).await.json().await.unwrap();
    assert_eq!(body["rows"], json!([[1000]]));
    let resp = sql(&app, &format!("SELECT 1{} AS n", " + 1".repeat(1000))).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["rows"], json!([[1001]]));
    app.assert_serving().await;
}

#[actix_web::test]
async fn panics_are_internal_errors_and_never_pass_for_success() {
    // One slot: if a panicking query kept its permit, the next query would get a 429.
    let app = TestApp::spawn_with(|c| c.limits.max_concurrent_queries = 1).await;
    let before = counter(&app, "sluice_panics_total").await;
    // Before the first byte: while planning (constant folding), and inside a DataFusion
    // operator running in a task of its own (the scan's partitions are read in parallel).
    for q in [
        "SELECT sluice_test_panic(1, 1)",
        "SELECT sum(sluice_test_panic(l_orderkey, 0)) FROM lineitem",
    ] {
        let resp = sql(&app, q).await;
        let id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
        let v = app.expect_error(resp, 500, "internal").await;
        assert_eq!(v["error"]["query_id"], id.as_str());
        assert!(!v["error"]["message"].as_str().unwrap().contains("panic"));
        let status = app.get_json(&format!("/v1/queries/{id}")).await;
        assert_eq!(status["state"], "failed", "{status}");
        assert_eq!(status["error"]["code"], "internal");
    }
    // After the first byte: the body is cut, never ended cleanly.
    let resp = sql(
        &app,
        "SELECT sluice_test_panic(value, 300000) FROM generate_series(1, 500000)",
    )
    .await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
    assert!(
        resp.bytes().await.is_err(),
        "a cut body must not read whole"
    );
    let status = app.wait_query(&id, |v| v["state"] != "running").await;
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["error"]["code"], "internal");
    assert!(counter(&app, "sluice_panics_total").await >= before + 3.0);
    // The slot came back and the server serves.
    app.assert_serving().await;
}

#[actix_web::test]
async fn an_internal_fault_is_500_internal_without_its_text() {
    use sluice_planner::test_hooks::FAULT_DETAIL;
    let app = TestApp::spawn().await;
    // Over a literal and over a column (the function is volatile, so both fail while running,
    // in an operator), and on both doors.
    for q in [
        "SELECT sluice_test_fault(1)",
        "SELECT sum(sluice_test_fault(l_orderkey)) FROM lineitem",
    ] {
        let resp = sql(&app, q).await;
        let id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
        let v = app.expect_error(resp, 500, "internal").await;
        assert!(!v.to_string().contains(FAULT_DETAIL), "{v}");
        assert_eq!(
            v["error"]["query_id"],
            id.as_str(),
            "the id to find it in the log"
        );
        let status = app.get_json(&format!("/v1/queries/{id}")).await;
        assert_eq!(status["error"]["code"], "internal", "{status}");
        assert!(!status.to_string().contains(FAULT_DETAIL), "{status}");

        let (_, m) = crate::mcp::answer(crate::mcp::modern(
            &app,
            &app.key,
            "tools/call",
            Some("query"),
            json!({"name": "query", "arguments": {"sql": q}}),
        ))
        .await;
        assert_eq!(m["result"]["isError"], true, "{m}");
        assert_eq!(
            m["result"]["structuredContent"]["error"]["code"], "internal",
            "{m}"
        );
        assert!(!m.to_string().contains(FAULT_DETAIL), "{m}");
    }
    app.assert_serving().await;
}

#[actix_web::test]
async fn errors_follow_their_cause_not_their_moment() {
    let app = TestApp::spawn().await;
    // The same failure met while planning (constants) and while running (columns).
    for (q, code, status) in [
        ("SELECT CAST('abc' AS INT)", "data_error", 422),
        ("SELECT CAST(n_name AS INT) FROM nation", "data_error", 422),
        ("SELECT 1 / 0", "data_error", 422),
        (
            "SELECT n_nationkey / (n_nationkey - n_nationkey) FROM nation",
            "data_error",
            422,
        ),
        (
            "SELECT CAST(n_nationkey + 200 AS TINYINT) FROM nation",
            "data_error",
            422,
        ),
        (
            "SELECT regexp_like(n_name, '(') FROM nation",
            "data_error",
            422,
        ),
        (
            "SELECT make_date(2020, n_nationkey + 13, 1) FROM nation",
            "data_error",
            422,
        ),
        ("SELECT to_timestamp(n_name) FROM nation", "data_error", 422),
        ("SELECT nope FROM nation", "sql_invalid", 400),
        ("SELECT n_name + 1 FROM nation", "sql_invalid", 400),
        (
            "WITH x AS (SELECT 1) INSERT INTO nation SELECT * FROM nation",
            "read_only",
            400,
        ),
    ] {
        let resp = sql(&app, q).await;
        let v = app.expect_error(resp, status, code).await;
        let id = v["error"]["query_id"].as_str().unwrap().to_owned();
        // GET /v1/queries/{id} reports the same code.
        let rec = app.get_json(&format!("/v1/queries/{id}")).await;
        assert_eq!(rec["error"]["code"], code, "{q}: {rec}");
    }
    app.assert_serving().await;
}

#[actix_web::test]
async fn misuse_of_the_http_surface_gets_its_documented_status() {
    let app = TestApp::spawn().await;
    // A wrong method on a known path: 405 with Allow.
    for (method, path, allow) in [
        (Method::GET, "/v1/query", "POST"),
        (Method::PUT, "/v1/queries/q_x", "GET, DELETE"),
        (Method::POST, "/v1/tables", "GET"),
    ] {
        let resp = app.req(method, path).send().await.unwrap();
        let got = resp.headers()["allow"].to_str().unwrap().to_owned();
        assert_eq!(got, allow, "{path}");
        app.expect_error(resp, 405, "method_not_allowed").await;
    }
    // A body over the limit: 413, and the server reads on.
    let big = "x".repeat(2 << 20);
    let resp = sql(&app, &big).await;
    assert!(resp.headers().contains_key("x-query-id"));
    app.expect_error(resp, 413, "request_too_large").await;
    // Unknown paths: 404 not_found.
    let resp = app.req(Method::GET, "/v1/nope").send().await.unwrap();
    app.expect_error(resp, 404, "not_found").await;
    // A cancelled query's own answer is 409.
    let run = app.query(json!({"sql": SLOW_SQL}), ARROW);
    let cancel = async {
        loop {
            if let Some(id) = app.latest_running().await {
                app.cancel(&id).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (resp, ()) = futures::join!(run, cancel);
    app.expect_error(resp, 409, "query_cancelled").await;
    app.assert_serving().await;
}

#[actix_web::test]
async fn the_request_limit_is_the_configured_one() {
    let app = TestApp::spawn_with(|c| c.limits.max_request_bytes = 200).await;
    let resp = sql(&app, &format!("SELECT 1 AS x -- {}", "y".repeat(150))).await;
    assert_eq!(resp.status(), 200);
    let resp = sql(&app, &format!("SELECT 1 AS x -- {}", "y".repeat(250))).await;
    let v = app.expect_error(resp, 413, "request_too_large").await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("200 bytes")
    );
}

#[actix_web::test]
async fn every_route_needs_a_key_except_the_open_ones() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::POST, "/v1/query"),
        (Method::POST, "/v1/explain"),
        (Method::GET, "/v1/queries"),
        (Method::GET, "/v1/queries/q_x"),
        (Method::DELETE, "/v1/queries/q_x"),
        (Method::GET, "/v1/sources"),
        (Method::POST, "/v1/sources/local/refresh"),
        (Method::GET, "/v1/tables"),
        (Method::GET, "/v1/tables/local.public.nation"),
        (Method::GET, "/v1/no-such-route"),
    ] {
        let resp = app
            .client
            .request(method.clone(), format!("{}{path}", app.url))
            .body("SELECT 1")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["www-authenticate"], "Bearer", "{path}");
        // Routes that start a query name it, a refusal included.
        if path == "/v1/query" || path == "/v1/explain" {
            let id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
            let v = app.expect_error(resp, 401, "unauthenticated").await;
            assert_eq!(v["error"]["query_id"], id.as_str());
        } else {
            app.expect_error(resp, 401, "unauthenticated").await;
        }
    }
    for path in ["/health", "/ready", "/metrics", "/openapi.json", "/docs"] {
        let resp = app
            .client
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let protected = TestApp::spawn_with(|c| c.auth.protect_metrics = true).await;
    let resp = protected
        .client
        .get(format!("{}/metrics", protected.url))
        .send()
        .await
        .unwrap();
    protected.expect_error(resp, 401, "unauthenticated").await;
    let resp = protected.req(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[actix_web::test]
async fn auth_none_is_refused_on_an_address_that_is_not_loopback() {
    // The rule holds for the address bound, whatever made it (here the config after it
    // was loaded, as `--listen` or an environment override would).
    let mut config = sluice_schemas::Config::embedded(&crate::testdata().join("tpch"));
    config.auth.mode = sluice_schemas::AuthMode::None;
    config.server.listen = "0.0.0.0:0".parse().unwrap();
    let err = sluice::Application::build(config, crate::query_runtime())
        .await
        .err()
        .expect("a public listener without auth must not start");
    assert!(err.to_string().contains("loopback"), "{err}");
    // And through the binary's `--listen`.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sluice.toml");
    std::fs::write(
        &cfg,
        format!(
            "[auth]\nmode = \"none\"\n[[sources]]\nname = \"local\"\nkind = \"parquet\"\nlocation = \"{}\"\n",
            crate::testdata().join("tpch").display()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["serve", "--config"])
        .arg(&cfg)
        .args(["--listen", "0.0.0.0:0"]);
    let out = crate::output(cmd).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[actix_web::test]
async fn ready_speaks_for_sluice_while_starting_serving_and_draining() {
    // Starting: a PostgreSQL source whose server accepts the connection and never answers
    // holds its first load for connect_timeout_ms; /health answers, /ready says 503.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = sluice_schemas::Config::embedded(&crate::testdata().join("tpch"));
    config.server.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.sources.push(sluice_schemas::SourceConfig::Postgres(
        sluice_schemas::PostgresSourceConfig {
            cache: true,
            name: "slow".into(),
            password_env: None,
            replicas: vec![format!("postgres://u@{silent_addr}/db?sslmode=disable")],
            max_concurrency: 1,
            connect_timeout_ms: 3_000,
            pool_wait_timeout_ms: 1_000,
            schemas: vec![],
            health_check_interval_ms: 60_000,
            refresh_interval_ms: 0,
            fallback: None,
            max_queued: 256,
            queue_timeout_ms: 10_000,
            pushdown: Default::default(),
        },
    ));
    let build = actix_web::rt::spawn(sluice::Application::build(config, crate::query_runtime()));
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}");
    let mut starting = Value::Null;
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{url}/ready")).send().await {
            assert_eq!(r.status(), 503);
            starting = r.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(starting["phase"], "starting", "{starting}");
    let health = client.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let app = build.await.unwrap().expect("server starts");
    drop(silent);
    // Serving, with one source unavailable: still ready.
    let ready = client.get(format!("{url}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let key = app.admin_key().unwrap().to_owned();
    let drainer = app.drainer();
    let handle = app.handle();
    actix_web::rt::spawn(app.run());

    // Draining: a running query holds the server up; /ready says 503 and new queries are
    // refused with shutting_down until it ends.
    let run = client
        .post(format!("{url}/v1/query"))
        .bearer_auth(&key)
        .json(&json!({"sql": SLOW_SQL}))
        .send();
    let drain = async {
        let mut id = None;
        while id.is_none() {
            let v: Value = client
                .get(format!("{url}/v1/queries?state=running"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            id = v["queries"][0]["query_id"].as_str().map(str::to_owned);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drained = actix_web::rt::spawn(drainer.drain());
        let mut r = client.get(format!("{url}/ready")).send().await.unwrap();
        while r.status() == 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            r = client.get(format!("{url}/ready")).send().await.unwrap();
        }
        assert_eq!(r.status(), 503);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["phase"], "draining");
        let refused = client
            .post(format!("{url}/v1/query"))
            .bearer_auth(&key)
            .json(&json!({"sql": "SELECT 1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 503);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "shutting_down");
        // The running query ends (here: cancelled); then the drain stops the server.
        client
            .delete(format!("{url}/v1/queries/{}", id.unwrap()))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        drained.await.unwrap();
    };
    let (resp, ()) = futures::join!(run, drain);
    assert_eq!(resp.unwrap().status(), 409);
    assert!(client.get(format!("{url}/health")).send().await.is_err());
    drop(handle);
}

#[actix_web::test]
async fn the_openapi_document_covers_every_route_and_docs_needs_no_network() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .client
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v1/query", &["post"][..]),
        ("/v1/explain", &["post"]),
        ("/v1/queries", &["get"]),
        ("/v1/queries/{id}", &["get", "delete"]),
        ("/v1/queries/{id}/result", &["get"]),
        ("/v1/queries/{id}/spool", &["get", "delete"]),
        ("/v1/queries/{id}/spool/{index}", &["get"]),
        ("/v1/sources", &["get", "post"]),
        ("/v1/sources/{name}", &["put", "delete"]),
        ("/v1/sources/{name}/refresh", &["post"]),
        ("/v1/tables", &["get"]),
        ("/v1/tables/{name}", &["get"]),
        ("/v1/keys", &["get", "post"]),
        ("/v1/keys/{id}", &["delete"]),
        ("/v1/keys/{id}/rotate", &["post"]),
        ("/v1/keys/{id}/usage", &["get"]),
        ("/v1/policies", &["get", "post"]),
        ("/v1/policies/{name}", &["put", "delete"]),
        ("/v1/me", &["get"]),
        ("/v1/stats", &["get"]),
        ("/v1/admin/log", &["get", "put"]),
        ("/v1/admin/reload", &["post"]),
        ("/health", &["get"]),
        ("/ready", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
        ("/docs", &["get"]),
        ("/.well-known/oauth-protected-resource", &["get"]),
        ("/.well-known/oauth-protected-resource/mcp", &["get"]),
    ] {
        for m in methods {
            let op = &paths[path][*m];
            assert!(op.is_object(), "{m} {path} is not described");
            // Every guarded route documents its 401 with the error body.
            if path.starts_with("/v1/") {
                assert!(
                    op["responses"]["401"]["content"]["application/json"].is_object(),
                    "{m} {path}: no 401"
                );
            }
        }
    }
    assert_eq!(
        paths.len(),
        29,
        "a route is described that the server does not have"
    );
    // The page works offline: nothing in it comes from another host.
    let page = app
        .client
        .get(format!("{}/docs", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for attr in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "@import",
        "url(http",
    ] {
        assert!(!page.contains(attr), "the docs page loads {attr}…");
    }
    assert!(page.contains("fetch(\"/openapi.json\")"));
}

#[actix_web::test]
async fn a_server_whose_actix_system_ends_closes_its_doors_on_the_query_runtime() {
    // As a test's server does when the test ends: the Flight SQL and PostgreSQL listeners run
    // on the shared query runtime, which outlives the server's actix system.
    let doors = std::thread::spawn(|| {
        actix_web::rt::System::new().block_on(async {
            let app = TestApp::spawn().await;
            let addr = |url: Option<&String>| {
                let url = url.expect("the embedded default serves Flight SQL and PostgreSQL");
                let rest = url.rsplit("://").next().unwrap_or(url);
                rest.split('?').next().unwrap_or(rest).to_owned()
            };
            let doors = [addr(app.flight.as_ref()), addr(app.pg.as_ref())];
            for door in &doors {
                tokio::net::TcpStream::connect(door).await.unwrap();
            }
            doors
        })
    })
    .join()
    .unwrap();
    for door in &doors {
        let mut waiting = crate::Waiting::new(format!("{door} to refuse connections"));
        while tokio::net::TcpStream::connect(door).await.is_ok() {
            waiting.pause("still accepting").await;
        }
    }
}
