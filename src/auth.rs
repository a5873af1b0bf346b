//! What a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`, and where it
//! came from. Checking the key is [`crate::governance::Governance::authenticate`].

use actix_web::HttpRequest;
use actix_web::http::header::{AUTHORIZATION, USER_AGENT};

use crate::governance::Client;
pub use crate::governance::Principal;

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
        addr: req.peer_addr().map(|a| a.ip().to_string()),
        user_agent: req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
    }
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
