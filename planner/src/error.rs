//! Planner errors, classified so the HTTP edge can map them to status codes without string
//! matching on DataFusion's messages.

use datafusion::error::DataFusionError;

/// Why a statement could not be planned or run.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The SQL text is empty or only comments.
    #[error("the SQL text is empty")]
    Empty,
    /// The text does not parse.
    #[error("SQL does not parse: {0}")]
    Parse(#[source] DataFusionError),
    /// More than one statement was sent.
    #[error("expected exactly one SQL statement, found {0}")]
    MultipleStatements(usize),
    /// A statement that writes, changes the session or reads outside the catalog.
    #[error("only read-only queries are allowed: {0} is not")]
    ReadOnly(String),
    /// A table reference does not resolve.
    #[error("table {0} not found")]
    TableNotFound(String),
    /// The statement parses but does not plan (unknown column, type error, ...): the message
    /// is about the user's SQL and is safe to return.
    #[error("{}", .0.strip_backtrace())]
    Invalid(#[source] DataFusionError),
    /// Parameters are missing, extra, or of the wrong type.
    #[error("{0}")]
    Params(String),
    /// A feature DataFusion does not implement.
    #[error("{}", .0.strip_backtrace())]
    Unsupported(#[source] DataFusionError),
    /// A source's tables could not be loaded, so nothing in it can be planned.
    #[error("source {name} is unavailable: {reason}")]
    SourceUnavailable {
        /// Catalog name.
        name: String,
        /// Why (no credentials).
        reason: String,
    },
    /// A failure while running: I/O, memory, an internal error. Not for clients' eyes.
    #[error("{0}")]
    Execution(#[source] DataFusionError),
}

impl PlanError {
    /// Classifies an error from planning (`statement_to_plan`, optimization, physical planning).
    pub fn from_planning(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::SQL(..) => Self::Parse(e),
            DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => Self::Invalid(e),
            DataFusionError::NotImplemented(_) => Self::Unsupported(e),
            // Constant folding can evaluate a bad cast at plan time: still the user's SQL.
            DataFusionError::ArrowError(err, _) if is_expression_error(err) => Self::Invalid(e),
            DataFusionError::Execution(_) => Self::Invalid(e),
            _ => Self::Execution(e),
        }
    }
}

impl PlanError {
    /// Classifies an error raised while the stream runs: expression failures (bad casts,
    /// division by zero) are the user's SQL; everything else stays [`PlanError::Execution`].
    pub fn from_execution(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::ArrowError(err, _) if is_expression_error(err) => Self::Invalid(e),
            _ => Self::Execution(e),
        }
    }
}

/// Arrow errors raised by evaluating the user's expressions (bad casts, division by zero).
fn is_expression_error(e: &datafusion::arrow::error::ArrowError) -> bool {
    use datafusion::arrow::error::ArrowError as A;
    matches!(
        e,
        A::CastError(_) | A::ParseError(_) | A::DivideByZero | A::ArithmeticOverflow(_)
    )
}

/// Result with [`PlanError`].
pub type Result<T, E = PlanError> = std::result::Result<T, E>;
