//! The Model Context Protocol at `/mcp`: the official SDK's Streamable HTTP service (`rmcp`,
//! a tower service on `http` 1) mounted in actix-web behind Sluice's own authentication.
//!
//! Both protocol eras are served on the one endpoint by the SDK: 2026-07-28 (stateless,
//! `server/discover`, per-request `_meta`, `Mcp-Method`/`Mcp-Name` headers checked against
//! the body) and the handshake revisions (`initialize`, `Mcp-Session-Id` with an idle
//! timeout, `DELETE /mcp`). What this module adds around it:
//! - the bridge: an actix request becomes an `http::Request` carrying the caller
//!   ([`Principal`]), its [`Client`] and the server's public base URL in its extensions; the
//!   response streams back (SSE) or is sent whole (JSON);
//! - sessions bound to the key that opened them: another key presenting the id is told the
//!   session does not exist;
//! - `Host` and `Origin` allow-lists from `[mcp]` (DNS-rebinding protection).
//!
//! The tools, resources and prompt are [`server::SluiceMcp`].

pub mod server;
mod tools;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sluice_schemas::McpConfig;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::governance::Client;
use crate::state::AppState;

/// Sessions remembered with their key; past this, the least recently used is forgotten (and
/// its client must initialize again).
const SESSIONS: usize = 10_000;

const SESSION_HEADER: &str = "mcp-session-id";

/// The `/mcp` endpoint: the SDK's service and the key each session belongs to.
pub struct Mcp {
    service: StreamableHttpService<server::SluiceMcp, LocalSessionManager>,
    sessions: Mutex<lru::LruCache<String, Option<String>>>,
    max_body: usize,
}

/// The server's own address as clients reach it, for links in tool results.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl Mcp {
    /// The endpoint for `state`, accepting the `Host`s and `Origin`s `config` allows besides
    /// loopback ones and `listen`.
    pub fn new(state: web::Data<AppState>, config: &McpConfig, listen: SocketAddr) -> Self {
        let cancel = state.closing.clone();
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
                usize::try_from(state.limits.max_request_bytes).unwrap_or(usize::MAX),
            )
            .with_sse_keep_alive(Some(Duration::from_secs(15)));
        let mut sessions = LocalSessionManager::default();
        sessions.session_config.keep_alive =
            Some(Duration::from_millis(config.session_idle_timeout_ms.max(1)));
        let handler = server::SluiceMcp::new(state.clone(), config);
        let service = StreamableHttpService::new(
            move || Ok(handler.clone()),
            std::sync::Arc::new(sessions),
            http,
        );
        let cap = std::num::NonZeroUsize::new(SESSIONS).unwrap_or(std::num::NonZeroUsize::MIN);
        Self {
            service,
            sessions: Mutex::new(lru::LruCache::new(cap)),
            max_body: usize::try_from(state.limits.max_request_bytes).unwrap_or(usize::MAX),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, lru::LruCache<String, Option<String>>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

/// A body that is not one JSON-RPC message gets its JSON-RPC error here (the SDK answers
/// these with a plain-text `415`).
fn precheck(body: &[u8]) -> Option<HttpResponse> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Err(e) => Some(rpc_error(
            StatusCode::BAD_REQUEST,
            PARSE_ERROR,
            &format!("Parse error: {e}"),
        )),
        Ok(serde_json::Value::Array(_)) => Some(rpc_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "Invalid Request: JSON-RPC batches are not supported; send one message per POST",
        )),
        Ok(serde_json::Value::Object(_)) => None,
        Ok(_) => Some(rpc_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "Invalid Request: the body must be one JSON-RPC message object",
        )),
    }
}

async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    principal: Principal,
    mcp: web::Data<Mcp>,
) -> Result<HttpResponse, ApiError> {
    let key = principal.key_id().map(str::to_owned);
    let session = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = &session {
        // A session is its key's: anyone else is told it does not exist.
        let owner = mcp.sessions().get(id).cloned();
        if owner.is_some_and(|o| o != key) {
            return Ok(session_not_found());
        }
    }
    let body = if req.method() == actix_web::http::Method::POST {
        let body = crate::http::body::read(payload, mcp.max_body).await?;
        if let Some(refused) = precheck(&body) {
            return Ok(refused);
        }
        body
    } else {
        Bytes::new()
    };
    let request = to_http(&req, body, principal)?;
    let mut service = mcp.service.clone();
    let response = match tower_service::Service::call(&mut service, request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status();
    match (&session, response.headers().get(SESSION_HEADER)) {
        // A handshake opened a session: it is this key's.
        (None, Some(id)) if status.is_success() => {
            if let Ok(id) = id.to_str() {
                mcp.sessions().put(id.to_owned(), key);
            }
        }
        (Some(id), _)
            if status == http::StatusCode::NOT_FOUND
                || (req.method() == actix_web::http::Method::DELETE && status.is_success()) =>
        {
            mcp.sessions().pop(id);
        }
        _ => {}
    }
    let deleted = req.method() == actix_web::http::Method::DELETE;
    Ok(to_actix(response, deleted).await)
}

/// The actix request as the SDK's `http` 1 request, with the caller in its extensions.
fn to_http(
    req: &HttpRequest,
    body: Bytes,
    principal: Principal,
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
    request.extensions_mut().insert(crate::auth::client(req));
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
