//! Messages every actor here understands, and the status types they answer with.

use actix::Message;

use crate::health::SourceHealth;

/// Stop now: no more health checks; the actor ends.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Ask a source for its [`SourceStatus`].
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "SourceStatus")]
pub struct GetStatus;

/// A source as the API shows it.
#[derive(Debug, Clone)]
pub struct SourceStatus {
    /// Catalog name.
    pub name: String,
    /// Config `kind`.
    pub kind: &'static str,
    /// Location without credentials.
    pub location: String,
    /// Health with its evidence.
    pub health: SourceHealth,
    /// Tables and refresh state, for sources with a catalog.
    pub catalog: Option<sluice_planner::CatalogStatus>,
}
