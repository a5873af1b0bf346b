//! Self-contained, signed handles: statement tickets, prepared-statement handles and session
//! cookies carry everything a server needs (who, the statement, its parameters, an expiry),
//! signed with HMAC-SHA256 under the deployment's shared secret. Any server holding the secret
//! serves them; none keeps anything in memory per handle, so an abandoned one costs nothing.
//!
//! Wire form: `SLF1` ‖ JSON claims ‖ 32-byte tag over both. The claims are not secret (they are
//! the caller's own statement), only unforgeable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sluice_schemas::api::QueryParams;

/// The version prefix; a new layout gets a new one.
const MAGIC: &[u8; 4] = b"SLF1";
/// HMAC-SHA256's tag.
const TAG_LEN: usize = 32;
/// A shared secret shorter than this is refused at start.
pub const MIN_SECRET_BYTES: usize = 32;

/// What a handle is for: a ticket is never accepted as a prepared statement, nor a session
/// cookie as either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A `DoGet` ticket: runs the statement.
    Ticket,
    /// A prepared statement (with its bound parameters, once `DoPut` bound them).
    Prepared,
    /// Session options (`catalog`, `schema`), in a cookie.
    Session,
}

/// What a handle says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// What it is for.
    pub kind: Kind,
    /// The principal it was issued to: a key id, a `sub_` id, or `anonymous`.
    pub who: String,
    /// Expiry, milliseconds since the epoch.
    pub exp: u64,
    /// The statement (tickets, prepared statements).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sql: String,
    /// Bound parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<QueryParams>,
    /// The query id a ticket runs under (so `CancelFlightInfo` can name it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    /// Session catalog for bare names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// Session schema for bare names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

impl Claims {
    /// Claims of `kind` for `who` until `exp`, naming nothing yet.
    pub fn new(kind: Kind, who: &str, exp: u64) -> Self {
        Self {
            kind,
            who: who.to_owned(),
            exp,
            sql: String::new(),
            params: None,
            query_id: None,
            catalog: None,
            schema: None,
        }
    }
}

/// Why a handle was refused. The caller learns only that it is not good (which part failed
/// is logged, not told).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a handle of ours, or altered.
    #[error("the handle is not valid (altered, or signed by another deployment)")]
    Forged,
    /// Past its expiry.
    #[error("the handle has expired; prepare or plan the statement again")]
    Expired,
    /// Issued to another principal.
    #[error("the handle was issued to another caller")]
    OtherPrincipal,
    /// A handle of another kind.
    #[error("the handle is not of the kind this call takes")]
    WrongKind,
}

/// Signs and checks handles under one secret.
pub struct Signer {
    key: ring::hmac::Key,
    ttl: Duration,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Signer {
    /// A signer with `secret`, issuing handles good for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        Self {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            ttl,
        }
    }

    /// The expiry of a handle issued now.
    pub fn expiry(&self) -> u64 {
        now_ms().saturating_add(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX))
    }

    /// The signed form of `claims`.
    pub fn seal(&self, claims: &Claims) -> Vec<u8> {
        // Serializing these plain types cannot fail; an empty payload would be refused on open.
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let mut out = Vec::with_capacity(MAGIC.len() + payload.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&payload);
        let tag = ring::hmac::sign(&self.key, &out);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// The claims of `handle`, if it is ours, unaltered, of `kind`, issued to `who` and not
    /// expired. The signature is checked (in constant time) before anything is parsed.
    ///
    /// # Errors
    /// [`Refused`].
    pub fn open(&self, handle: &[u8], kind: Kind, who: &str) -> Result<Claims, Refused> {
        let claims = self.open_any_age(handle, kind, who)?;
        if claims.exp <= now_ms() {
            return Err(Refused::Expired);
        }
        Ok(claims)
    }

    /// [`Self::open`], whether or not the handle has expired: for closing and cancelling what
    /// a handle names, which may outlive it.
    ///
    /// # Errors
    /// [`Refused`] but `Expired`.
    pub fn open_any_age(&self, handle: &[u8], kind: Kind, who: &str) -> Result<Claims, Refused> {
        let claims = self.verify(handle)?;
        if claims.kind != kind {
            return Err(Refused::WrongKind);
        }
        if claims.who != who {
            return Err(Refused::OtherPrincipal);
        }
        Ok(claims)
    }

    /// The claims of a genuine handle, whoever it was for and whether or not it has expired.
    ///
    /// # Errors
    /// [`Refused::Forged`].
    fn verify(&self, handle: &[u8]) -> Result<Claims, Refused> {
        if handle.len() < MAGIC.len() + TAG_LEN || !handle.starts_with(MAGIC) {
            return Err(Refused::Forged);
        }
        let (signed, tag) = handle.split_at(handle.len() - TAG_LEN);
        ring::hmac::verify(&self.key, signed, tag).map_err(|_| Refused::Forged)?;
        serde_json::from_slice(&signed[MAGIC.len()..]).map_err(|_| Refused::Forged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(kind: Kind, who: &str, exp: u64) -> Claims {
        Claims {
            sql: "SELECT 1".to_owned(),
            ..Claims::new(kind, who, exp)
        }
    }

    #[test]
    fn a_sealed_handle_opens_for_its_principal_and_kind_only() {
        let signer = Signer::new(&[7; 32], Duration::from_secs(60));
        let c = claims(Kind::Ticket, "key_a", signer.expiry());
        let h = signer.seal(&c);
        assert_eq!(signer.open(&h, Kind::Ticket, "key_a"), Ok(c));
        assert_eq!(
            signer.open(&h, Kind::Ticket, "key_b"),
            Err(Refused::OtherPrincipal)
        );
        assert_eq!(
            signer.open(&h, Kind::Prepared, "key_a"),
            Err(Refused::WrongKind)
        );
    }

    #[test]
    fn altered_expired_and_foreign_handles_are_refused() {
        let signer = Signer::new(&[7; 32], Duration::from_secs(60));
        let h = signer.seal(&claims(Kind::Ticket, "key_a", signer.expiry()));
        for i in 0..h.len() {
            let mut bad = h.clone();
            bad[i] ^= 1;
            assert_eq!(
                signer.open(&bad, Kind::Ticket, "key_a"),
                Err(Refused::Forged),
                "byte {i}"
            );
        }
        assert_eq!(
            signer.open(&h[..h.len() - 1], Kind::Ticket, "key_a"),
            Err(Refused::Forged)
        );
        let other = Signer::new(&[8; 32], Duration::from_secs(60));
        assert_eq!(other.open(&h, Kind::Ticket, "key_a"), Err(Refused::Forged));
        let old = signer.seal(&claims(Kind::Ticket, "key_a", now_ms() - 1));
        assert_eq!(
            signer.open(&old, Kind::Ticket, "key_a"),
            Err(Refused::Expired)
        );
    }
}
