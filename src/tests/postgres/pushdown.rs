//! Projection, filters and limit reach PostgreSQL: asserted on the statements the server
//! itself logged (`log_statement = all`, prefix `pid|application_name|`), and on results that
//! must not change whatever is pushed.

use std::time::Duration;

use serde_json::{Value, json};

use super::{app_with, json_rows, logical_plan, service_env, setup, source};
use crate::TestApp;

/// What the server logged for one Sluice query: the transaction preamble and the statement.
struct Logged {
    preamble: String,
    statement: String,
}

/// The statement PostgreSQL executed for `query_id`, and the preamble its backend ran just
/// before it. Waits briefly for the log to be written.
async fn logged(query_id: &str) -> Logged {
    let path = service_env("SLUICE_TEST_PG_LOG").expect("the PostgreSQL log");
    let tag = format!("|sluice:{query_id}|LOG:  execute <unnamed>: ");
    for _ in 0..100 {
        let log = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        if let Some(at) = lines.iter().position(|l| l.contains(&tag)) {
            let line = lines[at];
            let pid = line.split('|').next().unwrap();
            let statement = line.split_once(&tag).unwrap().1.to_owned();
            let preamble = lines[..at]
                .iter()
                .rev()
                .find(|l| l.starts_with(&format!("{pid}|")) && l.contains("LOG:  statement: "))
                .and_then(|l| l.split_once("LOG:  statement: "))
                .map(|(_, s)| s.to_owned())
                .unwrap_or_default();
            return Logged {
                preamble,
                statement,
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("PostgreSQL logged no statement for {query_id}");
}

/// Runs `sql`, returning its rows, the remote SQL `/v1/explain` shows and what PostgreSQL ran.
async fn run(app: &TestApp, sql: &str) -> (Value, String, Logged) {
    let explain = app.explain(sql).await;
    let remote = explain["remote"].as_array().expect("remote statements");
    assert_eq!(remote.len(), 1, "{explain}");
    assert_eq!(remote[0]["source"], "pg");
    let shown = remote[0]["sql"].as_str().unwrap().to_owned();
    let resp = app.query(json!({ "sql": sql }), "application/json").await;
    let id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{sql}: {body}");
    let logged = logged(&id).await;
    assert_eq!(
        logged.statement, shown,
        "explain shows exactly what PostgreSQL ran"
    );
    (body["rows"].clone(), shown, logged)
}

/// A source with `pushdown = "filters"`: single-table scans only.
fn filters_only(url: &str, schema: &str) -> sluice_schemas::PostgresSourceConfig {
    sluice_schemas::PostgresSourceConfig {
        pushdown: sluice_schemas::Pushdown::Filters,
        ..source("pg", url, schema)
    }
}

#[actix_web::test]
async fn projection_filters_and_limit_reach_postgres() {
    let Some((_pg, url, schema)) = setup(
        "CREATE TABLE items (id int8 PRIMARY KEY, name text, price float8, note text);
         INSERT INTO items SELECT g, 'item ' || g, g * 1.5, repeat('x', 100) FROM generate_series(1, 1000) g;",
    )
    .await
    else {
        return;
    };
    let app = app_with(filters_only(&url, &schema)).await;
    let t = format!("\"{schema}\".\"items\"");

    // Exact filters and the limit go down; only the projected columns are read.
    let (rows, sql, logged) = run(
        &app,
        &format!("SELECT id FROM pg.{schema}.items WHERE id BETWEEN 10 AND 20 AND name <> 'item 11' LIMIT 4"),
    )
    .await;
    assert_eq!(rows, json!([[10], [12], [13], [14]]));
    assert_eq!(
        sql,
        format!(
            "SELECT \"id\" FROM {t} WHERE (\"id\" >= 10) AND (\"id\" <= 20) AND (\"name\" <> 'item 11') LIMIT 4"
        )
    );
    assert!(
        logged
            .preamble
            .starts_with("BEGIN READ ONLY; SET LOCAL statement_timeout = ")
            && logged.preamble.contains("SET LOCAL TimeZone = 'UTC'"),
        "{}",
        logged.preamble
    );

    // A float filter is pushed but re-checked (inexact), so the limit stays local.
    let (rows, sql, _) = run(
        &app,
        &format!("SELECT name FROM pg.{schema}.items WHERE id > 990 AND price > 1490.0 LIMIT 3"),
    )
    .await;
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    assert_eq!(
        sql,
        format!(
            "SELECT \"name\", \"price\" FROM {t} WHERE (\"id\" > 990) AND (\"price\" > 1490.0)"
        )
    );

    // Nothing pushable: a function of a column stays local; count(*) reads no values.
    let (rows, sql, _) = run(
        &app,
        &format!("SELECT count(*) FROM pg.{schema}.items WHERE length(note) = 100"),
    )
    .await;
    assert_eq!(rows, json!([[1000]]));
    assert_eq!(sql, format!("SELECT \"note\" FROM {t}"));
    let (rows, sql, _) = run(&app, &format!("SELECT count(*) FROM pg.{schema}.items")).await;
    assert_eq!(rows, json!([[1000]]));
    assert_eq!(sql, format!("SELECT FROM {t}"));
}

#[actix_web::test]
async fn pushed_filters_give_datafusions_answers() {
    // Text under a case-insensitive-ordering collation and a nondeterministic one, floats
    // with NaN and -0, zoned timestamps: every filter must give the rows DataFusion gives on
    // the same values, however much of it went to PostgreSQL.
    let Some((_pg, url, schema)) = setup(
        "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
         CREATE TABLE v (id int4, w text COLLATE \"und-x-icu\", cw text COLLATE ci, f float8,
                         ts timestamptz, u uuid);
         INSERT INTO v VALUES
          (1, 'a', 'a', 1.5, '2020-01-01 00:00:00+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
          (2, 'A', 'A', -0.0, '2020-01-01 10:00:00+00', '00000000-0000-0000-0000-000000000001'),
          (3, 'b', 'b', 'NaN', '2019-12-31 20:00:00+00', NULL),
          (4, 'B', 'B', 0.0, NULL, 'ffffffff-ffff-ffff-ffff-ffffffffffff'),
          (5, 'c', 'c', -2.5, '2020-06-01 00:00:00+00', NULL),
          (6, 'C', NULL, NULL, '2020-01-01 00:00:00.000001+00', NULL);",
    )
    .await
    else {
        return;
    };
    let app = app_with(filters_only(&url, &schema)).await;
    // The same rows as DataFusion values, for the reference answers.
    let local = "(VALUES \
        (1, 'a', 'a', CAST(1.5 AS DOUBLE), CAST('2020-01-01T00:00:00Z' AS TIMESTAMP WITH TIME ZONE), 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), \
        (2, 'A', 'A', CAST(-0.0 AS DOUBLE), CAST('2020-01-01T10:00:00Z' AS TIMESTAMP WITH TIME ZONE), '00000000-0000-0000-0000-000000000001'), \
        (3, 'b', 'b', CAST('NaN' AS DOUBLE), CAST('2019-12-31T20:00:00Z' AS TIMESTAMP WITH TIME ZONE), NULL), \
        (4, 'B', 'B', CAST(0.0 AS DOUBLE), NULL, 'ffffffff-ffff-ffff-ffff-ffffffffffff'), \
        (5, 'c', 'c', CAST(-2.5 AS DOUBLE), CAST('2020-06-01T00:00:00Z' AS TIMESTAMP WITH TIME ZONE), NULL), \
        (6, 'C', NULL, NULL, CAST('2020-01-01T00:00:00.000001Z' AS TIMESTAMP WITH TIME ZONE), NULL)) \
        AS v(id, w, cw, f, ts, u)";
    let cases: &[(&str, &str)] = &[
        ("w > 'B'", "COLLATE \"C\" > 'B'"),
        ("w BETWEEN 'B' AND 'b'", "COLLATE \"C\" <= 'b'"),
        ("w = 'a' OR w IN ('B', 'c')", "(\"w\" = 'c')"),
        ("w LIKE 'a%' OR w NOT LIKE '_'", "LIKE 'a%'"),
        ("cw = 'a'", ""),
        ("cw > 'a'", ""),
        ("f > 1.0", "\"f\" > 1.0"),
        ("f <= -1.0 OR f = 1.5", "\"f\" <= -1.0"),
        ("f < 0.0", ""),
        ("f = 0.0", ""),
        ("f <> 1.5", "\"f\" <> 1.5"),
        ("NOT f > 1.0", "\"f\" <= 1.0"), // DataFusion negates the comparison first
        (
            "ts > '2020-01-01T08:00:00+08:00'",
            "'2020-01-01 00:00:00' AS TIMESTAMP",
        ),
        ("ts >= TIMESTAMP '2020-01-01 00:00:00'", "\"ts\" >="),
        ("ts IS NULL OR id = 6", "IS NULL"),
        ("u > 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "\"u\" >"),
        ("u = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", ""),
        ("NOT (id > 2 AND id < 5)", "(\"id\" >= 5)"),
    ];
    let cases: Vec<(String, &str)> = cases.iter().map(|(f, p)| ((*f).to_owned(), *p)).collect();
    assert_filters_match_local(&app, &format!("pg.{schema}.v"), local, &cases).await;
}

#[actix_web::test]
async fn citext_and_long_name_literals_are_never_pushed_as_exact() {
    // citext compares case-insensitively in PostgreSQL, DataFusion byte for byte; a `name`
    // literal longer than 63 bytes is cut to 63 by PostgreSQL before comparing. Either way
    // the remote answer would differ from the local one, so those filters stay local.
    let x63 = "x".repeat(63);
    let Some((_pg, url, schema)) = setup(&format!(
        "CREATE EXTENSION IF NOT EXISTS citext SCHEMA public;
         CREATE TABLE c (id int4, ct public.citext, nm name);
         INSERT INTO c VALUES (1, 'ABC', '{x63}'), (2, 'abc', 'short'), (3, 'Abd', NULL);"
    ))
    .await
    else {
        return;
    };
    let app = app_with(filters_only(&url, &schema)).await;
    let local = format!(
        "(VALUES (1, 'ABC', '{x63}'), (2, 'abc', 'short'), (3, 'Abd', NULL)) AS c(id, ct, nm)"
    );
    let long = format!("{x63}z");
    let cases: Vec<(String, &str)> = vec![
        ("ct = 'abc'".into(), ""),
        ("ct IN ('abc', 'ABD')".into(), ""),
        ("ct LIKE 'a%'".into(), ""),
        ("ct > 'B'".into(), ""),
        ("ct <> 'ABC'".into(), ""),
        (format!("nm = '{long}'"), ""),
        (format!("nm IN ('short', '{long}')"), ""),
        (format!("nm = '{x63}'"), "\"nm\" = 'xxx"),
        ("nm LIKE 'sh%'".into(), "LIKE 'sh%'"),
    ];
    assert_filters_match_local(&app, &format!("pg.{schema}.c"), &local, &cases).await;
}

/// For each `(filter, pushed)`: the rows from PostgreSQL equal DataFusion's over `local` (the
/// same values as a VALUES list), and the remote SQL contains `pushed`, or no WHERE when
/// `pushed` is empty (the filter stayed local).
async fn assert_filters_match_local(
    app: &TestApp,
    table: &str,
    local: &str,
    cases: &[(String, &str)],
) {
    let ids = |rows: Value| -> Vec<i64> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_i64().unwrap())
            .collect()
    };
    for (filter, pushed) in cases {
        let expected = ids(json_rows(
            app,
            &format!("SELECT id FROM {local} WHERE {filter} ORDER BY id"),
        )
        .await["rows"]
            .clone());
        let (rows, sql, _) = run(
            app,
            &format!("SELECT id FROM {table} WHERE {filter} ORDER BY id"),
        )
        .await;
        assert_eq!(ids(rows), expected, "{filter}: remote SQL {sql}");
        if pushed.is_empty() {
            assert!(!sql.contains("WHERE"), "{filter} must stay local: {sql}");
        } else {
            assert!(
                sql.contains(pushed),
                "{filter}: expected {pushed:?} in {sql}"
            );
        }
    }
}

#[actix_web::test]
async fn explain_shows_what_each_source_runs_and_why_the_rest_stays_local() {
    let Some((_pg, url, schema)) = setup(
        "CREATE TABLE items (id int8 PRIMARY KEY, name text, grp int4);
         INSERT INTO items SELECT g, 'item ' || g, g % 3 FROM generate_series(1, 100) g;",
    )
    .await
    else {
        return;
    };
    let app = app_with(source("pg", &url, &schema)).await;
    let t = format!("pg.{schema}.items");

    // A whole aggregate goes down as one statement; the rest of the plan is empty.
    let sql = format!("SELECT grp, count(*) AS n FROM {t} GROUP BY grp ORDER BY grp");
    let (rows, shown, _) = run(&app, &sql).await;
    assert_eq!(rows, json!([[0, 33], [1, 34], [2, 33]]));
    assert!(
        shown.contains("GROUP BY") && shown.contains("ORDER BY"),
        "{shown}"
    );
    let explain = app.explain(&sql).await;
    assert!(explain["remote"][0]["kept_local"].is_null(), "{explain}");

    // A function PostgreSQL would compute differently stays local, and says why: on the
    // statement below it, in /v1/explain and in SQL EXPLAIN.
    let sql = format!("SELECT upper(name) FROM {t} WHERE id < 3 ORDER BY id");
    let explain = app.explain(&sql).await;
    let why = explain["remote"][0]["kept_local"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("function upper"), "{explain}");
    let logical = logical_plan(&app, &sql).await;
    assert!(
        logical.contains("RemoteQuery: source=pg") && logical.contains("kept_local_above="),
        "{logical}"
    );

    // Per query and per source: statements sent, rows and bytes received.
    let resp = app
        .query(
            json!({ "sql": format!("SELECT id, name FROM {t} WHERE id <= 10") }),
            "application/json",
        )
        .await;
    let id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await.unwrap();
    let status = app.get_json(&format!("/v1/queries/{id}")).await;
    let pulled = &status["per_source"][0];
    assert_eq!(pulled["source"], "pg", "{status}");
    assert_eq!(pulled["statements"], 1, "{status}");
    assert_eq!(pulled["rows"], 10, "{status}");
    assert!(pulled["bytes"].as_u64().unwrap() > 10 * 8, "{status}");
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("sluice_source_rows_total{source=\"pg\"}"),
        "no per-source rows metric"
    );
}

#[actix_web::test]
async fn the_mcp_row_cap_reaches_postgres_as_limit_n_plus_one() {
    let Some((_pg, url, schema)) = setup(
        "CREATE TABLE items (id int8 PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g;",
    )
    .await
    else {
        return;
    };
    let app = app_with(source("pg", &url, &schema)).await;
    let t = format!("\"{schema}\".\"items\"");
    let call = |sql: String, max_rows: u64| {
        crate::mcp::modern(
            &app,
            &app.key,
            "tools/call",
            Some("query"),
            json!({"name": "query", "arguments": {"sql": sql, "max_rows": max_rows}}),
        )
    };
    // One row past the cap is asked for, so `truncated` is known without reading the table.
    let (_, m) = crate::mcp::answer(call(
        format!("SELECT id FROM pg.{schema}.items ORDER BY id"),
        5,
    ))
    .await;
    let r = &m["result"]["structuredContent"];
    assert_eq!(r["rows"], json!([[1], [2], [3], [4], [5]]), "{m}");
    assert_eq!(r["truncated"], true);
    let sent = logged(r["query_id"].as_str().unwrap()).await;
    assert_eq!(
        sent.statement,
        format!(
            "SELECT \"s1\".\"id\" AS \"c0\" FROM {t} AS \"s1\" ORDER BY \"s1\".\"id\" ASC NULLS LAST LIMIT 6"
        )
    );
    // Exactly the cap: not truncated.
    let (_, m) = crate::mcp::answer(call(
        format!("SELECT id FROM pg.{schema}.items WHERE id <= 5"),
        5,
    ))
    .await;
    let r = &m["result"]["structuredContent"];
    assert_eq!(r["row_count"], 5, "{m}");
    assert_eq!(r["truncated"], false);
    let sent = logged(r["query_id"].as_str().unwrap()).await;
    assert!(sent.statement.ends_with("LIMIT 6"), "{}", sent.statement);
}
