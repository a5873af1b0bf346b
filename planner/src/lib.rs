//! Sluice's planner: one DataFusion session over every source, and the per-query pipeline.
//!
//! ```text
//!  SQL text ──► parse (exactly one statement) ──► validate (read-only, on the AST)
//!                                                        │
//!     resolve tables against the catalogs ◄──────────────┘  (unknown → table_not_found)
//!                        │
//!                        ▼
//!     logical plan ──► validate (read-only, on the plan) ──► bind params ──► cap rows
//!                                                                              │
//!     federate (remote subtrees → one statement each) ◄── optimize ◄───────────┘
//!                        │
//!                        ▼
//!     stream of RecordBatch ◄── execute ◄── physical plan (RemoteScanExec per statement)
//! ```
//!
//! Each source is a catalog; object-store sources hold listing tables over Parquet, remote
//! sources (PostgreSQL) hold remote tables. The planner knows nothing of actors, HTTP or wire
//! protocols: callers hand it object stores, remote executors and SQL.
//!
//! # Layout
//! - `session`: [`Planner`], the shared session state and the per-query pipeline.
//! - [`catalog`]: table discovery, listing tables with hive partitions.
//! - [`federation`]: remote sources behind one executor trait, their dialects and
//!   capability tables, the cut of plans into remote subtrees, and the remote scan.
//! - `parquet_catalog`: [`ParquetCatalog`], an object-store source's tables, refreshed whole.
//! - [`validate`]: one statement, read-only.
//! - `params`: JSON values bound to placeholders.
//! - [`output`]: result schemas as clients receive them.
//! - [`error`]: the [`PlanError`] type.
//! - `functions`: guards around DataFusion functions that could build unbounded values.
//! - [`metrics`]: names of the per-source metrics the data path records.
//! - [`redact`]: credentials out of error texts.
//! - [`digest`]: `sha256`, for column masks.
//! - [`policy`]: row filters and column masks, applied under a fence where each table is read.
//! - `rewrite`: rules Sluice adds (floats compared with decimal literals; operators that
//!   multiply rows yield between batches).
#![warn(missing_docs)]

pub mod catalog;
pub mod digest;
pub mod error;
pub mod federation;
mod functions;
pub mod grants;
pub mod metrics;
pub mod output;
mod params;
mod parquet_catalog;
pub mod policy;
pub mod redact;
mod rewrite;
mod session;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
pub mod validate;

pub use catalog::TableLocation;
pub use error::{PlanError, Result};
pub use federation::{PulledBySource, QueryContext, QueryTrace, TraceHooks};
pub use grants::Grants;
pub use params::Params;
pub use parquet_catalog::{
    CatalogStatus, Fingerprint, ParquetCatalog, ParquetSourceSpec, RefreshSummary, SourceCatalog,
};
pub use policy::{PolicySet, TablePolicy};
pub use session::{
    Described, PlannedQuery, Planner, PlannerOptions, RemoteStatement, SourceGate, TableInfo,
};

/// DataFusion as this crate uses it, so dependents name one version.
pub use datafusion;
