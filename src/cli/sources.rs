//! `sluice sources`: each source with its replicas, health, score, circuit, latency and queue;
//! `sluice sources add|set|remove`: the source registry, through a server's `/v1/sources` (an
//! admin key or an admin's token).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice_schemas::api::{SourceInfo, SourceList};

/// What to do with the registry.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SourcesCommand {
    /// Add a source to the registry: every server sharing the metadata store runs it.
    Add {
        /// A file with one source: a TOML `[[sources]]` entry (or its fields alone), or JSON;
        /// `-` reads standard input. `${VAR}` references are kept, and expanded by each server.
        file: PathBuf,
    },
    /// Replace a registry source (the name is the file's).
    Set {
        /// As for `add`.
        file: PathBuf,
    },
    /// Delete a registry source.
    Remove {
        /// Its name.
        name: String,
    },
}

/// One source entry from `path` (TOML or JSON), unexpanded.
///
/// # Errors
/// A message for the user.
pub fn entry(path: &Path) -> Result<Value, String> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("stdin: {e}"))?
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
    };
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return Ok(v);
    }
    let mut table: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: neither JSON nor TOML: {e}", path.display()))?;
    let one = match table.remove("sources") {
        Some(toml::Value::Array(mut items)) if items.len() == 1 && table.is_empty() => {
            items.remove(0)
        }
        Some(_) => {
            return Err(format!(
                "{}: give exactly one [[sources]] entry",
                path.display()
            ));
        }
        None => toml::Value::Table(table),
    };
    serde_json::to_value(one).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs `cmd` against the server; the JSON to print.
///
/// # Errors
/// A message for the user.
pub fn change(to: &super::Connection, cmd: &SourcesCommand) -> Result<Value, String> {
    let client = to.client(Some(std::time::Duration::from_secs(120)))?;
    let base = to.base();
    let builder = match cmd {
        SourcesCommand::Add { file } => client
            .post(format!("{base}/v1/sources"))
            .json(&entry(file)?),
        SourcesCommand::Set { file } => {
            let body = entry(file)?;
            let name = body["name"]
                .as_str()
                .ok_or_else(|| format!("{}: the source has no `name`", file.display()))?
                .to_owned();
            client.put(format!("{base}/v1/sources/{name}")).json(&body)
        }
        SourcesCommand::Remove { name } => client.delete(format!("{base}/v1/sources/{name}")),
    };
    super::send_json(to.authorize(builder)?, base)
}

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
        "{} ({}, {}): {}",
        s.name,
        s.kind,
        s.origin,
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
