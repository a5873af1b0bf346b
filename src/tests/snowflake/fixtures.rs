//! What fakesnow never sends, through a scripted endpoint: result chunks (bounded prefetch,
//! in order, an expired URL), Snowflake's other encodings (scaled integers, each timestamp
//! encoding, JSON rowsets and chunks), polling, token renewal with the master token, error
//! bodies; and a result recorded from a real driver exchange
//! (`testdata/snowflake/recorded_*.json`).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use datafusion::arrow::array::{
    Array, ArrayRef, Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::ipc::writer::StreamWriter;
use futures::TryStreamExt;
use serde_json::{Value, json};
use sluice_actors::sources::snowflake::client::{Client, ClientConfig, Credentials};
use sluice_actors::sources::snowflake::executor::SfExecutor;
use sluice_planner::federation::{
    ErrorClass, Pulled, RemoteError, RemoteExecutor, StatementContext,
};

use super::server::{Canned, SfServer};
use crate::testdata;

fn executor(server: &SfServer, prefetch: usize) -> SfExecutor {
    let client = Client::new(
        "wh",
        ClientConfig {
            base: server.url.parse().unwrap(),
            account: "test".into(),
            user: "test".into(),
            credentials: Credentials::Password("pw".into()),
            warehouse: None,
            database: None,
            schema: None,
            role: None,
            request_timeout: Duration::from_secs(10),
        },
    )
    .unwrap();
    SfExecutor::new("wh", "test".into(), Arc::new(client), 2, prefetch)
}

fn login(server: &SfServer, token: &str) {
    server.script(
        "/session/v1/login-request",
        Canned::json(&json!({"success": true, "data": {
            "token": token, "masterToken": format!("master-{token}"),
            "validityInSeconds": 3600, "masterValidityInSeconds": 14400}})),
    );
}

/// Runs `sql` through the executor and returns the batches, or the error.
async fn execute(
    exec: &SfExecutor,
    schema: SchemaRef,
) -> Result<(Vec<RecordBatch>, Arc<Pulled>), RemoteError> {
    let pulled = Arc::new(Pulled::default());
    let ctx = StatementContext {
        query_id: "q1".into(),
        deadline: None,
        pulled: Arc::clone(&pulled),
        span: tracing::Span::none(),
        traceparent: None,
    };
    let stream = exec.execute("SELECT 1", schema, &ctx)?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| {
        RemoteError::find(&e)
            .cloned()
            .unwrap_or_else(|| panic!("not a RemoteError: {e}"))
    })?;
    Ok((batches, pulled))
}

fn show(batches: &[RecordBatch]) -> Vec<String> {
    crate::cells(batches)
        .into_iter()
        .map(|r| r.join(" | "))
        .collect()
}

fn ipc(batch: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
    drop(w);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn epoch_struct(
    epochs: &[Option<i64>],
    fractions: Option<&[Option<i32>]>,
    zones: Option<&[i32]>,
) -> ArrayRef {
    let mut fields: Vec<(Arc<Field>, ArrayRef)> = vec![(
        Arc::new(Field::new("epoch", DataType::Int64, true)),
        Arc::new(Int64Array::from(epochs.to_vec())),
    )];
    if let Some(f) = fractions {
        fields.push((
            Arc::new(Field::new("fraction", DataType::Int32, true)),
            Arc::new(Int32Array::from(f.to_vec())),
        ));
    }
    if let Some(z) = zones {
        fields.push((
            Arc::new(Field::new("timezone", DataType::Int32, true)),
            Arc::new(Int32Array::from(z.to_vec())),
        ));
    }
    // As the emulator and Snowflake send a NULL timestamp: a valid struct, null children.
    Arc::new(StructArray::from(fields))
}

/// A part of the result in Snowflake's own encodings: `AMOUNT` NUMBER(6,2) as scaled int16,
/// `QTY` NUMBER(3,0) as int8, `NTZ` TIMESTAMP_NTZ(3) as int64 milliseconds, `LTZ`
/// TIMESTAMP_LTZ(9) as {epoch, fraction}, `TZ3` TIMESTAMP_TZ(3) as {epoch in ms, timezone},
/// `TZ9` TIMESTAMP_TZ(9) as {epoch, fraction, timezone}, `T` TIME(6) as int64 µs, `S` text.
fn part(amounts: &[Option<i16>], first: bool) -> RecordBatch {
    let n = amounts.len();
    let pick = |a: [Option<i64>; 3], i: usize| if first { a[i] } else { Some(i as i64) };
    let ntz: Vec<Option<i64>> = (0..n)
        .map(|i| pick([Some(1_704_164_645_123), Some(0), Some(-1)], i))
        .collect();
    let ltz_e: Vec<Option<i64>> = (0..n)
        .map(|i| pick([Some(1_704_164_645), Some(0), None], i))
        .collect();
    let ltz_f: Vec<Option<i32>> = (0..n)
        .map(|i| {
            if first && i == 2 {
                None
            } else {
                Some(123_456_789)
            }
        })
        .collect();
    let tz3: Vec<Option<i64>> = (0..n)
        .map(|i| pick([Some(1_704_164_645_123), Some(-1), None], i))
        .collect();
    let zones: Vec<i32> = (0..n).map(|i| 1440 + 330 * i as i32).collect();
    let tz9_e: Vec<Option<i64>> = (0..n)
        .map(|i| pick([Some(1_625_097_599), Some(0), None], i))
        .collect();
    let tz9_f: Vec<Option<i32>> = (0..n)
        .map(|i| {
            if first && i == 2 {
                None
            } else {
                Some(500_000_000)
            }
        })
        .collect();
    let t: Vec<Option<i64>> = (0..n)
        .map(|i| pick([Some(45_296_789_000), Some(0), None], i))
        .collect();
    let s: Vec<Option<String>> = (0..n)
        .map(|i| (i != 2 || !first).then(|| format!("row {i}")))
        .collect();
    let qty: Vec<Option<i8>> = (0..n)
        .map(|i| pick([Some(127), Some(-128), None], i).map(|v| v as i8))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int16Array::from(amounts.to_vec())),
        Arc::new(Int8Array::from(qty)),
        Arc::new(Int64Array::from(ntz)),
        epoch_struct(&ltz_e, Some(&ltz_f), None),
        epoch_struct(&tz3, None, Some(&zones)),
        epoch_struct(&tz9_e, Some(&tz9_f), Some(&zones)),
        Arc::new(Int64Array::from(t)),
        Arc::new(StringArray::from(s)),
    ];
    let fields: Vec<Field> = ["AMOUNT", "QTY", "NTZ", "LTZ", "TZ3", "TZ9", "T", "S"]
        .iter()
        .zip(&columns)
        .map(|(n, c)| Field::new(*n, c.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn rowtype() -> Value {
    json!([
        {"name": "AMOUNT", "type": "fixed", "precision": 6, "scale": 2, "nullable": true},
        {"name": "QTY", "type": "fixed", "precision": 3, "scale": 0, "nullable": true},
        {"name": "NTZ", "type": "timestamp_ntz", "scale": 3, "nullable": true},
        {"name": "LTZ", "type": "timestamp_ltz", "scale": 9, "nullable": true},
        {"name": "TZ3", "type": "timestamp_tz", "scale": 3, "nullable": true},
        {"name": "TZ9", "type": "timestamp_tz", "scale": 9, "nullable": true},
        {"name": "T", "type": "time", "scale": 6, "nullable": true},
        {"name": "S", "type": "text", "nullable": true},
    ])
}

fn expected_schema() -> SchemaRef {
    let utc = Some("UTC".into());
    Arc::new(Schema::new(vec![
        Field::new("amount", DataType::Decimal128(6, 2), true),
        Field::new("qty", DataType::Int64, true),
        Field::new(
            "ntz",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new(
            "ltz",
            DataType::Timestamp(TimeUnit::Nanosecond, utc.clone()),
            true,
        ),
        Field::new(
            "tz3",
            DataType::Timestamp(TimeUnit::Millisecond, utc.clone()),
            true,
        ),
        Field::new("tz9", DataType::Timestamp(TimeUnit::Nanosecond, utc), true),
        Field::new("t", DataType::Time64(TimeUnit::Microsecond), true),
        Field::new("s", DataType::Utf8, true),
    ]))
}

#[actix_web::test]
async fn chunks_stream_in_order_with_bounded_prefetch_and_every_encoding_decodes() {
    let server = SfServer::start(None).await;
    login(&server, "t1");
    let chunks: Vec<Value> = (0..6)
        .map(|i| {
            let amounts: Vec<Option<i16>> = (0..4).map(|j| Some((i * 4 + j) as i16)).collect();
            server.chunk(&format!("c{i}"), gzip(&ipc(&part(&amounts, false))), i == 3);
            json!({"url": format!("{}/chunks/c{i}", server.url), "rowCount": 4, "uncompressedSize": 1000})
        })
        .collect();
    server.chunk_delay(Duration::from_millis(40));
    let result = json!({"success": true, "data": {
        "queryId": "01b-query", "queryResultFormat": "arrow", "rowtype": rowtype(),
        "rowsetBase64": b64(&ipc(&part(&[Some(12345), Some(-1), None], true))),
        "chunks": chunks, "chunkHeaders": {"x-amz-server-side-encryption-customer-key": "k"},
        "qrmk": "unused"}});
    server.script("/queries/v1/query-request", Canned::json(&result));
    // The expired chunk's URL is asked for again through the result.
    server.script("/queries/01b-query/result", Canned::json(&result));

    let exec = executor(&server, 2);
    let (batches, pulled) = execute(&exec, expected_schema()).await.unwrap();
    let rows = show(&batches);
    assert_eq!(rows.len(), 3 + 24);
    assert_eq!(
        rows[..3],
        [
            "123.45 | 127 | 2024-01-02T03:04:05.123 | 2024-01-02T03:04:05.123456789Z | 2024-01-02T03:04:05.123Z | 2021-06-30T23:59:59.500Z | 12:34:56.789 | row 0",
            "-0.01 | -128 | 1970-01-01T00:00:00 | 1970-01-01T00:00:00.123456789Z | 1969-12-31T23:59:59.999Z | 1970-01-01T00:00:00.500Z | 00:00:00 | row 1",
            "NULL | NULL | 1969-12-31T23:59:59.999 | NULL | NULL | NULL | NULL | NULL",
        ]
    );
    // In order: the chunks' amounts run 0.00, 0.01, ... 0.23.
    let amounts: Vec<String> = rows[3..]
        .iter()
        .map(|r| r.split(" | ").next().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..24).map(|i| format!("0.{i:02}")).collect();
    assert_eq!(amounts, expected);
    let max = server.max_chunks_in_flight();
    assert!(
        (2..=2).contains(&max),
        "chunk requests in flight at once: {max} (prefetch 2)"
    );
    assert_eq!(
        server.to("/queries/01b-query/result").len(),
        1,
        "one renewal of URLs"
    );
    assert_eq!(
        server
            .records()
            .iter()
            .filter(|r| r.path.starts_with("/chunks/"))
            .count(),
        7,
        "six chunks, one of them twice"
    );
    let (statements, _, bytes) = pulled.snapshot();
    assert_eq!(
        statements, 0,
        "statements are counted by the scan, not the executor"
    );
    assert!(bytes > 0);
}

#[actix_web::test]
async fn a_value_that_does_not_fit_is_an_error_naming_its_column() {
    let server = SfServer::start(None).await;
    login(&server, "t1");
    server.script(
        "/queries/v1/query-request",
        Canned::json(&json!({"success": true, "data": {
            "queryId": "q", "queryResultFormat": "arrow", "rowtype": rowtype(),
            "rowsetBase64": b64(&ipc(&part(&[Some(12345), Some(-1), None], true)))}})),
    );
    let mut schema = (*expected_schema()).clone();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| (**f).clone()).collect();
    // 123.45 does not fit NUMBER(4, 2).
    fields[0] = Field::new("amount", DataType::Decimal128(4, 2), true);
    schema = Schema::new(fields);
    let err = execute(&executor(&server, 2), Arc::new(schema))
        .await
        .unwrap_err();
    assert!(err.message.contains("amount"), "{err:?}");
    assert_eq!(err.class, ErrorClass::Data);
}

#[actix_web::test]
async fn json_results_and_json_chunks_decode_as_arrow_ones() {
    let server = SfServer::start(None).await;
    login(&server, "t1");
    server.chunk(
        "j0",
        br#"["3","x","1704164645.500000000 1770"],["4",null,null]"#.to_vec(),
        false,
    );
    server.script(
        "/queries/v1/query-request",
        Canned::json(&json!({"success": true, "data": {
            "queryId": "q", "queryResultFormat": "json",
            "rowtype": [
                {"name": "N", "type": "fixed", "precision": 10, "scale": 0},
                {"name": "S", "type": "text"},
                {"name": "TS", "type": "timestamp_tz", "scale": 9}],
            "rowset": [["1", "it's", "1704164645.000000000 1440"], ["2", null, null]],
            "chunks": [{"url": format!("{}/chunks/j0", server.url), "rowCount": 2}]}})),
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("n", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            true,
        ),
    ]));
    let (batches, _) = execute(&executor(&server, 2), schema).await.unwrap();
    assert_eq!(
        show(&batches),
        [
            "1 | it's | 2024-01-02T03:04:05Z",
            "2 | NULL | NULL",
            "3 | x | 2024-01-02T03:04:05.500Z",
            "4 | NULL | NULL",
        ]
    );
}

#[actix_web::test]
async fn a_long_statement_is_polled_until_done() {
    let server = SfServer::start(None).await;
    login(&server, "t1");
    server.script(
        "/queries/v1/query-request",
        Canned::json(&json!({"success": false, "code": "333334",
            "message": "Asynchronous execution in progress.",
            "data": {"getResultUrl": "/queries/q9/result", "queryId": "q9"}})),
    );
    server.script(
        "/queries/q9/result",
        Canned::json(&json!({"success": false, "code": "333333",
            "message": "Query execution in progress.",
            "data": {"getResultUrl": "/queries/q9/result", "queryId": "q9"}})),
    );
    server.script(
        "/queries/q9/result",
        Canned::json(
            &json!({"success": true, "data": {"queryId": "q9", "queryResultFormat": "json",
            "rowtype": [{"name": "N", "type": "fixed", "precision": 18, "scale": 0}],
            "rowset": [["42"]]}}),
        ),
    );
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    let (batches, _) = execute(&executor(&server, 2), schema).await.unwrap();
    assert_eq!(show(&batches), ["42"]);
    assert_eq!(server.to("/queries/q9/result").len(), 2);
}

#[actix_web::test]
async fn an_expired_token_is_renewed_with_the_master_token() {
    let server = SfServer::start(None).await;
    login(&server, "t1");
    let answer = json!({"success": true, "data": {"queryId": "q", "queryResultFormat": "json",
        "rowtype": [{"name": "N", "type": "fixed", "precision": 18, "scale": 0}], "rowset": [["1"]]}});
    server.script(
        "/queries/v1/query-request",
        Canned::json(&json!({"success": false, "code": "390112",
            "message": "Your session has expired. Please login again.", "data": null})),
    );
    server.script("/queries/v1/query-request", Canned::json(&answer));
    server.script(
        "/session/token-request",
        Canned::json(&json!({"success": true, "data": {"sessionToken": "t2",
            "validityInSecondsST": 3600, "masterToken": "master-t2"}})),
    );
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    let (batches, _) = execute(&executor(&server, 2), schema).await.unwrap();
    assert_eq!(show(&batches), ["1"]);
    let renew = server.to("/session/token-request");
    assert_eq!(renew.len(), 1);
    assert_eq!(renew[0].authorization, "Snowflake Token=\"master-t1\"");
    assert_eq!(renew[0].body["oldSessionToken"], "t1");
    let queries = server.to("/queries/v1/query-request");
    assert_eq!(queries[1].authorization, "Snowflake Token=\"t2\"");
    assert_eq!(
        server.to("/session/v1/login-request").len(),
        1,
        "renewed, not logged in again"
    );
}

#[actix_web::test]
async fn a_recorded_error_body_is_the_source_neutral_error_with_code_and_state() {
    let server = SfServer::start(None).await;
    login(&server, "t1");
    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("snowflake/recorded_error.json")).unwrap(),
    )
    .unwrap();
    server.script("/queries/v1/query-request", Canned::json(&recorded));
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    let err = execute(&executor(&server, 2), schema).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Upstream);
    assert_eq!(
        err.message,
        "snowflake error 002003 (42S02): Catalog Error: Table with name NO_SUCH_TABLE does not exist!"
    );
    assert!(
        server.to("/queries/v1/abort-request").is_empty(),
        "the statement had ended"
    );
}

#[actix_web::test]
async fn a_result_recorded_from_a_driver_exchange_decodes_exactly() {
    let server = SfServer::start(None).await;
    login(&server, "t1");
    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("snowflake/recorded_typed_result.json")).unwrap(),
    )
    .unwrap();
    server.script("/queries/v1/query-request", Canned::json(&recorded));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Decimal128(38, 0), true),
        Field::new("name", DataType::Utf8, true),
        Field::new("balance", DataType::Decimal128(10, 2), true),
        Field::new("active", DataType::Boolean, true),
        Field::new(
            "created",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new("score", DataType::Float64, true),
    ]));
    let (batches, _) = execute(&executor(&server, 2), schema).await.unwrap();
    assert_eq!(
        show(&batches),
        [
            "1 | alice | 10.50 | true | 2024-01-02T03:04:05 | 1.5",
            "2 | bob | NULL | false | 2024-02-03T04:05:06 | NULL",
            "3 | carol | -3.25 | true | NULL | 2.75",
        ]
    );
}

#[actix_web::test]
async fn statements_beyond_max_concurrency_wait_for_a_slot() {
    let server = SfServer::start(None).await;
    for i in 0..3 {
        login(&server, &format!("t{i}"));
    }
    for _ in 0..3 {
        server.script(
            "/queries/v1/abort-request",
            Canned::json(&json!({"success": true})),
        );
    }
    // Every statement is held by the warehouse until aborted.
    server.hold("SELECT 1");
    let exec = Arc::new(executor(&server, 2));
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let exec = Arc::clone(&exec);
            let schema = Arc::clone(&schema);
            actix_web::rt::spawn(async move { execute(&exec, schema).await.map(|_| ()) })
        })
        .collect();
    server
        .wait_for("two statements", |r| {
            r.iter()
                .filter(|q| q.path == "/queries/v1/query-request")
                .count()
                == 2
        })
        .await;
    // The third waits for a slot without being sent.
    for _ in 0..200 {
        if exec.load().1 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(exec.load(), (2, 1, 2), "(running, waiting, slots)");
    assert_eq!(server.to("/queries/v1/query-request").len(), 2);
    for t in &tasks {
        t.abort();
    }
    // Dropping the running ones aborts them in Snowflake.
    server
        .wait_for("two aborts", |r| {
            r.iter()
                .filter(|q| q.path == "/queries/v1/abort-request")
                .count()
                == 2
        })
        .await;
}
