//! Binding JSON parameter values to `$1` / `$name` / `:name` placeholders.
//!
//! Values become literals in the logical plan, never SQL text. Each value is cast to the type
//! DataFusion inferred for its placeholder, so `l_orderkey = $1` with `"abc"` is a clear
//! parameter error rather than a failure deep inside execution.

use std::collections::HashMap;

use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use serde_json::Value;

use crate::error::{PlanError, Result};

/// Placeholder values as they arrive in a request.
#[derive(Debug, Clone)]
pub enum Params {
    /// `$1`, `$2`, ... in order.
    Positional(Vec<Value>),
    /// `$name` or `:name`.
    Named(serde_json::Map<String, Value>),
}

/// Replaces the placeholders of `plan` with `params`, checking count, names and types.
pub fn bind(plan: LogicalPlan, params: Option<&Params>) -> Result<LogicalPlan> {
    let expected = plan.get_parameter_types().map_err(PlanError::classify)?;
    let Some(params) = params else {
        if expected.is_empty() {
            return Ok(plan);
        }
        let mut names: Vec<_> = expected.keys().cloned().collect();
        names.sort();
        return Err(PlanError::Params(format!(
            "the query has placeholders ({}) but no params were given",
            names.join(", ")
        )));
    };
    let values = match params {
        Params::Positional(values) => {
            for id in expected.keys() {
                let pos = id.get(1..).and_then(|n| n.parse::<usize>().ok());
                match pos {
                    Some(n) if n >= 1 && n <= values.len() => {}
                    Some(n) => {
                        return Err(PlanError::Params(format!(
                            "placeholder ${n} has no value: {} params given",
                            values.len()
                        )));
                    }
                    None => {
                        return Err(PlanError::Params(format!(
                            "placeholder {id} is named; pass params as an object"
                        )));
                    }
                }
            }
            if values.len() > expected.len() {
                return Err(PlanError::Params(format!(
                    "{} params given but the query has {} placeholders",
                    values.len(),
                    expected.len()
                )));
            }
            let mut scalars = Vec::with_capacity(values.len());
            for (i, v) in values.iter().enumerate() {
                let id = format!("${}", i + 1);
                let target = expected.get(&id).and_then(Option::as_ref);
                scalars.push(to_scalar(&id, v, target)?);
            }
            ParamValues::from(scalars)
        }
        Params::Named(map) => {
            let mut bound: Vec<(String, ScalarValue)> = Vec::with_capacity(map.len());
            for id in expected.keys() {
                let name = id.get(1..).unwrap_or_default();
                if name.parse::<usize>().is_ok() {
                    return Err(PlanError::Params(format!(
                        "placeholder {id} is positional; pass params as an array"
                    )));
                }
                let v = map.get(name).ok_or_else(|| {
                    PlanError::Params(format!("no value given for placeholder {id}"))
                })?;
                let target = expected.get(id).and_then(Option::as_ref);
                bound.push((name.to_owned(), to_scalar(id, v, target)?));
            }
            let known: HashMap<&str, ()> = expected
                .keys()
                .map(|k| (k.get(1..).unwrap_or_default(), ()))
                .collect();
            if let Some(extra) = map.keys().find(|k| !known.contains_key(k.as_str())) {
                return Err(PlanError::Params(format!(
                    "param `{extra}` matches no placeholder in the query"
                )));
            }
            ParamValues::from(bound)
        }
    };
    plan.with_param_values(values).map_err(PlanError::classify)
}

fn to_scalar(
    id: &str,
    value: &Value,
    target: Option<&datafusion::arrow::datatypes::DataType>,
) -> Result<ScalarValue> {
    let scalar = match value {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                ScalarValue::Int64(Some(i))
            } else if let Some(u) = n.as_u64() {
                ScalarValue::UInt64(Some(u))
            } else {
                ScalarValue::Float64(n.as_f64())
            }
        }
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        Value::Array(_) | Value::Object(_) => {
            return Err(PlanError::Params(format!(
                "value for {id} must be a string, number, boolean or null"
            )));
        }
    };
    let Some(target) = target else {
        return Ok(scalar);
    };
    if scalar.is_null() {
        return ScalarValue::try_from(target)
            .map_err(|_| PlanError::Params(format!("{id} cannot be NULL of type {target}")));
    }
    // A lossy float→int or an out-of-range number must not slip through as a silent
    // truncation, so the cast is checked by casting back where that is meaningful.
    let cast = scalar
        .cast_to(target)
        .map_err(|_| mismatch(id, value, target))?;
    if cast.is_null() {
        return Err(mismatch(id, value, target));
    }
    if matches!(scalar, ScalarValue::Float64(_)) && target.is_integer() {
        let back = cast.cast_to(&scalar.data_type()).ok();
        if back.as_ref() != Some(&scalar) {
            return Err(mismatch(id, value, target));
        }
    }
    Ok(cast)
}

fn mismatch(id: &str, value: &Value, target: &datafusion::arrow::datatypes::DataType) -> PlanError {
    PlanError::Params(format!("value {value} for {id} does not fit type {target}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;
    use serde_json::json;

    #[test]
    fn casts_to_the_inferred_type() {
        let s = to_scalar("$1", &json!("42"), Some(&DataType::Int64)).unwrap();
        assert_eq!(s, ScalarValue::Int64(Some(42)));
        let s = to_scalar("$1", &json!(3), Some(&DataType::Float64)).unwrap();
        assert_eq!(s, ScalarValue::Float64(Some(3.0)));
        let s = to_scalar("$1", &json!(null), Some(&DataType::Int32)).unwrap();
        assert_eq!(s, ScalarValue::Int32(None));
    }

    #[test]
    fn rejects_mismatches() {
        for (v, t) in [
            (json!("abc"), DataType::Int64),
            (json!(1.5), DataType::Int64),
            (json!(300), DataType::Int8),
            (json!([1]), DataType::Int64),
            (json!("x"), DataType::Date32),
        ] {
            assert!(
                matches!(to_scalar("$1", &v, Some(&t)), Err(PlanError::Params(_))),
                "{v} as {t}"
            );
        }
    }
}
