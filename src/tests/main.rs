//! End-to-end HTTP tests: each starts a real server on `127.0.0.1:0` over `testdata/tpch` and
//! talks to it over loopback, reading Arrow back with `StreamReader`.
//!
//! One test binary for the root crate (build time is a budget); modules by concern.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod bad_input;
mod cache;
mod cli;
mod clients;
mod console;
mod deploy;
mod endpoints;
mod federation;
mod flight;
mod flood;
mod formats;
mod governance;
mod hostile;
mod identity;
mod mcp;
mod object_stores;
mod parity;
mod pg;
mod postgres;
mod registry;
mod snowflake;
mod spool;
mod streaming;
mod telemetry;
mod truth;

use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use serde_json::Value;
use sluice::Application;
use sluice_schemas::Config;

/// The DataFusion runtime all test servers share, built once beside the actix systems.
fn query_runtime() -> tokio::runtime::Handle {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| sluice::query_runtime(Some(2), "test-query").expect("query runtime"))
        .handle()
        .clone()
}

pub const ARROW: &str = "application/vnd.apache.arrow.stream";

/// A running server and a client for it.
pub struct TestApp {
    pub url: String,
    pub key: String,
    pub client: reqwest::Client,
    /// The Flight SQL listener (`grpc://...`), when `[flight]` is on.
    pub flight: Option<String>,
    /// The PostgreSQL listener (`postgresql://...`), when `[pg]` is on.
    pub pg: Option<String>,
    /// Drains the server as SIGTERM would.
    pub drainer: sluice::Drainer,
}

impl TestApp {
    /// The embedded default config on a free port.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// The embedded default, adjusted by `f`; returns once `/ready` answers 200.
    pub async fn spawn_with(f: impl FnOnce(&mut Config)) -> Self {
        let app = Self::start(f).await;
        app.wait_ready(true).await;
        app
    }

    /// Like [`Self::spawn_with`], for configs with sources that cannot come up: returns once
    /// every source has had its first health check, ready or not.
    pub async fn spawn_unready_with(f: impl FnOnce(&mut Config)) -> Self {
        let app = Self::start(f).await;
        app.wait_ready(false).await;
        app
    }

    async fn start(f: impl FnOnce(&mut Config)) -> Self {
        sluice::init_logging(false, "warn");
        let mut config = Config::embedded(&testdata().join("tpch"));
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        // The result cache is off unless a test turns it on (`cache` tests do): the other
        // tests run the same statement again on purpose (failover under load, a stopped
        // source, usage counts) and must reach the source each time.
        config.cache.capacity_bytes = 0;
        // Flight SQL on a free port too (the embedded default asks for 8815).
        if let Some(flight) = &mut config.flight {
            flight.listen = "127.0.0.1:0".parse().unwrap();
        }
        if let Some(pg) = &mut config.pg {
            pg.listen = "127.0.0.1:0".parse().unwrap();
        }
        f(&mut config);
        // With `[server.tls]`, the client trusts `ca.crt` beside the certificate and presents
        // `client.pem` from there when it exists (the identity tests make both).
        let tls_dir = config
            .server
            .tls
            .as_ref()
            .and_then(|t| t.cert_path.parent().map(std::path::Path::to_path_buf));
        let app = Application::build(config, query_runtime())
            .await
            .expect("server starts");
        let url = app.url();
        let flight = app.flight_url();
        let pg = app.pg_url();
        let key = app.admin_key().unwrap_or_default().to_owned();
        let drainer = app.drainer();
        actix_web::rt::spawn(app.run());
        let mut client = reqwest::Client::builder();
        if let Some(dir) = tls_dir {
            let ca = std::fs::read(dir.join("ca.crt")).unwrap();
            client = client.add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
            if let Ok(pem) = std::fs::read(dir.join("client.pem")) {
                client = client.identity(reqwest::Identity::from_pem(&pem).unwrap());
            }
        }
        let client = client
            .timeout(Duration::from_secs(60))
            // Below the server's 5 s keep-alive: a pooled connection the server has just
            // closed would fail the next request sent on it (IncompleteMessage), a race that
            // shows when one slow request leaves the others idle.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        Self {
            url,
            key,
            client,
            flight,
            pg,
            drainer,
        }
    }

    /// Waits until the server serves (`/ready` 200) and every source has had its first
    /// health check; with `must_be_healthy`, until none is unavailable either.
    async fn wait_ready(&self, must_be_healthy: bool) {
        let mut waiting = Waiting::new(format!("server {} to be ready", self.url));
        loop {
            let mut seen = Value::Null;
            if let Ok(r) = self.client.get(format!("{}/ready", self.url)).send().await
                && r.status() == 200
            {
                let body: Value = r.json().await.unwrap_or_default();
                let sources = body["sources"].as_array().cloned().unwrap_or_default();
                let settled = sources.iter().all(|s| s["state"] != "starting");
                let healthy = sources.iter().all(|s| s["state"] != "unavailable");
                if settled && (healthy || !must_be_healthy) {
                    return;
                }
                seen = body;
            }
            waiting.pause(&seen).await;
        }
    }

    /// An authenticated request.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.key)
    }

    /// `POST /v1/query` with a JSON body and an `Accept`.
    pub async fn query(&self, body: Value, accept: &str) -> reqwest::Response {
        self.req(reqwest::Method::POST, "/v1/query")
            .header("Accept", accept)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Runs SQL and reads the Arrow stream back.
    pub async fn arrow(&self, sql: &str) -> Vec<RecordBatch> {
        let resp = self.query(serde_json::json!({ "sql": sql }), ARROW).await;
        assert_eq!(resp.status(), 200, "{sql}");
        read_arrow(&resp.bytes().await.unwrap())
    }

    /// Asserts an error response's status and code; returns the body.
    pub async fn expect_error(&self, resp: reqwest::Response, status: u16, code: &str) -> Value {
        assert_eq!(resp.status(), status, "status");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        body
    }

    /// The server still answers a simple query.
    pub async fn assert_serving(&self) {
        let batches = self.arrow("SELECT count(*) FROM nation").await;
        assert_eq!(batches[0].num_rows(), 1);
    }

    /// The newest running query, from `GET /v1/queries?state=running`.
    pub async fn latest_running(&self) -> Option<String> {
        let v: Value = self
            .req(reqwest::Method::GET, "/v1/queries?state=running")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["queries"][0]["query_id"].as_str().map(str::to_owned)
    }

    /// A `GET` without credentials.
    pub async fn get_open(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// An authenticated `GET` answered as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.req(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `DELETE /v1/queries/{id}`, which must be accepted: the query's record after it.
    pub async fn cancel(&self, id: &str) -> Value {
        let resp = self
            .req(reqwest::Method::DELETE, &format!("/v1/queries/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "DELETE /v1/queries/{id}");
        resp.json().await.unwrap()
    }

    /// `POST /v1/explain` for `sql`.
    pub async fn explain(&self, sql: &str) -> Value {
        self.req(reqwest::Method::POST, "/v1/explain")
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET /metrics` as text.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `GET /v1/queries/{id}` until `pred` holds.
    pub async fn wait_query(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut waiting = Waiting::new(format!("query {id}"));
        loop {
            let v = self.get_json(&format!("/v1/queries/{id}")).await;
            if pred(&v) {
                return v;
            }
            waiting.pause(&v).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The test's actix system ends with the test; what runs on the shared query runtime
        // (the Flight SQL and PostgreSQL listeners, queries, background reads) is told to end
        // too, or it would serve on for the rest of the run.
        self.drainer.stop_now();
    }
}

pub fn testdata() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

pub fn read_arrow(bytes: &[u8]) -> Vec<RecordBatch> {
    StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Each row of `batches` as its values' display text, NULL as `NULL`.
pub fn cells(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    use datafusion::arrow::array::Array;
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            let row = b
                .columns()
                .iter()
                .zip(&fmts)
                .map(|(c, f)| {
                    if c.is_null(r) {
                        "NULL".to_owned()
                    } else {
                        f.value(r).to_string()
                    }
                })
                .collect();
            out.push(row);
        }
    }
    out
}

pub fn total_rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// A query that keeps the engine busy for minutes without producing a row, in small steps
/// (8,192 rows a poll) so cancellation takes effect at once.
pub const SLOW_SQL: &str = "SELECT sum(value) FROM generate_series(1, 10000000000)";

/// How long the PostgreSQL tests' slow view sleeps; they cancel it long before.
pub const SLOW_PG_SECONDS: u32 = 30;

/// A query that streams rows for minutes.
pub const LONG_STREAM_SQL: &str = "SELECT value FROM generate_series(1, 10000000000)";

/// Runs a command to completion off the actix thread (a blocking client must not stall the
/// in-process server it talks to); panics with its stderr if it could not run.
pub async fn output(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("command runs"))
        .await
        .expect("command task")
}

/// A test waiting for something to happen (a state, a record, a count). A wait has no
/// wall-clock bound: how long things take is what benchmarks measure, and a test that hangs is
/// the harness's to stop. But a long wait is never silent: every 10 s it says what it still
/// waits for and what it last saw.
pub struct Waiting {
    what: String,
    since: std::time::Instant,
    told: u64,
}

impl Waiting {
    /// Starts waiting for `what`.
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            since: std::time::Instant::now(),
            told: 0,
        }
    }

    /// Pauses before the next look; `seen` is what the last look found.
    pub async fn pause(&mut self, seen: impl std::fmt::Display) {
        let waited = self.since.elapsed().as_secs() / 10;
        if waited > self.told {
            self.told = waited;
            // Past the test harness's capture (`eprintln!` is captured, and shown only when
            // the test ends, which a hung one never does).
            let _ = writeln!(
                std::io::stderr(),
                "still waiting after {} s for {}; last seen: {seen}",
                waited * 10,
                self.what
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True when tests must not skip (CI).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A test cannot run here because `why`. A test that did nothing must not pass: this fails the
/// test, unless `SLUICE_ALLOW_SKIP=1` asks for skipping (never in CI), and then says loudly that
/// the test was skipped.
pub fn skip_or_fail(why: &str) {
    let allowed = !in_ci() && std::env::var("SLUICE_ALLOW_SKIP").is_ok_and(|v| v == "1");
    assert!(
        allowed,
        "{why}. Run scripts/test.sh (it installs and starts every service), or \
         `scripts/services.sh up && . .services/env`; SLUICE_ALLOW_SKIP=1 skips such tests."
    );
    eprintln!("\n!!! SKIPPED (SLUICE_ALLOW_SKIP=1): {why} !!!\n");
}

/// The value of `var`, which the test services set (`scripts/services.sh`); `None` only when
/// skipping is allowed ([`skip_or_fail`]).
pub fn needs(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            skip_or_fail(&format!("{var} is not set: {what} is not available"));
            None
        }
    }
}
