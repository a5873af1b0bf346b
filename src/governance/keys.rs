//! API keys: a public id and a 256-bit random secret, presented together as
//! `sluice_<id>_<64 hex>`. Only the SHA-256 of the whole presented string is stored; checking
//! compares digests in constant time.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_schemas::api::{CreateKeyRequest, Grant, KeyInfo, KeyRole, Operation, RateLimit};
use subtle::ConstantTimeEq;

/// Prefix of every secret, so leaked keys are easy to grep for (and to scan for).
pub const SECRET_PREFIX: &str = "sluice_";

/// Operations a reader gets when its key names none.
pub const READER_OPERATIONS: [Operation; 3] =
    [Operation::Query, Operation::Explain, Operation::List];

/// A key as the store holds it: never the secret, only digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public id, `key_` and 12 hex digits.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Role.
    pub role: KeyRole,
    /// Granted tables (readers).
    pub grants: Vec<Grant>,
    /// Allowed operations.
    pub operations: Vec<Operation>,
    /// Own rate limit, overriding the role's.
    pub rate_limit: Option<RateLimit>,
    /// Own concurrent-query limit, overriding the role's.
    pub max_concurrent: Option<u32>,
    /// SHA-256 of the current secret, hex.
    pub secret_sha256: String,
    /// SHA-256 of the secret before the last rotation, hex, while its grace lasts.
    pub previous_sha256: Option<String>,
    /// Until when the previous secret works.
    pub previous_expires_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When the key stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The last rotation.
    pub rotated_at: Option<DateTime<Utc>>,
    /// What policies read with `principal.attr('name')`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// Why a presented secret was refused (for the audit log; clients only see `401`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a Sluice key at all.
    Malformed,
    /// No key with this id.
    UnknownKey,
    /// The id exists, the secret does not match (or matched a rotated-out secret too late).
    WrongSecret,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

impl Refusal {
    /// The audit outcome.
    pub fn outcome(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::WrongSecret => "wrong_secret",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// SHA-256 of a presented secret, hex.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The key id a presented secret claims, if it has the shape of one.
pub fn claimed_id(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(SECRET_PREFIX)?;
    let (id, random) = rest.rsplit_once('_')?;
    let ok = id.len() == 16
        && id.starts_with("key_")
        && id[4..].bytes().all(|b| b.is_ascii_hexdigit())
        && random.len() == 64
        && random.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(id)
}

fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw)?;
    Ok(hex::encode(raw))
}

/// A fresh secret for key `id`.
fn new_secret(id: &str) -> Result<SecretString, getrandom::Error> {
    Ok(SecretString::from(format!(
        "{SECRET_PREFIX}{id}_{}",
        random_hex(32)?
    )))
}

/// What a new key is made of.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Human name.
    pub name: String,
    /// Role.
    pub role: KeyRole,
    /// Granted tables.
    pub grants: Vec<Grant>,
    /// Operations; `None` for the role's.
    pub operations: Option<Vec<Operation>>,
    /// Own rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Own concurrency limit.
    pub max_concurrent: Option<u32>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Attributes for policies.
    pub attributes: BTreeMap<String, String>,
}

impl NewKey {
    /// A key as `POST /v1/keys` (or `sluice keys create`) asks for it, checked: a name of 1
    /// to 200 characters, limits in range, grant patterns of 1 to 200 characters, an RFC 3339
    /// expiry.
    ///
    /// # Errors
    /// What is wrong, for the caller.
    pub fn from_request(body: CreateKeyRequest) -> Result<Self, String> {
        let name = body.name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err("name must be 1 to 200 characters".to_owned());
        }
        let in_range = |v: u32| (1..=1_000_000_000).contains(&v);
        if body
            .rate_limit
            .is_some_and(|r| !in_range(r.per_second) || r.burst.is_some_and(|b| !in_range(b)))
        {
            return Err("rate_limit.per_second and burst must be 1 to 1000000000".to_owned());
        }
        if body
            .max_concurrent
            .is_some_and(|n| !(1..=1_000_000).contains(&n))
        {
            return Err("max_concurrent must be 1 to 1000000".to_owned());
        }
        for g in &body.grants {
            if [&g.source, &g.schema, &g.table]
                .iter()
                .any(|p| p.is_empty() || p.len() > 200)
            {
                return Err("grant patterns must be 1 to 200 characters".to_owned());
            }
        }
        let expires_at = body.expires_at.as_deref().map(parse_time).transpose()?;
        check_attributes(&body.attributes)?;
        Ok(Self {
            name: name.to_owned(),
            role: body.role.unwrap_or(KeyRole::Reader),
            grants: body.grants,
            operations: body.operations,
            rate_limit: body.rate_limit,
            max_concurrent: body.max_concurrent,
            expires_at,
            attributes: body.attributes,
        })
    }

    /// An admin key with nothing else set.
    pub fn admin(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            role: KeyRole::Admin,
            grants: Vec::new(),
            operations: None,
            rate_limit: None,
            max_concurrent: None,
            expires_at: None,
            attributes: BTreeMap::new(),
        }
    }
}

/// At most 64 attributes, names of 1 to 64 letters, digits, `_`, `-` or `.`, values of at most
/// 1,024 bytes.
fn check_attributes(attributes: &BTreeMap<String, String>) -> Result<(), String> {
    if attributes.len() > 64 {
        return Err("at most 64 attributes".to_owned());
    }
    for (name, value) in attributes {
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(format!(
                "attribute name {name:?}: 1 to 64 letters, digits, `_`, `-` or `.`"
            ));
        }
        if value.len() > 1024 {
            return Err(format!("attribute {name}: at most 1024 bytes"));
        }
    }
    Ok(())
}

impl KeyRecord {
    /// Mints a key: the record to store, and the secret, returned this once.
    ///
    /// # Errors
    /// When the OS random source fails.
    pub fn mint(new: NewKey, now: DateTime<Utc>) -> Result<(Self, SecretString), getrandom::Error> {
        let id = format!("key_{}", random_hex(6)?);
        let secret = new_secret(&id)?;
        let operations = match (new.role, new.operations) {
            (KeyRole::Admin, _) => vec![
                Operation::Query,
                Operation::Explain,
                Operation::List,
                Operation::Admin,
            ],
            (KeyRole::Reader, Some(mut ops)) => {
                // A reader never administers, whatever its record says.
                ops.retain(|o| *o != Operation::Admin);
                ops.sort();
                ops.dedup();
                ops
            }
            (KeyRole::Reader, None) => READER_OPERATIONS.to_vec(),
        };
        let record = Self {
            id,
            name: new.name,
            role: new.role,
            grants: new.grants,
            operations,
            rate_limit: new.rate_limit,
            max_concurrent: new.max_concurrent,
            secret_sha256: digest(secret.expose_secret()),
            previous_sha256: None,
            previous_expires_at: None,
            created_at: now,
            expires_at: new.expires_at,
            revoked_at: None,
            rotated_at: None,
            attributes: new.attributes,
        };
        Ok((record, secret))
    }

    /// Gives the key a new secret; the current one keeps working until `now + grace`.
    ///
    /// # Errors
    /// When the OS random source fails.
    pub fn rotate(
        &mut self,
        now: DateTime<Utc>,
        grace: chrono::Duration,
    ) -> Result<SecretString, getrandom::Error> {
        let secret = new_secret(&self.id)?;
        self.previous_sha256 = Some(std::mem::replace(
            &mut self.secret_sha256,
            digest(secret.expose_secret()),
        ));
        self.previous_expires_at = Some(now + grace);
        self.rotated_at = Some(now);
        Ok(secret)
    }

    /// Checks a presented secret against this key at `now`.
    ///
    /// # Errors
    /// Why it is refused.
    pub fn verify(&self, presented: &str, now: DateTime<Utc>) -> Result<(), Refusal> {
        let d = digest(presented);
        let current = bool::from(d.as_bytes().ct_eq(self.secret_sha256.as_bytes()));
        let previous = self.previous_sha256.as_ref().is_some_and(|p| {
            bool::from(d.as_bytes().ct_eq(p.as_bytes()))
                && self.previous_expires_at.is_some_and(|until| now < until)
        });
        if !current && !previous {
            return Err(Refusal::WrongSecret);
        }
        if self.revoked_at.is_some_and(|at| at <= now) {
            return Err(Refusal::Revoked);
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    /// True when the key may perform `op`.
    pub fn may(&self, op: Operation) -> bool {
        self.role == KeyRole::Admin || (op != Operation::Admin && self.operations.contains(&op))
    }

    /// The API view, without digests.
    pub fn info(&self) -> KeyInfo {
        KeyInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            grants: self.grants.clone(),
            operations: self.operations.clone(),
            rate_limit: self.rate_limit,
            max_concurrent: self.max_concurrent,
            created_at: rfc3339(self.created_at),
            expires_at: self.expires_at.map(rfc3339),
            revoked_at: self.revoked_at.map(rfc3339),
            rotated_at: self.rotated_at.map(rfc3339),
            previous_secret_expires_at: self.previous_expires_at.map(rfc3339),
            attributes: self.attributes.clone(),
        }
    }
}

/// `2026-12-02T13:22:47.123Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 time.
///
/// # Errors
/// A message naming what was expected.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time ({e}), e.g. 2027-01-31T00:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> NewKey {
        NewKey {
            role: KeyRole::Reader,
            ..NewKey::admin("r")
        }
    }

    #[test]
    fn mint_verify_rotate_revoke_expire() {
        let now = Utc::now();
        let (mut k, secret) = KeyRecord::mint(reader(), now).unwrap();
        let s = secret.expose_secret().to_owned();
        assert_eq!(claimed_id(&s), Some(k.id.as_str()));
        assert_eq!(s.len(), SECRET_PREFIX.len() + 16 + 1 + 64);
        assert!(!k.secret_sha256.contains(&s[SECRET_PREFIX.len() + 17..]));
        assert_eq!(k.verify(&s, now), Ok(()));
        assert_eq!(k.verify(&format!("{s}0"), now), Err(Refusal::WrongSecret));
        assert_eq!(k.operations, READER_OPERATIONS.to_vec());
        assert!(k.may(Operation::Query) && !k.may(Operation::Admin));

        let new = k.rotate(now, chrono::Duration::seconds(60)).unwrap();
        let new = new.expose_secret().to_owned();
        assert_eq!(k.verify(&new, now), Ok(()));
        assert_eq!(k.verify(&s, now), Ok(()), "within the grace");
        let later = now + chrono::Duration::seconds(61);
        assert_eq!(k.verify(&s, later), Err(Refusal::WrongSecret));
        assert_eq!(k.verify(&new, later), Ok(()));

        k.expires_at = Some(later);
        assert_eq!(k.verify(&new, later), Err(Refusal::Expired));
        k.revoked_at = Some(now);
        assert_eq!(k.verify(&new, now), Err(Refusal::Revoked));
    }

    #[test]
    fn shapes() {
        assert_eq!(claimed_id("sluice_nope"), None);
        assert_eq!(claimed_id(""), None);
        let id = "key_0123456789ab";
        let ok = format!("sluice_{id}_{}", "a".repeat(64));
        assert_eq!(claimed_id(&ok), Some(id));
        assert_eq!(claimed_id(&format!("sluice_{id}_{}", "g".repeat(64))), None);
        assert_eq!(
            claimed_id(&format!("sluice_key_x_{}", "a".repeat(64))),
            None
        );
    }

    #[test]
    fn admins_may_everything_readers_never_admin() {
        let (a, _) = KeyRecord::mint(NewKey::admin("a"), Utc::now()).unwrap();
        assert!(a.may(Operation::Admin));
        let (r, _) = KeyRecord::mint(
            NewKey {
                operations: Some(vec![Operation::Admin, Operation::Query, Operation::Query]),
                ..reader()
            },
            Utc::now(),
        )
        .unwrap();
        assert_eq!(r.operations, vec![Operation::Query]);
        assert!(!r.may(Operation::Admin) && !r.may(Operation::List));
    }
}
