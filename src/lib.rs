//! Sluice: a federated SQL gateway. SQL over HTTP, planned by DataFusion, streamed as Arrow.
//!
//! # Layout
//! - [`startup`]: [`startup::Application`] builds sources, actors, planner and server.
//! - [`http`]: routes, one thin handler file per resource.
//! - [`mcp`]: the Model Context Protocol endpoint, tools, resources and prompt.
//! - [`exec`]: the bridge from a DataFusion stream to a chunked response.
//! - [`format`]: Arrow IPC, JSON, NDJSON, CSV and Parquet encoders.
//! - [`auth`]: reading the presented key. [`governance`]: keys, grants, limits, audit and
//!   usage, and their store. [`queries`]: the recent-query registry. [`state`]: shared state.
//! - [`error`]: [`error::ApiError`], the one place errors become HTTP.
//! - [`metrics`], [`telemetry`]: observability. [`cli`]: the `sluice` client commands.
#![warn(missing_docs)]

pub mod auth;
pub mod cache;
pub mod cli;
pub mod error;
pub mod exec;
pub mod format;
pub mod governance;
pub mod http;
pub mod mcp;
pub mod metrics;
pub mod queries;
pub mod startup;
pub mod state;
pub mod telemetry;

/// Folder of the embedded default data: `./testdata/tpch` when run from a checkout, else the
/// one beside the sources this binary was built from.
pub fn embedded_data_dir() -> std::path::PathBuf {
    let local = std::path::Path::new("testdata/tpch");
    if local.is_dir() {
        return local.to_path_buf();
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tpch")
}
