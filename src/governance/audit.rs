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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use sluice_schemas::api::AuditState;
use sluice_schemas::{AuditConfig, AuditPolicy};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::Client;
use super::records::{AuditKind, AuditRecord};
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

/// Failed authentications are counted per client address and outcome over this window, and
/// recorded once per window.
pub const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(5);
/// Groups one window holds; attempts past it count under one group without an address.
const AUTH_FAILURE_GROUPS: usize = 1024;

/// The failed authentications of the current window.
#[derive(Debug, Default)]
struct Failures {
    groups: HashMap<(Option<String>, &'static str), FailureGroup>,
}

#[derive(Debug)]
struct FailureGroup {
    first: DateTime<Utc>,
    attempts: u64,
    /// The claimed key id while every attempt claimed the same one.
    key_id: Option<String>,
    one_key: bool,
    user_agent: Option<String>,
    door: &'static str,
}

impl Failures {
    fn note(&mut self, key_id: Option<&str>, client: &Client, outcome: &'static str) {
        let mut addr = client.addr.clone();
        if !self.groups.contains_key(&(addr.clone(), outcome))
            && self.groups.len() >= AUTH_FAILURE_GROUPS
        {
            addr = None;
        }
        let group = self
            .groups
            .entry((addr, outcome))
            .or_insert_with(|| FailureGroup {
                first: Utc::now(),
                attempts: 0,
                key_id: key_id.map(str::to_owned),
                one_key: true,
                user_agent: client.user_agent.clone(),
                door: client.door.as_str(),
            });
        group.attempts += 1;
        if group.one_key && group.key_id.as_deref() != key_id {
            group.one_key = false;
            group.key_id = None;
        }
    }

    /// The window's records, one per group; the window starts again empty.
    fn drain(&mut self) -> Vec<AuditRecord> {
        self.groups
            .drain()
            .map(|((client, outcome), g)| {
                metrics::counter!(crate::metrics::AUTH_FAILURES_AGGREGATED_TOTAL)
                    .increment(g.attempts);
                let mut r = AuditRecord::new(AuditKind::Auth, g.key_id, outcome);
                r.at = g.first;
                r.client = client;
                r.user_agent = g.user_agent;
                r.door = Some(g.door.to_owned());
                r.attempts = g.attempts;
                r
            })
            .collect()
    }
}

/// The bounded queue to the writer.
#[derive(Debug, Clone)]
struct Queue {
    tx: mpsc::Sender<Msg>,
    capacity: usize,
    /// Records accepted and not yet written.
    pending: Arc<AtomicU64>,
    /// Whether authentication records are being kept out (said once per episode).
    holding_off: Arc<AtomicBool>,
}

impl Queue {
    fn push(&self, r: AuditRecord) {
        log_line(&r);
        let pending = usize::try_from(self.pending.load(Ordering::Acquire)).unwrap_or(usize::MAX);
        // Authentication records keep off the second half of the buffer (give or take the
        // records being pushed at this instant): the room queries need is never theirs.
        let half_full = pending.saturating_mul(2) >= self.capacity;
        if r.kind == AuditKind::Auth && half_full {
            metrics::counter!(crate::metrics::AUDIT_DROPPED_TOTAL).increment(1);
            if !self.holding_off.swap(true, Ordering::AcqRel) {
                warn!(target: "sluice::audit", "Audit buffer half full: authentication records are only in the log until it drains.");
            }
            return;
        }
        if !half_full {
            self.holding_off.store(false, Ordering::Release);
        }
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
}

/// The audit log's handle; cheap to share.
#[derive(Debug)]
pub struct AuditLog {
    queue: Queue,
    policy: AuditPolicy,
    /// False from a failed write until the next successful one.
    healthy: Arc<AtomicBool>,
    failures: Arc<Mutex<Failures>>,
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
        let failures = Arc::new(Mutex::new(Failures::default()));
        let queue = Queue {
            tx,
            capacity: config.buffer_records,
            pending,
            holding_off: Arc::default(),
        };
        // Holds the sender weakly: the writer ends when the log is dropped.
        runtime.spawn(record_failures(
            Arc::downgrade(&failures),
            queue.tx.downgrade(),
            queue.capacity,
            Arc::clone(&queue.pending),
            Arc::clone(&queue.holding_off),
        ));
        Self {
            queue,
            policy: config.policy,
            healthy,
            failures,
        }
    }

    /// Counts a failed authentication into its client's aggregate for the window.
    pub fn auth_failed(&self, key_id: Option<&str>, client: &Client, outcome: &'static str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(key_id, client, outcome);
    }

    /// Queues the window's failed-authentication records now.
    fn record_failures_now(&self) {
        let records = self
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain();
        for r in records {
            self.queue.push(r);
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
        let full = usize::try_from(buffered).unwrap_or(usize::MAX) >= self.queue.capacity;
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
            capacity: self.queue.capacity as u64,
            admits: self.refusal().is_none(),
        }
    }

    fn refusal(&self) -> Option<()> {
        let pending = usize::try_from(self.pending()).unwrap_or(usize::MAX);
        let refuse = match self.policy {
            AuditPolicy::Reject => !self.healthy.load(Ordering::Acquire),
            AuditPolicy::Buffer => pending >= self.queue.capacity,
        };
        refuse.then_some(())
    }

    /// Records `r`: a log line now, the store soon.
    pub fn record(&self, r: AuditRecord) {
        self.queue.push(r);
    }

    /// Records not yet in the store.
    pub fn pending(&self) -> u64 {
        self.queue.pending.load(Ordering::Acquire)
    }

    /// Waits until everything recorded before the call (failed authentications counted so far
    /// included) is in the store, or `within` passes. Returns true when it is.
    pub async fn flush(&self, within: Duration) -> bool {
        self.record_failures_now();
        let (tx, rx) = oneshot::channel();
        if self.queue.tx.send(Msg::Flush(tx)).await.is_err() {
            return self.pending() == 0;
        }
        matches!(tokio::time::timeout(within, rx).await, Ok(Ok(())))
    }
}

/// Every window, queues the failed-authentication records counted during it, until the log is
/// gone.
async fn record_failures(
    failures: std::sync::Weak<Mutex<Failures>>,
    tx: mpsc::WeakSender<Msg>,
    capacity: usize,
    pending: Arc<AtomicU64>,
    holding_off: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(AUTH_FAILURE_WINDOW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (Some(failures), Some(tx)) = (failures.upgrade(), tx.upgrade()) else {
            return;
        };
        let records = failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain();
        let queue = Queue {
            tx,
            capacity,
            pending: Arc::clone(&pending),
            holding_off: Arc::clone(&holding_off),
        };
        for r in records {
            queue.push(r);
        }
    }
}

fn log_line(r: &AuditRecord) {
    let key = r.key_id.as_deref().unwrap_or("unknown");
    let client = r.client.as_deref().unwrap_or("");
    if let Some(c) = &r.change {
        info!(target: "sluice::audit", kind = "admin", key_id = key, client, action = %c.action, target = %c.target);
        return;
    }
    match &r.query {
        None => {
            info!(target: "sluice::audit", kind = "auth", key_id = key, client, outcome = %r.outcome, attempts = r.attempts)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn from(addr: &str) -> Client {
        Client {
            addr: Some(addr.to_owned()),
            ..Client::default()
        }
    }

    #[test]
    fn failed_authentications_are_counted_per_client_and_outcome() {
        let mut f = Failures::default();
        for i in 0..1_000 {
            f.note(
                Some(&format!("key_{i:012x}")),
                &from("10.0.0.1"),
                "unknown_key",
            );
        }
        f.note(Some("key_a"), &from("10.0.0.2"), "wrong_secret");
        f.note(Some("key_a"), &from("10.0.0.2"), "wrong_secret");
        f.note(None, &from("10.0.0.2"), "missing");
        let mut records = f.drain();
        records.sort_by(|a, b| (&a.client, &a.outcome).cmp(&(&b.client, &b.outcome)));
        let seen: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    r.client.as_deref().unwrap(),
                    r.outcome.as_str(),
                    r.attempts,
                    r.key_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("10.0.0.1", "unknown_key", 1_000, None),
                ("10.0.0.2", "missing", 1, None),
                ("10.0.0.2", "wrong_secret", 2, Some("key_a")),
            ]
        );
        assert!(f.drain().is_empty(), "the next window starts empty");
    }

    #[test]
    fn a_window_holds_a_bounded_number_of_groups() {
        let mut f = Failures::default();
        for i in 0..AUTH_FAILURE_GROUPS + 500 {
            f.note(
                None,
                &from(&format!("10.1.{}.{}", i / 256, i % 256)),
                "malformed",
            );
        }
        let records = f.drain();
        assert_eq!(records.len(), AUTH_FAILURE_GROUPS + 1);
        let overflow = records.iter().find(|r| r.client.is_none()).unwrap();
        assert_eq!(overflow.attempts, 500);
    }

    #[test]
    fn authentication_records_never_take_the_second_half_of_the_buffer() {
        let (tx, mut rx) = mpsc::channel(16);
        let queue = Queue {
            tx,
            capacity: 10,
            pending: Arc::default(),
            holding_off: Arc::default(),
        };
        for _ in 0..10 {
            queue.push(AuditRecord::new(AuditKind::Auth, None, "ok"));
        }
        assert_eq!(queue.pending.load(Ordering::Acquire), 5);
        for _ in 0..5 {
            queue.push(AuditRecord::new(AuditKind::Query, None, "ok"));
        }
        assert_eq!(
            queue.pending.load(Ordering::Acquire),
            10,
            "queries still fit"
        );
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 10);
    }
}
