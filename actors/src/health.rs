//! A source's health as the API shows it: `Starting`, `Healthy`, `Degraded`, `Unavailable`.
//! The state machine behind it is each replica's (`crate::routing::stats`).

use std::time::{Duration, SystemTime};

/// Health state of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// No check has finished yet.
    Starting,
    /// The last check succeeded.
    Healthy,
    /// Recent checks failed; queries are still tried.
    Degraded,
    /// Checks keep failing; queries are refused with `source_unavailable`.
    Unavailable,
}

impl HealthState {
    /// Lower-case name for APIs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Health of a source with the evidence behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHealth {
    /// Current state.
    pub state: HealthState,
    /// When the state last changed.
    pub since: SystemTime,
    /// The last check's error, if the last check failed (safe to show: no credentials).
    pub last_error: Option<String>,
    /// When the last check finished.
    pub last_check: Option<SystemTime>,
    /// How long the last check took.
    pub last_latency: Option<Duration>,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
}

impl Default for SourceHealth {
    fn default() -> Self {
        Self {
            state: HealthState::Starting,
            since: SystemTime::now(),
            last_error: None,
            last_check: None,
            last_latency: None,
            consecutive_failures: 0,
        }
    }
}
