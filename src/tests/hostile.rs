//! The hostile-SQL corpus (`testdata/hostile/hostile.txt`): writes and DDL in every spelling,
//! writes hidden in CTEs and `EXPLAIN ANALYZE`, session and transaction statements, stacked
//! statements behind comments and string literals, file and URL reads, unknown catalogs,
//! look-alike unicode, pathological shapes and resource bombs. Each statement must get its
//! documented answer within the client's timeout; afterwards the server still serves, no file
//! was written, the PostgreSQL table is whole, and no corpus statement reached PostgreSQL
//! (its statement log names every query Sluice sends as `sluice:<query id>`).

use std::time::Duration;

use serde_json::Value;

use super::postgres::{service_env, setup, source};
use crate::TestApp;

/// One expected answer.
struct Case {
    statuses: Vec<u16>,
    codes: Vec<String>,
    sql: String,
    label: String,
}

/// A pathological statement of the given size.
fn generate(name: &str, n: usize) -> String {
    match name {
        "parens" => format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n)),
        "subqueries" => format!(
            "SELECT * FROM {}nation{}",
            "(SELECT * FROM ".repeat(n),
            ") t".repeat(n)
        ),
        "unions" => format!("SELECT 1{}", " UNION ALL SELECT 1".repeat(n)),
        "chain" => format!("SELECT 1{}", " + 1".repeat(n)),
        "columns" => format!("SELECT {}1", "1,".repeat(n - 1)),
        "aliased_columns" => {
            let cols: Vec<String> = (0..n).map(|i| format!("{i} AS c{i}")).collect();
            format!("SELECT {}", cols.join(", "))
        }
        "big_sql" => format!("SELECT 1 -- {}", "x".repeat(n)),
        "case_nesting" => format!(
            "SELECT {}1{}",
            "CASE WHEN true THEN ".repeat(n),
            " END".repeat(n)
        ),
        "in_list" => {
            let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            format!(
                "SELECT count(*) FROM nation WHERE n_nationkey IN ({})",
                items.join(",")
            )
        }
        other => panic!("no generator {other}"),
    }
}

fn corpus(pg: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(crate::testdata().join("hostile/hostile.txt")).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let statuses = parts.next().unwrap();
        let codes = parts.next().unwrap();
        let rest = parts.next().unwrap_or("");
        let (sql, label) = if let Some(g) = rest.strip_prefix("@gen ") {
            let (name, n) = g.split_once(' ').unwrap();
            (generate(name, n.parse().unwrap()), format!("@gen {g}"))
        } else {
            let sql = rest
                .replace("{pg}", pg)
                .replace("\\n", "\n")
                .replace("\\0", "\0");
            (sql.clone(), sql)
        };
        out.push(Case {
            statuses: statuses.split('|').map(|s| s.parse().unwrap()).collect(),
            codes: codes.split('|').map(str::to_owned).collect(),
            sql,
            label,
        });
    }
    out
}

#[actix_web::test]
async fn hostile_sql_gets_its_documented_answer_and_changes_nothing() {
    let Some((pg, url, schema)) = setup(
        "CREATE TABLE items (id int4 PRIMARY KEY, name text);
         INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c');",
    )
    .await
    else {
        return;
    };
    let log = service_env("SLUICE_TEST_PG_LOG").expect("the PostgreSQL statement log");
    let app = TestApp::spawn_with(|c| {
        c.sources
            .push(sluice_schemas::SourceConfig::Postgres(source(
                "pg", &url, &schema,
            )));
        // Bombs end in bounded time: a short timeout and a small memory pool.
        c.limits.query_timeout_ms = 3_000;
        c.limits.memory_limit_bytes = 256 << 20;
    })
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let cases = corpus(&format!("pg.{schema}"));
    assert!(
        cases.len() >= 150,
        "the corpus has {} statements",
        cases.len()
    );
    let mut ids = Vec::new();
    let mut failures = Vec::new();
    for case in &cases {
        let resp = client
            .post(format!("{}/v1/query", app.url))
            .bearer_auth(&app.key)
            .header("Content-Type", "application/sql")
            .body(case.sql.clone())
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: no answer: {e}", short(&case.label)));
                continue;
            }
        };
        let status = resp.status().as_u16();
        if let Some(id) = resp.headers().get("x-query-id") {
            ids.push(id.to_str().unwrap().to_owned());
        }
        let body = resp.bytes().await;
        let code = if status == 200 {
            // A body cut mid-stream (a failure after the first byte) is not an answer.
            Some(if body.is_ok() { "ok" } else { "cut" }.to_owned())
        } else {
            body.ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        };
        let code = code.unwrap_or_else(|| "<no code>".to_owned());
        if !case.statuses.contains(&status) || !case.codes.contains(&code) {
            failures.push(format!(
                "{}: got {status} {code}, expected {:?} {:?}",
                short(&case.label),
                case.statuses,
                case.codes
            ));
        }
        // The same statement through Flight SQL gets the same verdict (a body over the
        // request limit is refused by gRPC's own message limit there).
        if code != "request_too_large" {
            let flight = match crate::flight::verdict(&app, &app.key, &case.sql).await {
                Ok(_) => "ok".to_owned(),
                Err(c) => c,
            };
            if flight != code && !case.codes.contains(&flight) {
                failures.push(format!(
                    "{}: Flight SQL got {flight}, HTTP {code}",
                    short(&case.label)
                ));
            }
            // And through the PostgreSQL protocol: the same verdict, or one of the door's own
            // (see `crate::pg::same_verdict`).
            let pg = crate::pg::verdict(&app, &app.key, &case.sql).await;
            if !crate::pg::same_verdict(&case.sql, &pg, &code, &case.codes) {
                failures.push(format!(
                    "{}: the PostgreSQL door got {pg:?}, HTTP {code}",
                    short(&case.label)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile statements got the wrong answer:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(ids.len(), cases.len(), "every answer names its query");

    // The server serves; nothing was written anywhere.
    app.assert_serving().await;
    for f in [
        "/tmp/sluice-hostile-copy.csv",
        "/tmp/sluice-hostile-copy.parquet",
        "/tmp/sluice-hostile-copy.json",
    ] {
        assert!(!std::path::Path::new(f).exists(), "{f} was written");
    }
    let rows = pg
        .query_one(&format!("SELECT count(*) FROM {schema}.items"), &[])
        .await
        .unwrap();
    assert_eq!(rows.get::<_, i64>(0), 3, "the PostgreSQL table is whole");
    // No corpus statement reached PostgreSQL. The log is written as statements arrive; a
    // query after the corpus, through the same source, shows it is caught up.
    let probe = app
        .query(
            serde_json::json!({"sql": format!("SELECT count(*) FROM pg.{schema}.items")}),
            "application/json",
        )
        .await;
    let probe_id = probe.headers()["x-query-id"].to_str().unwrap().to_owned();
    assert_eq!(probe.status(), 200);
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(&log).unwrap();
        if text.contains(&format!("sluice:{probe_id}")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        text.contains(&format!("sluice:{probe_id}")),
        "the log is read"
    );
    let reached: Vec<&String> = ids
        .iter()
        .filter(|id| text.contains(&format!("sluice:{id}|")))
        .collect();
    assert!(
        reached.is_empty(),
        "corpus statements reached PostgreSQL: {reached:?}"
    );
}

/// The first line of a statement, cut to a readable length.
fn short(sql: &str) -> String {
    let first = sql.lines().next().unwrap_or("");
    if first.chars().count() > 120 {
        format!("{}…", first.chars().take(120).collect::<String>())
    } else {
        first.to_owned()
    }
}
