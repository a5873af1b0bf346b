//! What every statement passes before it runs, in this order: the caller may perform the
//! operation, the server is not draining, the audit log can keep the record; then, for a
//! statement that is not answered from the cache, the key's own concurrency slot and one of the
//! server's.

use sluice_schemas::api::Operation;
use tokio::sync::OwnedSemaphorePermit;

use super::{Call, QueryService};
use crate::error::{ApiError, Result};
use crate::governance::Principal;

impl QueryService {
    /// Whether `call` may start an `op` now. Doors may call it early (before reading a
    /// request body); [`Self::run`] and [`Self::explain`] always do.
    ///
    /// # Errors
    /// `permission_denied`, `shutting_down`, `metadata_unavailable` (the audit log).
    pub fn admit(&self, call: &Call, op: Operation) -> Result<()> {
        call.principal.require(op)?;
        if self.lifecycle.is_draining() {
            return Err(ApiError::shutting_down());
        }
        self.governance.audit.admit()
    }

    /// The key's concurrency slot (if it has a limit), then one of the server's; both are held
    /// until the query ends.
    ///
    /// # Errors
    /// `too_many_queries` from the key's limit or the server's.
    pub(super) fn take_slots(
        &self,
        principal: &Principal,
        query_id: &str,
    ) -> Result<(OwnedSemaphorePermit, Option<OwnedSemaphorePermit>)> {
        let key_permit = match principal {
            Principal::Key(k) => self
                .governance
                .limiter
                .start_query(&k.record)
                .map_err(|e| e.with_query(query_id))?,
            Principal::Anonymous => None,
        };
        let permit = std::sync::Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| {
                ApiError::too_many_queries(self.limits.max_concurrent_queries).with_query(query_id)
            })?;
        Ok((permit, key_permit))
    }
}
