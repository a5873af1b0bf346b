//! Snowflake sources. Against fakesnow (`SLUICE_TEST_SNOWFLAKE_URL`, from
//! `scripts/services.sh`): tables of every type seeded through the protocol and read back
//! exactly, discovery and names, pushdown asserted on the SQL the emulator received (through
//! [`server::SfServer`] in front of it), abort on cancel and timeout, retries and re-login.
//! With scripted and recorded exchanges (`fixtures`): what the emulator never sends.

mod fixtures;
pub mod server;

use datafusion::arrow::array::{Array, RecordBatch, RecordBatchReader};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Value, json};
use sluice_schemas::{Config, Pushdown, SnowflakeAuth, SnowflakeSourceConfig, SourceConfig};
use tokio::sync::OnceCell;

use self::server::{Canned, SfServer};
use super::federation::{assert_same, run};
use super::postgres::service_env;
use crate::{ARROW, TestApp, testdata};

/// The variable the test configs name for the password (any password does for fakesnow).
pub const PASSWORD_ENV: &str = "SLUICE_TEST_SNOWFLAKE_PASSWORD";

/// A session of the test's own with fakesnow, to seed it.
pub struct Seeder {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Seeder {
    pub async fn login(url: &str, database: Option<&str>) -> Self {
        let http = reqwest::Client::new();
        let mut login = format!("{url}/session/v1/login-request?request_id=seed");
        if let Some(db) = database {
            login.push_str(&format!("&databaseName={db}&schemaName=PUBLIC"));
        }
        let r: Value = http
            .post(login)
            .json(
                &json!({"data": {"ACCOUNT_NAME": "test", "LOGIN_NAME": "test",
                "PASSWORD": "test", "SESSION_PARAMETERS": {"TIMEZONE": "UTC"}}}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = r["data"]["token"].as_str().expect("a session").to_owned();
        Self {
            url: url.to_owned(),
            token,
            http,
        }
    }

    /// Runs `sql`, which must succeed.
    pub async fn exec(&self, sql: &str) -> Value {
        let r: Value = self
            .http
            .post(format!(
                "{}/queries/v1/query-request?requestId=seed",
                self.url
            ))
            .header(
                "Authorization",
                format!("Snowflake Token=\"{}\"", self.token),
            )
            .json(&json!({"sqlText": sql, "sequenceId": 1}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["success"], true, "{sql}: {r}");
        r
    }
}

/// The seeded database, once per test process.
pub struct Seeded {
    pub url: String,
    pub database: String,
}

static SEEDED: OnceCell<Option<Seeded>> = OnceCell::const_new();

/// The TPC-H tables Snowflake holds in the layouts that use it.
pub const SNOWFLAKE_TPCH: [&str; 6] = [
    "customer", "part", "partsupp", "supplier", "nation", "region",
];

/// fakesnow with a database of its own: `TYPED` (every type), `"MixedCase"`, `HOLD_ME`, and
/// the TPC-H dimensions; `None` when fakesnow is not running (never in CI).
pub async fn seeded() -> Option<&'static Seeded> {
    SEEDED
        .get_or_init(|| async {
            let url = service_env("SLUICE_TEST_SNOWFLAKE_URL")?;
            let tag = uuid::Uuid::new_v4().simple().to_string();
            let database = format!("SLUICE_{}", &tag[..8].to_ascii_uppercase());
            let admin = Seeder::login(&url, None).await;
            admin.exec(&format!("CREATE DATABASE {database}")).await;
            admin
                .exec(&format!("CREATE SCHEMA {database}.PUBLIC"))
                .await;
            let s = Seeder::login(&url, Some(&database)).await;
            let setup = std::fs::read_to_string(testdata().join("snowflake/setup.sql")).unwrap();
            for statement in setup.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
                s.exec(statement).await;
            }
            for t in SNOWFLAKE_TPCH {
                load_tpch(&s, t).await;
            }
            Some(Seeded { url, database })
        })
        .await
        .as_ref()
}

fn sf_type(t: &DataType) -> String {
    match t {
        // NUMBER(18, 0): read as BIGINT, like the Parquet keys it joins.
        DataType::Int64 | DataType::Int32 => "NUMBER(18, 0)".into(),
        DataType::Decimal128(p, s) => format!("NUMBER({p}, {s})"),
        DataType::Date32 => "DATE".into(),
        DataType::Float64 => "FLOAT".into(),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "VARCHAR".into(),
        other => panic!("no Snowflake type for {other}"),
    }
}

/// A TPC-H table from `testdata/tpch` into `PUBLIC.<T>`, by `INSERT`s of 1,000 rows.
async fn load_tpch(s: &Seeder, t: &str) {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(testdata().join(format!("tpch/{t}.parquet"))).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .with_batch_size(1000)
        .build()
        .unwrap();
    let schema = reader.schema();
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{} {} NOT NULL", f.name(), sf_type(f.data_type())))
        .collect();
    s.exec(&format!("CREATE TABLE {t} ({})", columns.join(", ")))
        .await;
    for batch in reader {
        let batch = batch.unwrap();
        s.exec(&format!("INSERT INTO {t} VALUES {}", values(&batch)))
            .await;
    }
}

/// A batch as SQL `VALUES` rows.
fn values(batch: &RecordBatch) -> String {
    let formatters: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap())
        .collect();
    (0..batch.num_rows())
        .map(|r| {
            let cells: Vec<String> = batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(c, f)| {
                    let v = f.value(r).to_string();
                    match c.data_type() {
                        _ if c.is_null(r) => "NULL".to_owned(),
                        DataType::Utf8 | DataType::Utf8View | DataType::Date32 => {
                            format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
                        }
                        _ => v,
                    }
                })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Snowflake source over the seeded database at `url` (fakesnow, or a server in front).
pub fn sf_source(name: &str, url: &str, database: &str, pushdown: Pushdown) -> SourceConfig {
    SourceConfig::Snowflake(SnowflakeSourceConfig {
        cache: true,
        name: name.to_owned(),
        account: "test".into(),
        url: Some(url.to_owned()),
        user: "test".into(),
        auth: SnowflakeAuth::Password {
            password_env: PASSWORD_ENV.into(),
        },
        warehouse: Some("TEST_WH".into()),
        database: Some(database.to_owned()),
        role: None,
        schema: Some("PUBLIC".into()),
        max_concurrency: 4,
        schemas: vec!["PUBLIC".into()],
        fallback: None,
        max_queued: 256,
        queue_timeout_ms: 10_000,
        pushdown,
        prefetch_chunks: 2,
        request_timeout_ms: 10_000,
        health_check_interval_ms: 60_000,
        refresh_interval_ms: 0,
    })
}

/// A server with `sf_full` and `sf_none` on fakesnow directly, and `sfp` (full) through
/// `proxy`.
async fn app(s: &Seeded, proxy: &SfServer) -> TestApp {
    TestApp::spawn_with(|c: &mut Config| {
        c.sources
            .push(sf_source("sf_full", &s.url, &s.database, Pushdown::Full));
        c.sources
            .push(sf_source("sf_none", &s.url, &s.database, Pushdown::None));
        c.sources
            .push(sf_source("sfp", &proxy.url, &s.database, Pushdown::Full));
    })
    .await
}

/// The answer as rows of display strings (NULL as `NULL`).
async fn rows(app: &TestApp, sql: &str) -> Vec<Vec<String>> {
    crate::cells(&app.arrow(sql).await)
}

#[actix_web::test]
async fn every_type_reads_back_exactly_under_its_lower_case_name() {
    let Some(s) = seeded().await else { return };
    let proxy = SfServer::start(Some(s.url.clone())).await;
    let app = app(s, &proxy).await;

    // Columns and their types, as discovered.
    let table = app.get_json("/v1/tables/sf_full.public.typed").await;
    let types: Vec<(String, String)> = table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected_types = std::fs::read_to_string(testdata().join("snowflake/typed.types")).unwrap();
    let shown: Vec<String> = types.iter().map(|(n, t)| format!("{n}: {t}")).collect();
    assert_eq!(shown.join("\n"), expected_types.trim_end(), "{table}");

    let got = rows(&app, "SELECT * FROM sf_full.public.typed ORDER BY id").await;
    let text: Vec<String> = got.iter().map(|r| r.join(" | ")).collect();
    let expected = std::fs::read_to_string(testdata().join("snowflake/typed.expected")).unwrap();
    assert_eq!(text.join("\n"), expected.trim_end());

    // A mixed-case name keeps its case and needs quotes.
    let mixed = rows(
        &app,
        r#"SELECT "Id", "Label" FROM sf_full.public."MixedCase" ORDER BY 1"#,
    )
    .await;
    assert_eq!(mixed, vec![vec!["1".to_owned(), "one".to_owned()]]);
    let resp = app
        .query(
            json!({"sql": "SELECT * FROM sf_full.public.mixedcase"}),
            ARROW,
        )
        .await;
    app.expect_error(resp, 404, "table_not_found").await;
}

#[actix_web::test]
async fn whole_queries_go_down_as_the_sql_explain_shows() {
    let Some(s) = seeded().await else { return };
    let proxy = SfServer::start(Some(s.url.clone())).await;
    let app = app(s, &proxy).await;
    let sql = "SELECT n.n_name, count(*) AS suppliers, sum(s.s_acctbal) AS balance \
               FROM sfp.public.nation n JOIN sfp.public.supplier s ON s.s_nationkey = n.n_nationkey \
               WHERE n.n_regionkey = 1 GROUP BY n.n_name ORDER BY n.n_name";
    let explain = app.explain(sql).await;
    let remote = explain["remote"].as_array().expect("remote statements");
    assert_eq!(remote.len(), 1, "{explain}");
    assert_eq!(remote[0]["source"], "sfp");
    let shown = remote[0]["sql"].as_str().unwrap().to_owned();
    proxy.clear();
    let r = run(&app, sql).await;
    let full = r.outcome.clone().expect("the query runs");
    let queries: Vec<_> = proxy
        .to("/queries/v1/query-request")
        .into_iter()
        .filter(|q| q.body["parameters"]["QUERY_TAG"] == format!("sluice:{}", r.query_id))
        .collect();
    assert_eq!(
        queries.len(),
        1,
        "one statement for the whole query: {queries:#?}"
    );
    let received = queries[0].sql().unwrap();
    assert!(
        received.contains("GROUP BY") && received.contains("JOIN"),
        "{received}"
    );
    assert!(received.contains(r#""PUBLIC"."NATION""#), "{received}");
    assert_eq!(shown, received, "explain shows the SQL sent: {explain}");
    // The same answer with nothing pushed.
    let none = run(&app, &sql.replace("sfp.", "sf_none.")).await;
    assert_same(
        "nation suppliers",
        &full,
        &none.outcome.expect("runs"),
        true,
    );
}

#[actix_web::test]
async fn cancel_and_timeout_send_abort() {
    let Some(s) = seeded().await else { return };
    let proxy = SfServer::start(Some(s.url.clone())).await;
    proxy.hold("HOLD_ME");
    let app = app(s, &proxy).await;

    // Cancelled by DELETE /v1/queries/{id}.
    let q = {
        let app_url = app.url.clone();
        let key = app.key.clone();
        actix_web::rt::spawn(async move {
            reqwest::Client::new()
                .post(format!("{app_url}/v1/query"))
                .bearer_auth(key)
                .json(&json!({"sql": "SELECT * FROM sfp.public.hold_me"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let held = proxy
        .wait_for("the held statement", |r| {
            r.iter()
                .any(|q| q.sql().is_some_and(|s| s.contains("HOLD_ME")))
        })
        .await;
    let statement = held
        .iter()
        .find(|q| q.sql().is_some_and(|s| s.contains("HOLD_ME")))
        .unwrap()
        .clone();
    let request_id = statement.param("requestId").unwrap();
    let tag = statement.body["parameters"]["QUERY_TAG"]
        .as_str()
        .unwrap()
        .to_owned();
    let query_id = tag.strip_prefix("sluice:").unwrap();
    app.cancel(query_id).await;
    let records = proxy
        .wait_for("an abort", |r| {
            r.iter().any(|q| q.path == "/queries/v1/abort-request")
        })
        .await;
    let abort = records
        .iter()
        .find(|q| q.path == "/queries/v1/abort-request")
        .unwrap();
    assert_eq!(abort.method, "POST");
    assert_eq!(abort.body["requestId"], request_id.as_str(), "{abort:?}");
    let status = q.await.unwrap();
    assert!(
        status.as_ref().map_or(true, |s| *s != 200),
        "a cancelled query is not a 200: {status:?}"
    );

    // Timed out by the query's own timeout.
    proxy.clear();
    let resp = app
        .query(
            json!({"sql": "SELECT count(*) FROM sfp.public.hold_me", "timeout_ms": 500}),
            ARROW,
        )
        .await;
    assert_eq!(resp.status(), 504, "{:?}", resp.text().await);
    proxy
        .wait_for("an abort after the timeout", |r| {
            r.iter().any(|q| q.path == "/queries/v1/abort-request")
        })
        .await;
}

#[actix_web::test]
async fn throttling_and_an_expired_session_are_survived() {
    let Some(s) = seeded().await else { return };
    let proxy = SfServer::start(Some(s.url.clone())).await;
    let app = app(s, &proxy).await;
    let sql = "SELECT count(*) FROM sfp.public.region";
    assert_eq!(rows(&app, sql).await, vec![vec!["5".to_owned()]]);

    // A 503 and a 429, then the answer: the same request id each time.
    proxy.clear();
    proxy.script("/queries/v1/query-request", Canned::status(503));
    proxy.script(
        "/queries/v1/query-request",
        Canned {
            status: 429,
            headers: vec![("retry-after".into(), "0".into())],
            body: Vec::new(),
        },
    );
    assert_eq!(rows(&app, sql).await, vec![vec!["5".to_owned()]]);
    let sent = proxy.to("/queries/v1/query-request");
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert!(
        sent.iter()
            .all(|q| q.param("requestId") == sent[0].param("requestId"))
    );

    // The session expired: Sluice logs in again once and runs the statement.
    proxy.clear();
    proxy.script(
        "/queries/v1/query-request",
        Canned::json(&json!({"success": false, "code": "390112",
            "message": "Your session has expired. Please login again.", "data": null})),
    );
    assert_eq!(rows(&app, sql).await, vec![vec!["5".to_owned()]]);
    let logins = proxy.to("/session/v1/login-request");
    assert_eq!(logins.len(), 1, "{:#?}", proxy.records());
    let sent = proxy.to("/queries/v1/query-request");
    assert_eq!(sent.len(), 2);
    assert_ne!(
        sent[0].authorization, sent[1].authorization,
        "a new session token"
    );
}

#[actix_web::test]
async fn snowflake_errors_are_the_users_or_the_sources() {
    let Some(s) = seeded().await else { return };
    let proxy = SfServer::start(Some(s.url.clone())).await;
    let app = app(s, &proxy).await;
    proxy.script(
        "/queries/v1/query-request",
        Canned::json(&json!({"success": false, "code": "002003",
            "message": "002003 (42S02): SQL compilation error: Object 'X' does not exist.",
            "data": {"errorCode": "002003", "sqlState": "42S02"}})),
    );
    let resp = app
        .query(
            json!({"sql": "SELECT count(*) FROM sfp.public.region"}),
            ARROW,
        )
        .await;
    let body = app.expect_error(resp, 502, "upstream_error").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("002003") && message.contains("42S02"),
        "{body}"
    );
}

/// Shapes pushed down whole, each run through the recording endpoint (`sfp`, full) and
/// against `sf_none`: the answers must be equal, and the one statement Snowflake received
/// must be the one `/v1/explain` shows.
#[actix_web::test]
async fn pushed_shapes_answer_as_whole_tables_do_and_send_what_explain_shows() {
    let Some(s) = seeded().await else { return };
    let proxy = SfServer::start(Some(s.url.clone())).await;
    let app = app(s, &proxy).await;
    let cases = std::fs::read_to_string(testdata().join("snowflake/cases.sql")).unwrap();
    let mut checked = 0;
    for sql in cases
        .split(";\n")
        .map(|c| {
            c.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|c| !c.trim().is_empty())
    {
        let full_sql = sql.replace("{sf}", "sfp");
        let explain = app.explain(&full_sql).await;
        let remote = explain["remote"].as_array().cloned().unwrap_or_default();
        assert_eq!(remote.len(), 1, "{full_sql}: one statement: {explain}");
        let shown = remote[0]["sql"].as_str().unwrap().to_owned();
        proxy.clear();
        let full = run(&app, &full_sql).await;
        let none = run(&app, &sql.replace("{sf}", "sf_none")).await;
        let tag = format!("sluice:{}", full.query_id);
        let received: Vec<String> = proxy
            .to("/queries/v1/query-request")
            .into_iter()
            .filter(|q| q.body["parameters"]["QUERY_TAG"] == tag.as_str())
            .filter_map(|q| q.sql().map(str::to_owned))
            .collect();
        assert_eq!(
            received,
            vec![shown.clone()],
            "{full_sql}: explain vs received"
        );
        let (Ok(f), Ok(n)) = (&full.outcome, &none.outcome) else {
            panic!(
                "{full_sql}: full {:?}, none {:?}\nsent: {shown}",
                full.outcome.err(),
                none.outcome.err()
            );
        };
        assert_same(&full_sql, f, n, super::federation::ordered(&sql));
        checked += 1;
    }
    assert!(checked >= 15, "{checked} cases");
}

#[actix_web::test]
async fn sessions_are_deleted_when_the_server_stops() {
    let Some(s) = seeded().await else { return };
    let proxy = SfServer::start(Some(s.url.clone())).await;
    let app = app(s, &proxy).await;
    assert_eq!(
        rows(&app, "SELECT count(*) FROM sfp.public.region").await,
        vec![vec!["5".to_owned()]]
    );
    let logins = proxy.to("/session/v1/login-request").len();
    assert!(logins >= 1);
    app.drainer.clone().drain().await;
    let records = proxy
        .wait_for("a delete of every session", |r| {
            r.iter()
                .filter(|q| q.path == "/session" && q.param("delete").as_deref() == Some("true"))
                .count()
                == logins
        })
        .await;
    let mut tokens: Vec<&str> = records
        .iter()
        .filter(|q| q.path == "/session")
        .map(|q| q.authorization.as_str())
        .collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), logins, "each session once");
}
