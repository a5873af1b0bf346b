//! `GET /v1/tables` and `GET /v1/tables/{source}.{schema}.{table}`.

use actix_web::{HttpResponse, web};
use sluice_schemas::api::{ErrorBody, TableDescription, TableList};

use crate::error::Result;
use crate::governance::Principal;
use crate::query::QueryService;

/// `GET /v1/tables`'s query.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TablesQuery {
    /// Also list each table's columns (what a SQL editor completes).
    #[serde(default)]
    with_columns: bool,
}

/// Every table of every source.
#[utoipa::path(get, path = "/v1/tables", tag = "catalog",
    params(TablesQuery),
    responses(
        (status = 200, description = "Every table, sorted", body = TableList),
        (status = 400, description = "`bad_request`: a malformed query string", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: the key may not list", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(
    principal: Principal,
    query: web::Query<TablesQuery>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let tables = if query.with_columns {
        service.tables_with_columns(&principal).await?
    } else {
        service.tables(&principal).await?
    };
    Ok(HttpResponse::Ok().json(TableList { tables }))
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
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(service.describe(&principal, &name).await?))
}
