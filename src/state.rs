//! [`AppState`]: what every handler shares.

use std::sync::Arc;

use actix::Addr;
use actix_web::HttpRequest;
use metrics_exporter_prometheus::PrometheusHandle;
use sluice_actors::SourceSupervisor;
use sluice_planner::Planner;
use sluice_schemas::LimitsConfig;
pub use sluice_schemas::api::Phase;
use tokio::sync::Semaphore;

use crate::auth::{Principal, client, presented_secret};
use crate::error::ApiError;
use crate::governance::Governance;
use crate::queries::QueryRegistry;

/// Shared by all workers.
pub struct AppState {
    /// Plans and runs SQL.
    pub planner: Planner,
    /// Source actors (refreshes, checks).
    pub supervisor: Addr<SourceSupervisor>,
    /// Where each statement runs: the published routing table.
    pub router: Arc<sluice_actors::Router>,
    /// The DataFusion runtime queries run on.
    pub runtime: tokio::runtime::Handle,
    /// Recent queries.
    pub queries: QueryRegistry,
    /// Keys, limits, audit.
    pub governance: std::sync::Arc<Governance>,
    /// Whether API routes need a key.
    pub auth_required: bool,
    /// Whether `/metrics` needs a key.
    pub protect_metrics: bool,
    /// Server-wide limits.
    pub limits: LimitsConfig,
    /// How long a drain lets running queries finish.
    pub drain_timeout: std::time::Duration,
    /// One permit per running query.
    pub slots: Arc<Semaphore>,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// Starting, serving or draining: what `/ready` answers.
    pub lifecycle: Lifecycle,
    /// Complete results kept for repeated statements.
    pub cache: Arc<crate::cache::ResultCache>,
    /// Cancelled when the server stops: ends MCP's open event streams and sessions.
    pub closing: tokio_util::sync::CancellationToken,
}

/// Where the server is in its life, for `/ready` and for refusing new queries while draining.
#[derive(Debug, Default)]
pub struct Lifecycle(std::sync::atomic::AtomicU8);

impl Lifecycle {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.0.load(std::sync::atomic::Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Serving,
            _ => Phase::Draining,
        }
    }

    /// Moves to `phase`; draining is never left.
    pub fn set(&self, phase: Phase) {
        let v = match phase {
            Phase::Starting => 0,
            Phase::Serving => 1,
            Phase::Draining => 2,
        };
        self.0.fetch_max(v, std::sync::atomic::Ordering::AcqRel);
    }

    /// True once the server was asked to stop.
    pub fn is_draining(&self) -> bool {
        self.phase() == Phase::Draining
    }
}

impl AppState {
    /// Authenticates `req` (everyone is an anonymous admin when auth is off).
    ///
    /// # Errors
    /// `401 unauthenticated`; `503` when the key store cannot be asked.
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<Principal, ApiError> {
        if !self.auth_required {
            return Ok(Principal::Anonymous);
        }
        self.governance
            .authenticate(presented_secret(req), &client(req))
            .await
    }
}
