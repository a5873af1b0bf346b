//! Spooled results (`[spool]`) on S3 (moto) and Azure Blob Storage (Azurite): manifests,
//! segments fetched without credentials, listing while the query runs, acknowledgement,
//! expiry, another key refused, a failed query leaving nothing, the sweeper after a killed
//! server, and `sluice query --out` resuming after a cut segment fetch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sluice_schemas::{SpoolConfig, SpoolRetrieval};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::governance::{as_key, create_key};
use crate::object_stores::{Services, services};
use crate::{ARROW, LONG_STREAM_SQL, TestApp, Waiting, read_arrow};

const SPOOL: &str = "application/vnd.sluice.spool+json";
/// 6,000,000 rows in a known order, two columns.
const BIG_SQL: &str =
    "SELECT value AS v, value % 7 AS m FROM generate_series(1, 6000000) ORDER BY v";

/// Which store a test spools to.
#[derive(Clone, Copy, Debug)]
enum Store {
    S3,
    Azure,
}

impl Store {
    fn location(self, s: &Services, prefix: &str) -> String {
        match self {
            Self::S3 => format!("s3://{}/{prefix}/", s.bucket),
            Self::Azure => format!("az://{}/{prefix}/", s.bucket),
        }
    }

    fn options(self, s: &Services) -> std::collections::BTreeMap<String, String> {
        match self {
            Self::S3 => s.s3_options(),
            Self::Azure => s.azure_options(),
        }
    }

    fn store(self, s: &Services) -> Arc<dyn ObjectStore> {
        match self {
            Self::S3 => s.s3_store(),
            Self::Azure => s.azure_store(),
        }
    }
}

fn spool_config(store: Store, s: &Services, prefix: &str) -> SpoolConfig {
    SpoolConfig {
        location: store.location(s, prefix),
        options: store.options(s),
        segment_bytes: 8 << 20,
        expiry_ms: 120_000,
        retrieval: None,
        threshold_bytes: 1 << 20,
        format: sluice_schemas::SpoolFormat::Arrow,
        lease_ms: 30_000,
        max_results_per_key: 16,
    }
}

/// `method` on `/v1/queries/{id}/spool` with the app's key.
async fn on_spool(app: &TestApp, method: reqwest::Method, id: &str) -> reqwest::Response {
    app.req(method, &format!("/v1/queries/{id}/spool"))
        .send()
        .await
        .unwrap()
}

/// Acknowledges `id` and checks the answer.
async fn ack(app: &TestApp, id: &str) {
    let resp = on_spool(app, reqwest::Method::DELETE, id).await;
    assert_eq!(resp.status(), 204);
}

/// A `file://` spool under `dir` (proxy retrieval).
pub(crate) fn file_spool(
    dir: &std::path::Path,
    format: sluice_schemas::SpoolFormat,
    max_results_per_key: u32,
) -> SpoolConfig {
    SpoolConfig {
        location: format!("file://{}/", dir.display()),
        options: Default::default(),
        segment_bytes: 1 << 20,
        expiry_ms: 600_000,
        retrieval: Some(SpoolRetrieval::Proxy),
        threshold_bytes: 1 << 20,
        format,
        lease_ms: 30_000,
        max_results_per_key,
    }
}

/// Objects under `prefix` in the test's bucket.
async fn objects(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    store
        .list(Some(&Path::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

/// Polls the manifest until `done` holds for it.
async fn manifest_until(
    app: &TestApp,
    key: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut waiting = Waiting::new(format!("spooled result {id}"));
    loop {
        let resp = as_key(
            app,
            key,
            reqwest::Method::GET,
            &format!("/v1/queries/{id}/spool"),
        )
        .send()
        .await
        .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        if status == 200 && done(&body) {
            return body;
        }
        assert_eq!(status, 200, "{body}");
        waiting.pause(&body).await;
    }
}

/// A segment's bytes through a client without credentials (presigned) or with `key` (proxy);
/// checked against its size and SHA-256.
async fn fetch(key: Option<&str>, segment: &Value) -> Vec<u8> {
    let url = segment["url"].as_str().unwrap();
    let plain = reqwest::Client::new();
    let req = match key {
        Some(k) => plain.get(url).bearer_auth(k),
        None => plain.get(url),
    };
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let body = resp.bytes().await.unwrap().to_vec();
    assert_eq!(body.len() as u64, segment["bytes"].as_u64().unwrap());
    assert_eq!(
        format!("{:x}", Sha256::digest(&body)),
        segment["sha256"].as_str().unwrap()
    );
    body
}

/// Asserts two results are the same: columns, types, rows, cell by cell (saying where not).
fn assert_same(got: &RecordBatch, want: &RecordBatch, what: &str) {
    assert_eq!(got.num_rows(), want.num_rows(), "{what}: rows");
    for (i, (g, w)) in got.columns().iter().zip(want.columns()).enumerate() {
        assert_eq!(g.data_type(), w.data_type(), "{what}: column {i}");
        if g.to_data() != w.to_data() {
            let first = (0..g.len())
                .find(|&r| g.slice(r, 1).to_data() != w.slice(r, 1).to_data())
                .unwrap_or(0);
            panic!(
                "{what}: column {i} differs first at row {first}: {:?} vs {:?}",
                g.slice(first, 3),
                w.slice(first, 3)
            );
        }
    }
    let names = |b: &RecordBatch| {
        b.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(got), names(want), "{what}: names");
}

fn one_batch(batches: &[RecordBatch]) -> RecordBatch {
    concat_batches(&batches[0].schema(), batches).unwrap()
}

#[actix_web::test]
async fn spooled_results_on_s3_and_azure() {
    let Some(s) = services() else { return };
    for store in [Store::S3, Store::Azure] {
        spooled_on(store, &s).await;
    }
}

async fn spooled_on(store: Store, s: &Services) {
    let prefix = format!("spool-{store:?}-{}", uuid::Uuid::new_v4().simple());
    let config = spool_config(store, s, &prefix);
    let app = TestApp::spawn_with(|c| {
        c.limits.max_rows = 100_000_000_000;
        c.limits.query_timeout_ms = 600_000;
        c.spool = Some(config);
    })
    .await;
    let bucket = store.store(s);
    let key = app.key.clone();

    // 6,000,000 rows streamed, then spooled: the segments hold the same rows in order.
    let streamed = one_batch(&app.arrow(BIG_SQL).await);
    let resp = app
        .query(json!({"sql": BIG_SQL, "spool": true}), "application/json")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], SPOOL);
    let first: Value = resp.json().await.unwrap();
    let id = first["query_id"].as_str().unwrap().to_owned();
    assert_eq!(
        first["inline"]["rows"].as_array().unwrap().len(),
        1_000,
        "{store:?}"
    );
    assert_eq!(first["inline"]["rows"][0], json!([1, 1]));
    assert_eq!(first["schema"][0]["name"], "v");
    assert_eq!(first["ack"], format!("/v1/queries/{id}/spool"));
    let done = manifest_until(&app, &key, &id, |m| m["complete"] == true).await;
    assert_eq!(done["row_count"], 6_000_000);
    let segments = done["segments"].as_array().unwrap().clone();
    assert!(segments.len() > 3, "{} segments", segments.len());
    let mut spooled = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        assert_eq!(segment["index"], i);
        // A presigned URL works without credentials; without its signature it does not.
        let body = fetch(None, segment).await;
        let batches = read_arrow(&body);
        assert_eq!(
            crate::total_rows(&batches) as u64,
            segment["rows"].as_u64().unwrap()
        );
        spooled.extend(batches);
        if i == 0 {
            let bare = segment["url"].as_str().unwrap().split('?').next().unwrap();
            let refused = reqwest::get(bare).await.unwrap().status();
            assert_eq!(refused, 403, "{store:?}: {bare} without a signature");
        }
    }
    assert_same(
        &one_batch(&spooled),
        &streamed,
        &format!("{store:?}: spooled vs streamed"),
    );

    // Another key, an admin even, sees nothing of it: not the manifest, not a segment, no acknowledgement.
    let other = create_key(
        &app,
        json!({"name": format!("other-{store:?}"), "role": "admin"}),
    )
    .await;
    let other = other["key"].as_str().unwrap();
    for (method, path) in [
        (reqwest::Method::GET, format!("/v1/queries/{id}/spool")),
        (reqwest::Method::GET, format!("/v1/queries/{id}/spool/0")),
        (reqwest::Method::DELETE, format!("/v1/queries/{id}/spool")),
    ] {
        let resp = as_key(&app, other, method.clone(), &path)
            .send()
            .await
            .unwrap();
        app.expect_error(resp, 404, "query_not_found").await;
    }
    // The owner reads a segment through the proxy too, byte for byte the same.
    let proxied = {
        let resp = app
            .req(reqwest::Method::GET, &format!("/v1/queries/{id}/spool/0"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap().to_vec()
    };
    assert_eq!(
        format!("{:x}", Sha256::digest(&proxied)),
        segments[0]["sha256"].as_str().unwrap()
    );

    // Acknowledged: every object is gone before the answer, and the manifest with it.
    assert!(!objects(&bucket, &prefix).await.is_empty());
    ack(&app, &id).await;
    assert_eq!(
        objects(&bucket, &prefix).await,
        Vec::<String>::new(),
        "{store:?}"
    );
    let resp = on_spool(&app, reqwest::Method::GET, &id).await;
    app.expect_error(resp, 404, "query_not_found").await;

    // Segments are listed while the query still runs (it streams for minutes); acknowledging
    // it cancels the query and deletes them.
    let resp = app.query(json!({"sql": LONG_STREAM_SQL}), SPOOL).await;
    assert_eq!(resp.status(), 200);
    let running: Value = resp.json().await.unwrap();
    let rid = running["query_id"].as_str().unwrap().to_owned();
    let listed = manifest_until(&app, &key, &rid, |m| {
        m["segments"].as_array().is_some_and(|s| s.len() >= 2)
    })
    .await;
    assert_eq!(listed["complete"], false);
    fetch(None, &listed["segments"][0]).await;
    ack(&app, &rid).await;
    assert_eq!(objects(&bucket, &prefix).await, Vec::<String>::new());
    let status = app.wait_query(&rid, |q| q["state"] != "running").await;
    assert_eq!(status["state"], "cancelled", "{status}");

    // A query that fails after its manifest was answered leaves no segment behind, and its
    // manifest says why.
    let failing = "SELECT value, 10 / (value - 3000000) AS x FROM generate_series(1, 6000000)";
    let resp = app
        .query(json!({"sql": failing, "spool": true}), "application/json")
        .await;
    assert_eq!(resp.status(), 200);
    let failed: Value = resp.json().await.unwrap();
    let fid = failed["query_id"].as_str().unwrap().to_owned();
    let mut waiting = Waiting::new("the failing spooled query to fail");
    loop {
        let resp = on_spool(&app, reqwest::Method::GET, &fid).await;
        if resp.status() == 200 {
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["complete"], false, "{body}");
            waiting.pause(&body).await;
            continue;
        }
        app.expect_error(resp, 422, "data_error").await;
        break;
    }
    assert_eq!(
        objects(&bucket, &prefix).await,
        Vec::<String>::new(),
        "{store:?}"
    );

    // A client preferring a stream gets the stream for a small result, and the manifest past
    // the threshold (1 MiB here).
    let both = format!("{ARROW}, {SPOOL};q=0.5");
    let resp = app
        .query(json!({"sql": "SELECT * FROM nation"}), &both)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], ARROW);
    assert_eq!(
        crate::total_rows(&read_arrow(&resp.bytes().await.unwrap())),
        25
    );
    let resp = app.query(json!({"sql": BIG_SQL}), &both).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], SPOOL);
    let big: Value = resp.json().await.unwrap();
    let bid = big["query_id"].as_str().unwrap().to_owned();
    let done = manifest_until(&app, &key, &bid, |m| m["complete"] == true).await;
    assert_eq!(done["row_count"], 6_000_000);
    ack(&app, &bid).await;
    assert_eq!(objects(&bucket, &prefix).await, Vec::<String>::new());
}

#[actix_web::test]
async fn spooled_results_expire_and_a_killed_servers_segments_are_swept() {
    let Some(s) = services() else { return };
    for store in [Store::S3, Store::Azure] {
        let prefix = format!("spool-expiry-{store:?}-{}", uuid::Uuid::new_v4().simple());
        let bucket = store.store(&s);
        let mut config = spool_config(store, &s, &prefix);
        config.expiry_ms = 2_000;
        config.lease_ms = 3_000;
        let app = TestApp::spawn_with(|c| {
            c.limits.max_rows = 100_000_000_000;
            c.spool = Some(config.clone());
        })
        .await;

        // A finished result's URL works, then stops working once it expired; its objects
        // are gone and its manifest with them.
        let resp = app
            .query(
                json!({"sql": "SELECT * FROM lineitem", "spool": true}),
                "application/json",
            )
            .await;
        assert_eq!(resp.status(), 200);
        let m: Value = resp.json().await.unwrap();
        let id = m["query_id"].as_str().unwrap().to_owned();
        let done = manifest_until(&app, &app.key, &id, |m| m["complete"] == true).await;
        let segment = done["segments"][0].clone();
        assert!(done["expires_at"].is_string());
        fetch(None, &segment).await;
        let url = segment["url"].as_str().unwrap().to_owned();
        let mut waiting = Waiting::new(format!("{store:?}: the segment URL to stop working"));
        let refused = loop {
            let status = reqwest::get(&url).await.unwrap().status();
            // moto answers 500 to a GET that races the object's deletion ("seek of closed
            // file" in its log): the store's own fault, asked again.
            if status != 200 && !status.is_server_error() {
                break status;
            }
            waiting.pause(status).await;
        };
        assert!(refused == 403 || refused == 404, "{refused}");
        let mut waiting = Waiting::new(format!("{store:?}: expired objects to be deleted"));
        loop {
            let left = objects(&bucket, &prefix).await;
            if left.is_empty() {
                break;
            }
            waiting.pause(format!("{left:?}")).await;
        }
        let resp = on_spool(&app, reqwest::Method::GET, &id).await;
        app.expect_error(resp, 404, "query_not_found").await;

        // A server killed mid-query leaves segments and a lease; another server's sweeper
        // removes them once the lease is stale.
        let dir = Arc::new(tempfile::tempdir().unwrap());
        #[derive(serde::Serialize)]
        struct Section<'a> {
            spool: &'a SpoolConfig,
        }
        let spool_toml = toml::to_string(&Section { spool: &config }).unwrap();
        let toml_config = format!(
            "[limits]\nquery_timeout_ms = 600000\nmax_rows = 100000000000\n{spool_toml}\n[[sources]]\nname = \"local\"\nkind = \"parquet\"\nlocation = \"{}\"\n",
            crate::testdata().join("tpch").display()
        );
        let killed = crate::governance::Server::start(&toml_config, &dir).await;
        let killed_key = killed.admin_key.clone().unwrap();
        // One result it finishes (its expiry marker is what another server goes by), one it
        // is killed in the middle of.
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/query", killed.url))
            .bearer_auth(&killed_key)
            .json(&json!({"sql": "SELECT * FROM local.public.orders", "spool": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let finished: Value = resp.json().await.unwrap();
        let fid = finished["query_id"].as_str().unwrap().to_owned();
        let mut waiting = Waiting::new("the killed server's finished result");
        loop {
            let m: Value = reqwest::Client::new()
                .get(format!("{}/v1/queries/{fid}/spool", killed.url))
                .bearer_auth(&killed_key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if m["complete"] == true {
                break;
            }
            waiting.pause(&m).await;
        }
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/query", killed.url))
            .bearer_auth(&killed_key)
            .header("Accept", SPOOL)
            .json(&json!({"sql": LONG_STREAM_SQL}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let running: Value = resp.json().await.unwrap();
        let rid = running["query_id"].as_str().unwrap().to_owned();
        let mut waiting = Waiting::new("segments of the server to be killed");
        loop {
            let resp = reqwest::Client::new()
                .get(format!("{}/v1/queries/{rid}/spool", killed.url))
                .bearer_auth(&killed_key)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let m: Value = resp.json().await.unwrap();
            if m["segments"].as_array().is_some_and(|s| !s.is_empty()) {
                break;
            }
            waiting.pause(&m).await;
        }
        drop(killed); // SIGKILL
        let left = objects(&bucket, &prefix).await;
        assert!(left.iter().any(|o| o.ends_with("/_lease")), "{left:?}");
        assert!(left.iter().any(|o| o.contains("/_expires-")), "{left:?}");
        assert!(left.iter().any(|o| o.ends_with(".arrow")), "{left:?}");
        // Something else under the location is never the sweeper's.
        let foreign = Path::from(format!("{prefix}/reports/keep.txt"));
        bucket
            .put(
                &foreign,
                object_store::PutPayload::from_static(b"not sluice's"),
            )
            .await
            .unwrap();
        // `app` sweeps the same location: the stale lease's prefix goes.
        let mut waiting = Waiting::new(format!(
            "{store:?}: the sweeper to remove a killed server's results"
        ));
        loop {
            let left = objects(&bucket, &prefix).await;
            if left == [foreign.to_string()] {
                break;
            }
            waiting.pause(format!("{left:?}")).await;
        }
        bucket.delete(&foreign).await.unwrap();
    }
}

#[actix_web::test]
async fn a_spool_location_that_does_not_work_keeps_the_server_from_starting() {
    let Some(s) = services() else { return };
    let mut config = sluice_schemas::Config::embedded(&crate::testdata().join("tpch"));
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.flight = None;
    config.pg = None;
    let mut spool = spool_config(Store::S3, &s, "anywhere");
    spool.location = "s3://no-such-bucket-for-sluice/spool/".into();
    config.spool = Some(spool);
    let Err(e) = sluice::Application::build(config, crate::query_runtime()).await else {
        panic!("a server with an unusable spool started");
    };
    let text = e.to_string();
    assert!(text.contains("spool") && text.contains("write"), "{text}");
    assert!(!text.contains(crate::object_stores::S3_SECRET), "{text}");
}

/// A TCP forwarder to `upstream` that cuts the first answer to a request whose path contains
/// `cut` a few bytes into its body; every other request passes whole (one per connection).
async fn cutting_proxy(upstream: String, cut: &'static str) -> (String, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cut_done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cut_done);
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            let flag = Arc::clone(&flag);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0_u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match client.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                // One request per connection, so each is seen here.
                let text = text.replacen("\r\n", "\r\nConnection: close\r\n", 1);
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                if server.write_all(text.as_bytes()).await.is_err() {
                    return;
                }
                if path.contains(cut) && !flag.swap(true, Ordering::SeqCst) {
                    let mut answer = Vec::new();
                    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        match server.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => answer.extend_from_slice(&buf[..n]),
                        }
                    }
                    let end = answer
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .unwrap_or(0)
                        + 4;
                    let keep = (end + 100).min(answer.len());
                    let _ = client.write_all(&answer[..keep]).await;
                    return; // both dropped: the answer is cut
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (format!("http://{addr}"), cut_done)
}

#[actix_web::test]
async fn sluice_query_out_fetches_in_parallel_and_resumes_a_cut_segment() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    std::fs::create_dir_all(&spool_dir).unwrap();
    let app = TestApp::spawn_with(|c| {
        c.spool = Some(file_spool(
            &spool_dir,
            sluice_schemas::SpoolFormat::Parquet,
            2,
        ));
    })
    .await;
    let upstream = app.url.trim_start_matches("http://").to_owned();
    let (proxy, cut) = cutting_proxy(upstream, "/spool/1").await;
    let sql = "SELECT * FROM lineitem ORDER BY l_orderkey, l_linenumber";
    let streamed = one_batch(&app.arrow(sql).await);
    for (name, parallel) in [
        ("result.parquet", "4"),
        ("result.arrow", "2"),
        ("result.csv", "3"),
    ] {
        let out = dir.path().join(name);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args([
            "query",
            "--server",
            &proxy,
            "--key",
            &app.key,
            "--parallel",
            parallel,
            "--out",
        ])
        .arg(&out)
        .arg(sql);
        let done = crate::output(cmd).await;
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert!(done.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!("{} rows", streamed.num_rows())),
            "{stderr}"
        );
        if name == "result.parquet" {
            // The first fetch of segment 1 was cut and fetched again.
            assert!(cut.load(Ordering::SeqCst));
            assert!(stderr.contains(" 1 fetches retried"), "{stderr}");
        }
        let got = match name {
            "result.parquet" => {
                let reader =
                    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&out).unwrap())
                        .unwrap()
                        .build()
                        .unwrap();
                one_batch(&reader.collect::<Result<Vec<_>, _>>().unwrap())
            }
            "result.arrow" => one_batch(&read_arrow(&std::fs::read(&out).unwrap())),
            _ => {
                let text = std::fs::read_to_string(&out).unwrap();
                assert_eq!(text.lines().count(), streamed.num_rows() + 1);
                assert!(text.starts_with("l_orderkey,"), "{}", &text[..80]);
                continue;
            }
        };
        assert_same(&got, &streamed, name);
        assert!(!dir.path().join(format!("{name}.parts")).exists());
    }
    // A key holds at most `max_results_per_key` results; a client that also takes a stream
    // gets the stream then, and an acknowledgement frees a place.
    let mut held = Vec::new();
    for _ in 0..2 {
        let resp = app
            .query(json!({"sql": "SELECT * FROM nation"}), SPOOL)
            .await;
        assert_eq!(resp.status(), 200);
        let m: Value = resp.json().await.unwrap();
        held.push(m["query_id"].as_str().unwrap().to_owned());
    }
    let resp = app
        .query(json!({"sql": "SELECT * FROM nation"}), SPOOL)
        .await;
    app.expect_error(resp, 429, "too_many_queries").await;
    let resp = app
        .query(
            json!({"sql": "SELECT * FROM lineitem"}),
            &format!("{ARROW}, {SPOOL};q=0.5"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], ARROW);
    assert_eq!(
        crate::total_rows(&read_arrow(&resp.bytes().await.unwrap())),
        streamed.num_rows()
    );
    let resp = app
        .req(
            reqwest::Method::DELETE,
            &format!("/v1/queries/{}/spool", held[0]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    // `"spool": true` answers a manifest whatever `Accept` says.
    let resp = app
        .query(
            json!({"sql": "SELECT * FROM nation", "spool": true}),
            "text/html",
        )
        .await;
    assert_eq!(resp.status(), 200);
    let m: Value = resp.json().await.unwrap();
    held[0] = m["query_id"].as_str().unwrap().to_owned();
    for id in &held {
        ack(&app, id).await;
    }
    // Every result was acknowledged: the spool folder is empty, folders included.
    let left: Vec<_> = walk(&spool_dir);
    assert_eq!(left, Vec::<std::path::PathBuf>::new());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
