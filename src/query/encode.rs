//! What a door wants a result as: its own wire pieces, made on the query runtime as the
//! batches arrive (HTTP's formats, later Flight's messages), or the record batches themselves.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;

use crate::format::BatchEncoder;

/// Turns a result into the pieces a door sends, incrementally. The query's producer calls it
/// on the query runtime, so a door's worker threads only move pieces.
pub trait Encode: Send + 'static {
    /// One piece sent in order.
    type Piece: Send + 'static;
    /// Pieces before any batch (a schema, a header row).
    ///
    /// # Errors
    /// The writer cannot start.
    fn start(&mut self) -> Result<Vec<Self::Piece>, ArrowError>;
    /// Pieces for one batch (none when the writer holds it for later).
    ///
    /// # Errors
    /// The batch cannot be written.
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<Self::Piece>, ArrowError>;
    /// Pieces that end the result.
    ///
    /// # Errors
    /// The writer cannot finish.
    fn finish(&mut self) -> Result<Vec<Self::Piece>, ArrowError>;
    /// The piece's size as the query's record counts it (bytes sent).
    fn size(piece: &Self::Piece) -> u64;
    /// The whole answer as pieces when this encoder's output is `ipc`, an Arrow IPC stream
    /// of the result (a cached one) taken as it is; `None` when it encodes otherwise.
    fn whole_ipc(&mut self, ipc: &Bytes) -> Option<Vec<Self::Piece>> {
        let _ = ipc;
        None
    }
}

/// Makes a fresh encoder for a result of the given schema (once per attempt, and for a cached
/// answer).
pub type MakeEncoder<E> = Arc<dyn Fn(&SchemaRef) -> Result<E, ArrowError> + Send + Sync>;

fn non_empty(pieces: Vec<Bytes>) -> Vec<Bytes> {
    let mut pieces = pieces;
    pieces.retain(|b| !b.is_empty());
    pieces
}

/// A byte format (Arrow IPC, JSON, CSV, Parquet, ...).
impl Encode for Box<dyn BatchEncoder> {
    type Piece = Bytes;

    fn start(&mut self) -> Result<Vec<Bytes>, ArrowError> {
        BatchEncoder::start(self.as_mut()).map(|b| non_empty(vec![b]))
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<Bytes>, ArrowError> {
        self.encode(batch).map(non_empty)
    }

    fn finish(&mut self) -> Result<Vec<Bytes>, ArrowError> {
        BatchEncoder::finish(self.as_mut()).map(|b| non_empty(vec![b]))
    }

    fn size(piece: &Bytes) -> u64 {
        piece.len() as u64
    }

    fn whole_ipc(&mut self, ipc: &Bytes) -> Option<Vec<Bytes>> {
        self.is_ipc_stream().then(|| vec![ipc.clone()])
    }
}

/// The record batches themselves, for a door that shapes rows itself (MCP's capped JSON).
/// A batch counts as the Arrow memory of its rows (a slice counts its part, not the buffers
/// it shares with other slices).
#[derive(Debug, Clone, Copy, Default)]
pub struct Batches;

impl Encode for Batches {
    type Piece = RecordBatch;

    fn start(&mut self) -> Result<Vec<RecordBatch>, ArrowError> {
        Ok(Vec::new())
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>, ArrowError> {
        Ok(vec![batch.clone()])
    }

    fn finish(&mut self) -> Result<Vec<RecordBatch>, ArrowError> {
        Ok(Vec::new())
    }

    fn size(piece: &RecordBatch) -> u64 {
        piece
            .columns()
            .iter()
            .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64)
            .sum()
    }
}

impl Batches {
    /// The maker of this encoder.
    pub fn maker() -> MakeEncoder<Self> {
        Arc::new(|_| Ok(Self))
    }
}
