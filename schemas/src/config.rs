//! The TOML config of `../shared/API.md`: typed sections, each rejecting unknown keys.
//!
//! Loading (`${VAR}` expansion, `SLUICE_` overrides, collecting every error) lives in
//! [`crate::loader`]; this module only declares the shape and the defaults.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: where to listen and how bare table names resolve.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[auth]`: how clients authenticate.
    #[serde(default)]
    pub auth: AuthConfig,
    /// `[metadata]`: where keys and audit records live.
    #[serde(default)]
    pub metadata: MetadataConfig,
    /// `[limits]`: per-query and per-server limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `[cache]`: the result cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// `[mcp]`: the Model Context Protocol endpoint at `/mcp`.
    #[serde(default)]
    pub mcp: McpConfig,
    /// `[flight]`: Arrow Flight SQL on its own listener (off when absent; the embedded default
    /// serves it on a second loopback port).
    #[serde(default)]
    pub flight: Option<FlightConfig>,
    /// `[pg]`: the PostgreSQL wire protocol on its own listener (off when absent; the embedded
    /// default serves it on a third loopback port).
    #[serde(default)]
    pub pg: Option<PgConfig>,
    /// `[console]`: the web console at `/console`.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// `[spool]`: big results written to object storage as segments clients fetch directly
    /// (off when absent).
    #[serde(default)]
    pub spool: Option<SpoolConfig>,
    /// `[telemetry]`: OpenTelemetry tracing (off unless an OTLP endpoint is given).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// `[log]`: the server log's format and level.
    #[serde(default)]
    pub log: LogConfig,
    /// `[[sources]]`: every source is a catalog in SQL.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// `[[policies]]`: row filters and column masks (more can be added at run time through
    /// `/v1/policies`; these cannot be changed there).
    #[serde(default)]
    pub policies: Vec<crate::api::Policy>,
}

/// `[flight]`: Arrow Flight SQL (gRPC) for ADBC, JDBC and BI tools, with the HTTP API's
/// principals, grants, limits and audit. TLS with `[server.tls]`'s certificate when that is
/// configured. Tickets and prepared-statement handles are self-contained and signed (HMAC-SHA256
/// over the caller, the statement, its parameters and an expiry), so any server sharing the
/// secret serves a `DoGet`, and nothing is kept in memory per handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlightConfig {
    /// Address to bind, e.g. `127.0.0.1:8815`.
    pub listen: SocketAddr,
    /// Environment variable holding the signing secret (at least 32 bytes), the same on every
    /// server of a deployment. Without it each start signs with a fresh random secret, so
    /// tickets are good only on the server that issued them, until it restarts. Named but unset
    /// or too short: the server does not start.
    #[serde(default)]
    pub ticket_secret_env: Option<String>,
    /// How long a ticket or prepared-statement handle is good for after it is issued.
    #[serde(default = "default_ticket_ttl_ms")]
    pub ticket_ttl_ms: u64,
}

fn default_ticket_ttl_ms() -> u64 {
    300_000
}

impl FlightConfig {
    /// Flight on `listen`, with a per-start secret and the default ticket lifetime.
    pub fn on(listen: SocketAddr) -> Self {
        Self {
            listen,
            ticket_secret_env: None,
            ticket_ttl_ms: default_ticket_ttl_ms(),
        }
    }
}

/// `[spool]`: results written while they run as segments under a random prefix in an object
/// store, answered as a manifest of segment URLs that clients fetch directly and in parallel.
/// Only Sluice writes there (the read-only rule is about sources, not this sink). A segment is
/// short-lived: deleted when the client acknowledges the result, when it expires, or by the
/// sweeper when the server that wrote it stopped mid-query. The location is checked at start
/// (write, sign, read back, delete); a location that fails keeps the server from starting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Where segments go: `s3://bucket/prefix/`, `az://container/prefix/` or `file:///dir/`.
    pub location: String,
    /// The store's options, as a Parquet source's (`region`, `endpoint`, credentials,
    /// `max_retries`, `retry_timeout`, ...).
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
    /// A segment is closed and uploaded once its encoded size reaches this many bytes.
    #[serde(default = "default_spool_segment_bytes")]
    pub segment_bytes: u64,
    /// How long a finished result is kept (and its URLs stay valid) after it completes; a
    /// URL handed out while the result runs is good for this long from when it was made.
    #[serde(default = "default_spool_expiry_ms")]
    pub expiry_ms: u64,
    /// How clients fetch segments: `presigned` (S3 presigned URLs, Azure SAS; the default for
    /// `s3://` and `az://`) or `proxy` (through Sluice, for the principal that ran the query;
    /// the only choice for `file://`).
    #[serde(default)]
    pub retrieval: Option<SpoolRetrieval>,
    /// A client that accepts both a streamed format and the spool profile gets the stream
    /// while the result stays under this many bytes (of Arrow memory), the manifest above it.
    #[serde(default = "default_spool_threshold_bytes")]
    pub threshold_bytes: u64,
    /// The segments' format.
    #[serde(default)]
    pub format: SpoolFormat,
    /// A running result's lease is renewed every third of this; a prefix whose lease is
    /// older than this (its server stopped mid-query) is removed by any server's sweeper.
    #[serde(default = "default_spool_lease_ms")]
    pub lease_ms: u64,
    /// Spooled results one key may hold at once (running or not yet acknowledged or
    /// expired); past it a spooled query is `too_many_queries`.
    #[serde(default = "default_spool_max_results_per_key")]
    pub max_results_per_key: u32,
}

/// How clients fetch spooled segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpoolRetrieval {
    /// Presigned URLs (S3) or SAS URLs (Azure): no Sluice hop, no bucket credentials.
    Presigned,
    /// `GET /v1/queries/{id}/spool/{n}` on Sluice, for the principal that ran the query.
    Proxy,
}

/// The format of spooled segments: each segment is a whole file of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpoolFormat {
    /// An Arrow IPC stream (`application/vnd.apache.arrow.stream`).
    #[default]
    Arrow,
    /// A Parquet file (`application/vnd.apache.parquet`).
    Parquet,
}

impl SpoolFormat {
    /// The segments' media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Arrow => "application/vnd.apache.arrow.stream",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The segments' file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Arrow => "arrow",
            Self::Parquet => "parquet",
        }
    }
}

fn default_spool_segment_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_spool_expiry_ms() -> u64 {
    900_000
}
fn default_spool_threshold_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_spool_lease_ms() -> u64 {
    30_000
}
fn default_spool_max_results_per_key() -> u32 {
    16
}

/// `[console]`: the web console, one page served by the binary at `/console` (its assets are
/// compiled in; it loads nothing from another host). It signs in with an API key, or, with
/// `oidc_client_id`, through the OpenID Provider (authorization code with PKCE); every figure it
/// shows comes from the API under the caller's own grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the console (`false`: `/console` is `404`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A public client registered at the OpenID Provider for the console's sign-in (its redirect
    /// URI is `<server URL>/console/`); absent, the console offers API keys only.
    #[serde(default)]
    pub oidc_client_id: Option<String>,
    /// The provider to sign in at (one of `auth.oidc.issuers`); absent, the first of them.
    #[serde(default)]
    pub oidc_issuer: Option<String>,
    /// Scopes the console asks for (space-separated); absent, `openid` and `auth.scopes`.
    #[serde(default)]
    pub oidc_scope: Option<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            oidc_client_id: None,
            oidc_issuer: None,
            oidc_scope: None,
        }
    }
}

/// `[telemetry]`: traces of each request, its planning, its remote statements and its
/// streaming, exported over OTLP (HTTP, protobuf). Off unless `otlp_endpoint` (or the standard
/// `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) names a collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`; spans go to
    /// `<endpoint>/v1/traces`).
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The share of traces started here that are kept (0 to 1); a client's `traceparent`
    /// decides for the traces it continues (parent-based sampling).
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// `service.name` of the spans (`OTEL_SERVICE_NAME` overrides it).
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Put each remote statement's SQL on its span (`db.query.text`); off, only its hash. The
    /// text can hold literals from the query, which may be data.
    #[serde(default)]
    pub statement_text: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            sample_ratio: default_sample_ratio(),
            service_name: default_service_name(),
            statement_text: false,
        }
    }
}

fn default_sample_ratio() -> f64 {
    1.0
}

fn default_service_name() -> String {
    "sluice".to_owned()
}

/// `[log]`: the server log on stderr. The level can be changed while serving
/// (`PUT /v1/admin/log`, or `SIGHUP` to read it again from the config file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (one readable line per event) or `json` (one object per line).
    #[serde(default)]
    pub format: LogFormat,
    /// A level (`error`, `warn`, `info`, `debug`, `trace`) or a filter in `RUST_LOG`'s syntax
    /// (`info,sluice::http=warn`). `SLUICE_LOG` or `RUST_LOG` override it at start.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line, with stable field names.
    Json,
}

/// `[pg]`: the PostgreSQL wire protocol (v3) for psql, drivers and BI tools, read-only, with
/// the HTTP API's principals, grants, limits and audit. The password is an API key (or a
/// bearer token); the user name is informational.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgConfig {
    /// Address to bind, e.g. `127.0.0.1:5433`.
    pub listen: SocketAddr,
    /// Offer TLS (`SSLRequest`) with `[server.tls]`'s certificate. Off loopback it is required:
    /// a client that does not negotiate TLS is refused before it is asked for a password.
    #[serde(default)]
    pub tls: bool,
    /// Open connections one principal may hold; the next one is refused (SQLSTATE 53300).
    #[serde(default = "default_pg_connections_per_principal")]
    pub max_connections_per_principal: u32,
    /// A connection idle this long between statements (outside a transaction block too) is
    /// closed (SQLSTATE 57P05).
    #[serde(default = "default_pg_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
}

fn default_pg_connections_per_principal() -> u32 {
    16
}

fn default_pg_idle_timeout_ms() -> u64 {
    3_600_000
}

impl PgConfig {
    /// The door on `listen`, without TLS, with the default bounds.
    pub fn on(listen: SocketAddr) -> Self {
        Self {
            listen,
            tls: false,
            max_connections_per_principal: default_pg_connections_per_principal(),
            idle_timeout_ms: default_pg_idle_timeout_ms(),
        }
    }
}

/// `[mcp]`: what `/mcp` accepts and how much a tool result may hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// `Host` values accepted besides loopback names and the listen address (DNS-rebinding
    /// protection): the names clients use to reach this server, e.g. `"sluice.internal"` or
    /// `"sluice.internal:8080"`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s accepted besides loopback ones (`http://localhost:*` and the like);
    /// any other `Origin` is refused with `403`. Requests without `Origin` (non-browser
    /// clients) pass.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Rows the `query` tool returns when the call does not say (capped by `limits.max_rows`).
    #[serde(default = "default_mcp_max_rows")]
    pub max_rows: u64,
    /// Largest `query` result, in bytes of its compact JSON; rows past it are cut and
    /// `truncated` is set.
    #[serde(default = "default_mcp_max_result_bytes")]
    pub max_result_bytes: u64,
    /// A handshake-era session unused this long is closed (later requests get `404`).
    #[serde(default = "default_mcp_session_idle_ms")]
    pub session_idle_timeout_ms: u64,
    /// Handshake-era sessions one key may hold open at once; past it, `initialize` is refused
    /// with `429 too_many_sessions` until one ends or expires.
    #[serde(default = "default_mcp_max_sessions_per_key")]
    pub max_sessions_per_key: usize,
    /// Handshake-era sessions the server holds at once, all keys together (each idle one
    /// costs memory: see `benches/RESULTS.md`); past it, `initialize` is refused with
    /// `429 too_many_sessions`.
    #[serde(default = "default_mcp_max_sessions")]
    pub max_sessions: usize,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_rows: default_mcp_max_rows(),
            max_result_bytes: default_mcp_max_result_bytes(),
            session_idle_timeout_ms: default_mcp_session_idle_ms(),
            max_sessions_per_key: default_mcp_max_sessions_per_key(),
            max_sessions: default_mcp_max_sessions(),
        }
    }
}

fn default_mcp_max_rows() -> u64 {
    500
}

fn default_mcp_max_result_bytes() -> u64 {
    64 * 1024
}

fn default_mcp_max_sessions_per_key() -> usize {
    32
}

fn default_mcp_max_sessions() -> usize {
    1024
}

fn default_mcp_session_idle_ms() -> u64 {
    30 * 60 * 1000
}

impl Config {
    /// `auth.mode = "none"` serves anyone who can reach the socket, so it is only allowed on
    /// a loopback address. Checked on the config's own `server.listen` when it is loaded and
    /// again on the address actually bound, after `--listen` and environment overrides.
    ///
    /// # Errors
    /// The reason, when `addr` is not loopback and auth is off.
    pub fn check_auth_listen(&self, addr: std::net::SocketAddr) -> Result<(), String> {
        if self.auth.mode == AuthMode::None && !addr.ip().is_loopback() {
            return Err(format!(
                "auth.mode \"none\" is only allowed on a loopback address, not {addr}"
            ));
        }
        Ok(())
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind, `127.0.0.1:8080` by default.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Catalog (source) that bare table names resolve in.
    #[serde(default)]
    pub default_catalog: Option<String>,
    /// Schema that bare table names resolve in.
    #[serde(default)]
    pub default_schema: Option<String>,
    /// On SIGTERM/SIGINT, how long running queries may finish before the rest are cancelled
    /// (remote statements included) and the server exits.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// `[server.tls]`: HTTPS on the listener (plain HTTP when absent, the loopback default).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            default_catalog: None,
            default_schema: None,
            drain_timeout_ms: default_drain_timeout_ms(),
            tls: None,
        }
    }
}

/// `[server.tls]`: the listener's certificate (rustls), re-read when its files change so a
/// rotated certificate is served to new connections without a restart; optionally client
/// certificates. HTTP/2 is offered by ALPN beside HTTP/1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert_path: std::path::PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: std::path::PathBuf,
    /// PEM bundle of the CAs whose client certificates are accepted. With it, a client may
    /// present a certificate (it is verified against this bundle); see `require_client_cert`.
    #[serde(default)]
    pub client_ca_path: Option<std::path::PathBuf>,
    /// Refuse the TLS handshake of a client without a certificate from `client_ca_path`.
    #[serde(default)]
    pub require_client_cert: bool,
    /// How often the files are checked for a change (a new certificate is used by the
    /// connections made after it is read; a pair that does not load keeps the old one).
    #[serde(default = "default_tls_reload_ms")]
    pub reload_check_ms: u64,
}

fn default_tls_reload_ms() -> u64 {
    1_000
}

fn default_drain_timeout_ms() -> u64 {
    30_000
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `api_key` (default) or `none`.
    #[serde(default)]
    pub mode: AuthMode,
    /// Require an API key for `GET /metrics` too.
    #[serde(default)]
    pub protect_metrics: bool,
    /// How long a rotated-out secret keeps working after `rotate` (default one day).
    #[serde(default = "default_rotation_grace_ms")]
    pub rotation_grace_ms: u64,
    /// How often a server re-reads keys changed in the store (revocations, rotations and
    /// grants made through another server or the CLI take effect within this).
    #[serde(default = "default_key_sync_ms")]
    pub key_sync_ms: u64,
    /// The resource this server is, as clients and the identity provider name it (its public
    /// URL, e.g. `https://sluice.example.com`): the Protected Resource Metadata's `resource`,
    /// exactly as written, and the audience a token must carry unless the issuer lists its
    /// own `audiences`. Required with `[auth.oidc]`.
    #[serde(default)]
    pub resource: Option<String>,
    /// Scopes every bearer token must carry (in `scope` or `scp`), advertised as
    /// `scopes_supported`; a valid token without one of them gets `403 insufficient_scope`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `[auth.oidc]`: bearer JWTs from OpenID issuers, beside API keys.
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
    /// `[[auth.certificate_rules]]`: a client certificate (verified against
    /// `server.tls.client_ca_path`) on a request with no key or token makes it a caller by the
    /// first rule its subject matches; claims `cn`, `subject` (RFC 4514, e.g.
    /// `CN=svc,O=Acme`), `o`, `ou` and `issuer`. No rule matched: `403`.
    #[serde(default)]
    pub certificate_rules: Vec<AccessRule>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::default(),
            protect_metrics: false,
            rotation_grace_ms: default_rotation_grace_ms(),
            key_sync_ms: default_key_sync_ms(),
            resource: None,
            scopes: Vec::new(),
            oidc: None,
            certificate_rules: Vec::new(),
        }
    }
}

/// `[auth.oidc]`: access tokens (signed JWTs) from trusted issuers. A bearer that is a JWS is
/// checked here, one that is an API key (`sluice_...`) as a key; neither is tried as the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// `[[auth.oidc.issuers]]`: the issuers whose tokens are accepted.
    pub issuers: Vec<OidcIssuer>,
    /// `[[auth.oidc.rules]]`: claims to a role and grants; first match wins, a token matching
    /// none is refused with `403`.
    #[serde(default)]
    pub rules: Vec<AccessRule>,
    /// Signature algorithms accepted (asymmetric only: `RS256`, `RS384`, `RS512`, `PS256`,
    /// `PS384`, `PS512`, `ES256`, `ES384`, `EdDSA`); a key's own `alg`, when it names one, must
    /// agree with the token's.
    #[serde(default = "default_oidc_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    #[serde(default = "default_oidc_leeway_ms")]
    pub leeway_ms: u64,
    /// How often each issuer's key set is re-read in the background (a key the provider drops
    /// stops working within this).
    #[serde(default = "default_jwks_refresh_ms")]
    pub jwks_refresh_ms: u64,
    /// A token naming a key (`kid`) not in the cached set makes the set be re-read at most
    /// once per this interval per issuer, however many such tokens arrive.
    #[serde(default = "default_jwks_min_refetch_ms")]
    pub jwks_min_refetch_ms: u64,
    /// Keys kept per issuer (a larger set is refused, its first keys kept).
    #[serde(default = "default_jwks_max_keys")]
    pub jwks_max_keys: usize,
    /// Tokens whose signature was verified, remembered (until they expire, five minutes at
    /// most) so a client sending the same token again costs a digest and a lookup; used again
    /// only while the key that verified it is still in its issuer's set.
    #[serde(default = "default_oidc_token_cache")]
    pub token_cache_entries: u64,
}

fn default_oidc_algorithms() -> Vec<String> {
    [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ]
    .map(str::to_owned)
    .to_vec()
}
fn default_oidc_leeway_ms() -> u64 {
    30_000
}
fn default_jwks_refresh_ms() -> u64 {
    300_000
}
fn default_jwks_min_refetch_ms() -> u64 {
    10_000
}
fn default_jwks_max_keys() -> usize {
    32
}
fn default_oidc_token_cache() -> u64 {
    10_000
}

/// One trusted issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuer {
    /// Exactly the tokens' `iss` (also where discovery is read:
    /// `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// Audiences accepted: a token's `aud` must name one of them (Entra ID v2 puts the API's
    /// client id there, v1 the Application ID URI). Empty: `auth.resource`.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The key set's URL; absent, the discovery document's `jwks_uri`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The claim naming the caller (dot paths reach into objects, e.g. `ext.user`).
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
}

fn default_subject_claim() -> String {
    "sub".to_owned()
}

/// A rule from a token's claims (or a client certificate's subject) to what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// Only identities from this issuer: a token's `iss` (one of `auth.oidc.issuers`; required
    /// when more than one is), or a client certificate's issuer name (RFC 4514). Any when
    /// absent.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The claim to look at (dot paths allowed): a string or an array of strings; `scp` and
    /// `scope` are read as space-separated lists.
    pub claim: String,
    /// The value the claim must hold (or contain).
    pub value: String,
    /// `reader` (default) or `admin`.
    #[serde(default = "default_rule_role")]
    pub role: crate::api::KeyRole,
    /// Tables a reader may read (ignored for admins).
    #[serde(default)]
    pub grants: Vec<crate::api::Grant>,
    /// Operations allowed; a reader's default is query, explain and list.
    #[serde(default)]
    pub operations: Option<Vec<crate::api::Operation>>,
    /// Groups the callers it admits belong to (policies' `applies_to.groups`).
    #[serde(default)]
    pub groups: Vec<String>,
}

fn default_rule_role() -> crate::api::KeyRole {
    crate::api::KeyRole::Reader
}

fn default_rotation_grace_ms() -> u64 {
    24 * 3600 * 1000
}
fn default_key_sync_ms() -> u64 {
    1000
}

/// How clients authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// `Authorization: Bearer <key>` or `X-API-Key: <key>` on every API route.
    #[default]
    ApiKey,
    /// No authentication; refused unless the server listens on loopback.
    None,
}

/// `[metadata]`: where API keys, the audit log and usage live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    /// PostgreSQL holding keys, audit log and usage (migrations applied at start).
    #[serde(default)]
    pub postgres_url: Option<String>,
    /// Without `postgres_url`: the folder holding `keys.json` (mode 0600), `audit.jsonl` and
    /// `usage.json`. Absent too: keys live only in this process and audit records only in the
    /// log (as in the embedded default, which mints a fresh admin key on every start).
    #[serde(default)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Connections to the metadata PostgreSQL.
    #[serde(default = "default_metadata_pool_size")]
    pub pool_size: usize,
    /// How audit records are written.
    #[serde(default)]
    pub audit: AuditConfig,
    /// How often each server reads the source registry's version (sources added, changed or
    /// removed through `/v1/sources`), so a change made through one server is applied by every
    /// server sharing the store within this interval (plus the new source's first load).
    #[serde(default = "default_registry_sync_ms")]
    pub registry_sync_ms: u64,
    /// Whether sources added through `/v1/sources` may read this server's own files (a
    /// `file://` location or table path). Off: an API admin can add object stores and
    /// databases, and only the config file exposes local files.
    #[serde(default)]
    pub registry_local_files: bool,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self {
            postgres_url: None,
            data_dir: None,
            pool_size: default_metadata_pool_size(),
            audit: AuditConfig::default(),
            registry_sync_ms: default_registry_sync_ms(),
            registry_local_files: false,
        }
    }
}

fn default_registry_sync_ms() -> u64 {
    1_000
}

fn default_metadata_pool_size() -> usize {
    4
}

/// `[metadata.audit]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// What happens while the store cannot take records: `buffer` (default) keeps up to
    /// `buffer_records` in memory and refuses new queries with 503 beyond that; `reject`
    /// refuses new queries with 503 at once.
    #[serde(default)]
    pub policy: AuditPolicy,
    /// Records held in memory while the store is unreachable (and in flight otherwise).
    #[serde(default = "default_audit_buffer_records")]
    pub buffer_records: usize,
    /// Records written per batch at most.
    #[serde(default = "default_audit_batch_records")]
    pub batch_records: usize,
    /// Longest a record waits before its batch is written.
    #[serde(default = "default_audit_flush_ms")]
    pub flush_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            policy: AuditPolicy::default(),
            buffer_records: default_audit_buffer_records(),
            batch_records: default_audit_batch_records(),
            flush_ms: default_audit_flush_ms(),
        }
    }
}

fn default_audit_buffer_records() -> usize {
    100_000
}
fn default_audit_batch_records() -> usize {
    1_000
}
fn default_audit_flush_ms() -> u64 {
    100
}

/// What the audit log does while its store is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditPolicy {
    /// Hold records in memory up to the bound, then refuse new queries.
    #[default]
    Buffer,
    /// Refuse new queries while records cannot be written.
    Reject,
}

/// Rate and concurrency limits of one role (`[limits.reader]`, `[limits.admin]`); a key's own
/// limits override them. Absent fields: no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleLimits {
    /// Requests per second (token bucket refill rate).
    #[serde(default)]
    pub per_second: Option<u32>,
    /// Requests that may arrive at once (bucket size); `per_second` when absent.
    #[serde(default)]
    pub burst: Option<u32>,
    /// Queries running at once.
    #[serde(default)]
    pub max_concurrent: Option<u32>,
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Default and maximum wall time of one query.
    #[serde(default = "default_query_timeout_ms")]
    pub query_timeout_ms: u64,
    /// Default and maximum rows of one result.
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
    /// Memory all running queries may hold together (sorts spill, hash joins fail cleanly).
    #[serde(default = "default_memory_limit_bytes")]
    pub memory_limit_bytes: u64,
    /// Queries running at once; more get `429 too_many_queries`.
    #[serde(default = "default_max_concurrent_queries")]
    pub max_concurrent_queries: u32,
    /// Largest request body accepted; larger gets `413 request_too_large`.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: u64,
    /// Default limits of reader keys.
    #[serde(default = "default_reader_limits")]
    pub reader: RoleLimits,
    /// Default limits of admin keys (none unless set).
    #[serde(default)]
    pub admin: RoleLimits,
}

fn default_reader_limits() -> RoleLimits {
    RoleLimits {
        per_second: Some(100),
        burst: Some(200),
        max_concurrent: Some(16),
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            query_timeout_ms: default_query_timeout_ms(),
            max_rows: default_max_rows(),
            memory_limit_bytes: default_memory_limit_bytes(),
            max_concurrent_queries: default_max_concurrent_queries(),
            max_request_bytes: default_max_request_bytes(),
            reader: default_reader_limits(),
            admin: RoleLimits::default(),
        }
    }
}

fn default_query_timeout_ms() -> u64 {
    30_000
}
fn default_max_rows() -> u64 {
    1_000_000
}
fn default_memory_limit_bytes() -> u64 {
    2 * 1024 * 1024 * 1024
}
fn default_max_concurrent_queries() -> u32 {
    64
}
fn default_max_request_bytes() -> u64 {
    1024 * 1024
}

/// `[cache]`: the result cache. A capacity or TTL of 0 turns it off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Bytes of results kept (their Arrow IPC size; twice that for a result of at most 32 KiB, which keeps its IPC stream too).
    #[serde(default = "default_cache_capacity_bytes")]
    pub capacity_bytes: u64,
    /// How long a cached result stays valid.
    #[serde(default = "default_cache_ttl_ms")]
    pub ttl_ms: u64,
    /// The largest result kept; a bigger one streams through and is not kept.
    #[serde(default = "default_cache_max_entry_bytes")]
    pub max_entry_bytes: u64,
    /// `redis://[user:password@]host:port[/db]`: entries are also kept in this Redis, so
    /// servers behind one load balancer share hits. Unreachable, the cache is local only (a
    /// warning, never an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity_bytes: default_cache_capacity_bytes(),
            ttl_ms: default_cache_ttl_ms(),
            max_entry_bytes: default_cache_max_entry_bytes(),
            redis_url: None,
        }
    }
}

fn default_cache_max_entry_bytes() -> u64 {
    16 * 1024 * 1024
}
fn yes() -> bool {
    true
}
fn default_cache_capacity_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_cache_ttl_ms() -> u64 {
    60_000
}

/// Declares a source kind's config with the fields every kind has, written once here: its
/// name, health checks, refreshes, fallback and cache.
macro_rules! source_kind {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($body:tt)*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            /// Catalog name in SQL: lower case letters, digits and `_`.
            pub name: String,
            $($body)*
            /// How often the source is probed: a listing of its location (Parquet), or
            /// `SELECT 1` (PostgreSQL; Snowflake, where it also keeps the session alive).
            #[serde(default = "default_health_check_interval_ms")]
            pub health_check_interval_ms: u64,
            /// How often tables and columns are reloaded (new files, new tables, changed
            /// schemas); 0 reloads only on `POST /v1/sources/{name}/refresh`.
            #[serde(default = "default_refresh_interval_ms")]
            pub refresh_interval_ms: u64,
            /// A source holding the same tables (say a Parquet export of this database) that
            /// serves this source's queries when every replica is down; responses say so in
            /// `X-Sluice-Fallback`.
            #[serde(default)]
            pub fallback: Option<String>,
            /// Whether results that read this source may be kept in the result cache (`false`
            /// for a volatile source: every query reads it afresh).
            #[serde(default = "yes")]
            pub cache: bool,
        }
    };
}

/// One `[[sources]]` entry, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Parquet files on local disk, S3 or Azure Blob Storage.
    Parquet(ParquetSourceConfig),
    /// A PostgreSQL database, possibly with replicas.
    Postgres(PostgresSourceConfig),
    /// A Snowflake warehouse.
    Snowflake(SnowflakeSourceConfig),
}

impl SourceConfig {
    /// The catalog name of this source in SQL.
    pub fn name(&self) -> &str {
        match self {
            Self::Parquet(s) => &s.name,
            Self::Postgres(s) => &s.name,
            Self::Snowflake(s) => &s.name,
        }
    }

    /// The source named to serve when every replica is down.
    pub fn fallback(&self) -> Option<&str> {
        match self {
            Self::Parquet(s) => s.fallback.as_deref(),
            Self::Postgres(s) => s.fallback.as_deref(),
            Self::Snowflake(s) => s.fallback.as_deref(),
        }
    }

    /// Whether results that read this source may be cached.
    pub fn cache(&self) -> bool {
        match self {
            Self::Parquet(s) => s.cache,
            Self::Postgres(s) => s.cache,
            Self::Snowflake(s) => s.cache,
        }
    }

    /// The `kind` value as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Parquet(_) => "parquet",
            Self::Postgres(_) => "postgres",
            Self::Snowflake(_) => "snowflake",
        }
    }
}

source_kind! {
    /// `kind = "parquet"`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ParquetSourceConfig {
        /// An object_store URL: `file:///...`, `s3://bucket/prefix/`, `az://container/prefix/`,
        /// or a plain local path.
        pub location: String,
        /// Object-store options (endpoint, region, credentials, `allow_http`).
        #[serde(default)]
        pub options: std::collections::BTreeMap<String, String>,
        /// Schema the tables appear in (`public` by default).
        #[serde(default = "default_schema_name")]
        pub schema: String,
        /// Tables; when empty, every `*.parquet` file and every folder directly under `location`
        /// becomes a table named after it.
        #[serde(default)]
        pub tables: Vec<TableConfig>,
    }
}

fn default_health_check_interval_ms() -> u64 {
    10_000
}

/// The table reload interval unless configured.
pub fn default_refresh_interval_ms() -> u64 {
    60_000
}

/// The schema name object-store sources use unless configured.
pub fn default_schema_name() -> String {
    "public".to_owned()
}

/// One table of an object-store source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Table name in SQL.
    pub name: String,
    /// A file or a folder, relative to the source's location.
    pub path: String,
}

source_kind! {
    /// `kind = "postgres"`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct PostgresSourceConfig {
        /// Connection URLs of one logical database: replicas holding the same data. Each statement
        /// runs on the best healthy one; statements fail over between them.
        pub replicas: Vec<String>,
        /// Environment variable holding the password, so that it never sits in a URL; it
        /// applies to every replica (over a password a URL may carry).
        #[serde(default)]
        pub password_env: Option<String>,
        /// Statements in flight against this source at once: the pool size of each replica.
        #[serde(default = "default_source_concurrency")]
        pub max_concurrency: u32,
        /// Statements that may wait for a slot when all `max_concurrency` are busy; more are
        /// refused at once with `429 too_many_queries`.
        #[serde(default = "default_max_queued")]
        pub max_queued: u32,
        /// How long a statement waits for a slot before `503 source_unavailable`.
        #[serde(default = "default_queue_timeout_ms")]
        pub queue_timeout_ms: u64,
        /// How long opening a connection may take.
        #[serde(default = "default_pg_connect_timeout_ms")]
        pub connect_timeout_ms: u64,
        /// How long a statement waits for a free pooled connection before `source_unavailable`.
        #[serde(default = "default_pg_wait_timeout_ms")]
        pub pool_wait_timeout_ms: u64,
        /// Schemas to expose; empty: every schema the login can read (system schemas excluded).
        #[serde(default)]
        pub schemas: Vec<String>,
        /// How much of a query this source is sent.
        #[serde(default)]
        pub pushdown: Pushdown,
    }
}

/// How much of a query a remote source is sent (`pushdown` in a source's config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pushdown {
    /// The largest subtrees the source computes exactly as DataFusion: joins, aggregates,
    /// sorts, limits, set operations, window functions (the default).
    #[default]
    Full,
    /// Single-table scans with their projection, filters and limit.
    Filters,
    /// Whole tables, every column, nothing else: the reference the others are tested
    /// against.
    None,
}

impl Pushdown {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Filters => "filters",
            Self::None => "none",
        }
    }
}

fn default_pg_connect_timeout_ms() -> u64 {
    5_000
}

fn default_pg_wait_timeout_ms() -> u64 {
    5_000
}

source_kind! {
    /// `kind = "snowflake"`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct SnowflakeSourceConfig {
        /// Account identifier, `org-account`.
        pub account: String,
        /// Base URL; defaults to the account's public endpoint.
        #[serde(default)]
        pub url: Option<String>,
        /// Login name.
        pub user: String,
        /// How to log in.
        pub auth: SnowflakeAuth,
        /// Warehouse to run in.
        #[serde(default)]
        pub warehouse: Option<String>,
        /// Database whose schemas become this catalog's schemas.
        #[serde(default)]
        pub database: Option<String>,
        /// Role to assume.
        #[serde(default)]
        pub role: Option<String>,
        /// The session's current schema (what unqualified names in the session resolve to).
        #[serde(default)]
        pub schema: Option<String>,
        /// Statements in flight against this source at once; more wait their turn
        /// (warehouse protection).
        #[serde(default = "default_source_concurrency")]
        pub max_concurrency: u32,
        /// Statements that may wait for a slot when all `max_concurrency` are busy; more are
        /// refused at once with `429 too_many_queries`.
        #[serde(default = "default_max_queued")]
        pub max_queued: u32,
        /// How long a statement waits for a slot before `503 source_unavailable`.
        #[serde(default = "default_queue_timeout_ms")]
        pub queue_timeout_ms: u64,
        /// Schemas to expose (as Snowflake spells them); empty: every schema of `database`
        /// except `INFORMATION_SCHEMA`.
        #[serde(default)]
        pub schemas: Vec<String>,
        /// How much of a query this source is sent.
        #[serde(default)]
        pub pushdown: Pushdown,
        /// Result chunks fetched at once for one statement: the memory a large result holds is
        /// about this many chunks.
        #[serde(default = "default_snowflake_prefetch")]
        pub prefetch_chunks: u32,
        /// Bound on one HTTP request that is not a running statement (login, a chunk, abort).
        #[serde(default = "default_snowflake_request_timeout_ms")]
        pub request_timeout_ms: u64,
    }
}

fn default_snowflake_prefetch() -> u32 {
    4
}

fn default_snowflake_request_timeout_ms() -> u64 {
    60_000
}

/// Snowflake credentials; secrets come from files or the environment, never the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SnowflakeAuth {
    /// Key-pair (JWT) login.
    Keypair {
        /// PEM file of the private key (PKCS#8, plain or encrypted).
        private_key_path: String,
        /// Environment variable holding the passphrase of an encrypted key.
        #[serde(default)]
        private_key_passphrase_env: Option<String>,
    },
    /// Password login; the password is read from this environment variable.
    Password {
        /// Name of the environment variable holding the password.
        password_env: String,
    },
}

fn default_source_concurrency() -> u32 {
    16
}

fn default_max_queued() -> u32 {
    256
}

fn default_queue_timeout_ms() -> u64 {
    10_000
}

fn default_true() -> bool {
    true
}
