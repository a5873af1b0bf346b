//! Functions that only ever appear in plans on their way to a source's SQL: the dialect
//! renders them, nothing executes them.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `sluice_byte_order(x)`: `x` compared and ordered byte for byte (PostgreSQL: `x COLLATE
/// "C"`).
pub const BYTE_ORDER: &str = "sluice_byte_order";

/// `expr` marked for byte-order comparison in the remote SQL.
pub fn byte_order(expr: Expr) -> Expr {
    ScalarUDF::new_from_impl(ByteOrder::default()).call(vec![expr])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ByteOrder {
    signature: Signature,
}

impl Default for ByteOrder {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ByteOrder {
    fn name(&self) -> &str {
        BYTE_ORDER
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Null))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!("{BYTE_ORDER} is only rendered into remote SQL, never run")
    }
}
