//! JSON (`{"columns": [...], "rows": [[...], ...]}`) and NDJSON (one object per row).
//!
//! Cells are encoded by arrow-json's encoders, with one override: integers outside ±(2^53−1)
//! and decimals with more than 15 significant digits are written as strings, because a JSON
//! number parsed as an IEEE double cannot hold them exactly.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type, SchemaRef, UInt64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{
    Encoder, EncoderFactory, EncoderOptions, NullableEncoder, make_encoder,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::BatchEncoder;

/// Largest integer magnitude a double holds exactly.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// Significant decimal digits a double round-trips.
const MAX_SAFE_DECIMAL_DIGITS: usize = 15;

#[derive(Debug)]
struct ExactNumbers;

struct Int64Encoder<'a>(&'a datafusion::arrow::array::Int64Array);
struct UInt64Encoder<'a>(&'a datafusion::arrow::array::UInt64Array);
struct DecimalEncoder<'a>(ArrayFormatter<'a>);

impl Encoder for Int64Encoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let v = self.0.value(idx);
        write_number(out, &v.to_string(), v.unsigned_abs() > MAX_SAFE_INTEGER);
    }
}

impl Encoder for UInt64Encoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let v = self.0.value(idx);
        write_number(out, &v.to_string(), v > MAX_SAFE_INTEGER);
    }
}

impl Encoder for DecimalEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let text = self.0.value(idx).to_string();
        let digits = text
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>();
        let significant = digits.trim_start_matches('0').len();
        write_number(out, &text, significant > MAX_SAFE_DECIMAL_DIGITS);
    }
}

fn write_number(out: &mut Vec<u8>, text: &str, as_string: bool) {
    if as_string {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

impl EncoderFactory for ExactNumbers {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let nulls = array.nulls().cloned();
        let encoder: Box<dyn Encoder + 'a> = match array.data_type() {
            DataType::Int64 => Box::new(Int64Encoder(array.as_primitive::<Int64Type>())),
            DataType::UInt64 => Box::new(UInt64Encoder(array.as_primitive::<UInt64Type>())),
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => Box::new(DecimalEncoder(ArrayFormatter::try_new(
                array,
                &FormatOptions::default(),
            )?)),
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, nulls)))
    }
}

fn options() -> EncoderOptions {
    EncoderOptions::default()
        .with_explicit_nulls(true)
        .with_encoder_factory(Arc::new(ExactNumbers))
}

/// Encodes every row of `batch` through `row`, which gets each column's encoder.
fn encode_rows(
    batch: &RecordBatch,
    options: &EncoderOptions,
    mut row: impl FnMut(&mut Vec<u8>, usize, &mut [NullableEncoder<'_>]),
) -> Result<Vec<Bytes>, ArrowError> {
    let schema = batch.schema();
    let mut encoders = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| make_encoder(f, c.as_ref(), options))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(batch.num_rows() * 16 * batch.num_columns().max(1));
    for i in 0..batch.num_rows() {
        row(&mut out, i, &mut encoders);
    }
    Ok(vec![Bytes::from(out)])
}

fn encode_cell(out: &mut Vec<u8>, enc: &mut NullableEncoder<'_>, idx: usize) {
    if enc.is_null(idx) {
        out.extend_from_slice(b"null");
    } else {
        enc.encode(idx, out);
    }
}

/// Row `i` as a JSON array of its cells.
fn encode_array(out: &mut Vec<u8>, encoders: &mut [NullableEncoder<'_>], i: usize) {
    out.push(b'[');
    for (c, enc) in encoders.iter_mut().enumerate() {
        if c > 0 {
            out.push(b',');
        }
        encode_cell(out, enc, i);
    }
    out.push(b']');
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// `[{"name", "type", "nullable"}, ...]`: how every JSON body describes columns.
pub fn columns(schema: &SchemaRef) -> Vec<sluice_schemas::api::Column> {
    schema
        .fields()
        .iter()
        .map(|f| sluice_schemas::api::Column {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect()
}

/// `{"columns":[{"name","type","nullable"}],"rows":[[...],...]}`.
pub struct JsonEncoder {
    schema: SchemaRef,
    options: EncoderOptions,
    first_row: bool,
}

impl JsonEncoder {
    /// An encoder for `schema`.
    pub fn new(schema: &SchemaRef) -> Self {
        Self {
            schema: Arc::clone(schema),
            options: options(),
            first_row: true,
        }
    }
}

impl BatchEncoder for JsonEncoder {
    fn start(&mut self) -> Result<Bytes, ArrowError> {
        let columns = columns(&self.schema);
        let head =
            serde_json::to_string(&columns).map_err(|e| ArrowError::JsonError(e.to_string()))?;
        Ok(Bytes::from(format!("{{\"columns\":{head},\"rows\":[")))
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<Bytes>, ArrowError> {
        let first_row = &mut self.first_row;
        encode_rows(batch, &self.options, |out, i, encoders| {
            if !std::mem::take(first_row) {
                out.push(b',');
            }
            encode_array(out, encoders, i);
        })
    }

    fn finish(&mut self) -> Result<Bytes, ArrowError> {
        Ok(Bytes::from_static(b"]}"))
    }
}

/// Each row a JSON array (the cells of [`JsonEncoder`]'s `rows`) and a newline; nothing
/// before or after. A raw newline never occurs inside a row (JSON escapes it in strings).
pub struct RowLinesEncoder {
    options: EncoderOptions,
}

impl RowLinesEncoder {
    /// An encoder (the schema is the reader's to describe).
    pub fn new() -> Self {
        Self { options: options() }
    }
}

impl Default for RowLinesEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchEncoder for RowLinesEncoder {
    fn start(&mut self) -> Result<Bytes, ArrowError> {
        Ok(Bytes::new())
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<Bytes>, ArrowError> {
        encode_rows(batch, &self.options, |out, i, encoders| {
            encode_array(out, encoders, i);
            out.push(b'\n');
        })
    }

    fn finish(&mut self) -> Result<Bytes, ArrowError> {
        Ok(Bytes::new())
    }
}

/// One JSON object per line.
pub struct NdjsonEncoder {
    keys: Vec<String>,
    options: EncoderOptions,
}

impl NdjsonEncoder {
    /// An encoder for `schema`.
    pub fn new(schema: &SchemaRef) -> Self {
        Self {
            keys: schema
                .fields()
                .iter()
                .map(|f| json_string(f.name()))
                .collect(),
            options: options(),
        }
    }
}

impl BatchEncoder for NdjsonEncoder {
    fn start(&mut self) -> Result<Bytes, ArrowError> {
        Ok(Bytes::new())
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<Bytes>, ArrowError> {
        let keys = &self.keys;
        encode_rows(batch, &self.options, |out, i, encoders| {
            out.push(b'{');
            for (c, enc) in encoders.iter_mut().enumerate() {
                if c > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(keys[c].as_bytes());
                out.push(b':');
                encode_cell(out, enc, i);
            }
            out.extend_from_slice(b"}\n");
        })
    }

    fn finish(&mut self) -> Result<Bytes, ArrowError> {
        Ok(Bytes::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Decimal128Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("d", DataType::Decimal128(38, 2), true),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(i64::MAX), None])),
                Arc::new(
                    Decimal128Array::from(vec![Some(12345), Some(10_i128.pow(20)), None])
                        .with_precision_and_scale(38, 2)
                        .unwrap(),
                ),
                Arc::new(StringArray::from(vec![Some("a\"b"), None, Some("")])),
            ],
        )
        .unwrap()
    }

    fn run(mut enc: Box<dyn BatchEncoder>, b: &RecordBatch) -> String {
        let mut out = Vec::new();
        out.extend_from_slice(&enc.start().unwrap());
        for _ in 0..2 {
            for piece in enc.encode(b).unwrap() {
                out.extend_from_slice(&piece);
            }
        }
        out.extend_from_slice(&enc.finish().unwrap());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_rows_and_exact_numbers() {
        let b = batch();
        let text = run(Box::new(JsonEncoder::new(&b.schema())), &b);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["columns"][1]["type"], "Decimal128(38, 2)");
        assert_eq!(v["rows"].as_array().unwrap().len(), 6);
        assert_eq!(v["rows"][0], serde_json::json!([1, 123.45, "a\"b"]));
        assert_eq!(
            v["rows"][1],
            serde_json::json!(["9223372036854775807", "1000000000000000000.00", null])
        );
        assert_eq!(v["rows"][2], serde_json::json!([null, null, ""]));
    }

    #[test]
    fn json_with_no_rows_keeps_columns() {
        let b = batch();
        let mut enc = JsonEncoder::new(&b.schema());
        let text = format!(
            "{}{}",
            String::from_utf8(enc.start().unwrap().to_vec()).unwrap(),
            String::from_utf8(enc.finish().unwrap().to_vec()).unwrap()
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["columns"].as_array().unwrap().len(), 3);
        assert_eq!(v["rows"], serde_json::json!([]));
    }

    #[test]
    fn ndjson_objects() {
        let b = batch();
        let text = run(Box::new(NdjsonEncoder::new(&b.schema())), &b);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[1]["i"], "9223372036854775807");
        assert_eq!(lines[2]["s"], "");
        assert!(lines[2]["i"].is_null());
    }
}
