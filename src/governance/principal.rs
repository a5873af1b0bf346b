//! Who is calling: a key (with its restricted planner, built once) or anonymous access, what
//! it may do, and where a request came from.

use std::sync::{Arc, OnceLock};

use sluice_planner::{Grants, Planner};
use sluice_schemas::api::{KeyRole, Operation};

use super::keys::KeyRecord;
use crate::error::ApiError;

/// A key as a server holds it: the record, and its restricted planner once needed.
#[derive(Debug)]
pub struct KeyEntry {
    /// The stored record.
    pub record: KeyRecord,
    planner: OnceLock<Planner>,
}

impl KeyEntry {
    pub(super) fn new(record: KeyRecord) -> Self {
        Self {
            record,
            planner: OnceLock::new(),
        }
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
                "this API key may not {}",
                match op {
                    Operation::Query => "run queries",
                    Operation::Explain => "explain queries",
                    Operation::List => "list sources or tables",
                    Operation::Admin => "administer keys or sources (admin keys only)",
                }
            ))),
            _ => Ok(()),
        }
    }

    /// The planner this caller plans with: the whole catalog for admins and anonymous
    /// access, the granted view for readers (built once per key version).
    pub fn planner(&self, root: &Planner) -> Planner {
        match self {
            Self::Key(k) if k.record.role == KeyRole::Reader => k
                .planner
                .get_or_init(|| root.restricted(Arc::new(Grants::new(&k.record.grants))))
                .clone(),
            _ => root.clone(),
        }
    }
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// Peer address.
    pub addr: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
}
