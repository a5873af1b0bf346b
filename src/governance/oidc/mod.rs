//! Bearer JWTs from trusted OpenID issuers (`[auth.oidc]`): this server as an OAuth resource
//! server. A token is verified against its issuer's published keys (asymmetric algorithms
//! only, the key's own `alg` respected, `exp`/`nbf`/`iat` with a small leeway, RFC 9068
//! `typ` accepted; signatures checked by ring, see `verify`), its audience must name this server, and its claims become a caller through
//! the first rule that matches them: a role and grants, held like a key (see
//! [`KeyEntry`]), so grants, limits, usage and audit treat both alike. The token itself is
//! never logged, stored or passed on: sources keep their own credentials.
//!
//! A token whose signature was verified is remembered (by its SHA-256) until it expires or
//! for five minutes, whichever is first, so presenting it again costs a digest and a lookup;
//! the remembered answer is used only while the key that verified it is still in its issuer's
//! set.

pub(super) mod claims;
mod keyset;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_schemas::OidcConfig;

use self::keyset::{Issuer, Key};
use super::principal::KeyEntry;
use super::rules::Rule;

/// `typ` values an access token may carry (absent is accepted too): RFC 9068's, and plain JWT.
const ACCEPTED_TYP: [&str; 3] = ["at+jwt", "application/at+jwt", "JWT"];
/// How long a verified token is remembered at most.
const REMEMBER: Duration = Duration::from_secs(300);
/// The longest bearer read as a token (real access tokens are 1-4 KiB; Entra's with many
/// groups stay under 8): a longer one is refused before anything is decoded.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Claims only an ID token carries: an ID token is never an access token here, whatever its
/// audience.
const ID_TOKEN_CLAIMS: [&str; 3] = ["nonce", "at_hash", "c_hash"];

/// The one claim read before the signature is checked: which issuer's keys to check it with
/// (the rest of the payload is skipped, never built).
#[derive(serde::Deserialize)]
struct Claimed {
    iss: Option<String>,
}

/// Why a token was refused (for the audit log and the status; clients see no detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a readable JWS (an `alg` of `none` lands here: no such algorithm exists for us).
    Malformed,
    /// An algorithm not accepted, or not the one its key is for.
    Algorithm,
    /// A `typ` that is not an access token's.
    Type,
    /// No trusted issuer by that `iss`.
    UnknownIssuer,
    /// No key by that `kid` in the issuer's set, even after reading it again.
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// Past `exp`.
    Expired,
    /// Before `nbf`, or issued in the future.
    NotYetValid,
    /// `aud` names no audience of this server.
    Audience,
    /// A required claim is missing or malformed.
    Claims,
    /// The subject claim is missing.
    NoSubject,
    /// Valid, but no rule admits it (`403`).
    NoRule,
    /// Valid, but without these configured scopes (`403 insufficient_scope`).
    InsufficientScope,
    /// The issuer's keys have never been read and cannot be now (`503`).
    KeysUnavailable,
}

impl Refusal {
    /// The audit outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Malformed => "token_malformed",
            Self::Algorithm => "token_algorithm",
            Self::Type => "token_type",
            Self::UnknownIssuer => "token_unknown_issuer",
            Self::UnknownKey => "token_unknown_key",
            Self::Signature => "token_signature",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::Audience => "token_audience",
            Self::Claims => "token_claims",
            Self::NoSubject => "token_no_subject",
            Self::NoRule => "token_no_rule",
            Self::InsufficientScope => "token_insufficient_scope",
            Self::KeysUnavailable => "token_keys_unavailable",
        }
    }
}

/// The token endpoint `issuer`'s discovery document names (read as the key sets' documents are:
/// bounded, no redirects, its `issuer` exactly this one), when it is an https URL (or http on a
/// loopback host). For the web console's sign-in, whose page must be allowed to reach it.
///
/// # Errors
/// Why the document could not be read or names no usable token endpoint (for the log).
pub async fn token_endpoint(issuer: &str) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let (url, doc) = keyset::discovery(&http, issuer)
        .await
        .map_err(|e| e.to_string())?;
    match doc.get("token_endpoint").and_then(Value::as_str) {
        Some(t) if sluice_schemas::loader::is_trusted_url(t) => Ok(t.to_owned()),
        Some(t) => Err(format!(
            "{url} names a token endpoint that is not https:// ({t})"
        )),
        None => Err(format!("{url} has no token_endpoint")),
    }
}

/// Whether a presented bearer has the shape of a JWS (three base64url parts): only such
/// bearers are tried as tokens, and only others as API keys.
pub fn is_jws(bearer: &str) -> bool {
    let mut parts = bearer.split('.');
    let shaped = |p: Option<&str>, may_be_empty: bool| {
        p.is_some_and(|p| {
            (may_be_empty || !p.is_empty())
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    };
    shaped(parts.next(), false)
        && shaped(parts.next(), false)
        && shaped(parts.next(), true)
        && parts.next().is_none()
}

/// A token verified once: what it is good for, while its key stays in the set.
struct Verified {
    issuer: usize,
    key: Arc<Key>,
    /// `exp`, seconds since the epoch.
    exp: u64,
    answer: Result<Arc<KeyEntry>, Refusal>,
}

/// The issuers, their keys and the rules of one server.
pub struct Oidc {
    issuers: Vec<Arc<Issuer>>,
    rules: Vec<Rule>,
    scopes: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway_secs: u64,
    verified: moka::sync::Cache<[u8; 32], Arc<Verified>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuers", &self.issuers.len())
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// The issuers of `config` (keys not read yet: see [`Oidc::start`]).
    ///
    /// # Errors
    /// The HTTP client cannot be built, or no JWT backend is compiled in.
    pub fn new(
        config: &OidcConfig,
        resource: Option<&str>,
        scopes: &[String],
        runtime: &tokio::runtime::Handle,
    ) -> Result<Arc<Self>, String> {
        if !verify::install() {
            tracing::warn!(
                "Another JWT crypto provider was installed first; token signatures are verified by it, not ring."
            );
        }
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err("no JWT signature backend is compiled in".into());
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("the HTTP client for key sets: {e}"))?;
        let min_refetch = Duration::from_millis(config.jwks_min_refetch_ms);
        let issuers = config
            .issuers
            .iter()
            .map(|i| {
                let audiences = if i.audiences.is_empty() {
                    resource.map(str::to_owned).into_iter().collect()
                } else {
                    i.audiences.clone()
                };
                Arc::new(Issuer::new(
                    i.clone(),
                    audiences,
                    config.jwks_max_keys,
                    min_refetch,
                    http.clone(),
                    runtime.clone(),
                ))
            })
            .collect();
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| a.parse::<Algorithm>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("auth.oidc.algorithms: {e}"))?;
        if algorithms
            .iter()
            .any(|a| a.family() == jsonwebtoken::AlgorithmFamily::Hmac)
        {
            return Err("auth.oidc.algorithms: HMAC algorithms are never accepted".into());
        }
        Ok(Arc::new(Self {
            issuers,
            rules: config.rules.iter().cloned().map(Rule::new).collect(),
            scopes: scopes.to_vec(),
            algorithms,
            leeway_secs: config.leeway_ms.div_ceil(1000),
            verified: moka::sync::Cache::builder()
                .max_capacity(config.token_cache_entries)
                .time_to_live(REMEMBER)
                .build(),
        }))
    }

    /// Reads every issuer's keys once now, then keeps them fresh on `runtime`: every
    /// `refresh`, or every `retry` while a set has never been read.
    pub async fn start(
        self: &Arc<Self>,
        refresh: Duration,
        retry: Duration,
        runtime: &tokio::runtime::Handle,
    ) {
        futures::future::join_all(self.issuers.iter().map(|i| i.refresh("start"))).await;
        for issuer in &self.issuers {
            let weak = Arc::downgrade(issuer);
            runtime.spawn(async move {
                loop {
                    let wait = match weak.upgrade() {
                        Some(i) if i.loaded() => refresh,
                        Some(_) => retry,
                        None => return,
                    };
                    tokio::time::sleep(wait).await;
                    let Some(issuer) = weak.upgrade() else { return };
                    issuer.refresh("interval").await;
                }
            });
        }
    }

    /// The issuers, for Protected Resource Metadata.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.iter().map(|i| i.config.issuer.as_str())
    }

    /// The caller a token stands for.
    ///
    /// # Errors
    /// Why it is refused.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<KeyEntry>, Refusal> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refusal::Malformed);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(v) = self.verified.get(&digest) {
            if self.issuers[v.issuer].keys.load().holds(&v.key) {
                if now() > v.exp.saturating_add(self.leeway_secs) {
                    self.verified.invalidate(&digest);
                    return Err(Refusal::Expired);
                }
                return v.answer.clone();
            }
            // Its key is gone from the set (or the set was read again): verify afresh.
            self.verified.invalidate(&digest);
        }
        let verified = self.verify(token).await?;
        let answer = verified.answer.clone();
        self.verified.insert(digest, Arc::new(verified));
        answer
    }

    async fn verify(&self, token: &str) -> Result<Verified, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        if !self.algorithms.contains(&header.alg) {
            return Err(Refusal::Algorithm);
        }
        if let Some(typ) = &header.typ
            && !ACCEPTED_TYP.iter().any(|t| t.eq_ignore_ascii_case(typ))
        {
            return Err(Refusal::Type);
        }
        // Which issuer's keys to check it with: the claimed `iss` (checked again, signed,
        // below).
        let claimed: Claimed = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| Refusal::Malformed)?;
        let (index, issuer) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| Some(i.config.issuer.as_str()) == claimed.iss.as_deref())
            .ok_or(Refusal::UnknownIssuer)?;
        let key = issuer
            .key(header.kid.as_deref(), header.alg)
            .await
            .map_err(|()| Refusal::KeysUnavailable)?
            .ok_or(Refusal::UnknownKey)?;
        if key.alg.is_some_and(|a| a != header.alg) || key.key.family() != header.alg.family() {
            return Err(Refusal::Algorithm);
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&issuer.config.issuer]);
        validation.set_audience(&issuer.audiences);
        let claims = jsonwebtoken::decode::<Value>(token, &key.key, &validation)
            .map_err(|e| refusal_of(e.kind()))?
            .claims;
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or(Refusal::Claims)?;
        if ID_TOKEN_CLAIMS.iter().any(|c| claims.get(c).is_some()) {
            return Err(Refusal::Type);
        }
        if let Some(iat) = claims.get("iat") {
            let iat = iat.as_f64().ok_or(Refusal::Claims)?;
            if iat > (now().saturating_add(self.leeway_secs)) as f64 {
                return Err(Refusal::NotYetValid);
            }
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let exp = exp.max(0.0) as u64;
        let answer = self.caller(issuer, &claims, exp);
        Ok(Verified {
            issuer: index,
            key,
            exp,
            answer,
        })
    }

    /// The caller verified `claims` stand for, by the first rule that admits them.
    fn caller(&self, issuer: &Issuer, claims: &Value, exp: u64) -> Result<Arc<KeyEntry>, Refusal> {
        let iss = issuer.config.issuer.as_str();
        let subject = claims::at(claims, &issuer.config.subject_claim)
            .and_then(claims::text)
            .ok_or(Refusal::NoSubject)?;
        // Scopes first: a client lacking one is told so (and can ask for it) before anything
        // else is decided.
        let held = claims::scopes(claims);
        if self.scopes.iter().any(|s| !held.contains(s)) {
            return Err(Refusal::InsufficientScope);
        }
        let rule = self
            .rules
            .iter()
            .find(|r| r.admits(iss, claims))
            .ok_or(Refusal::NoRule)?;
        Ok(rule.caller(iss, subject, Some(exp), claims))
    }
}

/// Where a resource's Protected Resource Metadata is (RFC 9728 §3.1): the well-known path
/// between the host and the resource's own path.
pub fn metadata_url(resource: &str) -> Option<String> {
    let url = url::Url::parse(resource).ok()?;
    let host = url.host_str()?;
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let path = url.path().trim_end_matches('/');
    Some(format!(
        "{}://{host}{port}/.well-known/oauth-protected-resource{path}",
        url.scheme()
    ))
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn refusal_of(kind: &ErrorKind) -> Refusal {
    match kind {
        ErrorKind::InvalidSignature => Refusal::Signature,
        ErrorKind::ExpiredSignature => Refusal::Expired,
        ErrorKind::ImmatureSignature => Refusal::NotYetValid,
        ErrorKind::InvalidAudience => Refusal::Audience,
        ErrorKind::InvalidIssuer => Refusal::UnknownIssuer,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => Refusal::Algorithm,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => Refusal::Claims,
        _ => Refusal::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_jws_shapes_are_tokens() {
        assert!(is_jws("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        // `alg: none` has an empty signature: still a token, refused as one.
        assert!(is_jws("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."));
        assert!(!is_jws(&format!(
            "sluice_key_0123456789ab_{}",
            "0".repeat(64)
        )));
        assert!(!is_jws("a.b"));
        assert!(!is_jws("a.b.c.d"));
        assert!(!is_jws(".b.c"));
        assert!(!is_jws("a=.b.c"));
        assert!(!is_jws(""));
    }

    #[test]
    fn metadata_urls() {
        assert_eq!(
            metadata_url("https://sluice.example.com").as_deref(),
            Some("https://sluice.example.com/.well-known/oauth-protected-resource")
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:8080/mcp").as_deref(),
            Some("http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(metadata_url("not a url"), None);
    }
}
