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

/// What the planner's remote statements do with their spans, through this layer.
pub const HOOKS: sluice_planner::TraceHooks = sluice_planner::TraceHooks {
    traceparent,
    set_attribute,
    statement_hash,
};

/// Sets `key` on `span`'s exported span only: log lines never show it.
fn set_attribute(span: &tracing::Span, key: &'static str, value: String) {
    span.set_attribute(key, value);
}

/// The first 16 hex digits of an HMAC-SHA256 of `sql` under a key drawn at start: the same
/// statement has the same hash within a server's life, and a literal in it (an id, a name)
/// cannot be found back by hashing guesses.
fn statement_hash(sql: &str) -> String {
    static KEY: std::sync::LazyLock<ring::hmac::Key> = std::sync::LazyLock::new(|| {
        let mut secret = [0u8; 32];
        // Without entropy the key is zero: the hash is then a plain (unkeyed) digest.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret);
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)
    });
    let tag = ring::hmac::sign(&KEY, sql.as_bytes());
    hex::encode(&tag.as_ref()[..8])
}

/// The exporter's HTTP client: hyper (already in the tree, no second reqwest), its requests
/// run on a tokio runtime of ours, since the batch exporter's own thread has none.
#[derive(Debug, Clone)]
pub struct HyperOnRuntime {
    inner: std::sync::Arc<dyn opentelemetry_http::HttpClient>,
    runtime: tokio::runtime::Handle,
}

impl HyperOnRuntime {
    /// A client for `http://` and `https://` collectors (the system's roots) whose requests time
    /// out after `timeout`, run on `runtime`.
    ///
    /// # Errors
    /// The system's certificates cannot be read.
    pub fn new(timeout: Duration, runtime: tokio::runtime::Handle) -> std::io::Result<Self> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            inner: std::sync::Arc::new(opentelemetry_http::hyper::HyperClient::new(
                connector, timeout, None,
            )),
            runtime,
        })
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
        let inner = std::sync::Arc::clone(&self.inner);
        self.runtime
            .spawn(async move { inner.send_bytes(request).await })
            .await
            .map_err(|e| Box::new(e) as opentelemetry_http::HttpError)?
    }
}
