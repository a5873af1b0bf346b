//! The server's recent activity, second by second, for `GET /v1/stats` (the console's charts):
//! every query that ends is added to the sample of its second; samples older than ten minutes
//! are dropped. Bounded: at most [`KEEP_S`] samples, each a fixed histogram and two maps whose
//! keys are error codes and source names.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_schemas::api::StatsSample;

/// Seconds kept.
pub const KEEP_S: u64 = 600;

/// Latency buckets: the first starts at [`FIRST_MS`], each is [`GROWTH`] times as wide as the one
/// before; the last also holds everything longer (0.1 ms to about five hours).
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

/// The last [`KEEP_S`] seconds of finished queries.
#[derive(Debug, Default)]
pub struct Activity {
    slots: Mutex<VecDeque<Slot>>,
}

fn epoch_s(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Activity {
    /// Counts one query that ended now.
    pub fn record(&self, q: &Ended<'_>) {
        self.record_at(SystemTime::now(), q);
    }

    fn record_at(&self, at: SystemTime, q: &Ended<'_>) {
        let second = epoch_s(at);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // A clock stepping back adds to the newest second rather than reordering the record.
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

    /// The samples of the last `window_s` seconds (at most [`KEEP_S`]), oldest first.
    pub fn samples(&self, window_s: u64) -> Vec<StatsSample> {
        self.samples_at(SystemTime::now(), window_s)
    }

    fn samples_at(&self, now: SystemTime, window_s: u64) -> Vec<StatsSample> {
        let since = epoch_s(now).saturating_sub(window_s.min(KEEP_S));
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
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        for ms in 1..=100 {
            a.record_at(t0, &ended(ms, None, Some(ms % 2 == 0)));
        }
        a.record_at(t0, &ended(5, Some("sql_invalid"), None));
        a.record_at(
            t0 + Duration::from_secs(2),
            &ended(3, Some("query_cancelled"), None),
        );
        let s = a.samples_at(t0 + Duration::from_secs(2), 60);
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
        assert_eq!(a.samples_at(t0 + Duration::from_secs(2), 1).len(), 1);
        a.record_at(t0 + Duration::from_secs(KEEP_S + 1), &ended(1, None, None));
        let kept = a.samples_at(t0 + Duration::from_secs(KEEP_S + 1), KEEP_S);
        assert_eq!(kept.len(), 2, "the first second is gone");
        // A clock stepping back adds to the newest second.
        a.record_at(t0, &ended(1, None, None));
        let last = a.samples_at(t0 + Duration::from_secs(KEEP_S + 1), 5);
        assert_eq!(last.last().map(|s| s.queries), Some(2));
    }

    #[test]
    fn buckets_cover_the_range() {
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(f64::NAN), 0);
        assert_eq!(bucket(1e12), BUCKETS - 1);
        assert_eq!(quantile(&[0; BUCKETS], 0.5), 0.0);
    }
}
