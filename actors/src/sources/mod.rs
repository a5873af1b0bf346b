//! Connectors: what each kind of source needs to be reached and checked.
//!
//! A `Connector` is owned by its [`crate::SourceActor`]; the actor calls
//! [`Connector::health_check`] on a timer. Scan sources (Parquet on object stores) also hand
//! their store to the planner, which reads through it directly: data never goes through an
//! actor.

pub mod object_store;

use futures::future::BoxFuture;

use crate::error::Result;

/// One configured source's connection handles.
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The config `kind` (`parquet`, `postgres`, `snowflake`).
    fn kind(&self) -> &'static str;

    /// Where the source lives, safe to show: no credentials, no query string.
    fn display_location(&self) -> String;

    /// A cheap probe (a list, a HEAD, `SELECT 1`).
    ///
    /// # Errors
    /// The reason the source cannot serve now, without credentials in the text.
    ///
    /// # Cancellation
    /// Dropping the future abandons the probe; the caller bounds it with a timeout.
    fn health_check(&self) -> BoxFuture<'_, Result<()>>;
}
