//! What a caller may see of the catalog and the sources: tables, a table's columns, sources
//! with their health, and refreshing a source. A reader sees only what its grants reach;
//! anything else does not exist for it.

use std::time::UNIX_EPOCH;

use sluice_actors::SourceStatus;
use sluice_actors::health::HealthState;
use sluice_actors::routing::stats::StatsSnapshot;
use sluice_actors::supervisor::{RefreshError, RefreshSource, statuses};
use sluice_schemas::api::{
    Operation, QueueInfo, RefreshResponse, ReplicaInfo, SourceInfo, SourceState, TableDescription,
    TableSummary,
};

use super::QueryService;
use crate::error::{ApiError, Code, Result};
use crate::governance::Principal;

impl QueryService {
    /// Every table `principal` may read, sorted.
    ///
    /// # Errors
    /// `permission_denied` for a key that may not list.
    pub async fn tables(&self, principal: &Principal) -> Result<Vec<TableSummary>> {
        principal.require(Operation::List)?;
        Ok(self
            .planner_for(principal)
            .tables()
            .await
            .iter()
            .map(summary)
            .collect())
    }

    /// [`Self::tables`] with each table's columns.
    ///
    /// # Errors
    /// `permission_denied` for a key that may not list.
    pub async fn tables_with_columns(&self, principal: &Principal) -> Result<Vec<TableSummary>> {
        Ok(self
            .table_schemas(principal)
            .await?
            .iter()
            .map(|t| TableSummary {
                fields: Some(crate::format::columns(&t.columns)),
                ..summary(t)
            })
            .collect())
    }

    /// Every table `principal` may read, with its Arrow schema (for doors that describe
    /// tables in Arrow: Flight SQL's `GetTables`).
    ///
    /// # Errors
    /// `permission_denied` for a key that may not list.
    pub async fn table_schemas(
        &self,
        principal: &Principal,
    ) -> Result<Vec<sluice_planner::TableInfo>> {
        principal.require(Operation::List)?;
        Ok(self.planner_for(principal).tables().await)
    }

    /// Whether `principal` sees a source of this name (its grants reach into it).
    pub fn sees_source(&self, principal: &Principal, name: &str) -> bool {
        self.planner_for(principal).has_catalog(name)
    }

    /// The catalog and schema bare table names resolve in, unless a session says otherwise.
    pub fn name_defaults(&self) -> (String, String) {
        self.planner.defaults()
    }

    /// One table's columns, if `principal` may read it (otherwise it does not exist).
    ///
    /// # Errors
    /// `permission_denied` for a key that may not list; `table_not_found`, `source_not_found`.
    pub async fn describe(&self, principal: &Principal, name: &str) -> Result<TableDescription> {
        principal.require(Operation::List)?;
        let planner = self.planner_for(principal);
        let Some(t) = planner.table(name).await else {
            let source = name
                .split('.')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let known = name.split('.').count() < 3 || planner.has_catalog(&source);
            return Err(if known {
                ApiError::not_found(Code::TableNotFound, format!("table {name} not found"))
            } else {
                ApiError::not_found(Code::SourceNotFound, format!("source {source} not found"))
            });
        };
        Ok(TableDescription {
            name: format!("{}.{}.{}", t.catalog, t.schema, t.table),
            source: t.catalog.clone(),
            schema: t.schema.clone(),
            table: t.table.clone(),
            columns: crate::format::columns(&t.columns),
        })
    }

    /// The sources `principal` may see: for admins every source with its evidence; for a
    /// reader only the sources it has grants in, without locations or error texts (which can
    /// name hosts and paths), only states and figures.
    ///
    /// # Errors
    /// `permission_denied` for a key that may not list.
    pub fn sources(&self, principal: &Principal) -> Result<Vec<SourceInfo>> {
        principal.require(Operation::List)?;
        let sources = statuses(&self.router);
        let info = |s: &SourceStatus| self.source_info_of(s);
        if principal.is_admin() {
            return Ok(sources.iter().map(info).collect());
        }
        let planner = self.planner_for(principal);
        Ok(sources
            .iter()
            .filter(|s| planner.grants().is_none_or(|g| g.sees_catalog(&s.name)))
            .map(|s| without_locations(info(s)))
            .collect())
    }

    /// A source as the API shows it, with where it is defined.
    pub(super) fn source_info_of(&self, s: &SourceStatus) -> SourceInfo {
        let mut info = source_info(s);
        if let Some(o) = self.source_set.origin(&s.name) {
            o.as_str().clone_into(&mut info.origin);
        }
        info
    }

    /// The registry version this server applied, for admins.
    pub fn registry_version(&self, principal: &Principal) -> Option<u64> {
        principal
            .is_admin()
            .then(|| self.source_set.registry_version())
    }

    /// Every source with its evidence, for the server's own readiness answer.
    pub(crate) fn all_sources(&self) -> Vec<SourceInfo> {
        statuses(&self.router).iter().map(source_info).collect()
    }

    /// Reloads a source's tables now (admins), so new files, tables and schema changes show
    /// without waiting for the refresh interval; with a shared cache, results of this source
    /// become stale on every server.
    ///
    /// # Errors
    /// `permission_denied`, `source_not_found`, `upstream_error` (the previous tables stay).
    pub async fn refresh(&self, principal: &Principal, name: &str) -> Result<RefreshResponse> {
        principal.require(Operation::Admin)?;
        let report = self
            .supervisor
            .send(RefreshSource {
                name: name.to_owned(),
            })
            .await
            .map_err(|e| ApiError::internal(None, &e))?
            .map_err(|e| match e {
                RefreshError::NotFound(_) => {
                    ApiError::not_found(Code::SourceNotFound, e.to_string())
                }
                // The reason is the health probe's or the loader's text, already free of
                // credentials.
                RefreshError::Failed { .. } => ApiError::upstream(e.to_string()),
            })?;
        self.cache.refreshed(name).await;
        Ok(RefreshResponse {
            name: name.to_owned(),
            tables: report.tables.map(|n| n as u64),
            elapsed_ms: report.elapsed.as_secs_f64() * 1000.0,
        })
    }
}

fn ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn state(s: HealthState) -> SourceState {
    match s {
        HealthState::Starting => SourceState::Starting,
        HealthState::Healthy => SourceState::Healthy,
        HealthState::Degraded => SourceState::Degraded,
        HealthState::Unavailable => SourceState::Unavailable,
    }
}

fn replica_info(index: usize, location: &str, s: &StatsSnapshot) -> ReplicaInfo {
    ReplicaInfo {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        location: location.to_owned(),
        state: state(s.state),
        circuit: s.circuit.as_str().to_owned(),
        score: s.score.is_finite().then_some(s.score),
        latency_ewma_ms: s.latency_ewma_ms,
        error_rate: s.error_rate,
        p50_ms: s.p50_ms,
        p99_ms: s.p99_ms,
        in_flight: s.in_flight,
        statements: s.statements,
        failures: s.failures,
        consecutive_failures: s.consecutive_failures,
        transitions: s.transitions,
        restarts: s.restarts,
        open_for_ms: s
            .open_for
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        state_since_ms: ms(s.since),
        last_error: s.last_error.clone(),
    }
}

/// A source as the API shows it: health with its evidence, never credentials.
fn source_info(s: &SourceStatus) -> SourceInfo {
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    SourceInfo {
        name: s.name.clone(),
        kind: s.kind.to_owned(),
        location: s.location.clone(),
        state: state(s.health.state),
        state_since_ms: ms(s.health.since),
        last_error: s.health.last_error.clone(),
        last_check_ms: s.health.last_check.map(ms),
        health_check_latency_ms: s.health.last_latency.map(|d| d.as_secs_f64() * 1000.0),
        consecutive_failures: s.health.consecutive_failures,
        tables: s.catalog.as_ref().and_then(|c| c.tables).map(|n| n as u64),
        refreshed_at_ms: s.catalog.as_ref().and_then(|c| c.refreshed_at).map(ms),
        refresh_error: s.catalog.as_ref().and_then(|c| c.last_error.clone()),
        replicas: s
            .replicas
            .iter()
            .map(|r| replica_info(r.index, &r.location, &r.stats))
            .collect(),
        queue: s.queue.map(|q| QueueInfo {
            capacity: n(q.capacity),
            running: n(q.running),
            queued: n(q.queued),
        }),
        fallback: s.fallback.clone(),
        origin: "config".to_owned(),
    }
}

/// A reader's view of a source: states and figures, not where it is.
fn without_locations(info: SourceInfo) -> SourceInfo {
    SourceInfo {
        location: String::new(),
        last_error: None,
        refresh_error: None,
        replicas: info
            .replicas
            .into_iter()
            .map(|r| ReplicaInfo {
                location: String::new(),
                last_error: None,
                ..r
            })
            .collect(),
        fallback: None,
        ..info
    }
}

fn summary(t: &sluice_planner::TableInfo) -> TableSummary {
    TableSummary {
        name: format!("{}.{}.{}", t.catalog, t.schema, t.table),
        source: t.catalog.clone(),
        schema: t.schema.clone(),
        table: t.table.clone(),
        columns: t.columns.fields().len() as u64,
        fields: None,
    }
}
