//! [`FairGate`]: a source's `max_concurrency`, shared fairly between API keys.
//!
//! At most `capacity` statements run on a source at once; the rest wait in one FIFO queue
//! per key, and a freed slot goes to the next key in turn (round robin), so one key's burst
//! of a hundred statements waits behind its own, not in front of everyone else's. A full
//! queue refuses at once; a statement that waited `timeout` gives up. Both answers carry a
//! retry hint computed from the queue: the statements ahead times the average statement
//! time, over the slots.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::oneshot;

/// Why a statement did not get a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateRefusal {
    /// The queue was full: refused at once.
    Full {
        /// When a slot is likely free.
        retry_after: Duration,
    },
    /// Waited its whole queue timeout.
    TimedOut {
        /// When a slot is likely free.
        retry_after: Duration,
    },
}

struct Waiter {
    id: u64,
    tx: oneshot::Sender<GatePermit>,
}

#[derive(Default)]
struct State {
    running: usize,
    queued: usize,
    next_id: u64,
    /// One queue per key, in the order keys are served; a key is here only while it waits.
    keys: VecDeque<(String, VecDeque<Waiter>)>,
}

/// A source's concurrency slots with a fair queue.
pub struct FairGate {
    capacity: usize,
    max_queued: usize,
    timeout: Duration,
    state: Mutex<State>,
    /// Moving average of how long a slot is held, microseconds.
    avg_hold_us: AtomicU64,
}

impl std::fmt::Debug for FairGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (running, queued) = self.load();
        f.debug_struct("FairGate")
            .field("capacity", &self.capacity)
            .field("running", &running)
            .field("queued", &queued)
            .finish_non_exhaustive()
    }
}

/// A held slot; dropping it frees the slot (or hands it to the next waiter).
pub struct GatePermit {
    gate: Arc<FairGate>,
    started: Instant,
    armed: bool,
}

impl std::fmt::Debug for GatePermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatePermit").finish_non_exhaustive()
    }
}

impl Drop for GatePermit {
    fn drop(&mut self) {
        if self.armed {
            let held = self.started.elapsed();
            Arc::clone(&self.gate).release(held);
        }
    }
}

/// Removes a waiter that stopped waiting (timeout, cancelled query) from its queue.
struct Leave<'a> {
    gate: &'a FairGate,
    key: &'a str,
    id: u64,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut s = self.gate.lock();
        let Some(pos) = s.keys.iter().position(|(k, _)| k == self.key) else {
            return;
        };
        let queue = &mut s.keys[pos].1;
        let before = queue.len();
        queue.retain(|w| w.id != self.id);
        let removed = before - queue.len();
        if queue.is_empty() {
            s.keys.remove(pos);
        }
        s.queued -= removed;
    }
}

impl FairGate {
    /// `capacity` slots, at most `max_queued` waiting, each for at most `timeout`.
    pub fn new(capacity: usize, max_queued: usize, timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            max_queued,
            timeout,
            state: Mutex::default(),
            avg_hold_us: AtomicU64::new(0),
        })
    }

    /// Slots in all.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many may wait.
    pub fn max_queued(&self) -> usize {
        self.max_queued
    }

    /// `(running, queued)` now.
    pub fn load(&self) -> (usize, usize) {
        let s = self.lock();
        (s.running, s.queued)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a slot for `key`, at most the gate's timeout and never past `deadline`.
    ///
    /// # Errors
    /// [`GateRefusal`] when the queue is full or the wait ran out.
    pub async fn acquire(
        self: &Arc<Self>,
        key: &str,
        deadline: Option<Instant>,
    ) -> Result<GatePermit, GateRefusal> {
        let (rx, id) = {
            let mut s = self.lock();
            if s.running < self.capacity && s.queued == 0 {
                s.running += 1;
                return Ok(self.permit());
            }
            if s.queued >= self.max_queued {
                return Err(GateRefusal::Full {
                    retry_after: self.estimate(s.queued),
                });
            }
            let (tx, rx) = oneshot::channel();
            s.next_id += 1;
            let id = s.next_id;
            let waiter = Waiter { id, tx };
            match s.keys.iter_mut().find(|(k, _)| k == key) {
                Some((_, q)) => q.push_back(waiter),
                None => s.keys.push_back((key.to_owned(), VecDeque::from([waiter]))),
            }
            s.queued += 1;
            (rx, id)
        };
        let leave = Leave {
            gate: self,
            key,
            id,
        };
        let until = Instant::now() + self.timeout;
        let until = deadline.map_or(until, |d| d.min(until));
        let got = tokio::time::timeout_at(until, rx).await;
        drop(leave);
        match got {
            Ok(Ok(permit)) => Ok(permit),
            // The gate never drops a waiter's sender without sending; treat it as a timeout.
            Ok(Err(_)) | Err(_) => Err(GateRefusal::TimedOut {
                retry_after: self.estimate(self.load().1),
            }),
        }
    }

    fn permit(self: &Arc<Self>) -> GatePermit {
        GatePermit {
            gate: Arc::clone(self),
            started: Instant::now(),
            armed: true,
        }
    }

    /// The statements ahead times the average hold, over the slots; at least one second.
    fn estimate(&self, ahead: usize) -> Duration {
        let hold = Duration::from_micros(self.avg_hold_us.load(Ordering::Relaxed));
        let waves = u32::try_from(ahead / self.capacity + 1).unwrap_or(u32::MAX);
        hold.saturating_mul(waves).max(Duration::from_secs(1))
    }

    fn release(self: Arc<Self>, held: Duration) {
        let us = u64::try_from(held.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .avg_hold_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 { us } else { old - old / 5 + us / 5 })
            });
        let mut permit = self.permit();
        let mut s = self.lock();
        while let Some((key, mut queue)) = s.keys.pop_front() {
            let Some(waiter) = queue.pop_front() else {
                continue;
            };
            s.queued -= 1;
            if !queue.is_empty() {
                // This key had its turn: to the back of the line.
                s.keys.push_back((key, queue));
            }
            match waiter.tx.send(permit) {
                Ok(()) => return,
                // That waiter has just left: the next one gets the slot.
                Err(back) => permit = back,
            }
        }
        s.running -= 1;
        // The slot was given back above; this permit must not free it again.
        permit.armed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_go_round_robin_between_keys() {
        let gate = FairGate::new(1, 100, Duration::from_secs(5));
        let first = gate.acquire("a", None).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Key a queues four statements before key b queues two.
        for (i, key) in ["a", "a", "a", "a", "b", "b"].into_iter().enumerate() {
            let g = Arc::clone(&gate);
            let order = Arc::clone(&order);
            tasks.push(tokio::spawn(async move {
                let p = g.acquire(key, None).await.unwrap();
                order.lock().unwrap().push(key);
                drop(p);
            }));
            // Queue in this order: wait until each is queued.
            while gate.load().1 < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["a", "b", "a", "b", "a", "a"]);
        assert_eq!(gate.load(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn full_queue_refuses_and_waiters_time_out() {
        let gate = FairGate::new(1, 1, Duration::from_secs(10));
        let held = gate.acquire("a", None).await.unwrap();
        let g = Arc::clone(&gate);
        let waiting = tokio::spawn(async move { g.acquire("a", None).await.map(drop) });
        while gate.load().1 < 1 {
            tokio::task::yield_now().await;
        }
        let full = gate.acquire("b", None).await.unwrap_err();
        assert!(
            matches!(full, GateRefusal::Full { retry_after } if retry_after >= Duration::from_secs(1))
        );
        // The waiter gives up after the queue timeout, on the (paused) clock.
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!waiting.is_finished(), "still within its timeout");
        tokio::time::advance(Duration::from_secs(1)).await;
        let timed_out = waiting.await.unwrap().unwrap_err();
        assert!(matches!(timed_out, GateRefusal::TimedOut { .. }));
        assert_eq!(gate.load(), (1, 0), "the waiter left the queue");
        drop(held);
        assert_eq!(gate.load(), (0, 0));
        let again = gate.acquire("b", None).await.unwrap();
        assert_eq!(gate.load(), (1, 0));
        drop(again);
    }
}
