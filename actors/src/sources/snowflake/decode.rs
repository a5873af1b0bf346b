//! Snowflake's result columns into the Arrow types the plan expects, strictly: a value that
//! does not fit its column (overflow, a fraction where an integer is expected, precision
//! lost, a timestamp out of range) is an error naming the column, never NULL or rounded.
//!
//! Snowflake's Arrow encodings, by the column's `rowtype` (its Arrow fields carry the same
//! facts as metadata):
//! - `fixed` (NUMBER(p, s)): `int8`..`int64` holding the value times 10^s (scaled
//!   integers), or `decimal128(p, s)`;
//! - `real`: `double`; `text`, `variant`, `object`, `array`: UTF-8 (JSON text for the last
//!   three); `boolean`, `date` (`date32`), `binary`;
//! - `time`: `int64` in units of 10^-scale seconds;
//! - `timestamp_ntz`, `timestamp_ltz`: `int64` in units of 10^-scale seconds, or a struct
//!   `{epoch: seconds, fraction: nanoseconds}`;
//! - `timestamp_tz`: a struct `{epoch: units of 10^-scale s, timezone}` or `{epoch: seconds,
//!   fraction, timezone}`, the timezone an offset in minutes plus 1440. The epoch is UTC, so
//!   the instant ignores the offset. A struct whose children are NULL is NULL.
//!
//! The JSON rowset (`queryResultFormat: json`) holds the same values as strings; it is read
//! into those Arrow encodings first, so one set of checks serves both.

use std::sync::Arc;

use sluice_planner::datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Decimal128Array, Float64Array, Int64Array,
    PrimitiveArray, RecordBatch, StringArray, StructArray, new_null_array,
};
use sluice_planner::datafusion::arrow::buffer::Buffer;
use sluice_planner::datafusion::arrow::compute::cast;
use sluice_planner::datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Decimal128Type, DecimalType, Field, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, Schema, SchemaRef, Time64MicrosecondType,
    Time64NanosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};

use super::protocol::RowType;

/// The batches of an Arrow IPC stream as Snowflake writes it. Snowflake (and fakesnow)
/// declare a timestamp struct's children non-nullable yet send a NULL timestamp as a valid
/// struct with null children, which arrow's reader refuses; so the stream's schema is read
/// first and every field made nullable before its batches are decoded (and validated).
///
/// # Errors
/// A stream that does not read, or that uses dictionaries (Snowflake does not).
pub fn read_ipc(buffer: Buffer) -> Result<Vec<RecordBatch>, String> {
    use sluice_planner::datafusion::arrow::ipc::{self, MessageHeader, convert, reader};

    let bytes = buffer.as_slice();

    let bad = |what: &str| format!("an Arrow result that does not read: {what}");
    let mut at = 0usize;
    let mut schema: Option<SchemaRef> = None;
    let mut out = Vec::new();
    let word = |at: usize| -> Result<u32, String> {
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| bad("cut short"))
    };
    while at < bytes.len() {
        let mut len = word(at)?;
        at += 4;
        if len == 0xFFFF_FFFF {
            len = word(at)?;
            at += 4;
        }
        if len == 0 {
            break;
        }
        let meta_end = at + len as usize;
        let meta = bytes.get(at..meta_end).ok_or_else(|| bad("cut short"))?;
        let message = ipc::root_as_message(meta).map_err(|e| bad(&e.to_string()))?;
        let body_len = usize::try_from(message.bodyLength()).map_err(|_| bad("a negative body"))?;
        if meta_end + body_len > bytes.len() {
            return Err(bad("cut short"));
        }
        // The batch's buffers are slices of the one buffer: nothing is copied.
        let body = buffer.slice_with_length(meta_end, body_len);
        at = meta_end + body_len;
        match message.header_type() {
            MessageHeader::Schema => {
                let fb = message.header_as_schema().ok_or_else(|| bad("no schema"))?;
                schema = Some(Arc::new(nullable(&convert::fb_to_schema(fb))));
            }
            MessageHeader::RecordBatch => {
                let batch = message
                    .header_as_record_batch()
                    .ok_or_else(|| bad("no batch"))?;
                let schema = schema
                    .as_ref()
                    .ok_or_else(|| bad("a batch before the schema"))?;
                let decoded = reader::read_record_batch(
                    &body,
                    batch,
                    Arc::clone(schema),
                    &std::collections::HashMap::new(),
                    None,
                    &message.version(),
                )
                .map_err(|e| bad(&e.to_string()))?;
                out.push(decoded);
            }
            other => return Err(bad(&format!("an IPC message of type {other:?}"))),
        }
    }
    Ok(out)
}

/// `schema` with every field, at every depth, nullable.
fn nullable(schema: &Schema) -> Schema {
    fn field(f: &Field) -> Field {
        let data_type = match f.data_type() {
            DataType::Struct(children) => {
                DataType::Struct(children.iter().map(|c| field(c)).collect::<Vec<_>>().into())
            }
            other => other.clone(),
        };
        f.clone().with_data_type(data_type).with_nullable(true)
    }
    Schema::new_with_metadata(
        schema.fields().iter().map(|f| field(f)).collect::<Vec<_>>(),
        schema.metadata().clone(),
    )
}

/// Converts one batch Snowflake sent (columns in `rowtype` order) into `schema`.
///
/// # Errors
/// The first value that does not fit, naming its column.
pub fn convert(
    batch: &RecordBatch,
    rowtype: &[RowType],
    schema: &SchemaRef,
) -> Result<RecordBatch, String> {
    if batch.num_columns() != schema.fields().len() || rowtype.len() != schema.fields().len() {
        return Err(format!(
            "snowflake sent {} columns where {} were expected",
            batch.num_columns(),
            schema.fields().len()
        ));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(rowtype)
        .zip(schema.fields())
        .map(|((col, rt), field)| {
            column(col, rt, field).map_err(|why| format!("column {}: {why}", field.name()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| e.to_string())
}

fn scale_of(rt: &RowType) -> Result<u32, String> {
    let s = rt.scale.unwrap_or(0);
    u32::try_from(s)
        .ok()
        .filter(|s| *s <= 38)
        .ok_or_else(|| format!("a scale of {s}"))
}

fn pow10(n: u32) -> i128 {
    10i128.pow(n)
}

/// One column.
fn column(col: &ArrayRef, rt: &RowType, field: &Field) -> Result<ArrayRef, String> {
    let target = field.data_type();
    if col.data_type() == &DataType::Null {
        return Ok(new_null_array(target, col.len()));
    }
    match rt.type_name.to_ascii_lowercase().as_str() {
        "fixed" => fixed(col, scale_of(rt)?, target),
        "time" => time(col, scale_of(rt)?, target),
        "timestamp_ntz" | "timestamp_ltz" | "timestamp_tz" => timestamp(col, scale_of(rt)?, target),
        "real" | "float" | "double" => same_kind(col, target, DataType::is_floating),
        "text" | "variant" | "object" | "array" | "map" => same_kind(col, target, |t| {
            matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        }),
        "boolean" => same_kind(col, target, |t| t == &DataType::Boolean),
        "date" => same_kind(col, target, |t| t == &DataType::Date32),
        "binary" => same_kind(col, target, |t| {
            matches!(
                t,
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView
            )
        }),
        other => Err(format!("snowflake type {other} is not read by Sluice")),
    }
}

/// A column whose Snowflake encoding and expected type are of one kind: cast between
/// representations (UTF-8 and views, float widths) that keep every value.
fn same_kind(
    col: &ArrayRef,
    target: &DataType,
    ok: impl Fn(&DataType) -> bool,
) -> Result<ArrayRef, String> {
    if col.data_type() == target {
        return Ok(Arc::clone(col));
    }
    if !ok(col.data_type()) || !ok(target) {
        return Err(format!(
            "{} sent where {target} is expected",
            col.data_type()
        ));
    }
    if col.data_type() == &DataType::Float32 || target != &DataType::Float32 {
        cast(col, target).map_err(|e| e.to_string())
    } else {
        Err(format!(
            "{} would lose precision as {target}",
            col.data_type()
        ))
    }
}

fn primitive_values<T: ArrowPrimitiveType>(col: &ArrayRef) -> Option<Vec<Option<i128>>>
where
    T::Native: Into<i128>,
{
    let a = col.as_any().downcast_ref::<PrimitiveArray<T>>()?;
    Some(a.iter().map(|v| v.map(Into::into)).collect())
}

/// Integer-like values of `col` (any integer width, or a decimal's unscaled value).
fn integers(col: &ArrayRef) -> Result<Vec<Option<i128>>, String> {
    let v = match col.data_type() {
        DataType::Int8 => primitive_values::<Int8Type>(col),
        DataType::Int16 => primitive_values::<Int16Type>(col),
        DataType::Int32 => primitive_values::<Int32Type>(col),
        DataType::Int64 => primitive_values::<Int64Type>(col),
        DataType::UInt8 => primitive_values::<UInt8Type>(col),
        DataType::UInt16 => primitive_values::<UInt16Type>(col),
        DataType::UInt32 => primitive_values::<UInt32Type>(col),
        DataType::UInt64 => primitive_values::<UInt64Type>(col),
        DataType::Decimal128(..) => primitive_values::<Decimal128Type>(col),
        _ => None,
    };
    v.ok_or_else(|| format!("{} sent for a number", col.data_type()))
}

/// NUMBER(p, s): `col` holds each value times 10^`scale` (integers or a decimal's unscaled
/// values).
fn fixed(col: &ArrayRef, scale: u32, target: &DataType) -> Result<ArrayRef, String> {
    let scale = match col.data_type() {
        DataType::Decimal128(_, s) => u32::try_from(*s).map_err(|_| "a negative scale")?,
        _ => scale,
    };
    // Already what the plan expects (an integer at scale 0, or the very decimal type).
    match target {
        DataType::Decimal128(p, _) if col.data_type() == target => {
            let decimals = col
                .as_any()
                .downcast_ref::<Decimal128Array>()
                .ok_or("a decimal column that is not one")?;
            decimals
                .validate_decimal_precision(*p)
                .map_err(|e| e.to_string())?;
            return Ok(Arc::clone(col));
        }
        t if scale == 0 && col.data_type() == t => return Ok(Arc::clone(col)),
        _ => {}
    }
    let values = integers(col)?;
    let show = |v: i128| Decimal128Type::format_decimal(v, 38, i8::try_from(scale).unwrap_or(0));
    match target {
        t if t.is_integer() => {
            let (lo, hi) = int_range(t).ok_or_else(|| format!("unexpected type {t}"))?;
            let unit = pow10(scale);
            let ints = values
                .iter()
                .map(|v| {
                    v.map(|v| {
                        if v % unit != 0 {
                            return Err(format!(
                                "{} has a fraction where {t} is expected",
                                show(v)
                            ));
                        }
                        let n = v / unit;
                        if n < lo || n > hi {
                            return Err(format!("{} does not fit {t}", show(v)));
                        }
                        Ok(n)
                    })
                    .transpose()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let wide: ArrayRef = Arc::new(
                Decimal128Array::from(ints)
                    .with_precision_and_scale(38, 0)
                    .map_err(|e| e.to_string())?,
            );
            cast(&wide, t).map_err(|e| e.to_string())
        }
        DataType::Decimal128(p, s) => {
            let s = u32::try_from(*s).map_err(|_| "a negative scale")?;
            let limit = pow10(u32::from(*p));
            let out = values
                .iter()
                .map(|v| {
                    v.map(|v| {
                        let r = if s >= scale {
                            v.checked_mul(pow10(s - scale))
                        } else if v % pow10(scale - s) == 0 {
                            Some(v / pow10(scale - s))
                        } else {
                            return Err(format!("{} would be rounded to scale {s}", show(v)));
                        };
                        r.filter(|r| r.abs() < limit)
                            .ok_or_else(|| format!("{} does not fit {target}", show(v)))
                    })
                    .transpose()
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(
                Decimal128Array::from(out)
                    .with_precision_and_scale(*p, i8::try_from(s).unwrap_or(0))
                    .map_err(|e| e.to_string())?,
            ))
        }
        DataType::Float64 => {
            let unit = pow10(scale) as f64;
            #[allow(clippy::cast_precision_loss)]
            let out: Float64Array = values.iter().map(|v| v.map(|v| v as f64 / unit)).collect();
            Ok(Arc::new(out))
        }
        t => Err(format!("a number sent where {t} is expected")),
    }
}

fn int_range(t: &DataType) -> Option<(i128, i128)> {
    Some(match t {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => (i64::MIN.into(), i64::MAX.into()),
        DataType::UInt8 => (0, u8::MAX.into()),
        DataType::UInt16 => (0, u16::MAX.into()),
        DataType::UInt32 => (0, u32::MAX.into()),
        DataType::UInt64 => (0, u64::MAX.into()),
        _ => return None,
    })
}

/// Values in units of 10^-`from` seconds as units of 10^-`to` seconds, exactly.
fn rescale(v: i128, from: u32, to: u32) -> Option<i128> {
    if to >= from {
        v.checked_mul(pow10(to - from))
    } else {
        (v % pow10(from - to) == 0).then(|| v / pow10(from - to))
    }
}

fn unit_digits(unit: TimeUnit) -> u32 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// TIME: `int64` in units of 10^-scale seconds.
fn time(col: &ArrayRef, scale: u32, target: &DataType) -> Result<ArrayRef, String> {
    let values = integers(col)?;
    let digits = match target {
        DataType::Time64(TimeUnit::Nanosecond) => 9,
        DataType::Time64(TimeUnit::Microsecond) => 6,
        t => return Err(format!("a time sent where {t} is expected")),
    };
    let out = values
        .iter()
        .map(|v| {
            v.map(|v| {
                rescale(v, scale, digits)
                    .and_then(|n| i64::try_from(n).ok())
                    .ok_or_else(|| format!("time {v}e-{scale} s would lose precision"))
            })
            .transpose()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match digits {
        9 => Arc::new(PrimitiveArray::<Time64NanosecondType>::from(out)),
        _ => Arc::new(PrimitiveArray::<Time64MicrosecondType>::from(out)),
    })
}

/// The instants of a timestamp column, in nanoseconds since the epoch.
fn instants(col: &ArrayRef, scale: u32) -> Result<Vec<Option<i128>>, String> {
    if let Some(s) = col.as_any().downcast_ref::<StructArray>() {
        let child = |name: &str| s.column_by_name(name).map(integers).transpose();
        let epoch = child("epoch")?.ok_or("a timestamp struct without epoch")?;
        let fraction = child("fraction")?;
        return Ok((0..s.len())
            .map(|i| {
                if s.is_null(i) {
                    return None;
                }
                let e = epoch.get(i).copied().flatten()?;
                match &fraction {
                    // {epoch: seconds, fraction: nanoseconds[, timezone]}
                    Some(f) => Some(e * 1_000_000_000 + f.get(i).copied().flatten().unwrap_or(0)),
                    // {epoch: units of 10^-scale s, timezone}
                    None => rescale(e, scale, 9),
                }
            })
            .collect());
    }
    Ok(integers(col)?
        .into_iter()
        .map(|v| v.and_then(|v| rescale(v, scale, 9)))
        .collect())
}

/// TIMESTAMP_NTZ / LTZ / TZ as Arrow timestamps of the expected unit.
fn timestamp(col: &ArrayRef, scale: u32, target: &DataType) -> Result<ArrayRef, String> {
    let DataType::Timestamp(unit, tz) = target else {
        return Err(format!("a timestamp sent where {target} is expected"));
    };
    let digits = unit_digits(*unit);
    let out = instants(col, scale)?
        .into_iter()
        .map(|v| {
            v.map(|ns| {
                rescale(ns, 9, digits)
                    .and_then(|n| i64::try_from(n).ok())
                    .ok_or_else(|| {
                        format!("timestamp {ns} ns since 1970 does not fit {target} exactly")
                    })
            })
            .transpose()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tz = tz.clone();
    Ok(match unit {
        TimeUnit::Second => {
            Arc::new(PrimitiveArray::<TimestampSecondType>::from(out).with_timezone_opt(tz))
        }
        TimeUnit::Millisecond => {
            Arc::new(PrimitiveArray::<TimestampMillisecondType>::from(out).with_timezone_opt(tz))
        }
        TimeUnit::Microsecond => {
            Arc::new(PrimitiveArray::<TimestampMicrosecondType>::from(out).with_timezone_opt(tz))
        }
        TimeUnit::Nanosecond => {
            Arc::new(PrimitiveArray::<TimestampNanosecondType>::from(out).with_timezone_opt(tz))
        }
    })
}

/// A JSON rowset as the Arrow encodings [`convert`] reads: numbers as decimals at their
/// scale, times and timestamps as integers at scale 9, dates as days.
///
/// # Errors
/// A value that does not parse, naming its column.
pub fn from_json(
    rows: &[Vec<Option<String>>],
    rowtype: &[RowType],
) -> Result<(Vec<ArrayRef>, Vec<RowType>), String> {
    let mut columns = Vec::with_capacity(rowtype.len());
    let mut types = Vec::with_capacity(rowtype.len());
    for (i, rt) in rowtype.iter().enumerate() {
        let texts: Vec<Option<&str>> = rows
            .iter()
            .map(|r| r.get(i).and_then(|v| v.as_deref()))
            .collect();
        let named = |why: String| format!("column {}: {why}", rt.name);
        let kind = rt.type_name.to_ascii_lowercase();
        let mut rt = rt.clone();
        let array: ArrayRef = match kind.as_str() {
            "fixed" => {
                let scale = scale_of(&rt).map_err(named)?;
                let v = texts
                    .iter()
                    .map(|t| t.map(|t| parse_decimal(t, scale)).transpose())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(named)?;
                Arc::new(
                    Decimal128Array::from(v)
                        .with_precision_and_scale(38, i8::try_from(scale).unwrap_or(0))
                        .map_err(|e| named(e.to_string()))?,
                )
            }
            "real" | "float" | "double" => {
                let v = texts
                    .iter()
                    .map(|t| t.map(parse_float).transpose())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(named)?;
                Arc::new(PrimitiveArray::<Float64Type>::from(v))
            }
            "boolean" => Arc::new(
                texts
                    .iter()
                    .map(|t| t.map(|t| matches!(t, "1" | "true" | "TRUE")))
                    .collect::<BooleanArray>(),
            ),
            "date" => {
                let v = texts
                    .iter()
                    .map(|t| {
                        t.map(|t| {
                            t.trim()
                                .parse::<i32>()
                                .map_err(|e| format!("date {t}: {e}"))
                        })
                        .transpose()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(named)?;
                Arc::new(PrimitiveArray::<Date32Type>::from(v))
            }
            "time" | "timestamp_ntz" | "timestamp_ltz" | "timestamp_tz" => {
                // Seconds with a fraction; a zoned value has its offset after a space.
                let v = texts
                    .iter()
                    .map(|t| {
                        t.map(|t| parse_decimal(t.split_whitespace().next().unwrap_or(""), 9))
                            .transpose()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(named)?;
                let v = v
                    .into_iter()
                    .map(|x| x.map(i64::try_from).transpose())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| named("a time out of range".to_owned()))?;
                rt.scale = Some(9);
                Arc::new(Int64Array::from(v))
            }
            "binary" => {
                let v = texts
                    .iter()
                    .map(|t| t.map(parse_hex).transpose())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(named)?;
                Arc::new(BinaryArray::from_iter(v))
            }
            _ => Arc::new(StringArray::from(texts)),
        };
        columns.push(array);
        types.push(rt);
    }
    Ok((columns, types))
}

/// `"-123.45"` at `scale` as an integer (`-12345000` at scale 5).
fn parse_decimal(text: &str, scale: u32) -> Result<i128, String> {
    let bad = || format!("{text:?} is not a number");
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac_digits = u32::try_from(frac.len()).map_err(|_| bad())?;
    if frac_digits > scale && frac[scale as usize..].chars().any(|c| c != '0') {
        return Err(format!("{text} has more than {scale} fractional digits"));
    }
    let kept = &frac[..frac.len().min(scale as usize)];
    let mut v: i128 = 0;
    for c in int.chars().chain(kept.chars()) {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(c as u8 - b'0')))
            .ok_or_else(bad)?;
    }
    let pad = scale - u32::try_from(kept.len()).map_err(|_| bad())?;
    v = v.checked_mul(pow10(pad)).ok_or_else(bad)?;
    Ok(if neg { -v } else { v })
}

fn parse_float(text: &str) -> Result<f64, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "nan" => Ok(f64::NAN),
        "inf" | "infinity" => Ok(f64::INFINITY),
        "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
        t => t
            .parse()
            .map_err(|e| format!("{text:?} is not a float: {e}")),
    }
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    if !t.len().is_multiple_of(2) {
        return Err(format!("{text:?} is not hex"));
    }
    (0..t.len())
        .step_by(2)
        .map(|i| {
            t.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| format!("{text:?} is not hex"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_parses_exactly() {
        assert_eq!(parse_decimal("123.456", 3), Ok(123_456));
        assert_eq!(parse_decimal("-3.25", 5), Ok(-325_000));
        assert_eq!(parse_decimal("7", 0), Ok(7));
        assert_eq!(parse_decimal("1.50", 1), Ok(15));
        assert!(parse_decimal("1.55", 1).is_err());
        assert!(parse_decimal("abc", 0).is_err());
        assert!(parse_decimal("", 0).is_err());
        assert_eq!(parse_hex("abcd"), Ok(vec![0xab, 0xcd]));
    }
}
