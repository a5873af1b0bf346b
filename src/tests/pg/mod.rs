//! The PostgreSQL door, driven by real clients: tokio-postgres (the extended protocol in
//! binary, portals, cancel), `psql`, and the client libraries of `clients.rs` run against both
//! the test PostgreSQL cluster and Sluice fronting it (a differential harness). `wire.rs` sends
//! frames by hand (limits, malformed messages, TLS rules).

mod clients;
mod wire;

use std::process::Command;

use sluice_schemas::{Config, PgConfig};
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::TestApp;

/// The table every differential script reads, on the test cluster.
pub const ITEMS_SQL: &str = "
CREATE TABLE items (i4 int4, i8 int8, f8 float8, n numeric(12, 3), t text, b bool, d date,
  ts timestamp, tz timestamptz, by bytea);
INSERT INTO items VALUES
 (1, 10000000000, 1.5, 12345.678, 'one', true, '2024-01-31', '2024-01-31 10:20:30.123456',
  '2024-01-31 10:20:30+00', '\\x00ff'),
 (2, -2, -0.25, -0.05, 'two', false, '1999-12-31', '1999-12-31 23:59:59', '2000-01-01 00:00:00+02',
  '\\x'),
 (3, 0, 1e300, 0, 'a \"quoted\", {braced} \\ text', NULL, '0001-01-01', NULL, NULL, NULL),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);";

/// Host and port of a `postgresql://host:port...` URL.
pub fn host_port(url: &str) -> (String, u16) {
    let rest = url
        .trim_start_matches("postgresql://")
        .trim_start_matches("postgres://");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let hostport = rest.split(['/', '?']).next().unwrap_or_default();
    let (host, port) = hostport.rsplit_once(':').unwrap();
    (host.to_owned(), port.parse().unwrap())
}

/// A libpq-style connection string to `app`'s door as `user` with `password`.
pub fn conninfo(app: &TestApp, database: &str, password: &str) -> String {
    let (host, port) = host_port(app.pg.as_deref().expect("[pg] is on"));
    format!(
        "host={host} port={port} user=tester password={password} dbname={database} sslmode=disable"
    )
}

/// tokio-postgres connected to `app`'s door.
pub async fn connect(app: &TestApp, database: &str) -> tokio_postgres::Client {
    connect_as(app, database, &app.key).await.unwrap()
}

pub async fn connect_as(
    app: &TestApp,
    database: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(&conninfo(app, database, password), NoTls).await?;
    actix_web::rt::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// The rows of a simple query as text.
pub async fn simple(c: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The SQLSTATE of a failed statement.
pub fn state_of(e: &tokio_postgres::Error) -> String {
    e.code()
        .map_or_else(|| format!("no sqlstate: {e}"), |c| c.code().to_owned())
}

/// A value's binary form as sent.
struct Raw(Vec<u8>);

impl<'a> tokio_postgres::types::FromSql<'a> for Raw {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(raw.to_vec()))
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }
}

/// `psql` to `app`'s door and `database`, as `analyst` with the admin key, no psqlrc.
fn psql_to(app: &TestApp, database: &str) -> Command {
    let (host, port) = host_port(app.pg.as_deref().unwrap());
    let mut cmd = Command::new("psql");
    cmd.env("PGPASSWORD", &app.key).args([
        "-h",
        &host,
        "-p",
        &port.to_string(),
        "-U",
        "analyst",
        "-d",
        database,
        "-X",
    ]);
    cmd
}

/// The embedded default with `[pg]` on a free port.
pub async fn app() -> TestApp {
    TestApp::spawn().await
}

#[actix_web::test]
async fn psql_lists_and_describes_the_granted_catalog() {
    let app = app().await;
    let psql = |args: &[&str]| {
        let mut cmd = psql_to(&app, "sluice");
        cmd.args(["-v", "ON_ERROR_STOP=1"]).args(args);
        cmd
    };
    let out = crate::output(psql(&["-c", "\\dt"])).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for table in ["customer", "lineitem", "nation", "orders", "region"] {
        assert!(text.contains(table), "\\dt lists {table}: {text}");
    }
    let out = crate::output(psql(&["-c", "\\d nation"])).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Table \"local.public.nation\""), "{text}");
    assert!(text.contains("n_nationkey | bigint"), "{text}");
    assert!(text.contains("n_name      | text"), "{text}");
    // Queries, several in one string, and `\copy (select ...) to` a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nations.csv");
    let copy = format!(
        "\\copy (SELECT n_nationkey, n_name FROM nation ORDER BY 1 LIMIT 3) TO '{}' WITH CSV HEADER",
        file.display()
    );
    let out = crate::output(psql(&[
        "-A",
        "-t",
        "-c",
        "SET TIME ZONE 'UTC'; SELECT count(*) FROM nation",
        "-c",
        &copy,
        "-c",
        "SELECT version()",
    ]))
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("\n25\n") || text.starts_with("25\n"),
        "{text}"
    );
    assert!(text.contains("PostgreSQL 16."), "{text}");
    let csv = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        csv, "n_nationkey,n_name\n0,ALGERIA\n1,ARGENTINA\n2,BRAZIL\n",
        "\\copy wrote the rows"
    );
    // HTTP's own answer is unchanged: version() is DataFusion's there.
    let batches = app.arrow("SELECT version()").await;
    let v = crate::cells(&batches);
    assert!(!v[0][0].contains("PostgreSQL"), "{v:?}");
}

#[actix_web::test]
async fn extended_protocol_binds_parameters_and_reads_binary() {
    let app = app().await;
    let c = connect(&app, "sluice").await;
    // tokio-postgres prepares (Parse, Describe) and reads every column in binary.
    let stmt = c
        .prepare("SELECT n_nationkey, n_name FROM nation WHERE n_nationkey = $1 OR n_name = $2")
        .await
        .unwrap();
    assert_eq!(
        stmt.params(),
        &[
            tokio_postgres::types::Type::INT8,
            tokio_postgres::types::Type::TEXT
        ]
    );
    assert_eq!(
        stmt.columns()[0].type_(),
        &tokio_postgres::types::Type::INT8
    );
    assert_eq!(stmt.columns()[1].name(), "n_name");
    let rows = c.query(&stmt, &[&7_i64, &"PERU"]).await.unwrap();
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![(7, "GERMANY".to_owned()), (17, "PERU".to_owned())]
    );
    // Types in binary: dates, timestamps, floats, booleans, numerics (read as text here).
    let row = c
        .query_one(
            "SELECT DATE '2024-01-31' AS d, TIMESTAMP '2024-01-31 10:20:30.5' AS ts, \
             CAST(1.5 AS DOUBLE) AS f, true AS b, CAST(7 AS INT) AS i, CAST(3 AS SMALLINT) AS s, \
             CAST(12.34 AS DECIMAL(6, 2)) AS n",
            &[],
        )
        .await
        .unwrap();
    // Days and microseconds from 2000-01-01, PostgreSQL's binary forms.
    assert_eq!(row.get::<_, Raw>("d").0, 8_796_i32.to_be_bytes().to_vec());
    let ts: std::time::SystemTime = row.get("ts");
    let micros = ts
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    assert_eq!(micros, 1_706_696_430_500_000);
    assert_eq!(row.get::<_, f64>("f"), 1.5);
    assert!(row.get::<_, bool>("b"));
    assert_eq!(row.get::<_, i32>("i"), 7);
    assert_eq!(row.get::<_, i16>("s"), 3);
    assert_eq!(
        row.columns()[6].type_(),
        &tokio_postgres::types::Type::NUMERIC
    );
    // Portal suspension: a portal read 10 rows at a time, in a transaction.
    let mut c = c;
    let tx = c.transaction().await.unwrap();
    let portal = tx
        .bind("SELECT n_nationkey FROM nation ORDER BY n_nationkey", &[])
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let rows = tx.query_portal(&portal, 10).await.unwrap();
        if rows.is_empty() {
            break;
        }
        assert!(rows.len() <= 10);
        seen.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
    }
    assert_eq!(seen, (0..25).collect::<Vec<i64>>());
    tx.commit().await.unwrap();
}

#[actix_web::test]
async fn sessions_follow_postgres_and_never_touch_the_planner() {
    let app = app().await;
    let c = connect(&app, "sluice").await;
    // Multi-statement simple queries, as Grafana's lib/pq sends them.
    let rows = simple(&c, "SET TIMEZONE = 'Europe/Berlin'; SELECT arrow_cast('2024-01-31T10:00:00Z', 'Timestamp(Microsecond, Some(\"UTC\"))') AS t").await;
    assert_eq!(rows, vec![vec![Some("2024-01-31 11:00:00+01".to_owned())]]);
    assert_eq!(
        simple(&c, "SHOW TimeZone").await,
        vec![vec![Some("Europe/Berlin".to_owned())]]
    );
    // The planner's settings are the server's.
    let e = c
        .simple_query("SET datafusion.execution.batch_size = 1")
        .await
        .unwrap_err();
    assert_eq!(state_of(&e), "42501");
    let e = c.simple_query("SET no_such_setting = 1").await.unwrap_err();
    assert_eq!(state_of(&e), "42704");
    // Transactions are protocol state; a failed block refuses until it ends.
    simple(&c, "BEGIN READ ONLY").await;
    let e = c
        .simple_query("SELECT * FROM no_such_table")
        .await
        .unwrap_err();
    assert_eq!(state_of(&e), "42P01");
    let e = c.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(state_of(&e), "25P02");
    simple(&c, "ROLLBACK").await;
    assert_eq!(
        simple(&c, "SELECT 1 AS one").await,
        vec![vec![Some("1".to_owned())]]
    );
    // A SET in a rolled-back block is undone.
    simple(&c, "BEGIN; SET search_path = 'elsewhere'; ROLLBACK").await;
    assert_eq!(
        simple(&c, "SELECT count(*) FROM nation").await,
        vec![vec![Some("25".to_owned())]]
    );
    // Writes and DDL are refused as on a read-only server; SET ROLE as a privilege.
    for (sql, state) in [
        ("CREATE TABLE t (a int)", "25006"),
        ("INSERT INTO nation VALUES (1)", "25006"),
        ("COPY nation FROM STDIN", "25006"),
        ("SET ROLE postgres", "42501"),
        ("SELEC 1", "42601"),
    ] {
        let e = c.simple_query(sql).await.unwrap_err();
        assert_eq!(state_of(&e), state, "{sql}: {e}");
    }
    // Cursors, as Tableau declares them.
    simple(&c, "BEGIN").await;
    simple(
        &c,
        "DECLARE c1 CURSOR FOR SELECT n_nationkey FROM nation ORDER BY 1",
    )
    .await;
    assert_eq!(simple(&c, "FETCH 3 FROM c1").await.len(), 3);
    assert_eq!(simple(&c, "FETCH ALL FROM c1").await.len(), 22);
    simple(&c, "CLOSE c1; COMMIT").await;
    let e = c.simple_query("FETCH 1 FROM c1").await.unwrap_err();
    assert_eq!(state_of(&e), "34000");
    // DISCARD ALL (pools on close) resets the session.
    simple(&c, "SET TIME ZONE 'Asia/Tokyo'; DISCARD ALL").await;
    assert_eq!(
        simple(&c, "SHOW timezone").await,
        vec![vec![Some("UTC".to_owned())]]
    );
    // The catalog sees this session's settings.
    assert_eq!(
        simple(
            &c,
            "SELECT current_setting('search_path'), current_database()"
        )
        .await,
        vec![vec![
            Some("\"$user\", public".to_owned()),
            Some("sluice".to_owned())
        ]]
    );
}

#[actix_web::test]
async fn a_wrong_password_is_refused_without_saying_why() {
    let app = app().await;
    for password in ["wrong", "sluice_key_nope_00", ""] {
        let e = connect_as(&app, "sluice", password)
            .await
            .expect_err("refused");
        assert_eq!(state_of(&e), "28P01", "{password}");
        let message = e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_default();
        assert_eq!(
            message, "password authentication failed for user \"tester\"",
            "{e}"
        );
    }
}

#[actix_web::test]
async fn connections_per_key_are_capped() {
    let app = TestApp::spawn_with(|c: &mut Config| {
        c.pg = Some(PgConfig {
            max_connections_per_principal: 2,
            ..PgConfig::on("127.0.0.1:0".parse().unwrap())
        });
    })
    .await;
    let a = connect(&app, "sluice").await;
    let b = connect(&app, "sluice").await;
    let e = connect_as(&app, "sluice", &app.key)
        .await
        .expect_err("third refused");
    assert_eq!(state_of(&e), "53300");
    drop(a);
    // The slot comes back when a connection closes.
    let mut waiting = crate::Waiting::new("a freed connection slot");
    loop {
        match connect_as(&app, "sluice", &app.key).await {
            Ok(c) => {
                assert_eq!(simple(&c, "SELECT 1").await.len(), 1);
                break;
            }
            Err(e) => waiting.pause(&state_of(&e)).await,
        }
    }
    drop(b);
}

#[actix_web::test]
async fn cancel_requests_stop_the_remote_statement() {
    use crate::postgres::lifecycle::{assert_cancelled, slow_view, wait_active};
    let Some((pg, url, schema)) = crate::postgres::setup(&slow_view()).await else {
        return;
    };
    let app = crate::postgres::app_with(crate::postgres::source("pg", &url, &schema)).await;
    let c = connect(&app, "pg").await;
    simple(&c, &format!("SET search_path = '{schema}'")).await;
    let token = c.cancel_token();
    let running =
        actix_web::rt::spawn(async move { c.simple_query("SELECT * FROM slow").await.map(|_| ()) });
    let id = wait_active(&pg, &app).await;
    token.cancel_query(NoTls).await.unwrap();
    let e = running.await.unwrap().unwrap_err();
    assert_eq!(state_of(&e), "57014", "{e}");
    assert_cancelled(&pg, &id).await;

    // psql's Ctrl-C: SIGINT makes it send the CancelRequest.
    let psql = psql_to(&app, "pg")
        .args([
            "-c",
            &format!("SET search_path = '{schema}'"),
            "-c",
            "SELECT * FROM slow",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = wait_active(&pg, &app).await;
    let pid = i32::try_from(psql.id()).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || psql.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("canceling statement due to user request") || stderr.contains("cancel"),
        "{stderr}"
    );
    assert_cancelled(&pg, &id).await;
}

#[actix_web::test]
async fn a_source_is_a_database() {
    let Some((_pg, url, schema)) = crate::postgres::setup(ITEMS_SQL).await else {
        return;
    };
    let app = crate::postgres::app_with(crate::postgres::source("pg", &url, &schema)).await;
    // Connected to database `pg` with the source's schema on the search path, bare names are
    // that source's tables, as on PostgreSQL itself.
    let c = connect(&app, "pg").await;
    simple(&c, &format!("SET search_path TO {schema}")).await;
    assert_eq!(
        simple(&c, "SELECT count(*) FROM items").await,
        vec![vec![Some("4".to_owned())]]
    );
    // And fully qualified names work from any database.
    let c = connect(&app, "sluice").await;
    assert_eq!(
        simple(&c, &format!("SELECT count(*) FROM pg.{schema}.items")).await,
        vec![vec![Some("4".to_owned())]]
    );
    let tables = simple(
        &c,
        &format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'pg.{schema}'"
        ),
    )
    .await;
    assert_eq!(tables, vec![vec![Some("items".to_owned())]]);
}

/// What the PostgreSQL door answers `sql` (one statement, extended protocol) as `key`: the
/// row count, or the refusal as Sluice's code (carried in the error's detail) or, for a
/// refusal of the door's own, `sqlstate:<code>`.
pub async fn verdict(app: &TestApp, key: &str, sql: &str) -> Result<usize, String> {
    let c = connect_as(app, "sluice", key)
        .await
        .map_err(|e| format!("no connection: {e}"))?;
    match c.query(sql, &[]).await {
        Ok(rows) => Ok(rows.len()),
        Err(e) => Err(e.as_db_error().map_or_else(
            || format!("no answer: {e}"),
            |d| {
                d.detail()
                    .and_then(|t| t.strip_prefix("sluice code "))
                    .map(|t| t.split(',').next().unwrap_or_default().to_owned())
                    .unwrap_or_else(|| format!("sqlstate:{}", d.code().code()))
            },
        )),
    }
}

/// Whether the PostgreSQL door's verdict on `sql` agrees with HTTP's `code` (or one of
/// `allowed`): the same answer, or one the protocol defines for itself. Session and
/// transaction commands (`SET`, `BEGIN`, `DISCARD`, ...) and empty statements are answered by
/// the door, and the emulated catalog (`pg_catalog.*`) is read there; the door refuses on its
/// own (a SQLSTATE with no Sluice code) what PostgreSQL refuses (several statements in one
/// Parse, `COPY` to a file, `SET ROLE`). What it must never do is run a statement HTTP refuses
/// for any other reason, or refuse one HTTP answers. Statements tokio-postgres will not send
/// (a NUL byte, a `$1` without a value) prove nothing.
pub fn same_verdict(sql: &str, pg: &Result<usize, String>, code: &str, allowed: &[String]) -> bool {
    let pg_code = match pg {
        Ok(_) => "ok",
        Err(c) => c.as_str(),
    };
    if pg_code == code || allowed.iter().any(|a| a == pg_code) {
        return true;
    }
    if pg_code.starts_with("no answer:") {
        return true;
    }
    if code == "ok" {
        return false;
    }
    if pg_code.starts_with("sqlstate:") {
        return true;
    }
    let text = sql.trim_start().to_ascii_lowercase();
    let first = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default();
    let door_command = [
        "set",
        "reset",
        "begin",
        "start",
        "commit",
        "rollback",
        "end",
        "abort",
        "discard",
        "show",
        "savepoint",
        "release",
        "unlisten",
    ]
    .contains(&first);
    let empty = text.split(';').all(|s| {
        let s = s.trim();
        s.is_empty() || s.starts_with("--") || (s.starts_with("/*") && s.ends_with("*/"))
    });
    let catalog = text.contains("pg_catalog.") || text.contains("information_schema.");
    door_command || empty || catalog
}

#[actix_web::test]
async fn a_readers_catalog_holds_only_its_grants() {
    let app = app().await;
    let created: serde_json::Value = app
        .req(reqwest::Method::POST, "/v1/keys")
        .json(&serde_json::json!({
            "name": "nation-only",
            "role": "reader",
            "grants": [{"source": "local", "schema": "public", "table": "nation"}],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    let c = connect_as(&app, "sluice", key).await.unwrap();
    let tables = simple(
        &c,
        "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
         ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')",
    )
    .await;
    assert_eq!(tables, vec![vec![Some("nation".to_owned())]]);
    let listed = simple(&c, "SELECT table_name FROM information_schema.tables").await;
    assert_eq!(listed, vec![vec![Some("nation".to_owned())]]);
    // As on PostgreSQL, a name that is no relation does not cast to regclass.
    let e = c
        .simple_query(
            "SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = 'region'::regclass",
        )
        .await
        .unwrap_err();
    assert_eq!(state_of(&e), "42P01");
    // A table outside the grants does not exist, on the catalog's path or the query's.
    let e = c.simple_query("SELECT * FROM region").await.unwrap_err();
    assert_eq!(state_of(&e), "42P01");
    assert_eq!(
        simple(&c, "SELECT count(*) FROM nation").await,
        vec![vec![Some("25".to_owned())]]
    );
}
