//! TLS for the listeners (`[server.tls]`), on the rustls (ring) reqwest already brings: the
//! certificate is re-read when its files change, so a rotated certificate is served to the
//! connections made after it without a restart (a pair that does not load, or whose key does
//! not match, keeps the one in use and says so in the log); client certificates are verified
//! against `client_ca_path`, and required with `require_client_cert`. Protocol-neutral: any
//! door with its own listener takes the same [`ServerConfig`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::RootCertStore;
pub use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use sluice_schemas::TlsConfig;
use tracing::{info, warn};
use x509_cert::der::asn1::{Ia5StringRef, ObjectIdentifier, PrintableStringRef, Utf8StringRef};
use x509_cert::der::{Decode as _, Tag, Tagged as _};

use crate::governance::PeerCertificate;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file's contents are not usable.
    #[error("{path}: {message}")]
    Unusable {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the setup.
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn unusable(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::Unusable {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// The certificate chain and key of `cert_pem`/`key_pem`, checked to belong together.
fn certified(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable(cert_path, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(unusable(cert_path, "holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| unusable(key_path, format!("not a PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| unusable(key_path, format!("does not fit the certificate: {e}")))
}

/// The certificate in use, swapped whole when the files change.
#[derive(Debug)]
struct Current {
    key: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.load_full())
    }
}

/// The rustls config `tls` describes, and a task on `runtime` that re-reads the certificate
/// every `reload_check_ms` and uses it once it changed and loads.
///
/// # Errors
/// Unreadable or unusable files.
pub fn server_config(
    tls: &TlsConfig,
    runtime: &tokio::runtime::Handle,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let mut seen = (read(&tls.cert_path)?, read(&tls.key_path)?);
    let first = certified(&tls.cert_path, &seen.0, &tls.key_path, &seen.1, &provider)?;
    let current = Arc::new(Current {
        key: ArcSwap::from_pointee(first),
    });
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca_path {
        Some(ca_path) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&read(ca_path)?) {
                let cert = cert.map_err(|e| unusable(ca_path, format!("not PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| unusable(ca_path, format!("not a CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(unusable(ca_path, "holds no certificate"));
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let verifier = if tls.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| unusable(ca_path, e.to_string()))?,
            )
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_cert_resolver(Arc::clone(&current) as _);
    let (cert_path, key_path) = (tls.cert_path.clone(), tls.key_path.clone());
    let every = Duration::from_millis(tls.reload_check_ms);
    let watched = Arc::downgrade(&current);
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(current) = watched.upgrade() else {
                return;
            };
            let (Ok(cert), Ok(key)) = (read(&cert_path), read(&key_path)) else {
                continue;
            };
            if (&cert, &key) == (&seen.0, &seen.1) {
                continue;
            }
            match certified(&cert_path, &cert, &key_path, &key, &provider) {
                Ok(pair) => {
                    current.key.store(Arc::new(pair));
                    info!(cert = %cert_path.display(), "TLS certificate reloaded.");
                    seen = (cert, key);
                }
                // Half-written (the key replaced before the certificate): try again on the
                // next tick, when both may be in place.
                Err(e) => warn!(error = %e, "TLS certificate changed but does not load; serving the previous one."),
            }
        }
    });
    Ok(config)
}

const CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const O: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const OU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");

/// What the rules see of a verified client certificate (its end-entity certificate, DER):
/// the subject and issuer names and the subject's `cn`, `o` and `ou` values.
pub fn peer_certificate(der: &[u8]) -> Option<PeerCertificate> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    let mut parts: [(&str, Vec<serde_json::Value>); 3] =
        [("cn", vec![]), ("o", vec![]), ("ou", vec![])];
    for rdn in tbs.subject.0.iter() {
        for atv in rdn.0.iter() {
            let text = match atv.value.tag() {
                Tag::Utf8String => Utf8StringRef::try_from(&atv.value).ok().map(|s| s.as_str()),
                Tag::PrintableString => PrintableStringRef::try_from(&atv.value)
                    .ok()
                    .map(|s| s.as_str()),
                Tag::Ia5String => Ia5StringRef::try_from(&atv.value).ok().map(|s| s.as_str()),
                _ => None,
            };
            let Some(text) = text else { continue };
            let slot = match atv.oid {
                oid if oid == CN => 0,
                oid if oid == O => 1,
                oid if oid == OU => 2,
                _ => continue,
            };
            parts[slot]
                .1
                .push(serde_json::Value::String(text.to_owned()));
        }
    }
    let subject = tbs.subject.to_string();
    let issuer = tbs.issuer.to_string();
    let mut claims = serde_json::Map::new();
    for (name, values) in parts {
        match values.len() {
            0 => {}
            1 => {
                claims.insert(
                    name.to_owned(),
                    values.into_iter().next().unwrap_or_default(),
                );
            }
            _ => {
                claims.insert(name.to_owned(), serde_json::Value::Array(values));
            }
        }
    }
    claims.insert("subject".to_owned(), subject.clone().into());
    claims.insert("issuer".to_owned(), issuer.clone().into());
    Some(PeerCertificate {
        subject,
        issuer,
        claims: serde_json::Value::Object(claims),
    })
}

/// At each new connection: the client's verified certificate, kept with the connection so
/// every request on it carries it (`web::client`).
pub fn on_connect(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    type Stream = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let Some(tls) = conn.downcast_ref::<Stream>() else {
        return;
    };
    let (_, session) = tls.get_ref();
    if let Some(peer) = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|der| peer_certificate(der))
    {
        ext.insert(Arc::new(peer));
    }
}
