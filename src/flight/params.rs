//! Parameters bound by `DoPut`: one row of Arrow values, as the positional values (`$1`, ...)
//! the query service binds into the plan (never into SQL text). Each value keeps its meaning:
//! numbers as numbers, text as text, and dates, times, timestamps and decimals as their
//! canonical text, which the planner casts to the placeholder's type.

use arrow_flight::FlightData;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use futures::StreamExt;
use serde_json::{Number, Value};
use tonic::Status;

use crate::error::ApiError;

/// The one row of parameter values a `DoPut` sends (`None` when it sends no row). The messages
/// are counted as they arrive, before they are decoded, so no more than `limit` bytes of them are
/// read (dictionary messages included).
///
/// # Errors
/// `bad_request` for more than one row, a type that cannot be a parameter, undecodable data;
/// `request_too_large` past `limit`.
pub async fn read_row(
    first: FlightData,
    rest: tonic::Streaming<FlightData>,
    limit: u64,
) -> Result<Option<Vec<Value>>, Status> {
    let mut seen: u64 = 0;
    let counted = futures::stream::once(async move { Ok(first) })
        .chain(rest)
        .map(move |m| {
            let m = m.map_err(|s| FlightError::Tonic(Box::new(s)))?;
            seen = seen.saturating_add((m.data_header.len() + m.data_body.len()) as u64);
            if seen > limit {
                return Err(FlightError::ExternalError(Box::new(TooLarge(limit))));
            }
            Ok(m)
        });
    let mut batches = FlightRecordBatchStream::new_from_flight_data(counted);
    let mut row = None;
    let mut rows = 0_usize;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(|e| match e {
            FlightError::ExternalError(e) if e.is::<TooLarge>() => ApiError::new(
                crate::error::Code::RequestTooLarge,
                format!("the parameters are larger than limits.max_request_bytes ({limit})"),
            ),
            e => ApiError::bad_request(format!("the parameters are not valid Arrow data: {e}")),
        })?;
        rows += batch.num_rows();
        if rows > 1 {
            return Err(ApiError::bad_request(
                "a query takes one row of parameters per execution; more were bound",
            )
            .into());
        }
        if batch.num_rows() == 1 {
            row = Some(
                batch
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| value(i + 1, c))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
    }
    Ok(row)
}

/// The parameters went past the request limit.
#[derive(Debug, thiserror::Error)]
#[error("past {0} bytes")]
struct TooLarge(u64);

/// Parameter `$n`'s value.
fn value(n: usize, column: &datafusion::arrow::array::ArrayRef) -> Result<Value, ApiError> {
    let scalar = ScalarValue::try_from_array(column, 0)
        .map_err(|e| ApiError::bad_request(format!("parameter ${n}: {e}")))?;
    if scalar.is_null() {
        return Ok(Value::Null);
    }
    let float =
        |f: f64| Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number);
    Ok(match scalar {
        ScalarValue::Boolean(Some(b)) => Value::Bool(b),
        ScalarValue::Int8(Some(v)) => Value::from(v),
        ScalarValue::Int16(Some(v)) => Value::from(v),
        ScalarValue::Int32(Some(v)) => Value::from(v),
        ScalarValue::Int64(Some(v)) => Value::from(v),
        ScalarValue::UInt8(Some(v)) => Value::from(v),
        ScalarValue::UInt16(Some(v)) => Value::from(v),
        ScalarValue::UInt32(Some(v)) => Value::from(v),
        ScalarValue::UInt64(Some(v)) => Value::from(v),
        ScalarValue::Float32(Some(v)) => float(f64::from(v)),
        ScalarValue::Float64(Some(v)) => float(v),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Value::String(s),
        _ if matches!(
            column.data_type(),
            DataType::Date32
                | DataType::Date64
                | DataType::Time32(_)
                | DataType::Time64(_)
                | DataType::Timestamp(..)
                | DataType::Decimal32(..)
                | DataType::Decimal64(..)
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
        ) =>
        {
            // Arrow's display: `1995-01-01`, `1995-01-01T12:00:00`, `50000.25`.
            Value::String(
                datafusion::arrow::util::display::array_value_to_string(column, 0)
                    .map_err(|e| ApiError::bad_request(format!("parameter ${n}: {e}")))?,
            )
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "parameter ${n}: values of type {} cannot be bound",
                column.data_type()
            )));
        }
    })
}
