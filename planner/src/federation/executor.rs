//! [`RemoteExecutor`]: the one seam between the planner and a remote engine (PostgreSQL,
//! Snowflake). The planner decides *what* a source runs and as which SQL; the executor, which
//! lives with the source's actor in `sluice-actors`, decides *how*: connections, sessions,
//! the wire protocol and decoding.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use futures::future::BoxFuture;

use super::dialect::SourceDialect;
use super::error::RemoteError;

/// How a column's values compare and order at the source, next to how DataFusion compares
/// them. It decides which expressions over the column may be computed remotely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnClass {
    /// Equality and order agree with DataFusion's (integers, exact decimals, booleans,
    /// dates, times, timestamps).
    Exact,
    /// Text whose equality is byte for byte; its order follows the source's collation, so
    /// ordering needs the dialect's byte-order collation.
    Text,
    /// Text the source cuts to this many bytes before comparing with a literal (PostgreSQL's
    /// `name`): as [`Self::Text`] for literals no longer than that.
    BoundedText {
        /// The longest literal compared as it is.
        max_bytes: usize,
    },
    /// Floating point: the source orders NaN and -0 differently from IEEE total order.
    Float,
    /// Text in a canonical form (a uuid read as text): agrees with literals in that form.
    CanonicalText,
    /// Only passed through, never computed on remotely: case-insensitive or
    /// nondeterministic text, blank-padded `char(n)`, JSON, intervals, arrays, types read
    /// as text, decimals rounded on the way in.
    Opaque,
}

/// How a column is selected so that it arrives as its Arrow type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadAs {
    /// Cast to the source's text type.
    Text,
    /// Passed through a function of the source (`abbrev` for PostgreSQL's `inet`).
    Function(&'static str),
    /// Rounded to this scale (a decimal without declared precision).
    Round(i8),
    /// An array whose elements are cast to text.
    TextArray,
}

/// One column of a remote table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteColumn {
    /// Name as the source spells it.
    pub name: String,
    /// The Arrow type Sluice gives it.
    pub data_type: DataType,
    /// May hold NULL.
    pub nullable: bool,
    /// How its values compare at the source.
    pub class: ColumnClass,
    /// How it is selected; `None`: as it is.
    pub read: Option<ReadAs>,
    /// The source's name for its type, for messages.
    pub type_name: String,
}

impl RemoteColumn {
    /// A nullable column read as it is (for tests).
    #[cfg(test)]
    pub(crate) fn plain(name: &str, data_type: DataType, class: ColumnClass) -> Self {
        Self {
            name: name.into(),
            data_type,
            nullable: true,
            class,
            read: None,
            type_name: String::new(),
        }
    }
}

/// A remote table or view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTableDef {
    /// Schema at the source.
    pub schema: String,
    /// Name at the source.
    pub name: String,
    /// A view (or materialized view).
    pub view: bool,
    /// Columns in order.
    pub columns: Vec<RemoteColumn>,
    /// The source's estimate of its rows, if it keeps one.
    pub rows_estimate: Option<u64>,
}

/// A source's own estimate of a statement, from its planner (PostgreSQL's `EXPLAIN`): what the
/// cost-aware cut compares (see [`super::cost`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Rows the statement returns.
    pub rows: f64,
    /// Average bytes per returned row.
    pub width: f64,
    /// Total cost, in the source's planner units (PostgreSQL: one sequential page read is
    /// 1.0).
    pub cost: f64,
}

/// What one query has pulled from one source so far: statements sent, rows and bytes
/// received. Shared between the query's remote scans and its record.
#[derive(Debug, Default)]
pub struct Pulled {
    statements: AtomicU64,
    rows: AtomicU64,
    bytes: AtomicU64,
}

impl Pulled {
    /// Counts one statement sent.
    pub fn statement(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts rows received.
    pub fn add_rows(&self, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts bytes received.
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// `(statements, rows, bytes)`.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.statements.load(Ordering::Relaxed),
            self.rows.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// What a statement needs from the query it belongs to.
#[derive(Debug, Clone)]
pub struct StatementContext {
    /// The query id, shown to the source (PostgreSQL's `application_name`, Snowflake's
    /// `QUERY_TAG`).
    pub query_id: String,
    /// When the query times out; the statement gets the time left as its own timeout.
    pub deadline: Option<Instant>,
    /// Where the executor counts the bytes it receives.
    pub pulled: Arc<Pulled>,
    /// The statement's span: executors record `db.system`, `server.address` and the replica
    /// on it.
    pub span: tracing::Span,
    /// The W3C `traceparent` to show the source, when the query has a trace.
    pub traceparent: Option<String>,
}

/// A remote engine that runs SQL for one source.
///
/// Implemented in `sluice-actors` by each remote source kind; the planner asks for one per
/// source at statement start (the source actor picks the replica), so nothing here is held
/// by tables or plans.
///
/// # Contract
/// - [`Self::execute`] runs exactly `sql` (one `SELECT`, read-only) and streams its rows as
///   record batches of exactly `schema`, column by column in order. A value that does not
///   fit its column's type (overflow, lost precision, an out-of-range date) is an error
///   naming the column, never NULL and never rounded.
/// - Errors are [`RemoteError`]s (wrapped in `DataFusionError::External` inside streams).
///
/// # Cancellation
/// Dropping the stream at any point cancels the remote statement: the executor sends the
/// source its cancel (PostgreSQL's cancel request, Snowflake's abort) and does not reuse a
/// connection that may still be running it.
pub trait RemoteExecutor: Send + Sync + Debug {
    /// The source (catalog) name.
    fn name(&self) -> &str;

    /// Where statements run and as whom: two executors with the same context can run one
    /// statement that reads both's tables. Never shown (it may name hosts).
    fn compute_context(&self) -> &str;

    /// The source's SQL dialect and capability table.
    fn dialect(&self) -> Arc<dyn SourceDialect>;

    /// Starts `sql`; rows arrive as the stream is polled.
    ///
    /// # Errors
    /// The statement could not be started (the stream reports later failures).
    fn execute(
        &self,
        sql: &str,
        schema: SchemaRef,
        context: &StatementContext,
    ) -> Result<SendableRecordBatchStream, RemoteError>;

    /// The source planner's estimate for `sql` (planned, never run); `Ok(None)` for a source
    /// that gives none.
    ///
    /// # Errors
    /// The source could not be asked, or refused the statement.
    fn estimate<'a>(
        &'a self,
        _sql: &'a str,
    ) -> BoxFuture<'a, Result<Option<Estimate>, RemoteError>> {
        Box::pin(async { Ok(None) })
    }

    /// Every table the source's login may read (only in `schemas`, when given), with its
    /// columns.
    ///
    /// # Errors
    /// The source could not be asked.
    fn tables<'a>(
        &'a self,
        schemas: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<Vec<RemoteTableDef>, RemoteError>>;
}
