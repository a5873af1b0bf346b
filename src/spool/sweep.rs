//! The sweeper: deletes results that expired, and prefixes a stopped server left behind.
//!
//! Every prefix under the root is one result. A running one has a `_lease` its writer rewrites
//! every third of `lease_ms`; a finished one has an `_expires-<unix ms>` marker. A prefix is
//! deleted when its marker's time has passed, or when it has no marker and its lease (or, with
//! neither, its newest object) is older than `lease_ms`: its server stopped mid-query. Results
//! this server still holds are left to their own expiry.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use object_store::ObjectMeta;
use object_store::path::Path;
use tracing::info;

use super::{Outcome, Spool, unix_ms};

impl Spool {
    /// Sweeps now and then on a period derived from the expiry and the lease, until the
    /// server stops.
    pub fn spawn_sweeper(self: &Arc<Self>, runtime: &tokio::runtime::Handle) {
        let spool = Arc::clone(self);
        let every = (spool.expiry.min(spool.lease) / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(60));
        runtime.spawn(async move {
            loop {
                spool.sweep().await;
                tokio::select! {
                    () = spool.closing.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
    }

    /// One pass: this server's expired results, then every abandoned or expired prefix.
    pub async fn sweep(&self) {
        let now = SystemTime::now();
        let expired: Vec<_> = {
            let mut results = self.results.lock().unwrap_or_else(PoisonError::into_inner);
            let gone: Vec<String> = results
                .iter()
                .filter(|(_, r)| match r.lock().outcome {
                    Outcome::Running => false,
                    Outcome::Complete { expires_at } => expires_at <= now,
                    Outcome::Failed { until, .. } => until <= now,
                })
                .map(|(id, _)| id.clone())
                .collect();
            let gone: Vec<_> = gone.iter().filter_map(|id| results.remove(id)).collect();
            Self::count(&results);
            gone
        };
        for r in expired {
            // A failed result's objects went when it failed: only finished ones count.
            let finished = matches!(r.lock().outcome, Outcome::Complete { .. });
            match self.delete_prefix(&r.prefix).await {
                Ok(()) if finished => {
                    metrics::counter!(crate::metrics::SPOOL_SWEPT_TOTAL).increment(1);
                }
                Ok(()) => {}
                // Its marker stays: the store pass deletes it on a later sweep.
                Err(e) => {
                    let _ = super::unavailable(Some(&r.query_id), "deleting an expired result", &e);
                }
            }
        }
        if let Err(e) = self.sweep_store(now).await {
            let _ = super::unavailable(None, "listing the location to sweep", &e);
        }
    }

    async fn sweep_store(&self, now: SystemTime) -> object_store::Result<()> {
        let held: HashSet<Path> = self
            .results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|r| r.prefix.clone())
            .collect();
        let listed = self.store.list_with_delimiter(Some(&self.root)).await?;
        for prefix in listed.common_prefixes {
            // Only folders Sluice names (a random UUID's 32 hex digits): whatever else shares
            // the location is never touched.
            if held.contains(&prefix) || !is_result_folder(&prefix) {
                continue;
            }
            let swept = async {
                let objects: Vec<ObjectMeta> = self.store.list(Some(&prefix)).try_collect().await?;
                if objects.is_empty() || !abandoned(&objects, now, self.lease) {
                    return Ok::<_, object_store::Error>(None);
                }
                self.delete_prefix(&prefix).await?;
                Ok(Some(objects.len()))
            }
            .await;
            match swept {
                Ok(Some(n)) => {
                    metrics::counter!(crate::metrics::SPOOL_SWEPT_TOTAL).increment(1);
                    info!(prefix = %prefix, objects = n, "Spool: swept an expired or abandoned result.");
                }
                Ok(None) => {}
                // One folder's failure does not stop the pass.
                Err(e) => {
                    let _ = super::unavailable(None, "sweeping a result folder", &e);
                }
            }
        }
        Ok(())
    }
}

/// Whether `prefix` is a folder Sluice made for a result.
fn is_result_folder(prefix: &Path) -> bool {
    prefix
        .filename()
        .is_some_and(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a prefix holding `objects` is to be deleted at `now`.
fn abandoned(objects: &[ObjectMeta], now: SystemTime, lease: Duration) -> bool {
    let name = |m: &ObjectMeta| m.location.filename().unwrap_or("").to_owned();
    let now_ms = unix_ms(now);
    if let Some(expires) = objects
        .iter()
        .find_map(|m| name(m).strip_prefix("_expires-")?.parse::<u64>().ok())
    {
        return expires <= now_ms;
    }
    let stale = |m: &ObjectMeta| {
        let at = u64::try_from(m.last_modified.timestamp_millis()).unwrap_or(0);
        at.saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)) <= now_ms
    };
    match objects.iter().find(|m| name(m) == "_lease") {
        Some(lease) => stale(lease),
        None => objects.iter().all(stale),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, at_ms: i64) -> ObjectMeta {
        ObjectMeta {
            location: Path::from(format!("root/p/{name}")),
            last_modified: chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or_default(),
            size: 0,
            e_tag: None,
            version: None,
        }
    }

    #[test]
    fn what_the_sweeper_deletes() {
        let lease = Duration::from_secs(30);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        // Finished: kept until its marker's time, even with old segments.
        let done = [meta("000000.arrow", 0), meta("_expires-1000001", 0)];
        assert!(!abandoned(&done, now, lease));
        let done = [meta("000000.arrow", 0), meta("_expires-1000000", 0)];
        assert!(abandoned(&done, now, lease));
        // Running: kept while its lease is fresh, however old its segments.
        let running = [meta("000000.arrow", 0), meta("_lease", 980_000)];
        assert!(!abandoned(&running, now, lease));
        let stopped = [meta("000000.arrow", 990_000), meta("_lease", 970_000)];
        assert!(abandoned(&stopped, now, lease));
        // Neither: judged by its newest object.
        assert!(!abandoned(
            &[meta("000000.arrow", 0), meta("000001.arrow", 975_000)],
            now,
            lease
        ));
        assert!(abandoned(&[meta("000000.arrow", 0)], now, lease));
        // Only Sluice's own folders are looked at.
        assert!(is_result_folder(&Path::from(
            "root/0123456789abcdef0123456789abcdef"
        )));
        assert!(!is_result_folder(&Path::from("root/reports")));
        assert!(!is_result_folder(&Path::from(
            "root/0123456789abcdef0123456789abcdeg"
        )));
    }
}
