//! API keys: minted secrets, stored only as SHA-256 digests, checked on every API route.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::RwLock;

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including key administration.
    Admin,
    /// Queries within its grants.
    Reader,
}

/// A key as the server knows it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public id, `key_...`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// Who is calling: a key, or anyone when auth is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An authenticated key.
    Key(ApiKey),
    /// `auth.mode = "none"` on a loopback listener.
    Anonymous,
}

impl Principal {
    /// The key id, if any.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Self::Key(k) => Some(&k.id),
            Self::Anonymous => None,
        }
    }

    /// True for admin keys and for anonymous access (auth off means a trusted loopback).
    pub fn is_admin(&self) -> bool {
        match self {
            Self::Key(k) => k.role == Role::Admin,
            Self::Anonymous => true,
        }
    }
}

/// Prefix of every secret, so leaked keys are easy to grep for.
pub const SECRET_PREFIX: &str = "sluice_";

/// Keys held in this process.
#[derive(Debug, Default)]
pub struct KeyStore {
    by_digest: RwLock<HashMap<[u8; 32], ApiKey>>,
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl KeyStore {
    /// Mints a key; the secret is returned once and only its digest is kept.
    ///
    /// # Errors
    /// When the OS random source fails.
    pub fn mint(&self, name: &str, role: Role) -> Result<(ApiKey, String), getrandom::Error> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)?;
        let secret = format!("{SECRET_PREFIX}{}", hex(&raw));
        let d = digest(&secret);
        let key = ApiKey {
            id: format!("key_{}", hex(&d[..6])),
            name: name.to_owned(),
            role,
        };
        self.by_digest
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(d, key.clone());
        Ok((key, secret))
    }

    /// The key a secret belongs to.
    pub fn verify(&self, secret: &str) -> Option<ApiKey> {
        // Lookup by digest: timing reveals nothing about the secret itself.
        self.by_digest
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&digest(secret))
            .cloned()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_digest
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// True when no key exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The secret a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
fn presented_secret(req: &HttpRequest) -> Option<&str> {
    if let Some(v) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(rest.trim());
        }
        return None;
    }
    req.headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Authenticates a request against `keys` (or lets anyone in when `required` is false).
///
/// # Errors
/// `401 unauthenticated` when no key, a malformed header or an unknown key is presented.
pub fn authenticate(
    req: &HttpRequest,
    keys: &KeyStore,
    required: bool,
) -> Result<Principal, ApiError> {
    if !required {
        return Ok(Principal::Anonymous);
    }
    let Some(secret) = presented_secret(req) else {
        return Err(ApiError::unauthenticated(
            "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
        ));
    };
    keys.verify(secret)
        .map(Principal::Key)
        .ok_or_else(|| ApiError::unauthenticated("the API key is not valid"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn mint_and_verify() {
        let store = KeyStore::default();
        let (key, secret) = store.mint("admin", Role::Admin).unwrap();
        assert!(secret.starts_with(SECRET_PREFIX) && secret.len() == SECRET_PREFIX.len() + 64);
        assert_eq!(store.verify(&secret), Some(key.clone()));
        assert_eq!(store.verify("sluice_nope"), None);
        let bearer = TestRequest::default()
            .insert_header(("Authorization", format!("Bearer {secret}")))
            .to_http_request();
        assert_eq!(
            authenticate(&bearer, &store, true).unwrap(),
            Principal::Key(key.clone())
        );
        let header = TestRequest::default()
            .insert_header(("X-API-Key", secret.as_str()))
            .to_http_request();
        assert_eq!(
            authenticate(&header, &store, true).unwrap(),
            Principal::Key(key)
        );
        let basic = TestRequest::default()
            .insert_header(("Authorization", format!("Basic {secret}")))
            .to_http_request();
        assert_eq!(
            authenticate(&basic, &store, true).unwrap_err().code,
            "unauthenticated"
        );
        let none = TestRequest::default().to_http_request();
        assert_eq!(
            authenticate(&none, &store, true)
                .unwrap_err()
                .status
                .as_u16(),
            401
        );
        assert_eq!(
            authenticate(&none, &store, false).unwrap(),
            Principal::Anonymous
        );
    }
}
