//! Sluice's control plane: one actix actor per source, and a supervisor over them.
//!
//! Actors own lifecycle, not data: a [`ReplicaActor`] checks one replica on a timer and keeps
//! its health and circuit; a [`SourceActor`] reloads a source's catalog; the
//! [`SourceSupervisor`] starts them (restarting replica actors after a fault) and publishes
//! each source's route to the [`Router`], which the query path reads directly. Record batches
//! never pass through a mailbox.
//!
//! # Layout
//! - [`routing`]: [`Router`], replica scores, circuits, the fair queue, failover bookkeeping.
//! - `replica_actor`: the actor of one replica.
//! - [`source_actor`]: [`SourceActor`] and its messages.
//! - [`supervisor`]: [`SourceSupervisor`] and its messages.
//! - `lifecycle`: [`Shutdown`] and the status types.
//! - [`health`]: [`SourceHealth`] and its state machine.
//! - [`sources`]: the [`Connector`] trait and one module per kind of source.
//! - [`metrics`]: metric names.
//! - `error`: the [`SourceError`] type.
#![warn(missing_docs)]

mod error;
pub mod health;
mod lifecycle;
pub mod metrics;
mod replica_actor;
pub mod routing;
pub mod source_actor;
pub mod sources;
pub mod supervisor;

pub use error::SourceError;
pub use health::{HealthState, SourceHealth};
pub use lifecycle::{ReplicaStatus, Shutdown, SourceStatus};
pub use replica_actor::ReplicaActor;
pub use routing::Router;
pub use source_actor::SourceActor;
pub use sources::Connector;
pub use supervisor::SourceSupervisor;
