//! Governance: who is calling (keys), what they may see (grants, enforced by the planner's
//! restricted views), how much they may ask (limits), and the record of it all (audit, usage).
//!
//! Keys are mirrored in memory from the store and re-read every `auth.key_sync_ms`, so a
//! revocation or rotation made through any server sharing the store (or `sluice keys` on it)
//! takes effect everywhere within that interval; a key unknown here is looked up in the store
//! before it is refused, so a key created elsewhere works at once.

pub mod audit;
mod auditor;
pub mod keys;
pub mod limits;
mod lookup;
pub mod oidc;
mod policies;
mod principal;
pub mod records;
mod rules;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use sluice_schemas::Config;
use sluice_schemas::api::Operation;
use tracing::{info, warn};

use self::audit::AuditLog;
pub use self::auditor::QueryAuditor;
use self::keys::{KeyRecord, NewKey, Refusal};
use self::limits::Limiter;
use self::lookup::{Found, Lookups};
use self::oidc::Oidc;
pub use self::policies::{Policies, check as policies_check};
pub use self::principal::{
    Client, Door, Identity, KeyEntry, PeerCertificate, PlannerSlot, Principal,
};
use self::records::{AuditKind, AuditRecord};
pub use self::rules::is_subject_id;
use self::store::{MetadataStore, StoreError};
use crate::error::ApiError;

/// Keys, limits and audit of one server.
#[derive(Debug)]
pub struct Governance {
    store: Arc<dyn MetadataStore>,
    /// Batched store lookups of keys not held here.
    lookups: Arc<Lookups>,
    keys: RwLock<HashMap<String, Arc<KeyEntry>>>,
    /// Per-key rate and concurrency limits.
    pub limiter: Limiter,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    grace: chrono::Duration,
    runtime: tokio::runtime::Handle,
    /// Bearer JWTs, when `[auth.oidc]` is configured.
    oidc: Option<Arc<Oidc>>,
    challenges: Challenges,
    /// `[[auth.certificate_rules]]`.
    certificate_rules: Vec<rules::Rule>,
    /// Row filters and column masks: the config's and the store's.
    pub policies: Policies,
    /// The planner views anonymous access (`auth.mode = "none"`) plans with under policies.
    pub anonymous_views: PlannerSlot,
}

/// The `WWW-Authenticate` challenges (RFC 6750) this server answers with: for no credentials,
/// for credentials that are not valid, and for a valid token without a needed scope. With
/// `[auth.oidc]` each names the Protected Resource Metadata (RFC 9728) and the scopes, so an
/// OAuth client can find where to get a token.
#[derive(Debug)]
struct Challenges {
    missing: Arc<str>,
    invalid: Arc<str>,
    insufficient_scope: Arc<str>,
}

impl Challenges {
    fn new(config: &Config) -> Self {
        let mut params = Vec::new();
        if config.auth.oidc.is_some()
            && let Some(url) = config.auth.resource.as_deref().and_then(oidc::metadata_url)
        {
            params.push(format!("resource_metadata=\"{url}\""));
        }
        if config.auth.oidc.is_some() && !config.auth.scopes.is_empty() {
            params.push(format!("scope=\"{}\"", config.auth.scopes.join(" ")));
        }
        let oidc = config.auth.oidc.is_some();
        // Without OAuth, a plain `Bearer` challenge, as the API has always answered.
        let with = |error: Option<&str>| -> Arc<str> {
            let all: Vec<String> = error
                .filter(|_| oidc)
                .map(|e| format!("error=\"{e}\""))
                .into_iter()
                .chain(params.iter().cloned())
                .collect();
            if all.is_empty() {
                Arc::from("Bearer")
            } else {
                Arc::from(format!("Bearer {}", all.join(", ")))
            }
        };
        Self {
            missing: with(None),
            invalid: with(Some("invalid_token")),
            insufficient_scope: with(Some("insufficient_scope")),
        }
    }
}

impl Governance {
    /// Opens the store the config names (PostgreSQL, a folder, or memory), loads the keys and
    /// starts the audit writer and the key sync on `runtime`.
    ///
    /// # Errors
    /// The store cannot be opened.
    pub async fn start(
        config: &Config,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Arc<Self>, StoreError> {
        // The pool's connections are driven by the query runtime.
        let owned = config.clone();
        let store = runtime
            .spawn(async move { open_store(&owned).await })
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        info!(store = %store.describe(), "Metadata store open.");
        let audit = Arc::new(AuditLog::start(
            Arc::clone(&store),
            &config.metadata.audit,
            runtime,
        ));
        let oidc = match &config.auth.oidc {
            Some(o) => Some(
                Oidc::new(
                    o,
                    config.auth.resource.as_deref(),
                    &config.auth.scopes,
                    runtime,
                )
                .map_err(StoreError::Unavailable)?,
            ),
            None => None,
        };
        if let (Some(oidc), Some(o)) = (&oidc, &config.auth.oidc) {
            oidc.start(
                Duration::from_millis(o.jwks_refresh_ms),
                // A set never read is tried again soon, whatever the on-demand pace.
                Duration::from_millis(o.jwks_min_refetch_ms.min(5_000)),
                runtime,
            )
            .await;
        }
        let policies = Policies::new(config.policies.clone()).map_err(StoreError::Unavailable)?;
        let gov = Arc::new(Self {
            policies,
            anonymous_views: PlannerSlot::default(),
            oidc,
            challenges: Challenges::new(config),
            certificate_rules: config
                .auth
                .certificate_rules
                .iter()
                .cloned()
                .map(rules::Rule::new)
                .collect(),
            lookups: Lookups::start(Arc::clone(&store), runtime),
            store,
            keys: RwLock::default(),
            limiter: Limiter::new(config.limits.reader.clone(), config.limits.admin.clone()),
            audit,
            grace: chrono::Duration::milliseconds(
                i64::try_from(config.auth.rotation_grace_ms).unwrap_or(i64::MAX / 2),
            ),
            runtime: runtime.clone(),
        });
        gov.sync().await?;
        metrics::gauge!(crate::metrics::METADATA_STORE_UP).set(1.0);
        let every = Duration::from_millis(config.auth.key_sync_ms);
        let weak = Arc::downgrade(&gov);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(gov) = weak.upgrade() else { return };
                let up = match gov.sync().await {
                    Ok(()) => 1.0,
                    Err(e) => {
                        warn!(error = %e, "Keys could not be re-read; serving the last copy.");
                        0.0
                    }
                };
                metrics::gauge!(crate::metrics::METADATA_STORE_UP).set(up);
            }
        });
        Ok(gov)
    }

    /// Re-reads every key; entries whose record changed are replaced (their planner is
    /// rebuilt on next use), keys gone from the store are forgotten.
    async fn sync(&self) -> Result<(), StoreError> {
        let policies = self
            .on_store(|s| async move { s.policies().await }.boxed())
            .await?;
        self.policies.replace_stored(policies);
        let all = self
            .on_store(|s| async move { s.keys().await }.boxed())
            .await?;
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::with_capacity(all.len());
        for record in all {
            let entry = match keys.remove(&record.id) {
                Some(e) if e.record == record => e,
                _ => Arc::new(KeyEntry::new(record)),
            };
            next.insert(entry.record.id.clone(), entry);
        }
        *keys = next;
        Ok(())
    }

    /// True when no key exists.
    pub fn is_empty(&self) -> bool {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    fn cached(&self, id: &str) -> Option<Arc<KeyEntry>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Keeps `record` as this server's copy of its key, unless the copy held is revoked and
    /// `record` is not: a lookup that read the key before a revocation and answered after it
    /// never undoes it (the next sync brings whatever the store holds).
    fn remember(&self, record: KeyRecord) -> Arc<KeyEntry> {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = keys.get(&record.id)
            && held.record.revoked_at.is_some()
            && record.revoked_at.is_none()
        {
            return Arc::clone(held);
        }
        let entry = Arc::new(KeyEntry::new(record));
        keys.insert(entry.record.id.clone(), Arc::clone(&entry));
        entry
    }

    /// Checks a presented secret, recording the attempt.
    ///
    /// # Errors
    /// `401 unauthenticated` (the reason is only in the audit log), `503` when the key is not
    /// known here and the store cannot be asked.
    pub async fn authenticate(
        &self,
        secret: Option<&str>,
        client: &Client,
    ) -> Result<Principal, ApiError> {
        let refuse = |key_id: Option<&str>, why: &'static str| {
            self.record_auth(key_id, client, why);
            if why == "missing" {
                ApiError::unauthenticated(if self.oidc.is_some() {
                    "credentials are required: send `Authorization: Bearer <API key or access token>`"
                } else {
                    "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
                })
                .with_challenge(&self.challenges.missing)
            } else {
                ApiError::unauthenticated("the API key is not valid")
                    .with_challenge(&self.challenges.invalid)
            }
        };
        let Some(secret) = secret else {
            if let Some(cert) = &client.certificate
                && !self.certificate_rules.is_empty()
            {
                return self.authenticate_certificate(cert, client);
            }
            return Err(refuse(None, "missing"));
        };
        if oidc::is_jws(secret) {
            return self.authenticate_token(secret, client).await;
        }
        let Some(id) = keys::claimed_id(secret) else {
            return Err(refuse(None, Refusal::Malformed.outcome()));
        };
        let entry = match self.cached(id) {
            Some(e) => e,
            // Created through another server since the last sync, or made up: the store says
            // which (batched, so a flood of made-up keys costs a bounded number of statements).
            None => match self.look_up(id).await? {
                Found::Key(record) => self.remember(*record),
                Found::Absent => return Err(refuse(Some(id), Refusal::UnknownKey.outcome())),
            },
        };
        let entry = match entry.record.verify(secret, Utc::now()) {
            Ok(()) => entry,
            // Rotated through another server since the last sync: the store knows the new
            // secret. (Every such miss is audited, and shares the batched lookups.)
            Err(Refusal::WrongSecret) => match self.look_up(id).await {
                Ok(Found::Key(record)) if *record != entry.record => {
                    let fresh = self.remember(*record);
                    if let Err(why) = fresh.record.verify(secret, Utc::now()) {
                        return Err(refuse(Some(id), why.outcome()));
                    }
                    fresh
                }
                _ => return Err(refuse(Some(id), Refusal::WrongSecret.outcome())),
            },
            Err(why) => return Err(refuse(Some(id), why.outcome())),
        };
        self.record_success(&entry, client);
        Ok(Principal::Key(entry))
    }

    /// The caller a verified client certificate stands for, by the first certificate rule
    /// its subject matches; recorded like a token's (issuer and subject names).
    fn authenticate_certificate(
        &self,
        cert: &PeerCertificate,
        client: &Client,
    ) -> Result<Principal, ApiError> {
        let Some(rule) = self
            .certificate_rules
            .iter()
            .find(|r| r.admits(&cert.issuer, &cert.claims))
        else {
            self.record_auth(None, client, "certificate_no_rule");
            return Err(ApiError::permission_denied(
                "the client certificate is valid, but no certificate rule of this server admits it",
            ));
        };
        let entry = rule.caller(&cert.issuer, cert.subject.clone(), None, &cert.claims);
        self.record_success(&entry, client);
        Ok(Principal::Key(entry))
    }

    /// Audits a successful authentication as its own record: the key, or for a token or
    /// certificate its `sub_` id with issuer and subject.
    fn record_success(&self, entry: &KeyEntry, client: &Client) {
        metrics::counter!(crate::metrics::AUTH_TOTAL, "outcome" => "ok", "door" => client.door.as_str())
            .increment(1);
        let mut r = AuditRecord::new(AuditKind::Auth, Some(entry.record.id.clone()), "ok");
        r.client.clone_from(&client.addr);
        r.user_agent.clone_from(&client.user_agent);
        r.door = Some(client.door.as_str().to_owned());
        if let Some(id) = &entry.identity {
            r.issuer = Some(id.issuer.to_string());
            r.subject = Some(id.subject.clone());
        }
        self.audit.record(r);
    }

    /// Checks a bearer JWT, recording the attempt (issuer and subject, never the token).
    async fn authenticate_token(
        &self,
        token: &str,
        client: &Client,
    ) -> Result<Principal, ApiError> {
        let Some(oidc) = &self.oidc else {
            self.record_auth(None, client, "token_not_accepted");
            return Err(ApiError::unauthenticated(
                "this server does not accept bearer tokens (no [auth.oidc]); send an API key",
            )
            .with_challenge(&self.challenges.invalid));
        };
        match oidc.authenticate(token).await {
            Ok(entry) => {
                self.record_success(&entry, client);
                Ok(Principal::Key(entry))
            }
            Err(why) => {
                self.record_auth(None, client, why.outcome());
                Err(match why {
                    oidc::Refusal::NoRule => ApiError::permission_denied(
                        "the token is valid, but no access rule of this server admits it",
                    ),
                    oidc::Refusal::InsufficientScope => ApiError::new(
                        crate::error::Code::InsufficientScope,
                        "the token lacks a scope this server requires",
                    )
                    .with_challenge(&self.challenges.insufficient_scope),
                    oidc::Refusal::KeysUnavailable => ApiError::new(
                        crate::error::Code::MetadataUnavailable,
                        "the token's issuer cannot be reached to check it; try again",
                    ),
                    _ => ApiError::unauthenticated("the bearer token is not valid")
                        .with_challenge(&self.challenges.invalid),
                })
            }
        }
    }

    /// The OpenID issuers trusted, for Protected Resource Metadata.
    pub fn issuers(&self) -> Vec<String> {
        self.oidc
            .as_ref()
            .map(|o| o.issuers().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// What the store holds for a key not held here (or held in an older copy).
    ///
    /// # Errors
    /// `metadata_unavailable` when the store cannot say now.
    async fn look_up(&self, id: &str) -> Result<Found, ApiError> {
        let found = self.lookups.find(id).await;
        let outcome = match &found {
            Ok(Found::Key(_)) => "found",
            Ok(Found::Absent) => "absent",
            Err(_) => "unavailable",
        };
        metrics::counter!(crate::metrics::KEY_LOOKUPS_TOTAL, "outcome" => outcome).increment(1);
        found.map_err(|_| ApiError::metadata_unavailable())
    }

    /// One key, from the store.
    ///
    /// # Errors
    /// The store failed.
    pub async fn store_key(&self, id: String) -> Result<Option<KeyRecord>, StoreError> {
        self.on_store(|s| async move { s.key(&id).await }.boxed())
            .await
    }

    /// The source registry's version.
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn registry_version(&self) -> Result<u64, StoreError> {
        self.on_store(|s| async move { s.registry_version().await }.boxed())
            .await
    }

    /// The whole source registry.
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn registry(&self) -> Result<store::Registry, StoreError> {
        self.on_store(|s| async move { s.registry().await }.boxed())
            .await
    }

    /// Creates or replaces a registry entry.
    ///
    /// # Errors
    /// The store cannot be written.
    pub async fn put_source(
        &self,
        name: &str,
        record: serde_json::Value,
        mode: store::PutMode,
        by: Option<String>,
    ) -> Result<store::RegistryWrite, StoreError> {
        let name = name.to_owned();
        self.on_store(move |s| {
            async move { s.put_source(&name, &record, mode, by.as_deref()).await }.boxed()
        })
        .await
    }

    /// Deletes a registry entry.
    ///
    /// # Errors
    /// The store cannot be written.
    pub async fn delete_source(&self, name: &str) -> Result<store::RegistryWrite, StoreError> {
        let name = name.to_owned();
        self.on_store(move |s| async move { s.delete_source(&name).await }.boxed())
            .await
    }

    /// Records an administrative change in the audit log.
    pub fn audit_change(&self, principal: &Principal, change: records::AdminChange) {
        let mut r = records::AuditRecord::new(
            records::AuditKind::Admin,
            principal.key_id().map(str::to_owned),
            "ok",
        );
        r.change = Some(change);
        self.audit.record(r);
    }

    /// Runs a store call on the query runtime, where the store's connections live.
    async fn on_store<T: Send + 'static>(
        &self,
        call: impl FnOnce(Arc<dyn MetadataStore>) -> BoxFuture<'static, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.runtime
            .spawn(call(Arc::clone(&self.store)))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    /// Audits a refused authentication: counted into its client's aggregate for the window
    /// (so a flood of bad credentials can never fill the audit buffer and refuse real
    /// queries).
    fn record_auth(&self, key_id: Option<&str>, client: &Client, outcome: &'static str) {
        metrics::counter!(crate::metrics::AUTH_TOTAL, "outcome" => outcome, "door" => client.door.as_str())
            .increment(1);
        self.audit.auth_failed(key_id, client, outcome);
    }

    /// Mints the first admin key of an empty store; its secret is returned this once.
    ///
    /// # Errors
    /// The store failed, or the OS random source did.
    pub async fn mint_first_admin(&self) -> Result<String, StoreError> {
        let (record, secret) = self.create_key(NewKey::admin("admin")).await?;
        info!(key_id = %record.id, "The key store was empty: minted an admin key.");
        Ok(secret.expose_secret().to_owned())
    }

    /// Mints and stores a key; the secret is returned this once.
    ///
    /// # Errors
    /// The store failed, or the OS random source did.
    pub async fn create_key(&self, new: NewKey) -> Result<(KeyRecord, SecretString), StoreError> {
        let (record, secret) = KeyRecord::mint(new, Utc::now())
            .map_err(|e| StoreError::Unavailable(format!("random source: {e}")))?;
        let stored = record.clone();
        self.on_store(|s| async move { s.insert_key(&stored).await }.boxed())
            .await?;
        self.lookups.exists(&record.id);
        self.remember(record.clone());
        Ok((record, secret))
    }

    /// Stores a policy (`replace`: whatever was stored under its name) and takes the store's
    /// set at once, so this server applies it from the next statement on; every other server
    /// within `auth.key_sync_ms`. Whether it was stored (not `replace` and the name taken:
    /// not).
    ///
    /// # Errors
    /// The store's.
    pub async fn put_policy(
        &self,
        policy: sluice_schemas::api::Policy,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let stored = self
            .on_store(move |s| async move { s.put_policy(&policy, replace).await }.boxed())
            .await?;
        self.reload_policies().await?;
        Ok(stored)
    }

    /// Deletes a stored policy; whether there was one.
    ///
    /// # Errors
    /// The store's.
    pub async fn delete_policy(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        let gone = self
            .on_store(move |s| async move { s.delete_policy(&name).await }.boxed())
            .await?;
        self.reload_policies().await?;
        Ok(gone)
    }

    async fn reload_policies(&self) -> Result<(), StoreError> {
        let policies = self
            .on_store(|s| async move { s.policies().await }.boxed())
            .await?;
        self.policies.replace_stored(policies);
        Ok(())
    }

    /// Every key, from the store.
    ///
    /// # Errors
    /// The store failed.
    pub async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.on_store(|s| async move { s.keys().await }.boxed())
            .await
    }

    /// Revokes key `id` now; returns the record, `None` if there is no such key.
    ///
    /// # Errors
    /// The store failed.
    pub async fn revoke(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.change(id, Box::new(revoke_now))
            .await
            .map(|o| o.map(|(k, _)| k))
    }

    /// Gives key `id` a new secret; the old one works for the rotation grace.
    ///
    /// # Errors
    /// The store failed.
    pub async fn rotate(&self, id: &str) -> Result<Option<(KeyRecord, SecretString)>, StoreError> {
        self.change(id, rotate_now(self.grace))
            .await
            .map(|o| o.and_then(|(k, s)| s.map(|s| (k, s))))
    }

    async fn change(
        &self,
        id: &str,
        f: store::KeyChange,
    ) -> Result<Option<store::Changed>, StoreError> {
        let owned = id.to_owned();
        let changed = self
            .on_store(|s| async move { s.modify_key(&owned, f).await }.boxed())
            .await?;
        if let Some((record, _)) = &changed {
            self.remember(record.clone());
        }
        Ok(changed)
    }

    /// A key's usage per day.
    ///
    /// # Errors
    /// The store failed.
    pub async fn usage(&self, id: &str) -> Result<Vec<sluice_schemas::api::UsageDay>, StoreError> {
        let id = id.to_owned();
        self.on_store(|s| async move { s.usage(&id).await }.boxed())
            .await
    }

    /// The audit of one query request, recorded exactly once: when the query ends
    /// ([`QueryAuditor::complete`]), or when it is dropped unfinished (the client left).
    pub fn query_auditor(
        &self,
        principal: &Principal,
        client: &Client,
        query_id: &str,
        operation: Operation,
    ) -> Arc<QueryAuditor> {
        QueryAuditor::start(
            Arc::clone(&self.audit),
            principal,
            client,
            query_id,
            operation,
        )
    }
}

/// Revokes a key now (a revoked key stays revoked).
///
/// # Errors
/// Never; the signature is a [`store::KeyChange`]'s.
#[allow(clippy::unnecessary_wraps, reason = "a KeyChange")]
pub fn revoke_now(k: &mut KeyRecord) -> Result<Option<SecretString>, StoreError> {
    if k.revoked_at.is_none() {
        k.revoked_at = Some(Utc::now());
    }
    Ok(None)
}

/// Rotates a key now; the old secret works for `grace`.
pub fn rotate_now(grace: chrono::Duration) -> store::KeyChange {
    Box::new(move |k| {
        k.rotate(Utc::now(), grace)
            .map(Some)
            .map_err(|e| StoreError::Unavailable(format!("random source: {e}")))
    })
}

/// The store the config names, its connections driven by the current runtime.
///
/// # Errors
/// The store cannot be opened (or migrated).
pub async fn open_store(config: &Config) -> Result<Arc<dyn MetadataStore>, StoreError> {
    let meta = &config.metadata;
    if let Some(url) = &meta.postgres_url {
        let store = store::postgres::PgStore::connect(url, meta.pool_size).await?;
        return Ok(Arc::new(store));
    }
    Ok(match &meta.data_dir {
        Some(dir) => Arc::new(store::local::LocalStore::open(dir)?),
        None => Arc::new(store::local::LocalStore::memory()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stale_lookup_never_undoes_a_revocation() {
        let gov = Governance::start(&Config::default(), &tokio::runtime::Handle::current())
            .await
            .unwrap();
        let (record, secret) = gov.create_key(NewKey::admin("a")).await.unwrap();
        let secret = secret.expose_secret().to_owned();
        let client = Client::default();
        assert!(gov.authenticate(Some(&secret), &client).await.is_ok());
        gov.revoke(&record.id).await.unwrap();
        // A lookup that read the key before the revocation answers after it.
        gov.remember(record);
        let refused = gov
            .authenticate(Some(&secret), &client)
            .await
            .err()
            .unwrap();
        assert_eq!(refused.code, crate::error::Code::Unauthenticated);
    }
}
