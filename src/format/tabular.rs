//! Binary and tabular formats through arrow-rs writers: Arrow IPC stream, CSV, Parquet.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::csv;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::StreamEncoder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;

use super::BatchEncoder;

fn take(buf: &mut Vec<u8>) -> Bytes {
    Bytes::from(std::mem::take(buf))
}

/// Arrow IPC stream: the schema message, one record-batch message per batch, end of stream.
///
/// Built on arrow-ipc's [`StreamEncoder`], which frames each batch around the batch's own
/// buffers instead of copying them into one contiguous message: large buffers go to the socket
/// as they are, small ones (headers, padding, validity bitmaps) are gathered into one piece.
pub struct ArrowStreamEncoder {
    encoder: Option<StreamEncoder>,
}

/// Pieces smaller than this are copied together; larger ones are sent without a copy.
const GATHER_BELOW: usize = 64 * 1024;

/// An Arrow buffer handed to `bytes` without a copy; the batch's memory lives until it is sent.
struct Shared(Buffer);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

fn gather(buffers: Vec<Buffer>) -> Vec<Bytes> {
    let mut pieces = Vec::new();
    let mut small = BytesMut::new();
    for buffer in buffers {
        if buffer.len() < GATHER_BELOW {
            small.extend_from_slice(buffer.as_slice());
        } else {
            if !small.is_empty() {
                pieces.push(small.split().freeze());
            }
            pieces.push(Bytes::from_owner(Shared(buffer)));
        }
    }
    if !small.is_empty() {
        pieces.push(small.freeze());
    }
    pieces
}

fn ended() -> ArrowError {
    ArrowError::InvalidArgumentError("the IPC stream has ended".into())
}

impl ArrowStreamEncoder {
    /// Starts a stream for `schema`.
    ///
    /// # Errors
    /// When the schema cannot be encoded.
    pub fn new(schema: &SchemaRef) -> Result<Self, ArrowError> {
        Ok(Self {
            encoder: Some(StreamEncoder::try_new(schema)?),
        })
    }

    fn encoder(&mut self) -> Result<&mut StreamEncoder, ArrowError> {
        self.encoder.as_mut().ok_or_else(ended)
    }
}

impl BatchEncoder for ArrowStreamEncoder {
    fn start(&mut self) -> Result<Bytes, ArrowError> {
        // The schema message goes out with the first batch, or with the end of an empty stream.
        Ok(Bytes::new())
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<Bytes>, ArrowError> {
        Ok(gather(self.encoder()?.encode(batch)?))
    }

    fn finish(&mut self) -> Result<Bytes, ArrowError> {
        let encoder = self.encoder.take().ok_or_else(ended)?;
        let mut tail = BytesMut::new();
        for buffer in encoder.finish()? {
            tail.extend_from_slice(buffer.as_slice());
        }
        Ok(tail.freeze())
    }

    fn is_ipc_stream(&self) -> bool {
        true
    }
}

/// CSV with a header row (written even when there are no rows).
pub struct CsvEncoder {
    schema: SchemaRef,
    sink: SharedBuf,
    writer: csv::Writer<SharedBuf>,
}

impl CsvEncoder {
    /// A CSV writer for `schema`.
    pub fn new(schema: &SchemaRef) -> Self {
        let sink = SharedBuf::default();
        Self {
            schema: Arc::clone(schema),
            writer: csv::WriterBuilder::new()
                .with_header(true)
                .build(sink.clone()),
            sink,
        }
    }
}

impl BatchEncoder for CsvEncoder {
    fn start(&mut self) -> Result<Bytes, ArrowError> {
        // An empty batch makes the writer emit the header now.
        self.writer
            .write(&RecordBatch::new_empty(Arc::clone(&self.schema)))?;
        Ok(self.sink.drain())
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<Bytes>, ArrowError> {
        self.writer.write(batch)?;
        Ok(vec![self.sink.drain()])
    }

    fn finish(&mut self) -> Result<Bytes, ArrowError> {
        Ok(self.sink.drain())
    }
}

/// A sink a writer appends to and the encoder drains between batches.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn drain(&self) -> Bytes {
        match self.0.lock() {
            Ok(mut v) => take(&mut v),
            Err(poisoned) => take(&mut poisoned.into_inner()),
        }
    }
}

impl Write for SharedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut v = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("parquet buffer poisoned"))?;
        v.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Rows per Parquet row group: bounds the encoder's memory while keeping groups useful.
const PARQUET_ROW_GROUP_ROWS: usize = 64 * 1024;

/// A Parquet file, streamed row group by row group; the footer comes last.
pub struct ParquetEncoder {
    sink: SharedBuf,
    writer: Option<ArrowWriter<SharedBuf>>,
}

impl ParquetEncoder {
    /// A Parquet writer for `schema`.
    ///
    /// # Errors
    /// When the schema has no Parquet equivalent.
    pub fn new(schema: &SchemaRef) -> Result<Self, ArrowError> {
        let sink = SharedBuf::default();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(sink.clone(), Arc::clone(schema), Some(props))
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        Ok(Self {
            sink,
            writer: Some(writer),
        })
    }
}

impl BatchEncoder for ParquetEncoder {
    fn start(&mut self) -> Result<Bytes, ArrowError> {
        Ok(self.sink.drain())
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<Bytes>, ArrowError> {
        if let Some(w) = self.writer.as_mut() {
            w.write(batch)
                .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        }
        Ok(vec![self.sink.drain()])
    }

    fn finish(&mut self) -> Result<Bytes, ArrowError> {
        if let Some(w) = self.writer.take() {
            w.close()
                .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        }
        Ok(self.sink.drain())
    }
}
