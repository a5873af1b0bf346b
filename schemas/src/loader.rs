//! Turning TOML text plus the environment into a validated [`Config`].
//!
//! Order matters: the file is parsed, `${VAR}` references inside string values are expanded
//! (after parsing, so a variable can never inject TOML syntax), `SLUICE_A__B=v` overrides are
//! applied, and only then is each section deserialized and validated. Every step records
//! errors and goes on, so `sluice check` reports all of them at once.

use std::path::Path;

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use crate::config::{
    AuthConfig, CacheConfig, Config, LimitsConfig, McpConfig, MetadataConfig, ServerConfig,
    SourceConfig,
};
use crate::error::{ConfigError, ConfigErrors};

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "SLUICE_";

/// Loads `path`, expanding and overriding from the process environment.
///
/// # Errors
/// Every problem found, each with the config path it concerns.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::one(ConfigError::new(
            path.display().to_string(),
            format!("cannot read the config file: {e}"),
        ))
    })?;
    parse(&text, |name| std::env::var(name).ok(), std::env::vars())
}

/// Parses config text with an explicit environment (tests pass their own).
///
/// `lookup` resolves `${VAR}` references; `overrides` is scanned for `SLUICE_*__*` variables.
///
/// ```
/// let cfg = sluice_schemas::loader::parse(
///     "[server]\nlisten = \"127.0.0.1:${PORT}\"\n",
///     |name| (name == "PORT").then(|| "9000".to_owned()),
///     [("SLUICE_LIMITS__MAX_ROWS".to_owned(), "10".to_owned())],
/// )
/// .unwrap();
/// assert_eq!(cfg.server.listen.port(), 9000);
/// assert_eq!(cfg.limits.max_rows, 10);
/// ```
///
/// # Errors
/// Every problem found, each with the config path it concerns.
pub fn parse(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
    overrides: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigErrors> {
    let mut table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigErrors::one(ConfigError::new("", e.to_string())))?;
    let mut errors = Vec::new();
    for (key, value) in table.iter_mut() {
        expand_value(value, key, &lookup, &mut errors);
    }
    let mut overrides: Vec<_> = overrides
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
        .collect();
    overrides.sort();
    for (key, raw) in overrides {
        if let Err(e) = apply_override(&mut table, &key, &raw) {
            errors.push(e);
        }
    }
    let config = deserialize_sections(table, &mut errors);
    validate(&config, &mut errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Expands `${VAR}` and `${VAR:-default}` in every string; `$${` stands for a literal `${`.
fn expand_value(
    value: &mut Value,
    path: &str,
    lookup: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    match value {
        Value::String(s) => match expand_str(s, lookup) {
            Ok(expanded) => *s = expanded,
            Err(msg) => errors.push(ConfigError::new(path, msg)),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &format!("{path}[{i}]"), lookup, errors);
            }
        }
        Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                expand_value(v, &format!("{path}.{k}"), lookup, errors);
            }
        }
        _ => {}
    }
}

fn expand_str(input: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {input:?}"))?;
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{inner}}}` is not a valid variable reference"));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(format!("environment variable {name} is not set")),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Applies `SLUICE_SERVER__LISTEN=...`: path segments are lower-cased; inside `sources` a
/// segment is an index or a source name.
fn apply_override(root: &mut Table, key: &str, raw: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = key[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    let err = |msg: &str| ConfigError::new(key, msg.to_owned());
    if path.iter().any(String::is_empty) {
        return Err(err("empty segment in environment override"));
    }
    let value = parse_override_value(raw);
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| err("empty environment override"))?;
    let mut table = root;
    let mut segments = parents.iter();
    while let Some(seg) = segments.next() {
        let entry = table
            .entry(seg.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(t) => t,
            Value::Array(items) => {
                let sel = segments
                    .next()
                    .ok_or_else(|| err("an array needs an index or a name after it"))?;
                let found = match sel.parse::<usize>() {
                    Ok(i) => items.get_mut(i),
                    Err(_) => items.iter_mut().find(|item| {
                        item.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| n.eq_ignore_ascii_case(sel))
                    }),
                };
                match found {
                    Some(Value::Table(t)) => t,
                    _ => return Err(err(&format!("no entry `{sel}` in `{seg}`"))),
                }
            }
            _ => return Err(err(&format!("`{seg}` is not a table"))),
        };
    }
    table.insert(last.clone(), value);
    Ok(())
}

/// An override is read as a TOML value when it is one (`10`, `true`, `["a"]`), else as a string.
fn parse_override_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_owned()))
}

fn section<T: DeserializeOwned + Default>(
    table: &mut Table,
    key: &str,
    errors: &mut Vec<ConfigError>,
) -> T {
    match table.remove(key) {
        None => T::default(),
        Some(v) => v.try_into().unwrap_or_else(|e: toml::de::Error| {
            errors.push(ConfigError::new(key, e.message().to_owned()));
            T::default()
        }),
    }
}

fn deserialize_sections(mut table: Table, errors: &mut Vec<ConfigError>) -> Config {
    let server: ServerConfig = section(&mut table, "server", errors);
    let auth: AuthConfig = section(&mut table, "auth", errors);
    let metadata: MetadataConfig = section(&mut table, "metadata", errors);
    let limits: LimitsConfig = section(&mut table, "limits", errors);
    let cache: CacheConfig = section(&mut table, "cache", errors);
    let mcp: McpConfig = section(&mut table, "mcp", errors);
    let flight: Option<crate::FlightConfig> = section(&mut table, "flight", errors);
    let pg: Option<crate::PgConfig> = section(&mut table, "pg", errors);
    let console: crate::ConsoleConfig = section(&mut table, "console", errors);
    let spool: Option<crate::SpoolConfig> = section(&mut table, "spool", errors);
    let telemetry: crate::TelemetryConfig = section(&mut table, "telemetry", errors);
    let log: crate::LogConfig = section(&mut table, "log", errors);
    let policies: Vec<crate::api::Policy> = section(&mut table, "policies", errors);
    let mut sources = Vec::new();
    match table.remove("sources") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                let label = item.get("name").and_then(Value::as_str).map_or_else(
                    || format!("sources[{i}]"),
                    |n| format!("sources[{i}] ({n})"),
                );
                match item.try_into::<SourceConfig>() {
                    Ok(s) => sources.push(s),
                    Err(e) => errors.push(ConfigError::new(label, e.message().to_owned())),
                }
            }
        }
        Some(_) => errors.push(ConfigError::new(
            "sources",
            "must be an array of tables ([[sources]])",
        )),
    }
    for key in table.keys() {
        errors.push(ConfigError::new(
            key.as_str(),
            "unknown key; expected one of server, auth, metadata, limits, cache, mcp, flight, pg, console, spool, telemetry, log, sources, policies",
        ));
    }
    Config {
        server,
        auth,
        metadata,
        limits,
        cache,
        mcp,
        flight,
        pg,
        console,
        spool,
        telemetry,
        log,
        sources,
        policies,
    }
}

/// `[spool]`: a location Sluice can write, sizes and times in range, a retrieval the
/// location supports.
fn validate_spool(spool: &crate::SpoolConfig, push: &mut impl FnMut(String, String)) {
    let scheme = spool
        .location
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    let remote = match scheme.as_deref() {
        Some("s3" | "s3a" | "az" | "azure" | "abfs" | "abfss") => true,
        Some("file") => false,
        _ => {
            push(
                "spool.location".into(),
                "must be an s3://, az:// or file:// URL".into(),
            );
            true
        }
    };
    if !remote && spool.retrieval == Some(crate::SpoolRetrieval::Presigned) {
        push(
            "spool.retrieval".into(),
            "a file:// location cannot presign URLs; use proxy (the default there)".into(),
        );
    }
    if !remote && !spool.options.is_empty() {
        push(
            "spool.options".into(),
            "a file:// location takes no store options".into(),
        );
    }
    for (key, value, range, what) in [
        (
            "segment_bytes",
            spool.segment_bytes,
            1_048_576..=4_294_967_296,
            "between 1048576 (1 MiB) and 4294967296 (4 GiB)",
        ),
        (
            "expiry_ms",
            spool.expiry_ms,
            1_000..=604_800_000,
            "between 1000 (1 s) and 604800000 (7 days, the longest an S3 presigned URL lives)",
        ),
        (
            "threshold_bytes",
            spool.threshold_bytes,
            0..=4_294_967_296,
            "at most 4294967296 (4 GiB): a client that takes either is held that long in memory",
        ),
        (
            "lease_ms",
            spool.lease_ms,
            1_000..=3_600_000,
            "between 1000 (1 s) and 3600000 (an hour)",
        ),
        (
            "max_results_per_key",
            u64::from(spool.max_results_per_key),
            1..=10_000,
            "between 1 and 10000",
        ),
    ] {
        if !range.contains(&value) {
            push(format!("spool.{key}"), format!("must be {what}"));
        }
    }
}

/// `[console]`'s sign-in needs an issuer tokens are accepted from.
fn validate_console(config: &Config, push: &mut impl FnMut(String, String)) {
    let console = &config.console;
    if console.oidc_client_id.as_deref() == Some("") {
        push("console.oidc_client_id".into(), "must not be empty".into());
    }
    let wants_oidc = console.oidc_client_id.is_some()
        || console.oidc_issuer.is_some()
        || console.oidc_scope.is_some();
    match &config.auth.oidc {
        None if wants_oidc => push(
            "console.oidc_client_id".into(),
            "needs [auth.oidc]: the console signs in at one of its issuers".into(),
        ),
        Some(oidc) => {
            if let Some(iss) = &console.oidc_issuer
                && !oidc.issuers.iter().any(|i| &i.issuer == iss)
            {
                push(
                    "console.oidc_issuer".into(),
                    "must be one of auth.oidc.issuers".into(),
                );
            }
            if console.oidc_client_id.is_none() && wants_oidc {
                push(
                    "console.oidc_client_id".into(),
                    "is required for the console's OpenID sign-in".into(),
                );
            }
        }
        None => {}
    }
}

fn validate_pg(config: &Config, pg: &crate::PgConfig, push: &mut impl FnMut(String, String)) {
    if let Err(e) = config.check_auth_listen(pg.listen) {
        push("pg.listen".into(), e);
    }
    let taken = [
        Some(config.server.listen),
        config.flight.as_ref().map(|f| f.listen),
    ];
    if pg.listen.port() != 0 && taken.contains(&Some(pg.listen)) {
        push(
            "pg.listen".into(),
            "must differ from server.listen and flight.listen (the PostgreSQL protocol has its own listener)".into(),
        );
    }
    if pg.tls && config.server.tls.is_none() {
        push(
            "pg.tls".into(),
            "needs [server.tls] (its certificate and key serve this listener too)".into(),
        );
    }
    if !pg.listen.ip().is_loopback() && !pg.tls {
        push(
            "pg.tls".into(),
            format!(
                "must be true off loopback ({}): passwords are API keys",
                pg.listen
            ),
        );
    }
    if pg.max_connections_per_principal == 0 {
        push(
            "pg.max_connections_per_principal".into(),
            "must be at least 1".into(),
        );
    }
    if !(1_000..=604_800_000).contains(&pg.idle_timeout_ms) {
        push(
            "pg.idle_timeout_ms".into(),
            "must be between 1000 (1 s) and 604800000 (a week)".into(),
        );
    }
}

/// True for names usable as unquoted SQL identifiers: lower case, digits and `_`.
fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn validate_telemetry(config: &Config, push: &mut impl FnMut(String, String)) {
    let t = &config.telemetry;
    if !(0.0..=1.0).contains(&t.sample_ratio) {
        push(
            "telemetry.sample_ratio".into(),
            "must be between 0 and 1".into(),
        );
    }
    if let Some(endpoint) = &t.otlp_endpoint {
        match url::Url::parse(endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => push(
                "telemetry.otlp_endpoint".into(),
                "must be an http:// or https:// URL (the collector's OTLP/HTTP base)".into(),
            ),
        }
    }
    if t.service_name.trim().is_empty() {
        push("telemetry.service_name".into(), "must not be empty".into());
    }
    if config.log.level.trim().is_empty() {
        push(
            "log.level".into(),
            "must be a level (error, warn, info, debug, trace) or a RUST_LOG-style filter".into(),
        );
    }
}

fn validate(config: &Config, errors: &mut Vec<ConfigError>) {
    let mut push = |path: String, msg: String| errors.push(ConfigError::new(path, msg));
    validate_telemetry(config, &mut push);
    let mut names = std::collections::BTreeSet::new();
    for (i, p) in config.policies.iter().enumerate() {
        let at = format!("policies[{i}] ({})", p.name);
        for problem in policy_problems(p) {
            push(at.clone(), problem);
        }
        if !names.insert(p.name.as_str()) {
            push(at, "another policy has this name".into());
        }
    }
    if let Err(e) = config.check_auth_listen(config.server.listen) {
        push("auth.mode".into(), e);
    }
    if let Some(flight) = &config.flight {
        if let Err(e) = config.check_auth_listen(flight.listen) {
            push("flight.listen".into(), e);
        }
        if flight.listen == config.server.listen && flight.listen.port() != 0 {
            push(
                "flight.listen".into(),
                "must differ from server.listen (Flight SQL has its own listener)".into(),
            );
        }
        if !(1_000..=86_400_000).contains(&flight.ticket_ttl_ms) {
            push(
                "flight.ticket_ttl_ms".into(),
                "must be between 1000 (1 s) and 86400000 (a day)".into(),
            );
        }
        if flight
            .ticket_secret_env
            .as_deref()
            .is_some_and(|v| v.trim().is_empty())
        {
            push(
                "flight.ticket_secret_env".into(),
                "must name an environment variable (leave it out for a per-start secret)".into(),
            );
        }
    }
    if let Some(pg) = &config.pg {
        validate_pg(config, pg, &mut push);
    }
    if let Some(spool) = &config.spool {
        validate_spool(spool, &mut push);
    }
    let limits = &config.limits;
    for (key, value) in [
        ("query_timeout_ms", limits.query_timeout_ms),
        ("max_rows", limits.max_rows),
        ("memory_limit_bytes", limits.memory_limit_bytes),
        (
            "max_concurrent_queries",
            u64::from(limits.max_concurrent_queries),
        ),
        ("max_request_bytes", limits.max_request_bytes),
    ] {
        if value == 0 {
            push(format!("limits.{key}"), "must be greater than 0".into());
        }
    }
    for (role, l) in [("reader", &limits.reader), ("admin", &limits.admin)] {
        for (key, value) in [
            ("per_second", l.per_second),
            ("burst", l.burst),
            ("max_concurrent", l.max_concurrent),
        ] {
            if value == Some(0) {
                push(
                    format!("limits.{role}.{key}"),
                    "must be greater than 0 (leave it out for no limit)".into(),
                );
            }
        }
    }
    let meta = &config.metadata;
    for (key, value) in [
        ("pool_size", meta.pool_size as u64),
        ("audit.buffer_records", meta.audit.buffer_records as u64),
        ("audit.batch_records", meta.audit.batch_records as u64),
        ("audit.flush_ms", meta.audit.flush_ms),
    ] {
        if value == 0 {
            push(format!("metadata.{key}"), "must be greater than 0".into());
        }
    }
    if !(100..=60_000).contains(&config.metadata.registry_sync_ms) {
        push(
            "metadata.registry_sync_ms".into(),
            "must be between 100 and 60000".into(),
        );
    }
    if config.auth.key_sync_ms == 0 || config.auth.key_sync_ms > 5_000 {
        push(
            "auth.key_sync_ms".into(),
            "must be between 1 and 5000 (revocations must reach every server within 5 s)".into(),
        );
    }
    if let Some(url) = &config.metadata.postgres_url
        && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        push(
            "metadata.postgres_url".into(),
            "must be a postgres:// URL".into(),
        );
    }
    if let Some(url) = config.cache.redis_url.as_deref().filter(|u| !u.is_empty())
        && !url.starts_with("redis://")
    {
        push(
            "cache.redis_url".into(),
            "must be a redis:// URL (empty: no shared cache)".into(),
        );
    }
    validate_identity(config, &mut push);
    validate_console(config, &mut push);
    let mut seen = std::collections::HashSet::new();
    for (i, source) in config.sources.iter().enumerate() {
        let name = source.name();
        let at = format!("sources[{i}] ({name})");
        if !seen.insert(name) {
            push(at.clone(), "duplicate source name".into());
        }
        check_entry(
            source,
            &at,
            |fb| config.sources.iter().any(|s| s.name() == fb),
            &mut push,
        );
    }
    if let Some(cat) = &config.server.default_catalog
        && !config.sources.iter().any(|s| s.name() == cat)
    {
        push(
            "server.default_catalog".into(),
            format!("`{cat}` is not the name of a configured source"),
        );
    }
}

/// Where tokens may be fetched from and what a resource may be named: `https://`, or plain
/// `http://` to a loopback host (a provider on this machine, as in tests).
pub fn is_trusted_url(url: &str) -> bool {
    if url.starts_with("https://") {
        return url.len() > "https://".len();
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// `[auth.oidc]`, `auth.resource`, `auth.scopes` and `[server.tls]`.
fn validate_identity(config: &Config, push: &mut impl FnMut(String, String)) {
    const ASYMMETRIC: [&str; 9] = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ];
    let auth = &config.auth;
    if let Some(resource) = &auth.resource
        && !is_trusted_url(resource)
    {
        push(
            "auth.resource".into(),
            "must be this server's https:// URL (http:// only for a loopback host)".into(),
        );
    }
    if let Some(oidc) = &auth.oidc {
        if auth.mode == crate::config::AuthMode::None {
            push(
                "auth.oidc".into(),
                "needs auth.mode = \"api_key\" (with \"none\" nobody is asked for anything)".into(),
            );
        }
        if auth.resource.is_none() {
            push(
                "auth.resource".into(),
                "is required with [auth.oidc]: the resource tokens are issued for".into(),
            );
        }
        if oidc.issuers.is_empty() {
            push(
                "auth.oidc.issuers".into(),
                "must name at least one issuer".into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, issuer) in oidc.issuers.iter().enumerate() {
            let at = format!("auth.oidc.issuers[{i}]");
            if !is_trusted_url(&issuer.issuer) {
                push(
                    format!("{at}.issuer"),
                    "must be an https:// URL (http:// only for a loopback host)".into(),
                );
            }
            if !seen.insert(issuer.issuer.as_str()) {
                push(format!("{at}.issuer"), "duplicate issuer".into());
            }
            if let Some(uri) = &issuer.jwks_uri
                && !is_trusted_url(uri)
            {
                push(
                    format!("{at}.jwks_uri"),
                    "must be an https:// URL (http:// only for a loopback host)".into(),
                );
            }
            if issuer.subject_claim.is_empty() {
                push(format!("{at}.subject_claim"), "must not be empty".into());
            }
            if issuer.audiences.iter().any(String::is_empty) {
                push(
                    format!("{at}.audiences"),
                    "must not hold an empty name".into(),
                );
            }
        }
        for (i, rule) in oidc.rules.iter().enumerate() {
            let at = format!("auth.oidc.rules[{i}]");
            // With several issuers, a rule that names none would let any of them grant its
            // role: each rule says whose claims it trusts.
            if oidc.issuers.len() > 1 && rule.issuer.is_none() {
                push(
                    format!("{at}.issuer"),
                    "is required when more than one issuer is trusted".into(),
                );
            }
            if rule.claim.is_empty() || rule.value.is_empty() {
                push(at.clone(), "claim and value must not be empty".into());
            }
            if let Some(iss) = &rule.issuer
                && !oidc.issuers.iter().any(|i| &i.issuer == iss)
            {
                push(
                    format!("{at}.issuer"),
                    format!("`{iss}` is not one of auth.oidc.issuers"),
                );
            }
            if rule.operations.as_ref().is_some_and(Vec::is_empty) {
                push(
                    format!("{at}.operations"),
                    "must not be empty (leave it out for the role's default)".into(),
                );
            }
        }
        if oidc.algorithms.is_empty() {
            push("auth.oidc.algorithms".into(), "must not be empty".into());
        }
        for alg in &oidc.algorithms {
            if !ASYMMETRIC.contains(&alg.as_str()) {
                push(
                    "auth.oidc.algorithms".into(),
                    format!(
                        "`{alg}` is not accepted: only asymmetric signatures ({})",
                        ASYMMETRIC.join(", ")
                    ),
                );
            }
        }
        if oidc.leeway_ms > 300_000 {
            push(
                "auth.oidc.leeway_ms".into(),
                "must be at most 300000 (5 minutes)".into(),
            );
        }
        for (key, value) in [
            ("jwks_refresh_ms", oidc.jwks_refresh_ms),
            ("jwks_min_refetch_ms", oidc.jwks_min_refetch_ms),
            ("jwks_max_keys", oidc.jwks_max_keys as u64),
            ("token_cache_entries", oidc.token_cache_entries),
        ] {
            if value == 0 {
                push(format!("auth.oidc.{key}"), "must be greater than 0".into());
            }
        }
    } else if !auth.scopes.is_empty() {
        push(
            "auth.scopes".into(),
            "only applies to bearer tokens: configure [auth.oidc]".into(),
        );
    }
    if auth
        .scopes
        .iter()
        .any(|s| s.is_empty() || s.contains(char::is_whitespace) || s.contains('"'))
    {
        push(
            "auth.scopes".into(),
            "each scope is one word (no spaces or quotes)".into(),
        );
    }
    if !auth.certificate_rules.is_empty() && auth.mode == crate::config::AuthMode::None {
        push(
            "auth.certificate_rules".into(),
            "need auth.mode = \"api_key\" (with \"none\" nobody is asked for anything)".into(),
        );
    }
    if !auth.certificate_rules.is_empty()
        && config
            .server
            .tls
            .as_ref()
            .is_none_or(|t| t.client_ca_path.is_none())
    {
        push(
            "auth.certificate_rules".into(),
            "need server.tls.client_ca_path: only verified client certificates are read".into(),
        );
    }
    for (i, rule) in auth.certificate_rules.iter().enumerate() {
        if rule.claim.is_empty() || rule.value.is_empty() {
            push(
                format!("auth.certificate_rules[{i}]"),
                "claim and value must not be empty".into(),
            );
        }
    }
    if let Some(tls) = &config.server.tls {
        if tls.require_client_cert && tls.client_ca_path.is_none() {
            push(
                "server.tls.require_client_cert".into(),
                "needs client_ca_path: the CAs client certificates are checked against".into(),
            );
        }
        if tls.reload_check_ms == 0 {
            push(
                "server.tls.reload_check_ms".into(),
                "must be greater than 0".into(),
            );
        }
    }
}

/// One source's checks, wherever it comes from (the file, the registry): its name, its kind's
/// settings, and its fallback, which `exists` says is the name of another source.
fn check_entry(
    source: &SourceConfig,
    at: &str,
    exists: impl Fn(&str) -> bool,
    push: &mut impl FnMut(String, String),
) {
    let name = source.name();
    if !is_plain_identifier(name) {
        push(
            at.to_owned(),
            "name must be lower case letters, digits and `_`, starting with a letter".into(),
        );
    }
    validate_source(source, at, push);
    if let Some(fb) = source.fallback() {
        if fb == name {
            push(at.to_owned(), "fallback must name another source".into());
        } else if !exists(fb) {
            push(
                at.to_owned(),
                format!("fallback `{fb}` is not the name of a configured source"),
            );
        }
    }
}

fn validate_source(source: &SourceConfig, at: &str, push: &mut impl FnMut(String, String)) {
    match source {
        SourceConfig::Parquet(p) => {
            if p.location.trim().is_empty() {
                push(at.to_owned(), "location must not be empty".into());
            } else if let Some((scheme, _)) = p.location.split_once("://")
                && !matches!(
                    scheme,
                    "file" | "s3" | "s3a" | "az" | "azure" | "abfs" | "abfss"
                )
            {
                push(
                    at.to_owned(),
                    format!("location scheme `{scheme}` is not one of file, s3, az"),
                );
            }
            if p.health_check_interval_ms < 100 {
                push(
                    at.to_owned(),
                    "health_check_interval_ms must be at least 100".into(),
                );
            }
            if p.refresh_interval_ms != 0 && p.refresh_interval_ms < 1000 {
                push(
                    at.to_owned(),
                    "refresh_interval_ms must be 0 (on demand only) or at least 1000".into(),
                );
            }
            let mut names = std::collections::HashSet::new();
            for t in &p.tables {
                if !is_plain_identifier(&t.name) {
                    push(
                        format!("{at}.tables.{}", t.name),
                        "table name must be lower case letters, digits and `_`".into(),
                    );
                }
                if !names.insert(t.name.as_str()) {
                    push(format!("{at}.tables.{}", t.name), "duplicate table".into());
                }
                if t.path.trim().is_empty() {
                    push(
                        format!("{at}.tables.{}", t.name),
                        "path must not be empty".into(),
                    );
                }
            }
        }
        SourceConfig::Postgres(p) => {
            if p.replicas.is_empty() {
                push(at.to_owned(), "replicas must list at least one URL".into());
            }
            for r in &p.replicas {
                if !(r.starts_with("postgres://") || r.starts_with("postgresql://")) {
                    push(
                        at.to_owned(),
                        "every replica must be a postgres:// URL".into(),
                    );
                }
            }
            if p.replicas.len() > 64 {
                push(at.to_owned(), "at most 64 replicas".into());
            }
            if p.max_concurrency == 0 {
                push(
                    at.to_owned(),
                    "max_concurrency must be greater than 0".into(),
                );
            }
        }
        SourceConfig::Snowflake(s) => {
            if s.account.trim().is_empty() {
                push(at.to_owned(), "account must not be empty".into());
            }
            if let Some(u) = &s.url
                && url::Url::parse(u).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
            {
                push(at.to_owned(), format!("url `{u}` is not an http(s) URL"));
            }
            if s.user.trim().is_empty() {
                push(at.to_owned(), "user must not be empty".into());
            }
            for (key, value) in [
                ("max_concurrency", u64::from(s.max_concurrency)),
                ("prefetch_chunks", u64::from(s.prefetch_chunks)),
                ("request_timeout_ms", s.request_timeout_ms),
            ] {
                if value == 0 {
                    push(at.to_owned(), format!("{key} must be greater than 0"));
                }
            }
        }
    }
}

/// One source entry as the registry takes it (`POST /v1/sources`: the fields of a
/// `[[sources]]` entry, as JSON), checked as `sluice check` checks the file's: `${VAR}`
/// references expanded by `lookup` (the stored entry keeps them, so each server expands them
/// from its own environment), then deserialized and validated. `others` are the names of the
/// other sources a fallback may name.
///
/// # Errors
/// Every problem found, each with the path it concerns.
pub fn source_entry(
    raw: &serde_json::Value,
    lookup: impl Fn(&str) -> Option<String>,
    others: &[&str],
) -> Result<SourceConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let mut value = Value::try_from(raw).map_err(|e| {
        ConfigErrors::one(ConfigError::new(
            "source",
            format!("not a source entry (a JSON object without nulls): {e}"),
        ))
    })?;
    if !value.is_table() {
        return Err(ConfigErrors::one(ConfigError::new(
            "source",
            "must be a JSON object with the fields of a [[sources]] entry",
        )));
    }
    // Before anything is expanded: no answer may show what a reference expands to.
    let misplaced = stored_secrets(raw);
    if !misplaced.is_empty() {
        return Err(ConfigErrors(
            misplaced
                .into_iter()
                .map(|m| ConfigError::new("source", m))
                .collect(),
        ));
    }
    expand_value(&mut value, "source", &lookup, &mut errors);
    let source: SourceConfig = match value.try_into() {
        Ok(s) => s,
        Err(e) => {
            errors.push(ConfigError::new("source", e.message().to_owned()));
            return Err(ConfigErrors(errors));
        }
    };
    let at = format!("source ({})", source.name());
    let mut push = |path: String, msg: String| errors.push(ConfigError::new(path, msg));
    check_entry(&source, &at, |fb| others.contains(&fb), &mut push);
    if errors.is_empty() {
        Ok(source)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Secrets written into a source entry instead of named, and references in the wrong place:
///
/// - a literal value under a key that holds a secret (`*secret*`, `*password*`, `*token*`,
///   `*access_key*`, `*account_key*`, `*master_key*`, `*customer_key*`, `*sas*`, `*session*`,
///   `*private_key*`, but not `*_env`, `*_path`, `*_file`) that is not one `${VAR}` reference
///   without a default;
/// - a URL with a password (`scheme://user:password@...`, `?password=`) other than one such
///   reference in the password's place;
/// - a `${VAR}` reference anywhere else: an entry is written by an API admin, and a reference
///   in a name, a location or an endpoint would show the server's environment in answers.
pub fn stored_secrets(raw: &serde_json::Value) -> Vec<String> {
    fn is_reference(v: &str) -> bool {
        // A default (`${VAR:-value}`) is a value written into the entry.
        v.starts_with("${") && v.ends_with('}') && v.matches("${").count() == 1 && !v.contains(":-")
    }
    fn secret_key(key: &str) -> bool {
        let k = key.to_ascii_lowercase();
        let named = k.ends_with("_env") || k.ends_with("_path") || k.ends_with("_file");
        !named
            && [
                "secret",
                "password",
                "token",
                "access_key",
                "account_key",
                "master_key",
                "customer_key",
                "sas",
                "session",
                "private_key",
            ]
            .iter()
            .any(|s| k.contains(s))
    }
    /// A URL's password, if it has one (`scheme://user:password@host...`).
    fn url_password(s: &str) -> Option<&str> {
        let (_, rest) = s.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        let (userinfo, _) = authority.rsplit_once('@')?;
        userinfo.split_once(':').map(|(_, p)| p)
    }
    fn walk(key: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => {
                let password = url_password(s);
                if secret_key(key) {
                    if !is_reference(s) {
                        out.push(format!(
                            "`{key}` holds a secret: name it instead (`${{VAR}}`), so it is never stored"
                        ));
                    }
                } else if let Some(p) = password {
                    let elsewhere = s.replacen(p, "", 1).contains("${");
                    if !is_reference(p) || elsewhere {
                        out.push(format!(
                            "a URL in `{key}` holds a password: use `password_env` or a `${{VAR}}` reference as the password, so it is never stored"
                        ));
                    }
                } else if s.contains("${") {
                    out.push(format!(
                        "`{key}` names an environment variable: only secrets (and a URL's password) may, in an entry added through the API"
                    ));
                }
                if s.contains("://") && s.to_ascii_lowercase().contains("password=") {
                    out.push(format!(
                        "a URL in `{key}` holds a password parameter: use `password_env`, so it is never stored"
                    ));
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(key, item, out);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, item) in map {
                    walk(k, item, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", raw, &mut out);
    out.dedup();
    out
}

/// What is wrong with a policy's shape (its expressions are checked by the server, which can
/// parse them): a name, a three-part table glob, and a filter or a mask.
pub fn policy_problems(p: &crate::api::Policy) -> Vec<String> {
    let mut out = Vec::new();
    if p.name.is_empty()
        || p.name.len() > 128
        || !p
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        out.push("name must be 1 to 128 letters, digits, `_`, `-` or `.`".to_owned());
    }
    if p.tables.split('.').count() != 3 || p.tables.split('.').any(str::is_empty) {
        out.push("tables must be a glob over source.schema.table, e.g. pg.public.orders*".into());
    }
    if p.row_filter.is_none() && p.masks.is_empty() {
        out.push("a policy needs a row_filter or masks".into());
    }
    if p.row_filter.as_deref().is_some_and(|f| f.trim().is_empty()) {
        out.push("row_filter is empty".into());
    }
    for (column, mask) in &p.masks {
        if column.is_empty() || mask.trim().is_empty() {
            out.push(format!("mask of {column:?} is empty"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup_env = env.clone();
        parse(
            text,
            move |n| {
                lookup_env
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
            },
            env,
        )
    }

    const API_EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8080"
default_catalog = "lake"
default_schema = "public"
[auth]
mode = "api_key"
[metadata]
postgres_url = "${SLUICE_METADATA_URL}"
[limits]
query_timeout_ms = 30000
max_rows = 1000000
memory_limit_bytes = 2147483648
max_concurrent_queries = 64
[cache]
capacity_bytes = 268435456
ttl_ms = 60000
[[sources]]
name = "lake"
kind = "parquet"
location = "s3://bucket/prefix/"
options = { endpoint = "http://127.0.0.1:9000", region = "us-east-1", allow_http = "true" }
tables = [ { name = "trips", path = "trips/" } ]
[[sources]]
name = "pg"
kind = "postgres"
replicas = ["postgres://app@10.0.0.1/db", "postgres://app@10.0.0.2/db"]
password_env = "PG_PASSWORD"
max_concurrency = 16
pushdown = "full"
[[sources]]
name = "wh"
kind = "snowflake"
account = "myorg-myacct"
url = "https://myorg-myacct.snowflakecomputing.com"
user = "SVC_SLUICE"
auth = { type = "keypair", private_key_path = "${SNOWFLAKE_KEY_PATH}" }
warehouse = "COMPUTE_WH"
database = "ANALYTICS"
role = "ANALYST"
max_concurrency = 8
"#;

    #[test]
    fn api_md_example_parses() {
        let cfg = parse_with(
            API_EXAMPLE,
            &[
                ("SLUICE_METADATA_URL", "postgres://meta@localhost/sluice"),
                ("SNOWFLAKE_KEY_PATH", "/keys/sf.p8"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.sources.len(), 3);
        assert_eq!(cfg.sources[2].kind(), "snowflake");
        assert_eq!(
            cfg.metadata.postgres_url.as_deref(),
            Some("postgres://meta@localhost/sluice")
        );
    }

    #[test]
    fn reports_every_error_at_once() {
        let text = r#"
bogus = 1
[server]
listen = "127.0.0.1:1"
colour = "red"
[limits]
max_rows = 0
[[sources]]
name = "a"
kind = "parquet"
location = "ftp://x/"
[[sources]]
name = "a"
kind = "parquet"
location = "/data"
[[sources]]
name = "b"
kind = "mysql"
[[sources]]
name = "c"
kind = "postgres"
replicas = []
extra = true
"#;
        let errs = parse_with(text, &[]).unwrap_err();
        let all = errs.to_string();
        for needle in [
            "bogus",
            "unknown field `colour`",
            "limits.max_rows",
            "ftp",
            "duplicate source name",
            "unknown variant `mysql`",
            "unknown field `extra`",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert!(errs.0.len() >= 7, "{all}");
    }

    #[test]
    fn the_contracts_spool_section_parses_and_bad_ones_say_where() {
        let text = r#"
[spool]
location = "s3://results-bucket/sluice-spool/"
options = { region = "us-east-1" }
segment_bytes = 67108864
expiry_ms = 900000
retrieval = "presigned"
threshold_bytes = 268435456
"#;
        let cfg = parse_with(text, &[]).unwrap();
        let spool = cfg.spool.unwrap();
        assert_eq!(spool.retrieval, Some(crate::SpoolRetrieval::Presigned));
        assert_eq!(spool.format, crate::SpoolFormat::Arrow);
        assert_eq!(spool.max_results_per_key, 16);
        let text = r#"
[spool]
location = "file:///tmp/spool/"
retrieval = "presigned"
options = { region = "x" }
segment_bytes = 10
expiry_ms = 0
lease_ms = 10
max_results_per_key = 0
"#;
        let all = parse_with(text, &[]).unwrap_err().to_string();
        for needle in [
            "spool.retrieval",
            "spool.options",
            "spool.segment_bytes",
            "spool.expiry_ms",
            "spool.lease_ms",
            "spool.max_results_per_key",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        let all = parse_with("[spool]\nlocation = \"ftp://x/\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(all.contains("spool.location"), "{all}");
    }

    #[test]
    fn identity_configs_fail_closed() {
        let text = r#"
[server.tls]
cert_path = "/c"
key_path = "/k"
require_client_cert = true
[auth]
scopes = ["sql read"]
[auth.oidc]
algorithms = ["RS256", "HS256", "none"]
leeway_ms = 600000
[[auth.oidc.issuers]]
issuer = "http://idp.example.com"
[[auth.oidc.issuers]]
issuer = "https://login.example.com/v2.0"
jwks_uri = "http://keys.example.com/keys"
[[auth.oidc.rules]]
claim = "roles"
value = "Admin"
role = "admin"
"#;
        let errs = parse_with(text, &[]).unwrap_err();
        let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "auth.resource",
            "auth.oidc.issuers[0].issuer",
            "auth.oidc.issuers[1].jwks_uri",
            "auth.oidc.rules[0].issuer",
            "auth.oidc.algorithms",
            "auth.oidc.leeway_ms",
            "auth.scopes",
            "server.tls.require_client_cert",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
        assert_eq!(
            errs.0
                .iter()
                .filter(|e| e.path == "auth.oidc.algorithms")
                .count(),
            2,
            "HS256 and none"
        );
        let errs = parse_with(
            "[auth]\nscopes = [\"a\"]\n[[auth.certificate_rules]]\nclaim = \"cn\"\nvalue = \"x\"\n",
            &[],
        )
        .unwrap_err();
        let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["auth.scopes", "auth.certificate_rules"]);
        for ok in [
            "https://sluice.example.com",
            "http://127.0.0.1:8080",
            "http://localhost/x",
        ] {
            assert!(is_trusted_url(ok), "{ok}");
        }
        for bad in [
            "http://sluice.example.com",
            "http://127.0.0.1.evil.com/",
            "ftp://x",
            "https://",
        ] {
            assert!(!is_trusted_url(bad), "{bad}");
        }
    }

    #[test]
    fn missing_variable_is_an_error_with_its_path() {
        let errs = parse_with("[metadata]\npostgres_url = \"${NOPE}\"\n", &[]).unwrap_err();
        assert_eq!(errs.0[0].path, "metadata.postgres_url");
        assert!(errs.0[0].message.contains("NOPE"));
    }

    #[test]
    fn redis_url_is_a_redis_url_or_empty() {
        let errs = parse_with("[cache]\nredis_url = \"http://r:6379\"\n", &[]).unwrap_err();
        assert_eq!(errs.0[0].path, "cache.redis_url");
        for ok in ["", "redis://127.0.0.1:6379/0"] {
            let toml = format!("[cache]\nredis_url = \"{ok}\"\n");
            assert!(parse_with(&toml, &[]).is_ok(), "{ok}");
        }
    }

    #[test]
    fn expansion_rules() {
        let lookup = |n: &str| (n == "A").then(|| "x".to_owned());
        assert_eq!(expand_str("a${A}b", &lookup).unwrap(), "axb");
        assert_eq!(expand_str("${B:-dflt}", &lookup).unwrap(), "dflt");
        assert_eq!(expand_str("$${A} $5", &lookup).unwrap(), "${A} $5");
        assert!(expand_str("${A", &lookup).is_err());
        assert!(expand_str("${a-b}", &lookup).is_err());
        // An expanded value is data, never TOML: quotes stay inside the string.
        let cfg = parse_with(
            "[[sources]]\nname = \"l\"\nkind = \"parquet\"\nlocation = \"${L}\"\n",
            &[("L", "/x\"\nbad = 1")],
        )
        .unwrap();
        assert!(
            matches!(&cfg.sources[0], SourceConfig::Parquet(p) if p.location.contains("bad = 1"))
        );
    }

    #[test]
    fn env_overrides_by_path_index_and_name() {
        let text = "[[sources]]\nname = \"lake\"\nkind = \"parquet\"\nlocation = \"/a\"\n";
        let cfg = parse_with(
            text,
            &[
                ("SLUICE_SERVER__LISTEN", "127.0.0.1:9000"),
                ("SLUICE_LIMITS__MAX_ROWS", "5"),
                ("SLUICE_SOURCES__LAKE__LOCATION", "/b"),
                ("SLUICE_URL", "http://ignored"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.server.listen.port(), 9000);
        assert_eq!(cfg.limits.max_rows, 5);
        assert!(matches!(&cfg.sources[0], SourceConfig::Parquet(p) if p.location == "/b"));
        let cfg = parse_with(text, &[("SLUICE_SOURCES__0__LOCATION", "/c")]).unwrap();
        assert!(matches!(&cfg.sources[0], SourceConfig::Parquet(p) if p.location == "/c"));
        let errs = parse_with(text, &[("SLUICE_SOURCES__NOPE__LOCATION", "/c")]).unwrap_err();
        assert!(errs.to_string().contains("no entry `nope`"));
    }

    #[test]
    fn auth_none_needs_loopback_and_catalog_must_exist() {
        let errs = parse_with(
            "[server]\nlisten = \"0.0.0.0:8080\"\ndefault_catalog = \"x\"\n[auth]\nmode = \"none\"\n",
            &[],
        )
        .unwrap_err();
        let all = errs.to_string();
        assert!(all.contains("auth.mode"), "{all}");
        assert!(all.contains("server.default_catalog"), "{all}");
    }

    #[test]
    fn syntax_error_is_reported() {
        let errs = parse_with("[server\nlisten=", &[]).unwrap_err();
        assert_eq!(errs.0.len(), 1);
    }

    /// A registry entry is checked as the file's are, its `${VAR}` references expanded from
    /// the given environment; secrets written into it are refused, named ones are not.
    #[test]
    fn registry_entries_are_checked_like_the_file_and_hold_no_secret() {
        let env = |v: &str| (v == "KEY").then(|| "k".to_owned());
        let ok = serde_json::json!({
            "name": "lake", "kind": "parquet", "location": "s3://b/p/",
            "options": {"access_key_id": "${KEY}", "secret_access_key": "${KEY}"},
            "fallback": "other",
        });
        let c = source_entry(&ok, env, &["other"]).unwrap();
        assert_eq!(c.name(), "lake");
        let SourceConfig::Parquet(p) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(
            p.options["secret_access_key"], "k",
            "expanded for the build"
        );

        let errs = source_entry(&ok, env, &[]).unwrap_err();
        assert!(errs.to_string().contains("fallback `other`"), "{errs}");
        let missing = serde_json::json!({"name": "lake", "kind": "parquet", "location": "${NOPE}"});
        assert!(source_entry(&missing, env, &[]).is_err());
        let unknown =
            serde_json::json!({"name": "lake", "kind": "parquet", "location": "/x", "colour": 1});
        assert!(source_entry(&unknown, env, &[]).is_err());
        assert!(source_entry(&serde_json::json!([1]), env, &[]).is_err());

        let literal = serde_json::json!({
            "name": "pg", "kind": "postgres",
            "replicas": ["postgres://u:pw@h/db", "postgres://u:${PW}@h/db", "postgres://u@h/db"],
            "options": {"account_key": "abc", "sas_token": "${T:-abc}", "password_env": "PW"},
        });
        let problems = stored_secrets(&literal);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("password_env")));
        assert!(problems.iter().any(|p| p.contains("account_key")));
        assert!(
            problems.iter().any(|p| p.contains("sas_token")),
            "a default is a literal"
        );
        assert!(stored_secrets(&ok).is_empty());
    }
}
