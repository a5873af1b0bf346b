//! The cost-aware cut against a real PostgreSQL: its `EXPLAIN` estimates decide whether a
//! join stays in Sluice, Sluice's `EXPLAIN` says so with the estimates, and the answer is
//! PostgreSQL's own either way.

use std::time::Duration;

use serde_json::{Value, json};

use super::{app_with, json_rows, logical_plan, service_env, setup, source};

/// 600,000 facts over 20,000 keys, and the keys' dimension: a correlated aggregate over the
/// facts decorrelates into an aggregate over every key, which a join with one brand's 20 keys
/// narrows.
const FACTS: &str = "
    CREATE TABLE facts (k int4 NOT NULL, q numeric(12, 2) NOT NULL, price int8 NOT NULL);
    INSERT INTO facts SELECT g % 20000, (g / 20000) % 50, g FROM generate_series(1, 600000) g;
    CREATE TABLE dims (k int4 PRIMARY KEY, brand text NOT NULL);
    INSERT INTO dims SELECT g, 'b' || (g % 1000) FROM generate_series(0, 19999) g;
    ANALYZE facts; ANALYZE dims;";

/// The `remote` statements of `/v1/explain`, checked to each carry the source's estimate.
fn estimated(explain: &Value) -> Vec<Value> {
    let remote = explain["remote"]
        .as_array()
        .expect("remote statements")
        .clone();
    for r in &remote {
        let e = &r["estimate"];
        assert!(
            e["rows"].as_f64().is_some_and(|n| n >= 0.0)
                && e["cost"].as_f64().is_some_and(|c| c > 0.0)
                && e["width"].as_f64().is_some(),
            "every weighed statement carries PostgreSQL's estimate: {explain}"
        );
    }
    remote
}

/// How many `EXPLAIN`s on `schema` PostgreSQL has logged so far: a marker statement is sent
/// on `pg` and the log read once it shows (the log is written in order).
async fn explains_logged(pg: &tokio_postgres::Client, schema: &str) -> usize {
    let path = service_env("SLUICE_TEST_PG_LOG").expect("the PostgreSQL log");
    let marker = format!("sluice_marker_{}", uuid::Uuid::new_v4().simple());
    pg.simple_query(&format!("SELECT 1 AS {marker}"))
        .await
        .unwrap();
    for _ in 0..500 {
        let log = std::fs::read_to_string(&path).unwrap();
        if log.contains(&marker) {
            return log
                .lines()
                .filter(|l| l.contains("EXPLAIN (FORMAT JSON)") && l.contains(schema))
                .count();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("PostgreSQL never logged {marker}");
}

#[actix_web::test]
async fn a_join_that_narrows_a_correlated_aggregate_stays_in_sluice_by_the_sources_estimates() {
    let Some((pg, url, schema)) = setup(FACTS).await else {
        return;
    };
    let app = app_with(source("pg", &url, &schema)).await;

    // TPC-H Q17's shape. Sent whole, PostgreSQL aggregates all 600,000 facts; with the join
    // in Sluice, the aggregate's statement gets the 20 keys of brand b7.
    let sql = format!(
        "SELECT sum(f.price) AS total FROM pg.{schema}.facts f JOIN pg.{schema}.dims d \
         ON f.k = d.k WHERE d.brand = 'b7' AND f.q < \
         (SELECT 0.2 * avg(f2.q) FROM pg.{schema}.facts f2 WHERE f2.k = d.k)"
    );
    let explain = app.explain(&sql).await;
    let remote = estimated(&explain);
    assert_eq!(remote.len(), 2, "the join is kept in Sluice: {explain}");
    for r in &remote {
        let why = r["kept_local"].as_str().unwrap_or_default();
        assert!(
            why.starts_with("cost: ") && why.contains("with the join in Sluice against"),
            "each input says the join above it stayed by cost: {explain}"
        );
        assert!(!r["sql"].as_str().unwrap().contains("EXISTS"), "{explain}");
    }
    assert!(
        remote
            .iter()
            .any(|r| r["sql"].as_str().unwrap().contains("GROUP BY")),
        "the aggregate itself is still sent: {explain}"
    );
    // The estimates are kept per statement: weighing the same query again asks nothing.
    let asked = explains_logged(&pg, &schema).await;
    assert!(asked >= 3, "whole, inputs, narrowed: {asked} EXPLAINs");
    let again = app.explain(&sql).await;
    assert_eq!(again["remote"], explain["remote"]);
    assert_eq!(
        explains_logged(&pg, &schema).await,
        asked,
        "kept, not asked again"
    );

    // SQL EXPLAIN shows the same choice and the estimates.
    let logical = logical_plan(&app, &sql).await;
    assert!(
        logical.contains("Join:")
            && logical.contains("kept_local_above=cost: ")
            && logical.contains("estimate=rows "),
        "{logical}"
    );

    // PostgreSQL's own answer, and the two statements the query record counts.
    let expected: Option<i64> = pg
        .query_one(
            &format!(
                "SELECT sum(f.price)::int8 FROM {schema}.facts f JOIN {schema}.dims d \
                 ON f.k = d.k WHERE d.brand = 'b7' AND f.q < \
                 (SELECT 0.2 * avg(f2.q) FROM {schema}.facts f2 WHERE f2.k = d.k)"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let resp = app.query(json!({ "sql": sql }), "application/json").await;
    let id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(expected.is_some(), "the query has rows to sum");
    assert_eq!(body["rows"], json!([[expected]]), "{body}");
    let record = app.get_json(&format!("/v1/queries/{id}")).await;
    assert_eq!(record["per_source"][0]["statements"], 2, "{record}");
    // The narrowed aggregate pulls rows for the brand's keys only, not all 20,000 groups.
    let rows = record["per_source"][0]["rows"].as_u64().unwrap();
    assert!(
        rows < 2_000,
        "the join's keys narrowed the aggregate: {record}"
    );

    // A join whose result the source aggregates to one row is cheaper sent whole: one
    // statement, its estimate, and what the alternative would have cost.
    let sql = format!(
        "SELECT d.brand, count(*) AS n FROM pg.{schema}.facts f JOIN pg.{schema}.dims d \
         ON f.k = d.k WHERE d.brand = 'b7' GROUP BY d.brand"
    );
    let explain = app.explain(&sql).await;
    let remote = estimated(&explain);
    assert_eq!(remote.len(), 1, "sent whole: {explain}");
    assert!(remote[0]["kept_local"].is_null(), "{explain}");
    let weighed = remote[0]["estimate"]["weighed"]
        .as_str()
        .unwrap_or_default();
    assert!(
        weighed.contains("whole against") && weighed.contains("with the aggregate in Sluice"),
        "{explain}"
    );
    let body = json_rows(&app, &sql).await;
    assert_eq!(body["rows"], json!([["b7", 600]]), "{body}");

    // A source with pushdown = "filters" is never weighed: its scans carry no estimate.
    let filters = sluice_schemas::PostgresSourceConfig {
        pushdown: sluice_schemas::Pushdown::Filters,
        ..source("pg", &url, &schema)
    };
    let app = app_with(filters).await;
    let explain = app.explain(&sql).await;
    for r in explain["remote"].as_array().unwrap() {
        assert!(r.get("estimate").is_none(), "{explain}");
    }
}

/// A join's build side of more keys than DataFusion's default list (150) still narrows the
/// remote statement on its probe side: plans with a remote statement get the longer list
/// (local-only plans keep the default, which is faster over files).
#[actix_web::test]
async fn a_runtime_filter_of_hundreds_of_keys_narrows_the_remote_side() {
    let Some((_pg, url, schema)) = setup(FACTS).await else {
        return;
    };
    let app = app_with(source("pg", &url, &schema)).await;
    // 500 keys spread over the whole range: their bounds alone would narrow nothing.
    let keys: Vec<String> = (0..500).map(|i| format!("({})", i * 40)).collect();
    let sql = format!(
        "SELECT count(*) AS n FROM pg.{schema}.dims d JOIN \
         (SELECT CAST(column1 AS INT) AS k FROM (VALUES {})) AS v ON d.k = v.k",
        keys.join(", ")
    );
    let resp = app.query(json!({ "sql": sql }), "application/json").await;
    let id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["rows"], json!([[500]]), "{body}");
    let record = app.get_json(&format!("/v1/queries/{id}")).await;
    assert_eq!(
        record["per_source"][0]["rows"], 500,
        "the 500 keys narrowed the statement, not only their bounds: {record}"
    );
}
