//! The `sluice` binary itself: `check`, `query` and `serve`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::TestApp;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

#[test]
fn check_reports_every_error_and_accepts_a_good_config() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"nope\"\n[limits]\nmax_rows = 0\n[[sources]]\nname = \"x\"\nkind = \"mysql\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 error(s)"), "{err}");
    for needle in ["server", "limits.max_rows", "mysql"] {
        assert!(err.contains(needle), "{needle} missing in {err}");
    }
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "[server]\ndefault_catalog = \"lake\"\n[[sources]]\nname = \"lake\"\nkind = \"parquet\"\nlocation = \"{}\"\n",
            crate::testdata().join("tpch").display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Options the store does not know are config errors too, found without any I/O.
    let opts = dir.path().join("opts.toml");
    std::fs::write(
        &opts,
        "[[sources]]\nname = \"lake\"\nkind = \"parquet\"\nlocation = \"s3://b/p/\"\n\
         options = { colour = \"red\", retry_timeout = \"soon\" }\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&opts)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sources.lake") && err.contains("retry_timeout"),
        "{err}"
    );
    // So are PostgreSQL URLs that do not parse, unknown sslmodes and missing TLS roots; the
    // password is never echoed.
    let pg = dir.path().join("pg.toml");
    std::fs::write(
        &pg,
        "[[sources]]\nname = \"a\"\nkind = \"postgres\"\nreplicas = [\"postgres://u:hunter2@h/db?sslmode=sometimes\"]\n\
         [[sources]]\nname = \"b\"\nkind = \"postgres\"\nreplicas = [\"postgres://u@h/db?sslmode=verify-full&sslrootcert=/no/ca.pem\"]\n\
         [[sources]]\nname = \"c\"\nkind = \"postgres\"\nreplicas = [\"postgres://u@h/db?sslmode=require\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&pg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 error(s)"), "{err}");
    assert!(
        err.contains("sources.a") && err.contains("sslmode=sometimes"),
        "{err}"
    );
    assert!(
        err.contains("sources.b") && err.contains("/no/ca.pem"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[actix_web::test]
async fn query_command_prints_table_csv_and_errors() {
    let app = TestApp::spawn().await;
    let run = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("query")
            .args(args)
            .env("SLUICE_URL", &app.url)
            .env("SLUICE_API_KEY", &app.key);
        cmd
    };
    let sql = "SELECT n_nationkey, n_name FROM nation ORDER BY 1 LIMIT 2";
    let out = crate::output(run(&[sql])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| n_nationkey | n_name    |"), "{table}");
    assert!(table.contains("| 1           | ARGENTINA |"), "{table}");

    let out = crate::output(run(&["--format", "csv", sql])).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "n_nationkey,n_name\n0,ALGERIA\n1,ARGENTINA\n"
    );

    let out = crate::output(run(&["SELECT * FROM nope"])).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("404 table_not_found"), "{err}");
}

/// `sluice serve` of the embedded default on a free port, with `conf` as jemalloc's run-time
/// configuration (none: the built-in one), and its ready line.
fn serve_embedded(conf: Option<&str>) -> (std::process::Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match conf {
        Some(conf) => cmd.env("_RJEM_MALLOC_CONF", conf),
        None => cmd.env_remove("_RJEM_MALLOC_CONF"),
    };
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// Whether the kernel gives `pid` transparent huge pages: `THP_enabled` in its status.
#[cfg(target_os = "linux")]
fn huge_pages_enabled(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .unwrap_or("(no THP_enabled line)")
        .trim()
        .to_owned()
}

#[test]
fn serve_prints_one_ready_line_and_serves_the_embedded_default() {
    let (mut child, line) = serve_embedded(None);
    let url = line
        .split("url=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("")
        .to_owned();
    let key = line
        .split("api_key=")
        .nth(1)
        .map(str::trim)
        .unwrap_or("")
        .to_owned();
    let result = std::panic::catch_unwind(|| {
        assert!(url.starts_with("http://127.0.0.1:"), "{line}");
        assert!(key.starts_with("sluice_"), "{line}");
        let client = reqwest::blocking::Client::new();
        let resp = client
            .post(format!("{url}/v1/query"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"sql": "SELECT count(*) AS n FROM lineitem"}))
            .send()
            .unwrap();
        let v: serde_json::Value = resp.json().unwrap();
        assert_eq!(v["rows"], serde_json::json!([[60175]]));
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// jemalloc's `thp:always` is built in for its zeroing alone: the server refuses the huge pages
/// it would also ask for (src/main.rs, `keep_pages_small`), unless the operator sets jemalloc's
/// `thp`; other options (`metadata_thp` among them) keep the refusal.
#[cfg(target_os = "linux")]
#[test]
fn serve_refuses_huge_pages_unless_the_operator_sets_jemallocs_thp() {
    // Only observable where this process itself may have huge pages: elsewhere the server's
    // `THP_enabled` is 0 whatever it does.
    if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists()
        || huge_pages_enabled(std::process::id()) != "1"
    {
        crate::skip_or_fail("transparent huge pages are off for the test process itself");
        return;
    }
    for (conf, expected) in [
        (None, "0"),
        (Some("oversize_threshold:0,thp:default"), "1"),
        (Some("metadata_thp:disabled,oversize_threshold:0"), "0"),
    ] {
        let (mut child, line) = serve_embedded(conf);
        let huge = huge_pages_enabled(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(line.starts_with("sluice ready"), "{line}");
        assert_eq!(
            huge, expected,
            "THP_enabled with _RJEM_MALLOC_CONF={conf:?}"
        );
    }
}
