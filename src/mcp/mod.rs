//! The Model Context Protocol at `/mcp`: the official SDK's Streamable HTTP service (`rmcp`,
//! a tower service on `http` 1) mounted in actix-web behind Sluice's own authentication.
//!
//! Both protocol eras are served on the one endpoint by the SDK: 2026-07-28 (stateless,
//! `server/discover`, per-request `_meta`, `Mcp-Method`/`Mcp-Name` headers checked against
//! the body) and the handshake revisions (`initialize`, `Mcp-Session-Id` with an idle
//! timeout, `DELETE /mcp`). What this module adds around it:
//! - authentication of every request through the query service (the same keys, limits and
//!   audit as every door); a handshake (`initialize`) is charged to the key's rate limit like
//!   a tool call;
//! - the bridge: an actix request becomes an `http::Request` carrying the caller
//!   ([`Principal`]), its [`Client`] and the server's public base URL in its extensions; the
//!   response streams back (SSE) or is sent whole (JSON);
//! - sessions (`sessions`) bound to the key that opened them, capped per key and
//!   server-wide, expired after `[mcp] session_idle_timeout_ms`: an id this server does not
//!   know, or another key's, is told the session does not exist;
//! - `Host` and `Origin` allow-lists from `[mcp]` (DNS-rebinding protection).
//!
//! The tools, resources and prompt are `server::SluiceMcp`.

mod calls;
mod results;
mod server;
mod sessions;
mod tools;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sluice_schemas::McpConfig;

use self::sessions::Sessions;
use crate::error::ApiError;
use crate::governance::{Client, Principal};
use crate::query::QueryService;
use crate::web::{client, presented_secret, read_body, status};

const SESSION_HEADER: &str = "mcp-session-id";

/// The `/mcp` endpoint: the SDK's service, its sessions and the key each belongs to.
pub struct Mcp {
    query: Arc<QueryService>,
    service: StreamableHttpService<server::SluiceMcp, LocalSessionManager>,
    /// The SDK's sessions, asked whether one still exists.
    manager: Arc<LocalSessionManager>,
    sessions: Arc<Sessions>,
    max_body: u64,
}

/// The server's own address as clients reach it, for links in tool results.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl Mcp {
    /// The endpoint over `query`, accepting the `Host`s and `Origin`s `config` allows besides
    /// loopback ones and `listen`. Must be called inside the actix System: idle sessions are
    /// closed by a task on it.
    pub fn new(query: Arc<QueryService>, config: &McpConfig, listen: SocketAddr) -> Self {
        let cancel = query.closing().clone();
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1", "[::1]"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !listen.ip().is_unspecified() {
            hosts.push(listen.ip().to_string());
        }
        hosts.extend(config.allowed_hosts.iter().cloned());
        let mut origins: Vec<String> = [
            "http://localhost:*",
            "http://127.0.0.1:*",
            "http://[::1]:*",
            "https://localhost:*",
            "https://127.0.0.1:*",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        origins.extend(config.allowed_origins.iter().cloned());
        let http = StreamableHttpServerConfig::default()
            .with_allowed_hosts(hosts)
            .with_allowed_origins(origins)
            .enforce_origin_validation()
            .with_cancellation_token(cancel.clone())
            .with_max_request_body_bytes(
                usize::try_from(query.limits().max_request_bytes).unwrap_or(usize::MAX),
            )
            .with_sse_keep_alive(Some(Duration::from_secs(15)));
        let idle = Duration::from_millis(config.session_idle_timeout_ms.max(1));
        let mut manager = LocalSessionManager::default();
        // Expiry is the registry's (below); the SDK's own timer is only a backstop for a
        // worker whose connection vanished.
        manager.session_config.keep_alive = Some(idle * 2);
        let manager = Arc::new(manager);
        let handler = server::SluiceMcp::new(Arc::clone(&query), config);
        let service =
            StreamableHttpService::new(move || Ok(handler.clone()), Arc::clone(&manager), http);
        let sessions = Arc::new(Sessions::new(
            config.max_sessions_per_key,
            config.max_sessions,
            idle,
        ));
        actix_web::rt::spawn(expire_sessions(
            Arc::downgrade(&sessions),
            Arc::downgrade(&manager),
            cancel,
        ));
        Self {
            max_body: query.limits().max_request_bytes,
            query,
            service,
            manager,
            sessions,
        }
    }
}

/// Closes sessions unused for the idle timeout, until the server stops (or the endpoint is
/// gone).
async fn expire_sessions(
    sessions: std::sync::Weak<Sessions>,
    manager: std::sync::Weak<LocalSessionManager>,
    closing: tokio_util::sync::CancellationToken,
) {
    let Some(every) = sessions.upgrade().map(|s| s.sweep_every()) else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = closing.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (Some(sessions), Some(manager)) = (sessions.upgrade(), manager.upgrade()) else {
            return;
        };
        for id in sessions.expire() {
            let _ = manager.close_session(&Arc::from(id.as_str())).await;
        }
        #[expect(clippy::cast_precision_loss, reason = "a gauge")]
        metrics::gauge!(crate::metrics::MCP_SESSIONS).set(sessions.open() as f64);
    }
}

/// `POST`, `GET` and `DELETE /mcp`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/mcp")
            .route(web::post().to(handle))
            .route(web::get().to(handle))
            .route(web::delete().to(handle)),
    );
}

/// A JSON-RPC error answer with `status`, for what is refused before a message is read.
fn rpc_error(status: StatusCode, code: i64, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message},
    }))
}

/// JSON-RPC's "Invalid Request".
const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC's "Parse error".
const PARSE_ERROR: i64 = -32700;
/// The code MCP servers use for an unknown session.
const SESSION_NOT_FOUND: i64 = -32001;

fn session_not_found() -> HttpResponse {
    rpc_error(
        StatusCode::NOT_FOUND,
        SESSION_NOT_FOUND,
        "Session not found: initialize a new session",
    )
}

/// A body that is not one JSON-RPC message gets its JSON-RPC error (code and message) here
/// (the SDK answers these with a plain-text `415`); one message is returned.
fn precheck(body: &[u8]) -> Result<serde_json::Value, (i64, String)> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Err(e) => Err((PARSE_ERROR, format!("Parse error: {e}"))),
        Ok(serde_json::Value::Array(_)) => Err((
            INVALID_REQUEST,
            "Invalid Request: JSON-RPC batches are not supported; send one message per POST"
                .to_owned(),
        )),
        Ok(message @ serde_json::Value::Object(_)) => Ok(message),
        Ok(_) => Err((
            INVALID_REQUEST,
            "Invalid Request: the body must be one JSON-RPC message object".to_owned(),
        )),
    }
}

/// A refusal before the SDK sees the message (a session cap, the rate limit), as a JSON-RPC
/// error with the code's status and `Retry-After`.
fn refusal(e: &ApiError) -> HttpResponse {
    let mut response = HttpResponse::build(status(e.code));
    if let Some(after) = e.retry_after() {
        response.insert_header((
            actix_web::http::header::RETRY_AFTER,
            after.as_secs().to_string(),
        ));
    }
    response.json(serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": SERVER_REFUSED, "message": e.message, "data": {"code": e.code.as_str()}},
    }))
}

/// The JSON-RPC code of a request refused for the caller's limits.
const SERVER_REFUSED: i64 = -32000;

async fn handle(req: HttpRequest, mut payload: web::Payload, mcp: web::Data<Mcp>) -> HttpResponse {
    let client = crate::governance::Client {
        door: crate::governance::Door::Mcp,
        ..client(&req)
    };
    let principal = match mcp
        .query
        .authenticate(presented_secret(&req), &client)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            // An OAuth client learns where to sign in from this 401: it must arrive whole.
            crate::web::discard_body(&mut payload, mcp.max_body).await;
            return e.error_response();
        }
    };
    let owner = principal.key_id().map(str::to_owned);
    let session = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // A session is its key's: anyone else, or anyone after it expired or the server
    // restarted, is told it does not exist.
    if let Some(id) = &session
        && !mcp.sessions.check(id, &owner)
    {
        crate::web::discard_body(&mut payload, mcp.max_body).await;
        return session_not_found();
    }
    let post = req.method() == actix_web::http::Method::POST;
    let (body, message) = if post {
        let body = match read_body(payload, mcp.max_body).await {
            Ok(b) => b,
            Err(e) => return e.error_response(),
        };
        match precheck(&body) {
            Ok(message) => (body, Some(message)),
            Err((code, message)) => return rpc_error(StatusCode::BAD_REQUEST, code, &message),
        }
    } else {
        (Bytes::new(), None)
    };
    // A handshake opens a session: it costs a request of the key's rate, like a tool call,
    // and a slot under the key's and the server's caps, given back if no session opens.
    let handshake = session.is_none()
        && message
            .as_ref()
            .is_some_and(|m| m["method"] == "initialize");
    let reservation = if handshake {
        if let Err(e) = mcp.query.charge(&principal) {
            return refusal(&e);
        }
        match mcp.sessions.reserve(&owner) {
            Ok(r) => Some(r),
            Err(e) => return refusal(&e),
        }
    } else {
        None
    };
    let mut request = match to_http(&req, body, principal, client) {
        Ok(r) => r,
        Err(e) => return e.error_response(),
    };
    // The tool call runs in the session's task, outside this request's span: it is told the
    // span (whose trace `X-Trace-Id` names) as its parent, unless the call's `_meta` names one.
    if let Some(tp) = crate::telemetry::propagation::traceparent(&tracing::Span::current())
        && let Ok(v) = http::HeaderValue::from_str(&tp)
    {
        request
            .headers_mut()
            .insert(crate::telemetry::propagation::TRACEPARENT, v);
    }
    let mut service = mcp.service.clone();
    let call = async move {
        match tower_service::Service::call(&mut service, request).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    };
    let response = match reservation {
        // A handshake runs to its end in a task of its own, even if the client leaves: a
        // session the SDK opens is always registered to its key and counted.
        Some(reservation) => {
            let handshake = actix_web::rt::spawn(async move {
                let response = call.await;
                let opened = response
                    .headers()
                    .get(SESSION_HEADER)
                    .and_then(|v| v.to_str().ok());
                if let Some(id) = opened.filter(|_| response.status().is_success()) {
                    reservation.open(id.to_owned());
                }
                response
            });
            match handshake.await {
                Ok(r) => r,
                Err(e) => return ApiError::internal(None, &e).error_response(),
            }
        }
        None => call.await,
    };
    if let Some(id) = &session {
        let ended = (req.method() == actix_web::http::Method::DELETE
            && response.status().is_success())
            || (response.status() == http::StatusCode::NOT_FOUND
                && !mcp
                    .manager
                    .has_session(&Arc::from(id.as_str()))
                    .await
                    .unwrap_or(false));
        // A 404 for a method the SDK does not know is not the end of the session: only the
        // SDK's own word that it is gone is.
        if ended {
            mcp.sessions.forget(id);
        }
    }
    let deleted = req.method() == actix_web::http::Method::DELETE;
    to_actix(response, deleted).await
}

/// The actix request as the SDK's `http` 1 request, with the caller in its extensions.
fn to_http(
    req: &HttpRequest,
    body: Bytes,
    principal: Principal,
    client: Client,
) -> Result<http::Request<Full<Bytes>>, ApiError> {
    let mut builder = http::Request::builder()
        .method(req.method().as_str())
        .uri(req.uri().to_string());
    for (name, value) in req.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    let mut request = builder.body(Full::new(body)).map_err(|e| {
        ApiError::bad_request(format!("a request the MCP endpoint cannot read: {e}"))
    })?;
    let info = req.connection_info();
    let base = BaseUrl(format!("{}://{}", info.scheme(), info.host()));
    request.extensions_mut().insert(principal);
    request.extensions_mut().insert(client);
    request.extensions_mut().insert(base);
    Ok(request)
}

/// The SDK's response as actix's: event streams are streamed, anything else sent whole; its
/// plain-text refusals become JSON-RPC errors, and a session's end is `204` (the official
/// clients expect 200 or 204, the SDK says 202).
async fn to_actix(
    response: http::Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>,
    deleted: bool,
) -> HttpResponse {
    let (parts, body) = response.into_parts();
    let status = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::OK);
    if deleted && status == StatusCode::ACCEPTED {
        return HttpResponse::NoContent().finish();
    }
    let is_json = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.is_client_error() && !is_json {
        let text = match body.collect().await {
            Ok(c) => String::from_utf8_lossy(&c.to_bytes()).into_owned(),
            Err(never) => match never {},
        };
        let code = if status == StatusCode::NOT_FOUND {
            SESSION_NOT_FOUND
        } else {
            INVALID_REQUEST
        };
        let mut out = rpc_error(status, code, text.trim());
        for (name, value) in &parts.headers {
            if name == http::header::ALLOW {
                out.headers_mut().insert(
                    actix_web::http::header::ALLOW,
                    actix_web::http::header::HeaderValue::from_bytes(value.as_bytes())
                        .unwrap_or(actix_web::http::header::HeaderValue::from_static("POST")),
                );
            }
        }
        return out;
    }
    let mut out = HttpResponse::build(status);
    let mut streamed = false;
    for (name, value) in &parts.headers {
        if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
            continue;
        }
        if name == http::header::CONTENT_TYPE && value.as_bytes().starts_with(b"text/event-stream")
        {
            streamed = true;
        }
        out.append_header((name.as_str(), value.as_bytes()));
    }
    if streamed {
        let stream = body
            .into_data_stream()
            .map(|chunk| chunk.map_err(|never: Infallible| match never {}));
        return out.streaming::<_, Infallible>(stream);
    }
    match body.collect().await {
        Ok(collected) => out.body(collected.to_bytes()),
        Err(never) => match never {},
    }
}

/// The caller of an MCP request, from the extensions [`to_http`] set.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who is calling.
    pub principal: Principal,
    /// Where from, for the audit log.
    pub client: Client,
    /// The server as the caller reaches it.
    pub base_url: String,
}

impl Caller {
    /// The caller of the request whose `http` parts are `parts`.
    pub fn of(parts: Option<&http::request::Parts>) -> Option<Self> {
        let parts = parts?;
        Some(Self {
            principal: parts.extensions.get::<Principal>()?.clone(),
            client: parts
                .extensions
                .get::<Client>()
                .cloned()
                .unwrap_or_default(),
            base_url: parts
                .extensions
                .get::<BaseUrl>()
                .map(|b| b.0.clone())
                .unwrap_or_default(),
        })
    }
}
