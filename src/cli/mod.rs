//! The `sluice` client commands: they talk to a running server over HTTP.

pub mod keys;
pub mod query;

/// Server URL used when neither `--server` nor `SLUICE_URL` is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
