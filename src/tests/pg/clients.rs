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

#[actix_web::test]
async fn psqlodbc_in_declare_fetch_mode_sees_what_postgres_shows() {
    let Some(python) = crate::needs("SLUICE_TEST_PYTHON", "the project's Python with pyodbc")
    else {
        return;
    };
    let Some(driver) = crate::needs(
        "SLUICE_TEST_PSQLODBC",
        "psqlODBC (Debian's odbc-postgresql)",
    ) else {
        return;
    };
    let Some(mut t) = targets().await else {
        return;
    };
    t.postgres["driver"] = json!(driver);
    t.sluice["driver"] = json!(driver);
    let script = crate::testdata().join("pg/clients.py");
    let script = script.to_str().unwrap();
    let postgres = run(&python, &[script, "odbc", &t.postgres.to_string()]).await;
    let sluice = run(&python, &[script, "odbc", &t.sluice.to_string()]).await;
    same("psqlODBC", &postgres, &sluice, &[]);
}

#[actix_web::test]
async fn node_clients_see_what_postgres_shows() {
    let Some(node_path) = crate::needs(
        "SLUICE_TEST_NODE_PATH",
        "npm pg and postgres (scripts/services.sh)",
    ) else {
        return;
    };
    let Some(t) = targets().await else {
        return;
    };
    let script = crate::testdata().join("pg/clients.mjs");
    for client in ["pg", "postgres"] {
        let run_node = |target: &Value| {
            let mut cmd = Command::new("node");
            cmd.env("NODE_PATH", &node_path)
                .arg(&script)
                .arg(client)
                .arg(target.to_string());
            cmd
        };
        let postgres = run_cmd(run_node(&t.postgres)).await;
        let sluice = run_cmd(run_node(&t.sluice)).await;
        same(client, &postgres, &sluice, &[]);
    }
}

#[actix_web::test]
async fn pgjdbc_sees_what_postgres_shows() {
    use crate::postgres::lifecycle::slow_view;
    let Some(jar) = crate::needs(
        "SLUICE_TEST_PG_JDBC",
        "pgjdbc (Debian's libpostgresql-jdbc-java)",
    ) else {
        return;
    };
    let Some((pg, url, schema)) = crate::postgres::setup(super::ITEMS_SQL).await else {
        return;
    };
    pg.batch_execute(&format!("SET search_path = {schema}; {}", slow_view()))
        .await
        .unwrap();
    let app = crate::postgres::app_with(crate::postgres::source("pg", &url, &schema)).await;
    let (host, port) = super::host_port(&url);
    let database = url.rsplit('/').next().unwrap_or("postgres");
    let (shost, sport) = super::host_port(app.pg.as_deref().unwrap());
    let probe = crate::testdata().join("pg/Probe.java");
    let java = |jdbc: String, user: &str, password: &str, meta_schema: String| {
        let mut cmd = Command::new("java");
        cmd.arg("-cp").arg(&jar).arg(&probe).args([
            jdbc.as_str(),
            user,
            password,
            schema.as_str(),
            meta_schema.as_str(),
        ]);
        cmd
    };
    let postgres = run_cmd(java(
        format!("jdbc:postgresql://{host}:{port}/{database}"),
        "postgres",
        "",
        schema.clone(),
    ))
    .await;
    let sluice = run_cmd(java(
        format!("jdbc:postgresql://{shost}:{sport}/pg"),
        "analyst",
        &app.key,
        format!("pg.{schema}"),
    ))
    .await;
    assert_eq!(sluice["timeout"]["error"], "57014", "{sluice}");
    assert_eq!(sluice["product"]["rows"][0][0], "PostgreSQL");
    same("pgjdbc", &postgres, &sluice, &[]);
}

#[actix_web::test]
async fn go_lib_pq_sees_what_postgres_shows() {
    let Some(gopath) = crate::needs(
        "SLUICE_TEST_GOPATH",
        "Go with lib/pq (Debian's golang-github-lib-pq-dev)",
    ) else {
        return;
    };
    let Some(t) = targets().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        crate::testdata().join("pg/probe.go"),
        dir.path().join("probe.go"),
    )
    .unwrap();
    let mut build = Command::new("go");
    build
        .args(["build", "-o", "probe", "probe.go"])
        .current_dir(dir.path())
        .env("GO111MODULE", "off")
        .env("GOPATH", &gopath)
        .env("GOCACHE", dir.path().join("cache"));
    let out = crate::output(build).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dsn = |t: &Value| {
        format!(
            "host={} port={} user={} password='{}' dbname={} sslmode=disable search_path={}",
            t["host"].as_str().unwrap(),
            t["port"],
            t["user"].as_str().unwrap(),
            t["password"].as_str().unwrap(),
            t["database"].as_str().unwrap(),
            t["search_path"].as_str().unwrap(),
        )
    };
    let probe = dir.path().join("probe");
    let mut cmd = Command::new(&probe);
    cmd.arg(dsn(&t.postgres));
    let postgres = run_cmd(cmd).await;
    let mut cmd = Command::new(&probe);
    cmd.arg(dsn(&t.sluice));
    let sluice = run_cmd(cmd).await;
    same("lib/pq", &postgres, &sluice, &[]);
}

async fn run_cmd(cmd: Command) -> Value {
    let shown = format!("{cmd:?}");
    let out = crate::output(cmd).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{shown} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{shown} printed no JSON ({e}): {stdout}"))
}

/// The statements of one client's section in `testdata/pg/captures.txt`.
fn captures(client: &str) -> Vec<String> {
    let text = std::fs::read_to_string(crate::testdata().join("pg/captures.txt")).unwrap();
    let mut out = Vec::new();
    let mut inside = false;
    let mut current = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("## ") {
            inside = name.trim() == client;
            continue;
        }
        if !inside || line.starts_with("# ") {
            continue;
        }
        if line.trim() == "--;" {
            if !current.trim().is_empty() {
                out.push(std::mem::take(&mut current));
            }
            current.clear();
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    out
}

#[actix_web::test]
async fn what_npgsql_metabase_and_dbeaver_send_on_connect_answers() {
    let app = super::app().await;
    let c = super::connect(&app, "sluice").await;
    for client in ["npgsql", "metabase", "dbeaver"] {
        let statements = captures(client);
        assert!(
            statements.len() >= 4,
            "{client}: {} statements",
            statements.len()
        );
        for sql in statements {
            // Simple protocol (text), and extended (Parse, Describe, binary results).
            if let Err(e) = c.simple_query(&sql).await {
                panic!(
                    "{client} (simple): {sql}\n{}",
                    super::state_of(&e) + " " + &format!("{e:?}")
                );
            }
            if !sql.trim_start().to_ascii_uppercase().starts_with("DISCARD")
                && !sql.trim_start().to_ascii_uppercase().starts_with("SET")
                && let Err(e) = c.query(sql.as_str(), &[]).await
            {
                panic!(
                    "{client} (extended): {sql}\n{}",
                    super::state_of(&e) + " " + &format!("{e:?}")
                );
            }
        }
    }
}
