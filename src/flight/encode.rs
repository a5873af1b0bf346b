//! Results as Flight data, encoded on the query runtime as the batches arrive: the schema
//! first (with `ARROW:FLIGHT:SQL:*` column metadata), then each batch as Arrow IPC messages,
//! cut into pieces small enough for gRPC clients' default message limit.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_flight::{FlightData, SchemaAsIpc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::{
    DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions,
};

use crate::query::{Encode, MakeEncoder};

/// The largest IPC body one message carries (gRPC clients refuse messages over 4 MiB unless
/// told otherwise; arrow-flight's own encoder aims at 2 MiB too).
const MAX_MESSAGE_BYTES: usize = 2 << 20;

/// A Flight SQL result schema: every field nullable (the schema announced before the statement
/// runs comes from its plan, the streamed one from its batches, and clients require the two to
/// be equal, nullability included), with each column's SQL type, precision and scale.
pub fn announced(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            Field::new(f.name(), f.data_type().clone(), true)
                .with_metadata(column_metadata(f.data_type(), None))
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// `ARROW:FLIGHT:SQL:*` metadata of a column of `data_type`, and of the table it belongs to.
pub fn column_metadata(
    data_type: &DataType,
    table: Option<(&str, &str, &str)>,
) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let mut put = |k: &str, v: String| {
        m.insert(format!("ARROW:FLIGHT:SQL:{k}"), v);
    };
    put("TYPE_NAME", sql_type_name(data_type));
    if let Some((precision, scale)) = precision_scale(data_type) {
        put("PRECISION", precision.to_string());
        if let Some(scale) = scale {
            put("SCALE", scale.to_string());
        }
    }
    put("IS_AUTO_INCREMENT", "0".into());
    put(
        "IS_CASE_SENSITIVE",
        if matches!(
            data_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            "1"
        } else {
            "0"
        }
        .into(),
    );
    put("IS_READ_ONLY", "1".into());
    put("IS_SEARCHABLE", "1".into());
    if let Some((catalog, schema, table)) = table {
        put("CATALOG_NAME", catalog.to_owned());
        put("DB_SCHEMA_NAME", schema.to_owned());
        put("TABLE_NAME", table.to_owned());
    }
    m
}

/// The SQL name of an Arrow type, as DataFusion's SQL spells it.
fn sql_type_name(t: &DataType) -> String {
    match t {
        DataType::Null => "NULL".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "TINYINT UNSIGNED".into(),
        DataType::UInt16 => "SMALLINT UNSIGNED".into(),
        DataType::UInt32 => "INTEGER UNSIGNED".into(),
        DataType::UInt64 => "BIGINT UNSIGNED".into(),
        DataType::Float16 | DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "VARBINARY".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Interval(_) | DataType::Duration(_) => "INTERVAL".into(),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => "ARRAY".into(),
        DataType::Struct(_) => "STRUCT".into(),
        DataType::Map(..) => "MAP".into(),
        DataType::Dictionary(_, value) => sql_type_name(value),
        other => other.to_string(),
    }
}

/// Precision (digits, or fractional-second digits for times) and scale, where a type has them.
fn precision_scale(t: &DataType) -> Option<(u8, Option<i8>)> {
    let unit_digits = |u: &TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    };
    Some(match t {
        DataType::Int8 | DataType::UInt8 => (3, Some(0)),
        DataType::Int16 | DataType::UInt16 => (5, Some(0)),
        DataType::Int32 | DataType::UInt32 => (10, Some(0)),
        DataType::Int64 => (19, Some(0)),
        DataType::UInt64 => (20, Some(0)),
        DataType::Float32 => (24, None),
        DataType::Float64 => (53, None),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => (*p, Some(*s)),
        DataType::Timestamp(u, _) | DataType::Time32(u) | DataType::Time64(u) => {
            (unit_digits(u), None)
        }
        _ => return None,
    })
}

/// Encodes one result as Flight data.
pub struct FlightEncoder {
    schema: SchemaRef,
    generator: IpcDataGenerator,
    dictionaries: DictionaryTracker,
    options: IpcWriteOptions,
    context: IpcWriteContext,
}

impl FlightEncoder {
    /// The maker the query service calls with each attempt's schema.
    pub fn maker() -> MakeEncoder<Self> {
        Arc::new(|schema: &SchemaRef| {
            Ok(Self {
                schema: announced(schema),
                generator: IpcDataGenerator::default(),
                dictionaries: DictionaryTracker::new(false),
                options: IpcWriteOptions::default(),
                context: IpcWriteContext::default(),
            })
        })
    }

    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<FlightData>) -> Result<(), ArrowError> {
        // The announced schema's fields are all nullable; the columns are the batch's.
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), batch.columns().to_vec())?;
        let (dictionaries, data) = self.generator.encode(
            &batch,
            &mut self.dictionaries,
            &self.options,
            &mut self.context,
        )?;
        out.extend(dictionaries.into_iter().map(FlightData::from));
        out.push(FlightData::from(data));
        Ok(())
    }
}

/// The bytes of a batch's rows (its slice of shared buffers only).
fn slice_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
        .sum()
}

impl Encode for FlightEncoder {
    type Piece = FlightData;

    fn start(&mut self) -> Result<Vec<FlightData>, ArrowError> {
        Ok(vec![SchemaAsIpc::new(&self.schema, &self.options).into()])
    }

    /// An empty batch sends nothing (the schema went first); a large one goes as row slices
    /// of at most about [`MAX_MESSAGE_BYTES`].
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<FlightData>, ArrowError> {
        let mut out = Vec::new();
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(out);
        }
        let pieces = slice_bytes(batch)
            .div_ceil(MAX_MESSAGE_BYTES)
            .clamp(1, rows);
        let per = rows.div_ceil(pieces);
        for offset in (0..rows).step_by(per) {
            self.encode(&batch.slice(offset, per.min(rows - offset)), &mut out)?;
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<FlightData>, ArrowError> {
        Ok(Vec::new())
    }

    fn size(piece: &FlightData) -> u64 {
        (piece.data_header.len() + piece.data_body.len()) as u64
    }
}
