//! The actix-web server the HTTP-carried doors (`http/`, `mcp/`) are mounted on, and what they
//! share below themselves: what a request presents (`Authorization: Bearer <key>` or
//! `X-API-Key: <key>`) and where it came from, a bounded body read, and errors as HTTP answers
//! (the status API.md gives each code, `Retry-After`, `WWW-Authenticate`, `X-Query-Id`, the
//! JSON body). Checking a key is the query service's.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, AUTHORIZATION, HeaderValue, USER_AGENT};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use bytes::Bytes;

use crate::error::{ApiError, Code};
use crate::governance::Client;

/// The secret a request presents, if any; a malformed `Authorization` header presents none.
pub fn presented_secret(req: &HttpRequest) -> Option<&str> {
    if let Some(v) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(rest.trim());
        }
        return None;
    }
    req.headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The client's address and `User-Agent`, for the audit log (bounded: a header is not a
/// place to store a novel).
pub fn client(req: &HttpRequest) -> Client {
    Client {
        door: crate::governance::Door::Http,
        addr: req.peer_addr().map(|a| a.ip().to_string()),
        user_agent: req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
        certificate: req
            .conn_data::<std::sync::Arc<crate::governance::PeerCertificate>>()
            .cloned(),
    }
}

/// The HTTP status of `code`.
pub fn status(code: Code) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(status(self.code));
        match self.challenge().map(HeaderValue::from_str) {
            Some(Ok(challenge)) => {
                resp.insert_header((header::WWW_AUTHENTICATE, challenge));
            }
            _ if self.code == Code::Unauthenticated => {
                resp.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            _ => {}
        }
        if let Some(after) = self.retry_after() {
            resp.insert_header((header::RETRY_AFTER, after.as_secs().to_string()));
        }
        if let Some(id) = &self.query_id {
            resp.insert_header((crate::headers::QUERY_ID, id.as_str()));
        }
        resp.json(self.body())
    }
}

/// How much of an oversized body, past the limit, is read and dropped before answering `413`.
const DRAIN_BYTES: usize = 64 << 20;

/// Reads and drops what is left of a request body (at most `limit` bytes) before a refusal is
/// answered. An answer sent while the body is still coming is lost on HTTP/2: actix resets the
/// stream and the client sees a framing error instead of the `401` (curl: 290 of 300 POSTs with
/// a wrong key over h2 before this). A body over `limit` is left, and the client may not see the
/// answer; it would have been refused at `limit` anyway.
pub async fn discard_body<S>(payload: &mut S, limit: u64)
where
    S: futures::Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin,
{
    use futures::StreamExt;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = payload.next().await {
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            return;
        }
    }
}

/// Reads the payload, refusing bodies over `limit` bytes (`limits.max_request_bytes`).
///
/// # Errors
/// `request_too_large` over the limit; `bad_request` when the connection fails mid-body.
pub async fn read_body(
    mut payload: actix_web::web::Payload,
    limit: u64,
) -> Result<Bytes, ApiError> {
    use futures::StreamExt;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::bad_request("the request body could not be read"))?;
        total = total.saturating_add(chunk.len());
        if total > limit {
            // Read (and drop) the rest of a moderately oversized body, so the client, still
            // writing, hears the 413 instead of a reset connection.
            if total > limit.saturating_add(DRAIN_BYTES) {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&chunk);
    }
    if total > limit {
        return Err(ApiError::request_too_large(format!(
            "the request body is larger than {limit} bytes (limits.max_request_bytes)"
        )));
    }
    Ok(buf.freeze())
}

/// Whether `path` is the web console's page or one of its assets: they hold no data, so they
/// are served without a key (everything the page shows, it asks the API for with one).
pub fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bearer_or_header() {
        let secret = "sluice_key_0123456789ab_00";
        let bearer = TestRequest::default()
            .insert_header(("Authorization", format!("Bearer {secret}")))
            .to_http_request();
        assert_eq!(presented_secret(&bearer), Some(secret));
        let lower = TestRequest::default()
            .insert_header(("Authorization", format!("bearer  {secret} ")))
            .to_http_request();
        assert_eq!(presented_secret(&lower), Some(secret));
        let header = TestRequest::default()
            .insert_header(("X-API-Key", secret))
            .to_http_request();
        assert_eq!(presented_secret(&header), Some(secret));
        let basic = TestRequest::default()
            .insert_header(("Authorization", format!("Basic {secret}")))
            .insert_header(("X-API-Key", secret))
            .to_http_request();
        assert_eq!(presented_secret(&basic), None);
        assert_eq!(
            presented_secret(&TestRequest::default().to_http_request()),
            None
        );
    }
}
