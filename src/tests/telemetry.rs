//! Traces, logs and metrics of a real `sluice serve` process: its spans as a loopback OTLP/HTTP
//! collector receives them (decoded with the OpenTelemetry protobuf definitions), its JSON log
//! lines, the trace id in PostgreSQL's own statement log and in the audit table, and its
//! `/metrics` as `promtool check metrics` reads it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::governance::{Server, fresh_db, meta_client, server_config};
use super::postgres::{service_env, setup};

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    attributes: BTreeMap<String, String>,
}

/// An OTLP/HTTP (protobuf) trace collector on loopback.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    arrived: Arc<tokio::sync::Notify>,
}

impl Collector {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let spans = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(tokio::sync::Notify::new());
        let (s, a) = (Arc::clone(&spans), Arc::clone(&arrived));
        actix_web::rt::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                actix_web::rt::spawn(serve(conn, Arc::clone(&s), Arc::clone(&a)));
            }
        });
        Self {
            url,
            spans,
            arrived,
        }
    }

    /// The spans of trace `trace_id`, once `done` holds on them.
    async fn trace(&self, trace_id: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        loop {
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let found: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect();
            if done(&found) {
                return found;
            }
            notified.await;
        }
    }
}

/// Answers one connection's requests (HTTP/1.1, keep-alive): each body is an
/// `ExportTraceServiceRequest`.
async fn serve(
    mut conn: tokio::net::TcpStream,
    spans: Arc<Mutex<Vec<Span>>>,
    arrived: Arc<tokio::sync::Notify>,
) {
    let mut buf = Vec::new();
    loop {
        let head = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if conn.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
        };
        let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
        assert!(
            text.starts_with("post /v1/traces "),
            "the exporter posts to /v1/traces: {text}"
        );
        let len: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < head + len {
            if conn.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
        }
        let body: Vec<u8> = buf.drain(..head + len).skip(head).collect();
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        {
            let mut all = spans.lock().unwrap();
            for r in request.resource_spans {
                for scope in r.scope_spans {
                    for s in scope.spans {
                        all.push(Span {
                            trace_id: hex(&s.trace_id),
                            span_id: hex(&s.span_id),
                            parent: hex(&s.parent_span_id),
                            name: s.name,
                            attributes: s
                                .attributes
                                .into_iter()
                                .map(|kv| (kv.key, text_of(kv.value.and_then(|v| v.value))))
                                .collect(),
                        });
                    }
                }
            }
        }
        arrived.notify_waiters();
        let ok =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if conn.write_all(ok).await.is_err() {
            return;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text_of(v: Option<AnyValue>) -> String {
    match v {
        Some(AnyValue::StringValue(s)) => s,
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// The one span named `name` among `spans`.
fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one span {name:?} in {spans:#?}");
    found[0]
}

/// A W3C `traceparent` a client would send: a fresh trace id, its own span id, sampled.
fn client_traceparent() -> (String, String, String) {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    (format!("00-{trace}-{span}-01"), trace, span)
}

/// A stateless (2026-07-28) MCP `tools/call` of `tool` with `arguments`, naming a trace in its
/// `_meta` and/or its HTTP headers when given.
async fn mcp_tool_call(
    http: &reqwest::Client,
    server: &str,
    key: &str,
    tool: &str,
    arguments: Value,
    meta_traceparent: Option<&str>,
    header_traceparent: Option<&str>,
) -> reqwest::Response {
    let mut meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
    });
    if let Some(tp) = meta_traceparent {
        meta["traceparent"] = json!(tp);
    }
    let mut req = http
        .post(format!("{server}/mcp"))
        .bearer_auth(key)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", tool)
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": tool, "arguments": arguments, "_meta": meta,
            }}),
        );
    if let Some(tp) = header_traceparent {
        req = req.header("traceparent", tp);
    }
    req.send().await.unwrap()
}

#[actix_web::test]
async fn one_trace_runs_from_the_client_through_sluice_into_postgresql() {
    let Some(meta) = fresh_db("SLUICE_TEST_PG_URL", "sluice_otel").await else {
        return;
    };
    let Some((_pg, url, schema)) =
        setup("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2), (3);").await
    else {
        return;
    };
    let Some(pg_log) = service_env("SLUICE_TEST_PG_LOG") else {
        return;
    };
    let collector = Collector::start().await;
    // Sampling 0: only a client's sampled `traceparent` makes a trace (parent-based).
    let extra = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nsample_ratio = 0.0\n[log]\nformat = \"json\"\n",
        collector.url
    );
    let config = format!(
        "{}\n[[sources]]\nname = \"pg\"\nkind = \"postgres\"\nreplicas = [\"{url}\"]\n\
         schemas = [\"{schema}\"]\n",
        server_config(&meta, &extra)
    );
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = Server::start(&config, &dir).await;
    let key = server.admin_key.clone().expect("an admin key");
    let http = reqwest::Client::new();

    // Over HTTP: the client's trace continues through the request, the query, its planning,
    // its execution and the statement PostgreSQL ran.
    let (traceparent, trace, client_span) = client_traceparent();
    let resp = http
        .post(format!("{}/v1/query", server.url))
        .bearer_auth(&key)
        .header("traceparent", &traceparent)
        .json(&json!({"sql": format!("SELECT a FROM pg.{schema}.t WHERE a > 1 ORDER BY a")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-trace-id"], trace.as_str());
    // Probes and scrapes start no trace.
    for probe in ["/health", "/ready", "/metrics"] {
        let r = http
            .get(format!("{}{probe}", server.url))
            .header("traceparent", client_traceparent().0)
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("x-trace-id").is_none(), "{probe}");
    }
    let query_id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["rows"], json!([[2], [3]]));
    let spans = collector
        .trace(&trace, |s| {
            [
                "POST /v1/query",
                "authenticate",
                "query http",
                "plan",
                "execute",
                "SELECT pg",
            ]
            .iter()
            .all(|n| s.iter().any(|x| x.name == *n))
        })
        .await;
    // Names as OpenTelemetry's conventions make them (`otel.name`).
    let request = named(&spans, "POST /v1/query");
    let query = named(&spans, "query http");
    let plan = named(&spans, "plan");
    let execute = named(&spans, "execute");
    let remote = named(&spans, "SELECT pg");
    assert_eq!(
        request.parent, client_span,
        "the client's span is the parent"
    );
    assert_eq!(request.attributes["http.route"], "/v1/query");
    assert_eq!(request.attributes["http.response.status_code"], "200");
    assert_eq!(named(&spans, "authenticate").parent, request.span_id);
    assert_eq!(query.parent, request.span_id);
    assert_eq!(query.attributes["query_id"], query_id);
    assert_eq!(plan.parent, query.span_id);
    assert_eq!(execute.parent, query.span_id);
    assert_eq!(remote.parent, execute.span_id);
    assert_eq!(remote.attributes["db.system"], "postgresql");
    assert_eq!(remote.attributes["db.operation"], "SELECT");
    assert_eq!(remote.attributes["sluice.source"], "pg");
    assert_eq!(remote.attributes["sluice.replica"], "0");
    assert_eq!(remote.attributes["sluice.rows"], "2");
    let port = url.rsplit(':').next().unwrap().split('/').next().unwrap();
    assert!(
        remote.attributes["server.address"].ends_with(&format!(":{port}")),
        "{remote:?}"
    );
    assert_eq!(remote.attributes["sluice.statement_hash"].len(), 16);
    assert!(
        !remote.attributes.contains_key("db.query.text"),
        "statement text only when configured"
    );

    // PostgreSQL's own log names the trace, on the statement it ran for this query.
    let marker = format!("|sluice:{query_id}|");
    let mut waiting = crate::Waiting::new("the statement in PostgreSQL's log");
    let line = loop {
        let log = std::fs::read_to_string(&pg_log).unwrap();
        if let Some(l) = log
            .lines()
            .find(|l| l.contains(&marker) && l.contains("execute <unnamed>"))
        {
            break l.to_owned();
        }
        waiting.pause("nothing yet").await;
    };
    assert!(
        line.contains(&format!(
            "/*traceparent='00-{trace}-{}-01'*/",
            remote.span_id
        )),
        "{line}"
    );

    // The audit record names it too.
    let store = meta_client(&meta).await;
    let mut waiting = crate::Waiting::new("the query's audit record");
    let audited: Option<String> = loop {
        let rows = store
            .query(
                "SELECT trace_id FROM sluice_audit WHERE query_id = $1",
                &[&query_id],
            )
            .await
            .unwrap();
        if let Some(r) = rows.first() {
            break r.get(0);
        }
        waiting.pause("no record").await;
    };
    assert_eq!(audited.as_deref(), Some(trace.as_str()));

    // Over MCP: the trace named in the request's `_meta` continues through the tool call.
    let (mcp_parent, mcp_trace, mcp_client_span) = client_traceparent();
    let resp = mcp_tool_call(
        &http,
        &server.url,
        &key,
        "query",
        json!({"sql": "SELECT count(*) AS n FROM nation"}),
        Some(&mcp_parent),
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("\"n\""), "{text}");
    let spans = collector
        .trace(&mcp_trace, |s| {
            ["tools/call query", "query mcp", "execute"]
                .iter()
                .all(|n| s.iter().any(|x| x.name == *n))
        })
        .await;
    let tool = named(&spans, "tools/call query");
    assert_eq!(tool.parent, mcp_client_span);
    assert_eq!(tool.attributes["gen_ai.tool.name"], "query");
    assert_eq!(named(&spans, "query mcp").parent, tool.span_id);

    // Without a client's trace, the tool call is in the trace the answer's `X-Trace-Id` names.
    let resp = mcp_tool_call(
        &http,
        &server.url,
        &key,
        "list_sources",
        json!({}),
        None,
        Some(&client_traceparent().0),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let answered = resp.headers()["x-trace-id"].to_str().unwrap().to_owned();
    let spans = collector
        .trace(&answered, |s| {
            s.iter().any(|x| x.name == "tools/call list_sources")
                && s.iter().any(|x| x.name == "POST /mcp")
        })
        .await;
    assert_eq!(
        named(&spans, "tools/call list_sources").parent,
        named(&spans, "POST /mcp").span_id
    );

    // The log level, changed while serving: by an admin through the API (a reader may not; a
    // filter that does not parse changes nothing), and back to the file's on SIGHUP.
    let level = |method: reqwest::Method, key: String, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{}/v1/admin/log", server.url))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = level(reqwest::Method::GET, key.clone(), None).await;
    assert_eq!(
        (status, &body["level"]),
        (200, &json!("debug")),
        "SLUICE_LOG at start"
    );
    let created: Value = http
        .post(format!("{}/v1/keys", server.url))
        .bearer_auth(&key)
        .json(&json!({"name": "reader", "role": "reader"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reader = created["key"].as_str().unwrap().to_owned();
    let put = |k: &str, l: &str| {
        level(
            reqwest::Method::PUT,
            k.to_owned(),
            Some(json!({"level": l})),
        )
    };
    assert_eq!(put(&reader, "trace").await.0, 403);
    let (status, body) = put(&key, "info,sluice=[[").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("bad_request"))
    );
    assert_eq!(put(&key, "warn,sluice::http=info").await.0, 200);
    let (_, body) = level(reqwest::Method::GET, key.clone(), None).await;
    assert_eq!(body["level"], "warn,sluice::http=info");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut waiting = crate::Waiting::new("the config file's level after SIGHUP");
    loop {
        let (_, body) = level(reqwest::Method::GET, key.clone(), None).await;
        if body["level"] == "info" {
            break;
        }
        waiting.pause(&body).await;
    }

    // The JSON log: one object per line; the query's lines name its id and trace; no secret.
    let log = server.stop().await;
    let mut of_query = 0;
    let mut access = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        for field in ["timestamp", "level", "target"] {
            assert!(v.get(field).is_some(), "{field} in {line}");
        }
        if v["target"] == "sluice::http" {
            access.push(v["message"].as_str().unwrap_or_default().to_owned());
        }
        let named_query = v["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["query_id"] == query_id.as_str());
        if named_query {
            of_query += 1;
            let traces: Vec<&Value> = v["spans"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s.get("trace_id"))
                .collect();
            assert!(!traces.is_empty(), "{line}");
            assert!(traces.iter().all(|t| *t == trace.as_str()), "{line}");
        }
    }
    assert!(of_query >= 1, "the query's own log lines: {log}");
    // One access line per request: client, request line, status, body bytes, milliseconds.
    let answered = |prefix: &str| {
        access
            .iter()
            .filter(|l| {
                l.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix("ms"))
                    .and_then(|rest| rest.split_once(' '))
                    .is_some_and(|(bytes, ms)| {
                        bytes.parse::<u64>().is_ok_and(|b| b > 0) && ms.parse::<f64>().is_ok()
                    })
            })
            .count()
    };
    assert!(
        answered("127.0.0.1 \"POST /v1/query HTTP/1.1\" 200 ") >= 1,
        "{access:#?}"
    );
    // The reader's one refused change of level: one line, not two.
    assert_eq!(
        answered("127.0.0.1 \"PUT /v1/admin/log HTTP/1.1\" 403 "),
        1,
        "{access:#?}"
    );
    let secret = key.rsplit('_').next().unwrap();
    assert!(!log.contains(secret), "the key's secret is in the log");
}

/// The names of the metrics `text` (Prometheus text format) has samples of.
fn exposed(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Every `sluice_*` metric name in `text` (a rule file, a dashboard).
fn referenced(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("sluice_") {
        let start = i + at;
        let before = start.checked_sub(1).map(|b| bytes[b]);
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len() - start);
        // A recording rule's name (`sluice:...`) or a longer word is not a metric name.
        if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

/// `/metrics` after a workload that touches every part of the server, as `promtool check
/// metrics` reads it (no lint problem: HELP text, base units, `_total`), and with a sample of
/// every metric the shipped alert rules and dashboard name.
#[actix_web::test]
async fn metrics_pass_promtool_and_have_every_metric_the_rules_and_dashboard_name() {
    let Some(promtool) = crate::needs("SLUICE_TEST_PROMTOOL", "promtool (scripts/services.sh)")
    else {
        return;
    };
    let Some(meta) = fresh_db("SLUICE_TEST_PG_URL", "sluice_metrics").await else {
        return;
    };
    let Some(redis) = service_env("SLUICE_TEST_REDIS_URL") else {
        return;
    };
    let Some((pg, url, schema)) =
        setup("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2); CREATE TABLE gone (a int);")
            .await
    else {
        return;
    };
    let Some(sf) = crate::snowflake::seeded().await else {
        return;
    };
    let extra = format!(
        "[cache]\nredis_url = \"{redis}\"\n\
         [auth]\nresource = \"http://127.0.0.1\"\n[auth.oidc]\n\
         [[auth.oidc.issuers]]\nissuer = \"http://127.0.0.1:9/unreachable\"\n"
    );
    let config = format!(
        "{}\n[[sources]]\nname = \"pg\"\nkind = \"postgres\"\nreplicas = [\"{url}\"]\n\
         schemas = [\"{schema}\"]\nmax_concurrency = 4\nfallback = \"local\"\n\
         [[sources]]\nname = \"sf\"\nkind = \"snowflake\"\naccount = \"test\"\nurl = \"{}\"\n\
         user = \"test\"\nwarehouse = \"TEST_WH\"\ndatabase = \"{}\"\nschema = \"PUBLIC\"\n\
         schemas = [\"PUBLIC\"]\n[sources.auth]\ntype = \"password\"\npassword_env = \"{}\"\n",
        server_config(&meta, &extra),
        sf.url,
        sf.database,
        crate::snowflake::PASSWORD_ENV,
    );
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = Server::start(&config, &dir).await;
    let key = server.admin_key.clone().expect("an admin key");
    let http = reqwest::Client::new();
    let query = |sql: String| {
        http.post(format!("{}/v1/query", server.url))
            .bearer_auth(&key)
            .json(&json!({ "sql": sql }))
            .send()
    };
    // Queries on every kind of source; one twice (a cache hit); one on a table gone from
    // PostgreSQL since it was listed (a source error).
    for sql in [
        "SELECT count(*) FROM nation".to_owned(),
        "SELECT count(*) FROM nation".to_owned(),
        format!("SELECT a FROM pg.{schema}.t"),
        "SELECT count(*) FROM sf.public.nation".to_owned(),
    ] {
        let resp = query(sql.clone()).await.unwrap();
        assert_eq!(resp.status(), 200, "{sql}: {}", resp.text().await.unwrap());
    }
    pg.batch_execute(&format!("DROP TABLE {schema}.gone"))
        .await
        .unwrap();
    let resp = query(format!("SELECT a FROM pg.{schema}.gone"))
        .await
        .unwrap();
    assert!(resp.status().is_client_error() || resp.status().is_server_error());
    // A key no server knows (a lookup in the store), a refresh, an MCP tool call.
    let resp = http
        .get(format!("{}/v1/tables", server.url))
        .bearer_auth("sluice_key_000000000000_0000000000000000000000000000000000000000000000000000000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http
        .post(format!("{}/v1/sources/local/refresh", server.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http
        .post(format!("{}/mcp", server.url))
        .bearer_auth(&key)
        .header("Accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = mcp_tool_call(
        &http,
        &server.url,
        &key,
        "list_sources",
        json!({}),
        None,
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);

    let text = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let out = {
        let text = text.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut lint = std::process::Command::new(&promtool)
                .args(["check", "metrics"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            lint.stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            lint.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}"
    );

    let have = exposed(&text);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "deploy/prometheus/alerts.yaml",
        "deploy/grafana/sluice.json",
    ] {
        let named = referenced(&std::fs::read_to_string(root.join(file)).unwrap());
        assert!(!named.is_empty(), "{file} names no metric");
        let missing: Vec<&String> = named.iter().filter(|n| !have.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics the server does not expose: {missing:?}"
        );
    }
    server.stop().await;
}
