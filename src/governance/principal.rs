//! Who is calling: a key (with its restricted planner, built once) or anonymous access, what
//! it may do, and where a request came from.

use std::sync::{Arc, Mutex, PoisonError};

use sluice_planner::{Grants, Planner, PolicySet};
use sluice_schemas::api::{KeyRole, Operation};

use super::keys::KeyRecord;
use crate::error::ApiError;

/// A key as a server holds it: the record, and its restricted planner once needed. A bearer
/// token's caller is held the same way: a record made from its rule (id `sub_...`, stable
/// per issuer and subject, so limits, usage and recent queries follow the subject), with the
/// token's issuer and subject beside it.
#[derive(Debug)]
pub struct KeyEntry {
    /// The stored record (for a token: made from the rule it matched).
    pub record: KeyRecord,
    planner: Arc<PlannerSlot>,
    /// For a token: who it names.
    pub identity: Option<Identity>,
    /// For a token or certificate: its claims, which policies read as attributes.
    claims: Option<serde_json::Value>,
    /// The groups its rule maps it to.
    groups: Vec<String>,
    /// The policies that apply to it, resolved, with the policy version they were read at.
    resolved: Mutex<Option<(u64, Arc<PolicySet>)>>,
}

/// The planners one key (or every caller of one rule) plans with: one per policy
/// fingerprint, built once (a session build each).
#[derive(Debug)]
pub struct PlannerSlot(Mutex<lru::LruCache<String, Planner>>);

/// Views kept per slot: a rule's callers with different attributes have different policies.
const VIEWS_PER_SLOT: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(64) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};

impl Default for PlannerSlot {
    fn default() -> Self {
        Self(Mutex::new(lru::LruCache::new(VIEWS_PER_SLOT)))
    }
}

impl PlannerSlot {
    fn get(&self, fingerprint: &str, build: impl FnOnce() -> Planner) -> Planner {
        let mut views = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = views.get(fingerprint) {
            return p.clone();
        }
        let p = build();
        views.put(fingerprint.to_owned(), p.clone());
        p
    }
}

/// The issuer and subject of a bearer token (the token itself is never kept).
#[derive(Debug, Clone)]
pub struct Identity {
    /// The token's `iss`.
    pub issuer: Arc<str>,
    /// The subject claim's value.
    pub subject: String,
}

impl KeyEntry {
    pub(super) fn new(record: KeyRecord) -> Self {
        Self {
            record,
            planner: Arc::default(),
            identity: None,
            claims: None,
            groups: Vec::new(),
            resolved: Mutex::default(),
        }
    }

    /// A token's caller: `planner` is its rule's, shared by every subject the rule admits.
    pub(super) fn token(
        record: KeyRecord,
        identity: Identity,
        planner: Arc<PlannerSlot>,
        claims: serde_json::Value,
        groups: Vec<String>,
    ) -> Self {
        Self {
            record,
            planner,
            identity: Some(identity),
            claims: Some(claims),
            groups,
            resolved: Mutex::default(),
        }
    }

    /// The groups its rule maps it to.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Its policies, if resolved at `version`.
    pub(super) fn resolved(&self, version: u64) -> Option<Arc<PolicySet>> {
        match &*self.resolved.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((v, set)) if *v == version => Some(Arc::clone(set)),
            _ => None,
        }
    }

    pub(super) fn keep_resolved(&self, version: u64, set: Arc<PolicySet>) {
        *self.resolved.lock().unwrap_or_else(PoisonError::into_inner) = Some((version, set));
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// An authenticated key.
    Key(Arc<KeyEntry>),
    /// `auth.mode = "none"` on a loopback listener: everything, as an admin.
    Anonymous,
}

impl Principal {
    /// The key id, if any.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Self::Key(k) => Some(&k.record.id),
            Self::Anonymous => None,
        }
    }

    /// The issuer and subject, for a bearer token's caller.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Self::Key(k) => k.identity.as_ref(),
            Self::Anonymous => None,
        }
    }

    /// Who the caller is and what it may do (`GET /v1/me`).
    pub fn whoami(&self) -> sluice_schemas::api::WhoAmI {
        use sluice_schemas::api::WhoAmI;
        match self {
            Self::Key(k) => WhoAmI {
                id: Some(k.record.id.clone()),
                name: k.record.name.clone(),
                kind: if k.identity.is_some() {
                    "subject"
                } else {
                    "key"
                }
                .to_owned(),
                issuer: k.identity.as_ref().map(|i| i.issuer.to_string()),
                role: k.record.role,
                operations: k.record.operations.clone(),
            },
            Self::Anonymous => WhoAmI {
                id: None,
                name: "anonymous".to_owned(),
                kind: "anonymous".to_owned(),
                issuer: None,
                role: KeyRole::Admin,
                operations: vec![
                    Operation::Query,
                    Operation::Explain,
                    Operation::List,
                    Operation::Admin,
                ],
            },
        }
    }

    /// True for admin keys and for anonymous access (auth off means a trusted loopback).
    pub fn is_admin(&self) -> bool {
        match self {
            Self::Key(k) => k.record.role == KeyRole::Admin,
            Self::Anonymous => true,
        }
    }

    /// Refuses an operation the key may not perform.
    ///
    /// # Errors
    /// `403 permission_denied`.
    pub fn require(&self, op: Operation) -> Result<(), ApiError> {
        match self {
            Self::Key(k) if !k.record.may(op) => Err(ApiError::permission_denied(format!(
                "this {} may not {}",
                if k.identity.is_some() {
                    "token"
                } else {
                    "API key"
                },
                match op {
                    Operation::Query => "run queries",
                    Operation::Explain => "explain queries",
                    Operation::List => "list sources or tables",
                    Operation::Admin => "administer keys or sources (admins only)",
                }
            ))),
            _ => Ok(()),
        }
    }

    /// An attribute policies read with `principal.attr('name')`: a key's own, a token's or
    /// certificate's claim (dot paths allowed) as text.
    pub fn attribute(&self, name: &str) -> Option<String> {
        match self {
            Self::Key(k) => match &k.claims {
                Some(claims) => {
                    super::oidc::claims::at(claims, name).and_then(super::oidc::claims::text)
                }
                None => k.record.attributes.get(name).cloned(),
            },
            Self::Anonymous => None,
        }
    }

    /// The planner this caller plans with: the whole catalog for admins and anonymous
    /// access, the granted view for readers, with `policies` applied where tables are read
    /// (built once per key version and policy fingerprint; for anonymous access, once per
    /// fingerprint in `anonymous`).
    pub fn planner(
        &self,
        root: &Planner,
        policies: &Arc<PolicySet>,
        anonymous: &PlannerSlot,
    ) -> Planner {
        let with_policies = |p: Planner| {
            if policies.is_empty() {
                p
            } else {
                p.with_policies(Arc::clone(policies))
            }
        };
        match self {
            Self::Key(k) => k.planner.get(policies.fingerprint(), || {
                let view = if k.record.role == KeyRole::Reader {
                    root.restricted(Arc::new(Grants::new(&k.record.grants)))
                } else {
                    root.clone()
                };
                with_policies(view)
            }),
            Self::Anonymous if policies.is_empty() => root.clone(),
            Self::Anonymous => {
                anonymous.get(policies.fingerprint(), || with_policies(root.clone()))
            }
        }
    }
}

/// Which door a request came through: a label on metrics and the audit log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Door {
    /// The HTTP API.
    #[default]
    Http,
    /// MCP (Streamable HTTP).
    Mcp,
    /// Arrow Flight SQL.
    Flight,
    /// The PostgreSQL wire protocol.
    Pg,
}

impl Door {
    /// The label: `http`, `mcp`, `flight`, `pg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Mcp => "mcp",
            Self::Flight => "flight",
            Self::Pg => "pg",
        }
    }
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The door it came through.
    pub door: Door,
    /// Peer address.
    pub addr: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// The client certificate the TLS handshake verified, if any.
    pub certificate: Option<Arc<PeerCertificate>>,
}

/// A verified client certificate, as `[[auth.certificate_rules]]` read it.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// The subject, RFC 4514 (`CN=svc,O=Acme`).
    pub subject: String,
    /// The issuer, RFC 4514.
    pub issuer: String,
    /// `cn`, `subject`, `o`, `ou`, `issuer`: what rules match on.
    pub claims: serde_json::Value,
}
