//! Sluice's config and API types.
//!
//! The config is one TOML file (the reference, generated from these types: `docs/configuration.md`). [`loader::parse`] and
//! [`loader::load_file`] expand `${VAR}`, apply `SLUICE_SECTION__KEY` overrides, reject
//! unknown keys and return every problem at once as [`ConfigErrors`].
//!
//! # Layout
//! - `config`: the typed sections and their defaults.
//! - [`loader`]: text + environment → validated [`Config`].
//! - [`api`]: HTTP request and error bodies.
//! - `error`: the [`ConfigError`] and [`ConfigErrors`] types.
#![warn(missing_docs)]

pub mod api;
mod config;
mod error;
pub mod loader;
pub mod reference;

pub use config::{
    AccessRule, AuditConfig, AuditPolicy, AuthConfig, AuthMode, CacheConfig, Config, ConsoleConfig,
    FlightConfig, LimitsConfig, LogConfig, LogFormat, McpConfig, MetadataConfig, OidcConfig,
    OidcIssuer, ParquetSourceConfig, PgConfig, PostgresSourceConfig, Pushdown, RoleLimits,
    ServerConfig, SnowflakeAuth, SnowflakeSourceConfig, SourceConfig, SpoolConfig, SpoolFormat,
    SpoolRetrieval, TableConfig, TelemetryConfig, TlsConfig,
};
pub use error::{ConfigError, ConfigErrors};

/// The embedded default's Flight SQL port (Arrow Flight's customary one).
pub const EMBEDDED_FLIGHT_PORT: u16 = 8815;

/// The embedded default's PostgreSQL-protocol port (beside PostgreSQL's own 5432).
pub const EMBEDDED_PG_PORT: u16 = 5433;

impl Config {
    /// The embedded default: one `parquet` source `local` over `dir`, with `local.public`
    /// as the default catalog and schema so bare names like `lineitem` resolve.
    pub fn embedded(dir: &std::path::Path) -> Self {
        Self {
            server: ServerConfig {
                default_catalog: Some("local".to_owned()),
                default_schema: Some(config::default_schema_name()),
                ..ServerConfig::default()
            },
            sources: vec![SourceConfig::Parquet(ParquetSourceConfig {
                name: "local".to_owned(),
                location: dir.display().to_string(),
                options: Default::default(),
                schema: config::default_schema_name(),
                tables: Vec::new(),
                health_check_interval_ms: 10_000,
                refresh_interval_ms: config::default_refresh_interval_ms(),
                fallback: None,
                cache: true,
            })],
            flight: Some(FlightConfig::on(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                EMBEDDED_FLIGHT_PORT,
            )))),
            pg: Some(PgConfig::on(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                EMBEDDED_PG_PORT,
            )))),
            ..Self::default()
        }
    }
}
