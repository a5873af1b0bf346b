//! Federation: remote sources behind one seam, and the largest subtrees each can compute
//! exactly sent to it as one statement.
//!
//! ```text
//!  optimized logical plan ──► cut (capability tables, per source) ──► RemoteQuery leaves
//!                                                                         │ unparse (dialect)
//!  physical plan: RemoteScanExec ◄──────────────────────────────────────┘
//!        │ execute: the query's executor for the source (asked for at statement start)
//!        ▼
//!  RemoteExecutor (sluice-actors: PostgreSQL, …) ──► record batches of the expected schema
//! ```
//!
//! Why not datafusion-federation (0.5.8 fits DataFusion 55): its cut federates every subtree
//! whose scans share a provider, with no check of the functions, casts or join semantics the
//! remote would have to match; it refuses `IN (subquery)`; it answers `PushedDown::Yes` for
//! every filter offered to its scan node, so a filter the executor ignores is lost; and its
//! schema cast turns a value that does not fit into NULL. Sluice needs each of those decided
//! the other way, so it owns the cut, the SQL and the decoding, and borrows the shape: one
//! executor trait per remote engine, a dialect per source, exact SQL asserted in tests.
//!
//! # Layout
//! - [`executor`]: the [`RemoteExecutor`] trait, remote table and column definitions.
//! - [`context`]: [`QueryContext`], the executors and counters of one query.
//! - [`error`]: [`RemoteError`], source-neutral, with its class and retry decision.
//! - [`dialect`]: each source kind's SQL dialect and capability table.
//! - [`table`]: [`RemoteSource`], [`RemoteTable`], [`RemoteCatalog`].
//! - [`filters`]: which filters a single-table scan sends, and its `SELECT`.
//! - [`capability`]: the per-node, per-expression checks against a capability table.
//! - [`cut`]: the cut of the plan into remote subtrees.
//! - [`cost`]: the cut's remote subtrees weighed against keeping joins and aggregates local,
//!   by the source's own estimates.
//! - [`unparse`]: a subtree as the source's SQL.
//! - [`node`]: the logical node of a remote subtree, and the query planner that federates.
//! - [`exec`]: [`RemoteScanExec`], the one execution plan for remote statements.
//! - [`runtime_filter`]: join keys sent to the other side's statement at run time.
//! - [`join_filters`]: statements wait for the joins whose keys narrow them.
//! - [`placeholders`]: functions that exist only on the way to remote SQL.

pub mod capability;
pub mod context;
pub mod cost;
pub mod cut;
pub mod dialect;
pub mod error;
pub mod exec;
pub mod executor;
pub mod filters;
pub mod join_filters;
pub mod node;
pub mod placeholders;
pub mod runtime_filter;
pub mod table;
pub mod unparse;

pub use context::{PulledBySource, QueryContext, QueryTrace, TraceHooks};
pub use dialect::SourceDialect;
pub use error::{ErrorClass, RemoteError};
pub use exec::RemoteScanExec;
pub use executor::{
    ColumnClass, Estimate, Pulled, ReadAs, RemoteColumn, RemoteExecutor, RemoteTableDef,
    StatementContext,
};
pub use table::{RemoteCatalog, RemoteSource, RemoteTable};

#[cfg(test)]
mod tests;
