//! `/mcp`: the official MCP Python SDK as the client in both protocol eras
//! (`mcp_client.py`), and raw JSON-RPC for what a well-behaved client never sends.

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::governance::{app_on, audit_count, create_key, fresh_db, meta_client};
use crate::TestApp;

const CLIENT: &str = include_str!("mcp_client.py");
const MODERN: &str = "2026-07-28";

/// The `_meta` every 2026-07-28 request carries.
fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
    })
}

/// A 2026-07-28 request with its headers; `name` is `Mcp-Name`.
pub(crate) fn modern(
    app: &TestApp,
    key: &str,
    method: &str,
    name: Option<&str>,
    params: Value,
) -> reqwest::RequestBuilder {
    let mut params = params;
    params["_meta"] = meta();
    let mut req = post(app, key)
        .header("MCP-Protocol-Version", MODERN)
        .header("Mcp-Method", method)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if let Some(n) = name {
        req = req.header("Mcp-Name", n);
    }
    req
}

fn post(app: &TestApp, key: &str) -> reqwest::RequestBuilder {
    app.client
        .post(format!("{}/mcp", app.url))
        .bearer_auth(key)
        .header("Accept", "application/json, text/event-stream")
}

/// The JSON-RPC messages of a response: its JSON body, or each `data:` of its event stream.
async fn messages(resp: reqwest::Response) -> Vec<Value> {
    let sse = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let text = resp.text().await.unwrap();
    if !sse {
        return vec![serde_json::from_str(&text).unwrap_or(Value::String(text))];
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// The status and the last JSON-RPC message of a response.
pub(crate) async fn answer(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let last = messages(resp).await.pop().unwrap_or(Value::Null);
    (status, last)
}

/// A legacy session opened by `initialize` at `version`; its id.
async fn initialize(app: &TestApp, key: &str, version: &str) -> String {
    let resp = post(app, key)
        .json(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let init = messages(resp).await.pop().unwrap();
    assert_eq!(init["result"]["protocolVersion"], version, "{init}");
    let resp = post(app, key)
        .header("Mcp-Session-Id", &id)
        .header("MCP-Protocol-Version", version)
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    id
}

/// `tools/list` in session `id`.
fn in_session(app: &TestApp, key: &str, id: &str, version: &str) -> reqwest::RequestBuilder {
    post(app, key)
        .header("Mcp-Session-Id", id)
        .header("MCP-Protocol-Version", version)
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
}

#[actix_web::test]
async fn the_official_python_client_works_in_both_eras() {
    let Some(python) = crate::needs(
        "SLUICE_TEST_PYTHON",
        "the project's Python with the mcp SDK",
    ) else {
        return;
    };
    let app = TestApp::spawn().await;
    let reader = create_key(
        &app,
        json!({"name": "r", "role": "reader",
        "grants": [{"source": "local", "schema": "public", "table": "nation"}]}),
    )
    .await;
    let reader = reader["key"].as_str().unwrap().to_owned();
    for mode in ["auto", "legacy"] {
        let out = {
            let mut cmd = Command::new(&python);
            cmd.args(["-c", CLIENT, &app.url, &app.key, &reader, mode]);
            crate::output(cmd).await
        };
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        eprintln!("MCP {mode}: {v}");
        let (era, protocol) = if mode == "auto" {
            ("modern", MODERN)
        } else {
            ("legacy", "2025-11-25")
        };
        assert_eq!(
            (v["era"].as_str(), v["protocol"].as_str()),
            (Some(era), Some(protocol))
        );
        // The auto client adopted the discover answer: it never waited out its 10 s probe
        // timeout and fell back.
        assert!(v["connect_s"].as_f64().unwrap() < 10.0, "{v}");
        assert_eq!(v["row_cap"], json!([24, true]));
        assert_eq!(v["full_rows"], 60_175);
        assert!(v["size_cap"]["bytes"].as_u64().unwrap() <= 65_536, "{v}");
        assert!(
            v["bad_sql"].as_str().unwrap().starts_with("sql_invalid"),
            "{v}"
        );
        // Existence is never revealed.
        assert_eq!(v["reader_denied"], "table_not_found");
    }
}

#[actix_web::test]
async fn raw_json_rpc_gets_the_right_errors() {
    let app = TestApp::spawn().await;
    let key = app.key.clone();
    let url = format!("{}/mcp", app.url);

    // Not one message per POST.
    let (s, m) =
        answer(post(&app, &key).json(&json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])))
            .await;
    assert_eq!((s, m["error"]["code"].as_i64()), (400, Some(-32600)), "{m}");
    let (s, m) = answer(
        post(&app, &key)
            .header("Content-Type", "application/json")
            .body("{\"jsonrpc\":"),
    )
    .await;
    assert_eq!((s, m["error"]["code"].as_i64()), (400, Some(-32700)), "{m}");

    // 2026-07-28: unknown method, bad params, headers that disagree with the body.
    let (s, m) = answer(modern(&app, &key, "foo/bar", None, json!({}))).await;
    assert_eq!((s, m["error"]["code"].as_i64()), (404, Some(-32601)), "{m}");
    let (_, m) = answer(modern(
        &app,
        &key,
        "tools/call",
        Some("query"),
        json!({"name": "query", "arguments": {}}),
    ))
    .await;
    assert_eq!(m["error"]["code"], -32602, "{m}");
    let (_, m) = answer(modern(
        &app,
        &key,
        "tools/call",
        Some("nope"),
        json!({"name": "nope"}),
    ))
    .await;
    assert_eq!(m["error"]["code"], -32602, "{m}");
    let (s, m) = answer(modern(
        &app,
        &key,
        "tools/call",
        None,
        json!({"name": "list_sources"}),
    ))
    .await;
    assert_eq!((s, m["error"]["code"].as_i64()), (400, Some(-32020)), "{m}");
    let (s, m) = answer(modern(
        &app,
        &key,
        "tools/call",
        Some("describe_table"),
        json!({"name": "list_sources"}),
    ))
    .await;
    assert_eq!(s, 400, "{m}");
    let mismatched = post(&app, &key)
        .header("MCP-Protocol-Version", MODERN)
        .header("Mcp-Method", "tools/list")
        .header("Mcp-Name", "list_sources")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "list_sources", "_meta": meta()}}));
    let (s, m) = answer(mismatched).await;
    assert_eq!((s, m["error"]["code"].as_i64()), (400, Some(-32020)), "{m}");
    // And a good one: resultType and the compact result.
    let (s, m) = answer(modern(
        &app,
        &key,
        "tools/call",
        Some("list_sources"),
        json!({"name": "list_sources"}),
    ))
    .await;
    assert_eq!(s, 200);
    assert_eq!(m["result"]["resultType"], "complete", "{m}");
    assert_eq!(
        m["result"]["structuredContent"]["sources"][0]["name"],
        "local"
    );
    let (_, m) = answer(modern(&app, &key, "tools/list", None, json!({}))).await;
    assert!(
        m["result"]["ttlMs"].as_u64().is_some() && m["result"]["cacheScope"].is_string(),
        "{m}"
    );

    // Handshake era: no session, an unknown one, an unsupported version.
    let (s, m) = answer(
        post(&app, &key)
            .header("MCP-Protocol-Version", "2025-06-18")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})),
    )
    .await;
    assert_eq!((s, m["error"]["code"].as_i64()), (400, Some(-32600)), "{m}");
    // A session this server does not know is nobody's, whatever else the request says.
    for version in ["2025-06-18", "1999-01-01"] {
        let (s, m) = answer(in_session(&app, &key, "not-a-session", version)).await;
        assert_eq!((s, m["error"]["code"].as_i64()), (404, Some(-32001)), "{m}");
    }
    // An initialize at an unknown version is answered with one this server speaks.
    let (_, m) = answer(post(&app, &key).json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "1999-01-01", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}}))).await;
    assert!(
        ["2025-11-25", "2025-06-18", "2025-03-26"]
            .contains(&m["result"]["protocolVersion"].as_str().unwrap_or("")),
        "{m}"
    );
    // Each revision's handshake is echoed.
    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let id = initialize(&app, &key, version).await;
        let (s, m) = answer(in_session(&app, &key, &id, version)).await;
        assert_eq!(s, 200, "{m}");
        assert_eq!(m["result"]["tools"].as_array().unwrap().len(), 5);
    }

    // A key that may only list: querying is refused as a tool result, listing works.
    let lister = create_key(
        &app,
        json!({"name": "lister", "role": "reader", "operations": ["list"],
        "grants": [{"source": "local", "schema": "*", "table": "*"}]}),
    )
    .await;
    let lister = lister["key"].as_str().unwrap().to_owned();
    let (_, m) = answer(modern(
        &app,
        &lister,
        "tools/call",
        Some("query"),
        json!({"name": "query", "arguments": {"sql": "SELECT 1"}}),
    ))
    .await;
    assert_eq!(m["result"]["isError"], true, "{m}");
    assert_eq!(
        m["result"]["structuredContent"]["error"]["code"],
        "permission_denied"
    );
    let (_, m) = answer(modern(
        &app,
        &lister,
        "tools/call",
        Some("list_tables"),
        json!({"name": "list_tables", "arguments": {"source": "local"}}),
    ))
    .await;
    assert_eq!(
        m["result"]["structuredContent"]["tables"]
            .as_array()
            .unwrap()
            .len(),
        8,
        "{m}"
    );

    // A session is its key's; DELETE ends it.
    let other = create_key(&app, json!({"name": "other", "role": "admin"})).await;
    let other = other["key"].as_str().unwrap().to_owned();
    let id = initialize(&app, &key, "2025-11-25").await;
    let (s, _) = answer(in_session(&app, &other, &id, "2025-11-25")).await;
    assert_eq!(s, 404);
    let (s, _) = answer(in_session(&app, &key, &id, "2025-11-25")).await;
    assert_eq!(s, 200);
    let resp = app
        .client
        .delete(&url)
        .bearer_auth(&key)
        .header("Mcp-Session-Id", &id)
        .header("MCP-Protocol-Version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (s, _) = answer(in_session(&app, &key, &id, "2025-11-25")).await;
    assert_eq!(s, 404);

    // No key, a foreign Origin, a foreign Host.
    let resp = app
        .client
        .post(&url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let (s, _) = answer(
        post(&app, &key)
            .header("Origin", "https://evil.example")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = answer(post(&app, &key).header("Origin", "http://localhost:6274")
        .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}}))).await;
    assert_eq!(s, 200);
    let (s, _) = answer(
        post(&app, &key)
            .header("Host", "evil.example")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})),
    )
    .await;
    assert_eq!(s, 403);
    app.assert_serving().await;
}

#[actix_web::test]
async fn a_session_counts_until_the_sdk_says_it_is_gone() {
    let app = TestApp::spawn_with(|c| c.mcp.max_sessions_per_key = 1).await;
    let reader = create_key(&app, json!({"name": "r", "grants": [{"source": "local"}]})).await;
    let key = reader["key"].as_str().unwrap().to_owned();
    let id = initialize(&app, &key, "2025-06-18").await;
    // A request the SDK answers 404 for other reasons (a method it does not know, sent the
    // stateless way) does not end the session: it still counts against the key's cap...
    let (status, _) =
        answer(modern(&app, &key, "foo/bar", None, json!({})).header("Mcp-Session-Id", &id)).await;
    assert_eq!(status, 404);
    let resp = post(&app, &key)
        .json(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["data"]["code"], "too_many_sessions", "{body}");
    // ...and still works; ended (DELETE), its slot is free.
    let (s, _) = answer(in_session(&app, &key, &id, "2025-06-18")).await;
    assert_eq!(s, 200);
    let resp = app
        .client
        .delete(format!("{}/mcp", app.url))
        .bearer_auth(&key)
        .header("Mcp-Session-Id", &id)
        .header("MCP-Protocol-Version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    initialize(&app, &key, "2025-06-18").await;
}

#[actix_web::test]
async fn an_idle_session_expires() {
    let app = TestApp::spawn_with(|c| c.mcp.session_idle_timeout_ms = 300).await;
    let key = app.key.clone();
    let id = initialize(&app, &key, "2025-06-18").await;
    let (s, _) = answer(in_session(&app, &key, &id, "2025-06-18")).await;
    assert_eq!(s, 200);
    // Left alone longer than its idle timeout, it is closed: the next request is told to start
    // over. (Each look uses the session, so each comes after more than the timeout.)
    let mut waiting = crate::Waiting::new("the idle session to be closed");
    loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (s, _) = answer(in_session(&app, &key, &id, "2025-06-18")).await;
        if s == 404 {
            break;
        }
        waiting.pause(s).await;
    }
}

/// Ten billion rows to sum: far longer than a test, in small steps (cancels are prompt).
const LONG: &str = crate::SLOW_SQL;

#[actix_web::test]
async fn progress_streams_and_a_closed_connection_cancels_the_query() {
    let app = TestApp::spawn().await;
    let key = app.key.clone();
    // Progress over SSE while it runs, then the timeout as a tool error.
    let mut params = json!({"name": "query", "arguments": {"sql": LONG, "timeout_ms": 1500}});
    params["_meta"] = meta();
    params["_meta"]["progressToken"] = json!("p1");
    let resp = post(&app, &key)
        .header("MCP-Protocol-Version", MODERN)
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", "query")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}))
        .send()
        .await
        .unwrap();
    let all = messages(resp).await;
    let progress = all
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .count();
    assert!(progress >= 1, "{all:?}");
    let last = all.last().unwrap();
    assert_eq!(last["result"]["isError"], true, "{last}");
    assert_eq!(
        last["result"]["structuredContent"]["error"]["code"],
        "query_timeout"
    );

    // A client that leaves cancels its query: the call on a socket of its own, closed once
    // the statement runs.
    let mut params = json!({"name": "query", "arguments": {"sql": LONG}});
    params["_meta"] = meta();
    let body =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params}).to_string();
    let addr = app.url.trim_start_matches("http://").to_owned();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: {MODERN}\r\nMcp-Method: tools/call\r\nMcp-Name: query\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut socket, request.as_bytes())
        .await
        .unwrap();
    let mut waiting = crate::Waiting::new("the statement to run");
    let id = loop {
        if let Some(id) = app.latest_running().await {
            break id;
        }
        waiting.pause("nothing running").await;
    };
    drop(socket);
    let state = app.wait_query(&id, |v| v["state"] != "running").await;
    assert_eq!(state["state"], "cancelled", "{state}");
    app.assert_serving().await;
}

#[actix_web::test]
async fn tool_calls_are_limited_and_audited_like_queries() {
    let Some(meta_url) = fresh_db("SLUICE_TEST_PG_URL", "meta").await else {
        return;
    };
    let app = app_on(&meta_url, |_| {}).await;
    let limited = create_key(
        &app,
        json!({"name": "slow", "role": "reader",
        "grants": [{"source": "local", "schema": "*", "table": "*"}],
        "rate_limit": {"per_second": 1, "burst": 2}}),
    )
    .await;
    let (id, key) = (
        limited["id"].as_str().unwrap().to_owned(),
        limited["key"].as_str().unwrap().to_owned(),
    );
    let call = || {
        modern(
            &app,
            &key,
            "tools/call",
            Some("query"),
            json!({"name": "query", "arguments": {"sql": "SELECT 1 AS one"}}),
        )
    };
    let (_, first) = answer(call()).await;
    assert_eq!(first["result"]["isError"], false, "{first}");
    let (_, second) = answer(call()).await;
    assert_eq!(second["result"]["isError"], false, "{second}");
    // The bucket is empty: the refusal is a result the model can act on, with its wait.
    let (s, third) = answer(call()).await;
    assert_eq!(s, 200);
    assert_eq!(third["result"]["isError"], true, "{third}");
    let err = &third["result"]["structuredContent"]["error"];
    assert_eq!(err["code"], "rate_limited");
    assert!(err["retry_after_ms"].as_u64().unwrap() > 0, "{err}");
    assert!(
        third["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Retry after")
    );
    // All three are on the audit record, as /v1/query's are.
    let pg = meta_client(&meta_url).await;
    let filter = format!("key_id = '{id}' AND kind = 'query' AND operation = 'query'");
    let n = audit_count(&pg, &filter, |n| n >= 3).await;
    assert_eq!(n, 3);
    let refused = audit_count(
        &pg,
        &format!("{filter} AND error_code = 'rate_limited'"),
        |n| n >= 1,
    )
    .await;
    assert_eq!(refused, 1);
    let sql = audit_count(
        &pg,
        &format!("{filter} AND sql_text = 'SELECT 1 AS one'"),
        |n| n >= 2,
    )
    .await;
    assert_eq!(sql, 2);
}

#[actix_web::test]
async fn the_full_result_is_for_the_key_that_ran_it() {
    let app = TestApp::spawn().await;
    let (_, m) = answer(modern(&app, &app.key, "tools/call", Some("query"),
        json!({"name": "query", "arguments": {"sql": "SELECT n_name FROM local.public.nation WHERE n_regionkey = $1 ORDER BY 1",
                                              "params": [1], "max_rows": 2}}))).await;
    let r = &m["result"]["structuredContent"];
    assert_eq!(
        (r["row_count"].as_u64(), r["truncated"].as_bool()),
        (Some(2), Some(true)),
        "{m}"
    );
    let id = r["query_id"].as_str().unwrap();
    // Every row, its parameters bound again, in the format asked for.
    let resp = app
        .req(Method::GET, &format!("/v1/queries/{id}/result"))
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_ne!(resp.headers()["x-query-id"], id);
    assert_eq!(
        resp.text().await.unwrap(),
        "n_name\nARGENTINA\nBRAZIL\nCANADA\nPERU\nUNITED STATES\n"
    );
    // Another key, even an admin, is told it does not exist.
    let other = create_key(&app, json!({"name": "other", "role": "admin"})).await;
    let resp = app
        .client
        .get(format!("{}/v1/queries/{id}/result", app.url))
        .bearer_auth(other["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    app.expect_error(resp, 404, "query_not_found").await;
    let resp = app
        .req(Method::GET, "/v1/queries/q_nope/result")
        .send()
        .await
        .unwrap();
    app.expect_error(resp, 404, "query_not_found").await;
}

#[actix_web::test]
async fn a_truncated_answer_links_a_spooled_full_result_a_notebook_can_fetch() {
    let sql = "SELECT n_name FROM local.public.nation WHERE n_regionkey = $1 ORDER BY 1";
    let call = json!({"name": "query", "arguments": {"sql": sql, "params": [1], "max_rows": 2}});
    // Without a spool: no spooled link, and asking for one is `not_acceptable`.
    let plain = TestApp::spawn().await;
    let (_, m) = answer(modern(
        &plain,
        &plain.key,
        "tools/call",
        Some("query"),
        call.clone(),
    ))
    .await;
    let r = &m["result"]["structuredContent"];
    assert!(r["full_result"]["url"].is_string(), "{m}");
    assert!(r["full_result"]["spooled"].is_null(), "{m}");
    let id = r["query_id"].as_str().unwrap();
    let resp = plain
        .req(Method::GET, &format!("/v1/queries/{id}/result"))
        .header("Accept", "application/vnd.sluice.spool+json")
        .send()
        .await
        .unwrap();
    plain.expect_error(resp, 406, "not_acceptable").await;

    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(|c| {
        c.spool = Some(crate::spool::file_spool(
            dir.path(),
            sluice_schemas::SpoolFormat::Arrow,
            4,
        ));
    })
    .await;
    let (_, m) = answer(modern(&app, &app.key, "tools/call", Some("query"), call)).await;
    let link = &m["result"]["structuredContent"]["full_result"]["spooled"];
    assert_eq!(link["method"], "GET", "{m}");
    assert_eq!(
        link["headers"]["Accept"],
        "application/vnd.sluice.spool+json"
    );
    // What a notebook does with it: the manifest, then the segments through the proxy.
    let manifest: Value = app
        .req(
            Method::GET,
            &link["url"].as_str().unwrap().replace(&app.url, ""),
        )
        .header("Accept", "application/vnd.sluice.spool+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(manifest["complete"], true, "{manifest}");
    assert_eq!(manifest["row_count"], 5);
    let url = manifest["segments"][0]["url"].as_str().unwrap();
    assert!(url.starts_with(&app.url), "{url}");
    let body = app
        .client
        .get(url)
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(body.status(), 200);
    let batches = crate::read_arrow(&body.bytes().await.unwrap());
    assert_eq!(
        crate::cells(&batches),
        [
            ["ARGENTINA"],
            ["BRAZIL"],
            ["CANADA"],
            ["PERU"],
            ["UNITED STATES"]
        ]
    );
}

#[test]
fn mcp_config_prints_a_snippet_for_each_client() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "mcp-config",
            "--server",
            "http://127.0.0.1:9999",
            "--key",
            "k1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["mcpServers"]["sluice"]["url"],
        "http://127.0.0.1:9999/mcp"
    );
    assert_eq!(
        v["mcpServers"]["sluice"]["headers"]["Authorization"],
        "Bearer k1"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["mcp-config", "--server", "http://h:1", "--client", "vscode"])
        .env_remove("SLUICE_API_KEY")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["servers"]["sluice"]["type"], "http");
}
