//! A source's health: `Starting → Healthy → Degraded → Unavailable`, and back on success.

use std::time::{Duration, SystemTime};

/// Consecutive failed checks after which a degraded source is declared unavailable.
pub const UNAVAILABLE_AFTER_FAILURES: u32 = 3;

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

impl SourceHealth {
    /// Records a check's outcome; returns true when the state changed.
    pub fn record(&mut self, outcome: Result<(), String>, latency: Duration) -> bool {
        self.record_check(outcome, None, latency)
    }

    /// Records a check's outcome where a passing check may still report pressure (a saturated
    /// pool): the source is then Degraded with that reason, without counting a failure toward
    /// Unavailable. Returns true when the state changed.
    pub fn record_check(
        &mut self,
        outcome: Result<(), String>,
        pressure: Option<String>,
        latency: Duration,
    ) -> bool {
        let now = SystemTime::now();
        self.last_check = Some(now);
        self.last_latency = Some(latency);
        let next = match outcome {
            Ok(()) => {
                self.consecutive_failures = 0;
                match pressure {
                    Some(reason) => {
                        self.last_error = Some(reason);
                        HealthState::Degraded
                    }
                    None => {
                        self.last_error = None;
                        HealthState::Healthy
                    }
                }
            }
            Err(e) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.last_error = Some(e);
                if self.consecutive_failures >= UNAVAILABLE_AFTER_FAILURES
                    || matches!(self.state, HealthState::Starting | HealthState::Unavailable)
                {
                    // A source that never worked is unavailable at once: there is nothing
                    // to degrade from. One that is unavailable stays so until a check passes.
                    HealthState::Unavailable
                } else {
                    HealthState::Degraded
                }
            }
        };
        let changed = next != self.state;
        if changed {
            self.state = next;
            self.since = now;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        let mut h = SourceHealth::default();
        let ms = Duration::from_millis(1);
        assert!(h.record(Ok(()), ms));
        assert_eq!(h.state, HealthState::Healthy);
        assert!(h.record(Err("x".into()), ms));
        assert_eq!(h.state, HealthState::Degraded);
        assert!(!h.record(Err("y".into()), ms));
        assert_eq!(h.last_error.as_deref(), Some("y"));
        assert!(h.record(Err("z".into()), ms));
        assert_eq!(h.state, HealthState::Unavailable);
        assert!(h.record(Ok(()), ms));
        assert_eq!(h.state, HealthState::Healthy);
        assert_eq!(h.last_error, None);
        let mut fresh = SourceHealth::default();
        fresh.record(Err("never up".into()), ms);
        assert_eq!(fresh.state, HealthState::Unavailable);
        assert!(!fresh.record(Err("still down".into()), ms));
        assert_eq!(
            fresh.state,
            HealthState::Unavailable,
            "no flapping back to degraded"
        );
        let mut busy = SourceHealth::default();
        busy.record(Ok(()), ms);
        assert!(busy.record_check(Ok(()), Some("pool saturated".into()), ms));
        assert_eq!(busy.state, HealthState::Degraded);
        assert_eq!(busy.consecutive_failures, 0);
        assert_eq!(busy.last_error.as_deref(), Some("pool saturated"));
        assert!(busy.record_check(Ok(()), None, ms));
        assert_eq!(busy.state, HealthState::Healthy);
    }
}
