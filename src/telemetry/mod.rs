//! Logs and traces.
//!
//! - **Logs**: `tracing` to stderr, as text or one JSON object per line (`[log] format`),
//!   written by a thread of its own (`tracing-appender`'s non-blocking writer) so a slow or
//!   blocked stderr never holds up a request: when that writer falls behind, lines are dropped
//!   and counted (`sluice_log_lines_dropped_total`), never waited for. The level is a
//!   `RUST_LOG`-style filter that can be changed while serving ([`set_level`]).
//! - **Traces**: with `[telemetry] otlp_endpoint` (or the standard `OTEL_EXPORTER_OTLP_*`
//!   variables), every span at `info` and above goes to OpenTelemetry and out over OTLP/HTTP
//!   (protobuf), whatever the log level. A client's W3C `traceparent` is continued
//!   ([`propagation`]).
//!
//! The log level filters the log lines only: traces are filtered by their own (fixed) level,
//! so `level = "warn"` keeps every query's spans.

pub mod propagation;

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use sluice_schemas::{LogConfig, LogFormat, TelemetryConfig};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// The installed subscriber's handles: the level filter, the trace exporter, the log writer.
struct Installed {
    filter: reload::Handle<EnvFilter, Registry>,
    level: Mutex<String>,
    provider: Option<SdkTracerProvider>,
    writer: Mutex<Option<tracing_appender::non_blocking::WorkerGuard>>,
    dropped: tracing_appender::non_blocking::ErrorCounter,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// How long the exporter waits for the collector per batch.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Log lines the writer's queue holds before new ones are dropped (`tracing-appender`'s
/// default).
const LOG_QUEUE_LINES: usize = 128_000;

/// Why logging or tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `[log] level` (or `SLUICE_LOG`/`RUST_LOG`) is not a filter.
    #[error("log.level: {0}")]
    Level(String),
    /// The OTLP exporter could not be built.
    #[error("telemetry.otlp_endpoint: {0}")]
    Exporter(String),
}

/// The OTLP traces URL: `[telemetry] otlp_endpoint` + `/v1/traces`, else
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as is, else `OTEL_EXPORTER_OTLP_ENDPOINT` +
/// `/v1/traces`; `None`: tracing is off.
pub fn traces_endpoint(config: &TelemetryConfig) -> Option<String> {
    let base = |b: &str| format!("{}/v1/traces", b.trim_end_matches('/'));
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    config
        .otlp_endpoint
        .as_deref()
        .map(base)
        .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT").map(|e| base(&e)))
}

/// Installs the process's subscriber from `[log]` and `[telemetry]`. `runtime` drives the
/// exporter's HTTP requests (the query runtime). A second call (tests start many servers in
/// one process) changes nothing.
///
/// # Errors
/// A level that is not a filter, or an exporter that cannot be built.
pub fn init(
    log: &LogConfig,
    telemetry: &TelemetryConfig,
    runtime: Option<&tokio::runtime::Handle>,
) -> Result<(), TelemetryError> {
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let level = std::env::var("SLUICE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| log.level.clone());
    let env_filter = filter_of(&level)?;
    let provider = match (traces_endpoint(telemetry), runtime) {
        (Some(endpoint), Some(runtime)) => Some(provider(&endpoint, telemetry, runtime)?),
        _ => None,
    };
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("sluice-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    let (filter, handle) = reload::Layer::new(env_filter);
    let lines: Box<dyn Layer<Registry> + Send + Sync> = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .flatten_event(true)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(writer)
            .boxed(),
    };
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("sluice"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    if tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(traces)
        .try_init()
        .is_err()
    {
        // Another subscriber was installed first (a test harness): keep it.
        return Ok(());
    }
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
    }
    let _ = INSTALLED.set(Installed {
        filter: handle,
        level: Mutex::new(level),
        provider,
        writer: Mutex::new(Some(guard)),
        dropped,
    });
    Ok(())
}

/// The process's tracer provider: a batch exporter on its own thread, whose HTTP requests run
/// on `runtime`; sampling is parent-based (a client's decision holds), else `sample_ratio`.
fn provider(
    endpoint: &str,
    config: &TelemetryConfig,
    runtime: &tokio::runtime::Handle,
) -> Result<SdkTracerProvider, TelemetryError> {
    let client =
        propagation::HyperOnRuntime::new(EXPORT_TIMEOUT, runtime.clone()).map_err(|e| {
            TelemetryError::Exporter(format!("the system's certificates cannot be read: {e}"))
        })?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    // Half a second between exports unless `OTEL_BSP_SCHEDULE_DELAY` says otherwise (the
    // builder reads the other `OTEL_BSP_*` variables itself).
    let mut batch = BatchConfigBuilder::default();
    if std::env::var("OTEL_BSP_SCHEDULE_DELAY").is_err() {
        batch = batch.with_scheduled_delay(Duration::from_millis(500));
    }
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch.build())
        .build();
    let ratio = std::env::var("OTEL_TRACES_SAMPLER_ARG")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|r| (0.0..=1.0).contains(r))
        .unwrap_or(config.sample_ratio);
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(config.service_name.clone());
    }
    Ok(SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(resource.build())
        .build())
}

/// The log lines' filter: `level`, and the spans that name a query (`query_id`, `trace_id`) in
/// target [`SPAN_TARGET`] at `info` whatever it says, so each line inside them names them.
fn filter_of(level: &str) -> Result<EnvFilter, TelemetryError> {
    if level.contains(SPAN_TARGET) {
        return Err(TelemetryError::Level(format!(
            "{SPAN_TARGET} is the target of Sluice's own spans and is always on"
        )));
    }
    EnvFilter::try_new(format!("{level},{SPAN_TARGET}=info"))
        .map_err(|e| TelemetryError::Level(e.to_string()))
}

/// The target of the spans every log line inside them should name (a request, a query, an MCP
/// tool call): always let through by the log filter.
pub const SPAN_TARGET: &str = "sluice::span";

/// Whether spans are exported (`[telemetry]` on).
pub fn tracing_on() -> bool {
    INSTALLED.get().is_some_and(|i| i.provider.is_some())
}

/// `make()`'s span when spans are exported, else none: with tracing off, the stages of a query
/// (planning, waiting for slots, each remote statement) cost no span.
pub fn traced(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if tracing_on() {
        make()
    } else {
        tracing::Span::none()
    }
}

/// The log filter in force, when this module installed the subscriber.
pub fn level() -> Option<String> {
    INSTALLED.get().map(|i| {
        i.level
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    })
}

/// Whether `filter` parses as a log filter.
///
/// # Errors
/// Why it does not.
pub fn check_level(filter: &str) -> Result<(), TelemetryError> {
    filter_of(filter).map(drop)
}

/// Replaces the log filter (a level or a `RUST_LOG`-style filter); traces are not affected.
///
/// # Errors
/// Not a filter (nothing changes), or logging was not installed by [`init`].
pub fn set_level(filter: &str) -> Result<(), TelemetryError> {
    let installed = INSTALLED
        .get()
        .ok_or_else(|| TelemetryError::Level("this process's log is not Sluice's own".into()))?;
    let parsed = filter_of(filter)?;
    // One change at a time: the filter in force is always the one `level` reports.
    let mut level = installed
        .level
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    installed
        .filter
        .reload(parsed)
        .map_err(|e| TelemetryError::Level(e.to_string()))?;
    *level = filter.to_owned();
    Ok(())
}

/// Publishes how many log lines the writer dropped (called before each scrape).
pub fn publish_dropped_lines() {
    if let Some(i) = INSTALLED.get() {
        metrics::counter!(crate::metrics::LOG_LINES_DROPPED_TOTAL)
            .absolute(i.dropped.dropped_lines() as u64);
    }
}

/// Exports the spans still buffered and writes the log lines still queued (at exit).
pub fn flush() {
    if let Some(i) = INSTALLED.get() {
        if let Some(p) = &i.provider
            && let Err(e) = p.shutdown()
        {
            tracing::warn!(error = %e, "Spans could not all be exported at exit.");
        }
        drop(
            i.writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
}

/// The subscriber of a process that is not a server (tests, client commands): text at
/// `default_level` unless `SLUICE_LOG` or `RUST_LOG` says otherwise, no traces.
pub fn init_plain(json: bool, default_level: &str) {
    let log = LogConfig {
        format: if json {
            LogFormat::Json
        } else {
            LogFormat::Text
        },
        level: default_level.to_owned(),
    };
    if init(&log, &TelemetryConfig::default(), None).is_err() {
        let _ = init(
            &LogConfig {
                level: "info".into(),
                ..log
            },
            &TelemetryConfig::default(),
            None,
        );
    }
}
