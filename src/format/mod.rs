//! Result formats, chosen by `Accept`, each an incremental encoder: a header when the schema
//! is known, bytes per batch as it arrives, a trailer at the end. Nothing buffers the result.

mod json;
mod tabular;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;

pub use json::{JsonEncoder, NdjsonEncoder, RowLinesEncoder, columns};
pub use tabular::{ArrowStreamEncoder, CsvEncoder, ParquetEncoder};

/// A result format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/vnd.apache.arrow.stream`
    ArrowStream,
    /// `application/json`
    Json,
    /// `application/x-ndjson`
    NdJson,
    /// `text/csv`
    Csv,
    /// `application/vnd.apache.parquet`
    Parquet,
}

impl Format {
    const ALL: [(Format, &'static str); 5] = [
        (Format::ArrowStream, "application/vnd.apache.arrow.stream"),
        (Format::Json, "application/json"),
        (Format::NdJson, "application/x-ndjson"),
        (Format::Csv, "text/csv"),
        (Format::Parquet, "application/vnd.apache.parquet"),
    ];

    /// The media type sent as `Content-Type`.
    pub fn content_type(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("application/octet-stream", |(_, m)| m)
    }

    fn from_media_type(media: &str) -> Option<Self> {
        match media {
            "*/*" | "application/*" => Some(Self::Json),
            "text/*" => Some(Self::Csv),
            // Accepted aliases that tools send.
            "application/vnd.apache.arrow.file" | "application/x-arrow" => None,
            "application/jsonl" | "application/x-jsonlines" => Some(Self::NdJson),
            "application/parquet" | "application/x-parquet" => Some(Self::Parquet),
            m => Self::ALL.iter().find(|(_, t)| *t == m).map(|(f, _)| *f),
        }
    }

    /// Picks the format from an `Accept` value: highest `q` first, then order of
    /// appearance; JSON when there is none.
    ///
    /// # Errors
    /// The value's text when it names no format Sluice produces.
    pub fn negotiate(accept: Option<&str>) -> Result<Self, String> {
        let Some(text) = accept else {
            return Ok(Self::Json);
        };
        if text.trim().is_empty() {
            return Ok(Self::Json);
        }
        let mut candidates: Vec<(f32, usize, Self)> = Vec::new();
        for (i, part) in text.split(',').enumerate() {
            let mut pieces = part.split(';');
            let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0_f32;
            for p in pieces {
                if let Some(v) = p.trim().strip_prefix("q=") {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
            if q > 0.0
                && let Some(f) = Self::from_media_type(&media)
            {
                candidates.push((q, i, f));
            }
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        candidates.first().map(|c| c.2).ok_or_else(|| {
            format!(
                "cannot produce any type in Accept: {text}; supported: {}",
                Self::ALL.map(|(_, m)| m).join(", ")
            )
        })
    }

    /// How an `Accept` value takes the spool profile (`application/vnd.sluice.spool+json`):
    /// not at all, above every format (spool), or below one it prefers (stream while small,
    /// spool past `[spool] threshold_bytes`).
    pub fn spool_preference(accept: Option<&str>, spool_type: &str) -> SpoolPreference {
        let mut spool_q = None;
        let mut best_other = None::<f32>;
        for part in accept.unwrap_or("").split(',') {
            let mut pieces = part.split(';');
            let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0_f32;
            for p in pieces {
                if let Some(v) = p.trim().strip_prefix("q=") {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
            if q <= 0.0 {
                continue;
            }
            if media == spool_type {
                spool_q = Some(spool_q.map_or(q, |s: f32| s.max(q)));
            } else if Self::from_media_type(&media).is_some() {
                best_other = Some(best_other.map_or(q, |b| b.max(q)));
            }
        }
        match (spool_q, best_other) {
            (None, _) => SpoolPreference::No,
            (Some(s), Some(o)) if o > s => SpoolPreference::AboveThreshold,
            (Some(_), _) => SpoolPreference::Always,
        }
    }

    /// A fresh encoder for results of `schema`.
    ///
    /// # Errors
    /// When the writer cannot start (Parquet properties, IPC schema).
    pub fn encoder(self, schema: &SchemaRef) -> Result<Box<dyn BatchEncoder>, ArrowError> {
        Ok(match self {
            Self::ArrowStream => Box::new(ArrowStreamEncoder::new(schema)?),
            Self::Json => Box::new(JsonEncoder::new(schema)),
            Self::NdJson => Box::new(NdjsonEncoder::new(schema)),
            Self::Csv => Box::new(CsvEncoder::new(schema)),
            Self::Parquet => Box::new(ParquetEncoder::new(schema)?),
        })
    }
}

/// How a client takes a spooled answer ([`Format::spool_preference`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolPreference {
    /// It does not accept one.
    No,
    /// It prefers one.
    Always,
    /// It prefers a streamed format, and takes the spool for a result too big to stream.
    AboveThreshold,
}

/// Encodes a result incrementally.
pub trait BatchEncoder: Send {
    /// Bytes that go before any batch (the schema, a header row, an opening bracket).
    ///
    /// # Errors
    /// An Arrow error from the underlying writer.
    fn start(&mut self) -> Result<Bytes, ArrowError>;
    /// Bytes for one batch, as pieces to send in order (none when the writer holds them for
    /// later). Pieces may share the batch's own Arrow buffers, so large ones are not copied.
    ///
    /// # Errors
    /// An Arrow error from the underlying writer.
    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<Bytes>, ArrowError>;
    /// Bytes that end the result.
    ///
    /// # Errors
    /// An Arrow error from the underlying writer.
    fn finish(&mut self) -> Result<Bytes, ArrowError>;
    /// Whether what it writes is an Arrow IPC stream, so any IPC stream of the same result
    /// can stand for it (a cached result's).
    fn is_ipc_stream(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(accept: Option<&str>) -> Result<Format, String> {
        Format::negotiate(accept)
    }

    #[test]
    fn negotiation() {
        assert_eq!(pick(None), Ok(Format::Json));
        assert_eq!(pick(Some("*/*")), Ok(Format::Json));
        assert_eq!(
            pick(Some("application/vnd.apache.arrow.stream")),
            Ok(Format::ArrowStream)
        );
        assert_eq!(
            pick(Some("text/csv;q=0.5, application/x-ndjson")),
            Ok(Format::NdJson)
        );
        assert_eq!(pick(Some("text/html, text/csv")), Ok(Format::Csv));
        assert_eq!(
            pick(Some("application/json;q=0, text/csv;q=0.1")),
            Ok(Format::Csv)
        );
        assert!(pick(Some("text/html")).is_err());
        assert!(pick(Some("application/json;q=0")).is_err());
    }

    #[test]
    fn spool_preference() {
        let spool = "application/vnd.sluice.spool+json";
        let of = |a: Option<&str>| Format::spool_preference(a, spool);
        assert_eq!(of(None), SpoolPreference::No);
        assert_eq!(of(Some("application/json")), SpoolPreference::No);
        assert_eq!(of(Some(spool)), SpoolPreference::Always);
        assert_eq!(
            of(Some("application/vnd.sluice.spool+json;q=0")),
            SpoolPreference::No
        );
        assert_eq!(
            of(Some("application/vnd.sluice.spool+json, text/csv")),
            SpoolPreference::Always
        );
        assert_eq!(
            of(Some(
                "application/vnd.apache.arrow.stream, application/vnd.sluice.spool+json;q=0.5"
            )),
            SpoolPreference::AboveThreshold
        );
        assert_eq!(
            of(Some("text/html, application/vnd.sluice.spool+json;q=0.1")),
            SpoolPreference::Always
        );
    }
}
