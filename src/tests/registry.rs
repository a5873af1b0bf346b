//! Sources at run time: the registry in the metadata store that every server follows
//! (`/v1/sources`, `sluice sources add|set|remove`), and the config file read again (`SIGHUP`,
//! `POST /v1/admin/reload`). Real `sluice serve` processes on one PostgreSQL metadata store,
//! PostgreSQL and moto (S3) sources.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use reqwest::Method;
use serde_json::{Value, json};

use crate::governance::{Server, fresh_db, meta_client, server_config};

/// A request to `server` with `key`.
fn call(server: &Server, key: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(key)
}

/// `POST /v1/query` (JSON out): the status and the body.
async fn query(server: &Server, key: &str, sql: &str) -> (u16, Value, Option<String>) {
    let resp = call(server, key, Method::POST, "/v1/query")
        .header("Accept", "application/json")
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("x-sluice-cache")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, resp.json().await.unwrap_or(Value::Null), cache)
}

/// The error code of an answer's body.
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// Runs `sql` on `server` until it answers `status`; the body of that answer.
async fn until_status(server: &Server, key: &str, sql: &str, status: u16) -> Value {
    let mut waiting = crate::Waiting::new(format!("{sql} to answer {status} on {}", server.url));
    loop {
        let (s, body, _) = query(server, key, sql).await;
        if s == status {
            return body;
        }
        waiting.pause(format!("{s} {body}")).await;
    }
}

/// `POST /v1/sources` on `server` with `key`.
async fn post_source(server: &Server, key: &str, entry: &Value) -> reqwest::Response {
    call(server, key, Method::POST, "/v1/sources")
        .json(entry)
        .send()
        .await
        .unwrap()
}

/// `GET /v1/sources` on `server`: the source named `name`, if listed.
async fn listed(server: &Server, key: &str, name: &str) -> (Value, Option<Value>) {
    let list: Value = call(server, key, Method::GET, "/v1/sources")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let found = list["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned();
    (list, found)
}

/// Waits until `pred` holds on `server`'s listing of source `name` (`None`: not listed).
async fn until_listed(
    server: &Server,
    key: &str,
    name: &str,
    what: &str,
    pred: impl Fn(Option<&Value>) -> bool,
) -> Option<Value> {
    let mut waiting = crate::Waiting::new(format!("{name} on {}: {what}", server.url));
    loop {
        let (_, found) = listed(server, key, name).await;
        if pred(found.as_ref()) {
            return found;
        }
        waiting.pause(format!("{found:?}")).await;
    }
}

/// A `sluice_*` sample of `server`'s `/metrics` (the first series of `name`).
async fn metric(server: &Server, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = rest.rsplit(' ').next()?;
            (rest.starts_with(' ') || rest.starts_with('{')).then(|| value.parse().ok())?
        })
        .unwrap_or(f64::NAN)
}

/// `config` with the registry read every 200 ms.
fn fast_sync(config: &str) -> String {
    config.replacen(
        "[metadata]\npostgres_url",
        "[metadata]\nregistry_sync_ms = 200\npostgres_url",
        1,
    )
}

/// A PostgreSQL source's registry entry over `url` (and more replicas).
fn pg_entry(name: &str, replicas: &[&str]) -> Value {
    json!({
        "name": name,
        "kind": "postgres",
        "replicas": replicas,
        "max_concurrency": 4,
        "health_check_interval_ms": 200,
    })
}

/// Two servers on one PostgreSQL metadata store: a PostgreSQL source added through A answers
/// on B; a replica added under load takes traffic and one removed under load loses no query;
/// a source deleted through B is `source_not_found` on A, its cached result never served; a
/// reader granted `newsrc.*` sees it only while it exists and cannot change the registry; the
/// audit log has every change, without secrets.
#[actix_web::test]
async fn a_source_added_through_one_server_serves_on_every_server() {
    let Some(meta) = fresh_db("SLUICE_TEST_PG_URL", "registry_meta").await else {
        return;
    };
    let Some(data) = fresh_db("SLUICE_TEST_PG_URL", "registry_data").await else {
        return;
    };
    let pg = meta_client(&data).await;
    pg.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g;",
    )
    .await
    .unwrap();
    // A second spelling of the same database: a second replica.
    let other = data.replacen("127.0.0.1", "localhost", 1);
    assert_ne!(other, data, "the test database URL names 127.0.0.1");

    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = fast_sync(&server_config(&meta, ""));
    let a = Server::start(&config, &dir).await;
    let admin = a
        .admin_key
        .clone()
        .expect("the first server mints the admin key");
    let b = Server::start(&config, &dir).await;
    let reader: Value = call(&a, &admin, Method::POST, "/v1/keys")
        .json(&json!({"name": "newsrc reader", "grants": [{"source": "newsrc"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reader = reader["key"].as_str().unwrap().to_owned();
    // Keys reach B within its key sync.
    until_status(&b, &reader, "SELECT 1", 200).await;

    // Before it exists: the reader's grant names it, and there is no such table.
    let count = "SELECT count(*) AS n, sum(id) AS s FROM newsrc.public.t";
    let (s, body, _) = query(&b, &reader, count).await;
    assert_eq!((s, code(&body)), (404, "table_not_found"), "{body}");

    // A reader cannot change the registry.
    let refused = post_source(&a, &reader, &pg_entry("newsrc", &[&data])).await;
    assert_eq!(refused.status(), 403);
    // Entries are checked as `sluice check` checks the file, every problem at once; secrets
    // are never written into them.
    let bad = post_source(&a, &admin, &json!({"name": "Bad Name", "kind": "postgres", "replicas": ["mysql://x"], "max_concurrency": 0})).await;
    assert_eq!(bad.status(), 400);
    let msg = bad.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    for part in [
        "name must be lower case",
        "postgres:// URL",
        "max_concurrency",
    ] {
        assert!(msg.contains(part), "{part} in {msg}");
    }
    let with_password = data.replacen("postgres@", "postgres:hunter2@", 1);
    let secret = post_source(&a, &admin, &pg_entry("newsrc", &[&with_password])).await;
    assert_eq!(secret.status(), 400);
    let text = secret.text().await.unwrap();
    assert!(
        text.contains("password_env") && !text.contains("hunter2"),
        "{text}"
    );
    for (method, path) in [
        (Method::POST, "/v1/sources".to_owned()),
        (Method::PUT, "/v1/sources/local".to_owned()),
    ] {
        let entry = json!({"name": "local", "kind": "parquet", "location": "file:///tmp/"});
        let resp = call(&a, &admin, method, &path)
            .json(&entry)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 409);
        assert_eq!(code(&resp.json().await.unwrap()), "source_from_config");
    }
    let resp = call(&a, &admin, Method::DELETE, "/v1/sources/local")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);

    // Added through A: A answers at once (its first load is done), B within its sync.
    let created = post_source(&a, &admin, &pg_entry("newsrc", &[&data])).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["action"], "created");
    assert_eq!(created["source"]["origin"], "registry");
    assert_eq!(created["source"]["tables"], 1, "{created}");
    let version = created["registry_version"].as_u64().unwrap();
    let again = post_source(&a, &admin, &pg_entry("newsrc", &[&data])).await;
    assert_eq!(again.status(), 409);
    let (s, body, _) = query(&a, &reader, count).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["rows"][0], json!([1000, 500_500]));
    let body = until_status(&b, &reader, count, 200).await;
    assert_eq!(body["rows"][0], json!([1000, 500_500]));
    let (list, found) = listed(&b, &admin, "newsrc").await;
    assert_eq!(found.unwrap()["origin"], "registry");
    assert_eq!(list["registry_version"], version);
    let (_, local) = listed(&b, &admin, "local").await;
    assert_eq!(local.unwrap()["origin"], "config");
    assert_eq!(metric(&b, "sluice_registry_version").await, version as f64);

    // Under load on B: a replica added, then the first one removed, through A.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for i in 0..4 {
        let (url, key) = (b.url.clone(), reader.clone());
        let (stop, answered, failures) = (
            Arc::clone(&stop),
            Arc::clone(&answered),
            Arc::clone(&failures),
        );
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            // Each client asks something of its own, so the result cache does not answer.
            let mut n = i;
            while !stop.load(Ordering::Acquire) {
                n += 4;
                let sql = format!(
                    "SELECT count(*) AS n FROM newsrc.public.t WHERE id > {}",
                    n % 997
                );
                let resp = client
                    .post(format!("{url}/v1/query"))
                    .bearer_auth(&key)
                    .header("Accept", "application/json")
                    .json(&json!({ "sql": sql }))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == 200 => {
                        let v: Value = r.json().await.unwrap();
                        let want = 1000 - (n % 997);
                        if v["rows"][0][0] == want {
                            answered.fetch_add(1, Ordering::AcqRel);
                        } else {
                            failures.lock().unwrap().push(format!("{sql}: {v}"));
                        }
                    }
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{sql}: {status} {text}"));
                    }
                    Err(e) => failures.lock().unwrap().push(format!("{sql}: {e}")),
                }
            }
        }));
    }
    let until_answered = |more: u64| {
        let answered = Arc::clone(&answered);
        async move {
            let target = answered.load(Ordering::Acquire) + more;
            let mut waiting = crate::Waiting::new(format!("{target} answers under load"));
            while answered.load(Ordering::Acquire) < target {
                waiting.pause(answered.load(Ordering::Acquire)).await;
            }
        }
    };
    until_answered(30).await;
    let replaced = call(&a, &admin, Method::PUT, "/v1/sources/newsrc")
        .json(&pg_entry("newsrc", &[&data, &other]))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    assert_eq!(
        replaced.json::<Value>().await.unwrap()["action"],
        "replaced"
    );
    // B runs both replicas, and the new one takes statements.
    until_listed(&b, &admin, "newsrc", "replica 1 takes statements", |s| {
        s.is_some_and(|s| {
            s["replicas"].as_array().is_some_and(|r| r.len() == 2)
                && s["replicas"][1]["statements"].as_u64().unwrap_or(0) > 0
        })
    })
    .await;
    until_answered(30).await;
    let removed = call(&a, &admin, Method::PUT, "/v1/sources/newsrc")
        .json(&pg_entry("newsrc", &[&other]))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    until_listed(&b, &admin, "newsrc", "one replica, at localhost", |s| {
        s.is_some_and(|s| {
            s["replicas"].as_array().is_some_and(|r| r.len() == 1)
                && s["replicas"][0]["location"]
                    .as_str()
                    .is_some_and(|l| l.contains("localhost"))
                && s["replicas"][0]["statements"].as_u64().unwrap_or(0) > 0
        })
    })
    .await;
    until_answered(30).await;
    stop.store(true, Ordering::Release);
    for c in clients {
        c.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {} queries failed around the changes: {failures:?}",
        failures.len(),
        failures.len() as u64 + answered.load(Ordering::Acquire)
    );

    // A cached result on A, then the source deleted through B: A never serves the cached
    // result again, and says the source is not found.
    let (s1, _, c1) = query(&a, &admin, count).await;
    let (s2, body, c2) = query(&a, &admin, count).await;
    assert_eq!((s1, s2), (200, 200), "{body}");
    assert_eq!(
        (c1.as_deref(), c2.as_deref()),
        (Some("miss"), Some("hit")),
        "the second ask is served from the cache"
    );
    // A query running on A when the source goes ends with a clear error.
    let slow = "SELECT count(*) AS n FROM newsrc.public.t x, newsrc.public.t y, newsrc.public.t z";
    let running = {
        let (url, key) = (a.url.clone(), admin.clone());
        tokio::spawn(async move {
            let resp = reqwest::Client::new()
                .post(format!("{url}/v1/query"))
                .bearer_auth(&key)
                .header("Accept", "application/json")
                .json(&json!({ "sql": slow }))
                .send()
                .await
                .unwrap();
            (
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            )
        })
    };
    let mut waiting = crate::Waiting::new("the slow query to run on A");
    loop {
        let list: Value = call(&a, &admin, Method::GET, "/v1/queries?state=running")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let on_newsrc = list["queries"].as_array().is_some_and(|q| {
            q.iter().any(|q| {
                q["sources"]
                    .as_array()
                    .is_some_and(|s| s.contains(&json!("newsrc")))
            })
        });
        if on_newsrc {
            break;
        }
        waiting.pause(&list).await;
    }
    let deleted = call(&b, &admin, Method::DELETE, "/v1/sources/newsrc")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let (status, text) = running.await.unwrap();
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("query_cancelled"), "{text}");
    let deleted: Value = deleted.json().await.unwrap();
    assert_eq!(deleted["action"], "deleted");
    let final_version = deleted["registry_version"].as_u64().unwrap();
    // Once A runs the registry version with the deletion, not one answer is the cached one.
    let mut waiting = crate::Waiting::new("A to apply the deletion");
    loop {
        let (list, _) = listed(&a, &admin, "local").await;
        if list["registry_version"] == final_version {
            break;
        }
        waiting.pause(&list["registry_version"]).await;
    }
    let (s, body, cache) = query(&a, &admin, count).await;
    assert_eq!((s, code(&body)), (404, "source_not_found"), "{body}");
    assert_eq!(cache, None);
    let (s, body, _) = query(&a, &reader, count).await;
    assert_eq!((s, code(&body)), (404, "source_not_found"));
    assert!(listed(&a, &admin, "newsrc").await.1.is_none());
    let resp = call(&a, &admin, Method::DELETE, "/v1/sources/newsrc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        metric(&a, "sluice_registry_version").await,
        final_version as f64
    );
    assert!(metric(&a, "sluice_source_changes_total").await >= 1.0);

    // The audit log has every change: who, what, before and after.
    let meta_pg = meta_client(&meta).await;
    let n = crate::governance::audit_count(&meta_pg, "kind = 'admin'", |n| n >= 4).await;
    assert_eq!(n, 4);
    let rows = admin_changes(&meta_pg).await;
    let actions: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(
        actions,
        [
            "source.create",
            "source.replace",
            "source.replace",
            "source.delete"
        ]
    );
    for r in &rows {
        let key: Option<String> = r.get(0);
        assert!(key.is_some(), "the admin key is named");
        assert_eq!(r.get::<_, String>(2), "newsrc");
    }
    let before: Value = serde_json::from_str(rows[1].get(3)).unwrap();
    let after: Value = serde_json::from_str(rows[1].get(4)).unwrap();
    assert_eq!(before["replicas"], json!([data]));
    assert_eq!(after["replicas"], json!([data, other]));
    drop(a);
    drop(b);
}

/// A Parquet source over S3 (moto) added while serving, its credentials named, never stored:
/// its tables are listed and queried. Then the config file, edited: `SIGHUP` adds a source,
/// `POST /v1/admin/reload` removes it and names what needs a restart, and an invalid file
/// changes nothing (through either).
#[actix_web::test]
async fn parquet_over_s3_at_run_time_and_the_config_file_read_again() {
    let Some(svc) = crate::object_stores::services() else {
        return;
    };
    let Some(meta) = fresh_db("SLUICE_TEST_PG_URL", "registry_s3").await else {
        return;
    };
    let prefix = svc.seed("registry").await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = fast_sync(&server_config(&meta, ""));
    let env = [
        ("REGISTRY_TEST_S3_KEY", "testing"),
        ("REGISTRY_TEST_S3_SECRET", crate::object_stores::S3_SECRET),
    ];
    let a = Server::start_with(&config, &dir, "127.0.0.1:0", &env).await;
    let admin = a.admin_key.clone().unwrap();

    let mut entry = json!({
        "name": "lake",
        "kind": "parquet",
        "location": format!("s3://{}/{prefix}/", svc.bucket),
        "options": {
            "endpoint": svc.s3_endpoint,
            "region": "us-east-1",
            "access_key_id": "${REGISTRY_TEST_S3_KEY}",
            "secret_access_key": "${REGISTRY_TEST_S3_SECRET}",
            "allow_http": "true",
        },
    });
    // This server's own files are the config file's to expose, not an API admin's.
    let mut locals = vec![
        json!({"name": "etc", "kind": "parquet", "location": "/etc/"}),
        json!({"name": "etc", "kind": "parquet", "location": "file:///etc/"}),
        json!({"name": "etc", "kind": "parquet", "location": "FILE:///etc/"}),
    ];
    for path in [
        "file:///etc/passwd",
        "//local/etc/x.parquet",
        "source://local/x.parquet",
        "fi\tle:///etc/x.parquet",
        "../../x.parquet",
    ] {
        let mut sneaky = entry.clone();
        sneaky["tables"] = json!([{"name": "t", "path": path}]);
        locals.push(sneaky);
    }
    for local in locals {
        let resp = post_source(&a, &admin, &local).await;
        assert_eq!(resp.status(), 400, "{local}");
        let text = resp.text().await.unwrap();
        // Refused as local files, or (`FILE://`) as a scheme the loader does not know.
        assert!(
            text.contains("registry_local_files") || text.contains("is not one of"),
            "{local}: {text}"
        );
    }
    // The server's environment is named only for secrets: a reference anywhere else would
    // show it in answers.
    let mut nosy = entry.clone();
    nosy["options"]["endpoint"] = json!("${HOME}");
    let resp = post_source(&a, &admin, &nosy).await;
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("environment variable"), "{text}");
    if let Ok(home) = std::env::var("HOME") {
        assert!(!text.contains(&home), "{text}");
    }
    // A secret written into the entry is refused.
    let mut literal = entry.clone();
    literal["options"]["secret_access_key"] = json!(crate::object_stores::S3_SECRET);
    let resp = post_source(&a, &admin, &literal).await;
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("secret_access_key") && !text.contains(crate::object_stores::S3_SECRET));

    // Through the CLI, from a TOML entry: `${VAR}` references are sent as written.
    let file = dir.path().join("lake.toml");
    let toml = format!(
        "[[sources]]\nname = \"lake\"\nkind = \"parquet\"\nlocation = \"s3://{}/{prefix}/\"\n\
         options = {{ endpoint = \"{}\", region = \"us-east-1\", access_key_id = \"${{REGISTRY_TEST_S3_KEY}}\", \
         secret_access_key = \"${{REGISTRY_TEST_S3_SECRET}}\", allow_http = \"true\" }}\n",
        svc.bucket, svc.s3_endpoint
    );
    std::fs::write(&file, toml).unwrap();
    let out = sources_cli(&a, &admin, "add", &file);
    assert!(out.contains("created"), "{out}");
    let tables: Value = call(&a, &admin, Method::GET, "/v1/tables")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .filter(|n| n.starts_with("lake."))
        .collect();
    assert!(names.contains(&"lake.public.lineitem"), "{names:?}");
    let (s, body, _) = query(&a, &admin, "SELECT count(*) AS n FROM lake.public.nation").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["rows"][0][0], 25);
    let stored: String = meta_client(&meta)
        .await
        .query_one(
            "SELECT record::text FROM sluice_sources WHERE name = 'lake'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.contains("${REGISTRY_TEST_S3_SECRET}"), "{stored}");
    assert!(!stored.contains(crate::object_stores::S3_SECRET));
    // Replaced through the CLI: a fixed table list instead of discovery.
    entry["tables"] = json!([{"name": "n", "path": "nation.parquet"}]);
    std::fs::write(&file, entry.to_string()).unwrap();
    sources_cli(&a, &admin, "set", &file);
    let (s, body, _) = query(&a, &admin, "SELECT count(*) AS n FROM lake.public.n").await;
    assert_eq!((s, &body["rows"][0][0]), (200, &json!(25)), "{body}");
    let (s, body, _) = query(&a, &admin, "SELECT count(*) FROM lake.public.nation").await;
    assert_eq!((s, code(&body)), (404, "table_not_found"), "{body}");

    // SIGHUP with an edited file: a source added.
    let original = std::fs::read_to_string(&a.config).unwrap();
    let extra = format!(
        "{original}\n[[sources]]\nname = \"extra\"\nkind = \"parquet\"\nlocation = \"{}\"\n",
        crate::testdata().join("tpch").display()
    );
    std::fs::write(&a.config, &extra).unwrap();
    hangup(&a);
    let body = until_status(
        &a,
        &admin,
        "SELECT count(*) AS n FROM extra.public.region",
        200,
    )
    .await;
    assert_eq!(body["rows"][0][0], 5);
    let (_, found) = listed(&a, &admin, "extra").await;
    assert_eq!(found.unwrap()["origin"], "config");
    // The API cannot change it.
    let resp = call(&a, &admin, Method::DELETE, "/v1/sources/extra")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);

    // An invalid file changes nothing, through the API (which says why) or SIGHUP.
    // The broken file also drops `extra`: all or nothing, `extra` stays.
    let broken = format!(
        "{original}\n[[sources]]\nname = \"broken\"\nkind = \"parquet\"\nlocation = \"ftp://x/\"\n"
    );
    std::fs::write(&a.config, &broken).unwrap();
    let resp = call(&a, &admin, Method::POST, "/v1/admin/reload")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "config_invalid");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("sources[") && m.contains("broken") && !m.contains("ftp")),
        "{body}"
    );
    hangup(&a);
    let mut waiting = crate::Waiting::new("the log to say the SIGHUP changed nothing");
    loop {
        let log = std::fs::read_to_string(&a.log).unwrap();
        if log.contains("SIGHUP: the config file was not applied") {
            break;
        }
        waiting.pause("").await;
    }
    for name in ["extra", "lake", "local"] {
        assert!(
            listed(&a, &admin, name).await.1.is_some(),
            "{name} still runs"
        );
    }
    assert!(listed(&a, &admin, "broken").await.1.is_none());

    // The original file again, with another row limit: `extra` goes, `limits` needs a restart.
    std::fs::write(
        &a.config,
        format!("{original}\n[limits]\nmax_rows = 5000\n"),
    )
    .unwrap();
    let resp = call(&a, &admin, Method::POST, "/v1/admin/reload")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["removed"], json!(["extra"]), "{report}");
    assert_eq!(report["added"], json!([]));
    assert_eq!(report["restart_required"], json!(["limits"]));
    let (s, body, _) = query(&a, &admin, "SELECT count(*) FROM extra.public.region").await;
    assert_eq!((s, code(&body)), (404, "source_not_found"), "{body}");
    // A registry source is untouched by a reload.
    let (s, _, _) = query(&a, &admin, "SELECT count(*) FROM lake.public.n").await;
    assert_eq!(s, 200);
    let meta_pg = meta_client(&meta).await;
    crate::governance::audit_count(&meta_pg, "change->>'action' = 'config.reload'", |n| n >= 2)
        .await;
    let rows = admin_changes(&meta_pg).await;
    let actions: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(
        actions,
        [
            "source.create",
            "source.replace",
            "config.reload",
            "config.reload"
        ]
    );
    let log = a.stop().await;
    assert!(!log.contains(crate::object_stores::S3_SECRET));
}

/// The audit log's administrative changes, oldest first: key id, action, target, before and
/// after (JSON text).
async fn admin_changes(meta: &tokio_postgres::Client) -> Vec<tokio_postgres::Row> {
    meta.query(
        "SELECT key_id, change->>'action', change->>'target', change->>'before', change->>'after'
         FROM sluice_audit WHERE kind = 'admin' ORDER BY at",
        &[],
    )
    .await
    .unwrap()
}

/// `sluice sources <verb> <file>` against `server` with `key`; what it printed.
fn sources_cli(server: &Server, key: &str, verb: &str, file: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["sources", verb])
        .arg(file)
        .env("SLUICE_URL", &server.url)
        .env("SLUICE_API_KEY", key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends `SIGHUP` to `server`.
fn hangup(server: &Server) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
