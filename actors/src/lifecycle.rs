//! Messages every actor here understands, and the status types the API shows.

use actix::Message;

use crate::health::SourceHealth;
use crate::routing::stats::StatsSnapshot;

/// Stop now: no more checks; the actor ends.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// A source as the API shows it.
#[derive(Debug, Clone)]
pub struct SourceStatus {
    /// Catalog name.
    pub name: String,
    /// Config `kind`.
    pub kind: &'static str,
    /// Location without credentials.
    pub location: String,
    /// Health with its evidence: the best replica's.
    pub health: SourceHealth,
    /// Tables and refresh state, for sources with a catalog.
    pub catalog: Option<sluice_planner::CatalogStatus>,
    /// Each replica's figures, in config order.
    pub replicas: Vec<ReplicaStatus>,
    /// The source's statement slots and queue, if it has a limit.
    pub queue: Option<QueueStatus>,
    /// The source that serves when every replica is down.
    pub fallback: Option<String>,
}

/// One replica as the API shows it.
#[derive(Debug, Clone)]
pub struct ReplicaStatus {
    /// Position in the source's replica list.
    pub index: usize,
    /// Location without credentials.
    pub location: String,
    /// Its figures.
    pub stats: StatsSnapshot,
}

/// A source's slots and queue now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStatus {
    /// `max_concurrency`.
    pub capacity: usize,
    /// Statements holding a slot.
    pub running: usize,
    /// Statements waiting.
    pub queued: usize,
}
