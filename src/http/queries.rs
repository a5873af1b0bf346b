//! `GET /v1/queries`, `GET /v1/queries/{id}` and `DELETE /v1/queries/{id}`.

use actix_web::{HttpResponse, web};
use sluice_schemas::api::{ErrorBody, QueryList, QueryState, QueryStatus};

use crate::error::Result;
use crate::governance::Principal;
use crate::query::QueryService;

/// Recent queries the caller may see, newest first.
#[utoipa::path(get, path = "/v1/queries", tag = "queries",
    params(ListFilter),
    responses(
        (status = 200, description = "Recent queries, newest first", body = QueryList),
        (status = 400, description = "`bad_request`: a malformed query string", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(
    principal: Principal,
    filter: web::Query<ListFilter>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    let queries = service.recent(&principal, filter.state, filter.limit)?;
    Ok(HttpResponse::Ok().json(QueryList { queries }))
}

/// Query string of [`list`].
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListFilter {
    /// Only queries in this state.
    state: Option<QueryState>,
    /// At most this many (default 50, at most 1,024).
    #[param(minimum = 0, maximum = 1024)]
    limit: Option<u64>,
}

/// Status of a recent query (the last 1,024 are kept).
#[utoipa::path(get, path = "/v1/queries/{id}", tag = "queries",
    params(("id" = String, Path, description = "Query id (`X-Query-Id`)")),
    responses(
        (status = 200, description = "State, rows, bytes, elapsed, sources, error", body = QueryStatus),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`query_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get(
    principal: Principal,
    id: web::Path<String>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(service.status(&principal, &id)?))
}

/// Cancels a running query, its remote statements included; a finished one is left as it
/// is. Answers the status.
#[utoipa::path(delete, path = "/v1/queries/{id}", tag = "queries",
    params(("id" = String, Path, description = "Query id (`X-Query-Id`)")),
    responses(
        (status = 200, description = "The query's status after the cancel", body = QueryStatus),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`query_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn cancel(
    principal: Principal,
    id: web::Path<String>,
    service: web::Data<QueryService>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(service.cancel(&principal, &id)?))
}
