//! A result being sent: record batches as they arrive, written as `DataRow`s in the formats
//! the client bound, up to the rows an `Execute` or `FETCH` asks for; the rest wait in the
//! stream (a suspended portal holds its query open, not its rows).

use std::sync::Arc;

use bytes::BufMut;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use futures::StreamExt;
use futures::stream::BoxStream;
use pgwire::messages::data::{FieldDescription, RowDescription};

use super::errors::{PgError, state};
use super::types::{self, Column, TextStyle};
use super::wire::{FLUSH_AT, Wire};
use crate::error::ApiError;
use crate::query::Encode;

/// Batches of a result, or the error that cut it.
pub type BatchStream = BoxStream<'static, Result<RecordBatch, PgError>>;

/// What the query service hands this door: the result's schema first, then its batches.
pub enum Piece {
    /// The result's schema.
    Schema(SchemaRef),
    /// Rows.
    Batch(RecordBatch),
}

/// The query service's encoder for this door: batches as they are.
pub struct PgEncoder(SchemaRef);

impl Encode for PgEncoder {
    type Piece = Piece;

    fn start(&mut self) -> Result<Vec<Piece>, ArrowError> {
        Ok(vec![Piece::Schema(Arc::clone(&self.0))])
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<Piece>, ArrowError> {
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        Ok(vec![Piece::Batch(batch.clone())])
    }

    fn finish(&mut self) -> Result<Vec<Piece>, ArrowError> {
        Ok(Vec::new())
    }

    fn size(piece: &Piece) -> u64 {
        match piece {
            Piece::Schema(_) => 0,
            Piece::Batch(b) => b
                .columns()
                .iter()
                .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64)
                .sum(),
        }
    }
}

impl PgEncoder {
    /// The maker the query service calls per attempt.
    pub fn maker() -> crate::query::MakeEncoder<Self> {
        Arc::new(|schema| Ok(Self(Arc::clone(schema))))
    }
}

/// A column as the client sees it.
#[derive(Debug, Clone)]
pub struct Field {
    /// Name.
    pub name: String,
    /// Type oid.
    pub oid: u32,
}

/// The columns of a schema.
pub fn fields(schema: &SchemaRef) -> Vec<Field> {
    schema
        .fields()
        .iter()
        .map(|f| Field {
            name: f.name().clone(),
            oid: types::pg_type(f.data_type()),
        })
        .collect()
}

/// Whether column `i` is sent in binary under the bound result formats (none: all text; one:
/// all alike; else one per column).
pub fn is_binary(formats: &[i16], i: usize) -> bool {
    match formats {
        [] => false,
        [one] => *one == 1,
        many => many.get(i).is_some_and(|f| *f == 1),
    }
}

/// `RowDescription` of `fields` in `formats`.
pub fn describe(fields: &[Field], formats: &[i16]) -> RowDescription {
    RowDescription::new(
        fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                FieldDescription::new(
                    f.name.clone(),
                    0,
                    0,
                    f.oid,
                    types::type_size(f.oid),
                    -1,
                    i16::from(is_binary(formats, i)),
                )
            })
            .collect(),
    )
}

/// Why writing rows stopped early.
pub enum Stop {
    /// The result failed (sent as an error; the rows before it were sent).
    Failed(PgError),
    /// The connection broke.
    Gone,
}

/// A result being written.
pub struct Rows {
    stream: BatchStream,
    /// The columns.
    pub fields: Vec<Field>,
    formats: Vec<i16>,
    style: TextStyle,
    /// The batch being written and the next row in it.
    current: Option<(RecordBatch, usize)>,
    /// Rows sent so far.
    pub sent: u64,
    /// Whether the stream has ended.
    pub done: bool,
    /// The query service's id for the query producing the rows (a cancel request stops it).
    pub query_id: Option<String>,
}

/// The batches of the query service's answer, schema first.
pub async fn from_service(
    stream: crate::query::ResultStream<Piece>,
) -> Result<(SchemaRef, BatchStream), PgError> {
    let mut stream = stream;
    let schema = match stream.next().await {
        Some(Ok(Piece::Schema(s))) => s,
        Some(Ok(Piece::Batch(_))) | None => {
            return Err(PgError::new(
                state::INTERNAL,
                "the result ended before its schema",
            ));
        }
        Some(Err(e)) => return Err(PgError::from(&e)),
    };
    let batches = stream
        .filter_map(|p: Result<Piece, ApiError>| async move {
            match p {
                Ok(Piece::Batch(b)) => Some(Ok(b)),
                Ok(Piece::Schema(_)) => None,
                Err(e) => Some(Err(PgError::from(&e))),
            }
        })
        .boxed();
    Ok((schema, batches))
}

impl Rows {
    /// A result of `fields` from `stream`, written in `formats`.
    pub fn new(
        stream: BatchStream,
        fields: Vec<Field>,
        formats: Vec<i16>,
        style: TextStyle,
    ) -> Self {
        Self {
            stream,
            fields,
            formats,
            style,
            current: None,
            sent: 0,
            done: false,
            query_id: None,
        }
    }

    /// The formats the rows that follow are written in.
    pub fn set_formats(&mut self, formats: Vec<i16>) {
        self.formats = formats;
    }

    /// Writes up to `max` rows (`0`: all that remain); true when the result is complete.
    ///
    /// # Errors
    /// [`Stop`]: the result failed or the client went away.
    pub async fn write(&mut self, wire: &mut Wire, max: u64) -> Result<bool, Stop> {
        let mut written: u64 = 0;
        loop {
            if max > 0 && written >= max {
                return Ok(self.done && self.current.is_none());
            }
            let Some((batch, at)) = self.current.take() else {
                if self.done {
                    return Ok(true);
                }
                match self.stream.next().await {
                    None => {
                        self.done = true;
                        return Ok(true);
                    }
                    Some(Err(e)) => {
                        self.done = true;
                        return Err(Stop::Failed(e));
                    }
                    Some(Ok(b)) => {
                        if b.num_rows() > 0 {
                            self.current = Some((b, 0));
                        }
                        continue;
                    }
                }
            };
            let rows = batch.num_rows();
            let take = if max == 0 {
                rows - at
            } else {
                usize::try_from(max - written)
                    .unwrap_or(usize::MAX)
                    .min(rows - at)
            };
            let done = self
                .rows_into(&batch, at, take, &mut wire.out)
                .map_err(Stop::Failed)?;
            written += done as u64;
            self.sent += done as u64;
            if at + done < rows {
                self.current = Some((batch, at + done));
            }
            if wire.out.len() >= FLUSH_AT {
                wire.flush().await.map_err(|_| Stop::Gone)?;
            }
        }
    }

    /// Writes rows `at..at + take` of `batch` until `out` is full; how many it wrote.
    fn rows_into(
        &self,
        batch: &RecordBatch,
        at: usize,
        take: usize,
        out: &mut bytes::BytesMut,
    ) -> Result<usize, PgError> {
        let columns = self.columns(batch)?;
        let writers = columns
            .iter()
            .map(Column::writer)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| encode_error(&e))?;
        let count = i16::try_from(writers.len()).unwrap_or(i16::MAX);
        let mut done = 0;
        while done < take && out.len() < FLUSH_AT {
            let i = at + done;
            out.put_u8(b'D');
            let len_at = out.len();
            out.put_i32(0);
            out.put_i16(count);
            for w in &writers {
                w.write(i, out);
            }
            let len = i32::try_from(out.len() - len_at).unwrap_or(i32::MAX);
            out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
            done += 1;
        }
        Ok(done)
    }

    /// The rows of `batch` as `COPY` text lines.
    fn copy_lines(
        &self,
        batch: &RecordBatch,
        format: &super::statement::CopyFormat,
    ) -> Result<Vec<Vec<u8>>, PgError> {
        let columns = self.columns(batch)?;
        let writers = columns
            .iter()
            .map(Column::writer)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| encode_error(&e))?;
        let nulls: Vec<_> = batch.columns().iter().map(|c| c.logical_nulls()).collect();
        let mut scratch = bytes::BytesMut::new();
        let mut lines = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let mut line = Vec::new();
            for (k, w) in writers.iter().enumerate() {
                if k > 0 {
                    line.push(format.delimiter as u8);
                }
                if nulls[k].as_ref().is_some_and(|n| n.is_null(i)) {
                    line.extend_from_slice(format.null.as_bytes());
                    continue;
                }
                scratch.clear();
                w.write(i, &mut scratch);
                let value = std::str::from_utf8(&scratch[4..]).unwrap_or_default();
                if format.csv {
                    line.extend_from_slice(csv_field(value, format.delimiter).as_bytes());
                } else {
                    for c in value.bytes() {
                        match c {
                            b'\\' => line.extend_from_slice(b"\\\\"),
                            b'\n' => line.extend_from_slice(b"\\n"),
                            b'\r' => line.extend_from_slice(b"\\r"),
                            b'\t' => line.extend_from_slice(b"\\t"),
                            c => line.push(c),
                        }
                    }
                }
            }
            lines.push(line);
        }
        Ok(lines)
    }

    fn columns(&self, batch: &RecordBatch) -> Result<Vec<Column>, PgError> {
        batch
            .columns()
            .iter()
            .zip(&self.fields)
            .enumerate()
            .map(|(i, (a, f))| {
                Column::new(a, f.oid, is_binary(&self.formats, i), &self.style)
                    .map_err(|e| encode_error(&e))
            })
            .collect()
    }

    /// The rest of the result as text lines for `COPY ... TO STDOUT`, each sent as `CopyData`.
    ///
    /// # Errors
    /// [`Stop`]: the result failed or the client went away.
    pub async fn copy_out(
        &mut self,
        wire: &mut Wire,
        format: &super::statement::CopyFormat,
    ) -> Result<(), Stop> {
        if format.csv && format.header {
            let names: Vec<String> = self
                .fields
                .iter()
                .map(|f| csv_field(&f.name, format.delimiter))
                .collect();
            copy_line(wire, names.join(&format.delimiter.to_string()).as_bytes());
        }
        while let Some(item) = self.stream.next().await {
            let batch = item.map_err(Stop::Failed)?;
            let lines = self.copy_lines(&batch, format).map_err(Stop::Failed)?;
            for line in lines {
                copy_line(wire, &line);
                self.sent += 1;
            }
            if wire.out.len() >= FLUSH_AT {
                wire.flush().await.map_err(|_| Stop::Gone)?;
            }
        }
        self.done = true;
        Ok(())
    }
}

fn copy_line(wire: &mut Wire, line: &[u8]) {
    let out = &mut wire.out;
    out.put_u8(b'd');
    out.put_i32(i32::try_from(line.len() + 5).unwrap_or(i32::MAX));
    out.put_slice(line);
    out.put_u8(b'\n');
}

fn csv_field(value: &str, delimiter: char) -> String {
    if value.is_empty() || value.contains(delimiter) || value.contains(['"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn encode_error(e: &ArrowError) -> PgError {
    tracing::warn!(error = %e, "pg: a result column could not be encoded.");
    PgError::new(state::INTERNAL, "a result column could not be encoded")
}
