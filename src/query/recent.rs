//! Recent queries as their callers see them: their own, or every one for an admin.

use std::sync::Arc;

use sluice_schemas::api::{QueryState, QueryStatus, ServerStats};

use super::QueryService;
use super::registry::{QueryEntry, RECENT_QUERIES};
use crate::error::{ApiError, Code, Result};
use crate::governance::Principal;

impl QueryService {
    fn visible_query(&self, principal: &Principal, id: &str) -> Result<Arc<QueryEntry>> {
        self.queries
            .get(id)
            .filter(|e| principal.is_admin() || e.key_id.as_deref() == principal.key_id())
            .ok_or_else(|| {
                ApiError::not_found(Code::QueryNotFound, format!("no recent query {id}"))
            })
    }

    /// Recent queries `principal` may see, newest first, at most `limit` (default 50),
    /// optionally only those in `state`.
    ///
    /// # Errors
    /// `bad_request` for a limit over the queries kept.
    pub fn recent(
        &self,
        principal: &Principal,
        state: Option<QueryState>,
        limit: Option<u64>,
    ) -> Result<Vec<QueryStatus>> {
        let max = RECENT_QUERIES as u64;
        let limit = limit.unwrap_or(50);
        if limit > max {
            return Err(ApiError::bad_request(format!(
                "limit must be at most {max}, the queries kept"
            )));
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(self
            .queries
            .list(limit, |e| {
                (principal.is_admin() || e.key_id.as_deref() == principal.key_id())
                    && state.is_none_or(|s| e.state() == s)
            })
            .iter()
            .map(|e| e.status())
            .collect())
    }

    /// The status of a recent query `principal` may see.
    ///
    /// # Errors
    /// `query_not_found`.
    pub fn status(&self, principal: &Principal, id: &str) -> Result<QueryStatus> {
        Ok(self.visible_query(principal, id)?.status())
    }

    /// Cancels a running query, its remote statements included (a finished one is left as it
    /// is), and answers its status.
    ///
    /// # Errors
    /// `query_not_found`.
    pub fn cancel(&self, principal: &Principal, id: &str) -> Result<QueryStatus> {
        let entry = self.visible_query(principal, id)?;
        entry.cancel.cancel();
        // The producer records `cancelled` as it stops; say so now for a prompt answer.
        entry.fail(&ApiError::new(
            Code::QueryCancelled,
            "cancelled by DELETE /v1/queries/{id}",
        ));
        Ok(entry.status())
    }

    /// Whether a recent query has this id (a ticket run twice gets a new one the second time).
    pub fn knows_query(&self, id: &str) -> bool {
        self.queries.get(id).is_some()
    }

    /// Rows a running query has produced so far (for progress reports).
    pub fn rows_so_far(&self, id: &str) -> u64 {
        self.queries.get(id).map_or(0, |e| e.rows())
    }
}

impl QueryService {
    /// What the queries of the last `window_s` seconds did, second by second (admins only:
    /// the figures cover every caller and name every source).
    ///
    /// # Errors
    /// `permission_denied` for a reader; `bad_request` for a window outside 1 to 600 s.
    pub fn stats(&self, principal: &Principal, window_s: u64) -> Result<ServerStats> {
        if !principal.is_admin() {
            return Err(ApiError::permission_denied(
                "the server's activity is for admins".to_owned(),
            ));
        }
        let kept = super::activity::KEEP_S;
        if !(1..=kept).contains(&window_s) {
            return Err(ApiError::bad_request(format!(
                "window_s must be from 1 to {kept}, the seconds kept"
            )));
        }
        let running = self
            .queries
            .list(RECENT_QUERIES, |e| e.state() == QueryState::Running)
            .len() as u64;
        let activity = self.queries.activity();
        let now_ms = activity.now_ms();
        Ok(ServerStats {
            now_ms,
            window_s,
            running,
            samples: activity.samples(now_ms, window_s),
        })
    }
}
