//! Source administration, for admins only: create, replace and delete registry sources, and
//! reload the config file. Sources from the config file are listed but cannot be changed
//! through the API.

use std::path::Path;

use sluice_schemas::api::{Operation, ReloadReport, SourceChange};
use sluice_schemas::{Config, SourceConfig};
use tracing::{error, info, warn};

use super::QueryService;
use super::source_set::Origin;
use crate::error::{ApiError, Code, Result};
use crate::governance::Principal;
use crate::governance::records::AdminChange;
use crate::governance::store::{PutMode, RegistryWrite, StoreError};

fn store_error(e: &StoreError) -> ApiError {
    error!(error = %e, "Source administration failed in the metadata store.");
    ApiError::metadata_unavailable()
}

fn from_config(name: &str) -> ApiError {
    ApiError::new(
        Code::SourceFromConfig,
        format!(
            "source {name} comes from the config file; change it there (then SIGHUP or POST /v1/admin/reload)"
        ),
    )
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(
        Code::SourceNotFound,
        format!("no registry source is named {name}"),
    )
}

impl QueryService {
    /// Creates (`replace` false: `POST /v1/sources`) or replaces (`PUT /v1/sources/{name}`) a
    /// registry source, then applies it here (the answer shows it after its first load);
    /// every other server sharing the store applies it within `metadata.registry_sync_ms`.
    ///
    /// # Errors
    /// `permission_denied`; `bad_request` with every problem (as `sluice check` reports them, and
    /// a secret written into the entry); `source_from_config`; `source_exists`;
    /// `source_not_found`; `metadata_unavailable`.
    pub async fn put_source(
        &self,
        principal: &Principal,
        path_name: Option<&str>,
        entry: serde_json::Value,
    ) -> Result<SourceChange> {
        principal.require(Operation::Admin)?;
        let name = entry
            .get("name")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::bad_request("the source needs a `name`"))?;
        if let Some(p) = path_name
            && p != name
        {
            return Err(ApiError::bad_request(format!(
                "the body names source {name}, the path {p}: a source cannot be renamed (create the new one, then delete the old)"
            )));
        }
        if self.source_set.origin(&name) == Some(Origin::Config) {
            return Err(from_config(&name));
        }
        let mut others = self.source_set.names();
        others.retain(|n| *n != name);
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        let config: SourceConfig =
            sluice_schemas::loader::source_entry(&entry, |v| std::env::var(v).ok(), &others)
                .map_err(|errors| {
                    ApiError::bad_request(
                        errors
                            .0
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                })?;
        // An admin of the API is not the operator of the machine: this server's files are the
        // config file's to expose.
        if !self.source_set.local_files && super::source_set::reads_local_files(&config) {
            return Err(ApiError::bad_request(super::source_set::LOCAL_FILES));
        }
        // What `sluice check` does beyond the file's shape: build its store, pools or client.
        sluice_actors::sources::validate(&config)
            .map_err(|e| ApiError::bad_request(format!("source {name}: {e}")))?;
        let mode = if path_name.is_some() {
            PutMode::Replace
        } else {
            PutMode::Create
        };
        let written = self
            .governance
            .put_source(
                &name,
                entry.clone(),
                mode,
                principal.key_id().map(str::to_owned),
            )
            .await
            .map_err(|e| store_error(&e))?;
        let (version, before) = match written {
            RegistryWrite::Done { version, before } => (version, before),
            RegistryWrite::Exists => {
                return Err(ApiError::new(
                    Code::SourceExists,
                    format!("a source named {name} exists; PUT /v1/sources/{name} replaces it"),
                ));
            }
            RegistryWrite::Missing => return Err(not_found(&name)),
        };
        let action = if before.is_some() {
            "replace"
        } else {
            "create"
        };
        self.governance.audit_change(
            principal,
            AdminChange {
                action: format!("source.{action}"),
                target: name.clone(),
                before,
                after: Some(entry),
            },
        );
        info!(source = %name, by = principal.key_id().unwrap_or("anonymous"), action, version, "Registry source stored.");
        self.sync_registry(true).await;
        Ok(SourceChange {
            source: self.source_info(&name),
            name,
            action: if action == "create" {
                "created"
            } else {
                "replaced"
            }
            .to_owned(),
            registry_version: version,
        })
    }

    /// Deletes a registry source; queries reading it are cancelled, new ones get
    /// `source_not_found`, here now and on every other server within
    /// `metadata.registry_sync_ms`.
    ///
    /// # Errors
    /// `permission_denied`, `source_from_config`, `source_not_found`, `metadata_unavailable`.
    pub async fn delete_source(&self, principal: &Principal, name: &str) -> Result<SourceChange> {
        principal.require(Operation::Admin)?;
        if self.source_set.origin(name) == Some(Origin::Config) {
            return Err(from_config(name));
        }
        let written = self
            .governance
            .delete_source(name)
            .await
            .map_err(|e| store_error(&e))?;
        let RegistryWrite::Done { version, before } = written else {
            return Err(not_found(name));
        };
        self.governance.audit_change(
            principal,
            AdminChange {
                action: "source.delete".to_owned(),
                target: name.to_owned(),
                before,
                after: None,
            },
        );
        info!(source = %name, by = principal.key_id().unwrap_or("anonymous"), version, "Registry source deleted.");
        self.sync_registry(true).await;
        Ok(SourceChange {
            name: name.to_owned(),
            action: "deleted".to_owned(),
            registry_version: version,
            source: None,
        })
    }

    /// Reads the config file again and applies its `[[sources]]` (all or nothing) and its
    /// `[log] level`; says which other sections changed and need a restart. What `SIGHUP`
    /// does (`principal` is then anonymous).
    ///
    /// # Errors
    /// `permission_denied`; `no_config_file`; `config_invalid` with every problem (nothing
    /// changed).
    pub async fn reload_config(&self, principal: &Principal) -> Result<ReloadReport> {
        principal.require(Operation::Admin)?;
        let Some((path, started)) = &self.config_file else {
            return Err(ApiError::new(
                Code::NoConfigFile,
                "this server was started without a config file (the embedded default); there is nothing to reload",
            ));
        };
        let config = load(path).await?;
        // Checked before anything changes; the sources' stores, pools and clients are, as
        // `sluice check` does, by the apply (the changed ones only: the rest run already).
        if crate::telemetry::check_level(&config.log.level).is_err() {
            return Err(invalid(path, &["log.level".to_owned()]));
        }
        let applied = self
            .apply_file(config.sources.clone())
            .await
            .map_err(|errors| {
                let at: Vec<String> = errors
                    .iter()
                    .map(|e| e.split(':').next().unwrap_or("a source").to_owned())
                    .collect();
                invalid(path, &at)
            })?;
        if let Err(e) = crate::telemetry::set_level(&config.log.level) {
            warn!(error = %e, "The reloaded log level was not applied.");
        }
        let report = ReloadReport {
            added: applied.added,
            removed: applied.removed,
            changed: applied.changed,
            unchanged: applied.unchanged,
            log_level: crate::telemetry::level().unwrap_or_else(|| config.log.level.clone()),
            restart_required: restart_required(started, &config),
        };
        self.governance.audit_change(
            principal,
            AdminChange {
                action: "config.reload".to_owned(),
                target: path.display().to_string(),
                before: None,
                // Names only: a file's expanded entries can hold secrets.
                after: serde_json::to_value(&report).ok(),
            },
        );
        info!(path = %path.display(), added = ?report.added, removed = ?report.removed, changed = ?report.changed, restart_required = ?report.restart_required, "Config file reloaded.");
        Ok(report)
    }

    /// One running source as the API shows it.
    fn source_info(&self, name: &str) -> Option<sluice_schemas::api::SourceInfo> {
        let route = self.router.route(name)?;
        Some(self.source_info_of(&sluice_actors::supervisor::status(&route)))
    }
}

/// Loads the config file off the async workers.
async fn load(path: &Path) -> Result<Config> {
    let owned = path.to_owned();
    let loaded = tokio::task::spawn_blocking(move || sluice_schemas::loader::load_file(&owned))
        .await
        .map_err(|e| ApiError::internal(None, &e))?;
    loaded.map_err(|errors| {
        let at: Vec<String> = errors
            .0
            .iter()
            .map(|e| {
                if e.path.is_empty() {
                    "the file's syntax".to_owned()
                } else {
                    e.path.clone()
                }
            })
            .collect();
        invalid(path, &at)
    })
}

/// The file does not load: where, never what it says there (a problem's text can quote a value
/// of the file, a secret too); `sluice check` on the machine prints the whole of it.
fn invalid(path: &Path, at: &[String]) -> ApiError {
    warn!(path = %path.display(), errors = at.len(), "The config file does not load; nothing changed.");
    let mut at = at.to_vec();
    at.dedup();
    ApiError::new(
        Code::ConfigInvalid,
        format!(
            "{} does not load, so nothing changed: {} problem(s), at {}; `sluice check --config {}` says what they are",
            path.display(),
            at.len(),
            at.join(", "),
            path.display()
        ),
    )
}

/// The sections of `now` that differ from `started` and apply only at a start.
fn restart_required(started: &Config, now: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut differs = |name: &str, same: bool| {
        if !same {
            out.push(name.to_owned());
        }
    };
    differs("server", started.server == now.server);
    differs("auth", started.auth == now.auth);
    differs("metadata", started.metadata == now.metadata);
    differs("limits", started.limits == now.limits);
    differs("cache", started.cache == now.cache);
    differs("mcp", started.mcp == now.mcp);
    differs("flight", started.flight == now.flight);
    differs("pg", started.pg == now.pg);
    differs("console", started.console == now.console);
    differs("spool", started.spool == now.spool);
    differs("telemetry", started.telemetry == now.telemetry);
    differs("log.format", started.log.format == now.log.format);
    differs("policies", started.policies == now.policies);
    out
}
