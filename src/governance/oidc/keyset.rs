//! One trusted issuer's signing keys: found through discovery (or a configured `jwks_uri`),
//! fetched with the reqwest already in the tree, held as an immutable set swapped whole, read
//! without a lock on every token. A token naming a key not in the set makes the set be read
//! again, at most once per `jwks_min_refetch_ms` however many such tokens arrive (one fetch at
//! a time, background reads included; the rest wait for it or are refused; background reads do
//! not count against the pace); a background task re-reads it every
//! `jwks_refresh_ms`, so a key the provider drops stops working within that.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use sluice_schemas::OidcIssuer;
use tracing::{info, warn};

/// The most a discovery document or key set may weigh.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One usable key of a set.
pub(super) struct Key {
    /// `kid`, when the set names it.
    pub kid: Option<String>,
    /// The algorithm the set pins the key to (`alg`), when it does.
    pub alg: Option<Algorithm>,
    /// The verifying key.
    pub key: DecodingKey,
    /// The JWK as published: a key read again unchanged stays the same key (so tokens it
    /// verified stay remembered).
    published: serde_json::Value,
}

/// A set as fetched.
#[derive(Default)]
pub(super) struct KeySet {
    keys: Vec<Arc<Key>>,
    /// Whether a fetch ever succeeded.
    pub loaded: bool,
}

impl KeySet {
    /// The key a token names: by `kid`, or, for a token without one, the only key of the
    /// token's algorithm family.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<Key>> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .cloned(),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.key.family() == alg.family());
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => Some(Arc::clone(k)),
                    _ => None,
                }
            }
        }
    }

    /// Whether `key` is still in the set (the same key, not merely the same `kid`).
    pub fn holds(&self, key: &Arc<Key>) -> bool {
        self.keys.iter().any(|k| Arc::ptr_eq(k, key))
    }
}

/// Why a fetch failed (for the log; never shown to a client).
#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    #[error("{0}")]
    Http(String),
    #[error("the document is not usable: {0}")]
    Document(String),
}

/// One issuer: its config, its key set, and the bookkeeping of refetches.
pub(super) struct Issuer {
    pub config: OidcIssuer,
    /// Audiences a token must name one of.
    pub audiences: Vec<String>,
    pub keys: ArcSwap<KeySet>,
    max_keys: usize,
    min_refetch: Duration,
    /// When the last fetch for an unknown key started (the background reads do not count:
    /// a provider that rotates just after one is followed at once).
    last_on_demand: Mutex<Option<Instant>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl Issuer {
    pub fn new(
        config: OidcIssuer,
        audiences: Vec<String>,
        max_keys: usize,
        min_refetch: Duration,
        http: reqwest::Client,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        // Every series at 0 before the first read, so a failed first read shows as one.
        for outcome in ["ok", "failed"] {
            for why in ["start", "interval", "unknown key"] {
                metrics::counter!(crate::metrics::JWKS_FETCHES_TOTAL, "outcome" => outcome, "why" => why)
                    .increment(0);
            }
        }
        Self {
            config,
            audiences,
            keys: ArcSwap::from_pointee(KeySet::default()),
            max_keys,
            min_refetch,
            last_on_demand: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            http,
            runtime,
        }
    }

    /// The key a token names, reading the set again if it is not there and the last read is
    /// at least `jwks_min_refetch_ms` old. `Err` when the set has never been read and cannot
    /// be now.
    pub async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<Option<Arc<Key>>, ()> {
        if let Some(k) = self.keys.load().find(kid, alg) {
            return Ok(Some(k));
        }
        let _one = self.fetching.lock().await;
        // Whoever held the lock may have just read the set.
        if let Some(k) = self.keys.load().find(kid, alg) {
            return Ok(Some(k));
        }
        let allowed = {
            let mut last = self
                .last_on_demand
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let allowed = last.is_none_or(|at| at.elapsed() >= self.min_refetch);
            if allowed {
                *last = Some(Instant::now());
            }
            allowed
        };
        if allowed {
            self.read("unknown key").await;
        }
        let set = self.keys.load();
        if !set.loaded {
            return Err(());
        }
        Ok(set.find(kid, alg))
    }

    /// Reads the set now, one read at a time (a background read never lands over a newer
    /// on-demand one).
    pub async fn refresh(&self, why: &'static str) {
        let _one = self.fetching.lock().await;
        self.read(why).await;
    }

    /// Reads the set (on the query runtime, which owns the HTTP connections); on failure the
    /// set held is kept. Keys published unchanged stay the very same keys. The caller holds
    /// `fetching`.
    async fn read(&self, why: &'static str) {
        let http = self.http.clone();
        let issuer = self.config.issuer.clone();
        let jwks_uri = self.config.jwks_uri.clone();
        let max_keys = self.max_keys;
        let fetched = self
            .runtime
            .spawn(async move { fetch_set(&http, &issuer, jwks_uri.as_deref(), max_keys).await })
            .await
            .unwrap_or_else(|e| Err(FetchError::Http(e.to_string())));
        let outcome = match fetched {
            Ok(mut set) => {
                let held = self.keys.load();
                for key in &mut set.keys {
                    if let Some(same) = held.keys.iter().find(|k| k.published == key.published) {
                        *key = Arc::clone(same);
                    }
                }
                info!(issuer = %self.config.issuer, keys = set.keys.len(), why, "Signing keys read.");
                self.keys.store(Arc::new(set));
                "ok"
            }
            Err(e) => {
                warn!(issuer = %self.config.issuer, error = %e, why, "Signing keys could not be read; keeping the last set.");
                "failed"
            }
        };
        metrics::counter!(crate::metrics::JWKS_FETCHES_TOTAL, "outcome" => outcome, "why" => why)
            .increment(1);
    }

    /// Whether the set has been read at all (for the background task's pace).
    pub fn loaded(&self) -> bool {
        self.keys.load().loaded
    }
}

/// Fetches `url` as JSON, refusing redirects to elsewhere, errors and oversized bodies.
async fn get_json(http: &reqwest::Client, url: &str) -> Result<serde_json::Value, FetchError> {
    let mut resp = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| FetchError::Http(format!("{url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(FetchError::Http(format!("{url}: HTTP {}", resp.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| FetchError::Http(format!("{url}: {e}")))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(FetchError::Document(format!(
                "{url} is larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| FetchError::Document(format!("{url}: {e}")))
}

/// The issuer's discovery document (`<issuer>/.well-known/openid-configuration`, bounded like
/// every document read here) and its URL; its `issuer` must be exactly the configured one.
pub(super) async fn discovery(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<(String, serde_json::Value), FetchError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc = get_json(http, &url).await?;
    if doc.get("issuer").and_then(|v| v.as_str()) != Some(issuer) {
        return Err(FetchError::Document(format!(
            "{url} names another issuer than {issuer}"
        )));
    }
    Ok((url, doc))
}

/// The issuer's key set: from `jwks_uri`, or from its discovery document's (whose `issuer`
/// must be exactly the configured one).
async fn fetch_set(
    http: &reqwest::Client,
    issuer: &str,
    jwks_uri: Option<&str>,
    max_keys: usize,
) -> Result<KeySet, FetchError> {
    let uri = match jwks_uri {
        Some(u) => u.to_owned(),
        None => {
            let (url, doc) = discovery(http, issuer).await?;
            let uri = doc
                .get("jwks_uri")
                .and_then(|v| v.as_str())
                .ok_or_else(|| FetchError::Document(format!("{url} has no jwks_uri")))?;
            // The same rule as a configured one: keys never come in clear text from elsewhere.
            if !sluice_schemas::loader::is_trusted_url(uri) {
                return Err(FetchError::Document(format!(
                    "{url} names a jwks_uri that is not https:// ({uri})"
                )));
            }
            uri.to_owned()
        }
    };
    let doc = get_json(http, &uri).await?;
    let listed = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| FetchError::Document(format!("{uri} has no `keys` array")))?;
    let mut keys = Vec::new();
    for raw in listed {
        if keys.len() == max_keys {
            warn!(
                issuer,
                max_keys,
                "The key set holds more keys than auth.oidc.jwks_max_keys; the rest are ignored."
            );
            break;
        }
        // A key of a type this build cannot read is skipped, not a reason to drop the set.
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            continue;
        };
        if let Some(key) = usable(&jwk, raw.clone()) {
            keys.push(Arc::new(key));
        }
    }
    Ok(KeySet { keys, loaded: true })
}

/// A signing key with a public-key algorithm; never a symmetric (`oct`) key, never an
/// encryption key.
fn usable(jwk: &Jwk, published: serde_json::Value) -> Option<Key> {
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return None;
    }
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(signing_algorithm(a)?),
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    if alg.is_some_and(|a| a.family() != key.family()) {
        return None;
    }
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
        published,
    })
}

/// The JWS algorithm a JWK's `alg` names; `None` for HMAC and encryption algorithms.
fn signing_algorithm(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
