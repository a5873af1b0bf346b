//! Users' own tools read the stream: pyarrow (`pa.ipc.open_stream`) and polars
//! (`pl.read_ipc_stream`), from the project's venv (`SLUICE_TEST_PYTHON`, set by
//! `scripts/test.sh`).

use std::process::Command;

use crate::TestApp;

const SCRIPT: &str = r#"
import json, sys, urllib.request
import pyarrow as pa, polars as pl
url, key = sys.argv[1], sys.argv[2]
def post(sql):
    req = urllib.request.Request(url + "/v1/query", data=json.dumps({"sql": sql}).encode(),
        headers={"Authorization": "Bearer " + key, "Accept": "application/vnd.apache.arrow.stream",
                 "Content-Type": "application/json"})
    return urllib.request.urlopen(req)
# pyarrow reads straight from the socket, batch by batch.
with post("SELECT * FROM lineitem") as resp:
    reader = pa.ipc.open_stream(resp)
    batches = sum(1 for _ in reader)
with post("SELECT * FROM lineitem") as resp:
    table = pa.ipc.open_stream(resp).read_all()
with post("SELECT n_name, n_regionkey FROM nation ORDER BY n_nationkey") as resp:
    df = pl.read_ipc_stream(resp.read())
print(json.dumps({"rows": table.num_rows, "batches": batches,
                  "comment_type": str(table.schema.field("l_comment").type),
                  "polars_shape": list(df.shape), "first": df["n_name"][0]}))
"#;

#[actix_web::test]
async fn pyarrow_and_polars_read_the_stream() {
    let Some(python) = crate::needs(
        "SLUICE_TEST_PYTHON",
        "the project's Python with pyarrow and polars",
    ) else {
        return;
    };
    let app = TestApp::spawn().await;
    let (url, key) = (app.url.clone(), app.key.clone());
    let out = {
        let mut cmd = Command::new(python);
        cmd.args(["-c", SCRIPT, &url, &key]);
        crate::output(cmd).await
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], 60_175);
    assert!(v["batches"].as_u64().unwrap() > 1);
    assert_eq!(v["comment_type"], "string");
    assert_eq!(v["polars_shape"], serde_json::json!([25, 2]));
    assert_eq!(v["first"], "ALGERIA");
}
