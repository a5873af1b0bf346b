//! Sluice's client for Snowflake's driver protocol: login (password or key pair), statements,
//! polling, abort, heartbeat, token renewal, and one re-login when a session has expired.
//!
//! Sessions are pooled: a statement leases one for its whole run ([`Lease`]), and a session
//! goes back to the pool when its statement ends, so no session runs two statements at once
//! (as each official driver connection does; emulators refuse it). Logins happen as the pool
//! grows, at most about `max_concurrency` sessions. Requests that fail before Snowflake
//! answered (connection errors, timeouts, HTTP 5xx and 429) are retried with backoff within
//! the request's time budget; statements are only ever `SELECT`s, and a retried query
//! request keeps its request id, so Snowflake runs it once.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sluice_planner::federation::{ErrorClass, RemoteError};
use url::Url;

use super::auth::KeyPair;
use super::protocol::{Envelope, ErrorData, LoginData, QueryData};

/// Codes that mean a statement is still running: poll its result URL.
const IN_PROGRESS: [&str; 2] = ["333333", "333334"];
/// The session token expired: renew it with the master token, or log in again.
const SESSION_EXPIRED: [&str; 2] = ["390112", "390114"];
/// The session is gone (closed, or unknown to the server): log in again.
const LOGIN_AGAIN: [&str; 2] = ["390104", "390111"];
/// Attempts of one request that fails before Snowflake answered.
const ATTEMPTS: u32 = 5;
/// Between polls of a running statement.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// How Sluice logs in.
pub enum Credentials {
    /// A password, held as a secret (never in a `Debug` output, wiped on drop).
    Password(secrecy::SecretString),
    /// A key pair (`SNOWFLAKE_JWT`).
    KeyPair(Box<KeyPair>),
}

/// Where and as whom.
pub struct ClientConfig {
    /// Base URL (`https://<account>.snowflakecomputing.com`).
    pub base: Url,
    /// Account identifier.
    pub account: String,
    /// Login name.
    pub user: String,
    /// How to log in.
    pub credentials: Credentials,
    /// Warehouse.
    pub warehouse: Option<String>,
    /// Database.
    pub database: Option<String>,
    /// The session's current schema.
    pub schema: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// Bound on one HTTP request that is not a statement.
    pub request_timeout: Duration,
}

/// One logged-in session.
#[derive(Debug)]
pub struct Session {
    token: String,
    master: Option<String>,
}

/// A pooled session, leased for one statement; it returns to the pool when dropped. A
/// session replaced while leased (renewed, or logged in again) is what returns; a retired
/// one ([`Followed::retire`]) does not.
pub struct Lease {
    client: Arc<Client>,
    followed: Followed,
}

/// The leased session as seen from elsewhere (an abort sent when the statement is dropped).
#[derive(Clone)]
pub struct Followed {
    current: Arc<std::sync::Mutex<Arc<Session>>>,
    retired: Arc<std::sync::atomic::AtomicBool>,
}

impl Followed {
    fn get(&self) -> Arc<Session> {
        Arc::clone(&self.current.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Keeps the session out of the pool (it may still be running a statement being
    /// aborted) and returns it.
    pub fn retire(&self) -> Arc<Session> {
        self.retired
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.get()
    }
}

impl Lease {
    /// The session as it is now.
    pub fn session(&self) -> Arc<Session> {
        self.followed.get()
    }

    /// A handle on the leased session that follows its replacements.
    pub fn follow(&self) -> Followed {
        self.followed.clone()
    }

    fn set(&self, session: Session) {
        *self
            .followed
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(session);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self
            .followed
            .retired
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            self.client.give_back(self.session());
        }
    }
}

/// A Snowflake account, logged in on first use.
pub struct Client {
    source: String,
    http: reqwest::Client,
    config: ClientConfig,
    idle: std::sync::Mutex<Vec<Arc<Session>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("source", &self.source)
            .field("base", &self.config.base.as_str())
            .field("user", &self.config.user)
            .finish_non_exhaustive()
    }
}

/// A failed request, before it is given its class.
fn unavailable(source: &str, what: impl std::fmt::Display) -> RemoteError {
    RemoteError::new(
        source,
        ErrorClass::Unavailable,
        format!("snowflake: {what}"),
    )
}

/// Snowflake's error as the source-neutral one: its code, SQL state and message.
pub fn statement_error(
    source: &str,
    code: Option<&str>,
    sql_state: Option<&str>,
    message: &str,
) -> RemoteError {
    let class = match (code, sql_state) {
        (_, Some(s)) if s.starts_with("22") => ErrorClass::Data,
        (_, Some("57014")) | (Some("000604"), _) => ErrorClass::Cancelled,
        (Some("000630"), _) => ErrorClass::Timeout,
        (Some(c), _) if c.starts_with("390") => ErrorClass::Unavailable,
        _ => ErrorClass::Upstream,
    };
    let mut text = String::from("snowflake error");
    if let Some(c) = code {
        text.push(' ');
        text.push_str(c);
    }
    if let Some(s) = sql_state {
        text.push_str(&format!(" ({s})"));
    }
    text.push_str(": ");
    // Snowflake's messages often start with the code and state again.
    let prefix = match (code, sql_state) {
        (Some(c), Some(s)) => format!("{c} ({s}): "),
        _ => String::new(),
    };
    text.push_str(message.strip_prefix(&prefix).unwrap_or(message));
    RemoteError::new(source, class, text)
}

impl Client {
    /// A client; nothing is sent until the first request.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(source: &str, config: ClientConfig) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/snowflake"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("Sluice/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            source: source.to_owned(),
            http,
            config,
            idle: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The source name.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn url(&self, path_and_query: &str) -> Result<Url, RemoteError> {
        self.config
            .base
            .join(path_and_query)
            .map_err(|e| unavailable(&self.source, format!("bad URL {path_and_query}: {e}")))
    }

    /// Sends the request `build` makes (given the time it may take), again after what failed
    /// before Snowflake answered: connection errors and timeouts, HTTP 5xx and 429 (after
    /// their `Retry-After`), with backoff, while `budget` lasts. Returns any other response.
    async fn retrying(
        &self,
        what: &str,
        budget: Duration,
        build: impl Fn(Duration) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RemoteError> {
        let deadline = Instant::now() + budget;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let (wait, failure) = match build(left).send().await {
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                    let wait = r
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    (
                        wait,
                        unavailable(&self.source, format!("HTTP {} from {what}", r.status())),
                    )
                }
                Ok(r) => return Ok(r),
                Err(e) if e.is_connect() || e.is_timeout() => {
                    let class = if e.is_timeout() {
                        ErrorClass::Timeout
                    } else {
                        ErrorClass::Unavailable
                    };
                    let message = format!("{what} failed: {}", e.without_url());
                    (
                        None,
                        RemoteError::new(&self.source, class, format!("snowflake: {message}")),
                    )
                }
                Err(e) => {
                    return Err(unavailable(
                        &self.source,
                        format!("{what} failed: {}", e.without_url()),
                    ));
                }
            };
            let pause = wait
                .unwrap_or(Duration::from_millis(100u64 << attempt.min(6)))
                .min(Duration::from_secs(10));
            if attempt >= ATTEMPTS || Instant::now() + pause >= deadline {
                return Err(failure);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Sends one request ([`Self::retrying`]); returns the envelope of its JSON answer
    /// (Snowflake reports most errors in HTTP 200).
    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: Url,
        token: Option<&str>,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Envelope<T>, RemoteError> {
        let body = body.map(Value::to_string);
        let response = self
            .retrying(url.path(), timeout, |left| {
                let mut request = self.http.request(method.clone(), url.clone()).timeout(left);
                if let Some(t) = token {
                    request = request.header(AUTHORIZATION, format!("Snowflake Token=\"{t}\""));
                }
                if let Some(b) = &body {
                    request = request
                        .header(CONTENT_TYPE, "application/json")
                        .body(b.clone());
                }
                request
            })
            .await?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            unavailable(
                &self.source,
                format!("reading the answer failed: {}", e.without_url()),
            )
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            RemoteError::new(
                &self.source,
                ErrorClass::Upstream,
                format!(
                    "snowflake answered HTTP {status} to {} with what is not its protocol: {e}",
                    url.path()
                ),
            )
        })
    }

    /// Logs in.
    async fn login(&self) -> Result<Session, RemoteError> {
        let c = &self.config;
        let mut url = self.url("/session/v1/login-request")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("request_id", &uuid::Uuid::new_v4().to_string());
            if let Some(d) = &c.database {
                q.append_pair("databaseName", d);
            }
            if let Some(s) = &c.schema {
                q.append_pair("schemaName", s);
            }
            if let Some(w) = &c.warehouse {
                q.append_pair("warehouse", w);
            }
            if let Some(r) = &c.role {
                q.append_pair("roleName", r);
            }
        }
        let mut data = json!({
            "CLIENT_APP_ID": "Sluice",
            "CLIENT_APP_VERSION": env!("CARGO_PKG_VERSION"),
            "ACCOUNT_NAME": c.account,
            "LOGIN_NAME": c.user,
            "SESSION_PARAMETERS": {
                "TIMEZONE": "UTC",
                "CLIENT_SESSION_KEEP_ALIVE": false,
            },
        });
        match &c.credentials {
            Credentials::Password(p) => {
                data["PASSWORD"] = json!(secrecy::ExposeSecret::expose_secret(p));
            }
            Credentials::KeyPair(k) => {
                let token = k
                    .token(&c.account, &c.user, SystemTime::now())
                    .map_err(|e| unavailable(&self.source, e))?;
                data["AUTHENTICATOR"] = json!("SNOWFLAKE_JWT");
                data["TOKEN"] = json!(token);
            }
        }
        let envelope: Envelope<Value> = self
            .send(
                reqwest::Method::POST,
                url,
                None,
                Some(&json!({ "data": data })),
                c.request_timeout,
            )
            .await?;
        if !envelope.success {
            return Err(RemoteError::new(
                &self.source,
                ErrorClass::Unavailable,
                format!(
                    "snowflake login failed: {} {}",
                    envelope.code.as_deref().unwrap_or(""),
                    envelope.message.as_deref().unwrap_or("")
                ),
            ));
        }
        let login: LoginData = envelope
            .data
            .and_then(|d| serde_json::from_value(d).ok())
            .ok_or_else(|| unavailable(&self.source, "login answered without a session"))?;
        let token = login
            .token
            .ok_or_else(|| unavailable(&self.source, "login answered without a token"))?;
        metrics::counter!(crate::metrics::SNOWFLAKE_LOGINS_TOTAL, "source" => self.source.clone())
            .increment(1);
        Ok(Session {
            token,
            master: login.master_token,
        })
    }

    /// An idle session from the pool, or a new one.
    ///
    /// # Errors
    /// Why logging in failed.
    pub async fn lease(self: &Arc<Self>) -> Result<Lease, RemoteError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let session = match idle {
            Some(s) => s,
            None => Arc::new(self.login().await?),
        };
        Ok(Lease {
            client: Arc::clone(self),
            followed: Followed {
                current: Arc::new(std::sync::Mutex::new(session)),
                retired: Arc::default(),
            },
        })
    }

    /// Returns a session to the pool.
    pub fn give_back(&self, session: Arc<Session>) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(session);
    }

    /// Replaces the leased session: renews its token with the master token when `renew`,
    /// else (or if that fails) logs in again.
    async fn replace(&self, lease: &Lease, renew: bool) -> Result<(), RemoteError> {
        let stale = lease.session();
        let renewed = match (&stale.master, renew) {
            (Some(master), true) => self.renew(&stale, master).await.ok(),
            _ => None,
        };
        let fresh = match renewed {
            Some(s) => s,
            None => self.login().await?,
        };
        lease.set(fresh);
        Ok(())
    }

    async fn renew(&self, stale: &Session, master: &str) -> Result<Session, RemoteError> {
        let mut url = self.url("/session/token-request")?;
        url.query_pairs_mut()
            .append_pair("requestId", &uuid::Uuid::new_v4().to_string());
        let envelope: Envelope<LoginData> = self
            .send(
                reqwest::Method::POST,
                url,
                Some(master),
                Some(&json!({"oldSessionToken": stale.token, "requestType": "RENEW"})),
                self.config.request_timeout,
            )
            .await?;
        let data = envelope
            .data
            .filter(|_| envelope.success)
            .ok_or_else(|| unavailable(&self.source, "token renewal refused"))?;
        let token = data
            .session_token
            .or(data.token)
            .ok_or_else(|| unavailable(&self.source, "token renewal answered without a token"))?;
        Ok(Session {
            token,
            master: data.master_token.or_else(|| stale.master.clone()),
        })
    }

    /// Sends a request on the leased session, renewing it or logging in again once if it
    /// expired.
    async fn on_session<T: DeserializeOwned>(
        &self,
        lease: &Lease,
        method: reqwest::Method,
        url: Url,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Envelope<T>, RemoteError> {
        for again in [true, false] {
            let session = lease.session();
            let envelope: Envelope<T> = self
                .send(
                    method.clone(),
                    url.clone(),
                    Some(&session.token),
                    body,
                    timeout,
                )
                .await?;
            let code = envelope.code.as_deref().unwrap_or("");
            let expired = SESSION_EXPIRED.contains(&code);
            if again && !envelope.success && (expired || LOGIN_AGAIN.contains(&code)) {
                self.replace(lease, expired).await?;
                continue;
            }
            return Ok(envelope);
        }
        Err(unavailable(
            &self.source,
            "the session expired again at once",
        ))
    }

    /// Runs `sql` to completion (polling while Snowflake reports it running) and returns its
    /// first rows and the list of further chunks. `request_id` is what [`Self::abort`]
    /// names.
    ///
    /// # Errors
    /// Snowflake's error for the statement, or why it could not be asked.
    pub async fn query(
        &self,
        lease: &Lease,
        sql: &str,
        request_id: &str,
        query_tag: &str,
        timeout: Duration,
    ) -> Result<QueryData, RemoteError> {
        let deadline = Instant::now() + timeout;
        let mut url = self.url("/queries/v1/query-request")?;
        url.query_pairs_mut().append_pair("requestId", request_id);
        let submitted = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let body = json!({
            "sqlText": sql,
            "asyncExec": false,
            "sequenceId": 1,
            "querySubmissionTime": submitted,
            "parameters": {
                "QUERY_TAG": query_tag,
                "STATEMENT_TIMEOUT_IN_SECONDS": timeout.as_secs().max(1),
            },
        });
        let mut envelope = self
            .on_session::<Value>(lease, reqwest::Method::POST, url, Some(&body), timeout)
            .await?;
        loop {
            if envelope.success {
                return self.query_data(envelope.data);
            }
            let code = envelope.code.clone();
            let data: ErrorData = envelope
                .data
                .and_then(|d| serde_json::from_value(d).ok())
                .unwrap_or_default();
            let poll = data
                .get_result_url
                .filter(|_| code.as_deref().is_some_and(|c| IN_PROGRESS.contains(&c)));
            let Some(poll) = poll else {
                return Err(statement_error(
                    &self.source,
                    code.as_deref(),
                    data.sql_state.as_deref(),
                    envelope
                        .message
                        .as_deref()
                        .unwrap_or("the statement failed"),
                ));
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RemoteError::new(
                    &self.source,
                    ErrorClass::Timeout,
                    "the snowflake statement did not finish in time",
                ));
            }
            tokio::time::sleep(POLL_EVERY.min(left)).await;
            let url = self.url(&poll)?;
            envelope = self
                .send(
                    reqwest::Method::GET,
                    url,
                    Some(&lease.session().token),
                    None,
                    left,
                )
                .await?;
            if envelope
                .code
                .as_deref()
                .is_some_and(|c| SESSION_EXPIRED.contains(&c) || LOGIN_AGAIN.contains(&c))
            {
                return Err(unavailable(
                    &self.source,
                    "the session expired while a statement ran",
                ));
            }
        }
    }

    /// The result of a finished statement again, with fresh chunk URLs.
    ///
    /// # Errors
    /// Snowflake's error, or why it could not be asked.
    pub async fn result(&self, lease: &Lease, query_id: &str) -> Result<QueryData, RemoteError> {
        let url = self.url(&format!("/queries/{query_id}/result"))?;
        let envelope = self
            .on_session::<Value>(
                lease,
                reqwest::Method::GET,
                url,
                None,
                self.config.request_timeout,
            )
            .await?;
        if !envelope.success {
            return Err(statement_error(
                &self.source,
                envelope.code.as_deref(),
                None,
                envelope.message.as_deref().unwrap_or("the result is gone"),
            ));
        }
        self.query_data(envelope.data)
    }

    fn query_data(&self, data: Option<Value>) -> Result<QueryData, RemoteError> {
        serde_json::from_value(data.unwrap_or(Value::Null)).map_err(|e| {
            RemoteError::new(
                &self.source,
                ErrorClass::Upstream,
                format!("snowflake sent a result Sluice cannot read: {e}"),
            )
        })
    }

    /// Fetches one chunk's bytes (decompressed), with the query's chunk headers or, failing
    /// those, its result key. `Ok(None)`: the URL has expired (HTTP 403), ask for the result
    /// again.
    ///
    /// # Errors
    /// Why the chunk could not be read.
    pub async fn chunk(
        &self,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<Option<bytes::Bytes>, RemoteError> {
        let response = self
            .retrying("a result chunk", self.config.request_timeout * 4, |left| {
                let mut request = self.http.get(url).timeout(left);
                for (k, v) in headers {
                    if let (Ok(k), Ok(v)) = (
                        HeaderName::from_bytes(k.as_bytes()),
                        HeaderValue::from_str(v),
                    ) {
                        request = request.header(k, v);
                    }
                }
                request
            })
            .await?;
        match response.status() {
            s if s.as_u16() == 403 => Ok(None),
            s if s.is_success() => {
                let body = response.bytes().await.map_err(|e| {
                    unavailable(
                        &self.source,
                        format!("reading a result chunk failed: {}", e.without_url()),
                    )
                })?;
                gunzip_if_needed(body).map(Some).map_err(|e| {
                    RemoteError::new(
                        &self.source,
                        ErrorClass::Upstream,
                        format!("a result chunk is not readable gzip: {e}"),
                    )
                })
            }
            s => Err(unavailable(
                &self.source,
                format!("a result chunk answered HTTP {s}"),
            )),
        }
    }

    /// Asks Snowflake to stop the statement sent with `request_id` on `session`.
    ///
    /// # Errors
    /// Why the abort could not be sent.
    pub async fn abort(
        &self,
        session: &Session,
        sql: &str,
        request_id: &str,
    ) -> Result<(), RemoteError> {
        let url = self.url("/queries/v1/abort-request")?;
        let envelope: Envelope<Value> = self
            .send(
                reqwest::Method::POST,
                url,
                Some(&session.token),
                Some(&json!({"sqlText": sql, "requestId": request_id})),
                self.config.request_timeout,
            )
            .await?;
        metrics::counter!(crate::metrics::SNOWFLAKE_ABORTS_TOTAL, "source" => self.source.clone())
            .increment(1);
        if envelope.success {
            Ok(())
        } else {
            Err(unavailable(
                &self.source,
                format!("abort refused: {}", envelope.message.unwrap_or_default()),
            ))
        }
    }

    /// Keeps a session alive (one from the pool, or a new one).
    ///
    /// # Errors
    /// Why the session could not be kept.
    pub async fn heartbeat(self: &Arc<Self>) -> Result<(), RemoteError> {
        let lease = self.lease().await?;
        let url = self.url("/session/heartbeat")?;
        let envelope = self
            .on_session::<Value>(
                &lease,
                reqwest::Method::POST,
                url,
                Some(&json!({})),
                self.config.request_timeout,
            )
            .await?;
        if envelope.success {
            Ok(())
        } else {
            Err(unavailable(
                &self.source,
                format!(
                    "heartbeat refused: {}",
                    envelope.message.unwrap_or_default()
                ),
            ))
        }
    }

    /// Ends the idle sessions.
    pub async fn close(&self) {
        let sessions = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        let Ok(url) = self.url("/session?delete=true") else {
            return;
        };
        for session in sessions {
            let _ = self
                .send::<Value>(
                    reqwest::Method::POST,
                    url.clone(),
                    Some(&session.token),
                    Some(&json!({})),
                    self.config.request_timeout,
                )
                .await;
        }
    }
}

/// Chunks may be gzip-compressed with or without saying so.
fn gunzip_if_needed(body: bytes::Bytes) -> std::io::Result<bytes::Bytes> {
    if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(body.len() * 4);
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)?;
        Ok(out.into())
    } else {
        Ok(body)
    }
}
