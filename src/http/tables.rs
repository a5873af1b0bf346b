//! `GET /v1/tables` and `GET /v1/tables/{source}.{schema}.{table}`.

use actix_web::{HttpResponse, web};
use sluice_schemas::api::{ErrorBody, Operation, TableDescription, TableList, TableSummary};

use crate::auth::Principal;
use crate::error::{ApiError, Result};
use crate::state::AppState;

/// Every table of every source.
#[utoipa::path(get, path = "/v1/tables", tag = "catalog",
    responses(
        (status = 200, description = "Every table, sorted", body = TableList),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: the key may not list", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(principal: Principal, state: web::Data<AppState>) -> Result<HttpResponse> {
    let tables = visible(&state, &principal).await?;
    Ok(HttpResponse::Ok().json(TableList { tables }))
}

/// Every table `principal` may read, sorted (a reader lists only what it may read).
///
/// # Errors
/// `permission_denied` for a key that may not list.
pub async fn visible(state: &AppState, principal: &Principal) -> Result<Vec<TableSummary>> {
    principal.require(Operation::List)?;
    Ok(principal
        .planner(&state.planner)
        .tables()
        .await
        .iter()
        .map(|t| TableSummary {
            name: format!("{}.{}.{}", t.catalog, t.schema, t.table),
            source: t.catalog.clone(),
            schema: t.schema.clone(),
            table: t.table.clone(),
            columns: t.columns.fields().len() as u64,
        })
        .collect())
}

/// One table's columns.
#[utoipa::path(get, path = "/v1/tables/{name}", tag = "catalog",
    params(("name" = String, Path, description = "`source.schema.table`, or a shorter name resolved with the server's defaults", example = "local.public.nation")),
    responses(
        (status = 200, description = "The table's columns as clients receive them", body = TableDescription),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: the key may not list", body = ErrorBody),
        (status = 404, description = "`table_not_found` or `source_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn describe(
    principal: Principal,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(describe_table(&state, &principal, &name).await?))
}

/// One table's columns, if `principal` may read it (otherwise it does not exist).
///
/// # Errors
/// `permission_denied` for a key that may not list; `table_not_found`, `source_not_found`.
pub async fn describe_table(
    state: &AppState,
    principal: &Principal,
    name: &str,
) -> Result<TableDescription> {
    principal.require(Operation::List)?;
    let planner = principal.planner(&state.planner);
    let Some(t) = planner.table(name).await else {
        let source = name
            .split('.')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let known = name.split('.').count() < 3 || planner.has_catalog(&source);
        return Err(if known {
            ApiError::not_found("table_not_found", format!("table {name} not found"))
        } else {
            ApiError::not_found("source_not_found", format!("source {source} not found"))
        });
    };
    Ok(TableDescription {
        name: format!("{}.{}.{}", t.catalog, t.schema, t.table),
        source: t.catalog.clone(),
        schema: t.schema.clone(),
        table: t.table.clone(),
        columns: crate::format::columns(&t.columns),
    })
}
