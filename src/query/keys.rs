//! Key administration, for admins only: create, list, revoke, rotate, usage.

use secrecy::ExposeSecret;
use sluice_schemas::api::{CreateKeyRequest, CreatedKey, KeyInfo, KeyUsage, Operation};
use tracing::{error, info};

use super::QueryService;
use crate::error::{ApiError, Code, Result};
use crate::governance::Principal;
use crate::governance::keys::NewKey;
use crate::governance::store::StoreError;

/// A store failure as callers see it: never its text.
fn store_error(e: &StoreError) -> ApiError {
    error!(error = %e, "Key administration failed in the metadata store.");
    ApiError::metadata_unavailable()
}

fn no_such_key(id: &str) -> ApiError {
    ApiError::not_found(Code::NotFound, format!("no API key {id}"))
}

impl QueryService {
    /// Creates a key; its secret is in this answer only.
    ///
    /// # Errors
    /// `permission_denied`, `bad_request` (a request [`NewKey::from_request`] refuses),
    /// `metadata_unavailable`.
    pub async fn create_key(
        &self,
        principal: &Principal,
        request: CreateKeyRequest,
    ) -> Result<CreatedKey> {
        principal.require(Operation::Admin)?;
        let new = NewKey::from_request(request).map_err(ApiError::bad_request)?;
        let (record, secret) = self
            .governance
            .create_key(new)
            .await
            .map_err(|e| store_error(&e))?;
        info!(key_id = %record.id, by = principal.key_id().unwrap_or("anonymous"), role = ?record.role, "API key created.");
        Ok(CreatedKey {
            info: record.info(),
            key: secret.expose_secret().to_owned(),
        })
    }

    /// Every key, newest first, without secrets.
    ///
    /// # Errors
    /// `permission_denied`, `metadata_unavailable`.
    pub async fn list_keys(&self, principal: &Principal) -> Result<Vec<KeyInfo>> {
        principal.require(Operation::Admin)?;
        let keys = self
            .governance
            .list_keys()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(keys.iter().map(|k| k.info()).collect())
    }

    /// Revokes a key: every server sharing the store refuses it within `auth.key_sync_ms`.
    ///
    /// # Errors
    /// `permission_denied`, `not_found`, `metadata_unavailable`.
    pub async fn revoke_key(&self, principal: &Principal, id: &str) -> Result<KeyInfo> {
        principal.require(Operation::Admin)?;
        let record = self
            .governance
            .revoke(id)
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(|| no_such_key(id))?;
        info!(key_id = %record.id, by = principal.key_id().unwrap_or("anonymous"), "API key revoked.");
        Ok(record.info())
    }

    /// Gives a key a new secret; the old one keeps working for `auth.rotation_grace_ms`.
    ///
    /// # Errors
    /// `permission_denied`, `not_found`, `metadata_unavailable`.
    pub async fn rotate_key(&self, principal: &Principal, id: &str) -> Result<CreatedKey> {
        principal.require(Operation::Admin)?;
        let (record, secret) = self
            .governance
            .rotate(id)
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(|| no_such_key(id))?;
        info!(key_id = %record.id, by = principal.key_id().unwrap_or("anonymous"), "API key rotated.");
        Ok(CreatedKey {
            info: record.info(),
            key: secret.expose_secret().to_owned(),
        })
    }

    /// A key's queries, rows, bytes and errors per day.
    ///
    /// # Errors
    /// `permission_denied`, `not_found`, `metadata_unavailable`.
    pub async fn key_usage(&self, principal: &Principal, id: &str) -> Result<KeyUsage> {
        principal.require(Operation::Admin)?;
        let gov = &self.governance;
        // A token's or certificate's subject (`sub_...`) has usage but no key record.
        // One indexed lookup, not a listing.
        if !crate::governance::is_subject_id(id)
            && gov
                .store_key(id.to_owned())
                .await
                .map_err(|e| store_error(&e))?
                .is_none()
        {
            return Err(no_such_key(id));
        }
        let days = gov.usage(id).await.map_err(|e| store_error(&e))?;
        Ok(KeyUsage {
            id: id.to_owned(),
            days,
        })
    }
}
