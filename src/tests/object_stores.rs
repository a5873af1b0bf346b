//! Parquet sources on S3 (moto) and Azure Blob Storage (Azurite), started by
//! `scripts/services.sh` and found through `SLUICE_TEST_S3_ENDPOINT`, `SLUICE_TEST_AZURE_URL`
//! and `SLUICE_TEST_BUCKET`. Each test puts the testdata TPC-H tables (and a copy of lineitem
//! partitioned by `l_returnflag`) under its own prefix, so tests never see each other's objects.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{Value, json};
use sluice_schemas::{Config, ParquetSourceConfig, SourceConfig, TableConfig};

use crate::{ARROW, TestApp, testdata};

/// Put into every S3 source's options; it must never come back in any response.
pub(crate) const S3_SECRET: &str = "sluice-test-secret-0xC0FFEE";
/// Azurite's published development key.
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];
const FLAGS: [&str; 3] = ["A", "N", "R"];

/// Where the services are, or `None` (loudly) outside CI when they are not running.
pub(crate) struct Services {
    pub(crate) s3_endpoint: String,
    azure_url: String,
    pub(crate) bucket: String,
}

pub(crate) fn services() -> Option<Services> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("SLUICE_TEST_S3_ENDPOINT"),
        get("SLUICE_TEST_AZURE_URL"),
        get("SLUICE_TEST_BUCKET"),
    ) {
        (Some(s3_endpoint), Some(azure_url), Some(bucket)) => Some(Services {
            s3_endpoint,
            azure_url,
            bucket,
        }),
        _ => {
            crate::skip_or_fail(
                "S3/Azure services are not running: SLUICE_TEST_S3_ENDPOINT, \
                 SLUICE_TEST_AZURE_URL and SLUICE_TEST_BUCKET must be set",
            );
            None
        }
    }
}

impl Services {
    pub(crate) fn s3_options(&self) -> BTreeMap<String, String> {
        opts(&[
            ("endpoint", &self.s3_endpoint),
            ("region", "us-east-1"),
            ("access_key_id", "testing"),
            ("secret_access_key", S3_SECRET),
            ("allow_http", "true"),
        ])
    }

    pub(crate) fn azure_options(&self) -> BTreeMap<String, String> {
        opts(&[
            ("account_name", "devstoreaccount1"),
            ("access_key", AZURITE_KEY),
            ("endpoint", &format!("{}/devstoreaccount1", self.azure_url)),
            ("allow_http", "true"),
        ])
    }

    pub(crate) fn s3_store(&self) -> Arc<dyn ObjectStore> {
        let mut b = AmazonS3Builder::new().with_bucket_name(&self.bucket);
        for (k, v) in self.s3_options() {
            b = b.with_config(k.parse().unwrap(), v);
        }
        Arc::new(b.build().unwrap())
    }

    pub(crate) fn azure_store(&self) -> Arc<dyn ObjectStore> {
        let mut b = MicrosoftAzureBuilder::new().with_container_name(&self.bucket);
        for (k, v) in self.azure_options() {
            b = b.with_config(k.parse().unwrap(), v);
        }
        Arc::new(b.build().unwrap())
    }

    /// A prefix of this test's own under which both stores get the TPC-H tables.
    pub(crate) async fn seed(&self, test: &str) -> String {
        let prefix = format!("{test}-{}", uuid::Uuid::new_v4().simple());
        let files = seed_files();
        for store in [self.s3_store(), self.azure_store()] {
            for (name, bytes) in files {
                store
                    .put(
                        &Path::from(format!("{prefix}/{name}")),
                        PutPayload::from(bytes.clone()),
                    )
                    .await
                    .unwrap();
            }
        }
        prefix
    }

    fn s3_source(&self, name: &str, prefix: &str) -> SourceConfig {
        source(
            name,
            &format!("s3://{}/{prefix}/", self.bucket),
            self.s3_options(),
        )
    }

    fn azure_source(&self, name: &str, prefix: &str) -> SourceConfig {
        source(
            name,
            &format!("az://{}/{prefix}/", self.bucket),
            self.azure_options(),
        )
    }
}

fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn source(name: &str, location: &str, options: BTreeMap<String, String>) -> SourceConfig {
    SourceConfig::Parquet(ParquetSourceConfig {
        cache: true,
        name: name.to_owned(),
        location: location.to_owned(),
        options,
        schema: "public".to_owned(),
        tables: Vec::new(),
        health_check_interval_ms: 200,
        refresh_interval_ms: 0,
        fallback: None,
    })
}

/// The eight tables as `<table>.parquet`, and lineitem again as
/// `lineitem_part/l_returnflag=<flag>/data.parquet` (the flag only in the path). Built once.
fn seed_files() -> &'static [(String, Vec<u8>)] {
    static FILES: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let mut files: Vec<_> = TABLES
            .iter()
            .map(|t| {
                let path = testdata().join(format!("tpch/{t}.parquet"));
                (format!("{t}.parquet"), std::fs::read(path).unwrap())
            })
            .collect();
        // Own thread and runtime: this runs once, from whichever test's runtime comes first.
        let parts = std::thread::spawn(|| {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(partitioned_lineitem())
        })
        .join()
        .unwrap();
        files.extend(parts);
        files
    })
}

async fn partitioned_lineitem() -> Vec<(String, Vec<u8>)> {
    let ctx = SessionContext::new();
    let path = testdata().join("tpch/lineitem.parquet");
    ctx.register_parquet(
        "lineitem",
        path.to_str().unwrap(),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    for flag in FLAGS {
        let df = ctx
            .sql(&format!(
                "SELECT * EXCEPT (l_returnflag) FROM lineitem WHERE l_returnflag = '{flag}'"
            ))
            .await
            .unwrap();
        let batches = df.collect().await.unwrap();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batches[0].schema(), None).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
        out.push((
            format!("lineitem_part/l_returnflag={flag}/data.parquet"),
            buf,
        ));
    }
    out
}

/// Runs `sql` and returns the JSON rows.
async fn rows(app: &TestApp, sql: &str) -> Vec<Value> {
    let resp = app.query(json!({ "sql": sql }), "application/json").await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{sql}: {body}");
    body["rows"].as_array().unwrap().clone()
}

/// The sum of a counter over the series that carry all of `labels` (`a="x",b="y"`), 0 when
/// there is none.
async fn metric(app: &TestApp, name: &str, labels: &str) -> f64 {
    let text = app.metrics_text().await;
    let wanted: Vec<&str> = labels.split(',').collect();
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|l| l.split_once("} "))
        .filter(|(ls, _)| wanted.iter().all(|w| ls.split(',').any(|l| l == *w)))
        .map(|(_, v)| v.trim().parse::<f64>().unwrap())
        .sum()
}

async fn with_sources(sources: Vec<SourceConfig>) -> TestApp {
    TestApp::spawn_with(|c: &mut Config| c.sources.extend(sources)).await
}

/// A server with sources `s3` and `az` over a freshly seeded prefix, beside `local`.
async fn s3_and_azure(test: &str) -> Option<TestApp> {
    let svc = services()?;
    let prefix = svc.seed(test).await;
    Some(
        with_sources(vec![
            svc.s3_source("s3", &prefix),
            svc.azure_source("az", &prefix),
        ])
        .await,
    )
}

#[actix_web::test]
async fn s3_and_azure_answer_like_local_files() {
    let Some(app) = s3_and_azure("same").await else {
        return;
    };
    let queries = [
        // Q1's shape: every lineitem column family, grouped.
        "SELECT l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice * (1 - l_discount)), \
         avg(l_discount), count(*) FROM {}.public.lineitem WHERE l_shipdate <= DATE '1998-09-02' \
         GROUP BY 1, 2 ORDER BY 1, 2",
        // Q3's shape: a three-way join inside one source.
        "SELECT o.o_orderkey, sum(l.l_extendedprice * (1 - l.l_discount)) AS revenue \
         FROM {0}.public.customer c JOIN {0}.public.orders o ON c.c_custkey = o.o_custkey \
         JOIN {0}.public.lineitem l ON l.l_orderkey = o.o_orderkey \
         WHERE c.c_mktsegment = 'BUILDING' AND o.o_orderdate < DATE '1995-03-15' \
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10",
        "SELECT n_name, r_name FROM {0}.public.nation JOIN {0}.public.region ON n_regionkey = r_regionkey ORDER BY 1",
        "SELECT count(*), sum(ps_supplycost) FROM {}.public.partsupp",
    ];
    for q in queries {
        let local = rows(&app, &q.replace("{0}", "local").replace("{}", "local")).await;
        assert!(!local.is_empty(), "{q}");
        for src in ["s3", "az"] {
            let remote = rows(&app, &q.replace("{0}", src).replace("{}", src)).await;
            assert_eq!(remote, local, "{src}: {q}");
        }
    }
    // Every table is there, with the local table's row count.
    for t in TABLES {
        let local = rows(&app, &format!("SELECT count(*) FROM local.public.{t}")).await;
        for src in ["s3", "az"] {
            let remote = rows(&app, &format!("SELECT count(*) FROM {src}.public.{t}")).await;
            assert_eq!(remote, local, "{src}.{t}");
        }
    }
    // The partitioned copy: the flag comes back from the folder names, as a string column.
    let want = rows(
        &app,
        "SELECT l_returnflag, count(*), sum(l_quantity) FROM local.public.lineitem GROUP BY 1 ORDER BY 1",
    )
    .await;
    for src in ["s3", "az"] {
        let got = rows(
            &app,
            &format!(
                "SELECT l_returnflag, count(*), sum(l_quantity) FROM {src}.public.lineitem_part \
                 GROUP BY 1 ORDER BY 1"
            ),
        )
        .await;
        assert_eq!(got, want, "{src}");
    }
    let described = app.get_json("/v1/tables/s3.public.lineitem_part").await;
    let last = described["columns"].as_array().unwrap().last().unwrap();
    assert_eq!(last["name"], "l_returnflag", "{described}");
}

#[actix_web::test]
async fn cross_store_join_is_correct() {
    let Some(app) = s3_and_azure("join").await else {
        return;
    };
    let q = "SELECT c.c_mktsegment, count(*) AS n, sum(l.l_extendedprice) AS price \
             FROM {orders}.public.orders o \
             JOIN {lineitem}.public.lineitem l ON l.l_orderkey = o.o_orderkey \
             JOIN {customer}.public.customer c ON c.c_custkey = o.o_custkey \
             WHERE l.l_shipmode IN ('AIR', 'MAIL') GROUP BY 1 ORDER BY 1";
    let fill = |o: &str, l: &str, c: &str| {
        q.replace("{orders}", o)
            .replace("{lineitem}", l)
            .replace("{customer}", c)
    };
    let want = rows(&app, &fill("local", "local", "local")).await;
    assert_eq!(want.len(), 5, "five market segments");
    let got = rows(&app, &fill("s3", "az", "local")).await;
    assert_eq!(got, want);
    // The plan reads each table from its own store.
    let explain = app.explain(&fill("s3", "az", "local")).await;
    assert_eq!(
        explain["sources"],
        json!(["az", "local", "s3"]),
        "{explain}"
    );
}

#[actix_web::test]
async fn a_narrow_projection_reads_a_small_fraction_of_the_object() {
    let Some(svc) = services() else { return };
    let prefix = svc.seed("narrow").await;
    let mut src = svc.s3_source("s3narrow", &prefix);
    if let SourceConfig::Parquet(p) = &mut src {
        p.tables = vec![TableConfig {
            name: "lineitem".into(),
            path: "lineitem.parquet".into(),
        }];
    }
    let app = with_sources(vec![src]).await;
    let labels = "source=\"s3narrow\"";
    let before = metric(&app, "sluice_source_bytes_read_total", labels).await;
    let got = rows(
        &app,
        "SELECT sum(l_linenumber) FROM s3narrow.public.lineitem",
    )
    .await;
    let want = rows(&app, "SELECT sum(l_linenumber) FROM local.public.lineitem").await;
    assert_eq!(got, want);
    let read = metric(&app, "sluice_source_bytes_read_total", labels).await - before;

    // What a ranged, projected read may cost: the column's chunks, plus the footer read
    // (DataFusion fetches the last 512 KiB at once) when the footer is not cached.
    let local = testdata().join("tpch/lineitem.parquet");
    let size = std::fs::metadata(&local).unwrap().len() as f64;
    let reader = SerializedFileReader::new(std::fs::File::open(&local).unwrap()).unwrap();
    let column: i64 = reader
        .metadata()
        .row_groups()
        .iter()
        .flat_map(|rg| rg.columns())
        .filter(|c| c.column_descr().name() == "l_linenumber")
        .map(|c| c.compressed_size())
        .sum();
    let bound = column as f64 + (512.0 * 1024.0f64).min(size) + 16.0 * 1024.0;
    assert!(
        read > 0.0,
        "the query read nothing from S3: is the metering wired?"
    );
    assert!(
        read <= bound,
        "read {read} bytes for one column; the column is {column} bytes, the object {size}"
    );
    assert!(
        read < size * 0.4,
        "read {read} of {size} bytes for one narrow column"
    );
    // A full read, for contrast, is counted too.
    let before = metric(&app, "sluice_source_bytes_read_total", labels).await;
    // (Not max(): DataFusion answers that from the footer's statistics without reading.)
    rows(
        &app,
        "SELECT sum(length(l_comment)) FROM s3narrow.public.lineitem",
    )
    .await;
    let comment = metric(&app, "sluice_source_bytes_read_total", labels).await - before;
    assert!(
        comment > read,
        "l_comment ({comment}) vs l_linenumber ({read})"
    );
    assert!(
        metric(
            &app,
            "sluice_source_requests_total",
            "op=\"get\",source=\"s3narrow\""
        )
        .await
            > 0.0
    );
}

#[actix_web::test]
async fn a_partition_filter_skips_the_other_partitions() {
    let Some(svc) = services() else { return };
    let prefix = svc.seed("prune").await;
    let app = with_sources(vec![svc.azure_source("azpart", &prefix)]).await;
    let sql = "SELECT count(*), sum(l_quantity) FROM azpart.public.lineitem_part WHERE l_returnflag = 'R'";
    let explain = app.explain(sql).await;
    let physical = explain["physical_plan"].as_str().unwrap();
    assert!(
        physical.contains("l_returnflag=R/data.parquet"),
        "{physical}"
    );
    assert!(
        !physical.contains("l_returnflag=A") && !physical.contains("l_returnflag=N"),
        "{physical}"
    );
    // And the bytes read stay within the one partition's file.
    let labels = "source=\"azpart\"";
    let before = metric(&app, "sluice_source_bytes_read_total", labels).await;
    let got = rows(&app, sql).await;
    let read = metric(&app, "sluice_source_bytes_read_total", labels).await - before;
    let want = rows(
        &app,
        "SELECT count(*), sum(l_quantity) FROM local.public.lineitem WHERE l_returnflag = 'R'",
    )
    .await;
    assert_eq!(got, want);
    let r_file = seed_files()
        .iter()
        .find(|(n, _)| n.contains("l_returnflag=R"))
        .map(|(_, b)| b.len())
        .unwrap();
    assert!(
        read <= r_file as f64,
        "read {read}, the R partition is {r_file}"
    );
}

#[actix_web::test]
async fn missing_bucket_and_stopped_store_fail_fast_and_others_answer() {
    let Some(svc) = services() else { return };
    // A port nothing listens on: a stopped S3 service.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut stopped_opts = svc.s3_options();
    stopped_opts.insert("endpoint".into(), format!("http://{closed}"));
    let prefix = svc.seed("alive").await;
    let app = TestApp::spawn_unready_with(|c: &mut Config| {
        // Same bucket as `stopped`, registered first: each source must keep its own store.
        c.sources.push(svc.s3_source("alive", &prefix));
        c.sources.push(source(
            "gone",
            "s3://no-such-bucket-sluice/",
            svc.s3_options(),
        ));
        c.sources.push(source(
            "stopped",
            &format!("s3://{}/x/", svc.bucket),
            stopped_opts.clone(),
        ));
    })
    .await;
    for name in ["gone", "stopped"] {
        let resp = app
            .query(
                json!({ "sql": format!("SELECT * FROM {name}.public.anything") }),
                ARROW,
            )
            .await;
        assert!(resp.headers().contains_key("retry-after"));
        let body = app.expect_error(resp, 503, "source_unavailable").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(name), "{message}");
        assert!(!message.contains(S3_SECRET));
        // An on-demand refresh says why, as an upstream error.
        let resp = app
            .req(
                reqwest::Method::POST,
                &format!("/v1/sources/{name}/refresh"),
            )
            .send()
            .await
            .unwrap();
        let body = app.expect_error(resp, 502, "upstream_error").await;
        assert!(!body.to_string().contains(S3_SECRET));
    }
    let sources = app.get_json("/v1/sources").await;
    let text = sources.to_string();
    assert!(!text.contains(S3_SECRET), "{text}");
    assert!(!text.contains("testing\""), "the access key id: {text}");
    for name in ["gone", "stopped"] {
        let s = sources["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap();
        assert_eq!(s["state"], "unavailable", "{s}");
        assert!(
            s["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{s}"
        );
        assert_eq!(s["tables"], Value::Null, "{s}");
    }
    let resp = app
        .req(reqwest::Method::POST, "/v1/sources/nope/refresh")
        .send()
        .await
        .unwrap();
    app.expect_error(resp, 404, "source_not_found").await;
    app.assert_serving().await;
    assert_eq!(
        rows(&app, "SELECT count(*) FROM alive.public.nation").await,
        [json!([25])]
    );
}

#[actix_web::test]
async fn refresh_picks_up_new_files_and_tables_and_vanished_files_fail_cleanly() {
    let Some(svc) = services() else { return };
    let prefix = format!("fresh-{}", uuid::Uuid::new_v4().simple());
    let store = svc.s3_store();
    let nation = std::fs::read(testdata().join("tpch/nation.parquet")).unwrap();
    let put = |name: &str| {
        let store = Arc::clone(&store);
        let path = Path::from(format!("{prefix}/{name}"));
        let bytes = nation.clone();
        async move { store.put(&path, PutPayload::from(bytes)).await.unwrap() }
    };
    put("n/part-0.parquet").await;
    let app = with_sources(vec![svc.s3_source("fresh", &prefix)]).await;
    let count = |t: &'static str| {
        let app = &app;
        async move { rows(app, &format!("SELECT count(*) FROM fresh.public.{t}")).await }
    };
    assert_eq!(count("n").await, [json!([25])]);
    put("n/part-1.parquet").await;
    put("extra.parquet").await;
    let refresh = |app: &TestApp| {
        app.req(reqwest::Method::POST, "/v1/sources/fresh/refresh")
            .send()
    };
    let resp = refresh(&app).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["tables"], 2, "{body}");
    assert_eq!(count("n").await, [json!([50])]);
    assert_eq!(count("extra").await, [json!([25])]);

    // A file deleted behind Sluice's back: a clean upstream error, quickly, not a hang.
    // (A sum, not count(*): the count comes from the cached footers without a read.)
    store
        .delete(&Path::from(format!("{prefix}/n/part-1.parquet")))
        .await
        .unwrap();
    let resp = app
        .query(
            json!({ "sql": "SELECT sum(n_nationkey) FROM fresh.public.n" }),
            ARROW,
        )
        .await;
    app.expect_error(resp, 502, "upstream_error").await;
    assert!(refresh(&app).await.unwrap().status() == 200);
    assert_eq!(count("n").await, [json!([25])]);
}

/// A moto server of this test's own (the shared one must stay up for the other tests).
struct OwnMoto {
    child: std::process::Child,
    endpoint: String,
}

impl OwnMoto {
    async fn start() -> Option<Self> {
        let moto = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
        if !moto.exists() {
            crate::skip_or_fail(&format!("{} is missing", moto.display()));
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let mut waiting = crate::Waiting::new("the test's own moto to come up");
        while let Err(e) = client.get(format!("{endpoint}/moto-api/")).send().await {
            waiting.pause(e).await;
        }
        client
            .put(format!("{endpoint}/own"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        Some(Self { child, endpoint })
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_web::test]
async fn a_stopped_s3_answers_503_while_other_sources_keep_answering() {
    let Some(mut moto) = OwnMoto::start().await else {
        return;
    };
    let options = opts(&[
        ("endpoint", &moto.endpoint),
        ("region", "us-east-1"),
        ("access_key_id", "testing"),
        ("secret_access_key", S3_SECRET),
        ("allow_http", "true"),
    ]);
    let mut b = AmazonS3Builder::new().with_bucket_name("own");
    for (k, v) in &options {
        b = b.with_config(k.parse().unwrap(), v);
    }
    let store = b.build().unwrap();
    let nation = std::fs::read(testdata().join("tpch/nation.parquet")).unwrap();
    store
        .put(&Path::from("lake/nation.parquet"), PutPayload::from(nation))
        .await
        .unwrap();
    let app = TestApp::spawn_with(|c: &mut Config| {
        c.sources.push(source("s3", "s3://own/lake/", options));
    })
    .await;
    let rows = app.arrow("SELECT * FROM s3.public.nation").await;
    assert_eq!(crate::total_rows(&rows), 25);

    // A steady load on the embedded source while S3 goes away.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let req = app
                .req(reqwest::Method::POST, "/v1/query")
                .header("Accept", ARROW)
                .json(&json!({ "sql": "SELECT count(*) FROM nation" }));
            let stop = Arc::clone(&stop);
            actix_web::rt::spawn(async move {
                let (mut ok, mut failed) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let resp = req.try_clone().unwrap().send().await.unwrap();
                    match resp.status().as_u16() {
                        200 => ok += 1,
                        s => failed.push(format!("{s} {}", resp.text().await.unwrap_or_default())),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let _ = moto.child.kill();
    let _ = moto.child.wait();
    let stopped = Instant::now();
    let s = crate::postgres::wait_source_state(&app, "s3", "unavailable").await;
    let detected = stopped.elapsed();
    assert_eq!(s["replicas"][0]["circuit"], "open", "{s}");
    for _ in 0..5 {
        let resp = app
            .query(
                json!({ "sql": "SELECT * FROM s3.public.nation", "timeout_ms": 5000 }),
                ARROW,
            )
            .await;
        let retry = resp.headers().get("retry-after").cloned();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "source_unavailable", "{body}");
        assert!(retry.is_some(), "Retry-After");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for w in workers {
        let (o, f) = w.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    eprintln!(
        "s3 stopped: detected in {detected:?}; the local source answered {ok} queries meanwhile"
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert!(ok > 0);
}
