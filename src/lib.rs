//! Sluice: a federated SQL gateway. SQL over HTTP and MCP, planned by DataFusion, streamed as
//! Arrow.
//!
//! ```text
//!   doors:   http/ (REST API)   mcp/ (Model Context Protocol)   console/ (a page that
//!               │                  │                 speaks to http/; web: the actix server
//!               └────────┬─────────┘                 the three are mounted on)
//!                        ▼
//!   query/ (the protocol-neutral service: run, explain, tables, sources, replay, keys)
//!                        │
//!        ┌───────────┬───┴──────────┬──────────────┐
//!        ▼           ▼              ▼              ▼
//!   governance/   cache/      planner (crate)   actors (crate: sources, routing)
//!   (keys, tokens, limits, audit)
//! ```
//! No arrow points back up: a door never imports another door, and nothing below a door
//! imports one.
//!
//! # Layout
//! - `startup`: [`Application`] builds the service and mounts the doors.
//! - `query`: the query service. `http`, `mcp`: the doors; `console`: the web console's page and
//!   assets (the page speaks to `http`). `web`: what the actix-hosted doors
//!   share (reading credentials and bodies, errors as HTTP answers).
//! - `governance`: keys, grants, limits, audit and usage, and their store. `cache`: the result
//!   cache. `format`: Arrow IPC, JSON, NDJSON, CSV and Parquet encoders. `tls`: the
//!   listeners' certificates (reloaded when they change) and client certificates.
//! - `error`: [`error::ApiError`] and its codes, protocol-neutral. `headers`: names of the
//!   headers answers carry. `metrics`, `telemetry`: observability.
//! - [`cli`]: the `sluice` client commands.
#![warn(missing_docs)]

#[cfg(test)]
mod architecture;
mod cache;
pub mod cli;
mod console;
pub mod error;
// Public for the micro benchmarks (`benches/micro.rs`), which measure encoders and key checks.
mod flight;
pub mod format;
pub mod governance;
mod headers;
mod http;
mod mcp;
mod metrics;
mod pg;
mod query;
mod spool;
mod startup;
pub mod telemetry;
mod tls;
mod web;

pub use startup::{Application, Drainer, StartupError, query_runtime};
pub use telemetry::init_plain as init_logging;

/// Folder of the embedded default data: `./testdata/tpch` when run from a checkout, else the
/// one beside the sources this binary was built from.
pub fn embedded_data_dir() -> std::path::PathBuf {
    let local = std::path::Path::new("testdata/tpch");
    if local.is_dir() {
        return local.to_path_buf();
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tpch")
}
