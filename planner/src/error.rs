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
    /// The SQL text is longer than the server accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The statement nests deeper, or has more branches, than the server accepts.
    #[error("{0}")]
    TooDeep(String),
    /// A table reference does not resolve.
    #[error("table {0} not found")]
    TableNotFound(String),
    /// A table reference names a source (catalog) removed while the server ran.
    #[error("source {0} not found: it was removed")]
    SourceNotFound(String),
    /// The statement parses but does not plan (unknown column, type error, ...): the message
    /// is about the user's SQL and is safe to return.
    #[error("{}", root_message(.0))]
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
    /// The data made a valid statement fail (a cast, division by zero, overflow, a bad
    /// argument to a function): the message is about the user's data and safe to return.
    #[error("{}", root_message(.0))]
    Data(#[source] DataFusionError),
    /// A failure while running: I/O, memory, an internal error. Not for clients' eyes.
    #[error("{0}")]
    Execution(#[source] DataFusionError),
}

impl PlanError {
    /// Classifies a DataFusion error by its cause, wherever it was met: while planning
    /// (`statement_to_plan`, constant folding, physical planning) or while the stream runs.
    /// The same failure gets the same class at either moment.
    pub fn classify(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::SQL(..) => Self::Parse(e),
            DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => Self::Invalid(e),
            DataFusionError::NotImplemented(_) => Self::Unsupported(e),
            DataFusionError::ArrowError(err, _) if is_data_error(err) => Self::Data(e),
            // `exec_err!` is how functions refuse their arguments (a negative `repeat` count,
            // an invalid regex, a malformed date string): the data, not Sluice.
            DataFusionError::Execution(_) => Self::Data(e),
            // A regex literal that does not compile, found while the optimizer simplifies it.
            _ if in_chain::<regex_syntax::Error>(&e) => Self::Data(e),
            _ => Self::Execution(e),
        }
    }
}

/// `e` and every error in its source chain, outermost first.
pub fn causes(e: &DataFusionError) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |err| {
        err.source()
    })
}

/// True when an error of type `T` is somewhere in `e`'s source chain.
fn in_chain<T: std::error::Error + 'static>(e: &DataFusionError) -> bool {
    causes(e).any(|err| err.is::<T>())
}

/// Arrow errors raised by evaluating the user's expressions over data: bad casts, division
/// by zero, overflow, invalid arguments to a kernel.
fn is_data_error(e: &datafusion::arrow::error::ArrowError) -> bool {
    use datafusion::arrow::error::ArrowError as A;
    matches!(
        e,
        A::CastError(_)
            | A::ParseError(_)
            | A::DivideByZero
            | A::ArithmeticOverflow(_)
            | A::ComputeError(_)
            | A::InvalidArgumentError(_)
    )
}

/// The innermost error's text: what the user can act on, without the optimizer rule or
/// operator that happened to meet it.
fn root_message(e: &DataFusionError) -> String {
    e.find_root().strip_backtrace()
}

/// Result with [`PlanError`].
pub type Result<T, E = PlanError> = std::result::Result<T, E>;
