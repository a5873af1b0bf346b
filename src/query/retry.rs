//! When a statement runs again on another replica: decisions only, so they are tested without a
//! server.

use sluice_planner::PlanError;
use sluice_planner::federation::{ErrorClass, RemoteError};
use tokio::time::Instant;

/// Attempts of one statement across replicas: the first and up to two failovers.
pub(super) const MAX_ATTEMPTS: u32 = 3;

/// Whether attempt number `attempt` (from 1) may be retried if a replica fails it.
pub(super) fn may_retry(attempt: u32) -> bool {
    attempt < MAX_ATTEMPTS
}

/// A failure a replica caused (unreachable, connection lost), on a query allowed another
/// attempt, with a replica to avoid next time. The caller checks that nothing reached the
/// client: the next attempt plans and runs the whole statement again, so rows the failed one
/// had pulled are never seen twice.
pub(super) fn replica_failed(may_retry: bool, e: &PlanError, failed: &[(String, usize)]) -> bool {
    may_retry
        && matches!(e, PlanError::Execution(df) | PlanError::Data(df)
            if RemoteError::find(df).is_some_and(|r| r.class == ErrorClass::Unavailable))
        && !failed.is_empty()
}

/// Whether there is time left to plan and route the statement again.
pub(super) fn time_left(deadline: Instant) -> bool {
    Instant::now() < deadline
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use datafusion::error::DataFusionError;

    use super::*;

    fn remote(class: ErrorClass) -> PlanError {
        let e = RemoteError::new("pg", class, "connection refused");
        PlanError::Execution(DataFusionError::External(Box::new(e)))
    }

    #[test]
    fn only_a_replicas_unavailability_with_someone_to_blame_is_retried() {
        let failed = [("pg".to_owned(), 0)];
        assert!(replica_failed(
            true,
            &remote(ErrorClass::Unavailable),
            &failed
        ));
        // The statement's own fault, or the data's, fails the same way on every replica.
        for class in [
            ErrorClass::Upstream,
            ErrorClass::Data,
            ErrorClass::Timeout,
            ErrorClass::Cancelled,
        ] {
            assert!(!replica_failed(true, &remote(class), &failed), "{class:?}");
        }
        assert!(!replica_failed(
            true,
            &PlanError::Execution(DataFusionError::Internal("x".into())),
            &failed
        ));
        // No replica failed (a local fault), or no attempt left.
        assert!(!replica_failed(true, &remote(ErrorClass::Unavailable), &[]));
        assert!(!replica_failed(
            false,
            &remote(ErrorClass::Unavailable),
            &failed
        ));
    }

    #[test]
    fn three_attempts_at_most() {
        assert!(may_retry(1) && may_retry(2));
        assert!(!may_retry(MAX_ATTEMPTS));
    }

    #[tokio::test(start_paused = true)]
    async fn no_attempt_past_the_deadline() {
        let deadline = Instant::now() + Duration::from_millis(100);
        assert!(time_left(deadline));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(!time_left(deadline));
    }
}
