//! Key-pair login: the RS256 JWT Snowflake's `SNOWFLAKE_JWT` authenticator reads.
//!
//! The key is a PKCS#8 PEM, plain or encrypted (PBES2, including the DES-EDE3 keys that
//! `openssl pkcs8 -topk8 -v2 des3` makes) with a passphrase from the environment. The token's
//! issuer carries the SHA-256 fingerprint of the public key, as Snowflake's
//! `RSA_PUBLIC_KEY_FP` shows it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::PrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::sha2::{Digest, Sha256};
use rsa::signature::{SignatureEncoding, Signer};

use crate::error::{Result, SourceError};

/// How long a token is valid; Snowflake accepts at most an hour.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// A private key ready to sign login tokens.
pub struct KeyPair {
    signing: SigningKey<Sha256>,
    fingerprint: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Reads a PKCS#8 PEM key; `passphrase` decrypts an encrypted one.
    ///
    /// # Errors
    /// [`SourceError::Config`] naming what is wrong (not PKCS#8, encrypted without a
    /// passphrase, a wrong passphrase, not RSA), never the key.
    pub fn from_pem(pem: &str, passphrase: Option<&str>) -> Result<Self> {
        let encrypted = pem.contains("BEGIN ENCRYPTED PRIVATE KEY");
        let key = match (encrypted, passphrase) {
            (true, Some(p)) => PrivateKey::from_pkcs8_encrypted_pem(pem, p).map_err(|e| {
                SourceError::Config(format!(
                    "the private key could not be decrypted (wrong passphrase?): {e}"
                ))
            })?,
            (true, None) => {
                return Err(SourceError::Config(
                    "the private key is encrypted: set private_key_passphrase_env".to_owned(),
                ));
            }
            (false, _) if pem.contains("BEGIN RSA PRIVATE KEY") => {
                return Err(SourceError::Config(
                    "the private key is PKCS#1; convert it with `openssl pkcs8 -topk8`".to_owned(),
                ));
            }
            (false, _) => PrivateKey::from_pkcs8_pem(pem).map_err(|e| {
                SourceError::Config(format!("not a PKCS#8 RSA private key in PEM: {e}"))
            })?,
        };
        let public = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| SourceError::Config(format!("the public key cannot be encoded: {e}")))?;
        let fingerprint = format!(
            "SHA256:{}",
            STANDARD.encode(Sha256::digest(public.as_bytes()))
        );
        Ok(Self {
            signing: SigningKey::new(key),
            fingerprint,
        })
    }

    /// `SHA256:<base64>` of the public key's DER.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A login token for `user` of `account`, issued at `now`.
    ///
    /// # Errors
    /// [`SourceError::Config`] if signing fails.
    pub fn token(&self, account: &str, user: &str, now: SystemTime) -> Result<String> {
        let qualified = format!("{}.{}", jwt_account(account), user.to_ascii_uppercase());
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SourceError::Config("the clock is before 1970".to_owned()))?
            .as_secs();
        let header = r#"{"alg":"RS256","typ":"JWT"}"#;
        let claims = serde_json::json!({
            "iss": format!("{qualified}.{}", self.fingerprint),
            "sub": qualified,
            "iat": iat,
            "exp": iat + TOKEN_LIFETIME.as_secs(),
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .signing
            .try_sign(signed.as_bytes())
            .map_err(|e| SourceError::Config(format!("signing the login token failed: {e}")))?;
        Ok(format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        ))
    }
}

/// The account as a JWT names it: upper case, without a region or cloud suffix
/// (`xy12345.us-east-1` → `XY12345`).
pub fn jwt_account(account: &str) -> String {
    account
        .split('.')
        .next()
        .unwrap_or(account)
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs openssl (the tool Snowflake's key-pair guide uses) with `args` in `dir`.
    fn openssl(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    #[test]
    fn plain_and_des3_encrypted_keys_sign_tokens_snowflake_can_verify() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "plain.p8",
            ],
        );
        // The common recipe: `openssl pkcs8 -topk8 -v2 des3`.
        openssl(
            d,
            &[
                "pkcs8",
                "-topk8",
                "-v2",
                "des3",
                "-in",
                "plain.p8",
                "-out",
                "enc.p8",
                "-passout",
                "pass:s3cret",
            ],
        );
        openssl(
            d,
            &["pkey", "-in", "plain.p8", "-pubout", "-out", "pub.pem"],
        );
        openssl(
            d,
            &[
                "pkey", "-in", "plain.p8", "-pubout", "-outform", "DER", "-out", "pub.der",
            ],
        );
        // Snowflake's RSA_PUBLIC_KEY_FP, as its guide computes it.
        let digest = openssl(d, &["dgst", "-sha256", "-binary", "pub.der"]);
        let expected = format!("SHA256:{}", STANDARD.encode(digest));

        let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        let plain = KeyPair::from_pem(&read("plain.p8"), None).unwrap();
        assert_eq!(plain.fingerprint(), expected);
        let enc_pem = read("enc.p8");
        assert!(enc_pem.contains("ENCRYPTED"));
        let enc = KeyPair::from_pem(&enc_pem, Some("s3cret")).unwrap();
        assert_eq!(enc.fingerprint(), expected);
        let wrong = KeyPair::from_pem(&enc_pem, Some("nope"))
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("wrong passphrase"), "{wrong}");
        let missing = KeyPair::from_pem(&enc_pem, None).unwrap_err().to_string();
        assert!(missing.contains("private_key_passphrase_env"), "{missing}");
        assert!(!format!("{enc:?}").contains("BEGIN"));

        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = enc
            .token("myorg-acct.us-east-1", "svc_sluice", now)
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let json = |p: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
        };
        assert_eq!(
            json(parts[0]),
            serde_json::json!({"alg": "RS256", "typ": "JWT"})
        );
        let claims = json(parts[1]);
        assert_eq!(claims["sub"], "MYORG-ACCT.SVC_SLUICE");
        assert_eq!(claims["iss"], format!("MYORG-ACCT.SVC_SLUICE.{expected}"));
        assert_eq!(claims["iat"], 1_800_000_000u64);
        assert_eq!(claims["exp"], 1_800_003_600u64);

        // The signature checks out with the public key, by openssl, not by this crate.
        std::fs::write(d.join("signed.txt"), format!("{}.{}", parts[0], parts[1])).unwrap();
        std::fs::write(d.join("sig.bin"), URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        let verified = openssl(
            d,
            &[
                "dgst",
                "-sha256",
                "-verify",
                "pub.pem",
                "-signature",
                "sig.bin",
                "signed.txt",
            ],
        );
        assert_eq!(String::from_utf8_lossy(&verified).trim(), "Verified OK");
    }

    #[test]
    fn pkcs1_keys_are_refused_with_the_fix() {
        let err = KeyPair::from_pem(
            "-----BEGIN RSA PRIVATE KEY-----\nMII=\n-----END RSA PRIVATE KEY-----\n",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("openssl pkcs8 -topk8"), "{err}");
    }
}
