//! `sluice query`: submit SQL, print the result as a table, CSV, JSON or raw Arrow.

use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::util::pretty::pretty_format_batches;

/// Output of `sluice query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned table (the whole result is read first).
    Table,
    /// CSV with a header, streamed.
    Csv,
    /// The API's JSON, streamed.
    Json,
    /// The Arrow IPC stream, streamed as received.
    Arrow,
}

impl OutputFormat {
    fn accept(self) -> &'static str {
        match self {
            Self::Table | Self::Arrow => "application/vnd.apache.arrow.stream",
            Self::Csv => "text/csv",
            Self::Json => "application/json",
        }
    }
}

/// Why a query command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or the transfer broke.
    #[error("cannot reach the server: {0}")]
    Http(#[from] reqwest::Error),
    /// The command's own arguments cannot be used (a CA file, a key and a token).
    #[error("{0}")]
    Usage(String),
    /// The server answered with an error.
    #[error("{status} {code}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
    /// Reading the Arrow stream failed (a cut stream means the query failed mid-way).
    #[error("the result stream broke: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// Writing output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Counts bytes read and shows progress on a terminal.
struct Progress<R> {
    inner: R,
    bytes: u64,
    started: Instant,
    last: Instant,
    show: bool,
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if self.show && self.last.elapsed() >= Duration::from_millis(250) {
            self.last = Instant::now();
            eprint!(
                "\r{:.1} MB, {:.1}s ",
                self.bytes as f64 / 1e6,
                self.started.elapsed().as_secs_f64()
            );
        }
        Ok(n)
    }
}

/// Runs `sql` against `server` and writes the result to stdout.
///
/// # Errors
/// [`ClientError`] with the server's code and message when it refused the query.
pub fn run(to: &super::Connection, format: OutputFormat, sql: &str) -> Result<(), ClientError> {
    let client = to.client(None).map_err(ClientError::Usage)?;
    let req = client
        .post(format!("{}/v1/query", to.base()))
        .header("Accept", format.accept())
        .header("Content-Type", "application/json")
        .body(serde_json::json!({ "sql": sql }).to_string());
    let resp = to.authorize(req).map_err(ClientError::Usage)?.send()?;
    let status = resp.status();
    if !status.is_success() {
        let body: serde_json::Value = resp
            .text()
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        return Err(ClientError::Server {
            status: status.as_u16(),
            code: body["error"]["code"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned(),
            message: body["error"]["message"].as_str().unwrap_or("").to_owned(),
        });
    }
    let show = std::io::stderr().is_terminal();
    let mut input = Progress {
        inner: resp,
        bytes: 0,
        started: Instant::now(),
        last: Instant::now(),
        show,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        OutputFormat::Table => {
            let reader = StreamReader::try_new(&mut input, None)?;
            let batches = reader.collect::<Result<Vec<RecordBatch>, _>>()?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(out, "{}", pretty_format_batches(&batches)?)?;
            if show {
                eprintln!(
                    "\r{rows} rows in {:.2}s",
                    input.started.elapsed().as_secs_f64()
                );
            }
        }
        OutputFormat::Csv | OutputFormat::Json | OutputFormat::Arrow => {
            std::io::copy(&mut input, &mut out)?;
            if show {
                eprintln!(
                    "\r{} bytes in {:.2}s",
                    input.bytes,
                    input.started.elapsed().as_secs_f64()
                );
            }
        }
    }
    out.flush()?;
    Ok(())
}
