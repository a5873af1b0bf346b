//! Per-key rate limits (a token bucket per key: governor's GCRA) and per-key concurrent
//! queries (a semaphore per key). A key's own limits override its role's defaults.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sluice_schemas::RoleLimits;
use sluice_schemas::api::{KeyRole, RateLimit};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::keys::KeyRecord;
use crate::error::ApiError;

/// What applies to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Effective {
    rate: Option<RateLimit>,
    max_concurrent: Option<u32>,
}

#[derive(Debug)]
struct KeyLimits {
    effective: Effective,
    bucket: Option<DefaultDirectRateLimiter>,
    running: Option<Arc<Semaphore>>,
}

/// Callers whose limits are held at most: keys are bounded by the store, but token and
/// certificate subjects are whoever the identity provider names. Past this, the limits of
/// callers with no query running are forgotten (their buckets start full again).
const MAX_HELD: usize = 100_000;

/// Limits of every key seen.
#[derive(Debug)]
pub struct Limiter {
    reader: RoleLimits,
    admin: RoleLimits,
    keys: Mutex<HashMap<String, Arc<KeyLimits>>>,
    clock: DefaultClock,
}

fn quota(rate: RateLimit) -> Option<Quota> {
    let per_second = NonZeroU32::new(rate.per_second)?;
    let burst = rate.burst.and_then(NonZeroU32::new).unwrap_or(per_second);
    Some(Quota::per_second(per_second).allow_burst(burst))
}

impl Limiter {
    /// Limits with these role defaults.
    pub fn new(reader: RoleLimits, admin: RoleLimits) -> Self {
        Self {
            reader,
            admin,
            keys: Mutex::default(),
            clock: DefaultClock::default(),
        }
    }

    fn effective(&self, key: &KeyRecord) -> Effective {
        let role = match key.role {
            KeyRole::Admin => &self.admin,
            KeyRole::Reader => &self.reader,
        };
        let role_rate = role.per_second.map(|per_second| RateLimit {
            per_second,
            burst: role.burst,
        });
        Effective {
            rate: key.rate_limit.or(role_rate),
            max_concurrent: key.max_concurrent.or(role.max_concurrent),
        }
    }

    /// The key's limits; rebuilt (buckets full again) only when they changed.
    fn limits(&self, key: &KeyRecord) -> Arc<KeyLimits> {
        let effective = self.effective(key);
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = keys.get(&key.id)
            && l.effective == effective
        {
            return Arc::clone(l);
        }
        if keys.len() >= MAX_HELD {
            keys.retain(|_, l| {
                Arc::strong_count(l) > 1
                    || l.running.as_ref().is_some_and(|r| {
                        l.effective
                            .max_concurrent
                            .is_some_and(|n| r.available_permits() < n as usize)
                    })
            });
        }
        let l = Arc::new(KeyLimits {
            effective,
            bucket: effective.rate.and_then(quota).map(RateLimiter::direct),
            running: effective
                .max_concurrent
                .map(|n| Arc::new(Semaphore::new(n as usize))),
        });
        keys.insert(key.id.clone(), Arc::clone(&l));
        l
    }

    /// Takes one request from the key's bucket.
    ///
    /// # Errors
    /// `429 rate_limited` with the wait until a request would be allowed.
    pub fn check_rate(&self, key: &KeyRecord) -> Result<(), ApiError> {
        let l = self.limits(key);
        let Some(bucket) = &l.bucket else {
            return Ok(());
        };
        bucket.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            metrics::counter!(crate::metrics::RATE_LIMITED_TOTAL, "reason" => "rate").increment(1);
            let rate = l.effective.rate.map_or(0, |r| r.per_second);
            ApiError::rate_limited(rate, wait)
        })
    }

    /// Takes one of the key's concurrent-query slots, held until the permit drops.
    ///
    /// # Errors
    /// `429 too_many_queries`.
    pub fn start_query(&self, key: &KeyRecord) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        let l = self.limits(key);
        let Some(running) = &l.running else {
            return Ok(None);
        };
        Arc::clone(running)
            .try_acquire_owned()
            .map(Some)
            .map_err(|_| {
                metrics::counter!(crate::metrics::RATE_LIMITED_TOTAL, "reason" => "concurrency")
                    .increment(1);
                let n = l.effective.max_concurrent.unwrap_or(0);
                ApiError::too_many_key_queries(n, Duration::from_secs(1))
            })
    }
}
