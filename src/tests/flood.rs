//! Floods a hostile client can send with one key, or with none: each is refused past its
//! bound, costs the server a bounded amount (memory, store statements, audit records), and
//! never reaches another key's sessions or refuses a real key's queries.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::governance::{Server, audit_sum, create_key, fresh_db, meta_client, query_as};
use crate::postgres::service_env;

/// Requests in each flood.
const FLOOD: usize = 5_000;
/// Requests in flight at once.
const IN_FLIGHT: usize = 32;

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
           "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                      "clientInfo": {"name": "flood", "version": "1"}}})
}

/// `POST /mcp` as `key`, in session `session` if given.
fn mcp(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    session: Option<&str>,
    body: &Value,
) -> reqwest::RequestBuilder {
    let mut req = client
        .post(format!("{url}/mcp"))
        .bearer_auth(key)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-06-18")
        .json(body);
    if let Some(id) = session {
        req = req.header("Mcp-Session-Id", id);
    }
    req
}

/// A reader key made through `url` with the admin key.
async fn reader(client: &reqwest::Client, url: &str, admin: &str, body: Value) -> (String, String) {
    let resp = client
        .post(format!("{url}/v1/keys"))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    (
        v["key"].as_str().unwrap().to_owned(),
        v["id"].as_str().unwrap().to_owned(),
    )
}

#[actix_web::test]
async fn a_flood_of_mcp_handshakes_is_refused_past_the_caps_and_sessions_stay_their_keys() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        "[server]\ndefault_catalog = \"local\"\ndefault_schema = \"public\"\n\
         [[sources]]\nname = \"local\"\nkind = \"parquet\"\nlocation = \"{}\"\n",
        crate::testdata().join("tpch").display()
    );
    let server = Server::start(&config, &dir).await;
    let admin = server.admin_key.clone().unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .unwrap();
    let url = server.url.clone();
    let grants = json!([{"source": "local"}]);
    let (a, a_id) = reader(
        &client,
        &url,
        &admin,
        json!({"name": "a", "grants": grants}),
    )
    .await;
    let (b, _) = reader(
        &client,
        &url,
        &admin,
        json!({"name": "b", "grants": grants}),
    )
    .await;
    // The first handshakes warm the server up before its memory is read.
    let (bk, _) = reader(
        &client,
        &url,
        &admin,
        json!({"name": "warm", "grants": grants}),
    )
    .await;
    for _ in 0..4 {
        let r = mcp(&client, &url, &bk, None, &initialize_body())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let before = rss(server.pid());

    let outcomes: Vec<(u16, Option<String>, Value)> = futures::stream::iter(0..FLOOD)
        .map(|_| {
            let req = mcp(&client, &url, &a, None, &initialize_body());
            async move {
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let session = resp
                    .headers()
                    .get("mcp-session-id")
                    .map(|v| v.to_str().unwrap().to_owned());
                let body = if status == 200 {
                    Value::Null
                } else {
                    resp.json().await.unwrap_or(Value::Null)
                };
                (status, session, body)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let after = rss(server.pid());
    let sessions: Vec<String> = outcomes
        .iter()
        .filter(|(s, _, _)| *s == 200)
        .map(|(_, id, _)| id.clone().expect("a session id"))
        .collect();
    // The default per-key cap, exactly: reservations are taken before each handshake runs.
    assert_eq!(sessions.len(), 32, "sessions opened");
    // Every other handshake is refused: by the session cap, or first by the reader role's
    // rate limit (a handshake costs a request, like a tool call).
    let mut by_code = std::collections::BTreeMap::<String, usize>::new();
    for (status, _, body) in outcomes.iter().filter(|(s, _, _)| *s != 200) {
        assert_eq!(*status, 429, "{body}");
        let code = body["error"]["data"]["code"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        assert!(
            code == "too_many_sessions" || code == "rate_limited",
            "{body}"
        );
        *by_code.entry(code).or_default() += 1;
    }
    assert!(by_code.contains_key("too_many_sessions"), "{by_code:?}");
    let grown = after.saturating_sub(before);
    eprintln!(
        "mcp flood: {FLOOD} handshakes, {} sessions, refused {by_code:?}, RSS {} -> {} MiB",
        sessions.len(),
        before >> 20,
        after >> 20
    );
    assert!(grown < 64 << 20, "memory grew by {} MiB", grown >> 20);

    // A's sessions are A's: another key is told they do not exist.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    for id in &sessions {
        let r = mcp(&client, &url, &a, Some(id), &list)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the owner uses its session");
        let r = mcp(&client, &url, &b, Some(id), &list)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "another key is refused");
    }
    // Also once the owner is gone: its key revoked, its sessions are still nobody else's.
    let r = client
        .delete(format!("{url}/v1/keys/{a_id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for id in &sessions {
        let r = mcp(&client, &url, &b, Some(id), &list)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let r = mcp(&client, &url, &a, Some(id), &list)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "the revoked owner");
    }

    // A handshake is charged to the key's rate limit like a tool call.
    let (limited, _) = reader(
        &client,
        &url,
        &admin,
        json!({"name": "slow", "grants": grants, "rate_limit": {"per_second": 1, "burst": 2}}),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = mcp(&client, &url, &limited, None, &initialize_body())
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["data"]["code"], "rate_limited", "{body}");
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    server.stop().await;
}

/// A made-up key of the right shape: `sluice_key_<12 hex>_<64 hex>`.
fn made_up(i: usize) -> String {
    format!("sluice_key_{i:012x}_{}", "ab".repeat(32))
}

#[actix_web::test]
async fn a_flood_of_made_up_keys_costs_few_store_lookups_and_no_real_query() {
    let Some(meta) = fresh_db("SLUICE_TEST_PG_URL", "flood").await else {
        return;
    };
    let Some(log_path) = service_env("SLUICE_TEST_PG_LOG") else {
        return;
    };
    // The store's connections carry a name of their own, so the statement log shows exactly
    // what this server sent.
    let tag = format!(
        "sluice_flood_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let meta_tagged = format!("{meta}?application_name={tag}");
    let app = crate::governance::app_on(&meta_tagged, |_| {}).await;
    let real = create_key(
        &app,
        json!({"name": "real", "grants": [{"source": "local"}]}),
    )
    .await;
    let real = real["key"].as_str().unwrap().to_owned();
    let lookups = |log: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("|{tag}|")) && l.contains("WHERE id = ANY"))
            .count()
    };
    let before = lookups(&std::fs::read_to_string(&log_path).unwrap());

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .unwrap();
    let started = Instant::now();
    let flood = futures::stream::iter(0..FLOOD)
        .map(|i| {
            let req = client
                .post(format!("{}/v1/query", app.url))
                .bearer_auth(made_up(i))
                .json(&json!({"sql": "SELECT 1"}));
            async move { req.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<u16>>();
    // A real key's queries, all along.
    let steady = async {
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(
                query_as(&app, &real, "SELECT count(*) FROM nation")
                    .await
                    .status()
                    .as_u16(),
            );
        }
        statuses
    };
    let (refused, answered) = futures::join!(flood, steady);
    let elapsed = started.elapsed();
    assert!(
        refused.iter().all(|s| *s == 401),
        "made-up keys are refused"
    );
    assert!(answered.iter().all(|s| *s == 200), "{answered:?}");

    let statements = lookups(&std::fs::read_to_string(&log_path).unwrap()) - before;
    // One statement per 100 ms at most, however many keys: bounded by the time the flood
    // took, never by its size.
    let gaps = (elapsed.as_millis() / 100) as usize + 1;
    eprintln!("made-up keys: {FLOOD} refused in {elapsed:?} with {statements} store lookups");
    assert!(statements <= gaps, "{statements} lookups in {elapsed:?}");
    assert!(
        statements * 16 <= FLOOD,
        "{statements} lookups for {FLOOD} keys"
    );

    // The audit log took the flood in aggregate and still takes queries.
    let ready: Value = app.get_json("/ready").await;
    assert_eq!(ready["capacity"]["accepting_queries"], true, "{ready}");
    let pg = meta_client(&meta).await;
    let attempts = audit_sum(
        &pg,
        "sum(attempts)",
        "kind = 'auth' AND outcome = 'unknown_key'",
        |n| n >= FLOOD as i64,
    )
    .await;
    assert_eq!(attempts, FLOOD as i64);
    let records: i64 = pg
        .query_one(
            "SELECT count(*) FROM sluice_audit WHERE kind = 'auth' AND outcome = 'unknown_key'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        records * 100 <= FLOOD as i64,
        "{records} records for {FLOOD} attempts"
    );
}

/// Tickets and prepared statements asked for and never used: nothing is kept for them, so the
/// server's memory stays where it was however many there are.
#[actix_web::test]
async fn abandoned_flight_tickets_and_prepared_statements_cost_no_memory() {
    use arrow_flight::sql::{ActionCreatePreparedStatementRequest, ProstMessageExt};
    use prost::Message;

    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        "[server]\ndefault_catalog = \"local\"\ndefault_schema = \"public\"\n\
         [flight]\nlisten = \"127.0.0.1:0\"\n\
         [[sources]]\nname = \"local\"\nkind = \"parquet\"\nlocation = \"{}\"\n",
        crate::testdata().join("tpch").display()
    );
    let server = Server::start(&config, &dir).await;
    let admin = server.admin_key.clone().unwrap();
    let url = server.flight.clone().unwrap().replace("grpc://", "http://");
    let channel = tonic::transport::Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = arrow_flight::flight_service_client::FlightServiceClient::new(channel);
    let sql = "SELECT n_name, n_regionkey FROM nation WHERE n_nationkey < 20";
    let abandon = |n: usize| {
        let admin = admin.clone();
        let client = client.clone();
        futures::stream::iter(0..n)
            .map(move |i| {
                let mut c = client.clone();
                let admin = admin.clone();
                async move {
                    if i % 2 == 0 {
                        let info = c
                            .get_flight_info(crate::flight::bearer(
                                &admin,
                                crate::flight::statement(sql),
                            ))
                            .await
                            .unwrap()
                            .into_inner();
                        assert_eq!(info.endpoint.len(), 1);
                    } else {
                        let body = ActionCreatePreparedStatementRequest {
                            query: sql.to_owned(),
                            transaction_id: None,
                        }
                        .as_any()
                        .encode_to_vec();
                        let action = arrow_flight::Action::new("CreatePreparedStatement", body);
                        crate::flight::action_body(&mut c, crate::flight::bearer(&admin, action))
                            .await;
                    }
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<()>>()
    };
    // Warm up (allocator arenas, the kept plan, connections) before memory is read.
    abandon(2_000).await;
    let before = rss(server.pid());
    abandon(4 * FLOOD).await;
    let after = rss(server.pid());
    let grown = after.saturating_sub(before);
    eprintln!(
        "abandoned {} tickets and prepared statements: {} MiB before, {} MiB after",
        4 * FLOOD,
        before >> 20,
        after >> 20
    );
    assert!(grown < 16 << 20, "memory grew by {} MiB", grown >> 20);
}
