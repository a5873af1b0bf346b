//! Grants are decided on the resolved plan: the escape corpus (`testdata/governance/escape.sql`)
//! against a reader granted `pg.public.orders*`, with PostgreSQL's statement log as the
//! witness that nothing denied was ever asked for.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_schemas::{Config, PostgresSourceConfig, SourceConfig};

use super::{app_on, as_key, create_key, fresh_db, query_as};
use crate::federation::connect;
use crate::postgres::service_env;
use crate::testdata;

const SETUP: &str = "
CREATE TABLE public.orders (o_id int4, o_cust int4, o_note text);
INSERT INTO public.orders VALUES (1, 10, 'first'), (2, 20, 'second');
CREATE TABLE public.orders_archive (o_id int4, o_note text);
INSERT INTO public.orders_archive VALUES (1, 'old');
CREATE TABLE public.customer (c_id int4, c_name text);
INSERT INTO public.customer VALUES (10, 'CUSTOMER_MARKER');
CREATE TABLE public.secrets (s_id int4, s_value text);
INSERT INTO public.secrets VALUES (1, 'SECRET_MARKER');
CREATE TABLE public.order_notes (n_id int4, n_text text);
INSERT INTO public.order_notes VALUES (1, 'NOTE_MARKER');
CREATE SCHEMA hr;
CREATE TABLE hr.salaries (s_id int4, amount int4, note text);
INSERT INTO hr.salaries VALUES (1, 100, 'SALARY_MARKER');
";

/// What an answer to the reader must never contain: denied data, or a denied name as a value.
const FORBIDDEN: [&str; 8] = [
    "MARKER",
    "\"customer\"",
    "\"secrets\"",
    "\"salaries\"",
    "\"order_notes\"",
    "\"hr\"",
    "\"nation\"",
    "\"lineitem\"",
];

/// Names of denied tables as they could appear in a statement sent to PostgreSQL.
const DENIED_IN_SQL: [&str; 4] = ["customer", "secrets", "salaries", "order_notes"];

fn corpus() -> Vec<(bool, String)> {
    std::fs::read_to_string(testdata().join("governance/escape.sql"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| match l.strip_prefix("ok: ") {
            Some(sql) => (true, sql.to_owned()),
            None => (false, l.to_owned()),
        })
        .collect()
}

async fn corpus_app() -> Option<(crate::TestApp, String, String)> {
    let meta = fresh_db("SLUICE_TEST_PG_URL", "meta").await?;
    let data = fresh_db("SLUICE_TEST_PG_URL", "grants").await?;
    connect(&data).await.batch_execute(SETUP).await.unwrap();
    let source = PostgresSourceConfig {
        cache: true,
        name: "pg".to_owned(),
        password_env: None,
        replicas: vec![data.clone()],
        max_concurrency: 8,
        connect_timeout_ms: 5_000,
        pool_wait_timeout_ms: 5_000,
        schemas: vec!["public".into(), "hr".into()],
        health_check_interval_ms: 1_000,
        refresh_interval_ms: 0,
        fallback: None,
        max_queued: 256,
        queue_timeout_ms: 10_000,
        pushdown: Default::default(),
    };
    let app = app_on(&meta, |c: &mut Config| {
        c.sources.push(SourceConfig::Postgres(source));
        // Each statement goes through HTTP and Flight SQL (three requests): no rate limit.
        c.limits.reader.per_second = None;
        c.limits.reader.burst = None;
    })
    .await;
    let reader = create_key(
        &app,
        json!({"name": "orders only", "role": "reader",
               "grants": [{"source": "pg", "schema": "public", "table": "orders*"}]}),
    )
    .await;
    let key = reader["key"].as_str().unwrap().to_owned();
    Some((app, key, meta))
}

#[actix_web::test]
async fn the_escape_corpus_is_refused_on_the_plan_and_never_reaches_postgres() {
    let Some((app, reader, _meta)) = corpus_app().await else {
        return;
    };
    // The data is there: the admin reads it.
    let resp = app
        .query(
            json!({"sql": "SELECT c_name FROM pg.public.customer"}),
            "application/json",
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("CUSTOMER_MARKER"));

    let cases = corpus();
    assert!(cases.len() >= 100, "{} statements", cases.len());
    let mut ids: Vec<(String, bool, String)> = Vec::new();
    let mut refused_by_code: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (ok, sql) in &cases {
        let resp = query_as(&app, &reader, sql).await;
        let status = resp.status().as_u16();
        let id = resp
            .headers()
            .get("x-query-id")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = resp.text().await.unwrap();
        // Flight SQL decides the same: the same rows' existence, the same refusal code.
        let flight = crate::flight::verdict(&app, &reader, sql).await;
        let http_code = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
        match (&flight, &http_code) {
            (Ok(_), None) => {}
            (Err(f), Some(h)) if f == h => {}
            _ => wrong.push(format!(
                "Flight SQL and HTTP differ: {sql}\n  Flight {flight:?}, HTTP {status} {http_code:?}"
            )),
        }
        // And the PostgreSQL door, whose catalog is built from the same grants.
        let pg = crate::pg::verdict(&app, &reader, sql).await;
        let http = http_code.clone().unwrap_or_else(|| "ok".to_owned());
        if !crate::pg::same_verdict(sql, &pg, &http, &[]) {
            wrong.push(format!(
                "the PostgreSQL door and HTTP differ: {sql}\n  pg {pg:?}, HTTP {status} {http_code:?}"
            ));
        }
        if *ok {
            if status != 200 {
                wrong.push(format!("must answer: {sql}\n  {status} {body}"));
                continue;
            }
        } else {
            if !matches!(status, 400 | 404 | 501) {
                wrong.push(format!(
                    "must be refused as the user's mistake: {sql}\n  {status} {body}"
                ));
                continue;
            }
            let v: Value = serde_json::from_str(&body).unwrap();
            *refused_by_code
                .entry(v["error"]["code"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        for f in FORBIDDEN {
            // Error messages may repeat the name the user typed; answers never hold a
            // denied name as a value, nor denied data.
            if *ok || f == "MARKER" {
                assert!(!body.contains(f), "{sql} leaked {f}: {body}");
            }
        }
        ids.push((id, *ok, sql.clone()));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Denied reads are refused as missing tables (never as "forbidden").
    assert!(
        refused_by_code.get("table_not_found").copied().unwrap_or(0) >= 60,
        "{refused_by_code:?}"
    );
    assert!(
        !refused_by_code.contains_key("permission_denied"),
        "{refused_by_code:?}"
    );

    // PostgreSQL's statement log: wait until the last answered statement is in, then check
    // every statement each query sent.
    let log_path = service_env("SLUICE_TEST_PG_LOG").unwrap();
    let last_ok = ids
        .iter()
        .rev()
        .find(|(_, ok, sql)| *ok && sql.contains("pg.public.orders"));
    let (last_id, _, _) = last_ok.unwrap();
    let mut log = String::new();
    for _ in 0..200 {
        log = std::fs::read_to_string(&log_path).unwrap();
        if log.contains(&format!("|sluice:{last_id}|")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut answered_with_pg = 0;
    for (id, ok, sql) in &ids {
        let tag = format!("|sluice:{id}|");
        let sent: Vec<&str> = log.lines().filter(|l| l.contains(&tag)).collect();
        if !ok {
            let statements: Vec<_> = sent.iter().filter(|l| l.contains("execute")).collect();
            assert!(
                statements.is_empty(),
                "a refused statement reached PostgreSQL: {sql}\n{statements:?}"
            );
        } else if !sent.is_empty() {
            answered_with_pg += 1;
        }
        for line in sent {
            for d in DENIED_IN_SQL {
                assert!(!line.contains(d), "{sql} sent {line}");
            }
        }
    }
    assert!(answered_with_pg >= 10, "{answered_with_pg}");

    // A denied table and a missing one answer alike.
    let denied = query_as(&app, &reader, "SELECT * FROM pg.public.customer").await;
    let missing = query_as(&app, &reader, "SELECT * FROM pg.public.no_such_table").await;
    assert_eq!(denied.status(), missing.status());
    let d: Value = denied.json().await.unwrap();
    let m: Value = missing.json().await.unwrap();
    assert_eq!(d["error"]["code"], m["error"]["code"]);
    assert_eq!(
        d["error"]["message"]
            .as_str()
            .unwrap()
            .replace("customer", "X"),
        m["error"]["message"]
            .as_str()
            .unwrap()
            .replace("no_such_table", "X"),
    );
}

/// `POST /v1/explain` with `key`: status and body.
async fn explain_as(app: &crate::TestApp, key: &str, sql: &str) -> (u16, Value) {
    let r = as_key(app, key, reqwest::Method::POST, "/v1/explain")
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[actix_web::test]
async fn listings_and_the_catalog_show_only_what_is_granted() {
    let Some((app, reader, _meta)) = corpus_app().await else {
        return;
    };
    let get = |path: &str| as_key(&app, &reader, reqwest::Method::GET, path).send();
    let tables: Value = get("/v1/tables").await.unwrap().json().await.unwrap();
    let names: Vec<&str> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pg.public.orders", "pg.public.orders_archive"]);
    assert_eq!(
        get("/v1/tables/pg.public.orders").await.unwrap().status(),
        200
    );
    for hidden in [
        "pg.public.customer",
        "pg.hr.salaries",
        "local.public.nation",
        "nation",
    ] {
        let r = get(&format!("/v1/tables/{hidden}")).await.unwrap();
        assert_eq!(r.status(), 404, "{hidden}");
        let v: Value = r.json().await.unwrap();
        assert!(
            matches!(
                v["error"]["code"].as_str(),
                Some("table_not_found" | "source_not_found")
            ),
            "{v}"
        );
    }
    // A source the key has no grant in is as unknown as one that does not exist.
    let local: Value = get("/v1/tables/local.public.nation")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let none: Value = get("/v1/tables/nosuch.public.nation")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(local["error"]["code"], none["error"]["code"]);

    // Sources: only granted ones, with no locations or error texts.
    let sources: Value = get("/v1/sources").await.unwrap().json().await.unwrap();
    let list = sources["sources"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{sources}");
    assert_eq!(list[0]["name"], "pg");
    assert_eq!(list[0]["location"], "");
    let admin: Value = app.get_json("/v1/sources").await;
    assert_eq!(admin["sources"].as_array().unwrap().len(), 2);

    // The plan and remote SQL of a granted query are the reader's to see.
    let (status, explain) = explain_as(
        &app,
        &reader,
        "SELECT o_note FROM pg.public.orders WHERE o_id = 1",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(explain["tables"], json!(["pg.public.orders"]));
    assert_eq!(
        explain_as(&app, &reader, "SELECT * FROM pg.hr.salaries")
            .await
            .0,
        404
    );

    // A reader without `list` may query but not list; without `explain`, no EXPLAIN either.
    let narrow = create_key(
        &app,
        json!({"name": "narrow", "operations": ["query"],
               "grants": [{"source": "pg", "table": "orders"}]}),
    )
    .await;
    let narrow = narrow["key"].as_str().unwrap();
    let r = as_key(&app, narrow, reqwest::Method::GET, "/v1/tables")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "permission_denied");
    assert_eq!(
        query_as(&app, narrow, "SELECT count(*) FROM pg.public.orders")
            .await
            .status(),
        200
    );
    // Its grant is `orders` exactly (any schema): the archive is not it.
    assert_eq!(
        query_as(
            &app,
            narrow,
            "SELECT count(*) FROM pg.public.orders_archive"
        )
        .await
        .status(),
        404
    );
    let r = query_as(&app, narrow, "EXPLAIN SELECT * FROM pg.public.orders").await;
    assert_eq!(r.status(), 403);
    assert_eq!(explain_as(&app, narrow, "SELECT 1").await.0, 403);

    // Plans shown to a reader name sources, never server paths; EXPLAIN ANALYZE (made from
    // the running plan's internals) is for admins.
    let parquet = create_key(
        &app,
        json!({"name": "nation", "grants": [{"source": "local", "table": "nation"}]}),
    )
    .await;
    let parquet = parquet["key"].as_str().unwrap();
    let path = testdata().join("tpch").display().to_string();
    let path = path.trim_start_matches('/');
    let (_, explain) = explain_as(&app, parquet, "SELECT * FROM local.public.nation").await;
    let shown = explain["physical_plan"].as_str().unwrap();
    assert!(
        !shown.contains(path) && shown.contains("local/nation.parquet"),
        "{shown}"
    );
    let admin = app.explain("SELECT * FROM local.public.nation").await;
    assert!(
        admin["physical_plan"].as_str().unwrap().contains(path),
        "{admin}"
    );
    let r = query_as(&app, parquet, "EXPLAIN SELECT * FROM local.public.nation").await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        !body.contains(path) && body.contains("local/nation.parquet"),
        "{body}"
    );
    let r = query_as(
        &app,
        parquet,
        "EXPLAIN ANALYZE SELECT * FROM local.public.nation",
    )
    .await;
    assert_eq!(r.status(), 403);
}
