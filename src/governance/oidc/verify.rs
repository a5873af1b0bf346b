//! Token signatures verified by ring, the crypto rustls already uses here, as jsonwebtoken's
//! crypto provider: its RSA and ECDSA verification is 3-4x faster than the pure-Rust backend's
//! (`benches/RESULTS.md`: RS256 first sight 55 µs there). Only verification is ring's; signing
//! (which Sluice never does outside tests) and JWK helpers stay the pure-Rust backend's.
//! ring also refuses RSA moduli under 2048 bits.

use std::sync::OnceLock;

use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{Error, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use ring::signature as ring_sig;

/// A public key as ring reads it.
enum PublicKey {
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An RSA key as PKCS#1 DER, an uncompressed EC point, or an Ed25519 key.
    Bytes(Vec<u8>),
}

struct RingVerifier {
    alg: Algorithm,
    key: PublicKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), Error> {
        use ring_sig::VerificationAlgorithm;
        let scheme: &'static dyn VerificationAlgorithm = match self.alg {
            Algorithm::ES256 => &ring_sig::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &ring_sig::ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDSA => &ring_sig::ED25519,
            _ => return self.verify_rsa(msg, signature),
        };
        match &self.key {
            PublicKey::Bytes(point) => ring_sig::UnparsedPublicKey::new(scheme, point)
                .verify(msg, signature)
                .map_err(|_| Error::new()),
            PublicKey::Rsa { .. } => Err(Error::new()),
        }
    }
}

impl RingVerifier {
    fn verify_rsa(&self, msg: &[u8], signature: &[u8]) -> std::result::Result<(), Error> {
        let params: &'static ring_sig::RsaParameters = match self.alg {
            Algorithm::RS256 => &ring_sig::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &ring_sig::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &ring_sig::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &ring_sig::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &ring_sig::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &ring_sig::RSA_PSS_2048_8192_SHA512,
            _ => return Err(Error::new()),
        };
        match &self.key {
            PublicKey::Rsa { n, e } => ring_sig::RsaPublicKeyComponents { n, e }
                .verify(params, msg, signature)
                .map_err(|_| Error::new()),
            PublicKey::Bytes(der) => ring_sig::UnparsedPublicKey::new(params, der)
                .verify(msg, signature)
                .map_err(|_| Error::new()),
        }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// A verifier for `alg` with `key`; HMAC, and a key of another family than the algorithm's,
/// are refused here too.
fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let family = alg.family();
    if family == AlgorithmFamily::Hmac || key.family() != family {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let key = match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => PublicKey::Rsa {
            n: n.clone(),
            e: e.clone(),
        },
        DecodingKeyKind::SecretOrDer(bytes) => PublicKey::Bytes(bytes.clone()),
    };
    Ok(Box::new(RingVerifier { alg: *alg, key }))
}

/// The process's provider: ring verifies, the pure-Rust backend does the rest.
pub fn provider() -> &'static CryptoProvider {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let rust = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
        CryptoProvider {
            signer_factory: rust.signer_factory,
            verifier_factory: verifier,
            key_utils: rust.key_utils.clone(),
        }
    })
}

/// Makes ring the verifier of this process; true when it is (false when another provider was
/// installed, or used, first: then that one verifies, correctly but slower).
pub fn install() -> bool {
    let ours = provider();
    let _ = ours.install_default();
    CryptoProvider::try_get_default().is_some_and(|p| std::ptr::eq(p, ours))
}
