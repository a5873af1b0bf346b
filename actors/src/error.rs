//! Source errors, with a retry decision attached to each (vector's typed retries).

/// Why a source could not be set up or checked.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The config cannot be turned into a connection (bad URL, unknown option).
    #[error("invalid source configuration: {0}")]
    Config(String),
    /// The object store refused or failed a call.
    #[error("object store: {0}")]
    ObjectStore(#[source] object_store::Error),
    /// A local path is missing or not a folder.
    #[error("{0}")]
    Io(#[source] std::io::Error),
    /// The source's tables could not be (re)loaded.
    #[error("loading tables failed: {0}")]
    Catalog(String),
    /// A probe could not reach the source, or the source failed it.
    #[error("{0}")]
    Probe(String),
    /// The check did not finish in time.
    #[error("health check timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// This kind of source is not built into this version.
    #[error("source kind `{0}` is not supported yet")]
    UnsupportedKind(&'static str),
}

/// Result with [`SourceError`].
pub type Result<T, E = SourceError> = std::result::Result<T, E>;
