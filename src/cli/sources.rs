//! `sluice sources`: each source with its replicas, health, score, circuit, latency and queue.

use std::fmt::Write as _;

use serde_json::Value;
use sluice_schemas::api::{SourceInfo, SourceList};

/// Fetches `GET /v1/sources`.
///
/// # Errors
/// A message for the user.
pub fn fetch(to: &super::Connection) -> Result<SourceList, String> {
    let base = to.base();
    let builder = to.authorize(
        to.client(Some(std::time::Duration::from_secs(30)))?
            .get(format!("{base}/v1/sources")),
    )?;
    let body: Value = super::send_json(builder, base)?;
    serde_json::from_value(body).map_err(|e| format!("unexpected answer: {e}"))
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// The sources as an aligned text report: one line per source, one per replica under it.
pub fn render(list: &SourceList) -> String {
    let mut out = String::new();
    for s in &list.sources {
        source_line(&mut out, s);
        let _ = writeln!(
            out,
            "  {:<3} {:<12} {:<10} {:>9} {:>8} {:>8} {:>9} {:>10} {:>8}  location / last error",
            "#",
            "state",
            "circuit",
            "score",
            "p50 ms",
            "p99 ms",
            "in flight",
            "statements",
            "failures"
        );
        for r in &s.replicas {
            let detail = match (&r.last_error, r.open_for_ms) {
                (Some(e), Some(open)) => format!("{}  [open {open} ms] {e}", r.location),
                (Some(e), None) => format!("{}  {e}", r.location),
                (None, _) => r.location.clone(),
            };
            let _ = writeln!(
                out,
                "  {:<3} {:<12} {:<10} {:>9} {:>8} {:>8} {:>9} {:>10} {:>8}  {}",
                r.index,
                format!("{:?}", r.state).to_lowercase(),
                r.circuit,
                r.score
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
                ms(r.p50_ms),
                ms(r.p99_ms),
                r.in_flight,
                r.statements,
                r.failures,
                detail
            );
        }
    }
    out
}

fn source_line(out: &mut String, s: &SourceInfo) {
    let mut line = format!(
        "{} ({}): {}",
        s.name,
        s.kind,
        format!("{:?}", s.state).to_lowercase()
    );
    if let Some(q) = s.queue {
        let _ = write!(
            line,
            ", {}/{} running, {} queued",
            q.running, q.capacity, q.queued
        );
    }
    if let Some(f) = &s.fallback {
        let _ = write!(line, ", fallback {f}");
    }
    if let Some(n) = s.tables {
        let _ = write!(line, ", {n} tables");
    }
    let _ = writeln!(out, "{line}");
}
