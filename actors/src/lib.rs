//! Sluice's control plane: one actix actor per source, and a supervisor over them.
//!
//! Actors own lifecycle, not data: a [`SourceActor`] holds its source's connector and health
//! and probes it on a timer; the [`SourceSupervisor`] knows every source, gates queries on
//! unavailable ones and aggregates readiness. Record batches never pass through a mailbox.
//!
//! # Layout
//! - [`source_actor`]: [`SourceActor`] and its messages.
//! - [`supervisor`]: [`SourceSupervisor`] and its messages.
//! - [`lifecycle`]: messages every actor handles ([`Shutdown`], [`GetStatus`]).
//! - [`health`]: [`SourceHealth`] and its state machine.
//! - [`sources`]: the [`Connector`] trait and one module per kind of source.
//! - [`metrics`]: metric names.
//! - [`error`]: the [`SourceError`] type.
#![warn(missing_docs)]

pub mod error;
pub mod health;
pub mod lifecycle;
pub mod metrics;
pub mod source_actor;
pub mod sources;
pub mod supervisor;

pub use error::SourceError;
pub use health::{HealthState, SourceHealth};
pub use lifecycle::{GetStatus, Shutdown, SourceStatus};
pub use source_actor::SourceActor;
pub use sources::Connector;
pub use supervisor::SourceSupervisor;
