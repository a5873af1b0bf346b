//! [`RemoteError`]: how a remote statement failed, in terms every source kind shares.

use datafusion::error::DataFusionError;

/// What kind of failure a remote statement met; the HTTP edge maps each to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The source could not be reached or went away (refused, closed, no free connection).
    Unavailable,
    /// The source ran the statement and failed it, or sent something Sluice cannot read.
    Upstream,
    /// The data made the statement fail at the source (a cast, overflow, division by zero),
    /// as it would have in DataFusion.
    Data,
    /// The source's own timeout fired.
    Timeout,
    /// The statement was cancelled (by Sluice or by an operator on the source).
    Cancelled,
}

impl ErrorClass {
    /// A stable lower-case name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Upstream => "upstream",
            Self::Data => "data",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Why a remote statement failed, classified for the HTTP edge and for retries. The message
/// is safe to show a client: no credentials, no connection strings.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    /// Source (catalog) name.
    pub source_name: String,
    /// What kind of failure.
    pub class: ErrorClass,
    /// Whether running the same statement again could succeed and is safe: no row of its
    /// result has been handed on yet, and the failure was not the statement's own fault.
    pub retry_safe: bool,
    /// Safe to show.
    pub message: String,
}

impl RemoteError {
    /// A new error; retry-safe when the source was unavailable.
    pub fn new(source: &str, class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            source_name: source.to_owned(),
            class,
            retry_safe: class == ErrorClass::Unavailable,
            message: message.into(),
        }
    }

    /// Marks the error as not safe to retry (rows were already handed on).
    #[must_use]
    pub fn not_retryable(mut self) -> Self {
        self.retry_safe = false;
        self
    }

    /// A value the source sent that does not fit the type DataFusion expects for `column`.
    pub fn value(source: &str, column: &str, why: impl std::fmt::Display) -> Self {
        Self::new(
            source,
            ErrorClass::Upstream,
            format!("column {column} of source {source}: {why}"),
        )
    }

    /// As a DataFusion error, to travel through a stream.
    pub fn into_df(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }

    /// The first [`RemoteError`] in `e`'s chain of causes.
    pub fn find(e: &DataFusionError) -> Option<&Self> {
        crate::error::causes(e).find_map(|err| err.downcast_ref::<Self>())
    }
}

impl From<RemoteError> for DataFusionError {
    fn from(e: RemoteError) -> Self {
        e.into_df()
    }
}
