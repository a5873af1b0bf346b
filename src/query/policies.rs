//! Policy administration, for admins only: list, create, replace, delete. Policies from the
//! config file are listed but cannot be changed here.

use sluice_schemas::api::{Operation, Policy, PolicyInfo};
use tracing::{error, info};

use super::QueryService;
use crate::error::{ApiError, Code, Result};
use crate::governance::Principal;
use crate::governance::store::StoreError;

fn store_error(e: &StoreError) -> ApiError {
    error!(error = %e, "Policy administration failed in the metadata store.");
    ApiError::metadata_unavailable()
}

fn from_config(name: &str) -> ApiError {
    ApiError::new(
        Code::PolicyFromConfig,
        format!("policy {name} comes from the config file; change it there"),
    )
}

impl QueryService {
    /// Every policy, by name.
    ///
    /// # Errors
    /// `permission_denied`.
    pub fn list_policies(&self, principal: &Principal) -> Result<Vec<PolicyInfo>> {
        principal.require(Operation::Admin)?;
        Ok(self.governance.policies.list())
    }

    /// Stores a policy: `replace` for `PUT` (create or replace), else only a new name.
    ///
    /// # Errors
    /// `permission_denied`, `bad_request` (a policy that cannot be used), `policy_exists`,
    /// `policy_from_config`, `metadata_unavailable`.
    pub async fn put_policy(
        &self,
        principal: &Principal,
        policy: Policy,
        replace: bool,
    ) -> Result<PolicyInfo> {
        principal.require(Operation::Admin)?;
        crate::governance::policies_check(&policy).map_err(ApiError::bad_request)?;
        let gov = &self.governance;
        if gov.policies.is_from_config(&policy.name) {
            return Err(from_config(&policy.name));
        }
        let stored = gov
            .put_policy(policy.clone(), replace)
            .await
            .map_err(|e| store_error(&e))?;
        if !stored {
            return Err(ApiError::new(
                Code::PolicyExists,
                format!(
                    "a policy named {} exists; PUT /v1/policies/{} replaces it",
                    policy.name, policy.name
                ),
            ));
        }
        info!(policy = %policy.name, by = principal.key_id().unwrap_or("anonymous"), replace, "Policy stored.");
        Ok(PolicyInfo {
            policy,
            origin: "store".to_owned(),
        })
    }

    /// Deletes a stored policy.
    ///
    /// # Errors
    /// `permission_denied`, `policy_from_config`, `not_found`, `metadata_unavailable`.
    pub async fn delete_policy(&self, principal: &Principal, name: &str) -> Result<()> {
        principal.require(Operation::Admin)?;
        let gov = &self.governance;
        if gov.policies.is_from_config(name) {
            return Err(from_config(name));
        }
        if !gov.delete_policy(name).await.map_err(|e| store_error(&e))? {
            return Err(ApiError::not_found(
                Code::NotFound,
                format!("no policy {name}"),
            ));
        }
        info!(policy = %name, by = principal.key_id().unwrap_or("anonymous"), "Policy deleted.");
        Ok(())
    }
}
