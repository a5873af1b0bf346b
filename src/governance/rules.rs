//! Rules from an outside identity (a token's claims, a client certificate's subject) to a
//! caller: the first rule that matches gives the role, grants and operations, held like a key
//! (a [`KeyEntry`] under a stable `sub_` id) so grants, limits, usage and audit treat every
//! caller alike.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_schemas::AccessRule;

use super::keys::{KeyRecord, READER_OPERATIONS};
use super::oidc::claims;
use super::principal::{Identity, KeyEntry, PlannerSlot};

/// A rule, with the planner every caller it admits shares.
#[derive(Debug)]
pub(super) struct Rule {
    config: AccessRule,
    planner: Arc<PlannerSlot>,
}

impl Rule {
    pub fn new(config: AccessRule) -> Self {
        Self {
            config,
            planner: Arc::default(),
        }
    }

    /// Whether it admits an identity from `issuer` with `claims`.
    pub fn admits(&self, issuer: &str, claims: &Value) -> bool {
        claims::matches(&self.config, issuer, claims)
    }

    /// The caller it makes of `subject` from `issuer`, valid until `expires` (seconds since
    /// the epoch) if that is known; policies read its `claims` as attributes.
    pub fn caller(
        &self,
        issuer: &str,
        subject: String,
        expires: Option<u64>,
        claims: &Value,
    ) -> Arc<KeyEntry> {
        let record = KeyRecord {
            id: subject_id(issuer, &subject),
            name: subject.clone(),
            role: self.config.role,
            grants: self.config.grants.clone(),
            operations: self
                .config
                .operations
                .clone()
                .unwrap_or_else(|| READER_OPERATIONS.to_vec()),
            rate_limit: None,
            max_concurrent: None,
            secret_sha256: String::new(),
            previous_sha256: None,
            previous_expires_at: None,
            created_at: Utc::now(),
            expires_at: expires
                .and_then(|s| i64::try_from(s).ok())
                .and_then(|s| DateTime::from_timestamp(s, 0)),
            revoked_at: None,
            rotated_at: None,
            attributes: std::collections::BTreeMap::new(),
        };
        Arc::new(KeyEntry::token(
            record,
            Identity {
                issuer: Arc::from(issuer),
                subject,
            },
            Arc::clone(&self.planner),
            claims.clone(),
            self.config.groups.clone(),
        ))
    }
}

/// The stable id of an issuer's subject: `sub_` and 16 hex digits of their digest. Limits,
/// usage and recent queries are kept under it.
pub fn subject_id(issuer: &str, subject: &str) -> String {
    let digest = Sha256::digest(format!("{issuer}\n{subject}").as_bytes());
    format!("sub_{}", hex::encode(&digest[..8]))
}

/// Whether `id` has the shape of a [`subject_id`] (a subject has usage but no key record).
pub fn is_subject_id(id: &str) -> bool {
    id.strip_prefix("sub_")
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_ids_are_stable_and_distinct() {
        let a = subject_id("https://idp", "alice");
        assert_eq!(a, subject_id("https://idp", "alice"));
        assert_ne!(a, subject_id("https://other", "alice"));
        assert_ne!(a, subject_id("https://idp", "bob"));
        assert!(a.starts_with("sub_") && a.len() == 20);
        assert!(is_subject_id(&a));
        assert!(!is_subject_id("sub_xyz") && !is_subject_id("key_0123456789abcdef"));
    }
}
