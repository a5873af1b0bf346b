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

/// `sluice_decimal_avg(x, precision, scale)`: DataFusion's `avg` of a decimal `x` — the sum
/// scaled to `scale`, divided by the count and truncated toward zero — as a
/// `Decimal128(precision, scale)`.
pub const DECIMAL_AVG: &str = "sluice_decimal_avg";

/// `expr` marked for byte-order comparison in the remote SQL.
pub fn byte_order(expr: Expr) -> Expr {
    ScalarUDF::new_from_impl(Placeholder::new(BYTE_ORDER, 1)).call(vec![expr])
}

/// DataFusion's `avg` of the decimal `expr`, whose result is `Decimal128(precision, scale)`.
pub fn decimal_avg(expr: Expr, precision: u8, scale: i8) -> Expr {
    use datafusion::common::ScalarValue;
    ScalarUDF::new_from_impl(Placeholder::new(DECIMAL_AVG, 3)).call(vec![
        expr,
        Expr::Literal(ScalarValue::UInt8(Some(precision)), None),
        Expr::Literal(ScalarValue::Int8(Some(scale)), None),
    ])
}

/// A function that only ever appears on its way to remote SQL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Placeholder {
    name: &'static str,
    signature: Signature,
}

impl Placeholder {
    fn new(name: &'static str, args: usize) -> Self {
        Self {
            name,
            signature: Signature::any(args, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Placeholder {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Null))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!("{} is only rendered into remote SQL, never run", self.name)
    }
}
