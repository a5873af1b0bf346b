//! Bind parameters as the positional values (`$1`, ...) the query service binds into the plan
//! (never into SQL text): text-format values read by their declared type, binary ones decoded
//! for the types drivers send in binary. Dates, times, timestamps and numerics travel as their
//! canonical text, which the planner casts to the placeholder's type.

use bytes::Bytes;
use serde_json::{Number, Value};

use super::errors::{PgError, state};
use super::types::oid;

/// The JSON value of parameter `i` (`oid` its type, 0 when unknown; `binary` its format).
///
/// # Errors
/// 22P02 for a value that does not read as its type; 0A000 for a binary type not decoded here.
pub fn value(raw: Option<&Bytes>, type_oid: u32, binary: bool) -> Result<Value, PgError> {
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    if binary {
        return binary_value(raw, type_oid);
    }
    let text = std::str::from_utf8(raw).map_err(|_| {
        PgError::new(
            state::INVALID_TEXT_REPRESENTATION,
            "parameter is not valid UTF-8",
        )
    })?;
    let bad = || {
        PgError::new(
            state::INVALID_TEXT_REPRESENTATION,
            format!(
                "invalid input syntax for type {}: \"{}\"",
                super::types::type_name(type_oid),
                text.chars().take(64).collect::<String>()
            ),
        )
    };
    Ok(match type_oid {
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => {
            Value::Number(text.trim().parse::<i64>().map_err(|_| bad())?.into())
        }
        oid::FLOAT4 | oid::FLOAT8 => {
            let f: f64 = text.trim().parse().map_err(|_| bad())?;
            Number::from_f64(f).map_or_else(|| Value::String(text.to_owned()), Value::Number)
        }
        oid::BOOL => Value::Bool(match text.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "on" | "yes" | "y" | "1" => true,
            "f" | "false" | "off" | "no" | "n" | "0" => false,
            _ => return Err(bad()),
        }),
        _ => Value::String(text.to_owned()),
    })
}

fn binary_value(raw: &[u8], type_oid: u32) -> Result<Value, PgError> {
    let bad = || {
        PgError::new(
            "22P03",
            format!(
                "incorrect binary data format for type {}",
                super::types::type_name(type_oid)
            ),
        )
    };
    let int = |n: usize| -> Result<i64, PgError> {
        let b: [u8; 8] = match n {
            2 => {
                let a: [u8; 2] = raw.try_into().map_err(|_| bad())?;
                i64::from(i16::from_be_bytes(a)).to_be_bytes()
            }
            4 => {
                let a: [u8; 4] = raw.try_into().map_err(|_| bad())?;
                i64::from(i32::from_be_bytes(a)).to_be_bytes()
            }
            _ => raw.try_into().map_err(|_| bad())?,
        };
        Ok(i64::from_be_bytes(b))
    };
    Ok(match type_oid {
        oid::INT2 => Value::Number(int(2)?.into()),
        oid::INT4 => Value::Number(int(4)?.into()),
        oid::INT8 => Value::Number(int(8)?.into()),
        oid::OID => {
            let a: [u8; 4] = raw.try_into().map_err(|_| bad())?;
            Value::Number(u32::from_be_bytes(a).into())
        }
        oid::FLOAT4 => {
            let a: [u8; 4] = raw.try_into().map_err(|_| bad())?;
            let f = f64::from(f32::from_be_bytes(a));
            Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        oid::FLOAT8 => {
            let a: [u8; 8] = raw.try_into().map_err(|_| bad())?;
            let f = f64::from_be_bytes(a);
            Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        oid::BOOL => match raw {
            [b] => Value::Bool(*b != 0),
            _ => return Err(bad()),
        },
        oid::TEXT | oid::VARCHAR | oid::NAME | oid::UNKNOWN | 0 | 1042 => {
            Value::String(String::from_utf8(raw.to_vec()).map_err(|_| bad())?)
        }
        oid::DATE => {
            let a: [u8; 4] = raw.try_into().map_err(|_| bad())?;
            let days = i64::from(i32::from_be_bytes(a)) + 10_957;
            let date = chrono::DateTime::from_timestamp(days * 86_400, 0).ok_or_else(bad)?;
            Value::String(date.format("%Y-%m-%d").to_string())
        }
        oid::TIMESTAMP | oid::TIMESTAMPTZ => {
            let a: [u8; 8] = raw.try_into().map_err(|_| bad())?;
            let micros = i64::from_be_bytes(a).saturating_add(946_684_800_000_000);
            let t = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
            Value::String(if type_oid == oid::TIMESTAMPTZ {
                t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
            } else {
                t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
            })
        }
        oid::UUID => {
            let a: [u8; 16] = raw.try_into().map_err(|_| bad())?;
            Value::String(uuid::Uuid::from_bytes(a).hyphenated().to_string())
        }
        oid::NUMERIC => Value::String(numeric_text(raw).ok_or_else(bad)?),
        other => {
            return Err(PgError::new(
                state::FEATURE_NOT_SUPPORTED,
                format!(
                    "binary parameters of type {} are not supported; send it as text",
                    super::types::type_name(other)
                ),
            ));
        }
    })
}

/// PostgreSQL's binary `numeric` as decimal text.
fn numeric_text(raw: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<i16> {
        let b = raw.get(i..i + 2)?;
        Some(i16::from_be_bytes([b[0], b[1]]))
    };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = i32::from(word(2)?);
    let sign = u16::from_be_bytes([*raw.get(4)?, *raw.get(5)?]);
    let dscale = usize::try_from(word(6)?).ok()?;
    if sign == 0xC000 {
        return Some("NaN".into());
    }
    let digits: Vec<i16> = (0..ndigits)
        .map(|k| word(8 + 2 * k))
        .collect::<Option<_>>()?;
    let mut int = String::new();
    let mut frac = String::new();
    for (k, d) in digits.iter().enumerate() {
        let position = weight - i32::try_from(k).ok()?;
        let group = format!("{d:04}");
        if position >= 0 {
            int.push_str(&group);
        } else {
            // Groups between the point and this one are zeros.
            while frac.len() < usize::try_from(-position - 1).ok()? * 4 {
                frac.push_str("0000");
            }
            frac.push_str(&group);
        }
    }
    // Integer groups past the last digit are zeros.
    let last = weight - i32::try_from(ndigits).ok()? + 1;
    for _ in 0..last.max(0) {
        int.push_str("0000");
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    frac.truncate(dscale);
    while frac.len() < dscale {
        frac.push('0');
    }
    let sign = if sign == 0x4000 { "-" } else { "" };
    Some(if dscale > 0 {
        format!("{sign}{int}.{frac}")
    } else {
        format!("{sign}{int}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_binary_reads_back() {
        // 12345.678: digits [1, 2345, 6780], weight 1, dscale 3.
        let raw = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c];
        assert_eq!(numeric_text(&raw).as_deref(), Some("12345.678"));
        // -0.05: digits [500], weight -1.
        let raw = [0, 1, 0xff, 0xff, 0x40, 0, 0, 2, 0x01, 0xf4];
        assert_eq!(numeric_text(&raw).as_deref(), Some("-0.05"));
        // 20000: digits [2], weight 1.
        let raw = [0, 1, 0, 1, 0, 0, 0, 0, 0, 2];
        assert_eq!(numeric_text(&raw).as_deref(), Some("20000"));
    }

    #[test]
    fn text_parameters_keep_their_type() {
        let b = Bytes::from_static(b"42");
        assert_eq!(
            value(Some(&b), oid::INT4, false).ok(),
            Some(Value::from(42))
        );
        assert_eq!(
            value(Some(&b), oid::TEXT, false).ok(),
            Some(Value::from("42"))
        );
        assert!(value(Some(&Bytes::from_static(b"x")), oid::INT8, false).is_err());
        let b = Bytes::from_static(&[0, 0, 0, 7]);
        assert_eq!(value(Some(&b), oid::INT4, true).ok(), Some(Value::from(7)));
        assert_eq!(value(None, oid::INT4, true).ok(), Some(Value::Null));
    }
}
