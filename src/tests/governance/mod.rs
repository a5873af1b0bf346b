//! Governance against a real PostgreSQL metadata store (a fresh database per test on the test
//! services' main cluster; the audit-policy test uses the spare cluster, which it stops):
//! keys and their refusals, grants decided on the plan (the escape corpus), limits, audit and
//! usage, several servers sharing one store.

mod grants;
mod keys;
mod load;
mod policies;
mod shared;

use serde_json::{Value, json};
use sluice_schemas::Config;

use super::federation::{connect, with_db};
use super::postgres::service_env;
use crate::TestApp;

/// A fresh, empty database on the cluster at `var`, for a metadata store.
pub(crate) async fn fresh_db(var: &str, prefix: &str) -> Option<String> {
    let url = service_env(var)?;
    let admin = connect(&url).await;
    let db = format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    Some(with_db(&url, &db))
}

/// A server whose keys, audit and usage live in PostgreSQL at `meta`.
pub(crate) async fn app_on(meta: &str, f: impl FnOnce(&mut Config)) -> TestApp {
    let meta = meta.to_owned();
    TestApp::spawn_with(move |c: &mut Config| {
        c.metadata.postgres_url = Some(meta);
        c.metadata.audit.flush_ms = 20;
        f(c);
    })
    .await
}

/// `POST /v1/keys` with the app's admin key; the created key's body (with `key`).
pub(crate) async fn create_key(app: &TestApp, body: Value) -> Value {
    let resp = app
        .req(reqwest::Method::POST, "/v1/keys")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "create key {body}");
    resp.json().await.unwrap()
}

/// A request to `app` with `key`.
pub(crate) fn as_key(
    app: &TestApp,
    key: &str,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    app.client
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(key)
}

/// `POST /v1/query` with `key`, JSON out.
pub(crate) async fn query_as(app: &TestApp, key: &str, sql: &str) -> reqwest::Response {
    as_key(app, key, reqwest::Method::POST, "/v1/query")
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .unwrap()
}

/// The metadata database's own client.
pub(crate) async fn meta_client(meta: &str) -> tokio_postgres::Client {
    connect(meta).await
}

/// Counts `sluice_audit` rows matching `filter` until `pred` holds on the count; returns it.
pub(crate) async fn audit_count(
    pg: &tokio_postgres::Client,
    filter: &str,
    pred: impl Fn(i64) -> bool,
) -> i64 {
    audit_sum(pg, "count(*)", filter, pred).await
}

/// `what` (an aggregate, e.g. `sum(attempts)`) over the `sluice_audit` rows matching `filter`,
/// once `pred` holds on it.
pub(crate) async fn audit_sum(
    pg: &tokio_postgres::Client,
    what: &str,
    filter: &str,
    pred: impl Fn(i64) -> bool,
) -> i64 {
    let mut waiting = crate::Waiting::new(format!("{what} of audit records where {filter}"));
    loop {
        let n: i64 = pg
            .query_one(
                &format!("SELECT coalesce({what}, 0)::int8 FROM sluice_audit WHERE {filter}"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if pred(n) {
            return n;
        }
        waiting.pause(n).await;
    }
}

/// A `sluice serve` process on `config` (TOML text), its log (stderr, at debug level) in a
/// file, for the tests that restart servers or read everything a server wrote.
pub(crate) struct Server {
    child: std::process::Child,
    pub url: String,
    /// The Flight SQL listener of the ready line (`grpc://...`), with `[flight]`.
    pub flight: Option<String>,
    /// The admin key of the ready line, if the store was empty.
    pub admin_key: Option<String>,
    /// Everything on stdout after the ready line, and stderr, once stopped.
    pub log: std::path::PathBuf,
    /// The config file it was started with (a test may edit it and send `SIGHUP`).
    pub config: std::path::PathBuf,
    _dir: std::sync::Arc<tempfile::TempDir>,
}

impl Server {
    /// Starts it on any free port and waits for its ready line.
    pub(crate) async fn start(config: &str, dir: &std::sync::Arc<tempfile::TempDir>) -> Self {
        Self::start_on(config, dir, "127.0.0.1:0").await
    }

    /// Starts it on `listen` and waits for its ready line.
    pub(crate) async fn start_on(
        config: &str,
        dir: &std::sync::Arc<tempfile::TempDir>,
        listen: &str,
    ) -> Self {
        Self::start_with(config, dir, listen, &[]).await
    }

    /// Starts it on `listen` with `env` added to its environment, and waits for its ready
    /// line.
    pub(crate) async fn start_with(
        config: &str,
        dir: &std::sync::Arc<tempfile::TempDir>,
        listen: &str,
        env: &[(&str, &str)],
    ) -> Self {
        use std::io::BufRead as _;
        let n = uuid::Uuid::new_v4().simple().to_string();
        let cfg = dir.path().join(format!("{n}.toml"));
        std::fs::write(&cfg, config).unwrap();
        let log = dir.path().join(format!("{n}.log"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--listen", listen, "--config"])
            .arg(&cfg)
            .env("SLUICE_LOG", "debug")
            .envs(env.iter().copied())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .unwrap();
            line
        })
        .await
        .unwrap();
        let url = line
            .split("url=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no ready line: {line}"))
            .to_owned();
        let admin_key = line.split("api_key=").nth(1).map(|k| k.trim().to_owned());
        let flight = line
            .split("flight=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_owned);
        Self {
            child,
            url,
            flight,
            admin_key,
            log,
            config: cfg,
            _dir: std::sync::Arc::clone(dir),
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the exit; returns the log.
    pub(crate) async fn stop(self) -> String {
        self.terminate().await.1
    }

    /// SIGTERM, then waits for the exit; returns the exit status and the log.
    pub(crate) async fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let mut child = std::mem::replace(
            &mut self.child,
            std::process::Command::new("true").spawn().unwrap(),
        );
        let status = tokio::task::spawn_blocking(move || {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status();
            child.wait().unwrap()
        })
        .await
        .unwrap();
        (status, std::fs::read_to_string(&self.log).unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config for [`Server`]: keys in PostgreSQL at `meta`, the embedded data as `local`.
pub(crate) fn server_config(meta: &str, extra: &str) -> String {
    format!(
        "[server]\ndefault_catalog = \"local\"\ndefault_schema = \"public\"\n\
         [metadata]\npostgres_url = \"{meta}\"\n\
         [metadata.audit]\nflush_ms = 20\n\
         {extra}\n\
         [[sources]]\nname = \"local\"\nkind = \"parquet\"\nlocation = \"{}\"\n",
        crate::testdata().join("tpch").display()
    )
}
