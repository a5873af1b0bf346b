//! What running a statement answers: a started result with its record and where it came
//! from, and how rows past a cap are treated.

use super::producer::ResultStream;
use super::registry::{QueryEntry, QueryState};

/// What a statement does with rows past its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowCap {
    /// More than this many is `result_too_large`.
    Refuse(u64),
    /// Plan for one more than this many (`LIMIT n + 1`, pushed down) and let that one row
    /// through, so the reader can tell the result went on (MCP's `truncated`).
    Peek(u64),
}

impl RowCap {
    /// How the cut shows in a cache key: a peeked result is not the whole one.
    pub(super) fn cache_tag(self) -> String {
        match self {
            Self::Refuse(_) => String::new(),
            Self::Peek(n) => format!("peek:{n}"),
        }
    }

    /// Rows the plan is capped at, and rows the producer lets through.
    pub(super) fn limits(self) -> (u64, u64) {
        match self {
            Self::Refuse(n) => (n, n),
            Self::Peek(n) => (n, n.saturating_add(1)),
        }
    }
}

/// Whether an answer came from the result cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheAnswer {
    /// Served from the cache; `version` names the result's content (the same bytes in the
    /// same format have the same version: HTTP's `ETag`).
    Hit {
        /// A digest of the kept result.
        version: String,
    },
    /// The statement ran.
    Miss,
}

/// A statement that produced its first pieces.
pub struct Started<P> {
    /// The result: the held-back head, then pieces as produced; an `Err` item means the
    /// result was cut there (the door must not end its answer cleanly).
    pub stream: ResultStream<P>,
    /// The result's columns, as JSON bodies describe them.
    pub columns: Vec<sluice_schemas::api::Column>,
    /// The source serving in place of one that is down, if any.
    pub fallback: Option<String>,
    /// The record the statement updates as it runs.
    pub entry: std::sync::Arc<QueryEntry>,
    /// Served from the result cache or run.
    pub cache: CacheAnswer,
}

impl<P> Started<P> {
    /// The client already holds this cached result (HTTP's `304`): nothing is sent, and the
    /// record says so (0 rows, 0 bytes).
    pub fn unchanged(self) {
        self.entry.finish(QueryState::Finished, None);
    }
}
