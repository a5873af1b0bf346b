//! One query's audit record, completed exactly once.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use sluice_schemas::api::Operation;

use super::audit::AuditLog;
use super::principal::{Client, Principal};
use super::records::{self, AuditKind, AuditRecord, QueryAudit};
use crate::error::Code;

/// One query's audit record in the making.
#[derive(Debug)]
pub struct QueryAuditor {
    log: Arc<AuditLog>,
    record: Mutex<Option<AuditRecord>>,
    started: Instant,
}

impl QueryAuditor {
    /// The record of an `operation` under `query_id` by `principal`, from `client`, to be
    /// written to `log` once complete.
    pub(super) fn start(
        log: Arc<AuditLog>,
        principal: &Principal,
        client: &Client,
        query_id: &str,
        operation: Operation,
    ) -> Arc<Self> {
        let mut base = AuditRecord::new(
            AuditKind::Query,
            principal.key_id().map(str::to_owned),
            "ok",
        );
        base.client.clone_from(&client.addr);
        base.user_agent.clone_from(&client.user_agent);
        base.door = Some(client.door.as_str().to_owned());
        if let Some(id) = principal.identity() {
            base.issuer = Some(id.issuer.to_string());
            base.subject = Some(id.subject.clone());
        }
        base.query = Some(QueryAudit {
            query_id: query_id.to_owned(),
            operation: match operation {
                Operation::Explain => "explain",
                _ => "query",
            }
            .to_owned(),
            sql: String::new(),
            sql_sha256: String::new(),
            tables: Vec::new(),
            sources: Vec::new(),
            rows: 0,
            bytes: 0,
            duration_ms: 0,
            error_code: None,
        });
        Arc::new(Self {
            log,
            record: Mutex::new(Some(base)),
            started: Instant::now(),
        })
    }

    fn with(&self, f: impl FnOnce(&mut QueryAudit)) {
        let mut r = self.record.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(q) = r.as_mut().and_then(|r| r.query.as_mut()) {
            f(q);
        }
    }

    /// The statement, once read.
    pub fn set_sql(&self, sql: &str) {
        self.with(|q| {
            q.sql = sql.to_owned();
            q.sql_sha256 = records::sql_sha256(sql);
        });
    }

    /// The query's trace id, when it is traced.
    pub fn set_trace_id(&self, trace_id: Option<String>) {
        let mut r = self.record.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = r.as_mut() {
            r.trace_id = trace_id;
        }
    }

    /// What the plan reads.
    pub fn set_reads(&self, tables: &[String], sources: &[String]) {
        self.with(|q| {
            q.tables = tables.to_vec();
            q.sources = sources.to_vec();
        });
    }

    /// Ends the record: `error` is the failure's code, `None` for success. Later calls do
    /// nothing; the answer says whether this one ended it.
    pub fn complete(&self, error: Option<Code>, rows: u64, bytes: u64) -> bool {
        let taken = self
            .record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut r) = taken else { return false };
        r.outcome = error.map_or("ok", Code::as_str).to_owned();
        if let Some(q) = r.query.as_mut() {
            q.error_code = error.map(|c| c.as_str().to_owned());
            q.rows = rows;
            q.bytes = bytes;
            q.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        }
        self.log.record(r);
        true
    }
}

impl Drop for QueryAuditor {
    fn drop(&mut self) {
        // Never completed: the request was dropped (the client left before an answer).
        let _ = self.complete(Some(Code::QueryCancelled), 0, 0);
    }
}
