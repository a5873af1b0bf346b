//! The HTTP API door (`/v1/...`, health, metrics, the API description): one thin handler
//! file per resource translating requests to the query service and its answers back, and the
//! one middleware that authenticates every route but the open ones.

mod admin;
mod body;
mod docs;
mod health;
mod identity;
mod keys;
mod openapi;
mod policies;
mod queries;
mod query;
mod sources;
mod spool;
mod stats;
mod tables;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::ALLOW;
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use metrics_exporter_prometheus::PrometheusHandle;
use sluice_schemas::api::Operation;

use tracing::Instrument as _;

use crate::error::{ApiError, Code};
use crate::governance::Principal;
use crate::query::{QueryService, new_query_id};
use crate::web::{client, presented_secret};

/// What only the HTTP door needs besides the query service.
pub struct HttpOptions {
    /// Whether `/metrics` needs a key.
    pub protect_metrics: bool,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
}

/// Registers every route. Authentication is not here: [`authenticate`] wraps them all.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").route(web::get().to(health::health)))
        .service(web::resource("/ready").route(web::get().to(health::ready)))
        .service(web::resource("/metrics").route(web::get().to(health::metrics)))
        .service(web::resource("/openapi.json").route(web::get().to(openapi::document)))
        .service(web::resource("/docs").route(web::get().to(docs::page)))
        .service(
            web::resource(identity::PATHS[0]).route(web::get().to(identity::protected_resource)),
        )
        .service(
            web::resource(identity::PATHS[1])
                .route(web::get().to(identity::protected_resource_mcp)),
        )
        .service(web::resource("/v1/query").route(web::post().to(query::query)))
        .service(web::resource("/v1/explain").route(web::post().to(query::explain)))
        .service(web::resource("/v1/queries").route(web::get().to(queries::list)))
        .service(
            web::resource("/v1/queries/{id}")
                .route(web::get().to(queries::get))
                .route(web::delete().to(queries::cancel)),
        )
        .service(web::resource("/v1/queries/{id}/result").route(web::get().to(query::result)))
        .service(
            web::resource("/v1/queries/{id}/spool")
                .route(web::get().to(spool::manifest))
                .route(web::delete().to(spool::acknowledge)),
        )
        .service(
            web::resource("/v1/queries/{id}/spool/{index}").route(web::get().to(spool::segment)),
        )
        .service(
            web::resource("/v1/sources")
                .route(web::get().to(sources::list))
                .route(web::post().to(sources::create)),
        )
        .service(
            web::resource("/v1/sources/{name}")
                .route(web::put().to(sources::replace))
                .route(web::delete().to(sources::delete)),
        )
        .service(
            web::resource("/v1/sources/{name}/refresh").route(web::post().to(sources::refresh)),
        )
        .service(web::resource("/v1/tables").route(web::get().to(tables::list)))
        .service(web::resource("/v1/me").route(web::get().to(stats::me)))
        .service(web::resource("/v1/stats").route(web::get().to(stats::stats)))
        .service(
            web::resource("/v1/admin/log")
                .route(web::get().to(admin::get))
                .route(web::put().to(admin::put)),
        )
        .service(web::resource("/v1/admin/reload").route(web::post().to(admin::reload)))
        .service(web::resource("/v1/tables/{name}").route(web::get().to(tables::describe)))
        .service(
            web::resource("/v1/keys")
                .route(web::post().to(keys::create))
                .route(web::get().to(keys::list)),
        )
        .service(web::resource("/v1/keys/{id}").route(web::delete().to(keys::revoke)))
        .service(web::resource("/v1/keys/{id}/rotate").route(web::post().to(keys::rotate)))
        .service(web::resource("/v1/keys/{id}/usage").route(web::get().to(keys::usage)))
        .service(
            web::resource("/v1/policies")
                .route(web::post().to(policies::create))
                .route(web::get().to(policies::list)),
        )
        .service(
            web::resource("/v1/policies/{name}")
                .route(web::put().to(policies::replace))
                .route(web::delete().to(policies::delete)),
        )
        .app_data(
            web::QueryConfig::default().error_handler(|e, _| {
                ApiError::bad_request(format!("bad query string: {e}")).into()
            }),
        )
        .app_data(
            web::JsonConfig::default()
                .limit(64 * 1024)
                .error_handler(|e, _| match e {
                    actix_web::error::JsonPayloadError::ContentType => {
                        ApiError::unsupported_media_type("send the body as application/json").into()
                    }
                    actix_web::error::JsonPayloadError::Overflow { .. }
                    | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                        ApiError::request_too_large("the body is over 64 KiB").into()
                    }
                    e => ApiError::bad_request(format!("bad JSON body: {e}")).into(),
                }),
        )
        .app_data(
            web::PathConfig::default()
                .error_handler(|e, _| ApiError::bad_request(format!("bad path: {e}")).into()),
        )
        .default_service(web::to(not_found));
}

async fn not_found() -> HttpResponse {
    ApiError::not_found(
        Code::NotFound,
        "no such route; GET /docs lists them, GET /openapi.json describes them",
    )
    .error_response()
}

/// The outermost middleware: the request's span (continuing the client's `traceparent`) with
/// its `X-Trace-Id`, when tracing is on, the HTTP metrics (by route pattern, so the label
/// set is bounded by the routes), and the access line (`sluice::http`).
///
/// # Errors
/// Only what the wrapped service returns.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + Unpin + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let route = req.match_pattern().unwrap_or_else(|| "other".to_owned());
    let method: &'static str = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    };
    // Probes and scrapes (every few seconds from each balancer and Prometheus) start no trace.
    let traced =
        crate::telemetry::tracing_on() && !matches!(req.path(), "/health" | "/ready" | "/metrics");
    let span = if traced {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let span = tracing::info_span!(
            target: "sluice::span",
            "HTTP request",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        crate::telemetry::propagation::continue_trace(
            &span,
            header(crate::telemetry::propagation::TRACEPARENT),
            header(crate::telemetry::propagation::TRACESTATE),
        );
        span
    } else {
        tracing::Span::none()
    };
    let trace_id = crate::telemetry::propagation::trace_id(&span);
    if let Some(id) = &trace_id {
        span.record("trace_id", id.as_str());
    }
    // The access line's request half, kept as it came; written only if the line is kept.
    let access = AccessLine::of(&req, started);
    let mut res = next.call(req).instrument(span.clone()).await?;
    let status = res.status();
    span.record("http.response.status_code", status.as_u16());
    if let Some(error) = res.response().error() {
        tracing::debug!(target: "sluice::http", error = ?error, "Answered from an error.");
    }
    if let Some(id) = trace_id
        && let Ok(v) = actix_web::http::header::HeaderValue::from_str(&id)
    {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(crate::headers::TRACE_ID),
            v,
        );
    }
    let (requests, duration) = http_metrics(route, method, status);
    requests.increment(1);
    duration.record(started.elapsed().as_secs_f64());
    Ok(res.map_body(|_, body| AccessLog {
        body,
        line: access,
        status,
        size: 0,
    }))
}

/// A worker's handles of the HTTP metrics, by route, then method and status.
type HttpMetrics = std::collections::HashMap<
    String,
    std::collections::HashMap<(&'static str, u16), (metrics::Counter, metrics::Histogram)>,
>;

thread_local! {
    /// Kept per worker thread: naming a labelled metric builds its key and looks it up in the
    /// recorder's locked registry, on every request otherwise. Bounded by the routes (an
    /// unmatched path is `other`), methods and statuses.
    static HTTP_METRICS: std::cell::RefCell<HttpMetrics> = std::cell::RefCell::default();
}

/// The request counter and duration histogram of one route, method and status.
fn http_metrics(
    route: String,
    method: &'static str,
    status: StatusCode,
) -> (metrics::Counter, metrics::Histogram) {
    HTTP_METRICS.with_borrow_mut(|routes| {
        let codes = match routes.get_mut(route.as_str()) {
            Some(codes) => codes,
            None => routes.entry(route.clone()).or_default(),
        };
        codes
            .entry((method, status.as_u16()))
            .or_insert_with(|| {
                (
                    metrics::counter!(crate::metrics::HTTP_REQUESTS_TOTAL, "route" => route.clone(), "method" => method, "status" => status.as_str().to_owned()),
                    metrics::histogram!(crate::metrics::HTTP_REQUEST_DURATION_SECONDS, "route" => route, "method" => method),
                )
            })
            .clone()
    })
}

/// An access line's request half: client, request line, and when the request came.
///
/// Written here rather than by actix-web's `Logger`, which renders its request half (and
/// parses the connection's forwarding headers) into strings on every request whatever the
/// log level keeps: 4% of a cached answer's time at 16 connections (benches/RESULTS.md).
/// These are the request's own parts (the URI shares the request's bytes), formatted only
/// when the line is written.
struct AccessLine {
    client: Option<std::net::IpAddr>,
    method: Method,
    uri: actix_web::http::Uri,
    version: actix_web::http::Version,
    started: std::time::Instant,
}

impl AccessLine {
    fn of(req: &ServiceRequest, started: std::time::Instant) -> Self {
        Self {
            client: req.peer_addr().map(|a| a.ip()),
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            started,
        }
    }
}

/// A response body that counts what it sends and writes the access line when it is dropped
/// (sent whole, cut, or abandoned by the client), with the time until then.
struct AccessLog<B> {
    body: B,
    line: AccessLine,
    status: StatusCode,
    size: usize,
}

impl<B: MessageBody + Unpin> MessageBody for AccessLog<B> {
    type Error = B::Error;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<bytes::Bytes, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_next(cx);
        if let std::task::Poll::Ready(Some(Ok(chunk))) = &polled {
            self.size += chunk.len();
        }
        polled
    }
}

impl<B> Drop for AccessLog<B> {
    fn drop(&mut self) {
        let line = &self.line;
        let client: &dyn std::fmt::Display = match &line.client {
            Some(ip) => ip,
            None => &"-",
        };
        // As actix-web's `%r` had it: `?query` only when the query is not empty.
        let (mark, query) = match line.uri.query() {
            Some(q) if !q.is_empty() => ("?", q),
            _ => ("", ""),
        };
        tracing::info!(
            target: "sluice::http",
            "{client} \"{} {}{mark}{query} {:?}\" {} {} {:.6}ms",
            line.method,
            line.uri.path(),
            line.version,
            self.status.as_u16(),
            self.size,
            line.started.elapsed().as_secs_f64() * 1000.0
        );
    }
}

/// Routes this middleware lets through unauthenticated: liveness, readiness, the API
/// description and its page, the Protected Resource Metadata, and `/mcp` (the MCP door
/// authenticates its own requests).
/// `/metrics` is open unless `auth.protect_metrics` is set.
fn is_open(path: &str, protect_metrics: bool) -> bool {
    matches!(
        path,
        "/health" | "/ready" | "/openapi.json" | "/docs" | "/mcp"
    ) || identity::PATHS.contains(&path)
        || crate::web::is_console_path(path)
        || (path == "/metrics" && !protect_metrics)
}

/// Routes that start a query: they get their id before anything else happens, so every answer
/// they give, a `401` included, carries `X-Query-Id`.
fn starts_query(path: &str) -> bool {
    matches!(path, "/v1/query" | "/v1/explain")
}

/// The id of the query a request starts, minted by [`authenticate`].
#[derive(Debug, Clone)]
pub struct QueryId(pub String);

impl FromRequest for QueryId {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let id = req
            .extensions()
            .get::<QueryId>()
            .cloned()
            .unwrap_or_else(|| QueryId(new_query_id()));
        std::future::ready(Ok(id))
    }
}

impl FromRequest for Principal {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    /// The caller [`authenticate`] let in. A handler reached without it (a route outside the
    /// middleware) is refused rather than served unauthenticated.
    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let found = req.extensions().get::<Principal>().cloned();
        std::future::ready(found.ok_or_else(|| {
            ApiError::internal(None, &"a handler ran without the authentication middleware").into()
        }))
    }
}

/// The middleware around every route: authenticates all but the open routes (so a new route
/// cannot forget to), mints query ids, and gives actix's bare `405` the JSON error body.
///
/// # Errors
/// Only what the wrapped service returns; refusals are responses.
pub async fn authenticate(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let path = req.path().to_owned();
    let query_id = starts_query(&path).then(new_query_id);
    if let Some(id) = &query_id {
        req.extensions_mut().insert(QueryId(id.clone()));
    }
    let (Some(service), Some(options)) = (
        req.app_data::<web::Data<QueryService>>().cloned(),
        req.app_data::<web::Data<HttpOptions>>().cloned(),
    ) else {
        let e = ApiError::internal(None, &"the application state is missing");
        return Ok(req.into_response(e.error_response()).map_into_right_body());
    };
    if !is_open(&path, options.protect_metrics) {
        let client = client(req.request());
        let principal = match service
            .authenticate(presented_secret(req.request()), &client)
            .instrument(crate::telemetry::traced(|| {
                tracing::info_span!("authenticate", sluice.door = client.door.as_str())
            }))
            .await
        {
            Ok(p) => p,
            Err(mut e) => {
                e.query_id = query_id;
                let limit = service.limits().max_request_bytes;
                crate::web::discard_body(&mut req.take_payload(), limit).await;
                return Ok(req.into_response(e.error_response()).map_into_right_body());
            }
        };
        // Every request a key makes takes a token from its bucket.
        if let Err(e) = service.charge(&principal) {
            let e = match query_id {
                // A query refused at the door is still a query on the record.
                Some(id) => {
                    let op = if path == "/v1/explain" {
                        Operation::Explain
                    } else {
                        Operation::Query
                    };
                    service.call(&principal, &client, id, op).refuse(e)
                }
                None => e,
            };
            let limit = service.limits().max_request_bytes;
            crate::web::discard_body(&mut req.take_payload(), limit).await;
            return Ok(req.into_response(e.error_response()).map_into_right_body());
        }
        req.extensions_mut().insert(principal);
    }
    let res = next.call(req).await?;
    if res.status() == StatusCode::METHOD_NOT_ALLOWED {
        let allow = res.headers().get(ALLOW).cloned();
        let (req, _) = res.into_parts();
        let methods = allow
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let mut resp = ApiError::new(
            Code::MethodNotAllowed,
            format!(
                "{} is not allowed on {path}; allowed: {methods}",
                req.method()
            ),
        )
        .error_response();
        // actix lists the resource's methods; keep them.
        if let Some(allow) = allow {
            resp.headers_mut().insert(ALLOW, allow);
        }
        return Ok(ServiceResponse::new(req, resp).map_into_right_body());
    }
    Ok(res.map_into_left_body())
}
