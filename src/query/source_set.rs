//! The sources a server runs, and changing them while it serves: sources from the config file
//! (re-read on `SIGHUP` or `POST /v1/admin/reload`) and from the registry in the metadata
//! store (`/v1/sources`, followed by every server sharing the store).
//!
//! Every change goes through one path, `QueryService::apply_locked`, one at a time:
//!
//! ```text
//!   wanted set ──► diff with the running set ──► build the new and changed sources apart
//!                                                (a staging planner: nothing visible yet)
//!        ┌───────────────────────────────────────────────┘
//!        ▼
//!   first loads (a replaced source's tables swap in one step when its new catalog loads;
//!   each new replica is probed) ──► catalogs adopted, removed ones dropped ──► actors:
//!   registered (the supervisor replaces a source's actors after publishing its new route)
//!   or stopped ──► caches: a changed or removed source's results are stale everywhere
//! ```
//!
//! Statements already running keep the replica (and pool) they were leased, so a removed
//! replica finishes its statements; queries reading a deleted source are cancelled. A plan or
//! a cached result made under a source's previous catalog is never used again: catalog versions
//! never repeat in a process, and a change bumps the shared cache's generation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use sluice_actors::sources::{BuiltSource, Connector};
use sluice_actors::supervisor::{RegisterSource, RemoveSource};
use sluice_schemas::SourceConfig;
use tracing::{info, warn};

use super::QueryService;
use crate::governance::store::StoredSource;
use crate::metrics as m;

/// Where a running source is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The config file: the API cannot change it.
    Config,
    /// The registry in the metadata store.
    Registry,
}

impl Origin {
    /// As `/v1/sources` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Registry => "registry",
        }
    }
}

/// One running source.
struct Running {
    origin: Origin,
    config: SourceConfig,
    connector: Arc<dyn Connector>,
}

/// What the server runs, and what it was asked to run.
#[derive(Default)]
pub(crate) struct Wanted {
    /// The config file's sources, as last applied.
    file: Vec<SourceConfig>,
    /// The registry's entries, as last read.
    registry: BTreeMap<String, StoredSource>,
}

/// The running sources, and the change path's lock.
#[derive(Default)]
pub(crate) struct SourceSet {
    /// `metadata.registry_local_files`: whether registry sources may read this server's files.
    pub(crate) local_files: bool,
    /// Held for a whole change: changes apply one at a time.
    changing: tokio::sync::Mutex<Wanted>,
    running: RwLock<BTreeMap<String, Running>>,
    /// The registry version last applied.
    registry_version: AtomicU64,
    /// When entries that could not be applied are tried again, if some could not.
    retry_at: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// How long a registry entry that could not be applied waits before it is tried again (a key
/// file that appears, a variable fixed by a restart of another kind cannot be seen sooner).
const RETRY_FAILED: std::time::Duration = std::time::Duration::from_secs(30);

/// What one change did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Sources started.
    pub added: Vec<String>,
    /// Sources stopped.
    pub removed: Vec<String>,
    /// Sources replaced.
    pub changed: Vec<String>,
    /// Sources left alone.
    pub unchanged: usize,
    /// Entries that could not be built (best effort only), with why.
    pub failed: Vec<String>,
}

/// How a change treats an entry that cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// Nothing changes unless every entry builds (a config file).
    AllOrNothing,
    /// The others apply; the entry's failure is counted and logged (a registry entry that
    /// this server cannot build, e.g. its environment lacks a variable).
    BestEffort,
}

impl SourceSet {
    /// No source yet; `local_files`: `metadata.registry_local_files`.
    pub(crate) fn new(local_files: bool) -> Self {
        Self {
            local_files,
            ..Self::default()
        }
    }

    /// The origin of source `name`, if it runs.
    pub(crate) fn origin(&self, name: &str) -> Option<Origin> {
        self.running
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .map(|r| r.origin)
    }

    /// Every running source's name.
    pub(crate) fn names(&self) -> Vec<String> {
        self.running
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Every running source's connector (to close their remote sessions at stop).
    pub(crate) fn connectors(&self) -> Vec<Arc<dyn Connector>> {
        self.running
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|r| Arc::clone(&r.connector))
            .collect()
    }

    /// Holds the change path: no change applies until the guard is dropped (the first loads at
    /// start hold it, so no API change races them).
    pub(crate) async fn hold(&self) -> tokio::sync::MutexGuard<'_, Wanted> {
        self.changing.lock().await
    }

    fn retry_due(&self) -> bool {
        self.retry_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| tokio::time::Instant::now() >= at)
    }

    /// The registry version last applied.
    pub(crate) fn registry_version(&self) -> u64 {
        self.registry_version.load(Ordering::Acquire)
    }
}

/// Expands and checks every registry entry (with `file` naming the config's sources); the
/// ones that cannot be used here are returned apart, by name, with why.
fn registry_configs(
    file: &[SourceConfig],
    registry: &BTreeMap<String, StoredSource>,
    local_files: bool,
) -> (Vec<SourceConfig>, Vec<(String, String)>) {
    let names: Vec<&str> = file
        .iter()
        .map(SourceConfig::name)
        .chain(registry.keys().map(String::as_str))
        .collect();
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (name, stored) in registry {
        // The file's source of the same name wins: the answering server refuses such an
        // entry, but another server's file can name it, or a file edited later.
        if file.iter().any(|s| s.name() == name) {
            failed.push((
                name.clone(),
                "this server's config file defines a source of this name, which wins".to_owned(),
            ));
            continue;
        }
        match sluice_schemas::loader::source_entry(
            &stored.record,
            |v| std::env::var(v).ok(),
            &names,
        ) {
            Ok(c) if !local_files && reads_local_files(&c) => {
                failed.push((name.clone(), LOCAL_FILES.to_owned()));
            }
            Ok(c) if c.name() == name => ok.push(c),
            Ok(_) => failed.push((name.clone(), "the entry names another source".to_owned())),
            Err(errors) => failed.push((
                name.clone(),
                errors
                    .0
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }
    (ok, failed)
}

/// Why a registry source may not read this server's files.
pub(crate) const LOCAL_FILES: &str = "a source added through the API may not read this server's own files (a file:// location or table path) unless [metadata] registry_local_files = true; an object store or a database can be added";

/// Whether `source` may read files of the server it runs on: a location that is not an object
/// store's URL (`file://`, a plain path), or a table path that is not plainly relative to the
/// location (a URL of any scheme, an absolute or network path, control characters, which URL
/// parsing drops).
pub(crate) fn reads_local_files(source: &SourceConfig) -> bool {
    const REMOTE: [&str; 6] = [
        "s3://", "s3a://", "az://", "azure://", "abfs://", "abfss://",
    ];
    let SourceConfig::Parquet(p) = source else {
        return false;
    };
    let odd = |s: &str| s.chars().any(char::is_control) || s != s.trim();
    let location = p.location.to_ascii_lowercase();
    let remote = REMOTE.iter().any(|r| location.starts_with(r));
    !remote
        || odd(&p.location)
        || p.tables.iter().any(|t| {
            odd(&t.path)
                || t.path.contains(':')
                || t.path.starts_with('/')
                || t.path.starts_with('\\')
                || t.path.split(['/', '\\']).any(|part| part == "..")
        })
}

impl QueryService {
    /// Records the sources the service started with (their first loads done), under the
    /// change path's guard `held`.
    pub(super) fn started_with(
        &self,
        held: &mut Wanted,
        sources: Vec<(SourceConfig, Arc<dyn Connector>)>,
    ) {
        let mut running = self
            .source_set
            .running
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        held.file = sources.iter().map(|(c, _)| c.clone()).collect();
        for (config, connector) in sources {
            running.insert(
                config.name().to_owned(),
                Running {
                    origin: Origin::Config,
                    config,
                    connector,
                },
            );
        }
    }

    /// Reads the registry and applies it if its version moved since the last time, or entries
    /// that could not be applied are due to be tried again (or always, with `force`). Whether
    /// the store could be read.
    pub(crate) async fn sync_registry(&self, force: bool) -> bool {
        let gov = &self.governance;
        let set = &self.source_set;
        if !force && !set.retry_due() {
            match gov.registry_version().await {
                Ok(v) if v == set.registry_version() => return true,
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "The source registry could not be read; the sources stay as they are.");
                    return false;
                }
            }
        }
        let mut wanted = set.changing.lock().await;
        // Read under the guard: a snapshot older than the one applied is never applied.
        let registry = match gov.registry().await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "The source registry could not be read; the sources stay as they are.");
                return false;
            }
        };
        let applied_version = set.registry_version();
        if registry.version < applied_version
            || (!force && registry.version == applied_version && !set.retry_due())
        {
            return true;
        }
        let entries: BTreeMap<String, StoredSource> = registry
            .sources
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        let file = wanted.file.clone();
        let (from_registry, failed) = registry_configs(&file, &entries, set.local_files);
        let keep: Vec<String> = failed.iter().map(|(n, _)| n.clone()).collect();
        let applied = self
            .apply_locked(&file, from_registry, &keep, Strictness::BestEffort)
            .await;
        let mut failed_all: Vec<String> = failed
            .into_iter()
            .map(|(n, why)| format!("source {n}: {why}"))
            .collect();
        match applied {
            Ok(a) => failed_all.extend(a.failed),
            Err(errors) => failed_all.extend(errors),
        }
        for f in &failed_all {
            warn!(entry = %f, "A registry source could not be applied on this server.");
        }
        metrics::counter!(m::REGISTRY_APPLY_ERRORS_TOTAL).increment(failed_all.len() as u64);
        *set.retry_at.lock().unwrap_or_else(PoisonError::into_inner) =
            (!failed_all.is_empty()).then(|| tokio::time::Instant::now() + RETRY_FAILED);
        wanted.registry = entries;
        set.registry_version
            .store(registry.version, Ordering::Release);
        metrics::gauge!(m::REGISTRY_VERSION).set(registry.version as f64);
        true
    }

    /// Applies a config file's `[[sources]]`, all or nothing, with the registry as last read.
    ///
    /// # Errors
    /// Why a source cannot be built (nothing was changed).
    pub(crate) async fn apply_file(&self, file: Vec<SourceConfig>) -> Result<Applied, Vec<String>> {
        let mut wanted = self.source_set.changing.lock().await;
        let (from_registry, failed) =
            registry_configs(&file, &wanted.registry, self.source_set.local_files);
        let keep: Vec<String> = failed.into_iter().map(|(n, _)| n).collect();
        let applied = self
            .apply_locked(&file, from_registry, &keep, Strictness::AllOrNothing)
            .await?;
        wanted.file = file;
        Ok(applied)
    }

    /// Makes the running sources `file` (origin config) plus `registry` (origin registry);
    /// registry sources named in `keep` (entries this server cannot use now) stay as they
    /// run. `strictness` is for the file's sources: a registry source that cannot be built is
    /// always left as it runs, counted and logged. The caller holds the change lock.
    async fn apply_locked(
        &self,
        file: &[SourceConfig],
        registry: Vec<SourceConfig>,
        keep: &[String],
        strictness: Strictness,
    ) -> Result<Applied, Vec<String>> {
        let wanted: BTreeMap<String, (Origin, SourceConfig)> = file
            .iter()
            .map(|c| (Origin::Config, c.clone()))
            .chain(registry.into_iter().map(|c| (Origin::Registry, c)))
            .map(|(o, c)| (c.name().to_owned(), (o, c)))
            .collect();
        let mut applied = Applied::default();
        let (to_build, removed) = {
            let running = self
                .source_set
                .running
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let removed: Vec<String> = running
                .iter()
                .filter(|(n, r)| {
                    let kept = r.origin == Origin::Registry && keep.contains(*n);
                    !wanted.contains_key(*n) && !kept
                })
                .map(|(n, _)| n.clone())
                .collect();
            let mut to_build = Vec::new();
            for (name, (origin, config)) in &wanted {
                match running.get(name) {
                    None => {
                        applied.added.push(name.clone());
                        to_build.push((*origin, config.clone()));
                    }
                    Some(r) if r.origin != *origin || r.config != *config => {
                        applied.changed.push(name.clone());
                        to_build.push((*origin, config.clone()));
                    }
                    Some(_) => applied.unchanged += 1,
                }
            }
            (to_build, removed)
        };
        // Checked before anything is built: building registers a source's store with the
        // engine, which queries share, so a change refused must fail here.
        let mut file_errors = Vec::new();
        let mut skipped: Vec<(String, String)> = Vec::new();
        let mut checked = Vec::new();
        for (origin, config) in to_build {
            match sluice_actors::sources::validate(&config) {
                Ok(()) => checked.push((origin, config)),
                Err(e) => {
                    let message = format!("source {}: {e}", config.name());
                    let failed = (config.name().to_owned(), message);
                    match origin {
                        Origin::Config => file_errors.push(failed),
                        Origin::Registry => skipped.push(failed),
                    }
                }
            }
        }
        if !file_errors.is_empty() && strictness == Strictness::AllOrNothing {
            return Err(file_errors.into_iter().map(|(_, m)| m).collect());
        }
        // Built apart: nothing is visible to queries until the first loads.
        let staging = self.planner.staging();
        let mut built: Vec<(Origin, SourceConfig, BuiltSource)> = Vec::new();
        for (origin, config) in checked {
            match sluice_actors::sources::build(&config, &staging) {
                Ok(b) => built.push((origin, config, b)),
                Err(e) => skipped.push((
                    config.name().to_owned(),
                    format!("source {}: {e}", config.name()),
                )),
            }
        }
        skipped.extend(file_errors);
        // What could not be built stays as it runs (if it runs).
        for (name, message) in skipped {
            applied.added.retain(|n| *n != name);
            applied.changed.retain(|n| *n != name);
            applied.failed.push(message);
        }
        // A replaced source's catalog stops putting tables back (a refresh of it may be
        // running), so the new one's load is the last word.
        for name in &applied.changed {
            if let Some(c) = self.planner.source_catalog(name) {
                c.retire();
            }
        }
        // First loads, together; a replaced source's tables swap when its new catalog loads.
        let loads = built
            .iter()
            .map(|(_, _, b)| super::first_load(b, &self.runtime));
        let loaded = futures::future::join_all(loads).await;
        // New replicas are probed before the supervisor admits them.
        let probes = built.iter().map(|(_, _, b)| self.probe(b));
        let probed = futures::future::join_all(probes).await;
        self.planner.adopt(&staging);
        for name in &removed {
            self.planner.deregister_source(name);
        }
        let mut old = Vec::new();
        // Queries running on a replaced source's old pools: cancelled at the drain deadline
        // if they are still running then.
        let mut stale = Vec::new();
        for (((origin, config, b), loaded), probes) in built.into_iter().zip(loaded).zip(probed) {
            let name = b.name.clone();
            let connector = Arc::clone(&b.connector);
            // Before the new route: only queries on the old one.
            let running_before = self.queries.running_reading(&name);
            self.cache.follow(&name, Some(config.cache()));
            if let Err(e) = self
                .supervisor
                .send(RegisterSource {
                    built: b,
                    loaded,
                    probes,
                })
                .await
            {
                warn!(error = %e, "The source supervisor stopped; a source is not registered.");
            }
            let previous = self
                .source_set
                .running
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(
                    name.clone(),
                    Running {
                        origin,
                        config,
                        connector,
                    },
                );
            if let Some(p) = previous {
                self.cache.refreshed(&name).await;
                old.push(p.connector);
                stale.extend(running_before);
            }
        }
        for name in &removed {
            let _ = self
                .supervisor
                .send(RemoveSource { name: name.clone() })
                .await;
            let gone = self
                .source_set
                .running
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(name);
            self.cache.follow(name, None);
            self.cache.refreshed(name).await;
            self.queries.cancel_reading(name);
            if let Some(g) = gone {
                old.push(g.connector);
            }
        }
        applied.removed = removed;
        self.close_later(old, stale);
        for (action, names) in [
            ("added", &applied.added),
            ("changed", &applied.changed),
            ("removed", &applied.removed),
        ] {
            if !names.is_empty() {
                metrics::counter!(m::SOURCE_CHANGES_TOTAL, "action" => action)
                    .increment(names.len() as u64);
                info!(action, sources = ?names, "Sources changed.");
            }
        }
        Ok(applied)
    }

    /// One check of each replica of a source not yet admitted, as its actor would make it.
    async fn probe(&self, b: &BuiltSource) -> Vec<sluice_actors::sources::Checked> {
        let timeout = b.check_timeout();
        let checks = sluice_actors::sources::replicas_of(&b.connector)
            .into_iter()
            .map(|h| {
                let probe = h.probe;
                self.runtime.spawn(async move {
                    sluice_actors::sources::check(probe.as_ref(), timeout).await
                })
            });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .map(|j| {
                j.unwrap_or_else(|_| sluice_actors::sources::Checked {
                    outcome: Err("the check failed".to_owned()),
                    pressure: None,
                    latency: std::time::Duration::ZERO,
                })
            })
            .collect()
    }

    /// Retires the connectors of replaced and removed sources: their idle connections go at
    /// once and each second after (as running statements give theirs back); at the drain
    /// deadline (`server.drain_timeout_ms`) the queries still running on them are cancelled
    /// and what they keep open at the far end is closed.
    fn close_later(
        &self,
        old: Vec<Arc<dyn Connector>>,
        stale: Vec<Arc<super::registry::QueryEntry>>,
    ) {
        if old.is_empty() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        self.runtime.spawn(async move {
            loop {
                for c in &old {
                    c.release_idle();
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                let next = (tokio::time::Instant::now() + std::time::Duration::from_secs(1))
                    .min(deadline);
                tokio::time::sleep_until(next).await;
            }
            for e in stale {
                if e.state() == sluice_schemas::api::QueryState::Running {
                    warn!(query_id = %e.id, "Query cancelled: it still ran on a replaced source's old connections at the drain deadline.");
                    e.cancel.cancel();
                }
            }
            futures::future::join_all(old.iter().map(|c| c.close())).await;
        });
    }

    /// Follows the registry every `every` while the service lives.
    pub fn follow_registry(self: &Arc<Self>, every: std::time::Duration) {
        let weak = Arc::downgrade(self);
        self.runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(service) = weak.upgrade() else {
                    return;
                };
                if service.closing.is_cancelled() {
                    return;
                }
                service.sync_registry(false).await;
            }
        });
    }
}
