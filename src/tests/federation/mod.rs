//! The differential proof of federation: every query runs against sources with
//! `pushdown = "full"` and against the same data with `pushdown = "none"` (whole tables,
//! nothing else), and the answers must be equal. TPC-H (`tpch`) runs in three layouts over
//! PostgreSQL and Parquet and is also checked against DuckDB; the targeted cases
//! (`targeted`, `testdata/federation/cases.sql`) aim at the places pushdown goes wrong, and
//! assert what PostgreSQL actually received, from its statement log.
//!
//! The fixture loads `testdata/tpch` into two PostgreSQL databases (text columns under an
//! ICU collation, so an `ORDER BY` or range sent without byte order would show) and the
//! targeted cases' schema into the first.

mod targeted;
mod tpch;

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::array::{Array, RecordBatch, RecordBatchReader};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Value, json};
use sluice_schemas::{Config, PostgresSourceConfig, Pushdown, SourceConfig};
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

use super::postgres::service_env;
use crate::{ARROW, TestApp, read_arrow, testdata};

/// The eight TPC-H tables.
pub const TPCH_TABLES: [&str; 8] = [
    "lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region",
];

/// Connection URLs of the two loaded databases.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub a: String,
    pub b: String,
}

static FIXTURE: OnceCell<Option<Fixture>> = OnceCell::const_new();

/// The loaded databases, once per test process; `None` when PostgreSQL is not running
/// (never in CI).
pub async fn fixture() -> Option<Fixture> {
    FIXTURE
        .get_or_init(|| async {
            let url = service_env("SLUICE_TEST_PG_URL")?;
            Some(load(&url).await)
        })
        .await
        .clone()
}

pub(crate) async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// `url` with its database replaced by `db`.
pub(crate) fn with_db(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{db}")
}

async fn load(url: &str) -> Fixture {
    let admin = connect(url).await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut urls = Vec::new();
    for side in ["a", "b"] {
        let db = format!("fed_{side}_{}", &tag[..8]);
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        let db_url = with_db(url, &db);
        let client = connect(&db_url).await;
        client.batch_execute("CREATE SCHEMA tpch").await.unwrap();
        for t in TPCH_TABLES {
            load_table(&client, t).await;
        }
        if side == "a" {
            let setup = std::fs::read_to_string(testdata().join("federation/setup.sql")).unwrap();
            client.batch_execute(&setup).await.unwrap();
        }
        client.batch_execute("ANALYZE").await.unwrap();
        urls.push(db_url);
    }
    Fixture {
        a: urls[0].clone(),
        b: urls[1].clone(),
    }
}

fn pg_type(t: &DataType) -> String {
    match t {
        DataType::Int64 => "int8".into(),
        DataType::Int32 => "int4".into(),
        DataType::Decimal128(p, s) => format!("numeric({p}, {s})"),
        DataType::Date32 => "date".into(),
        DataType::Float64 => "float8".into(),
        // ICU's order is not byte order: anything sent without it would show.
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
            "text COLLATE \"und-x-icu\"".into()
        }
        other => panic!("no PostgreSQL type for {other}"),
    }
}

/// One TPC-H table from `testdata/tpch` into `tpch.<t>`, through `COPY`.
async fn load_table(client: &tokio_postgres::Client, t: &str) {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use futures::SinkExt;
    let file = std::fs::File::open(testdata().join(format!("tpch/{t}.parquet"))).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let schema = reader.schema();
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{} {} NOT NULL", f.name(), pg_type(f.data_type())))
        .collect();
    client
        .batch_execute(&format!("CREATE TABLE tpch.{t} ({})", columns.join(", ")))
        .await
        .unwrap();
    let sink = client
        .copy_in(&format!("COPY tpch.{t} FROM STDIN"))
        .await
        .unwrap();
    futures::pin_mut!(sink);
    for batch in reader {
        let batch = batch.unwrap();
        let mut text = String::new();
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            for (i, f) in formatters.iter().enumerate() {
                if i > 0 {
                    text.push('\t');
                }
                if batch.column(i).is_null(row) {
                    text.push_str("\\N");
                } else {
                    for ch in f.value(row).to_string().chars() {
                        match ch {
                            '\\' => text.push_str("\\\\"),
                            '\t' => text.push_str("\\t"),
                            '\n' => text.push_str("\\n"),
                            '\r' => text.push_str("\\r"),
                            c => text.push(c),
                        }
                    }
                }
            }
            text.push('\n');
        }
        sink.send(bytes::Bytes::from(text)).await.unwrap();
    }
    sink.finish().await.unwrap();
}

fn pg_source(name: &str, url: &str, pushdown: Pushdown) -> SourceConfig {
    SourceConfig::Postgres(PostgresSourceConfig {
        cache: true,
        name: name.to_owned(),
        password_env: None,
        replicas: vec![url.to_owned()],
        max_concurrency: 8,
        connect_timeout_ms: 5_000,
        pool_wait_timeout_ms: 10_000,
        schemas: vec!["tpch".into(), "fed".into()],
        health_check_interval_ms: 1_000,
        refresh_interval_ms: 0,
        fallback: None,
        max_queued: 256,
        queue_timeout_ms: 10_000,
        pushdown,
    })
}

/// A server over the fixture: `local` (Parquet), and each database three times, as
/// `pga_full`/`pga_none`/`pga_split` and `pgb_full`/`pgb_none`/`pgb_split`; with fakesnow, its TPC-H dimensions as
/// `sf_full`/`sf_none`.
pub async fn app(f: &Fixture) -> TestApp {
    let sf = crate::snowflake::seeded().await;
    TestApp::spawn_with(|c: &mut Config| {
        for (db, url) in [("pga", &f.a), ("pgb", &f.b)] {
            c.sources
                .push(pg_source(&format!("{db}_full"), url, Pushdown::Full));
            c.sources
                .push(pg_source(&format!("{db}_none"), url, Pushdown::None));
            // The same database whose planner prices every operator a thousand times over:
            // its estimates make keeping joins and aggregates in Sluice the cheaper plan
            // almost everywhere, so the cost-aware cut's splits are proven as the rest is.
            let sep = if url.contains('?') { '&' } else { '?' };
            let dear = format!("{url}{sep}options=-c%20cpu_operator_cost%3D1000");
            c.sources
                .push(pg_source(&format!("{db}_split"), &dear, Pushdown::Full));
        }
        if let Some(s) = sf {
            for (name, pushdown) in [("sf_full", Pushdown::Full), ("sf_none", Pushdown::None)] {
                c.sources.push(crate::snowflake::sf_source(
                    name,
                    &s.url,
                    &s.database,
                    pushdown,
                ));
            }
        }
    })
    .await
}

/// A result value, compared exactly except floats (relative 1e-9).
#[derive(Debug, Clone)]
pub enum Cell {
    Null,
    Float(f64),
    Text(String),
}

impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Cell::Null, Cell::Null) => true,
            (Cell::Text(a), Cell::Text(b)) => a == b,
            (Cell::Float(a), Cell::Float(b)) => {
                (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
            }
            _ => false,
        }
    }
}

/// A query's answer: its column types and rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub types: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Answer {
    fn from_batches(batches: &[RecordBatch]) -> Self {
        let types = batches
            .first()
            .map(|b| {
                b.schema()
                    .fields()
                    .iter()
                    .map(|f| f.data_type().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let mut rows = Vec::new();
        for b in batches {
            let formatters: Vec<_> = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap())
                .collect();
            for r in 0..b.num_rows() {
                rows.push(
                    b.columns()
                        .iter()
                        .zip(&formatters)
                        .map(|(c, f)| {
                            if c.is_null(r) {
                                Cell::Null
                            } else if c.data_type().is_floating() {
                                Cell::Float(f.value(r).to_string().parse().unwrap_or(f64::NAN))
                            } else {
                                Cell::Text(f.value(r).to_string())
                            }
                        })
                        .collect(),
                );
            }
        }
        Self { types, rows }
    }

    /// Rows in a canonical order, for answers whose order SQL does not fix.
    fn sorted(mut self) -> Self {
        let key = |r: &Vec<Cell>| format!("{r:?}");
        self.rows.sort_by_key(key);
        self
    }
}

/// What one run of a query gave: its answer or its error, its id and what it pulled.
#[derive(Debug, Clone)]
pub struct Run {
    pub query_id: String,
    pub outcome: Result<Answer, (u16, String, String)>,
}

/// Runs `sql` through HTTP as Arrow.
pub async fn run(app: &TestApp, sql: &str) -> Run {
    let resp = app.query(json!({ "sql": sql }), ARROW).await;
    let query_id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await;
    let outcome = match (status, bytes) {
        (200, Ok(b)) => Ok(Answer::from_batches(&read_arrow(&b))),
        (s, Ok(b)) => {
            let v: Value = serde_json::from_slice(&b).unwrap_or_default();
            Err((
                s,
                v["error"]["code"].as_str().unwrap_or("").to_owned(),
                v["error"]["message"].as_str().unwrap_or("").to_owned(),
            ))
        }
        (s, Err(e)) => Err((s, "cut".into(), e.to_string())),
    };
    Run { query_id, outcome }
}

/// True when the query's last `ORDER BY` is its own (not a window's or a subquery's).
pub fn ordered(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower
        .rfind("order by")
        .is_some_and(|at| !lower[at..].contains(')'))
}

/// Asserts the two answers are equal (in order when `ordered`).
pub fn assert_same(what: &str, full: &Answer, none: &Answer, ordered: bool) {
    if let Err(e) = same(what, full, none, ordered) {
        panic!("{e}");
    }
}

/// Whether the two answers are equal (in order when `ordered`), and how not.
pub fn same(what: &str, full: &Answer, none: &Answer, ordered: bool) -> Result<(), String> {
    let (f, n) = if ordered {
        (full.clone(), none.clone())
    } else {
        (full.clone().sorted(), none.clone().sorted())
    };
    if f.types != n.types {
        return Err(format!(
            "{what}: column types differ: {:?} vs {:?}",
            f.types, n.types
        ));
    }
    if f.rows.len() != n.rows.len() {
        return Err(format!(
            "{what}: {} rows with pushdown, {} without",
            f.rows.len(),
            n.rows.len()
        ));
    }
    for (i, (a, b)) in f.rows.iter().zip(&n.rows).enumerate() {
        if a != b {
            return Err(format!(
                "{what}: row {i} differs (pushdown full vs none): {a:?} vs {b:?}"
            ));
        }
    }
    Ok(())
}

/// The statements PostgreSQL executed for `query_id`, from its log, in order.
pub async fn logged(query_id: &str, at_least: usize) -> Vec<String> {
    let path = service_env("SLUICE_TEST_PG_LOG").expect("the PostgreSQL log");
    let tag = format!("|sluice:{query_id}|LOG:  execute <unnamed>: ");
    let mut found = Vec::new();
    for _ in 0..200 {
        let log = std::fs::read_to_string(&path).unwrap();
        found = log
            .lines()
            .filter_map(|l| l.split_once(&tag).map(|(_, s)| s.to_owned()))
            .collect();
        if found.len() >= at_least {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    found
}

/// `/v1/queries/{id}`'s `per_source`, by source.
pub async fn pulled(app: &TestApp, query_id: &str) -> BTreeMap<String, (u64, u64, u64)> {
    let status = app.get_json(&format!("/v1/queries/{query_id}")).await;
    status["per_source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["source"].as_str().unwrap().to_owned(),
                (
                    s["statements"].as_u64().unwrap(),
                    s["rows"].as_u64().unwrap(),
                    s["bytes"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}
