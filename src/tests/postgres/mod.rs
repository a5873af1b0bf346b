//! PostgreSQL sources against the real servers `scripts/services.sh` starts:
//! `SLUICE_TEST_PG_URL` (TLS on, every statement logged to `SLUICE_TEST_PG_LOG`) and
//! `SLUICE_TEST_PG_SPARE_URL` (stopped and restarted by one test). Each test works in a
//! schema of its own.

mod cost;
pub(crate) mod lifecycle;
mod pushdown;
mod replicas;

use serde_json::{Value, json};
use sluice_schemas::{Config, PostgresSourceConfig, SourceConfig};
use tokio_postgres::NoTls;

use crate::TestApp;

/// An environment variable the test services set; `None` only when skipping is allowed.
pub(crate) fn service_env(var: &str) -> Option<String> {
    crate::needs(var, "a test service (scripts/services.sh)")
}

/// The test's own connection to `url` (not Sluice's).
async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    actix_web::rt::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A fresh schema on the server at `var`, with `sql` run in it.
async fn setup_on(var: &str, sql: &str) -> Option<(tokio_postgres::Client, String, String)> {
    let url = service_env(var)?;
    let client = connect(&url).await;
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path = {schema}; {sql}"
        ))
        .await
        .unwrap();
    Some((client, url, schema))
}

/// A fresh schema on the main test server.
pub(crate) async fn setup(sql: &str) -> Option<(tokio_postgres::Client, String, String)> {
    setup_on("SLUICE_TEST_PG_URL", sql).await
}

/// A fresh schema holding `sql` on the main cluster and, under the same name, on the spare,
/// and a source `name` over it with the main cluster as replica 0 and the spare as replica 1.
/// Hold the spare's turn ([`spare_turn`]) first.
pub(crate) async fn on_main_and_spare(
    name: &str,
    sql: &str,
) -> Option<(tokio_postgres::Client, PostgresSourceConfig, String)> {
    let (main, main_url, schema) = setup(sql).await?;
    let spare_url = service_env("SLUICE_TEST_PG_SPARE_URL")?;
    connect(&spare_url)
        .await
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path = {schema}; {sql}"
        ))
        .await
        .unwrap();
    let mut src = source(name, &main_url, &schema);
    src.replicas = vec![main_url, spare_url];
    src.connect_timeout_ms = 1_000;
    Some((main, src, schema))
}

pub(crate) fn source(name: &str, url: &str, schema: &str) -> PostgresSourceConfig {
    PostgresSourceConfig {
        cache: true,
        name: name.to_owned(),
        password_env: None,
        replicas: vec![url.to_owned()],
        max_concurrency: 4,
        connect_timeout_ms: 2_000,
        pool_wait_timeout_ms: 2_000,
        schemas: vec![schema.to_owned()],
        health_check_interval_ms: 200,
        refresh_interval_ms: 0,
        fallback: None,
        max_queued: 256,
        queue_timeout_ms: 10_000,
        pushdown: Default::default(),
    }
}

pub(crate) async fn app_with(src: PostgresSourceConfig) -> TestApp {
    TestApp::spawn_with(|c: &mut Config| c.sources.push(SourceConfig::Postgres(src))).await
}

/// Runs `sql`, asserts 200 and returns the JSON body.
async fn json_rows(app: &TestApp, sql: &str) -> Value {
    let resp = app.query(json!({ "sql": sql }), "application/json").await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{sql}: {body}");
    body
}

/// The logical plan SQL `EXPLAIN` gives for `sql`.
async fn logical_plan(app: &TestApp, sql: &str) -> String {
    let plan = json_rows(app, &format!("EXPLAIN {sql}")).await;
    plan["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == "logical_plan")
        .and_then(|r| r[1].as_str())
        .unwrap()
        .to_owned()
}

/// `/v1/sources`' entry for `name`.
async fn source_status(app: &TestApp, name: &str) -> Value {
    let all = app.get_json("/v1/sources").await;
    all["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no source {name} in {all}"))
}

/// Polls `/v1/sources` until `name` is in `state`.
pub(crate) async fn wait_source_state(app: &TestApp, name: &str, state: &str) -> Value {
    wait_source(app, name, |s| s["state"] == state).await
}

/// Polls `/v1/sources` until `name` satisfies `pred`.
async fn wait_source(app: &TestApp, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut waiting = crate::Waiting::new(format!("source {name}"));
    loop {
        let s = source_status(app, name).await;
        if pred(&s) {
            return s;
        }
        waiting.pause(&s).await;
    }
}

const TYPES_SQL: &str = "
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE DOMAIN positive AS int4 CHECK (VALUE > 0);
CREATE TABLE every_type (
  i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric(12, 3), nu numeric,
  t text, vc varchar(10), c char(3), nm name, b bool, d date, tm time, ts timestamp,
  tz timestamptz, iv interval, u uuid, j json, jb jsonb, by bytea, m mood,
  ai int4[], at text[], ip inet, net cidr, dom positive, vca varchar[]
);
INSERT INTO every_type VALUES
 (-32768, -2147483648, -9223372036854775808, -1.5, -2.25, -123456789.125, 1.00000000005,
  'ünïcode ✓', 'short', 'ab', 'nm', false, '0001-01-01', '00:00:00', '1900-01-01 00:00:00',
  '1970-01-01 00:00:00+00', '-1 year -2 days -00:00:01', '00000000-0000-0000-0000-000000000000',
  '{\"a\": 1}', '{\"b\": [1, 2]}', '\\x00ff', 'sad', '{1,NULL,3}', '{x,y}', '10.0.0.1',
  '10.1.0.0/16', 1, '{p,q}'),
 (32767, 2147483647, 9223372036854775807, 3.5, 1e300, 999999999.999, 12345678901234567890.0123456789,
  '', 'v', 'abc', 'n', true, '9999-12-31', '23:59:59.999999', '2262-04-11 23:47:16.854775',
  '2038-01-19 03:14:07+00', '1 mon 2 days 03:04:05.000006', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '[]', 'null', '\\x', 'happy', '{}', '{}', '::1', '::/0', 2147483647, '{}'),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
";

#[actix_web::test]
async fn every_mapped_type_round_trips_with_nulls_and_extremes() {
    let Some((_pg, url, schema)) = setup(TYPES_SQL).await else {
        return;
    };
    let app = app_with(source("pg", &url, &schema)).await;
    let columns = app
        .get_json(&format!("/v1/tables/pg.{schema}.every_type"))
        .await;
    let types: Vec<String> = columns["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["name"].as_str().unwrap(),
                c["type"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            "i2:Int16",
            "i4:Int32",
            "i8:Int64",
            "f4:Float32",
            "f8:Float64",
            "n:Decimal128(12, 3)",
            "nu:Decimal128(38, 10)",
            "t:Utf8",
            "vc:Utf8",
            "c:Utf8",
            "nm:Utf8",
            "b:Boolean",
            "d:Date32",
            "tm:Time64(µs)",
            "ts:Timestamp(µs)",
            "tz:Timestamp(µs, \"UTC\")",
            "iv:Interval(MonthDayNano)",
            "u:Utf8",
            "j:Utf8",
            "jb:Utf8",
            "by:Binary",
            "m:Utf8",
            "ai:List(Int32)",
            "at:List(Utf8)",
            "ip:Utf8",
            "net:Utf8",
            "dom:Int32",
            "vca:List(Utf8)",
        ]
        .map(str::to_owned),
        "{columns}"
    );
    let body = json_rows(
        &app,
        &format!("SELECT * FROM pg.{schema}.every_type ORDER BY i4 NULLS LAST"),
    )
    .await;
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    // Decimals within 15 significant digits and 64-bit integers beyond 2^53 follow the JSON
    // format's rules (numbers, strings). Unconstrained numeric rounds at scale 10.
    let expect_min = json!([
        -32768,
        -2147483648,
        "-9223372036854775808",
        -1.5,
        -2.25,
        -123456789.125,
        1.0000000001,
        "ünïcode ✓",
        "short",
        "ab ",
        "nm",
        false,
        "0001-01-01",
        "00:00:00",
        "1900-01-01T00:00:00",
        "1970-01-01T00:00:00Z",
        "-12 mons -2 days -1.000000000 secs",
        "00000000-0000-0000-0000-000000000000",
        "{\"a\": 1}",
        "{\"b\": [1, 2]}",
        "00ff",
        "sad",
        [1, null, 3],
        ["x", "y"],
        "10.0.0.1",
        "10.1.0.0/16",
        1,
        ["p", "q"]
    ]);
    assert_eq!(rows[0], expect_min, "min row");
    let expect_max = json!([
        32767,
        2147483647,
        "9223372036854775807",
        3.5,
        1e300,
        999999999.999,
        "12345678901234567890.0123456789",
        "",
        "v",
        "abc",
        "n",
        true,
        "9999-12-31",
        "23:59:59.999999",
        "2262-04-11T23:47:16.854775",
        "2038-01-19T03:14:07Z",
        "1 mons 2 days 3 hours 4 mins 5.000006000 secs",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "[]",
        "null",
        "",
        "happy",
        [],
        [],
        "::1",
        "::/0",
        2147483647,
        []
    ]);
    assert_eq!(rows[1], expect_max, "max row");
    assert!(
        rows[2].as_array().unwrap().iter().all(Value::is_null),
        "{}",
        rows[2]
    );

    // The Arrow stream carries the same values with their exact types.
    let batches = app
        .arrow(&format!(
            "SELECT i8, n, nu, tz FROM pg.{schema}.every_type ORDER BY i8 NULLS LAST"
        ))
        .await;
    let b = &batches[0];
    use datafusion::arrow::array::{Decimal128Array, Int64Array, TimestampMicrosecondArray};
    let i8s = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!((i8s.value(0), i8s.value(1)), (i64::MIN, i64::MAX));
    let n = b
        .column(1)
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .unwrap();
    assert_eq!(
        (n.value(0), n.value(1)),
        (-123_456_789_125, 999_999_999_999)
    );
    let nu = b
        .column(2)
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .unwrap();
    assert_eq!(nu.value(1), 123_456_789_012_345_678_900_123_456_789);
    let tz = b
        .column(3)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(tz.value(1), 2_147_483_647_000_000);
    assert!(b.column(3).is_null(2));
}

#[actix_web::test]
async fn values_arrow_cannot_hold_fail_naming_the_column() {
    let Some((_pg, url, schema)) = setup(
        "CREATE TABLE odd (id int4, grid int4[], at timestamp, n numeric);
         INSERT INTO odd VALUES (1, '{{1,2},{3,4}}', '2020-01-01', 1),
                                (2, '{1}', 'infinity', 2), (3, '{1}', '2020-01-01', 'NaN');",
    )
    .await
    else {
        return;
    };
    let app = app_with(source("pg", &url, &schema)).await;
    for (filter, column, why) in [
        ("id = 1", "grid", "dimensional"),
        ("id = 2", "at", "infinite"),
        ("id = 3", "n", "NaN"),
    ] {
        let resp = app
            .query(
                json!({ "sql": format!("SELECT * FROM pg.{schema}.odd WHERE {filter}") }),
                "application/json",
            )
            .await;
        let body = app.expect_error(resp, 502, "upstream_error").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("column {column}")) && message.contains(why),
            "{message}"
        );
    }
    // The rows and columns that fit still read; the source's health owes nothing to these
    // errors: they are the data's, not the server's.
    let body = json_rows(
        &app,
        &format!("SELECT id, at FROM pg.{schema}.odd WHERE id <> 2 ORDER BY id"),
    )
    .await;
    assert_eq!(
        body["rows"],
        json!([[1, "2020-01-01T00:00:00"], [3, "2020-01-01T00:00:00"]])
    );
    // Not `state == healthy`: under load a health check may find a statement waiting for a
    // fresh connection (a failed statement's connection is closed, never pooled) and say
    // `degraded: connection pool saturated`, which is true and unrelated. What must hold:
    // no value error reached the health record, and the source never became unavailable.
    let status = source_status(&app, "pg").await;
    assert_ne!(status["state"], "unavailable", "{status}");
    let last = status["last_error"].as_str().unwrap_or("");
    for word in ["column", "dimensional", "infinite", "NaN"] {
        assert!(
            !last.contains(word),
            "a value error reached health: {status}"
        );
    }
}

#[actix_web::test]
async fn catalog_shows_in_information_schema_and_refreshes() {
    let Some((pg, url, schema)) = setup(
        "CREATE TABLE first_one (a int4, b text NOT NULL);
         CREATE VIEW first_view AS SELECT a FROM first_one;",
    )
    .await
    else {
        return;
    };
    let app = app_with(source("pg", &url, &schema)).await;
    let tables = json_rows(
        &app,
        &format!(
            "SELECT table_name, table_type FROM information_schema.tables \
             WHERE table_catalog = 'pg' AND table_schema = '{schema}' ORDER BY 1"
        ),
    )
    .await;
    assert_eq!(
        tables["rows"],
        json!([["first_one", "BASE TABLE"], ["first_view", "VIEW"]])
    );
    let columns = json_rows(
        &app,
        &format!(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_catalog = 'pg' AND table_schema = '{schema}' AND table_name = 'first_one' \
             ORDER BY ordinal_position"
        ),
    )
    .await;
    assert_eq!(
        columns["rows"],
        json!([["a", "Int32", "YES"], ["b", "Utf8", "NO"]])
    );

    // New tables and changed columns appear on refresh, not before; queries on a table whose
    // column changed type under Sluice fail clearly rather than misread it.
    pg.batch_execute(&format!(
        "CREATE TABLE {schema}.second_one (x int8); INSERT INTO {schema}.second_one VALUES (7);
         ALTER TABLE {schema}.first_one ALTER COLUMN b TYPE int4 USING length(b);
         INSERT INTO {schema}.first_one VALUES (1, 42);"
    ))
    .await
    .unwrap();
    let resp = app
        .query(
            json!({ "sql": format!("SELECT b FROM pg.{schema}.first_one") }),
            "application/json",
        )
        .await;
    let body = app.expect_error(resp, 502, "upstream_error").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refresh"),
        "{body}"
    );
    let resp = app
        .req(reqwest::Method::POST, "/v1/sources/pg/refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let refreshed: Value = resp.json().await.unwrap();
    assert_eq!(refreshed["tables"], 3, "{refreshed}");
    let body = json_rows(&app, &format!("SELECT b FROM pg.{schema}.first_one")).await;
    assert_eq!(body["rows"], json!([[42]]));
    let body = json_rows(&app, &format!("SELECT x FROM pg.{schema}.second_one")).await;
    assert_eq!(body["rows"], json!([[7]]));
    assert_eq!(source_status(&app, "pg").await["tables"], 3);
}

#[actix_web::test]
async fn postgres_joins_parquet() {
    let Some((_pg, url, schema)) = setup(
        "CREATE TABLE region_names (r_regionkey int4, label text);
         INSERT INTO region_names VALUES (0, 'Africa'), (1, 'Americas'), (2, 'Asia'), (3, 'Europe'), (4, 'Middle East');",
    )
    .await
    else {
        return;
    };
    let app = app_with(source("pg", &url, &schema)).await;
    let body = json_rows(
        &app,
        &format!(
            "SELECT r.label, count(*) AS nations FROM nation n \
             JOIN pg.{schema}.region_names r ON r.r_regionkey = n.n_regionkey \
             GROUP BY 1 ORDER BY 1"
        ),
    )
    .await;
    assert_eq!(
        body["rows"],
        json!([
            ["Africa", 5],
            ["Americas", 5],
            ["Asia", 5],
            ["Europe", 5],
            ["Middle East", 5]
        ])
    );
}

/// A test's exclusive use of the spare cluster (some tests stop it): hold it from before the
/// first use of the cluster to the end of the test.
pub(crate) struct SpareTurn {
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

static SPARE_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for the spare cluster to be this test's alone.
pub(crate) async fn spare_turn() -> SpareTurn {
    SpareTurn {
        _turn: SPARE_TURN.lock().await,
    }
}

fn spare_services(what: &str) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services.sh");
    std::process::Command::new(script)
        .args([what, "postgres_spare"])
        .status()
        .is_ok_and(|s| s.success())
}

/// The spare cluster, stopped; started again when dropped (so a failing test does not leave
/// it down).
pub(crate) struct Spare<'a> {
    _turn: &'a SpareTurn,
}

impl SpareTurn {
    /// Stops the spare cluster.
    pub(crate) async fn stop(&self) -> Spare<'_> {
        let stopped = tokio::task::spawn_blocking(|| spare_services("stop"))
            .await
            .unwrap();
        assert!(stopped, "services.sh stop postgres_spare");
        Spare { _turn: self }
    }
}

impl Drop for Spare<'_> {
    fn drop(&mut self) {
        // No assertion here: a second panic while a failing test unwinds would abort the
        // whole test binary. A failed restart shows in the next test that needs the server.
        let _ = spare_services("start");
    }
}
