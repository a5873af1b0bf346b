//! Explain, sources, tables, health, readiness and metrics.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{ARROW, TestApp};

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let resp = app.req(Method::GET, path).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[actix_web::test]
async fn explain_shows_plans_and_sources() {
    let app = TestApp::spawn().await;
    let resp = app
        .req(Method::POST, "/v1/explain")
        .json(&json!({"sql": "SELECT l_returnflag, count(*) FROM lineitem WHERE l_quantity > 10 GROUP BY 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["sources"], json!(["local"]));
    assert_eq!(v["tables"], json!(["local.public.lineitem"]));
    assert!(
        v["logical_plan"]
            .as_str()
            .unwrap()
            .contains("TableScan: lineitem")
    );
    let physical = v["physical_plan"].as_str().unwrap();
    assert!(physical.contains("DataSourceExec"), "{physical}");
    assert!(physical.contains("lineitem.parquet"), "{physical}");
    // Explain validates like query does.
    let resp = app
        .req(Method::POST, "/v1/explain")
        .json(&json!({"sql": "DROP TABLE lineitem"}))
        .send()
        .await
        .unwrap();
    app.expect_error(resp, 400, "read_only").await;
}

#[actix_web::test]
async fn sources_tables_health_ready() {
    let app = TestApp::spawn().await;
    let (status, v) = get(&app, "/v1/sources").await;
    assert_eq!(status, 200);
    let local = &v["sources"][0];
    assert_eq!(local["name"], "local");
    assert_eq!(local["kind"], "parquet");
    assert_eq!(local["state"], "healthy");
    assert!(local["location"].as_str().unwrap().starts_with("file:///"));

    let (status, v) = get(&app, "/v1/tables").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 8);
    assert!(names.contains(&"local.public.lineitem"));

    let (status, v) = get(&app, "/v1/tables/local.public.nation").await;
    assert_eq!(status, 200);
    assert_eq!(
        v["columns"][1],
        json!({"name": "n_name", "type": "Utf8", "nullable": false})
    );
    let (status, v) = get(&app, "/v1/tables/local.public.nope").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("table_not_found"))
    );
    let (status, v) = get(&app, "/v1/tables/nope.public.nation").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("source_not_found"))
    );

    // Liveness and readiness need no key.
    let resp = app
        .client
        .get(format!("{}/health", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .client
        .get(format!("{}/ready", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["ready"], true);
}

#[actix_web::test]
async fn unavailable_source_fails_fast_and_readiness_says_why_but_stays_ready() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        crate::testdata().join("tpch/nation.parquet"),
        dir.path().join("nation.parquet"),
    )
    .unwrap();
    let gone = dir.path().to_str().unwrap().to_owned();
    let app = TestApp::spawn_with(|c| {
        c.sources.push(sluice_schemas::SourceConfig::Parquet(
            sluice_schemas::ParquetSourceConfig {
                cache: true,
                name: "scratch".into(),
                location: gone.clone(),
                options: Default::default(),
                schema: "public".into(),
                tables: vec![],
                health_check_interval_ms: 100,
                refresh_interval_ms: 0,
                fallback: None,
            },
        ));
    })
    .await;
    app.arrow("SELECT * FROM scratch.public.nation").await;
    drop(dir);
    // The source actor notices within its health interval; readiness then reports it, and
    // stays 200: one dead upstream must not take every Sluice replica out of a balancer.
    let scratch_of = |ready: &Value| {
        ready["sources"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "scratch"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut waiting = crate::Waiting::new("readiness to report the source unavailable");
    let scratch = loop {
        let resp = app
            .client
            .get(format!("{}/ready", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let ready: Value = resp.json().await.unwrap();
        let scratch = scratch_of(&ready);
        if scratch["state"] == "unavailable" {
            break scratch;
        }
        waiting.pause(&scratch).await;
    };
    assert!(scratch["last_error"].as_str().unwrap().contains(&gone));
    let resp = app
        .query(json!({"sql": "SELECT * FROM scratch.public.nation"}), ARROW)
        .await;
    // Retry when the replica's circuit may let a probe through: its cool-down, at least 1 s.
    assert_eq!(resp.headers()["retry-after"], "1");
    app.expect_error(resp, 503, "source_unavailable").await;
    // Other sources keep answering.
    app.assert_serving().await;
}

#[actix_web::test]
async fn metrics_count_queries() {
    let app = TestApp::spawn().await;
    app.arrow("SELECT * FROM nation").await;
    let resp = app.query(json!({"sql": "SELECT * FROM nope"}), ARROW).await;
    assert_eq!(resp.status(), 404);
    let text = app.metrics_text().await;
    for needle in [
        "sluice_queries_total{outcome=\"ok\",door=\"http\"}",
        "sluice_query_duration_seconds_bucket",
        "sluice_rows_streamed_total",
        "sluice_bytes_streamed_total",
        "sluice_queries_in_flight",
        "sluice_source_up{source=\"local\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

#[actix_web::test]
async fn auth_none_on_loopback_needs_no_key() {
    let app = TestApp::spawn_with(|c| c.auth.mode = sluice_schemas::AuthMode::None).await;
    assert!(app.key.is_empty());
    let resp = app
        .client
        .post(format!("{}/v1/query", app.url))
        .json(&json!({"sql": "SELECT 1 AS x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
