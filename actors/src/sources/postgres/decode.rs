//! PostgreSQL's binary wire format into Arrow builders of the types DataFusion expects.
//!
//! A decoder is chosen per result column from the type PostgreSQL sent and the Arrow type the
//! plan expects there; the pair must be one whose every value converts exactly. A value that
//! does not fit (an integer out of range, a decimal with more digits or places than its
//! type, an infinite date) is an error naming the column, never NULL and never rounded.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    IntervalMonthDayNanoBuilder, LargeBinaryBuilder, LargeStringBuilder, ListBuilder, NullBuilder,
    StringBuilder, StringViewBuilder, Time64MicrosecondBuilder, Time64NanosecondBuilder,
    TimestampMicrosecondBuilder, TimestampMillisecondBuilder, TimestampNanosecondBuilder,
    TimestampSecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalUnit, TimeUnit};
use sluice_planner::datafusion;
use tokio_postgres::types::{Kind, Type};

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Why a value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What went wrong, naming no column (the caller adds it).
    pub message: String,
    /// The value is well formed but does not fit the type the plan expects (out of range,
    /// too many digits or places): the data's fault, as an overflow in DataFusion would be.
    pub misfit: bool,
}

impl DecodeError {
    fn misfit(message: String) -> Self {
        Self {
            message,
            misfit: true,
        }
    }
}

impl From<String> for DecodeError {
    fn from(message: String) -> Self {
        Self {
            message,
            misfit: false,
        }
    }
}

impl From<&str> for DecodeError {
    fn from(message: &str) -> Self {
        Self::from(message.to_owned())
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

type R<T> = Result<T, DecodeError>;

/// What arrives on the wire for a column.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wire {
    Bool,
    Int(u8),
    Float4,
    Float8,
    Numeric,
    Text,
    Jsonb,
    Uuid,
    Bytea,
    Date,
    Time,
    Timestamp,
    Interval,
    Array(Box<Wire>),
}

fn wire(ty: &Type) -> Option<Wire> {
    Some(match *ty {
        Type::BOOL => Wire::Bool,
        Type::INT2 => Wire::Int(2),
        Type::INT4 => Wire::Int(4),
        Type::INT8 => Wire::Int(8),
        Type::FLOAT4 => Wire::Float4,
        Type::FLOAT8 => Wire::Float8,
        Type::NUMERIC => Wire::Numeric,
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR | Type::JSON | Type::UNKNOWN => {
            Wire::Text
        }
        Type::JSONB => Wire::Jsonb,
        Type::UUID => Wire::Uuid,
        Type::BYTEA => Wire::Bytea,
        Type::DATE => Wire::Date,
        Type::TIME => Wire::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => Wire::Timestamp,
        Type::INTERVAL => Wire::Interval,
        _ => match ty.kind() {
            Kind::Array(e) => Wire::Array(Box::new(wire(e)?)),
            Kind::Domain(base) => wire(base)?,
            // Enum labels are sent as their text; `citext` as text.
            Kind::Enum(_) => Wire::Text,
            Kind::Simple if ty.name() == "citext" => Wire::Text,
            _ => return None,
        },
    })
}

/// Decodes one result column into one Arrow type.
#[derive(Debug, Clone)]
pub struct ColumnDecoder {
    wire: Wire,
    target: DataType,
    element: Option<Box<ColumnDecoder>>,
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

impl ColumnDecoder {
    /// The decoder from what PostgreSQL sends as `ty` to `target`.
    ///
    /// # Errors
    /// The pair does not convert exactly (the message names both types).
    pub fn new(ty: &Type, target: &DataType) -> R<Self> {
        let mismatch = || {
            format!(
                "PostgreSQL sent type {} where {target} is expected; if the table changed, \
                 refresh the source",
                ty.name()
            )
        };
        let w = wire(ty).ok_or_else(mismatch)?;
        if *target == DataType::Null {
            return Ok(Self {
                wire: w,
                target: target.clone(),
                element: None,
            });
        }
        let ok = match (&w, target) {
            (Wire::Bool, DataType::Boolean) => true,
            (Wire::Int(_) | Wire::Numeric, t)
                if t.is_integer() || matches!(t, DataType::Decimal128(..)) =>
            {
                true
            }
            (Wire::Int(_) | Wire::Numeric | Wire::Float8, DataType::Float64) => true,
            (Wire::Float4, DataType::Float32 | DataType::Float64) => true,
            (Wire::Float8 | Wire::Int(2), DataType::Float32) => true,
            (Wire::Text | Wire::Jsonb | Wire::Uuid, t) if is_text(t) => true,
            (Wire::Bytea, DataType::Binary | DataType::LargeBinary) => true,
            (Wire::Date, DataType::Date32) => true,
            (Wire::Time, DataType::Time64(_)) => true,
            (Wire::Timestamp, DataType::Timestamp(..)) => true,
            (Wire::Interval, DataType::Interval(IntervalUnit::MonthDayNano)) => true,
            (Wire::Array(_), DataType::List(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(mismatch().into());
        }
        let element = match (&w, target, ty.kind()) {
            (Wire::Array(_), DataType::List(field), Kind::Array(elem)) => {
                Some(Box::new(Self::new(elem, field.data_type())?))
            }
            (Wire::Array(_), _, Kind::Domain(base)) => match (base.kind(), target) {
                (Kind::Array(elem), DataType::List(field)) => {
                    Some(Box::new(Self::new(elem, field.data_type())?))
                }
                _ => return Err(mismatch().into()),
            },
            _ => None,
        };
        Ok(Self {
            wire: w,
            target: target.clone(),
            element,
        })
    }

    /// A builder for this column.
    pub fn builder(&self, capacity: usize) -> Box<dyn ArrayBuilder> {
        match (&self.target, &self.element) {
            (DataType::List(field), Some(e)) => {
                Box::new(ListBuilder::new(e.builder(capacity)).with_field(Arc::clone(field)))
            }
            (DataType::Decimal128(..), _) => Box::new(
                Decimal128Builder::with_capacity(capacity).with_data_type(self.target.clone()),
            ),
            (DataType::Timestamp(unit, Some(tz)), _) => match unit {
                TimeUnit::Second => Box::new(
                    TimestampSecondBuilder::with_capacity(capacity).with_timezone(tz.clone()),
                ),
                TimeUnit::Millisecond => Box::new(
                    TimestampMillisecondBuilder::with_capacity(capacity).with_timezone(tz.clone()),
                ),
                TimeUnit::Microsecond => Box::new(
                    TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone(tz.clone()),
                ),
                TimeUnit::Nanosecond => Box::new(
                    TimestampNanosecondBuilder::with_capacity(capacity).with_timezone(tz.clone()),
                ),
            },
            (DataType::Utf8View, _) => Box::new(StringViewBuilder::with_capacity(capacity)),
            (DataType::Null, _) => Box::new(NullBuilder::new()),
            (other, _) => datafusion::arrow::array::make_builder(other, capacity),
        }
    }

    /// Appends one value (`None` is SQL NULL) to `b`, a [`Self::builder`].
    ///
    /// # Errors
    /// A malformed value, or one the Arrow type cannot hold exactly.
    pub fn append(&self, b: &mut dyn ArrayBuilder, raw: Option<&[u8]>) -> R<()> {
        if self.target == DataType::Null {
            return match raw {
                None => {
                    downcast::<NullBuilder>(b)?.append_null();
                    Ok(())
                }
                Some(_) => Err("a value where only NULL is expected".into()),
            };
        }
        let Some(raw) = raw else {
            append_null(b, &self.target)?;
            return Ok(());
        };
        match (&self.wire, &self.target) {
            (Wire::Bool, _) => {
                downcast::<BooleanBuilder>(b)?.append_value(fixed::<1>(raw, "bool")?[0] != 0)
            }
            (Wire::Int(n), t) => {
                let v = int(raw, *n)?;
                append_i128(b, t, i128::from(v), 0)?;
            }
            (Wire::Numeric, DataType::Float64) => {
                downcast::<Float64Builder>(b)?.append_value(numeric_f64(raw)?);
            }
            (Wire::Numeric, t) => {
                let scale = match t {
                    DataType::Decimal128(_, s) => *s,
                    _ => 0,
                };
                let v = numeric_at_scale(raw, scale)?;
                append_i128(b, t, v, scale)?;
            }
            (Wire::Float4, DataType::Float32) => {
                downcast::<Float32Builder>(b)?
                    .append_value(f32::from_be_bytes(fixed(raw, "float4")?));
            }
            (Wire::Float4, _) => downcast::<Float64Builder>(b)?
                .append_value(f64::from(f32::from_be_bytes(fixed(raw, "float4")?))),
            (Wire::Float8, DataType::Float64) => {
                downcast::<Float64Builder>(b)?
                    .append_value(f64::from_be_bytes(fixed(raw, "float8")?));
            }
            (Wire::Float8, _) => {
                let v = f64::from_be_bytes(fixed(raw, "float8")?);
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "checked to round-trip below"
                )]
                let narrow = v as f32;
                if f64::from(narrow) != v && !v.is_nan() {
                    return Err(DecodeError::misfit(format!("{v} does not fit float4")));
                }
                downcast::<Float32Builder>(b)?.append_value(narrow);
            }
            (Wire::Text, t) => {
                append_str(b, t, std::str::from_utf8(raw).map_err(|_| bad("text"))?)?;
            }
            (Wire::Jsonb, t) => match raw {
                [1, rest @ ..] => {
                    append_str(b, t, std::str::from_utf8(rest).map_err(|_| bad("jsonb"))?)?;
                }
                _ => return Err(bad("jsonb")),
            },
            (Wire::Uuid, t) => append_str(b, t, &uuid_text(&fixed::<16>(raw, "uuid")?))?,
            (Wire::Bytea, DataType::LargeBinary) => {
                downcast::<LargeBinaryBuilder>(b)?.append_value(raw)
            }
            (Wire::Bytea, _) => downcast::<BinaryBuilder>(b)?.append_value(raw),
            (Wire::Date, _) => {
                let d = i32::from_be_bytes(fixed(raw, "date")?);
                if d == i32::MAX || d == i32::MIN {
                    return Err("infinite dates have no Arrow value".into());
                }
                downcast::<Date32Builder>(b)?
                    .append_value(d.checked_add(PG_EPOCH_DAYS).ok_or_else(|| bad("date"))?);
            }
            (Wire::Time, DataType::Time64(TimeUnit::Nanosecond)) => {
                let t = i64::from_be_bytes(fixed(raw, "time")?);
                downcast::<Time64NanosecondBuilder>(b)?
                    .append_value(t.checked_mul(1000).ok_or_else(|| bad("time"))?);
            }
            (Wire::Time, _) => downcast::<Time64MicrosecondBuilder>(b)?
                .append_value(i64::from_be_bytes(fixed(raw, "time")?)),
            (Wire::Timestamp, DataType::Timestamp(unit, _)) => {
                let t = i64::from_be_bytes(fixed(raw, "timestamp")?);
                if t == i64::MAX || t == i64::MIN {
                    return Err("infinite timestamps have no Arrow value".into());
                }
                let micros = t
                    .checked_add(PG_EPOCH_MICROS)
                    .ok_or_else(|| bad("timestamp"))?;
                append_timestamp(b, *unit, micros)?;
            }
            (Wire::Interval, _) => {
                let v = fixed::<16>(raw, "interval")?;
                let (micros, rest) = v.split_at(8);
                let (days, months) = rest.split_at(4);
                let micros = i64::from_be_bytes(be(micros, "interval")?);
                let days = i32::from_be_bytes(be(days, "interval")?);
                let months = i32::from_be_bytes(be(months, "interval")?);
                let nanos = micros.checked_mul(1000).ok_or_else(|| bad("interval"))?;
                downcast::<IntervalMonthDayNanoBuilder>(b)?
                    .append_value(IntervalMonthDayNano::new(months, days, nanos));
            }
            (Wire::Array(_), _) => {
                let element = self.element.as_ref().ok_or_else(|| bad("array"))?;
                let b = downcast::<ListBuilder<Box<dyn ArrayBuilder>>>(b)?;
                for item in array_items(raw)? {
                    element.append(b.values().as_mut(), item)?;
                }
                b.append(true);
            }
            _ => return Err("no decoder for this pair of types".into()),
        }
        Ok(())
    }
}

fn bad(what: &str) -> DecodeError {
    format!("malformed {what} value").into()
}

fn downcast<B: 'static>(b: &mut dyn ArrayBuilder) -> R<&mut B> {
    b.as_any_mut()
        .downcast_mut::<B>()
        .ok_or_else(|| DecodeError::from("builder does not match the column type"))
}

/// The first `N` bytes of a value (for parts of composite values).
fn be<const N: usize>(raw: &[u8], what: &str) -> R<[u8; N]> {
    raw.get(..N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad(what))
}

/// A fixed-width value, which must be exactly `N` bytes: anything else means the column is not
/// of the type expected, and is refused rather than misread.
fn fixed<const N: usize>(raw: &[u8], what: &str) -> R<[u8; N]> {
    raw.try_into().map_err(|_| {
        DecodeError::from(format!(
            "expected a {N}-byte {what} value, got {} bytes: the column's type changed since the \
             tables were loaded; refresh the source",
            raw.len()
        ))
    })
}

fn int(raw: &[u8], width: u8) -> R<i64> {
    Ok(match width {
        2 => i64::from(i16::from_be_bytes(fixed(raw, "int2")?)),
        4 => i64::from(i32::from_be_bytes(fixed(raw, "int4")?)),
        _ => i64::from_be_bytes(fixed(raw, "int8")?),
    })
}

fn append_null(b: &mut dyn ArrayBuilder, t: &DataType) -> R<()> {
    macro_rules! null {
        ($($ty:ident => $b:ty),* $(,)?) => {
            match t {
                $(DataType::$ty => downcast::<$b>(b)?.append_null(),)*
                DataType::Decimal128(..) => downcast::<Decimal128Builder>(b)?.append_null(),
                DataType::Time64(TimeUnit::Nanosecond) => downcast::<Time64NanosecondBuilder>(b)?.append_null(),
                DataType::Time64(_) => downcast::<Time64MicrosecondBuilder>(b)?.append_null(),
                DataType::Timestamp(TimeUnit::Second, _) => downcast::<TimestampSecondBuilder>(b)?.append_null(),
                DataType::Timestamp(TimeUnit::Millisecond, _) => downcast::<TimestampMillisecondBuilder>(b)?.append_null(),
                DataType::Timestamp(TimeUnit::Microsecond, _) => downcast::<TimestampMicrosecondBuilder>(b)?.append_null(),
                DataType::Timestamp(TimeUnit::Nanosecond, _) => downcast::<TimestampNanosecondBuilder>(b)?.append_null(),
                DataType::Interval(_) => downcast::<IntervalMonthDayNanoBuilder>(b)?.append_null(),
                DataType::List(_) => downcast::<ListBuilder<Box<dyn ArrayBuilder>>>(b)?.append_null(),
                other => return Err(DecodeError::from(format!("no builder for {other}"))),
            }
        };
    }
    null!(
        Boolean => BooleanBuilder, Int8 => Int8Builder, Int16 => Int16Builder,
        Int32 => Int32Builder, Int64 => Int64Builder, UInt8 => UInt8Builder,
        UInt16 => UInt16Builder, UInt32 => UInt32Builder, UInt64 => UInt64Builder,
        Float32 => Float32Builder, Float64 => Float64Builder, Utf8 => StringBuilder,
        LargeUtf8 => LargeStringBuilder, Utf8View => StringViewBuilder, Binary => BinaryBuilder,
        LargeBinary => LargeBinaryBuilder, Date32 => Date32Builder,
    );
    Ok(())
}

fn append_str(b: &mut dyn ArrayBuilder, t: &DataType, s: &str) -> R<()> {
    match t {
        DataType::LargeUtf8 => downcast::<LargeStringBuilder>(b)?.append_value(s),
        DataType::Utf8View => downcast::<StringViewBuilder>(b)?.append_value(s),
        _ => downcast::<StringBuilder>(b)?.append_value(s),
    }
    Ok(())
}

/// An exact value `v` (in units of 10^-`scale`) into an integer, decimal or float column.
fn append_i128(b: &mut dyn ArrayBuilder, t: &DataType, v: i128, scale: i8) -> R<()> {
    let range = || DecodeError::misfit(format!("{} does not fit {t}", show_scaled(v, scale)));
    macro_rules! int {
        ($b:ty, $n:ty) => {
            downcast::<$b>(b)?.append_value(<$n>::try_from(v).map_err(|_| range())?)
        };
    }
    match t {
        DataType::Int8 => int!(Int8Builder, i8),
        DataType::Int16 => int!(Int16Builder, i16),
        DataType::Int32 => int!(Int32Builder, i32),
        DataType::Int64 => int!(Int64Builder, i64),
        DataType::UInt8 => int!(UInt8Builder, u8),
        DataType::UInt16 => int!(UInt16Builder, u16),
        DataType::UInt32 => int!(UInt32Builder, u32),
        DataType::UInt64 => int!(UInt64Builder, u64),
        DataType::Decimal128(p, s) => {
            // An integer arrives at scale 0: bring it to the column's.
            let v = if scale == *s {
                v
            } else {
                let f = 10i128
                    .checked_pow(
                        u32::try_from(i16::from(*s) - i16::from(scale)).map_err(|_| range())?,
                    )
                    .ok_or_else(range)?;
                v.checked_mul(f).ok_or_else(range)?
            };
            let limit = 10i128.checked_pow(u32::from(*p)).ok_or_else(range)?;
            if v.unsigned_abs() >= limit.unsigned_abs() {
                return Err(range());
            }
            downcast::<Decimal128Builder>(b)?.append_value(v);
        }
        DataType::Float64 => {
            // Integers beyond 2^53 would be rounded.
            if v.unsigned_abs() > 1u128 << 53 {
                return Err(range());
            }
            #[expect(clippy::cast_precision_loss, reason = "checked to be exact above")]
            downcast::<Float64Builder>(b)?.append_value(v as f64);
        }
        DataType::Float32 => {
            if v.unsigned_abs() > 1u128 << 24 {
                return Err(range());
            }
            #[expect(clippy::cast_precision_loss, reason = "checked to be exact above")]
            downcast::<Float32Builder>(b)?.append_value(v as f32);
        }
        other => {
            return Err(DecodeError::from(format!(
                "no integer column of type {other}"
            )));
        }
    }
    Ok(())
}

fn show_scaled(v: i128, scale: i8) -> String {
    if scale <= 0 {
        return v.to_string();
    }
    let s = usize::try_from(scale).unwrap_or(0);
    let digits = v.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = s + 1);
    let (int, frac) = digits.split_at(digits.len() - s);
    format!("{}{int}.{frac}", if v < 0 { "-" } else { "" })
}

fn append_timestamp(b: &mut dyn ArrayBuilder, unit: TimeUnit, micros: i64) -> R<()> {
    let lost = || {
        DecodeError::misfit(format!(
            "timestamp {micros} µs has more precision than {unit:?}"
        ))
    };
    match unit {
        TimeUnit::Microsecond => downcast::<TimestampMicrosecondBuilder>(b)?.append_value(micros),
        TimeUnit::Nanosecond => downcast::<TimestampNanosecondBuilder>(b)?.append_value(
            micros
                .checked_mul(1000)
                .ok_or_else(|| DecodeError::misfit("timestamp does not fit nanoseconds".into()))?,
        ),
        TimeUnit::Millisecond => {
            if micros % 1000 != 0 {
                return Err(lost());
            }
            downcast::<TimestampMillisecondBuilder>(b)?.append_value(micros / 1000);
        }
        TimeUnit::Second => {
            if micros % 1_000_000 != 0 {
                return Err(lost());
            }
            downcast::<TimestampSecondBuilder>(b)?.append_value(micros / 1_000_000);
        }
    }
    Ok(())
}

fn uuid_text(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The elements of a one-dimensional array in binary format.
fn array_items(r: &[u8]) -> R<Vec<Option<&[u8]>>> {
    let ndim = i32::from_be_bytes(be(r, "array")?);
    if ndim == 0 {
        return Ok(Vec::new());
    }
    if ndim != 1 {
        return Err(DecodeError::from(format!(
            "{ndim}-dimensional arrays are not supported; select a one-dimensional slice"
        )));
    }
    // ndim, has_null flag, element oid, then (length, lower bound) per dimension.
    let len = i32::from_be_bytes(be(r.get(12..).unwrap_or_default(), "array")?);
    let mut pos = 20;
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    for _ in 0..len {
        let n = i32::from_be_bytes(be(r.get(pos..).unwrap_or_default(), "array")?);
        pos += 4;
        if n < 0 {
            out.push(None);
        } else {
            let n = usize::try_from(n).map_err(|_| bad("array"))?;
            out.push(Some(r.get(pos..pos + n).ok_or_else(|| bad("array"))?));
            pos += n;
        }
    }
    Ok(out)
}

/// A `numeric`'s sign and base-10000 digits with the weight of the first.
struct Numeric<'a> {
    negative: bool,
    weight: i32,
    digits: &'a [u8],
}

fn parse_numeric(r: &[u8]) -> R<Numeric<'_>> {
    let ndigits = usize::from(u16::from_be_bytes(be(r, "numeric")?));
    let weight = i32::from(i16::from_be_bytes(be(
        r.get(2..).unwrap_or_default(),
        "numeric",
    )?));
    let sign = u16::from_be_bytes(be(r.get(4..).unwrap_or_default(), "numeric")?);
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        0xC000 => return Err("numeric NaN has no decimal value".into()),
        _ => return Err("numeric infinity has no decimal value".into()),
    };
    let digits = r.get(8..8 + 2 * ndigits).ok_or_else(|| bad("numeric"))?;
    Ok(Numeric {
        negative,
        weight,
        digits,
    })
}

/// A `numeric` in binary format as an integer in units of 10^-`scale`, exactly: a value with
/// non-zero digits below the scale, or too large for 38 digits, is an error.
fn numeric_at_scale(r: &[u8], scale: i8) -> R<i128> {
    let n = parse_numeric(r)?;
    let overflow = || {
        DecodeError::misfit(format!(
            "a numeric value does not fit 38 digits at scale {scale}"
        ))
    };
    let places = || {
        DecodeError::misfit(format!(
            "a numeric value has more than {scale} decimal places"
        ))
    };
    let mut value: i128 = 0;
    for (i, pair) in n.digits.chunks_exact(2).enumerate() {
        let d = i128::from(u16::from_be_bytes([pair[0], pair[1]]));
        let i = i32::try_from(i).map_err(|_| bad("numeric"))?;
        // Digit i is worth d * 10^(4 * (weight - i)); in units of 10^-scale that is
        // d * 10^(4 * (weight - i) + scale).
        let exp = 4 * (n.weight - i) + i32::from(scale);
        if exp >= 0 {
            let f = 10i128
                .checked_pow(u32::try_from(exp).map_err(|_| overflow())?)
                .ok_or_else(overflow)?;
            value = d
                .checked_mul(f)
                .and_then(|v| value.checked_add(v))
                .ok_or_else(overflow)?;
        } else if exp > -4 {
            let f = 10i128.pow(exp.unsigned_abs());
            if d % f != 0 {
                return Err(places());
            }
            value = value.checked_add(d / f).ok_or_else(overflow)?;
        } else if d != 0 {
            return Err(places());
        }
    }
    if value.unsigned_abs() >= 10u128.pow(38) {
        return Err(overflow());
    }
    Ok(if n.negative { -value } else { value })
}

/// A `numeric` as the nearest `f64` (the value's decimal text, parsed).
fn numeric_f64(r: &[u8]) -> R<f64> {
    let n = parse_numeric(r)?;
    let mut text = String::with_capacity(n.digits.len() * 2 + 8);
    for pair in n.digits.chunks_exact(2) {
        text.push_str(&format!("{:04}", u16::from_be_bytes([pair[0], pair[1]])));
    }
    if text.is_empty() {
        return Ok(0.0);
    }
    // The digits are a base-10 integer times 10^(4 * (weight + 1 - ndigits)).
    let ndigits = i32::try_from(n.digits.len() / 2).map_err(|_| bad("numeric"))?;
    let exp = 4 * (n.weight + 1 - ndigits);
    let s = format!("{}{text}e{exp}", if n.negative { "-" } else { "" });
    s.parse::<f64>().map_err(|_| bad("numeric"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `numeric` binary form of digits (base 10000), weight, sign, dscale.
    fn num(digits: &[u16], weight: i16, neg: bool, dscale: u16) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&u16::try_from(digits.len()).unwrap().to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&(if neg { 0x4000u16 } else { 0 }).to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_decode_exactly_or_not_at_all() {
        // 12345.6789 = [1, 2345, 6789], weight 1
        assert_eq!(
            numeric_at_scale(&num(&[1, 2345, 6789], 1, false, 4), 4).unwrap(),
            123_456_789
        );
        assert_eq!(
            numeric_at_scale(&num(&[1, 2345, 6789], 1, true, 4), 6).unwrap(),
            -12_345_678_900
        );
        // 0.05 = [500], weight -1
        assert_eq!(numeric_at_scale(&num(&[500], -1, false, 2), 2).unwrap(), 5);
        assert_eq!(
            numeric_at_scale(&num(&[1], 1, false, 0), 0).unwrap(),
            10_000
        );
        assert_eq!(numeric_at_scale(&num(&[], 0, false, 0), 2).unwrap(), 0);
        let nan = {
            let mut v = num(&[], 0, false, 0);
            v[4] = 0xC0;
            v
        };
        assert!(numeric_at_scale(&nan, 2).is_err());
        // 10^40 does not fit; 1.005 does not fit scale 2; 1.500 does.
        assert!(numeric_at_scale(&num(&[1], 10, false, 0), 0).is_err());
        let err = numeric_at_scale(&num(&[1, 50], 0, false, 3), 2).unwrap_err();
        assert!(err.misfit);
        let err = err.message;
        assert!(err.contains("decimal places"), "{err}");
        assert_eq!(
            numeric_at_scale(&num(&[1, 5000], 0, false, 3), 2).unwrap(),
            150
        );
        assert_eq!(numeric_f64(&num(&[1, 5000], 0, true, 3)).unwrap(), -1.5);
        assert_eq!(numeric_f64(&num(&[12], 1, false, 0)).unwrap(), 120_000.0);
    }

    #[test]
    fn conversions_are_exact_or_errors() {
        let d = ColumnDecoder::new(&Type::INT8, &DataType::Int32).unwrap();
        let mut b = d.builder(2);
        d.append(b.as_mut(), Some(&7i64.to_be_bytes())).unwrap();
        let err = d
            .append(b.as_mut(), Some(&(i64::from(i32::MAX) + 1).to_be_bytes()))
            .unwrap_err()
            .message;
        assert!(err.contains("does not fit"), "{err}");
        let d = ColumnDecoder::new(&Type::NUMERIC, &DataType::Decimal128(5, 2)).unwrap();
        let mut b = d.builder(1);
        let err = d
            .append(b.as_mut(), Some(&num(&[1000], 0, false, 0)))
            .unwrap_err()
            .message;
        assert!(err.contains("does not fit"), "1000 in decimal(5, 2): {err}");
        assert!(ColumnDecoder::new(&Type::TEXT, &DataType::Int64).is_err());
        assert!(ColumnDecoder::new(&Type::FLOAT8, &DataType::Int64).is_err());
    }

    #[test]
    fn fixed_width_values_of_the_wrong_size_are_refused() {
        let d = ColumnDecoder::new(&Type::INT4, &DataType::Int32).unwrap();
        let mut b = d.builder(1);
        let err = d
            .append(b.as_mut(), Some(&[0, 0, 0, 0, 0, 0, 0, 1]))
            .unwrap_err()
            .message;
        assert!(err.contains("changed"), "{err}");
        d.append(b.as_mut(), Some(&[0, 0, 0, 7])).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(
            uuid_text(&[0xab; 16]),
            "abababab-abab-abab-abab-abababababab"
        );
    }
}
