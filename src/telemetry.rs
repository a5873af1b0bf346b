//! Logging: `tracing` with `RUST_LOG`-style filtering, pretty or JSON.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber at `default_level` unless `SLUICE_LOG` or `RUST_LOG` says
/// otherwise; logs go to stderr so stdout stays for results.
pub fn init(json: bool, default_level: &str) {
    let filter = EnvFilter::try_from_env("SLUICE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless; ignore the error.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
