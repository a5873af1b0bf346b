//! ADBC's Flight SQL driver (`adbc-driver-flightsql` from PyPI, Go underneath) through its
//! DB-API, which prepares every statement: what pandas, polars and DuckDB users run.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::TestApp;

const SCRIPT: &str = r#"
import datetime, decimal, json, sys, urllib.request
import adbc_driver_flightsql.dbapi as fs
import pyarrow as pa
flight, url, key, reader = sys.argv[1:5]

def http(sql):
    req = urllib.request.Request(url + "/v1/query", data=json.dumps({"sql": sql}).encode(),
        headers={"Authorization": "Bearer " + key, "Accept": "application/vnd.apache.arrow.stream",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        return pa.ipc.open_stream(resp).read_all().to_pylist()

out = {}
# Basic auth with the key as password (Handshake), as most tools configure it.
with fs.connect(flight, db_kwargs={"username": "token", "password": key}) as conn:
    cur = conn.cursor()
    tpch = [
        "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS q, avg(l_discount) AS d, count(*) AS n FROM lineitem GROUP BY 1, 2 ORDER BY 1, 2",
        "SELECT c_mktsegment, count(*) AS n FROM customer GROUP BY 1 ORDER BY 1",
        "SELECT n_name, sum(o_totalprice) AS t FROM orders JOIN customer ON o_custkey = c_custkey JOIN nation ON c_nationkey = n_nationkey GROUP BY n_name ORDER BY t DESC",
    ]
    same = []
    for sql in tpch:
        cur.execute(sql)
        same.append(cur.fetch_arrow_table().to_pylist() == http(sql))
    out["tpch_same"] = same
    # Parameters of every type, each compared with the literal statement over HTTP.
    cases = [
        ("SELECT count(*) AS n FROM lineitem WHERE l_orderkey < ?", 100, "l_orderkey < 100"),
        ("SELECT count(*) AS n FROM lineitem WHERE l_discount >= ?", 0.05, "l_discount >= 0.05"),
        ("SELECT count(*) AS n FROM lineitem WHERE l_returnflag = ?", "R", "l_returnflag = 'R'"),
        ("SELECT count(*) AS n FROM lineitem WHERE (l_orderkey < 10) = ?", True, "(l_orderkey < 10) = true"),
        ("SELECT count(*) AS n FROM lineitem WHERE l_comment = ?", None, "l_comment = NULL"),
        ("SELECT count(*) AS n FROM lineitem WHERE l_shipdate >= ?", datetime.date(1995, 1, 1), "l_shipdate >= DATE '1995-01-01'"),
        ("SELECT count(*) AS n FROM lineitem WHERE CAST(l_shipdate AS TIMESTAMP) >= ?", datetime.datetime(1995, 1, 1, 12, 0), "CAST(l_shipdate AS TIMESTAMP) >= TIMESTAMP '1995-01-01 12:00:00'"),
        ("SELECT count(*) AS n FROM lineitem WHERE l_extendedprice > ?", decimal.Decimal("50000.25"), "l_extendedprice > 50000.25"),
    ]
    params = []
    for sql, value, literal in cases:
        cur.execute(sql, (value,))
        got = cur.fetchall()[0][0]
        want = http("SELECT count(*) AS n FROM lineitem WHERE " + literal)[0]["n"]
        params.append([type(value).__name__, got, want])
    out["params"] = params
    # A large result arrives as a stream of batches.
    cur.execute("SELECT * FROM lineitem")
    reader_ = cur.fetch_record_batch()
    batches = rows = 0
    for b in reader_:
        batches += 1
        rows += b.num_rows
    out["stream"] = [batches, rows]
    out["schema_nation"] = conn.adbc_get_table_schema("nation").names
    cur.close()

# A reader key (as the bearer header): get_objects and table schemas follow its grants.
with fs.connect(flight, db_kwargs={"adbc.flight.sql.authorization_header": "Bearer " + reader}) as conn:
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    out["reader_tables"] = sorted(t["table_name"] for c in objects for s in c["catalog_db_schemas"] for t in s["db_schema_tables"])
    try:
        conn.adbc_get_table_schema("lineitem")
        out["reader_lineitem"] = "visible"
    except Exception as e:
        out["reader_lineitem"] = f"{type(e).__name__}: {e}"
    cur = conn.cursor()
    try:
        cur.execute("SELECT * FROM lineitem")
        out["reader_query"] = "answered"
    except Exception as e:
        out["reader_query"] = str(e)

# A wrong key is refused.
try:
    with fs.connect(flight, db_kwargs={"username": "token", "password": "sluice_key_wrong"}) as conn:
        conn.cursor().execute("SELECT 1")
    out["wrong_key"] = "accepted"
except Exception as e:
    out["wrong_key"] = str(e)
print(json.dumps(out))
"#;

#[actix_web::test]
async fn adbc_runs_tpch_binds_every_type_and_lists_by_grants() {
    let Some(python) = crate::needs("SLUICE_TEST_PYTHON", "the project's Python with ADBC") else {
        return;
    };
    let app = TestApp::spawn().await;
    let reader = super::nation_reader(&app).await;
    let flight = app.flight.clone().unwrap();
    let mut cmd = Command::new(python);
    cmd.args(["-c", SCRIPT, &flight, &app.url, &app.key, &reader]);
    let v = super::python_json(cmd).await;
    assert_eq!(v["tpch_same"], json!([true, true, true]), "{v}");
    for case in v["params"].as_array().unwrap() {
        assert_eq!(case[1], case[2], "parameter of type {}: {v}", case[0]);
    }
    assert_eq!(v["params"].as_array().unwrap().len(), 8);
    assert_eq!(v["stream"][1], 60_175);
    assert!(v["stream"][0].as_u64().unwrap() > 1, "{v}");
    assert_eq!(
        v["schema_nation"],
        json!(["n_nationkey", "n_name", "n_regionkey", "n_comment"])
    );
    assert_eq!(v["reader_tables"], json!(["nation"]));
    // The driver finds no such table in the reader's listing (its own NOT_FOUND).
    assert!(
        v["reader_lineitem"].as_str().unwrap().contains("NOT_FOUND"),
        "{v}"
    );
    assert!(
        v["reader_query"].as_str().unwrap().contains("NOT_FOUND"),
        "{v}"
    );
    assert!(
        v["wrong_key"].as_str().unwrap().contains("UNAUTHENTICATED"),
        "{v}"
    );
}

const CANCEL: &str = r#"
import sys, threading
import adbc_driver_flightsql.dbapi as fs
flight, key, sql = sys.argv[1:4]
conn = fs.connect(flight, db_kwargs={"adbc.flight.sql.authorization_header": "Bearer " + key})
cur = conn.cursor()
result = {}
def run():
    try:
        cur.execute(sql)
        cur.fetchall()
        result["end"] = "complete"
    except Exception as e:
        result["end"] = str(e)
t = threading.Thread(target=run)
t.start()
sys.stdin.readline()
cur.adbc_cancel()
t.join()
print(result["end"])
"#;

#[actix_web::test]
async fn adbc_cancel_mid_stream_ends_the_remote_postgresql_statement() {
    let Some(python) = crate::needs("SLUICE_TEST_PYTHON", "the project's Python with ADBC") else {
        return;
    };
    let Some((pg, url, schema)) =
        crate::postgres::setup(&crate::postgres::lifecycle::slow_view()).await
    else {
        return;
    };
    let app = crate::postgres::app_with(crate::postgres::source("pg", &url, &schema)).await;
    let sql = format!("SELECT * FROM pg.{schema}.slow");
    let mut child = Command::new(python)
        .args(["-c", CANCEL, &app.flight.clone().unwrap(), &app.key, &sql])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = crate::postgres::lifecycle::wait_active(&pg, &app).await;
    child.stdin.take().unwrap().write_all(b"cancel\n").unwrap();
    crate::postgres::lifecycle::assert_cancelled(&pg, &id).await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let end = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        end.trim(),
        "complete",
        "a cancelled query must not read as complete"
    );
    let status = app.wait_query(&id, |q| q["state"] != "running").await;
    assert_eq!(status["state"], "cancelled", "{status}");
}
