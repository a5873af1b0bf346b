//! [`AppState`]: what every handler shares.

use std::sync::Arc;

use actix::Addr;
use actix_web::HttpRequest;
use metrics_exporter_prometheus::PrometheusHandle;
use sluice_actors::SourceSupervisor;
use sluice_planner::Planner;
use sluice_schemas::LimitsConfig;
use tokio::sync::Semaphore;

use crate::auth::{KeyStore, Principal, authenticate};
use crate::error::ApiError;
use crate::queries::QueryRegistry;

/// Shared by all workers.
pub struct AppState {
    /// Plans and runs SQL.
    pub planner: Planner,
    /// Source registry and health.
    pub supervisor: Addr<SourceSupervisor>,
    /// The DataFusion runtime queries run on.
    pub runtime: tokio::runtime::Handle,
    /// Recent queries.
    pub queries: QueryRegistry,
    /// API keys.
    pub keys: KeyStore,
    /// Whether API routes need a key.
    pub auth_required: bool,
    /// Whether `/metrics` needs a key.
    pub protect_metrics: bool,
    /// Server-wide limits.
    pub limits: LimitsConfig,
    /// One permit per running query.
    pub slots: Arc<Semaphore>,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
}

impl AppState {
    /// Authenticates `req`.
    ///
    /// # Errors
    /// `401 unauthenticated`.
    pub fn authenticate(&self, req: &HttpRequest) -> Result<Principal, ApiError> {
        authenticate(req, &self.keys, self.auth_required)
    }
}
