//! PostgreSQL column types, their Arrow types, and decoding of the binary wire format into
//! Arrow builders.
//!
//! Every value arrives in PostgreSQL's binary format (tokio-postgres asks for it). Types with
//! no exact Arrow counterpart are selected as `::text` (see [`PgType::AsText`]), so they still
//! arrive, as strings.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, IntervalMonthDayNanoBuilder,
    ListBuilder, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, IntervalMonthDayNano, TimeUnit};
use tokio_postgres::types::{Kind, Type};

/// Precision and scale given to `numeric` columns declared without them.
pub const UNCONSTRAINED_NUMERIC: (u8, i8) = (38, 10);

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A column type as Sluice reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgType {
    /// `bool`.
    Bool,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `float4`.
    Float4,
    /// `float8`.
    Float8,
    /// `numeric(p, s)` with `p` at most 38.
    Numeric {
        /// Precision.
        precision: u8,
        /// Scale.
        scale: i8,
    },
    /// `numeric` without precision and scale: read as [`UNCONSTRAINED_NUMERIC`], rounded half
    /// away from zero (as PostgreSQL's `round`) to its scale.
    NumericAny,
    /// `text`, `varchar`: compared byte for byte in PostgreSQL too (under a deterministic
    /// collation).
    Text,
    /// `name`: text, but PostgreSQL truncates a `name` literal to 63 bytes before comparing.
    Name,
    /// `citext` (the extension): text that PostgreSQL compares case-insensitively.
    CiText,
    /// `char(n)`: blank-padded, and compared ignoring the padding in PostgreSQL.
    Bpchar,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timestamp`.
    Timestamp,
    /// `timestamptz`, as UTC.
    Timestamptz,
    /// `interval`.
    Interval,
    /// `uuid`, as its hyphenated text.
    Uuid,
    /// `json`.
    Json,
    /// `jsonb` (sent with a version byte).
    Jsonb,
    /// `bytea`.
    Bytea,
    /// A one-dimensional array.
    Array(Box<PgType>),
    /// `inet`, as PostgreSQL prints it (`abbrev`: no `/32` on a single host).
    Inet,
    /// Anything else (enums, `cidr`, `money`, ranges, geometric types, ...): selected as
    /// `::text`. Domains are read as their base type.
    AsText,
}

impl PgType {
    /// The type from `pg_type.typname` and `pg_attribute.atttypmod`. Array types arrive as
    /// their element's name with `is_array`.
    pub fn from_catalog(typname: &str, typmod: i32, is_array: bool) -> Self {
        let scalar = match typname {
            "bool" => Self::Bool,
            "int2" => Self::Int2,
            "int4" => Self::Int4,
            "int8" => Self::Int8,
            "float4" => Self::Float4,
            "float8" => Self::Float8,
            "numeric" => numeric(typmod),
            "text" | "varchar" => Self::Text,
            "name" => Self::Name,
            "citext" => Self::CiText,
            "bpchar" => Self::Bpchar,
            "date" => Self::Date,
            "time" => Self::Time,
            "timestamp" => Self::Timestamp,
            "timestamptz" => Self::Timestamptz,
            "interval" => Self::Interval,
            "uuid" => Self::Uuid,
            "json" => Self::Json,
            "jsonb" => Self::Jsonb,
            "bytea" => Self::Bytea,
            "inet" => Self::Inet,
            _ => Self::AsText,
        };
        match (is_array, scalar) {
            // Arrays of text-cast types are cast as `text[]`.
            (true, Self::AsText | Self::Inet) => Self::Array(Box::new(Self::Text)),
            (true, s) => Self::Array(Box::new(s)),
            (false, s) => s,
        }
    }

    /// The Arrow type of this column.
    pub fn arrow(&self) -> DataType {
        match self {
            Self::Bool => DataType::Boolean,
            Self::Int2 => DataType::Int16,
            Self::Int4 => DataType::Int32,
            Self::Int8 => DataType::Int64,
            Self::Float4 => DataType::Float32,
            Self::Float8 => DataType::Float64,
            Self::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            Self::NumericAny => {
                DataType::Decimal128(UNCONSTRAINED_NUMERIC.0, UNCONSTRAINED_NUMERIC.1)
            }
            Self::Text
            | Self::Name
            | Self::CiText
            | Self::Bpchar
            | Self::Uuid
            | Self::Json
            | Self::Jsonb
            | Self::Inet
            | Self::AsText => DataType::Utf8,
            Self::Date => DataType::Date32,
            Self::Time => DataType::Time64(TimeUnit::Microsecond),
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::Interval => {
                DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano)
            }
            Self::Bytea => DataType::Binary,
            Self::Array(e) => DataType::List(Arc::new(Field::new("item", e.arrow(), true))),
        }
    }

    /// How the column is selected: its quoted name, cast to text where the type asks for it.
    pub fn select_expr(&self, quoted: &str) -> String {
        match self {
            Self::AsText => format!("{quoted}::text"),
            Self::Inet => format!("abbrev({quoted})"),
            Self::Array(e) if **e == Self::Text => format!("{quoted}::text[]"),
            _ => quoted.to_owned(),
        }
    }
}

impl PgType {
    /// Whether a result column of type `ty` is what this column expects on the wire. Types
    /// created in the database (domains, extension types such as `citext`) are taken as
    /// discovered: their base type was.
    pub fn accepts(&self, ty: &Type) -> bool {
        /// PostgreSQL's first OID for objects that are not built in.
        const FIRST_NORMAL_OID: u32 = 16_384;
        if ty.oid() >= FIRST_NORMAL_OID {
            return true;
        }
        match self {
            Self::Bool => *ty == Type::BOOL,
            Self::Int2 => *ty == Type::INT2,
            Self::Int4 => *ty == Type::INT4,
            Self::Int8 => *ty == Type::INT8,
            Self::Float4 => *ty == Type::FLOAT4,
            Self::Float8 => *ty == Type::FLOAT8,
            Self::Numeric { .. } | Self::NumericAny => *ty == Type::NUMERIC,
            Self::Text => matches!(*ty, Type::TEXT | Type::VARCHAR),
            Self::Name => *ty == Type::NAME,
            // An extension type: its OID is not fixed, and any non-built-in OID was accepted
            // above; a built-in text type is what a view casting it would send.
            Self::CiText => matches!(*ty, Type::TEXT | Type::VARCHAR),
            Self::Bpchar => *ty == Type::BPCHAR,
            Self::Date => *ty == Type::DATE,
            Self::Time => *ty == Type::TIME,
            Self::Timestamp => *ty == Type::TIMESTAMP,
            Self::Timestamptz => *ty == Type::TIMESTAMPTZ,
            Self::Interval => *ty == Type::INTERVAL,
            Self::Uuid => *ty == Type::UUID,
            Self::Json => *ty == Type::JSON,
            Self::Jsonb => *ty == Type::JSONB,
            Self::Bytea => *ty == Type::BYTEA,
            Self::Inet | Self::AsText => *ty == Type::TEXT,
            Self::Array(e) => match ty.kind() {
                Kind::Array(inner) => e.accepts(inner),
                _ => false,
            },
        }
    }

    /// The PostgreSQL type name, for messages.
    pub fn name(&self) -> String {
        match self {
            Self::Bool => "bool".into(),
            Self::Int2 => "int2".into(),
            Self::Int4 => "int4".into(),
            Self::Int8 => "int8".into(),
            Self::Float4 => "float4".into(),
            Self::Float8 => "float8".into(),
            Self::Numeric { precision, scale } => format!("numeric({precision}, {scale})"),
            Self::NumericAny => "numeric".into(),
            Self::Text => "text".into(),
            Self::Name => "name".into(),
            Self::CiText => "citext".into(),
            Self::Bpchar => "bpchar".into(),
            Self::Date => "date".into(),
            Self::Time => "time".into(),
            Self::Timestamp => "timestamp".into(),
            Self::Timestamptz => "timestamptz".into(),
            Self::Interval => "interval".into(),
            Self::Uuid => "uuid".into(),
            Self::Json => "json".into(),
            Self::Jsonb => "jsonb".into(),
            Self::Bytea => "bytea".into(),
            Self::Inet => "inet".into(),
            Self::AsText => "text (cast)".into(),
            Self::Array(e) => format!("{}[]", e.name()),
        }
    }
}

fn numeric(typmod: i32) -> PgType {
    if typmod < 4 {
        return PgType::NumericAny;
    }
    let m = typmod - 4;
    let precision = (m >> 16) & 0xffff;
    // The scale is an 11-bit signed number since PostgreSQL 15; 0..=precision is the norm.
    let scale = m & 0xffff;
    match (u8::try_from(precision), i8::try_from(scale)) {
        (Ok(p @ 1..=38), Ok(s)) if (0..=i32::from(p)).contains(&i32::from(s)) => PgType::Numeric {
            precision: p,
            scale: s,
        },
        // Wider than Decimal128 holds: exact as text.
        _ => PgType::AsText,
    }
}

/// Why a value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

type Result<T> = std::result::Result<T, DecodeError>;

fn bad(what: &str) -> DecodeError {
    DecodeError(format!("malformed {what} value"))
}

/// The first `N` bytes of a value (for parts of composite values).
fn be<const N: usize>(raw: &[u8], what: &str) -> Result<[u8; N]> {
    raw.get(..N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad(what))
}

/// A fixed-width value, which must be exactly `N` bytes: anything else means the column is not
/// of the type discovered (it changed since), and is refused rather than misread.
fn fixed<const N: usize>(raw: &[u8], what: &str) -> Result<[u8; N]> {
    raw.try_into().map_err(|_| {
        DecodeError(format!(
            "expected a {N}-byte {what} value, got {} bytes: the column's type changed since the \
             tables were loaded; refresh the source",
            raw.len()
        ))
    })
}

fn downcast<B: 'static>(b: &mut dyn ArrayBuilder) -> Result<&mut B> {
    b.as_any_mut()
        .downcast_mut::<B>()
        .ok_or_else(|| DecodeError("builder does not match the column type".to_owned()))
}

/// A builder for a column of `ty`.
pub fn builder(ty: &PgType, capacity: usize) -> Box<dyn ArrayBuilder> {
    match ty {
        PgType::Array(e) => Box::new(
            ListBuilder::new(builder(e, capacity)).with_field(Arc::new(Field::new(
                "item",
                e.arrow(),
                true,
            ))),
        ),
        PgType::Numeric { .. } | PgType::NumericAny => {
            Box::new(Decimal128Builder::with_capacity(capacity).with_data_type(ty.arrow()))
        }
        PgType::Timestamptz => {
            Box::new(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"))
        }
        other => datafusion::arrow::array::make_builder(&other.arrow(), capacity),
    }
}

/// Appends one value (`None` is SQL NULL) in binary format to `b`, a [`builder`] for `ty`.
///
/// # Errors
/// A malformed value, or one the Arrow type cannot hold (numeric NaN or out of range, infinite
/// dates and timestamps, multi-dimensional arrays).
pub fn append(b: &mut dyn ArrayBuilder, ty: &PgType, raw: Option<&[u8]>) -> Result<()> {
    match ty {
        PgType::Bool => {
            let b = downcast::<BooleanBuilder>(b)?;
            match raw {
                None => b.append_null(),
                Some(r) => b.append_value(fixed::<1>(r, "bool")?[0] != 0),
            }
        }
        PgType::Int2 => {
            let b = downcast::<Int16Builder>(b)?;
            b.append_option(
                raw.map(|r| fixed(r, "int2").map(i16::from_be_bytes))
                    .transpose()?,
            );
        }
        PgType::Int4 => {
            let b = downcast::<Int32Builder>(b)?;
            b.append_option(
                raw.map(|r| fixed(r, "int4").map(i32::from_be_bytes))
                    .transpose()?,
            );
        }
        PgType::Int8 => {
            let b = downcast::<Int64Builder>(b)?;
            b.append_option(
                raw.map(|r| fixed(r, "int8").map(i64::from_be_bytes))
                    .transpose()?,
            );
        }
        PgType::Float4 => {
            let b = downcast::<Float32Builder>(b)?;
            b.append_option(
                raw.map(|r| fixed(r, "float4").map(f32::from_be_bytes))
                    .transpose()?,
            );
        }
        PgType::Float8 => {
            let b = downcast::<Float64Builder>(b)?;
            b.append_option(
                raw.map(|r| fixed(r, "float8").map(f64::from_be_bytes))
                    .transpose()?,
            );
        }
        PgType::Numeric { scale, .. } => {
            let b = downcast::<Decimal128Builder>(b)?;
            b.append_option(raw.map(|r| decode_numeric(r, *scale)).transpose()?);
        }
        PgType::NumericAny => {
            let b = downcast::<Decimal128Builder>(b)?;
            b.append_option(
                raw.map(|r| decode_numeric(r, UNCONSTRAINED_NUMERIC.1))
                    .transpose()?,
            );
        }
        PgType::Text
        | PgType::Name
        | PgType::CiText
        | PgType::Bpchar
        | PgType::Json
        | PgType::Inet
        | PgType::AsText => {
            let b = downcast::<StringBuilder>(b)?;
            match raw {
                None => b.append_null(),
                Some(r) => b.append_value(std::str::from_utf8(r).map_err(|_| bad("text"))?),
            }
        }
        PgType::Jsonb => {
            let b = downcast::<StringBuilder>(b)?;
            match raw {
                None => b.append_null(),
                Some([1, rest @ ..]) => {
                    b.append_value(std::str::from_utf8(rest).map_err(|_| bad("jsonb"))?);
                }
                Some(_) => return Err(bad("jsonb")),
            }
        }
        PgType::Uuid => {
            let b = downcast::<StringBuilder>(b)?;
            match raw {
                None => b.append_null(),
                Some(r) => b.append_value(uuid_text(&fixed::<16>(r, "uuid")?)),
            }
        }
        PgType::Bytea => {
            let b = downcast::<BinaryBuilder>(b)?;
            b.append_option(raw);
        }
        PgType::Date => {
            let b = downcast::<Date32Builder>(b)?;
            let v = raw
                .map(|r| {
                    let d = i32::from_be_bytes(fixed(r, "date")?);
                    if d == i32::MAX || d == i32::MIN {
                        return Err(DecodeError("infinite dates have no Arrow value".into()));
                    }
                    d.checked_add(PG_EPOCH_DAYS).ok_or_else(|| bad("date"))
                })
                .transpose()?;
            b.append_option(v);
        }
        PgType::Time => {
            let b = downcast::<Time64MicrosecondBuilder>(b)?;
            b.append_option(
                raw.map(|r| fixed(r, "time").map(i64::from_be_bytes))
                    .transpose()?,
            );
        }
        PgType::Timestamp | PgType::Timestamptz => {
            let b = downcast::<TimestampMicrosecondBuilder>(b)?;
            let v = raw
                .map(|r| {
                    let t = i64::from_be_bytes(fixed(r, "timestamp")?);
                    if t == i64::MAX || t == i64::MIN {
                        return Err(DecodeError(
                            "infinite timestamps have no Arrow value".into(),
                        ));
                    }
                    t.checked_add(PG_EPOCH_MICROS)
                        .ok_or_else(|| bad("timestamp"))
                })
                .transpose()?;
            b.append_option(v);
        }
        PgType::Interval => {
            let b = downcast::<IntervalMonthDayNanoBuilder>(b)?;
            let v = raw
                .map(|r| {
                    let v = fixed::<16>(r, "interval")?;
                    let (micros, rest) = v.split_at(8);
                    let (days, months) = rest.split_at(4);
                    let micros = i64::from_be_bytes(be(micros, "interval")?);
                    let days = i32::from_be_bytes(be(days, "interval")?);
                    let months = i32::from_be_bytes(be(months, "interval")?);
                    let nanos = micros.checked_mul(1000).ok_or_else(|| bad("interval"))?;
                    Ok(IntervalMonthDayNano::new(months, days, nanos))
                })
                .transpose()?;
            b.append_option(v);
        }
        PgType::Array(elem) => {
            let b = downcast::<ListBuilder<Box<dyn ArrayBuilder>>>(b)?;
            match raw {
                None => b.append_null(),
                Some(r) => {
                    for item in array_items(r)? {
                        append(b.values().as_mut(), elem, item)?;
                    }
                    b.append(true);
                }
            }
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
fn array_items(r: &[u8]) -> Result<Vec<Option<&[u8]>>> {
    let ndim = i32::from_be_bytes(be(r, "array")?);
    if ndim == 0 {
        return Ok(Vec::new());
    }
    if ndim != 1 {
        return Err(DecodeError(format!(
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

/// A `numeric` in binary format as an integer at `scale`: base-10000 digits, a weight (the
/// exponent of the first digit, in base 10000), a sign and the display scale. Digits below
/// `scale` (only unconstrained columns have them) are rounded half away from zero.
fn decode_numeric(r: &[u8], scale: i8) -> Result<i128> {
    let ndigits = usize::from(u16::from_be_bytes(be(r, "numeric")?));
    let weight = i32::from(i16::from_be_bytes(be(
        r.get(2..).unwrap_or_default(),
        "numeric",
    )?));
    let sign = u16::from_be_bytes(be(r.get(4..).unwrap_or_default(), "numeric")?);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err(DecodeError("numeric NaN has no decimal value".into())),
        _ => return Err(DecodeError("numeric infinity has no decimal value".into())),
    }
    let overflow = || DecodeError(format!("numeric value does not fit decimal(38, {scale})"));
    let digits = r.get(8..8 + 2 * ndigits).ok_or_else(|| bad("numeric"))?;
    // Digit i is worth digit * 10^(4 * (weight - i)); the result is in units of 10^-scale, so
    // digit i is multiplied by 10^(4 * (weight - i) + scale), or divided when that is negative.
    let mut value: i128 = 0;
    let mut dropped = false; // any non-zero digit below the scale
    let mut half_up = false; // the first digit below the scale is 5 or more
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let d = i128::from(u16::from_be_bytes([pair[0], pair[1]]));
        let i = i32::try_from(i).map_err(|_| bad("numeric"))?;
        let exp = 4 * (weight - i) + i32::from(scale);
        if exp >= 0 {
            let f = 10i128
                .checked_pow(u32::try_from(exp).map_err(|_| overflow())?)
                .ok_or_else(overflow)?;
            value = d
                .checked_mul(f)
                .and_then(|v| value.checked_add(v))
                .ok_or_else(overflow)?;
        } else if exp > -4 {
            // Part of this digit lies below the scale: keep the upper decimal places.
            let f = 10i128.pow(exp.unsigned_abs());
            value = value.checked_add(d / f).ok_or_else(overflow)?;
            let rest = d % f;
            half_up = rest * 2 >= f;
            dropped |= rest != 0;
        } else {
            if exp == -4 && !dropped {
                half_up = d >= 5000;
            }
            dropped |= d != 0;
        }
    }
    if dropped && half_up {
        value = value.checked_add(1).ok_or_else(overflow)?;
    }
    if value.unsigned_abs() >= 10u128.pow(38) {
        return Err(overflow());
    }
    Ok(if sign == 0x4000 { -value } else { value })
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
    fn numerics_decode_at_the_column_scale() {
        // 12345.6789 = [1, 2345, 6789], weight 1
        assert_eq!(
            decode_numeric(&num(&[1, 2345, 6789], 1, false, 4), 4).unwrap(),
            123_456_789
        );
        assert_eq!(
            decode_numeric(&num(&[1, 2345, 6789], 1, true, 4), 6).unwrap(),
            -12_345_678_900
        );
        // 0.05 = [500], weight -1
        assert_eq!(decode_numeric(&num(&[500], -1, false, 2), 2).unwrap(), 5);
        // 10000 = [1], weight 1
        assert_eq!(decode_numeric(&num(&[1], 1, false, 0), 0).unwrap(), 10_000);
        assert_eq!(decode_numeric(&num(&[], 0, false, 0), 2).unwrap(), 0);
        let nan = {
            let mut v = num(&[], 0, false, 0);
            v[4] = 0xC0;
            v
        };
        assert!(decode_numeric(&nan, 2).is_err());
        // 10^40 does not fit.
        assert!(decode_numeric(&num(&[1], 10, false, 0), 0).is_err());
        // Unconstrained values round half away from zero at the scale, never truncate:
        // 1.00000000005 = [1, 0, 0, 50] -> 1.0000000001; 0.5 -> 1; 0.49999 -> 0.
        assert_eq!(
            decode_numeric(&num(&[1, 0, 0, 50], 0, false, 11), 10).unwrap(),
            10_000_000_001
        );
        assert_eq!(
            decode_numeric(&num(&[1, 0, 0, 49], 0, true, 11), 10).unwrap(),
            -10_000_000_000
        );
        assert_eq!(decode_numeric(&num(&[5000], -1, true, 1), 0).unwrap(), -1);
        assert_eq!(
            decode_numeric(&num(&[4999, 9000], -1, false, 5), 0).unwrap(),
            0
        );
        assert_eq!(decode_numeric(&num(&[70], -1, false, 4), 2).unwrap(), 1);
        assert_eq!(decode_numeric(&num(&[5000], -2, false, 8), 0).unwrap(), 0);
    }

    #[test]
    fn fixed_width_values_of_the_wrong_size_are_refused() {
        let mut b = builder(&PgType::Int4, 1);
        let err = append(b.as_mut(), &PgType::Int4, Some(&[0, 0, 0, 0, 0, 0, 0, 1])).unwrap_err();
        assert!(err.0.contains("changed"), "{}", err.0);
        append(b.as_mut(), &PgType::Int4, Some(&[0, 0, 0, 7])).unwrap();
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn catalog_types_map() {
        assert_eq!(
            PgType::from_catalog("numeric", (10 << 16) + 2 + 4, false),
            PgType::Numeric {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(
            PgType::from_catalog("numeric", -1, false).arrow(),
            DataType::Decimal128(38, 10)
        );
        assert_eq!(
            PgType::from_catalog("numeric", (60 << 16) + 4, false),
            PgType::AsText
        );
        assert_eq!(
            PgType::from_catalog("mood", -1, true).select_expr("\"m\""),
            "\"m\"::text[]"
        );
        assert_eq!(
            PgType::from_catalog("cidr", -1, false).select_expr("\"i\""),
            "\"i\"::text"
        );
        assert_eq!(
            PgType::from_catalog("inet", -1, false).select_expr("\"i\""),
            "abbrev(\"i\")"
        );
        assert_eq!(
            uuid_text(&[0xab; 16]),
            "abababab-abab-abab-abab-abababababab"
        );
    }
}
