//! Routes: one thin handler file per resource.

mod body;
mod health;
mod queries;
mod query;
mod sources;
mod tables;

use actix_web::{HttpResponse, web};

use crate::error::ApiError;

/// Header carrying the query id on every query response.
pub const QUERY_ID_HEADER: &str = "x-query-id";

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").route(web::get().to(health::health)))
        .service(web::resource("/ready").route(web::get().to(health::ready)))
        .service(web::resource("/metrics").route(web::get().to(health::metrics)))
        .service(web::resource("/v1/query").route(web::post().to(query::query)))
        .service(web::resource("/v1/explain").route(web::post().to(query::explain)))
        .service(web::resource("/v1/queries").route(web::get().to(queries::list)))
        .service(
            web::resource("/v1/queries/{id}")
                .route(web::get().to(queries::get))
                .route(web::delete().to(queries::cancel)),
        )
        .service(web::resource("/v1/sources").route(web::get().to(sources::list)))
        .service(
            web::resource("/v1/sources/{name}/refresh").route(web::post().to(sources::refresh)),
        )
        .service(web::resource("/v1/tables").route(web::get().to(tables::list)))
        .service(web::resource("/v1/tables/{name}").route(web::get().to(tables::describe)))
        .app_data(
            web::QueryConfig::default().error_handler(|e, _| {
                ApiError::bad_request(format!("bad query string: {e}")).into()
            }),
        )
        .default_service(web::to(not_found));
}

async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::not_found(
        "not_found",
        "no such route; see the API reference in the README",
    ))
}
