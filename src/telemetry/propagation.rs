//! W3C Trace Context: a client's `traceparent` continued, a span's ids read back (for the
//! audit record, the log lines, `X-Trace-Id` and what the sources are told), and the
//! exporter's HTTP client.

use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Header names (and MCP `_meta` keys) of W3C Trace Context.
pub const TRACEPARENT: &str = "traceparent";
/// The vendor part that travels with `traceparent`.
pub const TRACESTATE: &str = "tracestate";

/// A client's `traceparent` and `tracestate`, however its door carries them (HTTP headers,
/// gRPC metadata, MCP `_meta`).
struct Carrier<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent,
            TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// Makes `span` continue the trace a client named, when tracing is on and `traceparent` is
/// valid; otherwise `span` starts its own trace. Call before the span is first entered.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if !super::tracing_on() || traceparent.is_none() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Carrier {
        traceparent,
        tracestate,
    });
    if parent.span().span_context().is_valid() {
        // Fails only for a span that was already entered or has no OpenTelemetry data.
        let _ = span.set_parent(parent);
    }
}

/// `span`'s trace id (32 hex digits) when tracing is on.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    if !super::tracing_on() {
        return None;
    }
    let cx = span.context();
    let s = cx.span().span_context().clone();
    s.is_valid().then(|| s.trace_id().to_string())
}

/// `span` as a W3C `traceparent` value, when tracing is on.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !super::tracing_on() {
        return None;
    }
    let cx = span.context();
    let s = cx.span().span_context().clone();
    s.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            s.trace_id(),
            s.span_id(),
            s.trace_flags().to_u8()
        )
    })
}

/// The exporter's HTTP client: hyper (already in the tree, no second reqwest), its requests
/// run on a tokio runtime of ours, since the batch exporter's own thread has none.
#[derive(Debug, Clone)]
pub struct HyperOnRuntime {
    inner: opentelemetry_http::hyper::HyperClient,
    runtime: tokio::runtime::Handle,
}

impl HyperOnRuntime {
    /// A client whose requests time out after `timeout`, run on `runtime`.
    pub fn new(timeout: Duration, runtime: tokio::runtime::Handle) -> Self {
        Self {
            inner: opentelemetry_http::hyper::HyperClient::with_default_connector(timeout, None),
            runtime,
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for HyperOnRuntime {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let inner = self.inner.clone();
        self.runtime
            .spawn(async move { inner.send_bytes(request).await })
            .await
            .map_err(|e| Box::new(e) as opentelemetry_http::HttpError)?
    }
}
