//! The `sluice` client commands: they talk to a running server over HTTP.

pub mod keys;
pub mod mcp_config;
pub mod policies;
pub mod query;
pub mod sources;
pub mod spool;

/// Server URL used when neither `--server` nor `SLUICE_URL` is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// How a client command reaches a server: its URL, the credential it presents (an API key or
/// an OAuth access token, both as `Authorization: Bearer`), and a CA to trust for `https://`
/// besides the system's.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Server URL.
    #[arg(long, env = "SLUICE_URL", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// API key.
    #[arg(long, env = "SLUICE_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// OAuth access token (a JWT from an issuer the server trusts), instead of a key.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of a CA to trust for the server's certificate (besides the system's).
    #[arg(long, env = "SLUICE_CACERT")]
    pub cacert: Option<std::path::PathBuf>,
}

impl Connection {
    /// The base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        self.server.trim_end_matches('/')
    }

    /// What is presented: the token when given (a key given too is an error).
    ///
    /// # Errors
    /// Both a key and a token.
    pub fn credential(&self) -> Result<Option<&str>, String> {
        match (&self.key, &self.token) {
            (Some(_), Some(_)) => Err(
                "give an API key (--key, SLUICE_API_KEY) or a token (--token, SLUICE_TOKEN), not both"
                    .into(),
            ),
            (_, Some(t)) => Ok(Some(t)),
            (k, None) => Ok(k.as_deref()),
        }
    }

    /// An HTTP client trusting `--cacert` too; no overall timeout when `timeout` is `None`.
    ///
    /// # Errors
    /// An unreadable or unusable CA file.
    pub fn client(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> Result<reqwest::blocking::Client, String> {
        let mut b = reqwest::blocking::Client::builder().timeout(timeout);
        if let Some(path) = &self.cacert {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read --cacert {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("--cacert {}: not PEM certificates: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("--cacert {}: holds no certificate", path.display()));
            }
            for cert in certs {
                b = b.add_root_certificate(cert);
            }
        }
        b.build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))
    }

    /// `builder` with the credential, if any.
    ///
    /// # Errors
    /// Both a key and a token.
    pub fn authorize(
        &self,
        builder: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::RequestBuilder, String> {
        Ok(match self.credential()? {
            Some(c) => builder.bearer_auth(c),
            None => builder,
        })
    }
}

/// Sends `builder` to the server at `base`; the JSON answer, or the server's error as
/// `status code: message`.
///
/// # Errors
/// A message for the user.
pub fn send_json(
    builder: reqwest::blocking::RequestBuilder,
    base: &str,
) -> Result<serde_json::Value, String> {
    let resp = builder
        .send()
        .map_err(|e| format!("cannot reach {base}: {e}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp
        .json()
        .map_err(|e| format!("{status}: not a JSON answer: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "{} {}: {}",
            status.as_u16(),
            body["error"]["code"].as_str().unwrap_or("error"),
            body["error"]["message"].as_str().unwrap_or("")
        ));
    }
    Ok(body)
}
