//! The web console: its page and assets as served (headers, policy, nonce), the two routes it
//! added (`/v1/me`, `/v1/stats`), and the whole console in a real browser (Debian's chromium
//! driven by playwright-core: `ui/tests/console.test.mjs`) against a server with a local Parquet
//! source and a PostgreSQL source of two replicas, one of which the test stops.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use sluice_schemas::SourceConfig;

use crate::TestApp;
use crate::governance::{as_key, create_key};
use crate::identity::tokens::configure;
use crate::identity::{Provider, free_port};
use crate::postgres::{on_main_and_spare, spare_turn};

const TABLE: &str = "CREATE TABLE t (x int, name text); INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, 100) g;";

#[actix_web::test]
async fn the_page_is_served_without_a_key_under_its_policy() {
    let app = TestApp::spawn().await;
    let page = app.get_open("/console").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let body = page.text().await.unwrap();
    // Each answer has its own nonce, in the page and in the policy.
    let nonce = body
        .split("name=\"csp-nonce\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    assert_eq!(nonce.len(), 32, "{body}");
    assert!(csp.contains(&format!("'nonce-{nonce}'")), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("connect-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let again = app.get_open("/console/").await;
    assert!(!again.text().await.unwrap().contains(nonce));

    // The script, revalidated by its digest; an unknown file is a JSON 404.
    let js = app.get_open("/console/console.js").await;
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let etag = js.headers()["etag"].to_str().unwrap().to_owned();
    let plain = js.bytes().await.unwrap();
    assert!(plain.len() > 100_000);
    // Gzipped for a client that takes it, under its own tag; never for one that refuses it.
    let js_with = |encoding: &'static str| {
        app.client
            .get(format!("{}/console/console.js", app.url))
            .header("Accept-Encoding", encoding)
            .send()
    };
    let gz = js_with("br, gzip").await.unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "Accept-Encoding");
    assert_ne!(gz.headers()["etag"].to_str().unwrap(), etag);
    let packed = gz.bytes().await.unwrap();
    assert!(
        packed.len() * 2 < plain.len(),
        "{} of {}",
        packed.len(),
        plain.len()
    );
    let mut unpacked = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&packed[..]),
        &mut unpacked,
    )
    .unwrap();
    assert_eq!(unpacked, plain);
    let refused = js_with("gzip;q=0, identity").await.unwrap();
    assert!(refused.headers().get("content-encoding").is_none());
    let fresh = app
        .client
        .get(format!("{}/console/console.js", app.url))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 304);
    let missing = app.get_open("/console/nope.js").await;
    assert_eq!(missing.status(), 404);
    let err: Value = missing.json().await.unwrap();
    assert_eq!(err["error"]["code"], "not_found");

    // Sign-in settings: keys only here, and where the other doors listen.
    let settings = settings(&app).await;
    assert_eq!(settings["oidc"], Value::Null);
    assert_eq!(
        settings["defaults"],
        json!({"catalog": "local", "schema": "public"})
    );
    assert_eq!(settings["flight"], json!(app.flight.clone().unwrap()));

    // Off, it is not there at all.
    let off = TestApp::spawn_with(|c| c.console.enabled = false).await;
    let gone = off.get_open("/console").await;
    assert_eq!(gone.status(), 404);
}

#[actix_web::test]
async fn me_and_stats_answer_for_the_caller() {
    let app = TestApp::spawn().await;
    let me = app.get_json("/v1/me").await;
    assert_eq!(me["role"], "admin");
    assert_eq!(me["kind"], "key");
    let reader = create_key(
        &app,
        json!({"name": "r", "grants": [{"source": "local", "schema": "public", "table": "nation"}]}),
    )
    .await;
    let secret = reader["key"].as_str().unwrap();
    let as_reader = async |path: &str| {
        as_key(&app, secret, reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    };
    let me: Value = as_reader("/v1/me").await.json().await.unwrap();
    assert_eq!(
        (me["role"].as_str(), me["name"].as_str()),
        (Some("reader"), Some("r"))
    );
    assert_eq!(me["operations"], json!(["query", "explain", "list"]));
    let denied = as_reader("/v1/stats").await;
    app.expect_error(denied, 403, "permission_denied").await;

    // Completion's catalog: the reader's granted table, with its columns.
    let tables: Value = as_reader("/v1/tables?with_columns=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tables["tables"].as_array().unwrap().len(), 1, "{tables}");
    assert_eq!(tables["tables"][0]["fields"][1]["name"], "n_name");
    let plain = app.get_json("/v1/tables").await;
    assert!(plain["tables"][0].get("fields").is_none(), "{plain}");

    // A success, a failure and an explain, counted in their second.
    assert_eq!(
        app.query(json!({"sql": "SELECT 1"}), "application/json")
            .await
            .status(),
        200
    );
    let bad = app
        .query(json!({"sql": "SELECT nope"}), "application/json")
        .await;
    app.expect_error(bad, 400, "sql_invalid").await;
    let explained = app.explain("SELECT n_name FROM nation").await;
    let id = explained["query_id"].as_str().unwrap();
    let record = app.get_json(&format!("/v1/queries/{id}")).await;
    assert_eq!(record["operation"], "explain");
    assert_eq!(record["sql"], "SELECT n_name FROM nation");
    let stats = app.get_json("/v1/stats?window_s=60").await;
    let samples = stats["samples"].as_array().unwrap();
    let sum = |f: &dyn Fn(&Value) -> u64| samples.iter().map(f).sum::<u64>();
    // Each server counts its own queries: these three.
    assert_eq!(sum(&|s| s["queries"].as_u64().unwrap()), 3, "{stats}");
    assert_eq!(
        sum(&|s| s["errors"]["sql_invalid"].as_u64().unwrap_or(0)),
        1,
        "{stats}"
    );
    assert!(
        samples
            .iter()
            .all(|s| s["p99_ms"].as_f64().unwrap() >= s["p50_ms"].as_f64().unwrap())
    );
    let bad_window = app
        .req(reqwest::Method::GET, "/v1/stats?window_s=x")
        .send()
        .await
        .unwrap();
    app.expect_error(bad_window, 400, "bad_request").await;
    for window in [0, 601] {
        let out = app
            .req(
                reqwest::Method::GET,
                &format!("/v1/stats?window_s={window}"),
            )
            .send()
            .await
            .unwrap();
        app.expect_error(out, 400, "bad_request").await;
    }
}

#[actix_web::test]
async fn the_console_in_a_browser() {
    let Some((chromium, ui)) = browser_tools() else {
        return;
    };
    let turn = spare_turn().await;
    let Some((_main, src, schema)) = on_main_and_spare("pg", TABLE).await else {
        return;
    };
    let app = TestApp::spawn_with(|c| c.sources.push(SourceConfig::Postgres(src))).await;
    let reader = create_key(
        &app,
        json!({"name": "reader", "grants": [{"source": "local", "schema": "public", "table": "nation"}]}),
    )
    .await;
    let mut stopped = None;
    run_script(
        &ui,
        "console.test.mjs",
        &[
            ("SLUICE_URL", app.url.clone()),
            ("ADMIN_KEY", app.key.clone()),
            ("READER_KEY", reader["key"].as_str().unwrap().to_owned()),
            ("PG_SCHEMA", schema.clone()),
            ("CHROMIUM", chromium),
        ],
        async |step| {
            assert_eq!(step, "stop-replica");
            stopped = Some(turn.stop().await);
        },
    )
    .await;
    drop(stopped);
}

#[actix_web::test]
async fn signing_in_through_the_openid_provider() {
    let Some((chromium, ui)) = browser_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(provider) = Provider::start(&dir.path().join("keys.json")).await else {
        return;
    };
    let port = free_port();
    let app = TestApp::spawn_with(|c| {
        configure(c, port, &provider.issuer, "");
        c.console.oidc_client_id = Some("console".to_owned());
    })
    .await;
    // The page is told where to sign in, and may connect there.
    let page = app.get_open("/console").await;
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains(&format!("connect-src 'self' {};", provider.issuer)),
        "{csp}"
    );
    let settings = settings(&app).await;
    assert_eq!(
        settings["oidc"],
        json!({"issuer": provider.issuer, "client_id": "console", "scope": "openid sql.read",
               "resource": app.url})
    );
    run_script(
        &ui,
        "console-oidc.test.mjs",
        &[
            ("SLUICE_URL", app.url.clone()),
            ("ISSUER", provider.issuer.clone()),
            ("CHROMIUM", chromium),
        ],
        async |step| panic!("unexpected step {step}"),
    )
    .await;
}

/// `/console/config.json`, read without a key.
async fn settings(app: &TestApp) -> Value {
    app.get_open("/console/config.json")
        .await
        .json()
        .await
        .unwrap()
}

/// Debian's chromium and the folder of the console's npm packages, from the test services.
fn browser_tools() -> Option<(String, String)> {
    let chromium = crate::needs("SLUICE_TEST_CHROMIUM", "Debian's chromium")?;
    let ui = crate::needs(
        "SLUICE_TEST_CONSOLE_UI",
        "the console's npm packages (playwright-core in ui/node_modules)",
    )?;
    Some((chromium, ui))
}

/// Runs the browser script `ui/tests/<script>` with `vars` (and `SHOTS`, where its screenshots
/// go) until it ends, which must be with `console test passed` and exit 0. A line `STEP <what>`
/// from it is handed to `on_step`, and answered `ok` once that returns.
async fn run_script(
    ui: &str,
    script: &str,
    vars: &[(&str, String)],
    mut on_step: impl AsyncFnMut(&str),
) {
    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/target/console-screenshots");
    let mut child = Command::new("node")
        .arg(format!("{ui}/tests/{script}"))
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("SHOTS", shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let (mut stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut passed = false;
    while let Some(line) = lines.recv().await {
        eprintln!("{script}: {line}");
        passed |= line == "console test passed";
        if let Some(step) = line.strip_prefix("STEP ") {
            on_step(step).await;
            stdin.write_all(b"ok\n").unwrap();
        }
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success() && passed, "{script} failed: {status}");
}
