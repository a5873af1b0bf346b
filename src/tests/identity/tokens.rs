//! Bearer JWTs from the real provider: what a valid token may do (its role and grants from its
//! claims), every refusal with its challenge, audit rows with issuer and subject and the
//! token nowhere, rotation at the provider, and the MCP Python SDK signing in.

use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use sluice_schemas::Config;

use super::{Provider, free_port, now};
use crate::governance::{Server, fresh_db, meta_client, server_config};
use crate::{TestApp, Waiting};

/// `[auth]` for a server at `resource` trusting `issuer`: analysts read `local.public.nation`,
/// admins everything; `sql.read` required.
fn auth_toml(resource: &str, issuer: &str, oidc_extra: &str) -> String {
    format!(
        "[auth]\nresource = \"{resource}\"\nscopes = [\"sql.read\"]\n\
         [auth.oidc]\n{oidc_extra}\n\
         [[auth.oidc.issuers]]\nissuer = \"{issuer}\"\n\
         [[auth.oidc.rules]]\nclaim = \"roles\"\nvalue = \"Sluice.Analyst\"\nrole = \"reader\"\n\
         grants = [{{ source = \"local\", schema = \"public\", table = \"nation\" }}]\n\
         [[auth.oidc.rules]]\nclaim = \"roles\"\nvalue = \"Sluice.Admin\"\nrole = \"admin\"\n"
    )
}

/// The same for an in-process server.
pub(crate) fn configure(c: &mut Config, port: u16, issuer: &str, oidc_extra: &str) {
    let resource = format!("http://127.0.0.1:{port}");
    c.server.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let text = auth_toml(&resource, issuer, oidc_extra);
    c.auth = sluice_schemas::loader::parse(&text, |_| None, std::iter::empty())
        .unwrap()
        .auth;
}

/// The first column of every row `sql` answers, as text.
async fn texts(db: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    db.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn send(http: &reqwest::Client, url: &str, token: &str, sql: &str) -> reqwest::Response {
    http.post(format!("{url}/v1/query"))
        .bearer_auth(token)
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .unwrap()
}

async fn get(http: &reqwest::Client, url: &str, path: &str, token: &str) -> reqwest::Response {
    http.get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn challenge(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The count of key-set reads for `why` the server's metrics show.
async fn fetches(http: &reqwest::Client, url: &str, why: &str) -> u64 {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("sluice_jwks_fetches_total")
                && l.contains("outcome=\"ok\"")
                && l.contains(&format!("why=\"{why}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[actix_web::test]
async fn tokens_from_a_real_provider_are_callers_and_everything_else_is_refused() {
    let Some(meta) = fresh_db("SLUICE_TEST_PG_URL", "sluice_oidc").await else {
        return;
    };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let Some(idp) = Provider::start(&dir.path().join("keys.json")).await else {
        return;
    };
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    // On-demand key-set reads at most once an hour: the flood below may cause one.
    let flight_port = free_port();
    let config = server_config(
        &meta,
        &format!(
            "{}\n[flight]\nlisten = \"127.0.0.1:{flight_port}\"\n",
            auth_toml(&url, &idp.issuer, "jwks_min_refetch_ms = 3600000")
        ),
    );
    let server = Server::start_on(&config, &dir, &format!("127.0.0.1:{port}")).await;
    assert_eq!(server.url, url);
    let http = reqwest::Client::new();

    // A valid token: its claims make it a reader of local.public.nation only.
    let analyst = idp.token("analyst", &url, "sql.read").await;
    let resp = send(&http, &url, &analyst, "SELECT count(*) AS n FROM nation").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["rows"], json!([[25]]));
    let resp = send(&http, &url, &analyst, "SELECT * FROM region").await;
    assert_eq!(resp.status(), 404, "grants come from the claims");
    let tables: Value = get(&http, &url, "/v1/tables", &analyst)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["local.public.nation"], "{tables}");
    let keys = get(&http, &url, "/v1/keys", &analyst).await;
    assert_eq!(keys.status(), 403);
    // An admin's token administers.
    let admin = idp.token("admin", &url, "sql.read").await;
    let keys = get(&http, &url, "/v1/keys", &admin).await;
    assert_eq!(keys.status(), 200);
    // The CLI with SLUICE_TOKEN.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["query", "--server", &url, "--format", "csv"])
        .arg("SELECT n_name FROM nation WHERE n_nationkey = 7")
        .env("SLUICE_TOKEN", &analyst)
        .env_remove("SLUICE_API_KEY");
    assert_eq!(super::succeeds(cmd).await, "n_name\nGERMANY\n");
    // The MCP door takes the same token.
    let mcp = http
        .post(format!("{url}/mcp"))
        .bearer_auth(&analyst)
        .header("Accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(mcp.status(), 200);
    // So does Flight SQL, with the same grants.
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{flight_port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut flight = arrow_flight::flight_service_client::FlightServiceClient::new(channel);
    let ask = |sql: &str| crate::flight::bearer(&analyst, crate::flight::statement(sql));
    let info = flight
        .get_flight_info(ask("SELECT count(*) AS n FROM nation"))
        .await
        .unwrap()
        .into_inner();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches = crate::flight::get_batches(&mut flight, &analyst, ticket).await;
    assert_eq!(crate::cells(&batches), [["25"]]);
    let refused = flight
        .get_flight_info(ask("SELECT * FROM region"))
        .await
        .unwrap_err();
    assert_eq!(crate::flight::code_of(&refused), "table_not_found");

    // Valid, but no rule admits it: 403, never a default role.
    let nobody = idp.token("nobody", &url, "sql.read").await;
    let resp = send(&http, &url, &nobody, "SELECT 1").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "permission_denied"
    );
    // Valid, without the required scope: 403 insufficient_scope, and the challenge names it.
    let unscoped = idp.token("analyst", &url, "openid").await;
    let resp = send(&http, &url, &unscoped, "SELECT 1").await;
    assert_eq!(resp.status(), 403);
    let c = challenge(&resp);
    assert!(c.starts_with("Bearer error=\"insufficient_scope\""), "{c}");
    assert!(c.contains("scope=\"sql.read\""), "{c}");
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "insufficient_scope"
    );

    // No credentials: the challenge says where the metadata is and which scopes.
    let metadata = format!("{url}/.well-known/oauth-protected-resource");
    let resp = http
        .post(format!("{url}/v1/query"))
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        challenge(&resp),
        format!("Bearer resource_metadata=\"{metadata}\", scope=\"sql.read\"")
    );
    for path in ["", "/mcp"] {
        let prm: Value = http
            .get(format!("{metadata}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            prm,
            json!({"resource": url, "authorization_servers": [idp.issuer],
                "scopes_supported": ["sql.read"], "bearer_methods_supported": ["header"],
                "resource_name": "Sluice"})
        );
    }

    // Everything that is not a valid token for this server: 401 invalid_token.
    let t = now();
    let claims = |extra: Value| {
        let mut c = json!({"iss": idp.issuer, "aud": url, "sub": "analyst", "iat": t,
            "exp": t + 600, "scope": "sql.read", "roles": ["Sluice.Analyst"]});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    let rs = idp.kids[0].clone();
    let es = idp.kids[1].clone();
    // The provider's own keys sign the well-formed ones: RS256 and ES256 both pass.
    for key in [&rs, &es] {
        let good = idp.sign(claims(json!({})), json!({}), key).await;
        let resp = send(&http, &url, &good, "SELECT 1").await;
        assert_eq!(resp.status(), 200, "a token signed with {key}");
    }
    let good = idp.sign(claims(json!({})), json!({}), &rs).await;
    let (head, _, sig) = {
        let mut p = good.split('.');
        (p.next().unwrap(), p.next().unwrap(), p.next().unwrap())
    };
    let tampered = format!(
        "{head}.{}.{sig}",
        B64.encode(claims(json!({"roles": ["Sluice.Admin"]})).to_string())
    );
    let none = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        B64.encode(claims(json!({})).to_string())
    );
    // The classic confusion: HS256 keyed with the provider's public key.
    let public = idp.jwks().await["keys"][0].to_string();
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some(rs.clone()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()).unwrap(),
    )
    .unwrap();
    let refused = [
        (
            "expired",
            idp.sign(
                claims(json!({"iat": t - 7200, "exp": t - 3600})),
                json!({}),
                &rs,
            )
            .await,
        ),
        (
            "not yet valid",
            idp.sign(claims(json!({"nbf": t + 3600})), json!({}), &rs)
                .await,
        ),
        (
            "issued in the future",
            idp.sign(claims(json!({"iat": t + 3600})), json!({}), &rs)
                .await,
        ),
        (
            "wrong issuer",
            idp.sign(claims(json!({"iss": "http://127.0.0.1:1"})), json!({}), &rs)
                .await,
        ),
        (
            "wrong audience",
            idp.sign(
                claims(json!({"aud": "https://elsewhere.example"})),
                json!({}),
                &rs,
            )
            .await,
        ),
        (
            "no audience",
            idp.sign(
                json!({"iss": idp.issuer, "sub": "analyst", "exp": t + 600, "scope": "sql.read",
                    "roles": ["Sluice.Analyst"]}),
                json!({}),
                &rs,
            )
            .await,
        ),
        (
            "another resource's token",
            idp.token("analyst", "http://127.0.0.1:1/other", "sql.read")
                .await,
        ),
        ("tampered payload", tampered),
        (
            "unknown key",
            idp.sign(claims(json!({})), json!({}), "stray").await,
        ),
        ("alg none", none),
        ("HS256 with the public key", hs256),
        (
            "an ID token's typ",
            idp.sign(claims(json!({})), json!({"typ": "id_token+jwt"}), &rs)
                .await,
        ),
        (
            "an ES256 signature naming the RSA key",
            idp.sign(claims(json!({})), json!({"kid": rs}), &es).await,
        ),
        (
            "an ID token (nonce)",
            idp.sign(claims(json!({"nonce": "n-0S6_WzA2Mj"})), json!({}), &rs)
                .await,
        ),
        (
            "over 16 KiB",
            idp.sign(
                claims(json!({"pad": "x".repeat(17 * 1024)})),
                json!({}),
                &rs,
            )
            .await,
        ),
        ("not a JWT", "abc.def.ghi".to_owned()),
        (
            "an API key's shape",
            format!("sluice_key_0123456789ab_{}", "0".repeat(64)),
        ),
    ];
    for (what, token) in &refused {
        let resp = send(&http, &url, token, "SELECT 1").await;
        assert_eq!(resp.status(), 401, "{what}");
        let c = challenge(&resp);
        assert_eq!(
            c,
            format!(
                "Bearer error=\"invalid_token\", resource_metadata=\"{metadata}\", scope=\"sql.read\""
            ),
            "{what}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated", "{what}");
    }
    // A flood of unknown kids: at most one on-demand read of the key set in the interval
    // (the stray key above may have made it already).
    for i in 0..30 {
        let token = idp
            .sign(
                claims(json!({})),
                json!({"kid": format!("made-up-{i}")}),
                "stray",
            )
            .await;
        assert_eq!(send(&http, &url, &token, "SELECT 1").await.status(), 401);
    }
    assert_eq!(fetches(&http, &url, "unknown key").await, 1);

    // The audit log: issuer and subject on the token's queries, the refusals by reason, and
    // no token anywhere; the server's debug log has none either.
    let db = meta_client(&meta).await;
    let mut waiting = Waiting::new("the token's audited queries");
    let rows = loop {
        let rows = db
            .query(
                "SELECT issuer, subject, key_id, row_to_json(a)::text FROM sluice_audit a \
                 WHERE kind = 'query' AND subject = 'analyst'",
                &[],
            )
            .await
            .unwrap();
        if rows.len() >= 4 {
            break rows;
        }
        waiting.pause(rows.len()).await;
    };
    for row in &rows {
        assert_eq!(
            row.get::<_, Option<String>>(0).as_deref(),
            Some(idp.issuer.as_str())
        );
        assert!(row.get::<_, String>(2).starts_with("sub_"));
    }
    // Each query's row names the door it came through (the Flight query among them).
    let mut waiting = Waiting::new("the token's queries by door");
    loop {
        let doors = texts(
            &db,
            "SELECT DISTINCT door FROM sluice_audit \
             WHERE kind = 'query' AND subject = 'analyst' AND door IS NOT NULL ORDER BY 1",
        )
        .await;
        if doors == ["flight", "http"] {
            break;
        }
        waiting.pause(format!("{doors:?}")).await;
    }
    let mut waiting = Waiting::new("the refusals' audit rows");
    loop {
        let outcomes = texts(
            &db,
            "SELECT DISTINCT outcome FROM sluice_audit WHERE kind = 'auth' ORDER BY 1",
        )
        .await;
        let wanted = [
            "token_algorithm",
            "token_audience",
            "token_expired",
            "token_insufficient_scope",
            "token_malformed",
            "token_no_rule",
            "token_not_yet_valid",
            "token_signature",
            "token_type",
            "token_unknown_issuer",
            "token_unknown_key",
        ];
        if wanted.iter().all(|w| outcomes.iter().any(|o| o == w)) {
            break;
        }
        waiting.pause(format!("{outcomes:?}")).await;
    }
    let everything = texts(&db, "SELECT row_to_json(a)::text FROM sluice_audit a").await;
    let log = server.stop().await;
    let secrets: Vec<&str> = [&analyst, &admin, &nobody, &unscoped, &good]
        .into_iter()
        .map(String::as_str)
        .chain(refused.iter().map(|(_, t)| t.as_str()))
        .collect();
    for secret in secrets {
        // The signature part alone is enough to find a leaked token.
        let tail = secret.rsplit('.').next().unwrap_or(secret);
        if tail.len() < 16 {
            continue;
        }
        assert!(!log.contains(tail), "a token is in the server's log");
        assert!(
            everything.iter().all(|r| !r.contains(tail)),
            "a token is in the audit log"
        );
    }
}

#[actix_web::test]
async fn rotation_at_the_provider_is_followed_and_floods_of_unknown_keys_are_cheap() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut idp) = Provider::start(&dir.path().join("keys.json")).await else {
        return;
    };
    let old_kid = idp.kids[0].clone();
    // `steady` reads the key set only on demand (at most once an hour); `fresh` re-reads it
    // every 100 ms in the background.
    let server = |refresh_ms: u64| {
        let (port, issuer) = (free_port(), idp.issuer.clone());
        let extra = format!("jwks_min_refetch_ms = 3600000\njwks_refresh_ms = {refresh_ms}");
        TestApp::spawn_with(move |c| configure(c, port, &issuer, &extra))
    };
    let steady = server(3_600_000).await;
    let fresh = server(100).await;
    let http = reqwest::Client::new();
    let old_steady = idp.token("analyst", &steady.url, "sql.read").await;
    let old_fresh = idp.token("analyst", &fresh.url, "sql.read").await;
    assert_eq!(
        send(&http, &steady.url, &old_steady, "SELECT 1")
            .await
            .status(),
        200
    );
    assert_eq!(
        send(&http, &fresh.url, &old_fresh, "SELECT 1")
            .await
            .status(),
        200
    );
    assert_eq!(fetches(&http, &steady.url, "unknown key").await, 0);

    // The provider rotates: a new signing key first, the old one still published.
    idp.rotate(json!({"add_key": true})).await;
    assert_ne!(idp.kids[0], old_kid);
    assert_eq!(idp.kids[1], old_kid);
    let new_steady = idp.token("analyst", &steady.url, "sql.read").await;
    let kid = jsonwebtoken::decode_header(&new_steady).unwrap().kid;
    assert_eq!(kid.as_deref(), Some(idp.kids[0].as_str()));
    // Signed with a key `steady` has not seen: one read of the set, then it works.
    assert_eq!(
        send(&http, &steady.url, &new_steady, "SELECT 1")
            .await
            .status(),
        200
    );
    assert_eq!(fetches(&http, &steady.url, "unknown key").await, 1);
    assert_eq!(
        send(&http, &steady.url, &old_steady, "SELECT 1")
            .await
            .status(),
        200
    );
    // A flood of made-up kids: no further read within the interval.
    for i in 0..50 {
        let token = idp
            .sign(
                json!({"iss": idp.issuer, "aud": steady.url, "sub": "x", "exp": now() + 60,
                    "scope": "sql.read", "roles": ["Sluice.Analyst"]}),
                json!({"kid": format!("flood-{i}")}),
                "stray",
            )
            .await;
        assert_eq!(
            send(&http, &steady.url, &token, "SELECT 1").await.status(),
            401
        );
    }
    assert_eq!(fetches(&http, &steady.url, "unknown key").await, 1);

    // The provider drops the old key: `fresh` stops taking its tokens at its next read, even
    // the one it verified (and remembers) before.
    idp.rotate(json!({"keep": 1})).await;
    assert_eq!(idp.kids.len(), 1);
    let mut waiting = Waiting::new("the old key's token to be refused");
    loop {
        let status = send(&http, &fresh.url, &old_fresh, "SELECT 1")
            .await
            .status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        waiting.pause(status).await;
    }
    let new_fresh = idp.token("analyst", &fresh.url, "sql.read").await;
    assert_eq!(
        send(&http, &fresh.url, &new_fresh, "SELECT 1")
            .await
            .status(),
        200
    );
}

const SDK_CLIENT: &str = r#"
import asyncio, json, sys
import httpx2 as httpx
from mcp.client import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client

url, issuer = sys.argv[1], sys.argv[2]

class Memory:
    def __init__(self):
        self.tokens, self.info = None, None
    async def get_tokens(self):
        return self.tokens
    async def set_tokens(self, tokens):
        self.tokens = tokens
    async def get_client_info(self):
        return self.info
    async def set_client_info(self, info):
        self.info = info

async def main():
    storage = Memory()
    auth = ClientCredentialsOAuthProvider(
        server_url=url + "/mcp", storage=storage, client_id="analyst",
        client_secret="analyst-secret", scope="sql.read", issuer=issuer)
    http = httpx.AsyncClient(auth=auth, timeout=30)
    out = {}
    async with Client(streamable_http_client(url + "/mcp", http_client=http)) as c:
        out["tools"] = sorted(t.name for t in (await c.list_tools()).tools)
        r = await c.call_tool("query", {"sql": "SELECT count(*) AS n FROM nation"})
        assert not r.is_error, r.content
        out["rows"] = r.structured_content["rows"]
        r = await c.call_tool("list_tables", {})
        out["tables"] = [t["name"] for t in r.structured_content["tables"]]
    out["resource"] = auth.context.get_resource_url()
    out["auth_server"] = auth.context.auth_server_url
    print(json.dumps(out))

asyncio.run(main())
"#;

#[actix_web::test]
async fn the_mcp_python_sdk_signs_in_by_client_credentials() {
    let Some(python) = crate::needs(
        "SLUICE_TEST_PYTHON",
        "the project's Python with the mcp SDK",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(idp) = Provider::start(&dir.path().join("keys.json")).await else {
        return;
    };
    let port = free_port();
    let issuer = idp.issuer.clone();
    let app = TestApp::spawn_with(|c| configure(c, port, &issuer, "")).await;
    let mut cmd = Command::new(&python);
    cmd.args(["-c", SDK_CLIENT, &app.url, &idp.issuer]);
    let v: Value = serde_json::from_str(&super::succeeds(cmd).await).unwrap();
    // It found the provider through the metadata, asked for this resource, and its token
    // made it a reader of nation only.
    assert_eq!(v["auth_server"], idp.issuer, "{v}");
    assert_eq!(v["resource"], app.url, "{v}");
    assert_eq!(v["rows"], json!([[25]]), "{v}");
    assert_eq!(v["tables"], json!(["local.public.nation"]), "{v}");
    assert!(v["tools"].as_array().unwrap().contains(&json!("query")));
}
