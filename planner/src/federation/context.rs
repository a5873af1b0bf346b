//! [`QueryContext`]: what a query's remote statements take from it at run time, carried in
//! DataFusion's session config so that the planner's nodes reach it without the session.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::executor::{Pulled, RemoteExecutor};

/// What a query's remote statements need: its id and deadline, the executor of each source
/// it reads (asked for at statement start), and where what they pull is counted.
#[derive(Debug, Clone, Default)]
pub struct QueryContext {
    /// The query id, shown to the source (`application_name`, `QUERY_TAG`).
    pub id: String,
    /// When the query times out; remote statements get the time left as their timeout.
    pub deadline: Option<std::time::Instant>,
    /// The executor of each remote source the query reads, by source name.
    pub executors: BTreeMap<String, Arc<dyn RemoteExecutor>>,
    /// Statements, rows and bytes pulled per source.
    pub pulled: PulledBySource,
    /// Where its remote statements' spans hang, and what they tell the source.
    pub trace: QueryTrace,
}

/// A query's trace, as its remote statements need it.
#[derive(Debug, Clone)]
pub struct QueryTrace {
    /// The span each remote statement's span is a child of (whatever task polls it).
    pub span: tracing::Span,
    /// The W3C `traceparent` carried to the source (a statement comment, `QUERY_TAG`) so its
    /// own logs name the trace; `None` when the query has no trace.
    pub traceparent: Option<String>,
    /// Whether a remote statement's span carries its SQL text (`db.query.text`); otherwise
    /// only its hash.
    pub statement_text: bool,
    /// What only the server's tracing layer can do with a span (`None`: not traced).
    pub hooks: Option<TraceHooks>,
}

impl Default for QueryTrace {
    fn default() -> Self {
        Self {
            span: tracing::Span::none(),
            traceparent: None,
            statement_text: false,
            hooks: None,
        }
    }
}

/// The tracing layer's operations on a span, as plain functions: this crate makes the spans of
/// remote statements without depending on OpenTelemetry.
#[derive(Debug, Clone, Copy)]
pub struct TraceHooks {
    /// The span as a W3C `traceparent` (for the source's own logs).
    pub traceparent: fn(&tracing::Span) -> Option<String>,
    /// Sets an attribute on the exported span only, never on the log lines inside it (the
    /// statement's text: it may hold data).
    pub set_attribute: fn(&tracing::Span, &'static str, String),
    /// A statement's hash for its span: the same text, the same hash within a server's life,
    /// keyed so a short literal cannot be guessed back from it.
    pub statement_hash: fn(&str) -> String,
}

/// Statements, rows and bytes a query pulled, per source. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct PulledBySource(Arc<std::sync::Mutex<BTreeMap<String, Arc<Pulled>>>>);

impl PulledBySource {
    /// The counters of `source`, created on first use.
    pub fn source(&self, source: &str) -> Arc<Pulled> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(m.entry(source.to_owned()).or_default())
    }

    /// `(source, statements, rows, bytes)` for each source, sorted by name.
    pub fn snapshot(&self) -> Vec<(String, u64, u64, u64)> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.iter()
            .map(|(name, p)| {
                let (s, r, b) = p.snapshot();
                (name.clone(), s, r, b)
            })
            .collect()
    }
}
