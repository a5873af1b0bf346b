//! TLS on the listener with certificates openssl makes: curl (HTTP/1.1 and HTTP/2), pyarrow
//! and the CLI over `https://`, a certificate replaced on disk served without a restart, and
//! client certificates required.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sluice_schemas::TlsConfig;

use crate::{TestApp, Waiting};

/// Runs a shell script in `dir`; panics with its output when it fails.
fn sh(dir: &Path, script: &str) {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// A CA (`ca.crt`), a server certificate for 127.0.0.1 (`server.crt`, `server.key`, CN
/// `first`), and with `client`, a client certificate and key in `client.pem`.
fn make_certs(dir: &Path, client: bool) {
    sh(
        dir,
        &format!(
            "openssl req -x509 {EC} -keyout ca.key -out ca.crt -subj /CN=sluice-test-ca -days 30 2>/dev/null"
        ),
    );
    server_cert(dir, "first", "server");
    if client {
        sh(
            dir,
            &format!(
                "openssl req {EC} -keyout client.key -out client.csr -subj /CN=svc-reporting 2>/dev/null
                 printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > client.ext
                 openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
                   -out client.crt -days 30 -extfile client.ext 2>/dev/null
                 cat client.crt client.key > client.pem"
            ),
        );
    }
}

/// A server certificate with common name `cn` in `<name>.crt`/`<name>.key`.
fn server_cert(dir: &Path, cn: &str, name: &str) {
    sh(
        dir,
        &format!(
            "openssl req {EC} -keyout {name}.key -out {name}.csr -subj /CN={cn} 2>/dev/null
             printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > {name}.ext
             openssl x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
               -out {name}.crt -days 30 -extfile {name}.ext 2>/dev/null"
        ),
    );
}

fn tls(dir: &Path) -> TlsConfig {
    TlsConfig {
        cert_path: dir.join("server.crt"),
        key_path: dir.join("server.key"),
        client_ca_path: None,
        require_client_cert: false,
        reload_check_ms: 20,
    }
}

/// The subject of the certificate the server at `addr` presents to a new connection.
async fn served_subject(addr: &str, dir: &Path) -> String {
    let out = crate::output({
        let mut cmd = Command::new("bash");
        cmd.args([
            "-c",
            &format!(
                "openssl s_client -connect {addr} -CAfile ca.crt </dev/null 2>/dev/null \
                 | openssl x509 -noout -subject"
            ),
        ])
        .current_dir(dir);
        cmd
    })
    .await;
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn curl(dir: &Path, args: &[&str]) -> std::process::Output {
    crate::output({
        let mut cmd = Command::new("curl");
        cmd.args(["-sS"]).args(args).current_dir(dir);
        cmd
    })
    .await
}

const PYARROW: &str = r#"
import ssl, sys, urllib.request, json
import pyarrow as pa
url, key, ca = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(url + "/v1/query", method="POST",
    data=json.dumps({"sql": "SELECT * FROM lineitem"}).encode(),
    headers={"Authorization": "Bearer " + key, "Accept": "application/vnd.apache.arrow.stream",
             "Content-Type": "application/json"})
with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca)) as resp:
    table = pa.ipc.open_stream(resp).read_all()
print(table.num_rows)
"#;

#[actix_web::test]
async fn https_serves_curl_pyarrow_and_the_cli_and_rotates_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certs(d, false);
    let app = TestApp::spawn_with(|c| c.server.tls = Some(tls(d))).await;
    assert!(app.url.starts_with("https://127.0.0.1:"), "{}", app.url);
    let addr = app.url.trim_start_matches("https://").to_owned();
    let health = format!("{}/health", app.url);

    // HTTP/2 when the client asks for it (ALPN), HTTP/1.1 otherwise.
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = curl(
            d,
            &[
                "--cacert",
                "ca.crt",
                flag,
                "-o",
                "/dev/null",
                "-w",
                "%{http_version}",
                &health,
            ],
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), version);
    }
    // Without the CA the certificate is not trusted.
    assert!(
        !curl(d, &["-o", "/dev/null", &health])
            .await
            .status
            .success()
    );
    // Refusals of a POST reach an HTTP/2 client whole: the body is drained first (actix
    // resets a stream answered before its body is read: curl saw a framing error for 290 of
    // 300 such POSTs before).
    let query_url = format!("{}/v1/query", app.url);
    let mcp_url = format!("{}/mcp", app.url);
    let refusals: [(&[&str], &str); 4] = [
        (
            &["-H", "Authorization: Bearer sluice_wrong", &query_url],
            "401",
        ),
        (
            &[
                "-H",
                &format!("Authorization: Bearer {}", app.key),
                "-H",
                "Accept: image/png",
                &query_url,
            ],
            "406",
        ),
        (&[&mcp_url], "401"),
        (
            &[
                "-H",
                &format!("Authorization: Bearer {}", app.key),
                "-H",
                "Mcp-Session-Id: gone",
                &mcp_url,
            ],
            "404",
        ),
    ];
    for (args, want) in refusals {
        for _ in 0..10 {
            let mut all = vec![
                "--cacert",
                "ca.crt",
                "--http2",
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code}",
                "-H",
                "Content-Type: application/json",
                "--data",
                "{\"sql\": \"SELECT 1\"}",
            ];
            all.extend_from_slice(args);
            let out = curl(d, &all).await;
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                format!("2 {want}"),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // A query over HTTP/2.
    let out = curl(
        d,
        &[
            "--cacert",
            "ca.crt",
            "--http2",
            "-H",
            &format!("Authorization: Bearer {}", app.key),
            "-H",
            "Content-Type: text/plain",
            "--data",
            "SELECT count(*) AS n FROM nation",
            &format!("{}/v1/query", app.url),
        ],
    )
    .await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], serde_json::json!([[25]]));

    if let Some(python) = crate::needs("SLUICE_TEST_PYTHON", "the project's Python with pyarrow") {
        let mut cmd = Command::new(python);
        cmd.args(["-c", PYARROW, &app.url, &app.key])
            .arg(d.join("ca.crt"));
        assert_eq!(super::succeeds(cmd).await.trim(), "60175");
    }

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args([
        "query", "--server", &app.url, "--format", "csv", "--key", &app.key,
    ])
    .arg("--cacert")
    .arg(d.join("ca.crt"))
    .arg("SELECT count(*) AS n FROM region")
    .env_remove("SLUICE_TOKEN");
    assert_eq!(super::succeeds(cmd).await, "n\n5\n");

    // The certificate is replaced on disk: new connections get it, no restart.
    assert!(served_subject(&addr, d).await.contains("CN = first"));
    server_cert(d, "rotated", "next");
    sh(d, "mv next.key server.key && mv next.crt server.crt");
    let mut waiting = Waiting::new("the rotated certificate to be served");
    loop {
        let subject = served_subject(&addr, d).await;
        if subject.contains("CN = rotated") {
            break;
        }
        waiting.pause(&subject).await;
    }
    let resp = app.client.get(&health).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[actix_web::test]
async fn a_client_without_a_certificate_is_refused_when_one_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certs(d, true);
    // A second client of the same CA whose subject no rule admits.
    sh(
        d,
        &format!(
            "openssl req {EC} -keyout other.key -out other.csr -subj /CN=svc-unknown 2>/dev/null
             openssl x509 -req -in other.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
               -out other.crt -days 30 -extfile client.ext 2>/dev/null"
        ),
    );
    // The test client presents client.pem (see TestApp). A certificate with no key or token
    // is a caller by its subject: `svc-reporting` reads nation.
    let app = TestApp::spawn_with(|c| {
        c.server.tls = Some(TlsConfig {
            client_ca_path: Some(d.join("ca.crt")),
            require_client_cert: true,
            ..tls(d)
        });
        c.auth.certificate_rules = vec![
            serde_json::from_value(serde_json::json!({
                "claim": "cn", "value": "svc-reporting", "role": "reader",
                "grants": [{"source": "local", "schema": "public", "table": "nation"}]
            }))
            .unwrap(),
        ];
    })
    .await;
    let query = |cert: &'static str, sql: &'static str| {
        let url = format!("{}/v1/query", app.url);
        async move {
            let out = curl(
                d,
                &[
                    "--cacert",
                    "ca.crt",
                    "--cert",
                    &format!("{cert}.crt"),
                    "--key",
                    &format!("{cert}.key"),
                    "-H",
                    "Content-Type: text/plain",
                    "--data",
                    sql,
                    "-w",
                    "\n%{http_code}",
                    &url,
                ],
            )
            .await;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let (body, code) = text.rsplit_once('\n').unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            (code.to_owned(), format!("{body}{stderr}"))
        }
    };
    let (code, body) = query("client", "SELECT count(*) AS n FROM nation").await;
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("[[25]]"), "{body}");
    assert_eq!(query("client", "SELECT * FROM region").await.0, "404");
    // A certificate no rule admits: 403.
    let tables = format!("{}/v1/tables", app.url);
    let other = curl(
        d,
        &[
            "--cacert",
            "ca.crt",
            "--cert",
            "other.crt",
            "--key",
            "other.key",
            "-w",
            "\n%{http_code}",
            &tables,
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&other.stdout);
    assert!(text.ends_with("\n403"), "{text} {other:?}");
    let health = format!("{}/health", app.url);
    let without = curl(d, &["--cacert", "ca.crt", "-o", "/dev/null", &health]).await;
    assert!(
        !without.status.success(),
        "served without a client certificate"
    );
    let with = curl(
        d,
        &[
            "--cacert",
            "ca.crt",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &health,
        ],
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&with.stdout), "200");
    // A certificate from another CA is refused too.
    let other = tempfile::tempdir().unwrap();
    make_certs(other.path(), true);
    let stranger = curl(
        d,
        &[
            "--cacert",
            "ca.crt",
            "--cert",
            &other.path().join("client.crt").display().to_string(),
            "--key",
            &other.path().join("client.key").display().to_string(),
            "-o",
            "/dev/null",
            &health,
        ],
    )
    .await;
    assert!(
        !stranger.status.success(),
        "served a stranger's certificate"
    );
    // Flight SQL on its own listener: the same certificate, the same client-certificate rules.
    let Some(python) = crate::needs("SLUICE_TEST_PYTHON", "the project's Python with ADBC") else {
        return;
    };
    let flight = app.flight.clone().unwrap();
    assert!(flight.starts_with("grpc+tls://"), "{flight}");
    let mut cmd = Command::new(python);
    cmd.current_dir(d).args(["-c", FLIGHT_MTLS, &flight]);
    let v = crate::flight::python_json(cmd).await;
    assert_eq!(v["nation"], 25, "{v}");
    assert!(v["region"].as_str().unwrap().contains("NOT_FOUND"), "{v}");
    assert_ne!(v["without_cert"], "served", "{v}");
}

/// ADBC over `grpc+tls://` trusting `ca.crt`, presenting `client.crt` (a caller by its
/// subject), then presenting none.
const FLIGHT_MTLS: &str = r#"
import json, sys
import adbc_driver_flightsql.dbapi as fs
url = sys.argv[1]
ca, crt, key = (open(n).read() for n in ("ca.crt", "client.crt", "client.key"))
opts = {"adbc.flight.sql.client_option.tls_root_certs": ca,
        "adbc.flight.sql.client_option.mtls_cert_chain": crt,
        "adbc.flight.sql.client_option.mtls_private_key": key}
out = {}
with fs.connect(url, db_kwargs=opts) as conn:
    cur = conn.cursor()
    cur.execute("SELECT count(*) AS n FROM nation")
    out["nation"] = cur.fetchall()[0][0]
    try:
        cur.execute("SELECT * FROM region")
        out["region"] = "answered"
    except Exception as e:
        out["region"] = str(e)
try:
    with fs.connect(url, db_kwargs={"adbc.flight.sql.client_option.tls_root_certs": ca}) as conn:
        conn.cursor().execute("SELECT 1")
    out["without_cert"] = "served"
except Exception as e:
    out["without_cert"] = str(e)[:200]
print(json.dumps(out))
"#;
