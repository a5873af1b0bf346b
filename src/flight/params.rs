//! Parameters bound by `DoPut`: one row of Arrow values, as the positional values (`$1`, ...)
//! the query service binds into the plan (never into SQL text). Each value keeps its meaning:
//! numbers as numbers, text as text, and dates, times, timestamps and decimals as their
//! canonical text, which the planner casts to the placeholder's type.

use arrow_flight::decode::FlightRecordBatchStream;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use futures::StreamExt;
use serde_json::{Number, Value};
use tonic::Status;

use crate::error::ApiError;

/// The one row of parameter values in `batches` (`None` when no row came), reading at most
/// `limit` bytes of Arrow data.
///
/// # Errors
/// `bad_request` for more than one row, a type that cannot be a parameter, undecodable data;
/// `request_too_large` past `limit`.
pub async fn read_row(
    mut batches: FlightRecordBatchStream,
    limit: u64,
) -> Result<Option<Vec<Value>>, Status> {
    let mut row = None;
    let mut bytes: u64 = 0;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(|e| {
            ApiError::bad_request(format!("the parameters are not valid Arrow data: {e}"))
        })?;
        bytes = bytes.saturating_add(batch.get_array_memory_size() as u64);
        if bytes > limit {
            return Err(ApiError::new(
                crate::error::Code::RequestTooLarge,
                format!("the parameters are larger than limits.max_request_bytes ({limit})"),
            )
            .into());
        }
        match (batch.num_rows(), &row) {
            (0, _) => {}
            (1, None) => {
                let values = batch
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| value(i + 1, c))
                    .collect::<Result<Vec<_>, _>>()?;
                row = Some(values);
            }
            (n, _) => {
                return Err(ApiError::bad_request(format!(
                    "a query takes one row of parameters per execution; {} were bound",
                    n + usize::from(row.is_some())
                ))
                .into());
            }
        }
    }
    Ok(row)
}

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
