//! Keys: every kind of wrong key is a 401 (and on the record, with why), rotation has its
//! grace, readers stay out of admin routes, usage adds up, and no secret is ever written
//! anywhere but the one answer that hands it out.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Server, audit_count, fresh_db, meta_client, server_config};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

async fn call(
    c: &reqwest::Client,
    s: &Server,
    key: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = c.request(method, format!("{}{path}", s.url));
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    if status == 401 {
        assert_eq!(
            resp.headers().get("www-authenticate").unwrap(),
            "Bearer",
            "{path}"
        );
    }
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn sql(c: &reqwest::Client, s: &Server, key: &str, q: &str) -> (u16, Value) {
    call(
        c,
        s,
        Some(key),
        reqwest::Method::POST,
        "/v1/query",
        Some(json!({ "sql": q })),
    )
    .await
}

/// Polls until `key` gets `status` for a small query.
async fn until_status(c: &reqwest::Client, s: &Server, key: &str, status: u16) {
    let mut waiting = crate::Waiting::new(format!("status {status} for a key"));
    loop {
        let (got, body) = sql(c, s, key, "SELECT 1").await;
        if got == status {
            return;
        }
        waiting.pause(format!("{got} {body}")).await;
    }
}

#[actix_web::test]
async fn wrong_keys_are_refused_rotation_has_a_grace_and_no_secret_is_written_down() {
    let Some(meta) = fresh_db("SLUICE_TEST_PG_URL", "meta").await else {
        return;
    };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let s = Server::start(
        &server_config(
            &meta,
            "[auth]\nrotation_grace_ms = 1500\nkey_sync_ms = 200\n",
        ),
        &dir,
    )
    .await;
    let admin = s
        .admin_key
        .clone()
        .expect("an empty store mints an admin key");
    let c = client();
    let create = |body: Value| {
        let c = c.clone();
        let url = s.url.clone();
        let admin = admin.clone();
        async move {
            let r = c
                .post(format!("{url}/v1/keys"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()
        }
    };
    let reader = create(json!({"name": "reader", "grants": [{"source": "local"}]})).await;
    let rkey = reader["key"].as_str().unwrap().to_owned();
    let rid = reader["id"].as_str().unwrap().to_owned();
    assert!(rkey.starts_with(&format!("sluice_{rid}_")));
    assert_eq!(reader["role"], "reader");
    assert_eq!(reader["operations"], json!(["query", "explain", "list"]));
    let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
    let expiring = create(
        json!({"name": "brief", "expires_at": soon.to_rfc3339(), "grants": [{"source": "local"}]}),
    )
    .await;
    let ekey = expiring["key"].as_str().unwrap().to_owned();
    let doomed = create(json!({"name": "doomed", "grants": [{"source": "local"}]})).await;
    let dkey = doomed["key"].as_str().unwrap().to_owned();
    let mut secrets = vec![admin.clone(), rkey.clone(), ekey.clone(), dkey.clone()];

    // They work.
    for k in [&rkey, &ekey, &dkey] {
        assert_eq!(sql(&c, &s, k, "SELECT count(*) FROM nation").await.0, 200);
    }

    // Every wrong key is a 401 with the same message, whatever was wrong.
    let wrong_secret = format!(
        "{}{}",
        &rkey[..rkey.len() - 1],
        if rkey.ends_with('0') { '1' } else { '0' }
    );
    let unknown = format!("sluice_key_ffffffffffff_{}", "0".repeat(64));
    let mut messages = std::collections::BTreeSet::new();
    for bad in [
        Some("nope"),
        Some(""),
        Some(unknown.as_str()),
        Some(wrong_secret.as_str()),
        Some(&rkey[..rkey.len() - 2]),
    ] {
        let (status, body) = call(&c, &s, bad, reqwest::Method::GET, "/v1/tables", None).await;
        assert_eq!(status, 401, "{bad:?}");
        assert_eq!(body["error"]["code"], "unauthenticated");
        messages.insert(body["error"]["message"].as_str().unwrap().to_owned());
    }
    assert_eq!(messages.len(), 1, "{messages:?}");
    let (status, _) = call(
        &c,
        &s,
        None,
        reqwest::Method::POST,
        "/v1/query",
        Some(json!({"sql": "SELECT 1"})),
    )
    .await;
    assert_eq!(status, 401);

    // A reader stays out of every admin route.
    for (m, path) in [
        (reqwest::Method::GET, "/v1/keys".to_owned()),
        (reqwest::Method::POST, "/v1/keys".to_owned()),
        (reqwest::Method::DELETE, format!("/v1/keys/{rid}")),
        (reqwest::Method::POST, format!("/v1/keys/{rid}/rotate")),
        (reqwest::Method::GET, format!("/v1/keys/{rid}/usage")),
        (
            reqwest::Method::POST,
            "/v1/sources/local/refresh".to_owned(),
        ),
    ] {
        let body = (m == reqwest::Method::POST && path == "/v1/keys").then(|| json!({"name": "x"}));
        let (status, v) = call(&c, &s, Some(&rkey), m.clone(), &path, body).await;
        assert_eq!(status, 403, "{m} {path}: {v}");
        assert_eq!(v["error"]["code"], "permission_denied");
    }

    // Revoked: refused at once here.
    let did = doomed["id"].as_str().unwrap();
    let (status, v) = call(
        &c,
        &s,
        Some(&admin),
        reqwest::Method::DELETE,
        &format!("/v1/keys/{did}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(v["revoked_at"].is_string());
    assert_eq!(sql(&c, &s, &dkey, "SELECT 1").await.0, 401);
    let (status, _) = call(
        &c,
        &s,
        Some(&admin),
        reqwest::Method::DELETE,
        "/v1/keys/key_000000000000",
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Rotation: both secrets work during the grace, then only the new one.
    let (status, rotated) = call(
        &c,
        &s,
        Some(&admin),
        reqwest::Method::POST,
        &format!("/v1/keys/{rid}/rotate"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    secrets.push(new_key.clone());
    assert_ne!(new_key, rkey);
    assert!(rotated["previous_secret_expires_at"].is_string());
    assert_eq!(sql(&c, &s, &rkey, "SELECT 1").await.0, 200);
    assert_eq!(sql(&c, &s, &new_key, "SELECT 1").await.0, 200);
    until_status(&c, &s, &rkey, 401).await;
    assert_eq!(sql(&c, &s, &new_key, "SELECT 1").await.0, 200);

    // Expired.
    until_status(&c, &s, &ekey, 401).await;

    // Listing shows no secrets; usage counts the reader's queries.
    let (status, list) = call(&c, &s, Some(&admin), reqwest::Method::GET, "/v1/keys", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["keys"].as_array().unwrap().len(), 4);
    let (_, usage) = call(
        &c,
        &s,
        Some(&admin),
        reqwest::Method::GET,
        &format!("/v1/keys/{rid}/usage"),
        None,
    )
    .await;
    let day = &usage["days"][0];
    assert!(day["queries"].as_u64().unwrap() >= 3, "{usage}");
    assert!(day["rows"].as_u64().unwrap() >= 3, "{usage}");

    // The record of every refusal, with why.
    let pg = meta_client(&meta).await;
    for outcome in [
        "missing",
        "malformed",
        "unknown_key",
        "wrong_secret",
        "revoked",
        "expired",
    ] {
        let n = audit_count(
            &pg,
            &format!("kind = 'auth' AND outcome = '{outcome}'"),
            |n| n > 0,
        )
        .await;
        assert!(n > 0, "no {outcome} in the audit log");
    }
    let n = audit_count(
        &pg,
        "kind = 'auth' AND outcome = 'unknown_key' AND key_id = 'key_ffffffffffff'",
        |n| n > 0,
    )
    .await;
    assert_eq!(n, 1);

    // The server stops cleanly; then no secret is anywhere but the ready line.
    let log = s.stop().await;
    assert!(
        log.contains("sluice::audit"),
        "the audit lines are in the log"
    );
    let audit: Vec<String> = pg
        .query("SELECT t::text FROM sluice_audit t", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let keys: Vec<String> = pg
        .query("SELECT t::text FROM sluice_keys t", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(audit.len() > 20);
    for secret in &secrets {
        let random = &secret[secret.len() - 64..];
        assert!(!log.contains(random), "a secret is in the server log");
        for row in audit.iter().chain(&keys) {
            assert!(
                !row.contains(random),
                "a secret is in the metadata store: {row}"
            );
        }
    }
}

/// `sluice keys ...` as a process; its JSON answer.
async fn cli(args: &[&str]) -> Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.arg("keys").args(args);
    let out = crate::output(cmd).await;
    assert!(
        out.status.success(),
        "sluice keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[actix_web::test]
async fn without_postgres_keys_live_in_a_private_file_that_the_cli_and_servers_share() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    let config = format!(
        "[server]\ndefault_catalog = \"local\"\ndefault_schema = \"public\"\n\
         [auth]\nkey_sync_ms = 200\n\
         [metadata]\ndata_dir = \"{}\"\n[metadata.audit]\nflush_ms = 20\n\
         [[sources]]\nname = \"local\"\nkind = \"parquet\"\nlocation = \"{}\"\n",
        data.display(),
        crate::testdata().join("tpch").display()
    );
    let cfg = dir.path().join("sluice.toml");
    std::fs::write(&cfg, &config).unwrap();
    let cfg_arg = cfg.to_str().unwrap();

    // The first admin key, made on the store itself: no server needed.
    let ops = cli(&[
        "--config", cfg_arg, "create", "--name", "ops", "--role", "admin",
    ])
    .await;
    let admin = ops["key"].as_str().unwrap().to_owned();
    let keys_file = data.join("keys.json");
    #[cfg(unix)]
    assert_eq!(mode(&keys_file), 0o600);
    assert!(
        !std::fs::read_to_string(&keys_file)
            .unwrap()
            .contains(&admin[admin.len() - 64..])
    );

    // A server on that folder mints nothing (the store has a key) and takes the CLI's key.
    let s = Server::start(&config, &dir).await;
    assert_eq!(s.admin_key, None);
    let reader = cli(&[
        "--server",
        &s.url,
        "--key",
        &admin,
        "create",
        "--name",
        "nation only",
        "--grant",
        "local.public.nation",
        "--rate",
        "50",
    ])
    .await;
    let (rkey, rid) = (
        reader["key"].as_str().unwrap().to_owned(),
        reader["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(reader["rate_limit"]["per_second"], 50);
    let c = client();
    assert_eq!(
        sql(&c, &s, &rkey, "SELECT count(*) FROM nation").await.0,
        200
    );
    let (status, body) = sql(&c, &s, &rkey, "SELECT count(*) FROM region").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("table_not_found"))
    );

    // Revoked on the store directly: the running server refuses the key within its sync.
    let revoked = cli(&["--config", cfg_arg, "revoke", &rid]).await;
    assert!(revoked["revoked_at"].is_string());
    until_status(&c, &s, &rkey, 401).await;
    let listed = cli(&["--server", &s.url, "--key", &admin, "list"]).await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2);

    let log = s.stop().await;
    let usage = cli(&["--config", cfg_arg, "usage", &rid]).await;
    // Two queries, and the polls that were answered before the revocation reached the server.
    assert!(
        usage["days"][0]["queries"].as_u64().unwrap() >= 2,
        "{usage}"
    );
    assert_eq!(usage["days"][0]["errors"], 1, "{usage}");
    let audit = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
    #[cfg(unix)]
    assert_eq!(mode(&data.join("audit.jsonl")), 0o600);
    assert!(audit.lines().count() >= 5, "{audit}");
    assert!(
        audit.lines().any(|l| l.contains("\"outcome\":\"revoked\"")),
        "{audit}"
    );
    for secret in [&admin, &rkey] {
        let random = &secret[secret.len() - 64..];
        assert!(!audit.contains(random) && !log.contains(random));
    }
}
