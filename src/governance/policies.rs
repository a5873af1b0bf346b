//! Row filters and column masks: the config's `[[policies]]` and the store's (added through
//! `/v1/policies`, re-read with the keys), and what applies to one caller, with its attributes
//! substituted ([`sluice_planner::policy`] applies them on the plan).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use sluice_planner::policy::{PolicySet, TablePolicy, check_expression, resolve_attributes};
use sluice_schemas::api::{KeyRole, Policy, PolicyInfo};
use tracing::error;

use super::Principal;

/// Every policy this server knows.
#[derive(Debug)]
pub struct Policies {
    from_config: Vec<Policy>,
    stored: RwLock<Arc<Vec<Policy>>>,
    /// Bumped whenever the stored set changes: callers' resolved sets are kept per version.
    version: AtomicU64,
}

/// Checks a policy before it is kept: its shape, and that each expression is one expression
/// with well-formed `principal.attr(...)` calls. (Whether its columns exist is known only
/// against a table: a policy that cannot guard a table it matches makes queries of that table
/// fail, closed.)
///
/// # Errors
/// What is wrong, for the caller.
pub fn check(p: &Policy) -> Result<(), String> {
    let problems = sluice_schemas::loader::policy_problems(p);
    if let Some(first) = problems.into_iter().next() {
        return Err(first);
    }
    if let Some(f) = &p.row_filter {
        check_expression(f).map_err(|e| format!("row_filter: {e}"))?;
    }
    for (column, mask) in &p.masks {
        check_expression(mask).map_err(|e| format!("mask of {column}: {e}"))?;
    }
    Ok(())
}

impl Policies {
    /// The config's policies, checked.
    ///
    /// # Errors
    /// The first policy that cannot be used, and why.
    pub fn new(from_config: Vec<Policy>) -> Result<Self, String> {
        for p in &from_config {
            check(p).map_err(|e| format!("policy {}: {e}", p.name))?;
        }
        Ok(Self {
            from_config,
            stored: RwLock::default(),
            version: AtomicU64::new(1),
        })
    }

    /// The version resolved sets are kept under.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Takes the store's policies (those named like a config policy are ignored: the file's
    /// wins).
    pub fn replace_stored(&self, mut stored: Vec<Policy>) {
        stored.retain(|p| !self.is_from_config(&p.name));
        let mut held = self.stored.write().unwrap_or_else(PoisonError::into_inner);
        if **held != stored {
            *held = Arc::new(stored);
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Whether a policy of this name comes from the config file.
    pub fn is_from_config(&self, name: &str) -> bool {
        self.from_config.iter().any(|p| p.name == name)
    }

    fn stored(&self) -> Arc<Vec<Policy>> {
        Arc::clone(&self.stored.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every policy, by name.
    pub fn list(&self) -> Vec<PolicyInfo> {
        let stored = self.stored();
        let mut all: Vec<PolicyInfo> = self
            .from_config
            .iter()
            .map(|p| (p, "config"))
            .chain(stored.iter().map(|p| (p, "store")))
            .map(|(p, origin)| PolicyInfo {
                policy: p.clone(),
                origin: origin.to_owned(),
            })
            .collect();
        all.sort_by(|a, b| a.policy.name.cmp(&b.policy.name));
        all
    }

    /// What applies to `principal`, its attributes substituted; kept on the caller's entry
    /// until the policies change.
    pub fn resolve(&self, principal: &Principal) -> Arc<PolicySet> {
        let version = self.version();
        if let Principal::Key(k) = principal
            && let Some(set) = k.resolved(version)
        {
            return set;
        }
        let set = Arc::new(self.build(principal));
        if let Principal::Key(k) = principal {
            k.keep_resolved(version, Arc::clone(&set));
        }
        set
    }

    fn build(&self, principal: &Principal) -> PolicySet {
        let admin = principal.is_admin();
        let (role, key_id, groups) = match principal {
            Principal::Key(k) => (k.record.role, Some(k.record.id.as_str()), k.groups()),
            Principal::Anonymous => (KeyRole::Admin, None, &[][..]),
        };
        let attribute = |name: &str| principal.attribute(name);
        let stored = self.stored();
        let mut out = Vec::new();
        for p in self.from_config.iter().chain(stored.iter()) {
            if admin && p.admins_bypass {
                continue;
            }
            let applies = p.applies_to.as_ref().is_none_or(|t| {
                t.roles.contains(&role)
                    || key_id.is_some_and(|id| t.keys.iter().any(|k| k == id))
                    || groups.iter().any(|g| t.groups.contains(g))
            });
            if !applies {
                continue;
            }
            // Checked when kept, so this cannot fail; if it did, the policy lets nothing
            // through rather than nothing be guarded.
            let resolve = |sql: &str| {
                resolve_attributes(sql, &attribute).unwrap_or_else(|e| {
                    error!(policy = %p.name, error = %e, "A policy expression cannot be resolved; it lets no row through.");
                    "FALSE".to_owned()
                })
            };
            out.push(TablePolicy {
                name: p.name.clone(),
                tables: p.tables.clone(),
                row_filter: p.row_filter.as_deref().map(resolve),
                masks: p
                    .masks
                    .iter()
                    .map(|(c, m)| (c.clone(), resolve(m)))
                    .collect(),
            });
        }
        PolicySet::new(out, admin)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::json;
    use sluice_schemas::AccessRule;
    use sluice_schemas::api::PolicyTargets;

    use super::*;
    use crate::governance::keys::{KeyRecord, NewKey};
    use crate::governance::principal::KeyEntry;
    use crate::governance::rules::Rule;

    fn by_group() -> Policy {
        Policy {
            name: "by_org".into(),
            tables: "pg.*.*".into(),
            row_filter: Some(
                "org = principal.attr('org.unit') AND r = principal.attr('region')".into(),
            ),
            masks: BTreeMap::from([("email".to_owned(), "NULL".to_owned())]),
            applies_to: Some(PolicyTargets {
                groups: vec!["analysts".into()],
                ..PolicyTargets::default()
            }),
            admins_bypass: false,
        }
    }

    /// A token's caller is in its rule's groups, and its claims (dot paths too) are its
    /// attributes; a key outside the group is not bound; a missing attribute is `NULL`.
    #[test]
    fn groups_come_from_rules_and_attributes_from_claims_or_keys() {
        let policies = Policies::new(vec![by_group()]).unwrap();
        let rule = Rule::new(AccessRule {
            issuer: None,
            claim: "roles".into(),
            value: "analyst".into(),
            role: KeyRole::Reader,
            grants: Vec::new(),
            operations: None,
            groups: vec!["analysts".into()],
        });
        let claims = json!({"sub": "alice", "region": "EMEA", "org": {"unit": "ops"}});
        let token = Principal::Key(rule.caller("https://idp", "alice".into(), None, &claims));
        let set = policies.resolve(&token);
        let p = set.matching("pg", "public", "t");
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0].row_filter.as_deref(),
            Some("org = 'ops' AND r = 'EMEA'")
        );
        assert_eq!(p[0].masks["email"], "NULL");
        assert!(!set.reveals());

        let (mut record, _) = KeyRecord::mint(NewKey::admin("k"), chrono::Utc::now()).unwrap();
        record.role = KeyRole::Reader;
        record.attributes = BTreeMap::from([("region".to_owned(), "APAC".to_owned())]);
        let key = Principal::Key(Arc::new(KeyEntry::new(record)));
        assert!(policies.resolve(&key).is_empty(), "not in the group");
        assert_eq!(key.attribute("region").as_deref(), Some("APAC"));
        assert_eq!(key.attribute("org.unit"), None);

        // Stored policies join, a new version is resolved again, the config's name wins.
        let mut everyone = by_group();
        everyone.name = "everyone".into();
        everyone.applies_to = None;
        let mut shadow = by_group();
        shadow.row_filter = Some("FALSE".into());
        policies.replace_stored(vec![everyone, shadow]);
        let set = policies.resolve(&key);
        assert_eq!(set.matching("pg", "s", "t").len(), 1);
        assert_eq!(
            set.matching("pg", "s", "t")[0].row_filter.as_deref(),
            Some("org = NULL AND r = 'APAC'")
        );
        assert_eq!(policies.list().len(), 2);
    }
}
