//! `GET /docs`: the API reference page, self-contained.

use actix_web::HttpResponse;

/// The page.
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body("<!doctype html>")
}
