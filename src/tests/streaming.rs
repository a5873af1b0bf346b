//! Streaming behaviour: Arrow read back, schema for zero rows, chunked transfer, a failure
//! after the first byte cutting the body, and cancellation by disconnect or DELETE.

use std::time::Duration;

use datafusion::arrow::datatypes::DataType;
use serde_json::json;

use crate::{ARROW, LONG_STREAM_SQL, SLOW_SQL, TestApp, read_arrow, total_rows};

#[actix_web::test]
async fn full_scan_streams_as_arrow_with_plain_strings() {
    let app = TestApp::spawn().await;
    let resp = app
        .query(json!({"sql": "SELECT * FROM lineitem"}), ARROW)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], ARROW);
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    assert!(
        resp.headers()["x-query-id"]
            .to_str()
            .unwrap()
            .starts_with("q_")
    );
    let id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
    let batches = read_arrow(&resp.bytes().await.unwrap());
    assert_eq!(total_rows(&batches), 60_175);
    // Many messages, not one buffered blob.
    assert!(batches.len() > 1, "{} batches", batches.len());
    // The first rows go ahead as a small batch of their own (about 64 KiB of Arrow memory),
    // sliced off a full first batch; the rest of that batch follows as the next message.
    let (lead, rest) = (&batches[0], &batches[1]);
    let whole = lead.num_rows() + rest.num_rows();
    assert!(
        lead.num_rows() >= 1 && lead.num_rows() * 8 <= whole,
        "{} of {whole}",
        lead.num_rows()
    );
    assert!(whole <= 8192);
    let schema = batches[0].schema();
    assert_eq!(schema.fields().len(), 16);
    assert_eq!(
        schema.field_with_name("l_comment").unwrap().data_type(),
        &DataType::Utf8
    );
    let status = app.wait_query(&id, |v| v["state"] == "finished").await;
    assert_eq!(status["state"], "finished");
    assert_eq!(status["rows"], 60_175);
    assert_eq!(status["sources"], json!(["local"]));
    assert!(status["bytes"].as_u64().unwrap() > 1_000_000);
}

#[actix_web::test]
async fn zero_rows_still_carry_the_schema() {
    let app = TestApp::spawn().await;
    let resp = app
        .query(
            json!({"sql": "SELECT l_orderkey, l_comment FROM lineitem WHERE false"}),
            ARROW,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap();
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(
        std::io::Cursor::new(&bytes[..]),
        None,
    )
    .unwrap();
    let schema = reader.schema();
    assert_eq!(schema.field(0).name(), "l_orderkey");
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
    assert_eq!(reader.count(), 0);
}

#[actix_web::test]
async fn failure_after_first_byte_cuts_the_body() {
    let app = TestApp::spawn().await;
    // 60,175 rows with a cap of 50,000: the head (about one batch) goes out first, the cap is
    // crossed later, and the body must end without its terminating chunk.
    let mut resp = app
        .query(
            json!({"sql": "SELECT * FROM lineitem", "max_rows": 50000}),
            ARROW,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
    let mut received = 0usize;
    let outcome = loop {
        match resp.chunk().await {
            Ok(Some(c)) => received += c.len(),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(
        outcome.is_err(),
        "the body ended cleanly after {received} bytes"
    );
    assert!(received > 0);
    let status = app.wait_query(&id, |v| v["state"] != "running").await;
    assert_eq!(status["state"], "failed");
    assert_eq!(status["error"]["code"], "result_too_large");
    app.assert_serving().await;
}

#[actix_web::test]
async fn failure_mid_stream_cuts_the_body_even_for_a_slow_reader() {
    let app = TestApp::spawn().await;
    // ~80 MB before the cap trips; reading slowly keeps the server's chunk channel full, so
    // the abort must wait for room rather than be dropped (which would end the body cleanly).
    let mut resp = app
        .query(
            json!({"sql": "SELECT value, repeat('x', 200) AS pad FROM generate_series(1, 1000000)",
                   "max_rows": 400000}),
            ARROW,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let mut chunks = 0u64;
    let outcome = loop {
        match resp.chunk().await {
            Ok(Some(_)) => {
                // Chunks are whole batches (~1.7 MB): 20 ms each is far slower than the query.
                chunks += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(
        outcome.is_err(),
        "the body ended cleanly after {chunks} chunks"
    );
}

#[actix_web::test]
async fn client_disconnect_cancels_the_query() {
    let app = TestApp::spawn_with(|c| c.limits.max_rows = u64::MAX / 2).await;
    let mut resp = app.query(json!({"sql": LONG_STREAM_SQL}), ARROW).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
    assert!(resp.chunk().await.unwrap().is_some());
    drop(resp);
    let status = app.wait_query(&id, |v| v["state"] != "running").await;
    assert_eq!(status["state"], "cancelled", "{status}");
    // Far fewer rows than the 10 billion the query would produce.
    assert!(status["rows"].as_u64().unwrap() < 100_000_000);
    app.assert_serving().await;
}

#[actix_web::test]
async fn delete_cancels_a_running_query() {
    let app = TestApp::spawn().await;
    let run = app.query(json!({"sql": SLOW_SQL}), ARROW);
    let cancel = async {
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(25)).await;
            if let Some(id) = app.latest_running().await {
                let v = app.cancel(&id).await;
                assert_eq!(v["state"], "cancelled");
                return id;
            }
        }
        panic!("the slow query never showed as running");
    };
    // The slow query ends because it was cancelled (it would run for minutes otherwise).
    let (resp, id) = futures::join!(run, cancel);
    // The cancelled client's own answer says so.
    app.expect_error(resp, 409, "query_cancelled").await;
    let status = app.wait_query(&id, |v| v["state"] != "running").await;
    assert_eq!(status["state"], "cancelled");
    app.assert_serving().await;
}
