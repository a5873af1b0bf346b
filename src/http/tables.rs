//! `GET /v1/tables` and `GET /v1/tables/{source}.{schema}.{table}`.

use actix_web::{HttpResponse, web};

use crate::auth::Principal;
use crate::error::{ApiError, Result};
use crate::state::AppState;

/// Every table of every source.
pub async fn list(_principal: Principal, state: web::Data<AppState>) -> Result<HttpResponse> {
    let tables: Vec<_> = state
        .planner
        .tables()
        .await
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": format!("{}.{}.{}", t.catalog, t.schema, t.table),
                "source": t.catalog,
                "schema": t.schema,
                "table": t.table,
                "columns": t.columns.fields().len(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "tables": tables })))
}

/// One table's columns.
pub async fn describe(
    _principal: Principal,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let name = name.into_inner();
    let Some(t) = state.planner.table(&name).await else {
        let source = name
            .split('.')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let known = name.split('.').count() < 3 || state.planner.has_catalog(&source);
        return Err(if known {
            ApiError::not_found("table_not_found", format!("table {name} not found"))
        } else {
            ApiError::not_found("source_not_found", format!("source {source} not found"))
        });
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "name": format!("{}.{}.{}", t.catalog, t.schema, t.table),
        "source": t.catalog,
        "schema": t.schema,
        "table": t.table,
        "columns": crate::format::columns_json(&t.columns),
    })))
}
