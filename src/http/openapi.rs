//! `GET /openapi.json`: the OpenAPI 3.1 description of every route, generated from the
//! handlers' own annotations and the request and response types they use.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin, docs, health, identity, keys, policies, queries, query, sources, spool, stats, tables,
};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice",
        description = "A federated SQL gateway: read-only SQL over HTTP, planned by DataFusion, \
                       streamed as Arrow, JSON, NDJSON, CSV or Parquet. Every error is \
                       `{\"error\": {\"code\", \"message\", \"query_id\"}}` with the status its \
                       cause gives (see the README's error model).",
        license(name = "Apache-2.0"),
    ),
    paths(
        query::query,
        query::explain,
        queries::list,
        queries::get,
        queries::cancel,
        query::result,
        spool::manifest,
        spool::acknowledge,
        spool::segment,
        sources::list,
        sources::create,
        sources::replace,
        sources::delete,
        sources::refresh,
        tables::list,
        tables::describe,
        keys::create,
        keys::list,
        keys::revoke,
        keys::rotate,
        keys::usage,
        policies::list,
        policies::create,
        policies::replace,
        policies::delete,
        health::health,
        health::ready,
        health::metrics,
        stats::me,
        stats::stats,
        admin::get,
        admin::put,
        admin::reload,
        identity::protected_resource,
        identity::protected_resource_mcp,
        document,
        docs::page,
    ),
    modifiers(&Security),
    tags(
        (name = "queries", description = "Run, explain, watch and cancel queries"),
        (name = "catalog", description = "Tables and columns"),
        (name = "sources", description = "Sources and their health"),
        (name = "keys", description = "API keys, their grants and limits, and their usage (admin keys only)"),
        (name = "policies", description = "Row filters and column masks (admins only)"),
        (name = "operations", description = "Liveness, readiness, metrics and this description"),
    )
)]
pub struct ApiDoc;

/// `Authorization: Bearer <key>` or `X-API-Key: <key>`.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`Authorization: Bearer sluice_...`), or with `[auth.oidc]` an \
                         OAuth access token (a JWT from a trusted issuer)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "The same API key in a header of its own",
            ))),
        );
    }
}

/// The document as JSON, built once.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}
