//! The differential harness: each client library runs the same script against the test
//! PostgreSQL cluster and against Sluice fronting that database (source `pg`, connected as
//! database `pg` with the test schema on the search path); what each saw must match, value for
//! value and SQLSTATE for SQLSTATE, except where a step says why not.

use std::process::Command;

use serde_json::{Value, json};

use crate::TestApp;

/// The two targets of one fixture: the cluster itself and Sluice in front of it.
struct Targets {
    postgres: Value,
    sluice: Value,
    _app: TestApp,
}

async fn targets() -> Option<Targets> {
    let (_pg, url, schema) = crate::postgres::setup(super::ITEMS_SQL).await?;
    let app = crate::postgres::app_with(crate::postgres::source("pg", &url, &schema)).await;
    let (host, port) = super::host_port(&url);
    let user = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .unwrap_or("postgres")
        .to_owned();
    let database = url.rsplit('/').next().unwrap_or("postgres").to_owned();
    let postgres = json!({
        "host": host, "port": port, "user": user, "password": "", "database": database,
        "search_path": schema, "schema_name": schema, "sslmode": "disable",
    });
    let (host, port) = super::host_port(app.pg.as_deref().unwrap());
    let sluice = json!({
        "host": host, "port": port, "user": "analyst", "password": app.key, "database": "pg",
        "search_path": schema, "schema_name": format!("pg.{schema}"), "sslmode": "disable",
    });
    Some(Targets {
        postgres,
        sluice,
        _app: app,
    })
}

async fn run(program: &str, args: &[&str]) -> Value {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let out = crate::output(cmd).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{program} printed no JSON ({e}): {stdout}"))
}

/// Asserts both sides saw the same for each step, but for `differ` (step, why).
fn same(client: &str, postgres: &Value, sluice: &Value, differ: &[(&str, &str)]) {
    let steps = postgres.as_object().unwrap();
    assert!(!steps.is_empty(), "{client}: no steps ran");
    for (step, want) in steps {
        if differ.iter().any(|(s, _)| s == step) {
            continue;
        }
        let got = &sluice[step];
        assert_eq!(
            got, want,
            "{client}, step {step}: Sluice (left) vs PostgreSQL (right)"
        );
    }
}

#[actix_web::test]
async fn python_clients_see_what_postgres_shows() {
    let Some(python) = crate::needs(
        "SLUICE_TEST_PYTHON",
        "the project's Python with psycopg, asyncpg, pg8000, SQLAlchemy and pandas",
    ) else {
        return;
    };
    let Some(t) = targets().await else {
        return;
    };
    let script = crate::testdata().join("pg/clients.py");
    let script = script.to_str().unwrap();
    for client in [
        "psycopg",
        "psycopg-binary",
        "asyncpg",
        "pg8000",
        "sqlalchemy",
    ] {
        let postgres = run(&python, &[script, client, &t.postgres.to_string()]).await;
        let sluice = run(&python, &[script, client, &t.sluice.to_string()]).await;
        // The cluster here is PostgreSQL 15; Sluice says 16.
        same(
            client,
            &postgres,
            &sluice,
            &[("version", "versions differ by design")],
        );
        if client == "sqlalchemy" {
            assert_eq!(sluice["version"]["rows"][0][0], "16", "{sluice}");
        }
    }
}
