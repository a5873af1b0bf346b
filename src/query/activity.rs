//! The server's recent activity, second by second, for `GET /v1/stats` (the console's charts):
//! every query that ends is added to the sample of its second; samples older than ten minutes
//! are dropped. Bounded: at most [`KEEP_S`] samples, each a fixed histogram and two maps whose
//! keys are error codes and source names.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_schemas::api::StatsSample;

/// Seconds kept.
pub const KEEP_S: u64 = 600;

/// Latency buckets: the first starts at [`FIRST_MS`], each is [`GROWTH`] times as wide as the one
/// before; the last, from about 75 minutes, also holds everything longer.
const BUCKETS: usize = 80;
const FIRST_MS: f64 = 0.1;
const GROWTH: f64 = 1.25;

/// How one query ended, as the activity record counts it.
#[derive(Debug)]
pub struct Ended<'a> {
    /// Wall time from request to end.
    pub elapsed: Duration,
    /// The error code when it failed or was cancelled.
    pub error: Option<&'a str>,
    /// Whether the result cache answered it (`None`: not asked).
    pub cache_hit: Option<bool>,
    /// Result bytes sent.
    pub bytes_sent: u64,
    /// Bytes pulled from each remote source.
    pub pulled: Vec<(String, u64)>,
}

#[derive(Debug)]
struct Slot {
    second: u64,
    queries: u64,
    errors: BTreeMap<String, u64>,
    latency: Box<[u32; BUCKETS]>,
    cache_hits: u64,
    cache_misses: u64,
    bytes_sent: u64,
    bytes_pulled: BTreeMap<String, u64>,
}

impl Slot {
    fn new(second: u64) -> Self {
        Self {
            second,
            queries: 0,
            errors: BTreeMap::new(),
            latency: Box::new([0; BUCKETS]),
            cache_hits: 0,
            cache_misses: 0,
            bytes_sent: 0,
            bytes_pulled: BTreeMap::new(),
        }
    }

    fn add(&mut self, q: &Ended<'_>) {
        self.queries += 1;
        if let Some(code) = q.error {
            *self.errors.entry(code.to_owned()).or_default() += 1;
        }
        let b = bucket(q.elapsed.as_secs_f64() * 1000.0);
        self.latency[b] = self.latency[b].saturating_add(1);
        match q.cache_hit {
            Some(true) => self.cache_hits += 1,
            Some(false) => self.cache_misses += 1,
            None => {}
        }
        self.bytes_sent += q.bytes_sent;
        for (source, bytes) in &q.pulled {
            *self.bytes_pulled.entry(source.clone()).or_default() += bytes;
        }
    }

    fn sample(&self) -> StatsSample {
        StatsSample {
            at_ms: self.second.saturating_mul(1000),
            queries: self.queries,
            errors: self.errors.clone(),
            p50_ms: quantile(&self.latency, 0.5),
            p99_ms: quantile(&self.latency, 0.99),
            cache_hits: self.cache_hits,
            cache_misses: self.cache_misses,
            bytes_sent: self.bytes_sent,
            bytes_pulled: self.bytes_pulled.clone(),
        }
    }
}

/// The bucket holding `ms`.
fn bucket(ms: f64) -> usize {
    if ms.is_nan() || ms <= FIRST_MS {
        return 0;
    }
    let i = ((ms / FIRST_MS).ln() / GROWTH.ln()).floor();
    // Non-negative and finite here; `as` saturates.
    (i as usize).min(BUCKETS - 1)
}

/// The geometric middle of the bucket holding the `q` quantile (0 for no samples).
fn quantile(latency: &[u32; BUCKETS], q: f64) -> f64 {
    let n: u64 = latency.iter().map(|&c| u64::from(c)).sum();
    if n == 0 {
        return 0.0;
    }
    // The rank of the quantile, 1-based: ceil(q * n), at least 1.
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    let mut seen = 0;
    for (i, &c) in latency.iter().enumerate() {
        seen += u64::from(c);
        if seen >= rank {
            let lower = FIRST_MS * GROWTH.powi(i as i32);
            return lower * GROWTH.sqrt();
        }
    }
    0.0
}

/// The last [`KEEP_S`] seconds of finished queries. Its clock is the wall clock read once,
/// at creation, then advanced by the monotonic clock: a wall clock stepped later (NTP fixing
/// a VM's time) neither reorders the record nor stamps it in the future.
#[derive(Debug)]
pub struct Activity {
    slots: Mutex<VecDeque<Slot>>,
    /// Milliseconds since the Unix epoch at `origin`.
    origin_ms: u64,
    origin: Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            slots: Mutex::default(),
            origin_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            origin: Instant::now(),
        }
    }
}

impl Activity {
    /// Now on the record's clock, milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        let since = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.origin_ms.saturating_add(since)
    }

    /// Counts one query that ended now.
    pub fn record(&self, q: &Ended<'_>) {
        self.record_in(self.now_ms() / 1000, q);
    }

    fn record_in(&self, second: u64, q: &Ended<'_>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // Seconds only move forward here; should one come late, it is added to the newest.
        match slots.back_mut() {
            Some(last) if last.second >= second => last.add(q),
            _ => {
                let mut slot = Slot::new(second);
                slot.add(q);
                slots.push_back(slot);
            }
        }
        while slots.front().is_some_and(|s| s.second + KEEP_S <= second)
            || slots.len() > KEEP_S as usize
        {
            slots.pop_front();
        }
    }

    /// The samples of the `window_s` seconds (at most [`KEEP_S`]) up to `now_ms` (from
    /// [`Self::now_ms`]), oldest first.
    pub fn samples(&self, now_ms: u64, window_s: u64) -> Vec<StatsSample> {
        self.samples_in(now_ms / 1000, window_s)
    }

    fn samples_in(&self, now_s: u64, window_s: u64) -> Vec<StatsSample> {
        let since = now_s.saturating_sub(window_s.min(KEEP_S));
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots
            .iter()
            .filter(|s| s.second > since)
            .map(Slot::sample)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(ms: u64, error: Option<&str>, hit: Option<bool>) -> Ended<'_> {
        Ended {
            elapsed: Duration::from_millis(ms),
            error,
            cache_hit: hit,
            bytes_sent: 10,
            pulled: vec![("pg".to_owned(), 7)],
        }
    }

    #[test]
    fn seconds_counts_and_quantiles() {
        let a = Activity::default();
        let t0 = 1_000_000;
        for ms in 1..=100 {
            a.record_in(t0, &ended(ms, None, Some(ms % 2 == 0)));
        }
        a.record_in(t0, &ended(5, Some("sql_invalid"), None));
        a.record_in(t0 + 2, &ended(3, Some("query_cancelled"), None));
        let s = a.samples_in(t0 + 2, 60);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].at_ms, 1_000_000_000);
        assert_eq!(s[0].queries, 101);
        assert_eq!(s[0].errors["sql_invalid"], 1);
        assert_eq!((s[0].cache_hits, s[0].cache_misses), (50, 50));
        assert_eq!(s[0].bytes_pulled["pg"], 707);
        assert_eq!(s[0].bytes_sent, 1010);
        // Within a bucket's precision of the true 50 and 99 ms.
        assert!((s[0].p50_ms / 50.0 - 1.0).abs() < 0.12, "{}", s[0].p50_ms);
        assert!((s[0].p99_ms / 99.0 - 1.0).abs() < 0.12, "{}", s[0].p99_ms);
        assert_eq!(s[1].errors["query_cancelled"], 1);
        // The window and the bound.
        assert_eq!(a.samples_in(t0 + 2, 1).len(), 1);
        a.record_in(t0 + KEEP_S + 1, &ended(1, None, None));
        let kept = a.samples_in(t0 + KEEP_S + 1, KEEP_S);
        assert_eq!(kept.len(), 2, "the first second is gone");
        // A late second adds to the newest.
        a.record_in(t0, &ended(1, None, None));
        let last = a.samples_in(t0 + KEEP_S + 1, 5);
        assert_eq!(last.last().map(|s| s.queries), Some(2));
        // The record's clock is the wall clock's at its start, moved on monotonically.
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(a.now_ms().abs_diff(wall) < 60_000);
    }

    #[test]
    fn buckets_cover_the_range() {
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(f64::NAN), 0);
        assert_eq!(bucket(1e12), BUCKETS - 1);
        assert_eq!(quantile(&[0; BUCKETS], 0.5), 0.0);
    }
}
