//! Identity against a real OpenID Provider (npm `oidc-provider`, started per test from
//! `scripts/oidc-provider.mjs` on a free loopback port): bearer JWTs beside API keys, their
//! refusals, key rotation at the provider, the official MCP Python SDK signing in by client
//! credentials; and TLS on the listener (openssl-made certificates, curl, pyarrow, rotation,
//! client certificates).

mod tls;
pub(crate) mod tokens;

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// One `oidc-provider` process.
pub(crate) struct Provider {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub issuer: String,
    /// The published keys' ids, the signing one first.
    pub kids: Vec<String>,
    http: reqwest::Client,
}

impl Provider {
    /// Starts a provider whose keys live in `keys` (made when missing); `None` when the test
    /// services did not install it and skipping is allowed.
    pub(crate) async fn start(keys: &Path) -> Option<Self> {
        let script = crate::needs(
            "SLUICE_TEST_OIDC_PROVIDER",
            "the OpenID Provider (npm oidc-provider)",
        )?;
        let mut child = Command::new("node")
            .arg(&script)
            .arg("--keys")
            .arg(keys)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().unwrap();
        // The ready line, then everything else it prints read and dropped for as long as it
        // runs (the provider's notices at a sign-in would otherwise meet a closed pipe and end
        // it).
        let (ready, line) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && !line.starts_with("oidc ready") {
                line.clear();
            }
            let _ = ready.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = line.await.unwrap_or_default();
        let mut words = line.split_whitespace().skip(2);
        let issuer = words
            .next()
            .unwrap_or_else(|| panic!("no ready line from the provider: {line:?}"))
            .to_owned();
        let kids = words
            .next()
            .and_then(|k| k.strip_prefix("kids="))
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect();
        Some(Self {
            child,
            issuer,
            kids,
            http: reqwest::Client::new(),
        })
    }

    /// Rotates its keys in place (the same listener, so the same issuer): `{"add_key": true}`
    /// signs with a new key from now on, the old ones still published; `{"keep": N}` drops all
    /// but the first N.
    pub(crate) async fn rotate(&mut self, how: Value) {
        let resp = self
            .http
            .post(format!("{}/_test/rotate", self.issuer))
            .json(&how)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        self.kids = body["kids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
    }

    /// An access token for `client` (`analyst`, `admin`, `nobody`) for `resource` with
    /// `scope`, by the client-credentials grant.
    pub(crate) async fn token(&self, client: &str, resource: &str, scope: &str) -> String {
        let resp = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(format!("{client}-secret")))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", scope),
            ])
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "token for {client}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `claims` signed with the provider's key `key` (or `"stray"`, one it does not publish),
    /// `header` merged into the protected header.
    pub(crate) async fn sign(&self, claims: Value, header: Value, key: &str) -> String {
        let resp = self
            .http
            .post(format!("{}/_test/sign", self.issuer))
            .json(&json!({"claims": claims, "header": header, "key": key}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    /// The published key set.
    pub(crate) async fn jwks(&self) -> Value {
        self.http
            .get(format!("{}/jwks", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` (off the actix thread) and returns its stdout; panics with its stderr when it
/// fails.
pub(crate) async fn succeeds(cmd: Command) -> String {
    let out = crate::output(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free loopback port (the resource a token is for names the server's port, so it is
/// chosen before the server starts).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
