//! Each `Accept` gives its format, with the same rows, and a header/schema for zero rows.

use bytes::Bytes;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

use crate::{TestApp, total_rows};

const SQL: &str = "SELECT n_nationkey, n_name, n_regionkey FROM nation ORDER BY n_nationkey";

#[actix_web::test]
async fn json_is_columns_and_rows() {
    let app = TestApp::spawn().await;
    for accept in ["application/json", "*/*"] {
        let resp = app.query(json!({"sql": SQL}), accept).await;
        assert_eq!(resp.headers()["content-type"], "application/json");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            v["columns"][1],
            json!({"name": "n_name", "type": "Utf8", "nullable": false})
        );
        assert_eq!(v["rows"].as_array().unwrap().len(), 25);
        assert_eq!(v["rows"][7], json!([7, "GERMANY", 3]));
    }
    // No Accept at all is JSON too.
    let resp = app
        .req(reqwest::Method::POST, "/v1/query")
        .json(&json!({"sql": "SELECT 1 AS one"}))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["rows"], json!([[1]]));
    // Big integers and wide decimals are strings; others are numbers.
    let resp = app
        .query(
            json!({"sql": "SELECT 9007199254740993 AS big, 42 AS small, \
                   CAST(1234567890123456.78 AS DECIMAL(20,2)) AS wide, CAST(1.5 AS DECIMAL(5,1)) AS narrow"}),
            "application/json",
        )
        .await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["rows"][0],
        json!(["9007199254740993", 42, "1234567890123456.78", 1.5])
    );
}

#[actix_web::test]
async fn ndjson_csv_and_plain_text_body() {
    let app = TestApp::spawn().await;
    let resp = app.query(json!({"sql": SQL}), "application/x-ndjson").await;
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 25);
    assert_eq!(
        lines[0],
        json!({"n_nationkey": 0, "n_name": "ALGERIA", "n_regionkey": 0})
    );

    let resp = app
        .req(reqwest::Method::POST, "/v1/query")
        .header("Content-Type", "text/plain")
        .header("Accept", "text/csv")
        .body(SQL)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/csv");
    let text = resp.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("n_nationkey,n_name,n_regionkey"));
    assert_eq!(lines.next(), Some("0,ALGERIA,0"));
    assert_eq!(text.lines().count(), 26);

    // application/sql works too, and a CSV of no rows is its header.
    let resp = app
        .req(reqwest::Method::POST, "/v1/query")
        .header("Content-Type", "application/sql")
        .header("Accept", "text/csv")
        .body("SELECT n_name FROM nation WHERE false")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "n_name\n");
}

#[actix_web::test]
async fn parquet_is_a_readable_file() {
    let app = TestApp::spawn().await;
    let resp = app
        .query(
            json!({"sql": "SELECT * FROM lineitem"}),
            "application/vnd.apache.parquet",
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.apache.parquet"
    );
    let bytes: Bytes = resp.bytes().await.unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(total_rows(&batches), 60_175);
    // An empty result is still a valid file with the schema.
    let resp = app
        .query(
            json!({"sql": "SELECT n_name FROM nation WHERE false"}),
            "application/vnd.apache.parquet",
        )
        .await;
    let builder = ParquetRecordBatchReaderBuilder::try_new(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(builder.schema().field(0).name(), "n_name");
}

#[actix_web::test]
async fn curl_style_form_body_is_understood() {
    let app = TestApp::spawn().await;
    for body in [r#"{"sql": "SELECT 1 AS x"}"#, "SELECT 1 AS x"] {
        let resp = app
            .req(reqwest::Method::POST, "/v1/query")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["rows"], json!([[1]]), "{body}");
    }
}

/// Arrow IPC frames batches around their own buffers; sliced ones (a window across a batch
/// boundary, after a sort) must still carry exactly their rows, and agree with JSON.
#[actix_web::test]
async fn arrow_of_sliced_batches_matches_json() {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Int64Type;

    let app = TestApp::spawn().await;
    let sql = "SELECT l_orderkey, l_comment FROM lineitem \
               ORDER BY l_orderkey, l_linenumber LIMIT 6 OFFSET 8189";
    let batches = app.arrow(sql).await;
    assert_eq!(total_rows(&batches), 6);
    let mut from_arrow = Vec::new();
    for b in &batches {
        let keys = b.column(0).as_primitive::<Int64Type>();
        let comments = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            assert!(!keys.is_null(i));
            from_arrow.push(json!([keys.value(i), comments.value(i)]));
        }
    }
    let v: Value = app
        .query(json!({ "sql": sql }), "application/json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(Value::Array(from_arrow), v["rows"]);
    // The whole table, many batches, arrives complete.
    let all = app.arrow("SELECT * FROM lineitem").await;
    assert!(all.len() > 1);
    assert_eq!(total_rows(&all), 60_175);
}
