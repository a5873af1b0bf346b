//! Criterion micro-benchmarks for the per-query work Sluice adds around DataFusion:
//!
//! - `parse`: parse and read-only validation of one statement;
//! - `plan`: parse, validate, resolve, bind and optimize, to a physical plan, over the embedded
//!   TPC-H tables (testdata/tpch);
//! - `encode`: one 8,192-row `lineitem` batch cast from string views to plain strings, then
//!   encoded in each result format;
//! - `supervisor`: the routing check each query makes (`AcquireSources`) with 1 and 8 sources;
//! - `governance`: what each request pays for keys, grants and limits: authenticating a known
//!   key (its audit record included), the grant check on a TPC-H plan, planning through a
//!   reader's granted view against the whole catalog, the rate limiter; and, with
//!   `SLUICE_BENCH_METADATA_URL` set to an empty PostgreSQL database, audit batches written
//!   to the metadata store;
//! - `identity`: a bearer JWT (RS256, RSA 2048 and ES256) checked by `[auth.oidc]`: the first
//!   time (signature and claims: what a new token costs) and again (the verified-token
//!   cache: what every later request with it costs), against a key set served on loopback;
//!   signatures by ring as in the server, or by jsonwebtoken's pure-Rust backend with
//!   `SLUICE_BENCH_JWT_BACKEND=rust_crypto`.
//!
//! Run by hand: `cargo bench --bench micro` (one group: `cargo bench --bench micro -- plan`).
//! Reports land in target/criterion; figures worth keeping go to benches/RESULTS.md.

// Setup that fails should stop the benchmark loudly; this is not a server path.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice::format::Format;
use sluice_actors::Router;
use sluice_actors::routing::gate::FairGate;
use sluice_actors::routing::stats::{HealthPolicy, ReplicaStats};
use sluice_actors::routing::{Avoid, Replica, SourceRoute};
use sluice_actors::sources::object_store::ObjectStoreConnector;
use sluice_actors::sources::replicas_of;
use sluice_planner::output::{plain_schema, to_plain};
use sluice_planner::{Planner, PlannerOptions};

const POINT: &str = "SELECT n_name, n_regionkey FROM nation WHERE n_nationkey = 7";

/// The statements planned: a point lookup and TPC-H queries from one table to eight.
fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("point", POINT),
        ("q01", include_str!("tpch/q01.sql")),
        ("q03", include_str!("tpch/q03.sql")),
        ("q05", include_str!("tpch/q05.sql")),
        ("q08", include_str!("tpch/q08.sql")),
        ("q18", include_str!("tpch/q18.sql")),
        ("q21", include_str!("tpch/q21.sql")),
    ]
}

fn data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tpch")
}

fn connector() -> ObjectStoreConnector {
    let location = format!("file://{}/", data_dir().display());
    ObjectStoreConnector::new("local", &location, &BTreeMap::new()).expect("the testdata folder")
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, sql) in statements() {
        group.bench_with_input(BenchmarkId::from_parameter(name), sql, |b, sql| {
            b.iter(|| sluice_planner::validate::parse_single_read_only(black_box(sql)));
        });
    }
    group.finish();
}

/// A planner over the embedded TPC-H tables.
fn tpch_planner(rt: &tokio::runtime::Runtime) -> Planner {
    let planner = Planner::new(&PlannerOptions {
        default_catalog: Some("local".into()),
        default_schema: Some("public".into()),
        ..PlannerOptions::default()
    })
    .expect("a planner");
    let conn = connector();
    rt.block_on(planner.load_parquet_source(
        sluice_planner::ParquetSourceSpec {
            catalog: "local".into(),
            schema: "public".into(),
            base: conn.engine_base().clone(),
            tables: vec![],
            pushdown_filters: false,
        },
        conn.store(),
    ))
    .expect("the TPC-H tables");
    planner
}

fn plan(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let planner = tpch_planner(&rt);
    let mut group = c.benchmark_group("plan");
    for (name, sql) in statements() {
        group.bench_with_input(BenchmarkId::from_parameter(name), sql, |b, sql| {
            b.to_async(&rt).iter(|| async {
                planner
                    .plan(black_box(sql), None, Some(1_000_000))
                    .await
                    .expect("plans")
            });
        });
    }
    group.finish();
}

/// The first 8,192 rows of lineitem, as the Parquet reader hands them over (string views).
fn lineitem_batch() -> RecordBatch {
    let file = std::fs::File::open(data_dir().join("lineitem.parquet")).expect("lineitem");
    let mut reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("a Parquet file")
        .with_batch_size(8192)
        .build()
        .expect("a reader");
    reader.next().expect("one batch").expect("decodes")
}

fn encode(c: &mut Criterion) {
    let batch = lineitem_batch();
    let target = plain_schema(&batch.schema());
    let plain = to_plain(batch.clone(), &target).expect("casts");
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(batch.num_rows() as u64));
    group.bench_function("views_to_plain", |b| {
        b.iter(|| to_plain(black_box(batch.clone()), &target).expect("casts"));
    });
    for format in [
        Format::ArrowStream,
        Format::Json,
        Format::NdJson,
        Format::Csv,
        Format::Parquet,
    ] {
        let id = BenchmarkId::from_parameter(format.content_type());
        group.bench_with_input(id, &plain, |b, plain| {
            // One batch in a stream already started, as in the middle of a result.
            let mut encoder = format.encoder(&target).expect("an encoder");
            encoder.start().expect("starts");
            b.iter(|| encoder.encode(black_box(plain)).expect("encodes"));
        });
    }
    group.finish();
}

/// The routing decision per statement: pick a replica by score (power of two choices) and
/// pin it with a lease, with 1 and 16 replicas; and the whole acquire of one source.
fn routing(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let mut group = c.benchmark_group("routing");
    let connector: Arc<dyn sluice_actors::Connector> = Arc::new(connector());
    for replicas in [1_usize, 16] {
        let router = Router::new();
        let policy = HealthPolicy::for_interval(Duration::from_secs(10));
        let route = SourceRoute {
            name: "pg".into(),
            connector: Arc::clone(&connector),
            replicas: (0..replicas)
                .map(|index| {
                    let handle = replicas_of(&connector).remove(0);
                    let stats = ReplicaStats::new(policy);
                    // Distinct latencies so scores differ, as they do in life.
                    stats.record_statement_ok(Duration::from_micros(500 + 100 * index as u64));
                    Arc::new(Replica {
                        source: "pg".into(),
                        index,
                        display: handle.display,
                        executor: None,
                        probe: handle.probe,
                        stats,
                    })
                })
                .collect(),
            fallback: None,
            gate: Some(FairGate::new(64, 256, Duration::from_secs(10))),
        };
        router.publish(Arc::new(route));
        group.bench_function(BenchmarkId::new("decide", replicas), |b| {
            b.iter(|| black_box(router.decide("pg")));
        });
        let names = vec!["pg".to_owned()];
        let avoid = Avoid::new();
        group.bench_function(BenchmarkId::new("acquire_with_gate", replicas), |b| {
            b.iter(|| {
                rt.block_on(async {
                    black_box(router.acquire(&names, "key", None, &avoid).await.is_ok())
                })
            });
        });
    }
    group.finish();
}

fn governance(c: &mut Criterion) {
    use sluice::governance::keys::NewKey;
    use sluice::governance::{Client, Governance, Principal};
    use sluice_schemas::api::{Grant, KeyRole};

    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let planner = tpch_planner(&rt);
    let config = sluice_schemas::Config::default();
    let gov = rt
        .block_on(Governance::start(&config, rt.handle()))
        .expect("an in-memory store");
    let reader = NewKey {
        role: KeyRole::Reader,
        grants: vec![Grant {
            source: "local".into(),
            schema: "public".into(),
            table: "*".into(),
        }],
        rate_limit: Some(sluice_schemas::api::RateLimit {
            per_second: 1_000_000_000,
            burst: None,
        }),
        ..NewKey::admin("bench")
    };
    let (record, secret) = rt.block_on(gov.create_key(reader)).expect("a key");
    let secret = secrecy::ExposeSecret::expose_secret(&secret).to_owned();
    let client = Client {
        addr: Some("127.0.0.1".into()),
        user_agent: Some("bench".into()),
        ..Client::default()
    };
    let mut group = c.benchmark_group("governance");
    group.bench_function("authenticate_cached_key", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(gov.authenticate(Some(black_box(&secret)), &client).await)
                .expect("a valid key")
        });
    });
    group.bench_function("rate_limiter", |b| {
        b.iter(|| {
            gov.limiter
                .check_rate(black_box(&record))
                .expect("under the limit")
        });
    });
    let principal = rt
        .block_on(gov.authenticate(Some(&secret), &client))
        .expect("a valid key");
    assert!(matches!(principal, Principal::Key(_)));
    let restricted = principal.planner(
        &planner,
        &gov.policies.resolve(&principal),
        &gov.anonymous_views,
    );
    let grants = restricted.grants().expect("a reader").clone();
    for (name, sql) in statements() {
        let planned = rt
            .block_on(planner.plan(sql, None, Some(1_000_000)))
            .expect("plans");
        group.bench_with_input(BenchmarkId::new("grant_check", name), &planned, |b, p| {
            b.iter(|| {
                grants
                    .check_plan(black_box(&p.logical), "local", "public", |_| false)
                    .expect("granted")
            });
        });
    }
    for (name, sql) in [("point", POINT), ("q05", include_str!("tpch/q05.sql"))] {
        group.bench_with_input(
            BenchmarkId::new("plan_whole_catalog", name),
            sql,
            |b, sql| {
                b.to_async(&rt).iter(|| async {
                    planner
                        .plan(black_box(sql), None, Some(1_000_000))
                        .await
                        .expect("plans")
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("plan_granted_view", name),
            sql,
            |b, sql| {
                b.to_async(&rt).iter(|| async {
                    restricted
                        .plan(black_box(sql), None, Some(1_000_000))
                        .await
                        .expect("plans")
                });
            },
        );
    }
    if let Ok(url) = std::env::var("SLUICE_BENCH_METADATA_URL") {
        use sluice::governance::records::{AuditKind, AuditRecord, QueryAudit};
        use sluice::governance::store::MetadataStore as _;
        let store = rt
            .block_on(sluice::governance::store::postgres::PgStore::connect(
                &url, 2,
            ))
            .expect("the metadata database");
        const BATCH: usize = 1_000;
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function("audit_insert_postgres_batch_1000", |b| {
            b.to_async(&rt).iter(|| async {
                let batch: Vec<AuditRecord> = (0..BATCH)
                    .map(|i| {
                        let mut r =
                            AuditRecord::new(AuditKind::Query, Some(record.id.clone()), "ok");
                        r.client = Some("127.0.0.1".into());
                        r.query = Some(QueryAudit {
                            query_id: format!("q_{i}"),
                            operation: "query".into(),
                            sql: POINT.into(),
                            sql_sha256: "0".repeat(64),
                            tables: vec!["local.public.nation".into()],
                            sources: vec!["local".into()],
                            rows: 1,
                            bytes: 100,
                            duration_ms: 1,
                            error_code: None,
                        });
                        r
                    })
                    .collect();
                store.write_audit(&batch).await.expect("written");
            });
        });
    } else {
        eprintln!("governance/audit_insert_postgres: set SLUICE_BENCH_METADATA_URL to run it");
    }
    group.finish();
}

/// A key set served on loopback (one HTTP/1.1 answer per connection), for `Oidc` to fetch.
fn serve_jwks(rt: &tokio::runtime::Runtime, jwks: String) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    rt.spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let body = jwks.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

/// A private key openssl makes, DER: RSA as PKCS#1, EC as PKCS#8 (what jsonwebtoken reads).
fn openssl_key(script: &str) -> Vec<u8> {
    let out = std::process::Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{script}");
    out.stdout
}

fn identity(c: &mut Criterion) {
    use jsonwebtoken::jwk::{Jwk, JwkSet};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use sluice::governance::oidc::Oidc;

    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    // ring verifies, as in the server: installed before anything here uses jsonwebtoken (the
    // JWK helpers below would settle the process on the pure-Rust backend). With
    // SLUICE_BENCH_JWT_BACKEND=rust_crypto, the pure-Rust backend verifies instead.
    if std::env::var("SLUICE_BENCH_JWT_BACKEND").as_deref() == Ok("rust_crypto") {
        jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
            .install_default()
            .expect("the first provider");
    } else {
        assert!(sluice::governance::oidc::verify::install(), "ring verifies");
    }
    let rsa = EncodingKey::from_rsa_der(&openssl_key(
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
         | openssl rsa -traditional -outform DER",
    ));
    let ec = EncodingKey::from_ec_der(&openssl_key(
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
         | openssl pkcs8 -topk8 -nocrypt -outform DER",
    ));
    let mut keys = Vec::new();
    let mut jwks_keys = BTreeMap::new();
    for (kid, key, alg) in [
        ("rs", &rsa, Algorithm::RS256),
        ("es", &ec, Algorithm::ES256),
    ] {
        let mut jwk = Jwk::from_encoding_key(key, alg).expect("a JWK");
        jwk.common.key_id = Some(kid.into());
        jwks_keys.insert(kid, jwk.clone());
        keys.push(jwk);
    }
    let base = serve_jwks(&rt, serde_json::to_string(&JwkSet { keys }).expect("JSON"));
    let resource = "https://sluice.example.com";
    let config: sluice_schemas::OidcConfig = serde_json::from_value(serde_json::json!({
        "issuers": [{"issuer": base, "jwks_uri": format!("{base}/jwks")}],
        "rules": [{"claim": "roles", "value": "analyst",
                   "grants": [{"source": "local", "schema": "public", "table": "*"}]}],
    }))
    .expect("a config");
    let oidc = Oidc::new(&config, Some(resource), &["sql.read".into()], rt.handle()).expect("OIDC");
    rt.block_on(oidc.start(
        Duration::from_secs(3600),
        Duration::from_secs(3600),
        rt.handle(),
    ));
    let now = jsonwebtoken::get_current_timestamp();
    let token = |n: u64, kid: &str, alg: Algorithm, key: &EncodingKey| {
        let header = Header {
            kid: Some(kid.into()),
            typ: Some("at+jwt".into()),
            ..Header::new(alg)
        };
        let claims = serde_json::json!({"iss": base, "aud": resource, "sub": format!("user-{n}"),
            "exp": now + 3600, "iat": now, "scope": "sql.read", "roles": ["analyst"]});
        jsonwebtoken::encode(&header, &claims, key).expect("signed")
    };
    let mut group = c.benchmark_group("identity");
    for (kid, alg, key) in [
        ("rs", Algorithm::RS256, &rsa),
        ("es", Algorithm::ES256, &ec),
    ] {
        let name = format!("{alg:?}");
        let again = token(0, kid, alg, key);
        rt.block_on(oidc.authenticate(&again)).expect("valid");
        group.bench_function(BenchmarkId::new("jwt_cached", &name), |b| {
            b.to_async(&rt)
                .iter(|| async { oidc.authenticate(black_box(&again)).await.expect("valid") });
        });
        // Its parts: the signature alone, then jsonwebtoken's whole decode (signature, base64,
        // claims JSON and their checks); the rest of a first sight is Sluice's.
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwks_keys[kid]).expect("a key");
        let (message, signature) = again.rsplit_once('.').expect("a JWS");
        group.bench_function(BenchmarkId::new("signature_only", &name), |b| {
            b.iter(|| {
                jsonwebtoken::crypto::verify(
                    black_box(signature),
                    black_box(message.as_bytes()),
                    &decoding,
                    alg,
                )
                .expect("verifies")
            });
        });
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_audience(&[resource]);
        validation.set_issuer(&[&base]);
        group.bench_function(BenchmarkId::new("jsonwebtoken_decode", &name), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(black_box(&again), &decoding, &validation)
                    .expect("valid")
            });
        });
        // A new token each time: signed outside the measurement, in batches.
        let mut n = 1;
        group.bench_function(BenchmarkId::new("jwt_first_time", &name), |b| {
            b.iter_batched(
                || {
                    n += 1;
                    token(n, kid, alg, key)
                },
                |t| rt.block_on(oidc.authenticate(&t)).expect("valid"),
                criterion::BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, parse, plan, encode, routing, governance, identity);
criterion_main!(benches);
