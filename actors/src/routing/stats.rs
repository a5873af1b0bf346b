//! One replica's live figures and its health and circuit state machine.
//!
//! Two kinds of evidence feed it: the replica actor's active checks, and the outcome of every
//! real statement (passive signals). Only failures that say "the replica cannot serve"
//! (unreachable, timed out) count against it; a statement the source rejected is the
//! statement's fault, not the replica's.
//!
//! States go down and come back with hysteresis: `failures_to_open` consecutive failures open
//! the circuit (state Unavailable); while open, the replica gets no statements and no checks
//! until its cool-down ends; then one probe at a time (half-open), and `successes_to_close`
//! consecutive successes close it again. A replica that opens again soon after it closed
//! waits twice as long each time (up to `max_open_for`), so a flapping replica settles out
//! instead of flapping the source.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

// The breaker runs on tokio's clock, so its tests pause and advance time instead of sleeping.
use tokio::time::Instant;

use crate::health::HealthState;

/// How a replica's health moves between states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Consecutive failures that open the circuit.
    pub failures_to_open: u32,
    /// Consecutive successes while half-open that close it.
    pub successes_to_close: u32,
    /// The first cool-down after the circuit opens.
    pub open_for: Duration,
    /// The longest cool-down (it doubles each time the replica fails again soon after).
    pub max_open_for: Duration,
    /// Closed this long without opening resets the doubling.
    pub stable_after: Duration,
}

impl HealthPolicy {
    /// The policy for checks every `interval`: the first cool-down is one interval (at least
    /// 500 ms, at most 30 s), the longest sixteen of them (at most 5 minutes).
    pub fn for_interval(interval: Duration) -> Self {
        let open_for = interval.clamp(Duration::from_millis(500), Duration::from_secs(30));
        Self {
            failures_to_open: 3,
            successes_to_close: 2,
            open_for,
            max_open_for: (open_for * 16).min(Duration::from_secs(300)),
            stable_after: (open_for * 32).max(Duration::from_secs(30)),
        }
    }
}

/// Circuit-breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    /// Statements flow.
    Closed,
    /// Probing: one check or one trial statement at a time.
    HalfOpen,
    /// Cooling down: nothing is sent.
    Open,
}

impl Circuit {
    /// Lower-case name for APIs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            0 => Self::Closed,
            1 => Self::HalfOpen,
            _ => Self::Open,
        }
    }
}

/// What the state machine holds behind its lock.
#[derive(Debug, Clone)]
struct Machine {
    state: HealthState,
    since: SystemTime,
    consecutive_failures: u32,
    consecutive_successes: u32,
    last_error: Option<String>,
    last_check: Option<SystemTime>,
    last_check_latency: Option<Duration>,
    open_until: Option<Instant>,
    /// Openings in a row without a stable spell closed between them.
    streak: u32,
    opened_before: bool,
    closed_at: Option<Instant>,
    transitions: u64,
}

/// Statement latencies kept for p50/p99.
const RECENT: usize = 1024;
/// Weight of a new sample in the moving averages.
const ALPHA: f64 = 0.2;
/// Latency a replica is assumed to have before its first sample.
const PRIOR_LATENCY_MS: f64 = 1.0;

/// A replica's figures: written by statements and checks, read lock-free by the router.
#[derive(Debug)]
pub struct ReplicaStats {
    policy: HealthPolicy,
    machine: Mutex<Machine>,
    circuit: AtomicU8,
    degraded: AtomicBool,
    /// A trial statement (the least bad replica's trickle) is in flight.
    trial: AtomicBool,
    in_flight: AtomicU32,
    /// f64 bits; 0 until the first sample.
    ewma_latency_ms: AtomicU64,
    /// f64 bits: the moving share of statements and checks that failed.
    ewma_errors: AtomicU64,
    statements: AtomicU64,
    failures: AtomicU64,
    restarts: AtomicU32,
    recent: Mutex<VecDeque<u32>>,
}

/// A point-in-time copy of a replica's figures, for the API and metrics.
#[derive(Debug, Clone)]
pub struct StatsSnapshot {
    /// Health state.
    pub state: HealthState,
    /// Circuit state.
    pub circuit: Circuit,
    /// When the state last changed.
    pub since: SystemTime,
    /// The last failure's message, while it is the latest word (safe to show).
    pub last_error: Option<String>,
    /// When the last active check finished.
    pub last_check: Option<SystemTime>,
    /// How long it took.
    pub last_check_latency: Option<Duration>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// The router's score (lower is better; infinite while open).
    pub score: f64,
    /// Moving average latency, milliseconds.
    pub latency_ewma_ms: f64,
    /// Moving error rate, 0 to 1.
    pub error_rate: f64,
    /// Statements running now.
    pub in_flight: u32,
    /// Statements routed here since start.
    pub statements: u64,
    /// Of them, failed for the replica's sake.
    pub failures: u64,
    /// Median and 99th percentile of recent statement latencies, milliseconds.
    pub p50_ms: Option<f64>,
    /// See `p50_ms`.
    pub p99_ms: Option<f64>,
    /// State changes since start.
    pub transitions: u64,
    /// Actor restarts since start.
    pub restarts: u32,
    /// Until when the circuit stays open.
    pub open_for: Option<Duration>,
}

fn load_f64(a: &AtomicU64) -> f64 {
    f64::from_bits(a.load(Ordering::Relaxed))
}

fn ewma(a: &AtomicU64, x: f64) {
    // A lost update under a race only skews one sample; no retry loop needed for that.
    let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
        let old = f64::from_bits(bits);
        let new = if old == 0.0 {
            x
        } else {
            old + ALPHA * (x - old)
        };
        Some(new.to_bits())
    });
}

impl ReplicaStats {
    /// A replica not checked yet.
    pub fn new(policy: HealthPolicy) -> Self {
        Self {
            policy,
            machine: Mutex::new(Machine {
                state: HealthState::Starting,
                since: SystemTime::now(),
                consecutive_failures: 0,
                consecutive_successes: 0,
                last_error: None,
                last_check: None,
                last_check_latency: None,
                open_until: None,
                streak: 0,
                opened_before: false,
                closed_at: None,
                transitions: 0,
            }),
            circuit: AtomicU8::new(Circuit::Closed.code()),
            degraded: AtomicBool::new(false),
            trial: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            ewma_latency_ms: AtomicU64::new(0),
            ewma_errors: AtomicU64::new(0),
            statements: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            restarts: AtomicU32::new(0),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
        }
    }

    /// The policy this replica follows.
    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    /// The circuit as the router sees it (lock-free).
    pub fn circuit(&self) -> Circuit {
        Circuit::from_code(self.circuit.load(Ordering::Acquire))
    }

    /// Times the replica's actor was restarted after a fatal fault.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Counts a restart; returns the count.
    pub(crate) fn count_restart(&self) -> u32 {
        self.restarts.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Statements running now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The router's score; lower is better.
    ///
    /// `score = latency_ms × (1 + in_flight) × (1 + 10 × error_rate) × state_factor`, where
    /// `latency_ms` is the moving average of statement and check latencies (1 ms before the
    /// first sample, at least 0.05 ms), `error_rate` the moving share of failures, and
    /// `state_factor` 1 when healthy, 4 when degraded, 16 when half-open; an open circuit
    /// scores infinity. Latency × (in-flight + 1) estimates how long a new statement waits
    /// behind the ones already there, so a fast replica takes most of the load until its
    /// queue makes it as slow as the others.
    pub fn score(&self) -> f64 {
        let factor = match self.circuit() {
            Circuit::Open => return f64::INFINITY,
            Circuit::HalfOpen => 16.0,
            Circuit::Closed if self.degraded.load(Ordering::Relaxed) => 4.0,
            Circuit::Closed => 1.0,
        };
        let latency = match load_f64(&self.ewma_latency_ms) {
            0.0 => PRIOR_LATENCY_MS,
            l => l.max(0.05),
        };
        let errors = load_f64(&self.ewma_errors);
        latency * f64::from(self.in_flight() + 1) * (1.0 + 10.0 * errors) * factor
    }

    /// Counts a statement starting here.
    pub(crate) fn start_statement(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.statements.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a statement ending here.
    pub(crate) fn end_statement(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Takes the trickle slot of an open replica whose cool-down is over (it turns
    /// half-open); false when the slot is taken or the cool-down runs.
    pub(crate) fn try_trial(&self) -> bool {
        if self.open_remaining().is_some() {
            return false;
        }
        if self
            .trial
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.begin_probe();
        true
    }

    /// Frees the trickle slot.
    pub(crate) fn end_trial(&self) {
        self.trial.store(false, Ordering::Release);
    }

    /// How long the circuit stays open; `None` when it is not open or the cool-down is over.
    pub fn open_remaining(&self) -> Option<Duration> {
        if self.circuit() != Circuit::Open {
            return None;
        }
        let m = self.lock();
        m.open_until
            .and_then(|t| t.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    /// Before an active check: false while the circuit cools down (no check is due); an open
    /// circuit past its cool-down turns half-open and the check is its probe.
    pub fn begin_probe(&self) -> bool {
        let mut m = self.lock();
        if self.circuit() != Circuit::Open {
            return true;
        }
        if m.open_until.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        self.set_circuit(Circuit::HalfOpen);
        m.transitions += 1;
        true
    }

    /// An active check's outcome. `pressure`: the check passed but the replica is loaded (a
    /// saturated pool): Degraded, without counting toward opening. Returns the new state when
    /// it changed.
    pub fn record_check(
        &self,
        outcome: Result<(), String>,
        pressure: Option<String>,
        latency: Duration,
    ) -> Option<HealthState> {
        {
            let mut m = self.lock();
            m.last_check = Some(SystemTime::now());
            m.last_check_latency = Some(latency);
        }
        match outcome {
            Ok(()) => self.success(latency, pressure),
            Err(e) => self.failure(e, Some(latency)),
        }
    }

    /// A statement that finished (or failed for its own reasons) here in `latency`.
    pub fn record_statement_ok(&self, latency: Duration) {
        let ms = u32::try_from(latency.as_micros() / 1000).unwrap_or(u32::MAX);
        if let Ok(mut r) = self.recent.lock() {
            if r.len() == RECENT {
                r.pop_front();
            }
            r.push_back(ms);
        }
        self.success(latency, None);
    }

    /// A statement that failed because the replica could not serve it.
    pub fn record_statement_failure(&self, error: String) -> Option<HealthState> {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.failure(error, None)
    }

    fn success(&self, latency: Duration, pressure: Option<String>) -> Option<HealthState> {
        ewma(&self.ewma_latency_ms, latency.as_secs_f64() * 1000.0);
        ewma(&self.ewma_errors, 0.0);
        let mut m = self.lock();
        m.consecutive_failures = 0;
        m.consecutive_successes = m.consecutive_successes.saturating_add(1);
        let next = match self.circuit() {
            Circuit::Closed => {
                if pressure.is_some() {
                    HealthState::Degraded
                } else {
                    HealthState::Healthy
                }
            }
            // An open circuit hearing of a success (a statement that was in flight, or a trial)
            // is as good as a passing probe.
            Circuit::HalfOpen | Circuit::Open => {
                if m.consecutive_successes >= self.policy.successes_to_close {
                    self.set_circuit(Circuit::Closed);
                    m.closed_at = Some(Instant::now());
                    m.open_until = None;
                    HealthState::Healthy
                } else {
                    self.set_circuit(Circuit::HalfOpen);
                    HealthState::Unavailable
                }
            }
        };
        m.last_error = match (next, pressure) {
            (HealthState::Degraded, Some(p)) => Some(p),
            (HealthState::Healthy, _) => None,
            (_, _) => m.last_error.take(),
        };
        self.degraded
            .store(next == HealthState::Degraded, Ordering::Relaxed);
        self.transition(&mut m, next)
    }

    fn failure(&self, error: String, latency: Option<Duration>) -> Option<HealthState> {
        ewma(&self.ewma_errors, 1.0);
        if let Some(l) = latency {
            ewma(&self.ewma_latency_ms, l.as_secs_f64() * 1000.0);
        }
        let mut m = self.lock();
        m.consecutive_successes = 0;
        m.consecutive_failures = m.consecutive_failures.saturating_add(1);
        m.last_error = Some(error);
        let next = match self.circuit() {
            Circuit::Closed
                if m.state == HealthState::Starting
                    || m.consecutive_failures >= self.policy.failures_to_open =>
            {
                self.open(&mut m);
                HealthState::Unavailable
            }
            Circuit::Closed => HealthState::Degraded,
            Circuit::HalfOpen => {
                self.open(&mut m);
                HealthState::Unavailable
            }
            // Late news from a statement that started before the circuit opened.
            Circuit::Open => HealthState::Unavailable,
        };
        self.degraded
            .store(next == HealthState::Degraded, Ordering::Relaxed);
        self.transition(&mut m, next)
    }

    fn open(&self, m: &mut Machine) {
        let stable = m
            .closed_at
            .is_some_and(|t| t.elapsed() >= self.policy.stable_after);
        if stable || !m.opened_before {
            m.streak = 0;
        } else {
            m.streak = m.streak.saturating_add(1);
        }
        m.opened_before = true;
        let wait = self
            .policy
            .open_for
            .saturating_mul(1u32 << m.streak.min(16))
            .min(self.policy.max_open_for);
        m.open_until = Some(Instant::now() + wait);
        self.set_circuit(Circuit::Open);
    }

    fn set_circuit(&self, c: Circuit) {
        self.circuit.store(c.code(), Ordering::Release);
    }

    fn transition(&self, m: &mut Machine, next: HealthState) -> Option<HealthState> {
        if m.state == next {
            return None;
        }
        m.state = next;
        m.since = SystemTime::now();
        m.transitions += 1;
        Some(next)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Machine> {
        // A panic while holding this lock leaves consistent-enough figures: keep going.
        self.machine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of everything, for the API.
    pub fn snapshot(&self) -> StatsSnapshot {
        let (p50_ms, p99_ms) = self.percentiles();
        let m = self.lock().clone();
        let open_for = m
            .open_until
            .and_then(|t| t.checked_duration_since(Instant::now()))
            .filter(|_| self.circuit() == Circuit::Open);
        StatsSnapshot {
            state: m.state,
            circuit: self.circuit(),
            since: m.since,
            last_error: m.last_error,
            last_check: m.last_check,
            last_check_latency: m.last_check_latency,
            consecutive_failures: m.consecutive_failures,
            score: self.score(),
            latency_ewma_ms: load_f64(&self.ewma_latency_ms),
            error_rate: load_f64(&self.ewma_errors),
            in_flight: self.in_flight(),
            statements: self.statements.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            p50_ms,
            p99_ms,
            transitions: m.transitions,
            restarts: self.restarts(),
            open_for,
        }
    }

    fn percentiles(&self) -> (Option<f64>, Option<f64>) {
        let mut v: Vec<u32> = match self.recent.lock() {
            Ok(r) => r.iter().copied().collect(),
            Err(_) => return (None, None),
        };
        if v.is_empty() {
            return (None, None);
        }
        v.sort_unstable();
        let at = |q: f64| {
            let i = ((v.len() as f64 - 1.0) * q).round() as usize;
            f64::from(v[i.min(v.len() - 1)])
        };
        (Some(at(0.5)), Some(at(0.99)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            failures_to_open: 3,
            successes_to_close: 2,
            open_for: Duration::from_millis(40),
            max_open_for: Duration::from_millis(160),
            stable_after: Duration::from_secs(60),
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn hysteresis_both_ways() {
        let s = ReplicaStats::new(policy());
        assert_eq!(s.record_check(Ok(()), None, MS), Some(HealthState::Healthy));
        assert_eq!(
            s.record_statement_failure("refused".into()),
            Some(HealthState::Degraded)
        );
        assert_eq!(s.record_check(Err("refused".into()), None, MS), None);
        assert_eq!(s.circuit(), Circuit::Closed, "two failures do not open it");
        assert_eq!(
            s.record_check(Err("refused".into()), None, MS),
            Some(HealthState::Unavailable)
        );
        assert_eq!(s.circuit(), Circuit::Open);
        assert!(s.score().is_infinite());
        assert!(!s.begin_probe(), "no check while it cools down");
        assert!(s.open_remaining().is_some());
        tokio::time::advance(Duration::from_millis(45)).await;
        assert!(s.begin_probe());
        assert_eq!(s.circuit(), Circuit::HalfOpen);
        assert_eq!(
            s.record_check(Ok(()), None, MS),
            None,
            "one success is not enough"
        );
        assert_eq!(s.circuit(), Circuit::HalfOpen);
        assert_eq!(s.record_check(Ok(()), None, MS), Some(HealthState::Healthy));
        assert_eq!(s.circuit(), Circuit::Closed);
        assert_eq!(s.snapshot().last_error, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_that_fails_again_soon_waits_longer() {
        let s = ReplicaStats::new(policy());
        s.record_check(Err("down".into()), None, MS);
        assert_eq!(s.circuit(), Circuit::Open, "never up: open at once");
        let first = s.open_remaining().unwrap();
        tokio::time::advance(first + MS).await;
        assert!(s.begin_probe());
        s.record_check(Err("down".into()), None, MS);
        let second = s.open_remaining().unwrap();
        assert!(
            second > first + Duration::from_millis(20),
            "{first:?} {second:?}"
        );
        tokio::time::advance(second + MS).await;
        assert!(s.begin_probe());
        s.record_check(Err("down".into()), None, MS);
        tokio::time::advance(s.open_remaining().unwrap() + MS).await;
        assert!(s.begin_probe());
        s.record_check(Err("down".into()), None, MS);
        assert!(
            s.open_remaining().unwrap() <= Duration::from_millis(160),
            "capped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn trial_slot_is_single() {
        let s = ReplicaStats::new(policy());
        s.record_check(Err("down".into()), None, MS);
        assert!(!s.try_trial(), "cooling down");
        tokio::time::advance(Duration::from_millis(45)).await;
        assert!(s.try_trial());
        assert!(!s.try_trial(), "one trial at a time");
        s.end_trial();
        assert!(s.try_trial());
    }

    #[test]
    fn score_follows_latency_load_and_errors() {
        let fast = ReplicaStats::new(policy());
        let slow = ReplicaStats::new(policy());
        for _ in 0..20 {
            fast.record_statement_ok(Duration::from_millis(2));
            slow.record_statement_ok(Duration::from_millis(50));
        }
        assert!(fast.score() < slow.score());
        for _ in 0..30 {
            fast.start_statement();
        }
        assert!(
            fast.score() > slow.score(),
            "a queue makes a fast replica slow"
        );
        let snap = slow.snapshot();
        assert_eq!(snap.p50_ms, Some(50.0));
        assert_eq!(snap.statements, 0, "only the router counts statements");
    }

    #[test]
    fn pressure_degrades_without_counting_failures() {
        let s = ReplicaStats::new(policy());
        s.record_check(Ok(()), None, MS);
        assert_eq!(
            s.record_check(Ok(()), Some("pool saturated".into()), MS),
            Some(HealthState::Degraded)
        );
        let snap = s.snapshot();
        assert_eq!(snap.consecutive_failures, 0);
        assert_eq!(snap.last_error.as_deref(), Some("pool saturated"));
        assert_eq!(s.circuit(), Circuit::Closed);
    }
}
