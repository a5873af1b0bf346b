//! Arrow types as PostgreSQL's, and values as PostgreSQL's text and binary formats: the
//! binary ones pgjdbc (past its prepare threshold) and asyncpg (always) ask for. A type with
//! no PostgreSQL counterpart (structs, maps, nested lists) is `text` in Arrow's display form.

use bytes::BufMut;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// Type oids (`pg_type.oid`) this door answers with.
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const BOOL_ARRAY: u32 = 1000;
    pub const INT2_ARRAY: u32 = 1005;
    pub const INT4_ARRAY: u32 = 1007;
    pub const TEXT_ARRAY: u32 = 1009;
    pub const INT8_ARRAY: u32 = 1016;
    pub const FLOAT4_ARRAY: u32 = 1021;
    pub const FLOAT8_ARRAY: u32 = 1022;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
}

/// The PostgreSQL type of an Arrow type.
pub fn pg_type(t: &DataType) -> u32 {
    match t {
        DataType::Boolean => oid::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => oid::INT2,
        DataType::Int32 | DataType::UInt16 => oid::INT4,
        DataType::Int64 | DataType::UInt32 => oid::INT8,
        DataType::Float16 | DataType::Float32 => oid::FLOAT4,
        DataType::Float64 => oid::FLOAT8,
        DataType::UInt64 | DataType::Decimal32(..) | DataType::Decimal64(..) => oid::NUMERIC,
        DataType::Decimal128(..) | DataType::Decimal256(..) => oid::NUMERIC,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => oid::BYTEA,
        DataType::Date32 | DataType::Date64 => oid::DATE,
        DataType::Time32(_) | DataType::Time64(_) => oid::TIME,
        DataType::Timestamp(_, None) => oid::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => oid::TIMESTAMPTZ,
        DataType::Interval(_) | DataType::Duration(_) => oid::INTERVAL,
        DataType::Dictionary(_, v) => pg_type(v),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            match pg_type(f.data_type()) {
                oid::BOOL => oid::BOOL_ARRAY,
                oid::INT2 => oid::INT2_ARRAY,
                oid::INT4 => oid::INT4_ARRAY,
                oid::INT8 => oid::INT8_ARRAY,
                oid::FLOAT4 => oid::FLOAT4_ARRAY,
                oid::FLOAT8 => oid::FLOAT8_ARRAY,
                oid::TEXT => oid::TEXT_ARRAY,
                _ => oid::TEXT,
            }
        }
        _ => oid::TEXT,
    }
}

/// `pg_type.typlen` of a type oid.
pub fn type_size(oid: u32) -> i16 {
    match oid {
        oid::BOOL => 1,
        oid::INT2 => 2,
        oid::INT4 | oid::FLOAT4 | oid::DATE | oid::OID => 4,
        oid::INT8 | oid::FLOAT8 | oid::TIME | oid::TIMESTAMP | oid::TIMESTAMPTZ => 8,
        oid::INTERVAL | oid::UUID => 16,
        oid::NAME => 64,
        _ => -1,
    }
}

/// The type name `format_type` and `pg_type.typname` give an oid.
pub fn type_name(oid: u32) -> &'static str {
    match oid {
        oid::BOOL => "boolean",
        oid::BYTEA => "bytea",
        oid::NAME => "name",
        oid::INT8 => "bigint",
        oid::INT2 => "smallint",
        oid::INT4 => "integer",
        oid::OID => "oid",
        oid::FLOAT4 => "real",
        oid::FLOAT8 => "double precision",
        oid::VARCHAR => "character varying",
        oid::DATE => "date",
        oid::TIME => "time without time zone",
        oid::TIMESTAMP => "timestamp without time zone",
        oid::TIMESTAMPTZ => "timestamp with time zone",
        oid::INTERVAL => "interval",
        oid::NUMERIC => "numeric",
        oid::UUID => "uuid",
        oid::BOOL_ARRAY => "boolean[]",
        oid::INT2_ARRAY => "smallint[]",
        oid::INT4_ARRAY => "integer[]",
        oid::INT8_ARRAY => "bigint[]",
        oid::FLOAT4_ARRAY => "real[]",
        oid::FLOAT8_ARRAY => "double precision[]",
        oid::TEXT_ARRAY => "text[]",
        _ => "text",
    }
}

/// The Arrow type a column is brought to before it is written as `oid`.
fn arrow_for(oid: u32, t: &DataType) -> DataType {
    match oid {
        oid::BOOL => DataType::Boolean,
        oid::INT2 => DataType::Int16,
        oid::INT4 => DataType::Int32,
        oid::INT8 => DataType::Int64,
        oid::FLOAT4 => DataType::Float32,
        oid::FLOAT8 => DataType::Float64,
        oid::NUMERIC => match t {
            DataType::Decimal128(p, s) => DataType::Decimal128(*p, *s),
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => DataType::Decimal128(*p, *s),
            DataType::UInt64 => DataType::Decimal128(20, 0),
            other => other.clone(),
        },
        oid::DATE => DataType::Date32,
        oid::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        oid::TIMESTAMPTZ => match t {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            _ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        },
        oid::TIME => DataType::Time64(TimeUnit::Microsecond),
        oid::INTERVAL => DataType::Interval(IntervalUnit::MonthDayNano),
        oid::BYTEA => DataType::Binary,
        oid::TEXT => match t {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => t.clone(),
            DataType::Dictionary(_, v)
                if matches!(
                    **v,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) =>
            {
                DataType::Utf8
            }
            other => other.clone(),
        },
        oid::BOOL_ARRAY
        | oid::INT2_ARRAY
        | oid::INT4_ARRAY
        | oid::INT8_ARRAY
        | oid::FLOAT4_ARRAY
        | oid::FLOAT8_ARRAY
        | oid::TEXT_ARRAY => {
            let element = match oid {
                oid::BOOL_ARRAY => DataType::Boolean,
                oid::INT2_ARRAY => DataType::Int16,
                oid::INT4_ARRAY => DataType::Int32,
                oid::INT8_ARRAY => DataType::Int64,
                oid::FLOAT4_ARRAY => DataType::Float32,
                oid::FLOAT8_ARRAY => DataType::Float64,
                _ => DataType::Utf8,
            };
            DataType::List(std::sync::Arc::new(Field::new_list_field(element, true)))
        }
        _ => t.clone(),
    }
}

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// One result column brought to the Arrow type its oid is written from.
pub struct Column {
    array: ArrayRef,
    oid: u32,
    binary: bool,
}

/// A column's writer for one batch (the display form borrows the column).
pub struct Writer<'a> {
    array: &'a ArrayRef,
    /// Logical nulls (a `NullArray` or a dictionary has no null buffer of its own).
    nulls: Option<datafusion::arrow::buffer::NullBuffer>,
    oid: u32,
    binary: bool,
    /// Display form for text output of types written through Arrow's formatter.
    display: Option<ArrayFormatter<'a>>,
}

/// How text values look: PostgreSQL's forms, and the session's time zone for `timestamptz`.
pub struct TextStyle {
    /// The session's `TimeZone` (an IANA name or an offset), for `timestamptz`.
    pub time_zone: String,
}

const DISPLAY: FormatOptions<'static> = FormatOptions::new()
    .with_null("")
    .with_date_format(Some("%Y-%m-%d"))
    .with_datetime_format(Some("%Y-%m-%d %H:%M:%S%.f"))
    .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
    .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f%:z"))
    .with_time_format(Some("%H:%M:%S%.f"));

impl Column {
    /// `array` to be written as `oid`, in binary when `binary`.
    ///
    /// # Errors
    /// The array cannot be brought to the type (not expected for types [`pg_type`] gave).
    pub fn new(
        array: &ArrayRef,
        oid: u32,
        binary: bool,
        style: &TextStyle,
    ) -> Result<Self, ArrowError> {
        let mut want = arrow_for(oid, array.data_type());
        if oid == oid::TIMESTAMPTZ && !binary {
            // Text shows the session's zone, as PostgreSQL does.
            want =
                DataType::Timestamp(TimeUnit::Microsecond, Some(style.time_zone.as_str().into()));
        }
        let array = if array.data_type() == &want {
            std::sync::Arc::clone(array)
        } else {
            datafusion::arrow::compute::cast(array, &want)?
        };
        Ok(Self { array, oid, binary })
    }

    /// The writer of this column's values.
    ///
    /// # Errors
    /// A type Arrow cannot display (not expected).
    pub fn writer(&self) -> Result<Writer<'_>, ArrowError> {
        let (oid, binary) = (self.oid, self.binary);
        let formatted = matches!(
            oid,
            oid::NUMERIC
                | oid::DATE
                | oid::TIME
                | oid::TIMESTAMP
                | oid::TIMESTAMPTZ
                | oid::INTERVAL
        ) || (oid == oid::TEXT
            && !matches!(
                self.array.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ));
        let display = if formatted && (!binary || oid == oid::TEXT || oid == oid::NUMERIC) {
            Some(ArrayFormatter::try_new(self.array.as_ref(), &DISPLAY)?)
        } else {
            None
        };
        Ok(Writer {
            array: &self.array,
            nulls: self.array.logical_nulls(),
            oid,
            binary,
            display,
        })
    }
}

impl Writer<'_> {
    /// Writes row `i`'s value: its length (-1 for NULL) and bytes.
    pub fn write(&self, i: usize, out: &mut bytes::BytesMut) {
        if self.nulls.as_ref().is_some_and(|n| n.is_null(i)) {
            out.put_i32(-1);
            return;
        }
        let at = out.len();
        out.put_i32(0);
        if self.binary {
            self.binary_value(i, out);
        } else {
            self.text_value(i, out);
        }
        let len = i32::try_from(out.len() - at - 4).unwrap_or(i32::MAX);
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn text_value(&self, i: usize, out: &mut bytes::BytesMut) {
        use std::fmt::Write as _;
        let a = &self.array;
        match self.oid {
            oid::BOOL => out.put_u8(if a.as_boolean().value(i) { b't' } else { b'f' }),
            oid::INT2 => put_display(
                out,
                a.as_primitive::<datafusion::arrow::datatypes::Int16Type>()
                    .value(i),
            ),
            oid::INT4 => put_display(
                out,
                a.as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                    .value(i),
            ),
            oid::INT8 => put_display(
                out,
                a.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(i),
            ),
            oid::FLOAT4 => put_float(
                out,
                f64::from(
                    a.as_primitive::<datafusion::arrow::datatypes::Float32Type>()
                        .value(i),
                ),
                true,
            ),
            oid::FLOAT8 => put_float(
                out,
                a.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                    .value(i),
                false,
            ),
            oid::BYTEA => {
                let bytes = binary_at(a, i);
                out.put_slice(b"\\x");
                for b in bytes {
                    let _ = write!(Hex(out), "{b:02x}");
                }
            }
            oid::TEXT if self.display.is_none() => out.put_slice(text_at(a, i).as_bytes()),
            oid::BOOL_ARRAY
            | oid::INT2_ARRAY
            | oid::INT4_ARRAY
            | oid::INT8_ARRAY
            | oid::FLOAT4_ARRAY
            | oid::FLOAT8_ARRAY
            | oid::TEXT_ARRAY => text_array(a, i, self.oid, out),
            oid::TIMESTAMPTZ => {
                // PostgreSQL shows `+00` where chrono shows `+00:00`.
                if let Some(d) = &self.display {
                    let s = trim_fraction(&d.value(i).to_string());
                    out.put_slice(s.strip_suffix(":00").unwrap_or(&s).as_bytes());
                }
            }
            oid::INTERVAL => {
                let v = a
                    .as_primitive::<datafusion::arrow::datatypes::IntervalMonthDayNanoType>()
                    .value(i);
                let _ = write!(
                    Hex(out),
                    "{}",
                    interval_text(v.months, v.days, v.nanoseconds / 1_000)
                );
            }
            oid::TIMESTAMP | oid::TIME => {
                if let Some(d) = &self.display {
                    out.put_slice(trim_fraction(&d.value(i).to_string()).as_bytes());
                }
            }
            _ => {
                if let Some(d) = &self.display {
                    let _ = write!(Hex(out), "{}", d.value(i));
                }
            }
        }
    }

    fn binary_value(&self, i: usize, out: &mut bytes::BytesMut) {
        let a = &self.array;
        match self.oid {
            oid::BOOL => out.put_u8(u8::from(a.as_boolean().value(i))),
            oid::INT2 => out.put_i16(
                a.as_primitive::<datafusion::arrow::datatypes::Int16Type>()
                    .value(i),
            ),
            oid::INT4 => out.put_i32(
                a.as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                    .value(i),
            ),
            oid::INT8 => out.put_i64(
                a.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(i),
            ),
            oid::FLOAT4 => out.put_f32(
                a.as_primitive::<datafusion::arrow::datatypes::Float32Type>()
                    .value(i),
            ),
            oid::FLOAT8 => out.put_f64(
                a.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                    .value(i),
            ),
            oid::BYTEA => out.put_slice(binary_at(a, i)),
            oid::DATE => out.put_i32(
                a.as_primitive::<datafusion::arrow::datatypes::Date32Type>()
                    .value(i)
                    .saturating_sub(PG_EPOCH_DAYS),
            ),
            oid::TIME => out.put_i64(
                a.as_primitive::<datafusion::arrow::datatypes::Time64MicrosecondType>()
                    .value(i),
            ),
            oid::TIMESTAMP | oid::TIMESTAMPTZ => out.put_i64(
                a.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                    .value(i)
                    .saturating_sub(PG_EPOCH_MICROS),
            ),
            oid::INTERVAL => {
                let v = a
                    .as_primitive::<datafusion::arrow::datatypes::IntervalMonthDayNanoType>()
                    .value(i);
                out.put_i64(v.nanoseconds / 1_000);
                out.put_i32(v.days);
                out.put_i32(v.months);
            }
            oid::NUMERIC => match &self.display {
                Some(d) => numeric_binary(&d.value(i).to_string(), out),
                None => out.put_slice(b"\0\0\0\0\0\0\0\0"),
            },
            oid::BOOL_ARRAY
            | oid::INT2_ARRAY
            | oid::INT4_ARRAY
            | oid::INT8_ARRAY
            | oid::FLOAT4_ARRAY
            | oid::FLOAT8_ARRAY
            | oid::TEXT_ARRAY => binary_array(a, i, self.oid, out),
            _ => match &self.display {
                None => out.put_slice(text_at(a, i).as_bytes()),
                Some(d) => {
                    use std::fmt::Write as _;
                    let _ = write!(Hex(out), "{}", d.value(i));
                }
            },
        }
    }
}

/// Fractional seconds as PostgreSQL writes them: without trailing zeros (`10:20:30.5`, not
/// `.500`), and the offset after them kept (`10:20:30.5+01:00`).
fn trim_fraction(text: &str) -> String {
    let Some(dot) = text.find('.') else {
        return text.to_owned();
    };
    let digits = text[dot + 1..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(text.len(), |n| dot + 1 + n);
    let kept = text[dot + 1..digits].trim_end_matches('0');
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..dot]);
    if !kept.is_empty() {
        out.push('.');
        out.push_str(kept);
    }
    out.push_str(&text[digits..]);
    out
}

/// A `fmt::Write` into the output buffer.
struct Hex<'a>(&'a mut bytes::BytesMut);

impl std::fmt::Write for Hex<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
}

fn put_display(out: &mut bytes::BytesMut, v: impl itoa::Integer) {
    let mut b = itoa::Buffer::new();
    out.put_slice(b.format(v).as_bytes());
}

/// A float as PostgreSQL 12+ shows it (shortest exact form; `Infinity`, `NaN`, exponents
/// past 1e15 and below 1e-4).
fn put_float(out: &mut bytes::BytesMut, v: f64, single: bool) {
    let text = float_text(v, single);
    out.put_slice(text.as_bytes());
}

/// The text of a float.
pub fn float_text(v: f64, single: bool) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let magnitude = v.abs();
    let exponent = magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude);
    let s = match (single, exponent) {
        (true, false) => format!("{}", v as f32),
        (true, true) => format!("{:e}", v as f32),
        (false, false) => format!("{v}"),
        (false, true) => format!("{v:e}"),
    };
    match s.split_once('e') {
        Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
        Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
        None => s,
    }
}

fn text_at(a: &ArrayRef, i: usize) -> &str {
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(i),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i),
        DataType::Utf8View => a.as_string_view().value(i),
        _ => "",
    }
}

fn binary_at(a: &ArrayRef, i: usize) -> &[u8] {
    match a.data_type() {
        DataType::Binary => a.as_binary::<i32>().value(i),
        DataType::LargeBinary => a.as_binary::<i64>().value(i),
        DataType::BinaryView => a.as_binary_view().value(i),
        DataType::FixedSizeBinary(_) => a.as_fixed_size_binary().value(i),
        _ => &[],
    }
}

/// An interval as PostgreSQL's `postgres` style shows it: `1 year 2 mons 3 days 04:05:06`.
fn interval_text(months: i32, days: i32, micros: i64) -> String {
    let mut parts = Vec::new();
    let (years, months) = (months / 12, months % 12);
    let unit = |n: i32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if years != 0 {
        parts.push(unit(years, "year", "years"));
    }
    if months != 0 {
        parts.push(unit(months, "mon", "mons"));
    }
    if days != 0 {
        parts.push(unit(days, "day", "days"));
    }
    if micros != 0 || parts.is_empty() {
        let sign = if micros < 0 { "-" } else { "" };
        let m = micros.unsigned_abs();
        let (h, rest) = (m / 3_600_000_000, m % 3_600_000_000);
        let (min, rest) = (rest / 60_000_000, rest % 60_000_000);
        let (s, frac) = (rest / 1_000_000, rest % 1_000_000);
        let mut t = format!("{sign}{h:02}:{min:02}:{s:02}");
        if frac != 0 {
            let f = format!("{frac:06}");
            t.push('.');
            t.push_str(f.trim_end_matches('0'));
        }
        parts.push(t);
    }
    parts.join(" ")
}

/// PostgreSQL's binary `numeric` of a decimal's text (`-123.4500`): base-10000 digits around
/// the point, a weight, a sign and the display scale. From the text, so any width (Decimal256)
/// and any scale encode without arithmetic that could overflow.
fn numeric_binary(text: &str, out: &mut bytes::BytesMut) {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let dscale = u16::try_from(frac.len()).unwrap_or(u16::MAX);
    // Pad the integer part on the left and the fraction on the right to whole groups of 4.
    let int_pad = (4 - int.len() % 4) % 4;
    let frac_pad = (4 - frac.len() % 4) % 4;
    let mut all = String::with_capacity(int.len() + frac.len() + 8);
    all.extend(std::iter::repeat_n('0', int_pad));
    all.push_str(int);
    let int_groups = all.len() / 4;
    all.push_str(frac);
    all.extend(std::iter::repeat_n('0', frac_pad));
    let mut groups: Vec<i16> = all
        .as_bytes()
        .chunks(4)
        .map(|c| {
            c.iter()
                .fold(0_i16, |acc, d| acc * 10 + i16::from(d.saturating_sub(b'0')))
        })
        .collect();
    let mut weight = i16::try_from(int_groups).unwrap_or(i16::MAX) - 1;
    // Leading zero groups lower the weight; trailing ones are dropped.
    let lead = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..lead);
    weight -= i16::try_from(lead).unwrap_or(0);
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(i16::try_from(groups.len()).unwrap_or(0));
    out.put_i16(weight);
    out.put_u16(if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    });
    out.put_u16(dscale);
    for g in groups {
        out.put_i16(g);
    }
}

fn list_parts(a: &ArrayRef, i: usize) -> Option<ArrayRef> {
    match a.data_type() {
        DataType::List(_) => Some(a.as_list::<i32>().value(i)),
        DataType::LargeList(_) => Some(a.as_list::<i64>().value(i)),
        _ => None,
    }
}

fn element_oid(array_oid: u32) -> u32 {
    match array_oid {
        oid::BOOL_ARRAY => oid::BOOL,
        oid::INT2_ARRAY => oid::INT2,
        oid::INT4_ARRAY => oid::INT4,
        oid::INT8_ARRAY => oid::INT8,
        oid::FLOAT4_ARRAY => oid::FLOAT4,
        oid::FLOAT8_ARRAY => oid::FLOAT8,
        _ => oid::TEXT,
    }
}

/// `{1,2,NULL}` / `{"a b","c"}`.
fn text_array(a: &ArrayRef, i: usize, array_oid: u32, out: &mut bytes::BytesMut) {
    let Some(values) = list_parts(a, i) else {
        return;
    };
    let style = TextStyle {
        time_zone: "UTC".into(),
    };
    let Ok(column) = Column::new(&values, element_oid(array_oid), false, &style) else {
        return;
    };
    let Ok(column) = column.writer() else {
        return;
    };
    out.put_u8(b'{');
    let mut scratch = bytes::BytesMut::new();
    for j in 0..values.len() {
        if j > 0 {
            out.put_u8(b',');
        }
        if values.logical_nulls().is_some_and(|n| n.is_null(j)) {
            out.put_slice(b"NULL");
            continue;
        }
        scratch.clear();
        column.text_value(j, &mut scratch);
        let quote = array_oid == oid::TEXT_ARRAY
            && (scratch.is_empty()
                || scratch.eq_ignore_ascii_case(b"null")
                || scratch.iter().any(|c| {
                    matches!(c, b'{' | b'}' | b',' | b'"' | b'\\' | b' ' | b'\t' | b'\n')
                }));
        if quote {
            out.put_u8(b'"');
            for c in scratch.iter() {
                if matches!(c, b'"' | b'\\') {
                    out.put_u8(b'\\');
                }
                out.put_u8(*c);
            }
            out.put_u8(b'"');
        } else {
            out.put_slice(&scratch);
        }
    }
    out.put_u8(b'}');
}

/// The binary array format: one dimension, lower bound 1.
fn binary_array(a: &ArrayRef, i: usize, array_oid: u32, out: &mut bytes::BytesMut) {
    let Some(values) = list_parts(a, i) else {
        return;
    };
    let element = element_oid(array_oid);
    let style = TextStyle {
        time_zone: "UTC".into(),
    };
    let Ok(column) = Column::new(&values, element, true, &style) else {
        return;
    };
    let Ok(column) = column.writer() else {
        return;
    };
    out.put_i32(1);
    out.put_i32(i32::from(values.null_count() > 0));
    out.put_u32(element);
    out.put_i32(i32::try_from(values.len()).unwrap_or(i32::MAX));
    out.put_i32(1);
    for j in 0..values.len() {
        column.write(j, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_postgres_shows_them() {
        assert_eq!(float_text(1.5, false), "1.5");
        assert_eq!(float_text(1e300, false), "1e+300");
        assert_eq!(float_text(1.25e-5, false), "1.25e-05");
        assert_eq!(float_text(f64::NAN, false), "NaN");
        assert_eq!(float_text(f64::NEG_INFINITY, false), "-Infinity");
        assert_eq!(float_text(0.1, true), "0.1");
    }

    #[test]
    fn fractional_seconds_lose_their_trailing_zeros() {
        assert_eq!(
            trim_fraction("2024-01-31 10:20:30.500"),
            "2024-01-31 10:20:30.5"
        );
        assert_eq!(
            trim_fraction("2024-01-31 10:20:30.500+01:00"),
            "2024-01-31 10:20:30.5+01:00"
        );
        assert_eq!(trim_fraction("10:20:30.000"), "10:20:30");
        assert_eq!(trim_fraction("10:20:30"), "10:20:30");
    }

    #[test]
    fn intervals_read_as_postgres_shows_them() {
        assert_eq!(
            interval_text(14, 3, 14_706_000_000),
            "1 year 2 mons 3 days 04:05:06"
        );
        assert_eq!(interval_text(0, 0, 0), "00:00:00");
        assert_eq!(interval_text(0, 1, 1_500_000), "1 day 00:00:01.5");
    }

    #[test]
    fn numeric_binary_groups_digits_by_ten_thousand() {
        // 12345.678 → digits [1, 2345, 6780], weight 1, dscale 3.
        let mut out = bytes::BytesMut::new();
        numeric_binary("12345.678", &mut out);
        assert_eq!(
            out.as_ref(),
            [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        let mut out = bytes::BytesMut::new();
        numeric_binary("-0.05", &mut out);
        // -0.05 → digits [500], weight -1, negative, dscale 2.
        assert_eq!(out.as_ref(), [0, 1, 0xff, 0xff, 0x40, 0, 0, 2, 0x01, 0xf4]);
    }
}

#[cfg(test)]
mod numeric_tests {
    use super::*;

    #[test]
    fn wide_and_whole_numerics_encode_from_their_text() {
        // 10^40 (a Decimal256): one digit group 1, weight 10.
        let mut out = bytes::BytesMut::new();
        numeric_binary(&format!("1{}", "0".repeat(40)), &mut out);
        assert_eq!(out.as_ref(), [0, 1, 0, 10, 0, 0, 0, 0, 0, 1]);
        // 20000 and 0.
        let mut out = bytes::BytesMut::new();
        numeric_binary("20000", &mut out);
        assert_eq!(out.as_ref(), [0, 1, 0, 1, 0, 0, 0, 0, 0, 2]);
        let mut out = bytes::BytesMut::new();
        numeric_binary("0.000", &mut out);
        assert_eq!(out.as_ref(), [0, 0, 0, 0, 0, 0, 0, 3]);
    }
}
