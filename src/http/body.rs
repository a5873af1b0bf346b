//! Request and response bodies: a query request as JSON or bare SQL (`text/plain`,
//! `application/sql`), and the binary result bodies the API description names.

use actix_web::HttpRequest;
use actix_web::http::header::CONTENT_TYPE;
use bytes::Bytes;
use sluice_schemas::api::QueryRequest;

use crate::error::ApiError;

/// A binary body (Arrow IPC, Parquet), as the API description names it.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(#[allow(dead_code, reason = "only described, never built")] Vec<u8>);

/// Parses the body by its `Content-Type` (JSON when absent; sniffed for form-encoded, which
/// is what `curl -d` sends by default).
///
/// # Errors
/// `400 bad_request` for malformed JSON, unknown fields or non-UTF-8 SQL; `415` for another
/// type.
pub fn parse(req: &HttpRequest, body: &Bytes) -> Result<QueryRequest, ApiError> {
    let request = parse_body(req, body)?;
    // The document describes these as 64-bit integers, as most clients hold them.
    for (name, v) in [
        ("timeout_ms", request.timeout_ms),
        ("max_rows", request.max_rows),
    ] {
        if v.is_some_and(|v| i64::try_from(v).is_err()) {
            return Err(ApiError::bad_request(format!(
                "{name} must be at most {}",
                i64::MAX
            )));
        }
    }
    Ok(request)
}

fn parse_body(req: &HttpRequest, body: &Bytes) -> Result<QueryRequest, ApiError> {
    let ctype = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the body is not a valid query request: {e}"))
        }),
        // `curl -d` sends this type whatever the body is: read it by its first character.
        "application/x-www-form-urlencoded" if body.trim_ascii_start().starts_with(b"{") => {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("the body is not a valid query request: {e}"))
            })
        }
        "text/plain" | "application/sql" | "application/x-www-form-urlencoded" => {
            let sql = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the SQL text is not valid UTF-8"))?;
            Ok(QueryRequest {
                defaults: None,
                sql: sql.to_owned(),
                ..QueryRequest::default()
            })
        }
        other => Err(ApiError::unsupported_media_type(format!(
            "Content-Type {other} is not accepted; send application/json, text/plain or application/sql"
        ))),
    }
}
