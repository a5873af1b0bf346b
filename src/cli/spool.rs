//! `sluice query --out FILE`: the result spooled by the server, its segments fetched in
//! parallel (each checked against its SHA-256, a failed one fetched again), then written in
//! order to `FILE` as Parquet, Arrow IPC or CSV (by its extension), and acknowledged.
//!
//! `FILE` appears only once it is whole: segments go to `FILE.parts/` and the output is
//! written to `FILE.partial` and renamed at the end.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Connection;
use super::query::ClientError;

/// Fetch attempts per segment before the download fails.
const ATTEMPTS: u32 = 4;
/// How long one segment fetch may take before it is made again.
const SEGMENT_TIMEOUT: Duration = Duration::from_secs(900);

/// The output file's format, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutFormat {
    Parquet,
    Arrow,
    Csv,
}

impl OutFormat {
    fn of(path: &Path) -> Result<Self, ClientError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("parquet" | "pq") => Ok(Self::Parquet),
            Some("arrow" | "arrows" | "ipc") => Ok(Self::Arrow),
            Some("csv") => Ok(Self::Csv),
            _ => Err(ClientError::Usage(format!(
                "--out {}: the extension picks the format: .parquet, .arrow or .csv",
                path.display()
            ))),
        }
    }
}

/// One segment to fetch.
#[derive(Debug, Clone)]
struct Job {
    index: usize,
    url: String,
    bytes: u64,
    rows: u64,
    sha256: String,
}

impl Job {
    fn of(segment: &Value) -> Option<Self> {
        Some(Self {
            index: usize::try_from(segment["index"].as_u64()?).ok()?,
            url: segment["url"].as_str()?.to_owned(),
            bytes: segment["bytes"].as_u64()?,
            rows: segment["rows"].as_u64()?,
            sha256: segment["sha256"].as_str()?.to_owned(),
        })
    }
}

/// What the fetchers share: the queue, the figures the progress line shows, the first error.
#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    rows: AtomicU64,
    bytes: AtomicU64,
    retried: AtomicU64,
    failed: AtomicBool,
    error: Mutex<Option<ClientError>>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// No more jobs will come.
    closed: bool,
}

impl Shared {
    fn fail(&self, e: ClientError) {
        self.failed.store(true, Ordering::SeqCst);
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(e);
        self.close();
    }

    fn close(&self) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.wake.notify_all();
    }

    fn next(&self) -> Option<Job> {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.failed.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(job) = q.jobs.pop_front() {
                return Some(job);
            }
            if q.closed {
                return None;
            }
            q = self.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// What a download did, printed at its end.
#[derive(Debug, Clone, Copy)]
pub struct Downloaded {
    /// Rows written.
    pub rows: u64,
    /// Segment bytes fetched.
    pub bytes: u64,
    /// Segments.
    pub segments: usize,
    /// Segment fetches that failed and were made again.
    pub retried: u64,
}

/// Runs `sql` spooled and writes the whole result to `out`, fetching `parallel` segments at a
/// time.
///
/// # Errors
/// The server's refusal, a segment that failed every attempt, or writing `out`.
pub fn download(
    to: &Connection,
    sql: &str,
    out: &Path,
    parallel: usize,
) -> Result<Downloaded, ClientError> {
    let format = OutFormat::of(out)?;
    // No overall timeout for the query (its first rows may take long), one for each segment
    // fetch (a stalled one is made again).
    let client = to.client(None).map_err(ClientError::Usage)?;
    let fetcher = to
        .client(Some(SEGMENT_TIMEOUT))
        .map_err(ClientError::Usage)?;
    let req = client
        .post(format!("{}/v1/query", to.base()))
        .header("Accept", "application/vnd.sluice.spool+json")
        .header("Content-Type", "application/json")
        .body(serde_json::json!({ "sql": sql, "spool": true }).to_string());
    let manifest = json_answer(to.authorize(req).map_err(ClientError::Usage)?)?;
    let ack = format!(
        "{}{}",
        to.base(),
        manifest["ack"].as_str().unwrap_or_default()
    );
    let parts = with_suffix(out, ".parts");
    std::fs::create_dir_all(&parts)?;
    let done = fetch_and_write(
        to, &client, &fetcher, manifest, &ack, &parts, out, format, parallel,
    );
    if done.is_err() {
        // Nothing half-made stays: the query stops, its segments and the local parts go.
        let _ = to.authorize(client.delete(&ack)).map(|r| r.send());
        let _ = std::fs::remove_dir_all(&parts);
        let _ = std::fs::remove_file(with_suffix(out, ".partial"));
        return done;
    }
    // Written and renamed: the server may delete the segments now.
    match to.authorize(client.delete(&ack)).map(|r| r.send()) {
        Ok(Ok(resp)) if resp.status().is_success() => {}
        _ => eprintln!(
            "warning: the spooled result was not acknowledged; the server deletes it when it expires"
        ),
    }
    std::fs::remove_dir_all(&parts)?;
    done
}

/// Fetches every segment of the result `manifest` starts, then writes `out`.
#[allow(clippy::too_many_arguments)]
fn fetch_and_write(
    to: &Connection,
    client: &reqwest::blocking::Client,
    fetcher: &reqwest::blocking::Client,
    mut manifest: Value,
    ack: &str,
    parts: &Path,
    out: &Path,
    format: OutFormat,
    parallel: usize,
) -> Result<Downloaded, ClientError> {
    let shared = Arc::new(Shared::default());
    let started = Instant::now();
    let show = std::io::stderr().is_terminal();
    let mut listed = 0_usize;
    let mut total_bytes = 0_u64;
    let fetched = std::thread::scope(|scope| {
        for _ in 0..parallel.max(1) {
            let shared = Arc::clone(&shared);
            scope.spawn(move || {
                while let Some(job) = shared.next() {
                    if let Err(e) = fetch(to, client, fetcher, &job, parts, ack, &shared) {
                        shared.fail(e);
                    }
                }
            });
        }
        let mut last_line = Instant::now();
        loop {
            let segments = manifest["segments"].as_array().cloned().unwrap_or_default();
            {
                let mut q = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
                for s in segments.iter().skip(listed) {
                    match Job::of(s) {
                        Some(job) => {
                            total_bytes += job.bytes;
                            q.jobs.push_back(job);
                        }
                        None => {
                            drop(q);
                            shared.fail(ClientError::Usage(
                                "the manifest lists a segment without url, rows, bytes or sha256"
                                    .into(),
                            ));
                            return Err(());
                        }
                    }
                }
                listed = listed.max(segments.len());
            }
            shared.wake.notify_all();
            if manifest["complete"].as_bool() == Some(true) {
                shared.close();
                break;
            }
            if shared.failed.load(Ordering::SeqCst) {
                return Err(());
            }
            if show && last_line.elapsed() >= Duration::from_millis(250) {
                last_line = Instant::now();
                progress(&shared, started, None);
            }
            // The server lists segments as it writes them: ask again shortly.
            std::thread::sleep(Duration::from_millis(200));
            let req = client.get(ack);
            match to
                .authorize(req)
                .map_err(ClientError::Usage)
                .and_then(json_answer)
            {
                Ok(m) => manifest = m,
                Err(e) => {
                    shared.fail(e);
                    return Err(());
                }
            }
        }
        // Every segment is queued; show progress until the fetchers are done.
        while show && !shared.failed.load(Ordering::SeqCst) {
            let done = shared.bytes.load(Ordering::SeqCst);
            progress(&shared, started, Some(total_bytes));
            if done >= total_bytes {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(())
    });
    if fetched.is_err() || shared.failed.load(Ordering::SeqCst) {
        let e = shared
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        return Err(e.unwrap_or_else(|| ClientError::Usage("the download failed".into())));
    }
    if show {
        eprintln!();
    }
    let rows = write_out(&manifest, listed, parts, out, format)?;
    Ok(Downloaded {
        rows,
        bytes: shared.bytes.load(Ordering::SeqCst),
        segments: listed,
        retried: shared.retried.load(Ordering::SeqCst),
    })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The answer's JSON, or the server's error.
fn json_answer(req: reqwest::blocking::RequestBuilder) -> Result<Value, ClientError> {
    let resp = req.send()?;
    let status = resp.status();
    let body: Value = resp
        .text()
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if status.is_success() {
        return Ok(body);
    }
    Err(ClientError::Server {
        status: status.as_u16(),
        code: body["error"]["code"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned(),
        message: body["error"]["message"].as_str().unwrap_or("").to_owned(),
    })
}

/// One line: rows, bytes, rate, and the time left once the total is known.
fn progress(shared: &Shared, started: Instant, total: Option<u64>) {
    let bytes = shared.bytes.load(Ordering::SeqCst);
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    let rate = bytes as f64 / secs;
    let eta = match total {
        Some(t) if rate > 0.0 => format!("{:.0}s", t.saturating_sub(bytes) as f64 / rate),
        _ => "?".to_owned(),
    };
    eprint!(
        "\r{} rows, {:.1} MB, {:.1} MB/s, ETA {eta}   ",
        shared.rows.load(Ordering::SeqCst),
        bytes as f64 / 1e6,
        rate / 1e6
    );
}

/// Fetches one segment into `parts`, checked against its size and SHA-256; a failed attempt
/// is made again with a fresh URL from the manifest.
fn fetch(
    to: &Connection,
    client: &reqwest::blocking::Client,
    fetcher: &reqwest::blocking::Client,
    job: &Job,
    parts: &Path,
    ack: &str,
    shared: &Shared,
) -> Result<(), ClientError> {
    let mut url = job.url.clone();
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            shared.retried.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
            // URLs expire: take the segment's current one.
            if let Ok(m) = to
                .authorize(client.get(ack))
                .map_err(ClientError::Usage)
                .and_then(json_answer)
                && let Some(u) = m["segments"][job.index]["url"].as_str()
            {
                url = u.to_owned();
            }
        }
        match fetch_once(to, fetcher, job, &url) {
            Ok(body) => {
                std::fs::write(parts.join(format!("{:06}", job.index)), &body)?;
                shared.bytes.fetch_add(job.bytes, Ordering::SeqCst);
                shared.rows.fetch_add(job.rows, Ordering::SeqCst);
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Usage("no attempt was made".into())))
}

fn fetch_once(
    to: &Connection,
    client: &reqwest::blocking::Client,
    job: &Job,
    url: &str,
) -> Result<Vec<u8>, ClientError> {
    // Sluice's proxy URLs take the credential; a presigned URL carries its own (and a bucket
    // refuses a second one).
    let req = client.get(url);
    let req = if is_proxy(url) {
        to.authorize(req).map_err(ClientError::Usage)?
    } else {
        req
    };
    let resp = req.send()?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ClientError::Server {
            status: status.as_u16(),
            code: "segment_fetch_failed".into(),
            message: format!("segment {} answered {status}", job.index),
        });
    }
    let body = resp.bytes()?;
    let sha = format!("{:x}", Sha256::digest(&body));
    if body.len() as u64 != job.bytes || sha != job.sha256 {
        return Err(ClientError::Usage(format!(
            "segment {}: {} bytes with SHA-256 {sha}, the manifest says {} bytes with {}",
            job.index,
            body.len(),
            job.bytes,
            job.sha256
        )));
    }
    Ok(body.to_vec())
}

/// Whether `url` is Sluice's `/v1/queries/{id}/spool/{n}` (on whatever host and prefix the
/// server named), not a presigned bucket URL.
fn is_proxy(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let mut parts = path.rsplit('/');
    let (n, spool, _id, queries, v1) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    );
    n.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && spool == Some("spool")
        && queries == Some("queries")
        && v1 == Some("v1")
}

/// Writes the fetched segments, in order, to `out` (through `out.partial`); the rows written.
fn write_out(
    manifest: &Value,
    segments: usize,
    parts: &Path,
    out: &Path,
    format: OutFormat,
) -> Result<u64, ClientError> {
    let partial = with_suffix(out, ".partial");
    let mut file = Some(File::create(&partial)?);
    let parquet_segments = manifest["format"].as_str() == Some("application/vnd.apache.parquet");
    let mut sink: Option<Sink> = None;
    let mut rows = 0_u64;
    for index in 0..segments {
        let path = parts.join(format!("{index:06}"));
        let batches: Box<dyn Iterator<Item = Result<RecordBatch, _>>> = if parquet_segments {
            Box::new(
                ParquetRecordBatchReaderBuilder::try_new(File::open(&path)?)
                    .map_err(|e| ClientError::Arrow(e.into()))?
                    .build()
                    .map_err(|e| ClientError::Arrow(e.into()))?,
            )
        } else {
            Box::new(StreamReader::try_new(File::open(&path)?, None)?)
        };
        for batch in batches {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            let s = match sink.as_mut() {
                Some(s) => s,
                None => sink.insert(Sink::new(format, &batch.schema(), file.take())?),
            };
            s.write(&batch)?;
        }
    }
    let sink = match sink {
        Some(s) => s,
        // No rows: the columns from the manifest (and CSV's header line).
        None => {
            let schema = schema_of(manifest)?;
            let mut s = Sink::new(format, &schema, file.take())?;
            s.write(&RecordBatch::new_empty(schema))?;
            s
        }
    };
    sink.finish()?;
    std::fs::rename(&partial, out)?;
    Ok(rows)
}

/// The manifest's columns as an Arrow schema (for a result without rows).
fn schema_of(manifest: &Value) -> Result<SchemaRef, ClientError> {
    let columns = manifest["schema"].as_array().cloned().unwrap_or_default();
    let fields = columns
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default();
            let data_type: DataType = c["type"]
                .as_str()
                .unwrap_or("Null")
                .parse()
                .unwrap_or(DataType::Utf8);
            Field::new(name, data_type, c["nullable"].as_bool().unwrap_or(true))
        })
        .collect::<Vec<_>>();
    Ok(Arc::new(Schema::new(fields)))
}

/// The output being written.
enum Sink {
    Parquet(ArrowWriter<BufWriter<File>>),
    Arrow(StreamWriter<BufWriter<File>>),
    Csv(datafusion::arrow::csv::Writer<BufWriter<File>>),
}

impl Sink {
    fn new(format: OutFormat, schema: &SchemaRef, file: Option<File>) -> Result<Self, ClientError> {
        let file = BufWriter::new(
            file.ok_or_else(|| ClientError::Usage("the output was opened twice".into()))?,
        );
        Ok(match format {
            OutFormat::Parquet => Self::Parquet(
                ArrowWriter::try_new(file, Arc::clone(schema), None)
                    .map_err(|e| ClientError::Arrow(e.into()))?,
            ),
            OutFormat::Arrow => Self::Arrow(StreamWriter::try_new(file, schema)?),
            OutFormat::Csv => Self::Csv(datafusion::arrow::csv::Writer::new(file)),
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), ClientError> {
        match self {
            Self::Parquet(w) => w.write(batch).map_err(|e| ClientError::Arrow(e.into())),
            Self::Arrow(w) => Ok(w.write(batch)?),
            Self::Csv(w) => Ok(w.write(batch)?),
        }
    }

    fn finish(self) -> Result<(), ClientError> {
        let mut file = match self {
            Self::Parquet(w) => w.into_inner().map_err(|e| ClientError::Arrow(e.into()))?,
            Self::Arrow(mut w) => {
                w.finish()?;
                w.into_inner()?
            }
            Self::Csv(w) => w.into_inner(),
        };
        file.flush()?;
        file.get_ref().sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_take_the_key_and_presigned_ones_do_not() {
        assert!(is_proxy("http://127.0.0.1:8080/v1/queries/q_1/spool/0"));
        assert!(is_proxy(
            "https://gw.example/sluice/v1/queries/q_1/spool/12"
        ));
        assert!(is_proxy("/v1/queries/q_1/spool/3"));
        assert!(!is_proxy(
            "http://127.0.0.1:9000/bucket/spool/4be2/000000.arrow?X-Amz-Signature=x"
        ));
        assert!(!is_proxy(
            "https://acct.blob.core.windows.net/c/p/000001.arrow?sig=x"
        ));
        assert!(!is_proxy("http://h/v1/queries/q_1/spool"));
    }
}
