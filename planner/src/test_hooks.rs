//! Faults on demand, compiled only with the `test-hooks` feature (the test suite turns it
//! on; release builds never have it).
//!
//! `sluice_test_panic(v BIGINT, at BIGINT)` returns `v`, and panics when a value of `v`
//! reaches `at`. With literals it panics while planning (constant folding); over a column,
//! inside the operator that evaluates it, wherever DataFusion runs that operator.
//!
//! `sluice_test_fault(v BIGINT)` fails with an internal error (a fault of the engine's, as a
//! bug would raise it) whose text must never reach a client.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

/// The name tests call.
pub const PANIC_FUNCTION: &str = "sluice_test_panic";

/// The name of the internal fault.
pub const FAULT_FUNCTION: &str = "sluice_test_fault";

/// Text of the injected fault: tests check that no client ever sees it.
pub const FAULT_DETAIL: &str = "sluice_test_fault: internal state 0x5eC12e7 is inconsistent";

/// The function that fails with an internal error.
pub fn fault_udf() -> ScalarUDF {
    create_udf(
        FAULT_FUNCTION,
        vec![DataType::Int64],
        DataType::Int64,
        Volatility::Volatile,
        Arc::new(|_: &[ColumnarValue]| -> Result<ColumnarValue> {
            datafusion::common::internal_err!("{FAULT_DETAIL}")
        }),
    )
}

/// The panicking function.
pub fn panic_udf() -> ScalarUDF {
    create_udf(
        PANIC_FUNCTION,
        vec![DataType::Int64, DataType::Int64],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| -> Result<ColumnarValue> {
            let [v, at] = args else {
                return datafusion::common::exec_err!("{PANIC_FUNCTION} takes two arguments");
            };
            let at = match at {
                ColumnarValue::Scalar(ScalarValue::Int64(Some(n))) => *n,
                ColumnarValue::Scalar(_) => i64::MAX,
                ColumnarValue::Array(a) => a
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .filter(|a| !a.is_empty() && a.is_valid(0))
                    .map_or(i64::MAX, |a| a.value(0)),
            };
            let reached = match v {
                ColumnarValue::Scalar(ScalarValue::Int64(Some(x))) => *x >= at,
                ColumnarValue::Scalar(_) => false,
                ColumnarValue::Array(a) => a
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .is_some_and(|a| a.iter().flatten().any(|x| x >= at)),
            };
            #[allow(clippy::panic, reason = "this function exists to panic")]
            if reached {
                panic!("{PANIC_FUNCTION}: a value reached {at}");
            }
            Ok(v.clone())
        }),
    )
}

/// The leak recorder's name: `sluice_test_leak(v)` is `TRUE` for every value, and writes each
/// value it sees (as text) to a list the tests read ([`leaked`]), as PostgreSQL's `f_leak`.
/// Immutable, so the optimizer may move it wherever it could move any function.
pub const LEAK_FUNCTION: &str = "sluice_test_leak";

static LEAKED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Every value the leak recorder has seen in this process.
pub fn leaked() -> Vec<String> {
    LEAKED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Leak {
    signature: datafusion::logical_expr::Signature,
}

impl datafusion::logical_expr::ScalarUDFImpl for Leak {
    fn name(&self) -> &str {
        LEAK_FUNCTION
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> Result<ColumnarValue> {
        use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
        let rows = args.number_rows;
        let Some(arg) = args.args.first() else {
            return datafusion::common::exec_err!("{LEAK_FUNCTION} takes one argument");
        };
        let array = arg.to_array(rows)?;
        let options = FormatOptions::default().with_null("NULL");
        let format = ArrayFormatter::try_new(array.as_ref(), &options)?;
        let seen: Vec<String> = (0..array.len())
            .map(|i| format.value(i).to_string())
            .collect();
        LEAKED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(seen);
        Ok(ColumnarValue::Array(std::sync::Arc::new(
            datafusion::arrow::array::BooleanArray::from(vec![true; rows]),
        )))
    }
}

/// The leak recorder.
pub fn leak_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Leak {
        signature: datafusion::logical_expr::Signature::any(1, Volatility::Immutable),
    })
}
