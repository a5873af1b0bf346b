//! Row filters and column masks, against the known ways around them: a leak-recording UDF in
//! every clause, an error-probe corpus aimed at hidden rows, masked columns in predicates,
//! joins and aggregates (each answer compared with a reference table materialized with the
//! policy applied), `EXPLAIN`, the result cache (local and Redis), and the statements
//! PostgreSQL receives. On Parquet and on PostgreSQL with pushdown `full`.

use std::collections::BTreeMap;

use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use serde_json::{Value, json};
use sluice_planner::test_hooks::{LEAK_FUNCTION, leaked};
use sluice_schemas::api::{KeyRole, Policy, PolicyTargets};
use sluice_schemas::{Config, ParquetSourceConfig, SourceConfig};

use super::{as_key, create_key, query_as};
use crate::TestApp;

/// `emp`'s rows: three in EMEA (visible to the EMEA reader), two in APAC whose every value is
/// made to fail a probe (`x = 42` and `x = 0` divide by zero, `code` is not a number, `day` not
/// a date, `big` overflows when doubled) and carries `HIDDEN` so a leak shows.
const COLUMNS: &str = "id, name, region, email, salary, x, code, day, big";
const ROWS: &str = "(1, 'ann', 'EMEA', 'ann@x.com', 52000, 10, '10', '2020-01-01', 1), \
    (2, 'bob', 'EMEA', 'bob@x.com', 61000, 20, '20', '2021-06-30', 2), \
    (3, 'cid', 'EMEA', NULL, 75000, 30, '30', '2022-12-31', 3), \
    (4, 'HIDDEN_dan', 'APAC', 'HIDDEN_dan@x.com', 9000000, 42, 'HIDDEN_abc', 'HIDDEN-99', 9000000000000000000), \
    (5, 'HIDDEN_eve', 'APAC', 'HIDDEN_eve@x.com', 130000, 0, 'HIDDEN_x', 'HIDDEN-13', 9000000000000000000)";
const DEPT: &str = "(1, 'sales'), (2, 'ops'), (4, 'HIDDEN_dept'), (5, 'HIDDEN_dept2')";

/// The reference: what the EMEA reader may see, materialized by the source itself.
const REFERENCE_PARQUET: &str = "SELECT id, name, region, encode(sha256(email), 'hex') AS email, \
    (salary / 10000) * 10000 AS salary, x, code, day, big FROM emp WHERE region = 'EMEA'";
const REFERENCE_PG: &str = "SELECT id, name, region, encode(sha256(convert_to(email, 'UTF8')), 'hex') AS email, \
    (salary / 10000) * 10000 AS salary, x, code, day, big FROM emp WHERE region = 'EMEA'";

fn policy(source: &str) -> Policy {
    Policy {
        name: format!("{source}_emea"),
        tables: format!("{source}.*.emp"),
        row_filter: Some("region = principal.attr('region')".into()),
        masks: BTreeMap::from([
            ("email".to_owned(), "sha256(email)".to_owned()),
            ("salary".to_owned(), "(salary / 10000) * 10000".to_owned()),
        ]),
        applies_to: Some(PolicyTargets {
            roles: vec![KeyRole::Reader],
            ..PolicyTargets::default()
        }),
        admins_bypass: false,
    }
}

/// `emp`, `emp_ref` and `dept` as Parquet files under `dir`.
async fn parquet_tables(dir: &std::path::Path) {
    let ctx = SessionContext::new();
    ctx.register_udf(sluice_planner::digest::sha256());
    let write = |name: &str, batches: Vec<datafusion::arrow::array::RecordBatch>| {
        let file = std::fs::File::create(dir.join(format!("{name}.parquet"))).unwrap();
        let mut w = ArrowWriter::try_new(file, batches[0].schema(), None).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
    };
    for (name, sql) in [
        (
            "emp",
            format!("SELECT * FROM (VALUES {ROWS}) AS t({COLUMNS})"),
        ),
        (
            "dept",
            format!("SELECT * FROM (VALUES {DEPT}) AS t(id, label)"),
        ),
    ] {
        let df = ctx.sql(&sql).await.unwrap();
        let batches = df.collect().await.unwrap();
        ctx.register_batch(name, batches[0].clone()).unwrap();
        write(name, batches);
    }
    let reference = ctx
        .sql(REFERENCE_PARQUET)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    write("emp_ref", reference);
}

/// A guarded source: `(source name, its schema)`, set up in `config`.
struct Guarded {
    source: String,
    schema: String,
}

impl Guarded {
    fn table(&self, t: &str) -> String {
        format!("{}.{}.{t}", self.source, self.schema)
    }
}

async fn parquet_source(config_dir: &std::path::Path) -> (Guarded, SourceConfig) {
    parquet_tables(config_dir).await;
    let source = SourceConfig::Parquet(ParquetSourceConfig {
        name: "hr".to_owned(),
        location: config_dir.display().to_string(),
        options: BTreeMap::new(),
        schema: "public".to_owned(),
        tables: Vec::new(),
        health_check_interval_ms: 10_000,
        refresh_interval_ms: 60_000,
        fallback: None,
        cache: true,
    });
    (
        Guarded {
            source: "hr".into(),
            schema: "public".into(),
        },
        source,
    )
}

/// The same tables in a fresh PostgreSQL schema (pushdown `full`); `None` when skipping.
async fn pg_source() -> Option<(Guarded, SourceConfig, tokio_postgres::Client)> {
    let sql = format!(
        "CREATE TABLE emp (id bigint, name text, region text, email text, salary bigint, \
         x bigint, code text, day text, big bigint); \
         INSERT INTO emp VALUES {ROWS}; \
         CREATE TABLE dept (id bigint, label text); INSERT INTO dept VALUES {DEPT}; \
         CREATE TABLE emp_ref AS {REFERENCE_PG};"
    );
    let (pg, url, schema) = crate::postgres::setup(&sql).await?;
    let mut src = crate::postgres::source("hrpg", &url, &schema);
    src.pushdown = sluice_schemas::Pushdown::Full;
    Some((
        Guarded {
            source: "hrpg".into(),
            schema,
        },
        SourceConfig::Postgres(src),
        pg,
    ))
}

/// A reader of every table, with `region`.
async fn reader(app: &TestApp, region: &str) -> String {
    let created = create_key(
        app,
        json!({"name": format!("reader-{region}"), "grants": [{"source": "*", "schema": "*", "table": "*"}],
               "attributes": {"region": region}}),
    )
    .await;
    created["key"].as_str().unwrap().to_owned()
}

/// An answer reduced to what must agree: the status and code, or the rows in order.
async fn answer(app: &TestApp, key: &str, sql: &str) -> (u16, Value) {
    let resp = query_as(app, key, sql).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    if status != 200 {
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("HIDDEN") && !message.contains("APAC"),
            "{sql}: an error quotes a hidden value: {message}"
        );
        return (status, body["error"]["code"].clone());
    }
    let mut rows = body["rows"].as_array().cloned().unwrap();
    if !sql.contains("ORDER BY") {
        rows.sort_by_key(ToString::to_string);
    }
    (status, Value::Array(rows))
}

/// Statements aimed at hidden rows: `{T}` is the guarded table (or, for the reference run, the
/// reference table), `{D}` a table without a policy.
const PROBES: &[&str] = &[
    "SELECT id FROM {T} WHERE 1 / (x - 42) > 0",
    "SELECT id FROM {T} WHERE 10 / x > 0",
    "SELECT id FROM {T} WHERE CAST(code AS BIGINT) > 5",
    "SELECT id FROM {T} WHERE big * 2 > 0",
    "SELECT id FROM {T} WHERE regexp_like(name, CASE WHEN name LIKE 'HIDDEN%' THEN '(' ELSE 'a' END)",
    "SELECT id FROM {T} WHERE to_date(day) > DATE '2000-01-01'",
    "SELECT id FROM {T} WHERE id > 0 AND 1 / (x - 42) > 0 ORDER BY id",
    "SELECT e.id FROM {T} e JOIN {D} d ON d.id = e.id AND 1 / (e.x - 42) > 0",
    "SELECT 1 / (x - 42) AS g, count(*) FROM {T} GROUP BY 1",
    "SELECT region, count(*) FROM {T} GROUP BY region HAVING sum(1 / (x - 42)) < 100",
    "SELECT id, sum(10 / x) OVER () FROM {T}",
    "SELECT id FROM {T} WHERE id IN (SELECT id FROM {T} WHERE 1 / (x - 42) > 0)",
    "SELECT id FROM {T} ORDER BY 100 / (x - 42), id LIMIT 2",
    "SELECT CASE WHEN x > 0 THEN 100 / x END FROM {T}",
    "SELECT e.id FROM {T} e WHERE EXISTS (SELECT 1 FROM {D} d WHERE d.id = e.id AND 10 / e.x > 0)",
    "SELECT count(*) FROM {T}",
    "SELECT count(*), sum(salary), min(email), max(email), count(DISTINCT email) FROM {T}",
    "SELECT DISTINCT email FROM {T}",
    "SELECT * FROM {T} WHERE salary > 70000",
    "SELECT id FROM {T} WHERE email = 'ann@x.com'",
    "SELECT id FROM {T} WHERE email = encode(sha256('ann@x.com'), 'hex')",
    "SELECT a.id, b.id FROM {T} a JOIN {T} b ON a.email = b.email",
    "SELECT salary, count(*) FROM {T} GROUP BY salary",
    "SELECT id, rank() OVER (ORDER BY salary DESC) FROM {T}",
    "SELECT d.label FROM {D} d WHERE d.id IN (SELECT id FROM {T})",
    "SELECT d.label, e.name FROM {D} d LEFT JOIN {T} e ON e.id = d.id",
    "SELECT * FROM {T} ORDER BY id LIMIT 1 OFFSET 2",
    "SELECT id FROM {T} WHERE name = 'HIDDEN_dan' OR id = 1",
];

/// Every probe answers for the reader as the reference table answers for an admin: as if the
/// hidden rows did not exist, with the masks in place everywhere.
async fn probes_answer_as_the_reference(app: &TestApp, key: &str, g: &Guarded) {
    for probe in PROBES {
        let on = |t: &str| {
            probe
                .replace("{T}", &g.table(t))
                .replace("{D}", &g.table("dept"))
        };
        let (guarded, reference) = (on("emp"), on("emp_ref"));
        let got = answer(app, key, &guarded).await;
        let want = answer(app, &app.key, &reference).await;
        assert_eq!(got, want, "{guarded}\n  vs the reference: {reference}");
    }
}

/// The leak recorder in every clause: it sees visible (masked) values only.
async fn the_leak_recorder_never_sees_a_hidden_row(app: &TestApp, key: &str, g: &Guarded) {
    let leak = LEAK_FUNCTION;
    let t = g.table("emp");
    let d = g.table("dept");
    for sql in [
        format!("SELECT id FROM {t} WHERE {leak}(name)"),
        format!("SELECT id FROM {t} WHERE {leak}(email) AND {leak}(salary)"),
        format!("SELECT e.id FROM {t} e JOIN {d} dd ON dd.id = e.id AND {leak}(e.name)"),
        format!("SELECT name, count(*) FROM {t} GROUP BY name HAVING {leak}(name)"),
        format!("SELECT {leak}(code), count(*) FROM {t} GROUP BY 1"),
        format!("SELECT id, row_number() OVER (PARTITION BY {leak}(day)) FROM {t}"),
        format!("SELECT CASE WHEN {leak}(region) THEN 1 END FROM {t}"),
        format!("SELECT id FROM {t} WHERE id IN (SELECT id FROM {t} WHERE {leak}(big))"),
        format!("SELECT id FROM {t} ORDER BY {leak}(x), id"),
        format!("SELECT id FROM {t} WHERE {leak}(name) LIMIT 1"),
        format!(
            "SELECT dd.label FROM {d} dd WHERE EXISTS (SELECT 1 FROM {t} e WHERE e.id = dd.id AND {leak}(e.name))"
        ),
    ] {
        let (status, rows) = answer(app, key, &sql).await;
        assert_eq!(status, 200, "{sql}: {rows}");
    }
    let seen = leaked();
    assert!(
        seen.iter().any(|v| v == "ann") && seen.iter().any(|v| v == "10"),
        "the recorder ran on visible rows: {seen:?}"
    );
    let hidden: Vec<_> = seen
        .iter()
        .filter(|v| {
            v.contains("HIDDEN") || v.contains("APAC") || v.contains("@x.com") || *v == "42"
        })
        .collect();
    assert!(
        hidden.is_empty(),
        "hidden or unmasked values reached the recorder: {hidden:?}"
    );
}

/// `EXPLAIN` shows the fence and nothing of the policy: no literal, no mask, no statement's
/// literal under it; an admin sees them.
async fn explain_tells_nothing(app: &TestApp, key: &str, g: &Guarded) {
    let sql = format!("SELECT name, email FROM {} WHERE id > 1", g.table("emp"));
    let (status, rows) = answer(app, key, &format!("EXPLAIN {sql}")).await;
    assert_eq!(status, 200, "{rows}");
    let text = rows.to_string();
    assert!(text.contains("PolicyFence"), "{text}");
    for secret in ["EMEA", "sha256", "10000)"] {
        assert!(!text.contains(secret), "EXPLAIN shows {secret}: {text}");
    }
    let resp = as_key(app, key, reqwest::Method::POST, "/v1/explain")
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let shown = body.to_string();
    assert!(shown.contains("PolicyFence"), "{shown}");
    for secret in ["EMEA", "10000)"] {
        assert!(
            !shown.contains(secret),
            "/v1/explain shows {secret}: {shown}"
        );
    }
    // A literal with a line break does not end what is hidden (the plan is drawn without it).
    let broken = format!(
        "EXPLAIN VERBOSE SELECT id FROM {} WHERE name <> 'a\n  b' AND id < 9",
        g.table("emp")
    );
    let (status, rows) = answer(app, key, &broken).await;
    assert_eq!(status, 200, "{rows}");
    let text = rows.to_string();
    assert!(text.contains("PolicyFence"), "{text}");
    for secret in ["EMEA", "sha256", "10000)"] {
        assert!(
            !text.contains(secret),
            "EXPLAIN VERBOSE shows {secret}: {text}"
        );
    }
    // EXPLAIN ANALYZE (counts below the fence) is for admins only.
    let (status, code) = answer(app, key, &format!("EXPLAIN ANALYZE {sql}")).await;
    assert_eq!((status, code), (403, json!("permission_denied")));
}

#[actix_web::test]
async fn parquet_policies_hide_rows_and_mask_columns_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (g, source) = parquet_source(dir.path()).await;
    let app = TestApp::spawn_with(|c: &mut Config| {
        c.sources.push(source);
        c.policies.push(policy("hr"));
        // Matches every table, masks a column none has: nothing changes, and what is not a
        // source's table (a recursive CTE's work table, a table function) is never guarded.
        c.policies.push(Policy {
            name: "anywhere".into(),
            tables: "*.*.*".into(),
            row_filter: None,
            masks: BTreeMap::from([("no_such_column".to_owned(), "NULL".to_owned())]),
            applies_to: None,
            admins_bypass: false,
        });
    })
    .await;
    let key = reader(&app, "EMEA").await;
    for (sql, want) in [
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT count(*) FROM r",
            json!([[3]]),
        ),
        ("SELECT count(*) FROM generate_series(1, 4)", json!([[4]])),
    ] {
        assert_eq!(answer(&app, &key, sql).await, (200, want), "{sql}");
    }
    // Where a row sits in its file tells where hidden rows are: not for a guarded caller.
    let (status, _) = answer(&app, &key, "SELECT file_row_index() FROM hr.public.emp").await;
    assert_eq!(status, 400);
    probes_answer_as_the_reference(&app, &key, &g).await;
    the_leak_recorder_never_sees_a_hidden_row(&app, &key, &g).await;
    explain_tells_nothing(&app, &key, &g).await;
    // The other doors go through the same rule.
    for sql in [
        "SELECT * FROM hr.public.emp",
        "SELECT id FROM hr.public.emp WHERE 1 / (x - 42) > 0 OR id > 0",
        "SELECT id FROM hr.public.emp WHERE email LIKE '%@%'",
    ] {
        let want = Ok(if sql.contains("LIKE") { 0 } else { 3 });
        assert_eq!(
            crate::pg::verdict(&app, &key, sql).await,
            want,
            "pg door: {sql}"
        );
        assert_eq!(
            crate::flight::verdict(&app, &key, sql).await,
            want,
            "Flight: {sql}"
        );
    }
    // An admin (the policy applies to readers) sees every row, unmasked.
    let (_, all) = answer(
        &app,
        &app.key,
        "SELECT count(*), min(email) FROM hr.public.emp",
    )
    .await;
    assert_eq!(all, json!([[5, "HIDDEN_dan@x.com"]]));
    // A reader without the attribute sees no row: the filter compares with NULL.
    let nobody = create_key(
        &app,
        json!({"name": "no-region", "grants": [{"source": "*", "schema": "*", "table": "*"}]}),
    )
    .await;
    let (_, none) = answer(
        &app,
        nobody["key"].as_str().unwrap(),
        "SELECT count(*) FROM hr.public.emp",
    )
    .await;
    assert_eq!(none, json!([[0]]));
}

#[actix_web::test]
async fn postgres_policies_hold_with_full_pushdown_and_every_statement_carries_the_filter() {
    let Some((g, source, pg)) = pg_source().await else {
        return;
    };
    let app = TestApp::spawn_with(|c: &mut Config| {
        c.sources.push(source);
        c.policies.push(policy("hrpg"));
    })
    .await;
    let key = reader(&app, "EMEA").await;
    probes_answer_as_the_reference(&app, &key, &g).await;
    the_leak_recorder_never_sees_a_hidden_row(&app, &key, &g).await;
    explain_tells_nothing(&app, &key, &g).await;
    // PostgreSQL's own log: each statement Sluice sent for the guarded table carries the row
    // filter, and none of the probes' expressions that could fail.
    let t = g.table("emp");
    for sql in [
        format!("SELECT id FROM {t} WHERE 1 / (x - 42) > 0"),
        format!("SELECT count(*) FROM {t} WHERE id > 1"),
        format!(
            "SELECT e.name, d.label FROM {t} e JOIN {} d ON d.id = e.id",
            g.table("dept")
        ),
        format!(
            "SELECT id FROM {t} WHERE id IN (SELECT id FROM {t} WHERE CAST(code AS BIGINT) > 5)"
        ),
    ] {
        let resp = query_as(&app, &key, &sql).await;
        assert_eq!(resp.status(), 200, "{sql}");
        let qid = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
        let _ = resp.bytes().await;
        // What a guarded statement pulled is not reported to the caller (its rows could
        // count hidden ones where a source cannot run the row filter).
        let pulled = crate::federation::pulled(&app, &qid).await;
        if sql.contains("JOIN") {
            // Only dept's statement (narrowed to the join's keys) counts.
            assert_eq!(pulled["hrpg"].0, 1, "{sql}: {pulled:?}");
        } else {
            assert!(!pulled.contains_key("hrpg"), "{sql}: {pulled:?}");
        }
        let logged = crate::federation::logged(&qid, 1).await;
        let on_emp: Vec<_> = logged.iter().filter(|s| s.contains("\"emp\"")).collect();
        assert!(!on_emp.is_empty(), "{sql}: {logged:?}");
        for statement in on_emp {
            assert!(
                statement.contains("\"region\" = 'EMEA'"),
                "{sql}: sent without the filter: {statement}"
            );
            // PostgreSQL's own plan of it: the filter applies at the scan of emp, and nothing
            // else of the caller's (only leakproof comparisons) is evaluated there.
            let plan: Vec<String> = pg
                .query(&format!("EXPLAIN {statement}"), &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect();
            let plan = plan.join("\n");
            assert!(
                plan.contains("Scan on emp") && plan.contains("(region = 'EMEA'::text)"),
                "{statement}:\n{plan}"
            );
            assert!(!plan.contains("- 42"), "{plan}");
            assert!(
                !statement.contains("- 42") && !statement.contains("BIGINT"),
                "{sql}: a probe reached the source: {statement}"
            );
        }
    }
}

/// Two readers whose filters differ never share a cached result, on one server or through
/// Redis; two readers with the same resolved policy do.
#[actix_web::test]
async fn callers_with_different_policies_never_share_a_cached_result() {
    let redis_url = crate::postgres::service_env("SLUICE_TEST_REDIS_URL");
    let dir = tempfile::tempdir().unwrap();
    let (_, source) = parquet_source(dir.path()).await;
    let server = || {
        let (source, redis_url) = (source.clone(), redis_url.clone());
        TestApp::spawn_with(move |c: &mut Config| {
            c.cache = sluice_schemas::CacheConfig::default();
            c.cache.redis_url = redis_url;
            c.sources.push(source);
            c.policies.push(policy("hr"));
        })
    };
    let (a, b) = (server().await, server().await);
    let tag = uuid::Uuid::new_v4();
    let sql = format!("SELECT name, '{tag}' AS tag FROM hr.public.emp ORDER BY id");
    let ask = |app: &TestApp, key: String| {
        let req =
            as_key(app, &key, reqwest::Method::POST, "/v1/query").json(&json!({ "sql": sql }));
        async move {
            let resp = req.send().await.unwrap();
            let cache = resp
                .headers()
                .get("x-sluice-cache")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = resp.json().await.unwrap();
            let names: Vec<Value> = body["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r[0].clone())
                .collect();
            (cache.unwrap_or_default(), names)
        }
    };
    let emea_a = reader(&a, "EMEA").await;
    let apac_a = reader(&a, "APAC").await;
    let first = ask(&a, emea_a.clone()).await;
    assert_eq!(
        first,
        (
            "miss".to_owned(),
            vec![json!("ann"), json!("bob"), json!("cid")]
        )
    );
    assert_eq!(
        ask(&a, emea_a.clone()).await.0,
        "hit",
        "the same policy shares"
    );
    let other = ask(&a, apac_a).await;
    assert_eq!(
        other,
        (
            "miss".to_owned(),
            vec![json!("HIDDEN_dan"), json!("HIDDEN_eve")]
        )
    );
    if redis_url.is_some() {
        // Server B, through Redis: the same resolved policy is a hit (so Redis is shared), a
        // different one never is.
        let emea_b = reader(&b, "EMEA").await;
        let apac_b = reader(&b, "APAC").await;
        let mut waiting = crate::Waiting::new("the EMEA result to reach Redis".to_owned());
        loop {
            let (cache, names) = ask(&b, emea_b.clone()).await;
            assert_eq!(names, first.1);
            if cache == "hit" {
                break;
            }
            waiting.pause(&json!(cache)).await;
        }
        let fresh = ask(&b, apac_b.clone()).await;
        assert_eq!(
            fresh.1,
            vec![json!("HIDDEN_dan"), json!("HIDDEN_eve")],
            "{fresh:?}"
        );
        let nobody = create_key(
            &b,
            json!({"name": "none", "grants": [{"source": "*", "schema": "*", "table": "*"}]}),
        )
        .await;
        let none = ask(&b, nobody["key"].as_str().unwrap().to_owned()).await;
        assert_eq!(none, ("miss".to_owned(), vec![]));
    }
}

/// `/v1/policies` and `sluice policies`: stored in the PostgreSQL metadata store, applied by
/// this server at its next statement and by another server sharing the store within the key
/// sync; the config's policies listed but not changeable; bad policies refused.
#[actix_web::test]
async fn policies_added_at_run_time_apply_on_every_server() {
    let Some(meta) = super::fresh_db("SLUICE_TEST_PG_URL", "pol").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, source) = parquet_source(dir.path()).await;
    let server = || {
        let source = source.clone();
        super::app_on(&meta, move |c: &mut Config| {
            c.auth.key_sync_ms = 100;
            c.sources.push(source);
            c.policies.push(Policy {
                name: "from_file".into(),
                tables: "hr.public.dept".into(),
                row_filter: Some("id < 100".into()),
                masks: BTreeMap::new(),
                applies_to: None,
                admins_bypass: true,
            });
        })
    };
    let a = server().await;
    let b = server().await;
    let key = reader(&a, "EMEA").await;
    let count = "SELECT count(*) FROM hr.public.emp";
    assert_eq!(answer(&a, &key, count).await.1, json!([[5]]));

    // Refusals: readers may not, bad policies and names are refused, the file's stays.
    let post = |app: &TestApp, key: &str, body: Value| {
        as_key(app, key, reqwest::Method::POST, "/v1/policies")
            .json(&body)
            .send()
    };
    let mut p = serde_json::to_value(policy("hr")).unwrap();
    let r = post(&a, &key, p.clone()).await.unwrap();
    assert_eq!(r.status(), 403);
    for bad in [
        json!({"name": "x", "tables": "hr.emp", "row_filter": "true"}),
        json!({"name": "x", "tables": "hr.public.emp"}),
        json!({"name": "x", "tables": "hr.public.emp", "row_filter": "a = principal.attr(region)"}),
        json!({"name": "x", "tables": "hr.public.emp", "row_filter": "a = 1; DROP TABLE t"}),
        json!({"name": "x y", "tables": "hr.public.emp", "row_filter": "true"}),
        json!({"name": "x", "tables": "hr.public.emp", "row_filter": "true", "bogus": 1}),
    ] {
        let r = post(&a, &a.key, bad.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = as_key(
        &a,
        &a.key,
        reqwest::Method::DELETE,
        "/v1/policies/from_file",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 409);
    let r = post(
        &a,
        &a.key,
        json!({"name": "from_file", "tables": "a.b.c", "row_filter": "true"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 409);

    // Created through A: A applies it at once, B within the sync.
    let r = post(&a, &a.key, p.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(post(&a, &a.key, p.clone()).await.unwrap().status(), 409);
    assert_eq!(answer(&a, &key, count).await.1, json!([[3]]));
    // The key made through A works on B (one store).
    let key_b = key.clone();
    let mut waiting = crate::Waiting::new("server B to apply the policy".to_owned());
    loop {
        let (_, n) = answer(&b, &key_b, count).await;
        if n == json!([[3]]) {
            break;
        }
        waiting.pause(&n).await;
    }
    let listed = a.get_json("/v1/policies").await;
    let origins: Vec<(Value, Value)> = listed["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["policy"]["name"].clone(), p["origin"].clone()))
        .collect();
    assert_eq!(
        origins,
        vec![
            (json!("from_file"), json!("config")),
            (json!("hr_emea"), json!("store"))
        ]
    );

    // Replaced through the CLI: every region's rows, masks kept.
    p["row_filter"] = json!("region IN ('EMEA', 'APAC')");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .env("SLUICE_URL", &a.url)
            .env("SLUICE_API_KEY", &a.key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let set = cli(&[
        "policies",
        "set",
        "hr_emea",
        "--tables",
        "hr.*.emp",
        "--row-filter",
        "region IN ('EMEA', 'APAC')",
        "--mask",
        "email=sha256(email)",
        "--role",
        "reader",
    ]);
    assert_eq!(set["origin"], "store", "{set}");
    // Rows with a readable address: none while the mask holds.
    let emails = async || {
        answer(
            &a,
            &key,
            "SELECT count(*) FROM hr.public.emp WHERE email LIKE '%@%'",
        )
        .await
        .1
    };
    assert_eq!(answer(&a, &key, count).await.1, json!([[5]]));
    assert_eq!(emails().await, json!([[0]]), "the mask still holds");
    let listed = cli(&["policies", "list"]);
    assert_eq!(listed["policies"].as_array().unwrap().len(), 2, "{listed}");
    cli(&["policies", "remove", "hr_emea"]);
    assert_eq!(answer(&a, &key, count).await.1, json!([[5]]));
    assert_eq!(emails().await, json!([[4]]));
    let r = as_key(&a, &a.key, reqwest::Method::DELETE, "/v1/policies/hr_emea")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
