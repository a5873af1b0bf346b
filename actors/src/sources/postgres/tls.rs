//! TLS for PostgreSQL replicas, with libpq's `sslmode` meanings.
//!
//! | `sslmode` | encrypted | certificate checked |
//! | --- | --- | --- |
//! | `disable` | no | — |
//! | `prefer` (default) | if the server offers it | no |
//! | `require` | yes | no; against `sslrootcert` if given (as libpq) |
//! | `verify-ca` | yes | chain to a trusted root, any host name |
//! | `verify-full` | yes | chain and host name |
//!
//! `sslrootcert` is a PEM file of trusted roots, or `system` for the operating system's store
//! (also the default of the verifying modes). tokio-postgres itself only knows `disable`,
//! `prefer` and `require`, so the connector reads `sslmode` and `sslrootcert` off the URL
//! and hands tokio-postgres the rest.

use std::sync::Arc;

use super::executor::Canceller;
use deadpool_postgres::Manager;
use futures::FutureExt;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sluice_planner::redact::with_causes;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Result, SourceError};

/// How a replica's connections are secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when offered, unverified.
    Prefer,
    /// TLS always, unverified (or against `sslrootcert` when given).
    Require,
    /// TLS, chain verified, host name not.
    VerifyCa,
    /// TLS, chain and host name verified.
    VerifyFull,
}

impl TlsMode {
    /// libpq's name for it.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "disable" => Self::Disable,
            "prefer" | "allow" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// What tokio-postgres is told.
    pub fn ssl_mode(self) -> SslMode {
        match self {
            Self::Disable => SslMode::Disable,
            Self::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        }
    }
}

/// Where trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The operating system's store.
    System,
    /// A PEM file.
    File(String),
}

/// A replica's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The mode.
    pub mode: TlsMode,
    /// `sslrootcert`, if given.
    pub roots: Option<Roots>,
}

/// A pool manager and matching canceller for `pg` with `tls`.
///
/// # Errors
/// [`SourceError::Config`] when the roots cannot be read.
pub fn manager(
    pg: tokio_postgres::Config,
    tls: &TlsSettings,
    config: deadpool_postgres::ManagerConfig,
) -> Result<(Manager, Canceller)> {
    let Some(client) = client_config(tls)? else {
        let cancel: Canceller = Arc::new(|token: tokio_postgres::CancelToken| {
            async move { token.cancel_query(NoTls).await }.boxed()
        });
        return Ok((Manager::from_config(pg, NoTls, config), cancel));
    };
    let connector = MakeRustlsConnect::new(client);
    let for_cancel = connector.clone();
    let cancel: Canceller = Arc::new(move |token: tokio_postgres::CancelToken| {
        let tls = for_cancel.clone();
        async move { token.cancel_query(tls).await }.boxed()
    });
    Ok((Manager::from_config(pg, connector, config), cancel))
}

/// Connects one client outside the pool (the health probe), with the same TLS.
///
/// # Errors
/// The connection failed; the text names no credentials.
pub async fn connect(
    pg: &tokio_postgres::Config,
    tls: &TlsSettings,
) -> std::result::Result<tokio_postgres::Client, String> {
    // The connection task lives on the runtime that probes: the query runtime.
    match client_config(tls).map_err(|e| e.to_string())? {
        None => {
            let (client, conn) = pg.connect(NoTls).await.map_err(|e| with_causes(&e))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(client)
        }
        Some(c) => {
            let (client, conn) = pg
                .connect(MakeRustlsConnect::new(c))
                .await
                .map_err(|e| with_causes(&e))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(client)
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for `tls`, or `None` for plain TCP.
fn client_config(tls: &TlsSettings) -> Result<Option<ClientConfig>> {
    let provider = provider();
    let (chain, check_name) = match (tls.mode, &tls.roots) {
        (TlsMode::Disable, _) => return Ok(None),
        (TlsMode::Prefer, _) | (TlsMode::Require, None) => (None, false),
        (TlsMode::Require | TlsMode::VerifyCa, roots) => {
            (Some(webpki(roots.as_ref(), &provider)?), false)
        }
        (TlsMode::VerifyFull, roots) => (Some(webpki(roots.as_ref(), &provider)?), true),
    };
    let verifier = Arc::new(Verifier {
        chain,
        check_name,
        algorithms: provider.signature_verification_algorithms,
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::Config(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(config))
}

fn webpki(
    roots: Option<&Roots>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>> {
    let mut store = RootCertStore::empty();
    match roots.unwrap_or(&Roots::System) {
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A root the store cannot parse is skipped, as browsers and libpq do.
                let _ = store.add(cert);
            }
        }
        Roots::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| SourceError::Config(format!("sslrootcert {path}: {e}")))?;
            for cert in certs {
                let cert =
                    cert.map_err(|e| SourceError::Config(format!("sslrootcert {path}: {e}")))?;
                store
                    .add(cert)
                    .map_err(|e| SourceError::Config(format!("sslrootcert {path}: {e}")))?;
            }
        }
    }
    if store.is_empty() {
        return Err(SourceError::Config(
            "TLS verification needs trusted roots: none were found (set sslrootcert)".to_owned(),
        ));
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(provider))
        .build()
        .map_err(|e| SourceError::Config(format!("TLS roots: {e}")))
}

/// libpq's checks of the server's certificate, on rustls.
///
/// Without `chain` (`prefer`, `require` without roots) the certificate is not checked; with it,
/// it must chain to a trusted root, and with `check_name` also name the host (`verify-full`).
/// The webpki verifier checks the chain before the name, so a name error alone means the chain
/// passed (`verify-ca`). Handshake signatures are verified in every mode.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
