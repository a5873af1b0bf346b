//! The audit log: every authentication attempt and every query, written in batches by one
//! task, off the request path, through a bounded queue.
//!
//! While the store cannot take records they wait in the queue and the writer retries. The
//! policy decides what new queries get meanwhile ([`AuditLog::admit`]): with `reject`, a 503
//! as soon as a write failed; with `buffer`, service until the queue holds
//! `buffer_records`, then a 503. A record is never dropped without a trace: one that finds
//! the queue full (only authentication failures can, queries are refused first) is counted in
//! `sluice_audit_dropped_total` and logged. Every record is also a structured log line
//! (target `sluice::audit`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sluice_schemas::api::AuditState;
use sluice_schemas::{AuditConfig, AuditPolicy};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::records::AuditRecord;
use super::store::MetadataStore;
use crate::error::ApiError;

/// The audit log as readiness reports it.
#[derive(Debug, Clone, Copy)]
pub struct AuditStatus {
    /// Writing normally, store unreachable, or buffer full.
    pub state: AuditState,
    /// Records accepted and not yet in the store.
    pub buffered: u64,
    /// The buffer's bound (`metadata.audit.buffer_records`).
    pub capacity: u64,
    /// Whether new queries are admitted, by the policy.
    pub admits: bool,
}

enum Msg {
    Record(Box<AuditRecord>),
    Flush(oneshot::Sender<()>),
}

/// The audit log's handle; cheap to share.
#[derive(Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    policy: AuditPolicy,
    capacity: usize,
    /// False from a failed write until the next successful one.
    healthy: Arc<AtomicBool>,
    /// Records accepted and not yet written.
    pending: Arc<AtomicU64>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

/// Wait between attempts while the store is down.
const RETRY: Duration = Duration::from_millis(250);

impl AuditLog {
    /// Starts the writer on `runtime`.
    pub fn start(
        store: Arc<dyn MetadataStore>,
        config: &AuditConfig,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        // The queue holds the bound; a few more slots for flush requests.
        let (tx, rx) = mpsc::channel(config.buffer_records + 16);
        let healthy = Arc::new(AtomicBool::new(true));
        let pending = Arc::new(AtomicU64::new(0));
        runtime.spawn(write_loop(
            store,
            rx,
            config.batch_records,
            Duration::from_millis(config.flush_ms),
            Arc::clone(&healthy),
            Arc::clone(&pending),
        ));
        Self {
            tx,
            policy: config.policy,
            capacity: config.buffer_records,
            healthy,
            pending,
        }
    }

    /// Whether a new query may start, by the policy.
    ///
    /// # Errors
    /// `metadata_unavailable` when its record could not be kept.
    pub fn admit(&self) -> Result<(), ApiError> {
        if self.refusal().is_some() {
            metrics::counter!(crate::metrics::AUDIT_REFUSED_TOTAL).increment(1);
            return Err(ApiError::audit_unavailable());
        }
        Ok(())
    }

    /// The log's side of the server's readiness: whether new queries are admitted, and why
    /// not.
    pub fn status(&self) -> AuditStatus {
        let buffered = self.pending();
        let healthy = self.healthy.load(Ordering::Acquire);
        let full = usize::try_from(buffered).unwrap_or(usize::MAX) >= self.capacity;
        let state = if full {
            AuditState::BufferFull
        } else if !healthy {
            AuditState::StoreUnreachable
        } else {
            AuditState::Ok
        };
        AuditStatus {
            state,
            buffered,
            capacity: self.capacity as u64,
            admits: self.refusal().is_none(),
        }
    }

    fn refusal(&self) -> Option<()> {
        let pending = usize::try_from(self.pending.load(Ordering::Acquire)).unwrap_or(usize::MAX);
        let refuse = match self.policy {
            AuditPolicy::Reject => !self.healthy.load(Ordering::Acquire),
            AuditPolicy::Buffer => pending >= self.capacity,
        };
        refuse.then_some(())
    }

    /// Records `r`: a log line now, the store soon.
    pub fn record(&self, r: AuditRecord) {
        log_line(&r);
        self.pending.fetch_add(1, Ordering::AcqRel);
        metrics::gauge!(crate::metrics::AUDIT_PENDING).increment(1.0);
        if let Err(e) = self.tx.try_send(Msg::Record(Box::new(r))) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            metrics::gauge!(crate::metrics::AUDIT_PENDING).decrement(1.0);
            metrics::counter!(crate::metrics::AUDIT_DROPPED_TOTAL).increment(1);
            let r = match e {
                mpsc::error::TrySendError::Full(Msg::Record(r))
                | mpsc::error::TrySendError::Closed(Msg::Record(r)) => r,
                _ => return,
            };
            error!(target: "sluice::audit", id = %r.id, "Audit queue full: this record is only in the log.");
        }
    }

    /// Records not yet in the store.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// Waits until everything recorded before the call is in the store, or `within` passes.
    /// Returns true when it is.
    pub async fn flush(&self, within: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_err() {
            return self.pending() == 0;
        }
        matches!(tokio::time::timeout(within, rx).await, Ok(Ok(())))
    }
}

fn log_line(r: &AuditRecord) {
    let key = r.key_id.as_deref().unwrap_or("unknown");
    let client = r.client.as_deref().unwrap_or("");
    match &r.query {
        None => {
            info!(target: "sluice::audit", kind = "auth", key_id = key, client, outcome = %r.outcome)
        }
        Some(q) => info!(
            target: "sluice::audit",
            kind = "query",
            key_id = key,
            client,
            outcome = %r.outcome,
            query_id = %q.query_id,
            operation = %q.operation,
            sql_sha256 = %q.sql_sha256,
            tables = ?q.tables,
            rows = q.rows,
            bytes = q.bytes,
            duration_ms = q.duration_ms,
        ),
    }
}

async fn write_loop(
    store: Arc<dyn MetadataStore>,
    mut rx: mpsc::Receiver<Msg>,
    batch_records: usize,
    flush_every: Duration,
    healthy: Arc<AtomicBool>,
    pending: Arc<AtomicU64>,
) {
    let mut batch: Vec<AuditRecord> = Vec::with_capacity(batch_records);
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        // Wait for the first record of a batch, then gather more for up to `flush_every`.
        let Some(first) = rx.recv().await else {
            break;
        };
        let deadline = tokio::time::Instant::now() + flush_every;
        let mut next = Some(first);
        loop {
            // Take what is queued now, without waiting.
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Record(r) => batch.push(*r),
                    Msg::Flush(w) => waiters.push(w),
                }
                if batch.len() >= batch_records || !waiters.is_empty() {
                    break;
                }
                next = rx.try_recv().ok();
            }
            if batch.len() >= batch_records || !waiters.is_empty() {
                break;
            }
            // Then sleep out the window and take the rest at once: waiting on the channel
            // instead would wake this task (and a thread) for every record, which under load is
            // a context switch per query.
            tokio::time::sleep_until(deadline).await;
            next = rx.try_recv().ok();
            if next.is_none() {
                break;
            }
        }
        write_until_done(store.as_ref(), &batch, &healthy).await;
        let n = batch.len() as u64;
        pending.fetch_sub(n, Ordering::AcqRel);
        #[allow(clippy::cast_precision_loss, reason = "a gauge")]
        metrics::gauge!(crate::metrics::AUDIT_PENDING).decrement(n as f64);
        metrics::counter!(crate::metrics::AUDIT_WRITTEN_TOTAL).increment(n);
        batch.clear();
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

/// Writes `batch`, retrying until the store takes it; health follows the outcome.
async fn write_until_done(store: &dyn MetadataStore, batch: &[AuditRecord], healthy: &AtomicBool) {
    if batch.is_empty() {
        return;
    }
    let mut failures = 0u64;
    loop {
        match store.write_audit(batch).await {
            Ok(()) => {
                if !healthy.swap(true, Ordering::AcqRel) {
                    info!(
                        records = batch.len(),
                        "Audit store reachable again; buffered records written."
                    );
                }
                return;
            }
            Err(e) => {
                healthy.store(false, Ordering::Release);
                metrics::counter!(crate::metrics::AUDIT_WRITE_ERRORS_TOTAL).increment(1);
                if failures.is_multiple_of(20) {
                    warn!(error = %e, records = batch.len(), "Audit records cannot be written; retrying.");
                }
                failures += 1;
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}
