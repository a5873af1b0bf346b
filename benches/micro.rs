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
//!   to the metadata store.
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
    let restricted = principal.planner(&planner);
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

criterion_group!(benches, parse, plan, encode, routing, governance);
criterion_main!(benches);
