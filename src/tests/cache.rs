//! The result cache: a hit is the bytes of a miss in every format; entries are per view of
//! the data; a refreshed source is never answered from a stale entry; uncacheable statements
//! and sources always run; conditional requests get 304.

use serde_json::{Value, json};

use crate::governance::create_key;
use crate::{ARROW, TestApp, testdata};

const FORMATS: [&str; 5] = [
    "application/json",
    "application/x-ndjson",
    "text/csv",
    ARROW,
    "application/vnd.apache.parquet",
];

/// One answer: status, `X-Sluice-Cache`, `ETag`, `Cache-Control`, `X-Query-Id`, body.
struct Answer {
    status: u16,
    cache: String,
    etag: Option<String>,
    control: String,
    id: String,
    body: bytes::Bytes,
}

async fn ask(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.unwrap();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (cache, etag, control, id) = (
        header("x-sluice-cache").unwrap_or_default(),
        header("etag"),
        header("cache-control").unwrap_or_default(),
        header("x-query-id").unwrap_or_default(),
    );
    let status = resp.status().as_u16();
    Answer {
        status,
        cache,
        etag,
        control,
        id,
        body: resp.bytes().await.unwrap(),
    }
}

fn query(app: &TestApp, key: &str, sql: &str, accept: &str) -> reqwest::RequestBuilder {
    app.client
        .post(format!("{}/v1/query", app.url))
        .bearer_auth(key)
        .header("Accept", accept)
        .json(&json!({ "sql": sql }))
}

/// A server with the result cache on, as configured by default.
async fn cached(f: impl FnOnce(&mut sluice_schemas::Config)) -> TestApp {
    TestApp::spawn_with(|c| {
        c.cache = sluice_schemas::CacheConfig::default();
        f(c);
    })
    .await
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[actix_web::test]
async fn a_hit_is_the_bytes_of_a_miss_in_every_format() {
    let app = cached(|_| {}).await;
    let before = app.metrics_text().await;
    // Several batches, every type of the table (decimals, dates, strings).
    let sql = "SELECT * FROM orders WHERE o_orderkey < 20000 ORDER BY o_orderkey";
    // What every format looks like run (a server without a cache), and the entry made by
    // one request in the first format.
    let uncached = TestApp::spawn_with(|c| c.cache.capacity_bytes = 0).await;
    let first = ask(query(&app, &app.key, sql, FORMATS[0])).await;
    assert_eq!((first.status, first.cache.as_str()), (200, "miss"));
    assert_eq!(first.control, "private");
    assert_eq!(first.etag, None, "a streamed miss has no ETag yet");
    let mut etags = Vec::new();
    for accept in FORMATS {
        let miss = ask(query(&uncached, &uncached.key, sql, accept)).await;
        assert_eq!(
            (miss.status, miss.cache.as_str()),
            (200, "miss"),
            "{accept}"
        );
        let hit = ask(query(&app, &app.key, sql, accept)).await;
        assert_eq!(hit.status, 200);
        assert_eq!(hit.cache, "hit", "{accept}");
        assert_eq!(hit.control, "private");
        assert!(
            hit.body == miss.body,
            "{accept}: a hit differs from the miss"
        );
        assert_ne!(hit.id, miss.id, "a hit is a query of its own");
        let etag = hit.etag.expect("a hit has an ETag");
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        // The hit is on the record like any query.
        let status = app.get_json(&format!("/v1/queries/{}", hit.id)).await;
        assert_eq!(status["state"], "finished", "{status}");
        assert_eq!(status["bytes"], hit.body.len(), "{status}");
        // Conditional: the same ETag is answered 304 with no body; another is not.
        let again = ask(query(&app, &app.key, sql, accept).header("If-None-Match", &etag)).await;
        assert_eq!(again.status, 304, "{accept}");
        assert!(again.body.is_empty());
        assert_eq!(again.etag.as_deref(), Some(etag.as_str()));
        assert_eq!(again.cache, "hit");
        let other = ask(query(&app, &app.key, sql, accept).header("If-None-Match", "\"x\"")).await;
        assert_eq!(other.status, 200);
        assert!(other.body == miss.body);
        etags.push(etag);
    }
    etags.sort();
    etags.dedup();
    assert_eq!(etags.len(), FORMATS.len(), "each format has its own ETag");

    // A small result is encoded where it is read, and an Arrow answer is its kept IPC
    // stream sent as it is: still the bytes of a miss, in every format.
    let small = "SELECT n_nationkey, n_name FROM nation ORDER BY 1";
    assert_eq!(
        ask(query(&app, &app.key, small, FORMATS[0])).await.cache,
        "miss"
    );
    for accept in FORMATS {
        let miss = ask(query(&uncached, &uncached.key, small, accept)).await;
        let hit = ask(query(&app, &app.key, small, accept)).await;
        assert_eq!((hit.status, hit.cache.as_str()), (200, "hit"), "{accept}");
        assert!(hit.body == miss.body, "{accept}: a small hit differs");
        let status = app.get_json(&format!("/v1/queries/{}", hit.id)).await;
        assert_eq!(status["state"], "finished", "{status}");
        assert_eq!(status["rows"], 25, "{status}");
        assert_eq!(status["bytes"], hit.body.len(), "{status}");
    }

    // The same statement spelled differently is the same entry.
    let respelled =
        "select *   from orders\n where o_orderkey < 20000 order by o_orderkey -- again";
    assert_eq!(
        ask(query(&app, &app.key, respelled, ARROW)).await.cache,
        "hit"
    );
    // Different parameters are different entries.
    let p = |v: i64| {
        app.req(reqwest::Method::POST, "/v1/query")
            .json(&json!({"sql": "SELECT count(*) AS n FROM orders WHERE o_orderkey < $1", "params": [v]}))
    };
    let (a, b) = (ask(p(100)).await, ask(p(200)).await);
    assert_eq!((a.cache.as_str(), b.cache.as_str()), ("miss", "miss"));
    let (a2, b2) = (ask(p(100)).await, ask(p(200)).await);
    assert_eq!((a2.cache.as_str(), b2.cache.as_str()), ("hit", "hit"));
    assert!(a2.body == a.body && b2.body == b.body && a.body != b.body);

    // A result over the request's max_rows is refused from the cache as it would be run.
    let capped = app
        .req(reqwest::Method::POST, "/v1/query")
        .json(&json!({"sql": sql, "max_rows": 10}))
        .send()
        .await
        .unwrap();
    app.expect_error(capped, 413, "result_too_large").await;

    // What changes from run to run is never kept.
    for sql in [
        "SELECT random() AS r",
        "SELECT now() AS t, count(*) FROM nation",
    ] {
        for _ in 0..2 {
            assert_eq!(
                ask(query(&app, &app.key, sql, ARROW)).await.cache,
                "miss",
                "{sql}"
            );
        }
    }
    let after = app.metrics_text().await;
    let hits =
        metric(&after, "sluice_cache_hits_total") - metric(&before, "sluice_cache_hits_total");
    assert!(hits >= 17.0, "hits counted: {hits}");
    assert!(metric(&after, "sluice_cache_bytes") > 0.0);
    assert!(after.contains("sluice_cache_misses_total"));
}

#[actix_web::test]
async fn a_key_never_gets_a_result_its_grants_do_not_cover() {
    let app = cached(|_| {}).await;
    let sql = "SELECT o_orderstatus, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1";
    let admin = ask(query(&app, &app.key, sql, "application/json")).await;
    assert_eq!(admin.cache, "miss");
    assert_eq!(
        ask(query(&app, &app.key, sql, "application/json"))
            .await
            .cache,
        "hit"
    );

    // A reader that may not read orders is refused, not answered from the admin's entry.
    let narrow = create_key(
        &app,
        json!({"name": "narrow", "role": "reader", "grants": [{"table": "nation"}]}),
    )
    .await;
    let narrow = narrow["key"].as_str().unwrap();
    for _ in 0..2 {
        let a = ask(query(&app, narrow, sql, "application/json")).await;
        assert!(a.status == 403 || a.status == 404, "{}", a.status);
        assert_ne!(a.cache, "hit");
        let body: Value = serde_json::from_slice(&a.body).unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    // A reader that may read it has its own entry: a miss first, then hits.
    let reader = create_key(
        &app,
        json!({"name": "orders", "role": "reader", "grants": [{"table": "orders"}]}),
    )
    .await;
    let reader = reader["key"].as_str().unwrap();
    let first = ask(query(&app, reader, sql, "application/json")).await;
    assert_eq!((first.status, first.cache.as_str()), (200, "miss"));
    assert!(first.body == admin.body);
    assert_eq!(
        ask(query(&app, reader, sql, "application/json"))
            .await
            .cache,
        "hit"
    );
}

#[actix_web::test]
async fn a_refreshed_source_is_never_answered_from_a_stale_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let table = dir.join("t");
    std::fs::create_dir_all(&table).unwrap();
    let nation = testdata().join("tpch/nation.parquet");
    std::fs::copy(&nation, table.join("a.parquet")).unwrap();
    let app = cached(|c| {
        c.sources.push(lake("lake", &dir, true));
        c.sources.push(lake("live", &dir, false));
    })
    .await;
    let count = |source: &str| format!("SELECT count(*) AS n FROM {source}.public.t");
    let rows =
        |a: &Answer| -> Value { serde_json::from_slice::<Value>(&a.body).unwrap()["rows"].clone() };
    let a = ask(query(&app, &app.key, &count("lake"), "application/json")).await;
    assert_eq!((a.cache.as_str(), rows(&a)), ("miss", json!([[25]])));
    let b = ask(query(&app, &app.key, &count("lake"), "application/json")).await;
    assert_eq!((b.cache.as_str(), rows(&b)), ("hit", json!([[25]])));

    // A file is added and the source refreshed: the old count is never served again.
    std::fs::copy(&nation, table.join("b.parquet")).unwrap();
    let r = app
        .req(reqwest::Method::POST, "/v1/sources/lake/refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c = ask(query(&app, &app.key, &count("lake"), "application/json")).await;
    assert_eq!((c.cache.as_str(), rows(&c)), ("miss", json!([[50]])));
    let d = ask(query(&app, &app.key, &count("lake"), "application/json")).await;
    assert_eq!((d.cache.as_str(), rows(&d)), ("hit", json!([[50]])));

    // `cache = false`: every query reads the source, alone or joined with a cached one.
    let join = "SELECT count(*) FROM live.public.t JOIN lake.public.t USING (n_nationkey)";
    for sql in [count("live").as_str(), join] {
        for _ in 0..2 {
            let a = ask(query(&app, &app.key, sql, "application/json")).await;
            assert_eq!((a.status, a.cache.as_str()), (200, "miss"), "{sql}");
        }
    }
}

fn lake(name: &str, dir: &std::path::Path, cache: bool) -> sluice_schemas::SourceConfig {
    sluice_schemas::SourceConfig::Parquet(sluice_schemas::ParquetSourceConfig {
        name: name.to_owned(),
        location: dir.display().to_string(),
        options: Default::default(),
        schema: "public".to_owned(),
        tables: Vec::new(),
        health_check_interval_ms: 10_000,
        refresh_interval_ms: 0,
        fallback: None,
        cache,
    })
}

#[actix_web::test]
async fn concurrent_identical_queries_run_the_statement_once() {
    let Some((_pg, url, schema)) = crate::postgres::setup(
        "CREATE TABLE t (x int8);
         INSERT INTO t SELECT generate_series(1, 100);
         CREATE VIEW slow AS SELECT t.x FROM t, pg_sleep(0.5);",
    )
    .await
    else {
        return;
    };
    let src = crate::postgres::source("pg", &url, &schema);
    let app = cached(|c| c.sources.push(sluice_schemas::SourceConfig::Postgres(src))).await;
    let sql = format!("SELECT sum(x) AS s FROM pg.{schema}.slow");
    let answers = futures::future::join_all(
        (0..6).map(|_| ask(query(&app, &app.key, &sql, "application/json"))),
    )
    .await;
    let misses: Vec<&Answer> = answers.iter().filter(|a| a.cache == "miss").collect();
    assert_eq!(misses.len(), 1, "one ran, the rest waited for it");
    for a in &answers {
        assert_eq!(a.status, 200);
        assert!(a.body == misses[0].body);
        let body: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(body["rows"], json!([[5050]]));
    }
    // PostgreSQL ran the statement once.
    assert_eq!(crate::federation::logged(&misses[0].id, 1).await.len(), 1);
    let log = std::fs::read_to_string(crate::postgres::service_env("SLUICE_TEST_PG_LOG").unwrap())
        .unwrap();
    let view = format!("\"{schema}\".\"slow\"");
    let ran = log
        .lines()
        .filter(|l| l.contains("execute <unnamed>: ") && l.contains(&view))
        .count();
    assert_eq!(ran, 1, "statements on the view");
}

#[actix_web::test]
async fn a_kept_plan_answers_every_parameter_value_as_a_fresh_one() {
    // The result cache off: every request plans (from the kept plan after the first) and runs.
    let app = TestApp::spawn().await;
    for v in [7, 0, 24, 7, 3, 99, 0] {
        let kept = app
            .req(reqwest::Method::POST, "/v1/query")
            .json(&json!({
                "sql": "SELECT n_name, n_regionkey FROM nation WHERE n_nationkey = $1 OR n_regionkey = $2 ORDER BY 1",
                "params": [v, v % 5],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(kept.status(), 200);
        let kept: Value = kept.json().await.unwrap();
        // The same statement with the values written in: a text of its own, planned afresh.
        let fresh = ask(query(
            &app,
            &app.key,
            &format!(
                "SELECT n_name, n_regionkey FROM nation WHERE n_nationkey = {v} OR n_regionkey = {} ORDER BY 1",
                v % 5
            ),
            "application/json",
        ))
        .await;
        let fresh: Value = serde_json::from_slice(&fresh.body).unwrap();
        assert_eq!(kept["rows"], fresh["rows"], "{v}");
        assert!(!kept["rows"].as_array().unwrap().is_empty() || v == 99);
    }
}

/// The keys of results in the Redis at `url`.
fn shared_results(url: &str) -> Vec<String> {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("KEYS")
        .arg("sluice:result:*")
        .query(&mut con)
        .unwrap()
}

/// Waits until the Redis at `url` holds more than `n` results (the store is in the
/// background, after the response ended).
async fn stored_beyond(url: &str, n: usize) {
    for _ in 0..200 {
        if shared_results(url).len() > n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no result reached Redis at {url}");
}

fn count_rows(a: &Answer) -> Value {
    serde_json::from_slice::<Value>(&a.body).unwrap()["rows"].clone()
}

#[actix_web::test]
async fn servers_sharing_redis_share_hits_and_never_a_stale_entry() {
    let Some(redis_url) = crate::postgres::service_env("SLUICE_TEST_REDIS_URL") else {
        return;
    };
    // Two lakes with one table name: a server with the other files must never get an entry.
    let tmp = tempfile::tempdir().unwrap();
    let nation = testdata().join("tpch/nation.parquet");
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    for (dir, copies) in [(&one, 1), (&two, 2)] {
        std::fs::create_dir_all(dir.join("t")).unwrap();
        for i in 0..copies {
            std::fs::copy(&nation, dir.join("t").join(format!("{i}.parquet"))).unwrap();
        }
    }
    let server = |dir: std::path::PathBuf| {
        let url = redis_url.clone();
        cached(move |c| {
            c.cache.redis_url = Some(url);
            c.sources.push(lake("lake", &dir, true));
        })
    };
    let (a, b, other) = (
        server(one.clone()).await,
        server(one).await,
        server(two).await,
    );
    // A statement no earlier run left in Redis.
    let tag = uuid::Uuid::new_v4();
    let sql = format!("SELECT n_nationkey, n_name, '{tag}' AS tag FROM nation ORDER BY 1");
    let before = shared_results(&redis_url).len();
    let first = ask(query(&a, &a.key, &sql, ARROW)).await;
    assert_eq!((first.status, first.cache.as_str()), (200, "miss"));
    stored_beyond(&redis_url, before).await;

    // B's first request for it is a hit, the same bytes and ETag as A's own hit.
    let shared_before = metric(&b.metrics_text().await, "sluice_cache_shared_hits_total");
    let from_b = ask(query(&b, &b.key, &sql, ARROW)).await;
    assert_eq!((from_b.status, from_b.cache.as_str()), (200, "hit"));
    assert!(from_b.body == first.body);
    let from_a = ask(query(&a, &a.key, &sql, ARROW)).await;
    assert_eq!(from_a.cache, "hit");
    assert_eq!(from_b.etag, from_a.etag);
    assert!(metric(&b.metrics_text().await, "sluice_cache_shared_hits_total") > shared_before);
    // Every format is served from the shared batches: B's CSV is a run's CSV.
    let csv = ask(query(&b, &b.key, &sql, "text/csv")).await;
    assert_eq!(csv.cache, "hit");
    let uncached = TestApp::spawn().await;
    let ran = ask(query(&uncached, &uncached.key, &sql, "text/csv")).await;
    assert!(csv.body == ran.body);
    // `other` loaded the same TPC-H files: nation's entry holds there too.
    let there = ask(query(&other, &other.key, &sql, ARROW)).await;
    assert!((there.cache.as_str(), &there.body) == ("hit", &first.body));

    // The same statement over a lake with other files: never the other servers' answer.
    let count = format!("SELECT count(*) AS n, '{tag}' AS tag FROM lake.public.t");
    let before = shared_results(&redis_url).len();
    let on_a = ask(query(&a, &a.key, &count, "application/json")).await;
    assert_eq!(
        (on_a.cache.as_str(), count_rows(&on_a)),
        ("miss", json!([[25, tag.to_string()]]))
    );
    stored_beyond(&redis_url, before).await;
    let on_b = ask(query(&b, &b.key, &count, "application/json")).await;
    assert_eq!(
        (on_b.cache.as_str(), count_rows(&on_b)),
        ("hit", json!([[25, tag.to_string()]]))
    );
    let on_other = ask(query(&other, &other.key, &count, "application/json")).await;
    assert_eq!(
        (on_other.cache.as_str(), count_rows(&on_other)),
        ("miss", json!([[50, tag.to_string()]]))
    );
    // `other` wrote its 50 under the same key; B keeps answering from A's files.
    let after = ask(query(&b, &b.key, &count, "application/json")).await;
    assert_eq!(count_rows(&after), json!([[25, tag.to_string()]]));

    // A refresh on B (the data behind `lake` changed, as far as anyone says): A's copy,
    // local or in Redis, is not served again once A has read the new generation (≤ 1 s).
    let r = b
        .req(reqwest::Method::POST, "/v1/sources/lake/refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut seen = Vec::new();
    for _ in 0..100 {
        let again = ask(query(&a, &a.key, &count, "application/json")).await;
        assert_eq!(again.status, 200);
        seen.push(again.cache.clone());
        if again.cache == "miss" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen.last().map(String::as_str), Some("miss"), "{seen:?}");
    assert!(
        seen.len() <= 40,
        "A followed B's refresh only after {} tries",
        seen.len()
    );

    // A file added under the lake and only A refreshed: B still lists one file, so a
    // statement B runs first is 25 in Redis; A, whose catalog holds the new file (another
    // fingerprint), must run it rather than take B's answer.
    std::fs::copy(&nation, tmp.path().join("one/t/9.parquet")).unwrap();
    let r = a
        .req(reqwest::Method::POST, "/v1/sources/lake/refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let fresh = format!("SELECT count(*) AS n, '{tag}-2' AS tag FROM lake.public.t");
    let before = shared_results(&redis_url).len();
    let old = ask(query(&b, &b.key, &fresh, "application/json")).await;
    assert_eq!(
        (old.cache.as_str(), count_rows(&old)[0][0].clone()),
        ("miss", json!(25))
    );
    stored_beyond(&redis_url, before).await;
    let new = ask(query(&a, &a.key, &fresh, "application/json")).await;
    assert_eq!(
        (new.cache.as_str(), count_rows(&new)[0][0].clone()),
        ("miss", json!(50))
    );
}

/// A `redis-server` of the test's own on a free port, stopped when dropped.
struct OwnRedis {
    child: std::process::Child,
    port: u16,
}

impl OwnRedis {
    async fn start(port: u16) -> Self {
        let bin = crate::postgres::service_env("SLUICE_TEST_REDIS_SERVER")
            .unwrap_or_else(|| "redis-server".to_owned());
        let child = std::process::Command::new(bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let me = Self { child, port };
        for _ in 0..200 {
            if let Ok(mut con) = redis::Client::open(me.url()).unwrap().get_connection()
                && redis::cmd("PING").query::<String>(&mut con).is_ok()
            {
                return me;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("redis-server on port {port} did not answer");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_web::test]
async fn queries_succeed_with_redis_stopped_mid_test() {
    // The suite's Redis says the machine has one; this test stops its own.
    if crate::postgres::service_env("SLUICE_TEST_REDIS_URL").is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = OwnRedis::start(port).await;
    let url = redis.url();
    let a = cached({
        let url = url.clone();
        move |c| c.cache.redis_url = Some(url)
    })
    .await;
    let tag = uuid::Uuid::new_v4();
    let sql = |n: u32| format!("SELECT count(*) AS n, {n} AS q, '{tag}' AS t FROM lineitem");
    let first = ask(query(&a, &a.key, &sql(1), "application/json")).await;
    assert_eq!((first.status, first.cache.as_str()), (200, "miss"));
    stored_beyond(&url, 0).await;

    let errors_before = metric(&a.metrics_text().await, "sluice_cache_shared_errors_total");
    redis.stop();
    // Kept here: a hit without Redis.
    let hit = ask(query(&a, &a.key, &sql(1), "application/json")).await;
    assert_eq!((hit.status, hit.cache.as_str()), (200, "hit"));
    assert!(hit.body == first.body);
    // New statements run, and are kept here.
    for n in 2..5 {
        let ran = ask(query(&a, &a.key, &sql(n), "application/json")).await;
        assert_eq!((ran.status, ran.cache.as_str()), (200, "miss"), "{n}");
        assert_eq!(count_rows(&ran)[0][0], json!(60175));
        let again = ask(query(&a, &a.key, &sql(n), "application/json")).await;
        assert_eq!((again.status, again.cache.as_str()), (200, "hit"), "{n}");
    }
    assert!(metric(&a.metrics_text().await, "sluice_cache_shared_errors_total") > errors_before);
    // A server started while Redis is down starts and answers.
    let b = cached({
        let url = url.clone();
        move |c| c.cache.redis_url = Some(url)
    })
    .await;
    let on_b = ask(query(&b, &b.key, &sql(1), "application/json")).await;
    assert_eq!((on_b.status, on_b.cache.as_str()), (200, "miss"));
    assert!(on_b.body == first.body);

    // Redis back on the same port: sharing resumes by itself (after its pause, ≤ 1 s).
    let _redis = OwnRedis::start(port).await;
    let mut n = 100;
    while shared_results(&url).is_empty() {
        assert!(n < 400, "results never reached the restarted Redis");
        let ran = ask(query(&a, &a.key, &sql(n), "application/json")).await;
        assert_eq!(ran.status, 200);
        n += 1;
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let shared = ask(query(&b, &b.key, &sql(n - 1), "application/json")).await;
    assert_eq!((shared.status, shared.cache.as_str()), (200, "hit"));
}
