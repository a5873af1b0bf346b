//! Guards around DataFusion functions that can build unbounded values. Scalar functions do
//! not draw on the memory pool, so `memory_limit_bytes` cannot stop them; and DataFusion's
//! `repeat` bounds each value, but not a batch: 8,192 rows of `repeat(s, 1000000)` overran
//! the 2 GiB of a string array and panicked inside Arrow, after seconds of copying no
//! timeout could interrupt. The guards refuse such a call as the data error it is before
//! anything is allocated.

use datafusion::arrow::array::{Array, AsArray, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

/// Most bytes one call of a guarded function may build, over all rows of a batch.
pub const MAX_BUILT_BYTES: usize = 1 << 30;

/// How a guarded function's output size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Size {
    /// `repeat(s, n)`: `len(s) * n` bytes.
    Repeat,
    /// `lpad(s, n [, fill])`, `rpad(...)`: `n` characters, at most 4 bytes each.
    Pad,
}

/// A DataFusion function that can build huge values, refusing a call that would build more
/// than [`MAX_BUILT_BYTES`] in one batch. It is volatile, so it is never folded into a
/// constant while planning: a folded value is broadcast to every row of a batch where no
/// check sees it (a 1 MB `repeat` literal is 8 GB over 8,192 rows, built in one poll that
/// no timeout can interrupt).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Guarded {
    inner: std::sync::Arc<ScalarUDF>,
    size: Size,
    signature: Signature,
}

impl Guarded {
    fn new(inner: std::sync::Arc<ScalarUDF>, size: Size) -> Self {
        let signature = Signature {
            volatility: Volatility::Volatile,
            ..inner.signature().clone()
        };
        Self {
            inner,
            size,
            signature,
        }
    }
}

/// The guarded replacements of DataFusion's `repeat`, `lpad` and `rpad`, registered under
/// the same names.
pub fn guarded() -> Vec<ScalarUDF> {
    use datafusion::functions::{string, unicode};
    [
        (string::repeat(), Size::Repeat),
        (unicode::lpad(), Size::Pad),
        (unicode::rpad(), Size::Pad),
    ]
    .into_iter()
    .map(|(f, size)| ScalarUDF::new_from_impl(Guarded::new(f, size)))
    .collect()
}

/// The byte lengths of a string argument, row by row (one entry for a scalar).
fn lengths(v: &ColumnarValue) -> Vec<Option<usize>> {
    match v {
        ColumnarValue::Scalar(s) => vec![match s {
            ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => {
                s.as_ref().map(String::len)
            }
            _ => None,
        }],
        ColumnarValue::Array(a) => match a.data_type() {
            DataType::Utf8 => a
                .as_string::<i32>()
                .iter()
                .map(|s| s.map(str::len))
                .collect(),
            DataType::LargeUtf8 => a
                .as_string::<i64>()
                .iter()
                .map(|s| s.map(str::len))
                .collect(),
            DataType::Utf8View => a.as_string_view().iter().map(|s| s.map(str::len)).collect(),
            _ => Vec::new(),
        },
    }
}

/// An integer argument, row by row (one entry for a scalar).
fn integers(v: &ColumnarValue) -> Vec<Option<i64>> {
    match v {
        ColumnarValue::Scalar(s) => vec![s.cast_to(&DataType::Int64).ok().and_then(|s| match s {
            ScalarValue::Int64(n) => n,
            _ => None,
        })],
        ColumnarValue::Array(a) => datafusion::arrow::compute::cast(a, &DataType::Int64)
            .ok()
            .and_then(|a| {
                a.as_any()
                    .downcast_ref::<Int64Array>()
                    .map(|a| a.iter().collect())
            })
            .unwrap_or_default(),
    }
}

/// Bytes the call would build over `rows` rows (a scalar argument counts on every row).
fn planned_bytes(size: Size, args: &[ColumnarValue], rows: usize) -> usize {
    let (Some(s), Some(n)) = (args.first(), args.get(1)) else {
        return 0;
    };
    let (lens, counts) = (lengths(s), integers(n));
    let at = |i: usize, len: usize| if len == 1 { 0 } else { i };
    let mut total = 0usize;
    for i in 0..rows {
        let Some(Some(c)) = counts.get(at(i, counts.len())) else {
            continue;
        };
        let c = usize::try_from(*c).unwrap_or(0);
        let bytes = match size {
            Size::Repeat => match lens.get(at(i, lens.len())) {
                Some(Some(l)) => l.saturating_mul(c),
                _ => 0,
            },
            Size::Pad => c.saturating_mul(4),
        };
        total = total.saturating_add(bytes);
        if total > MAX_BUILT_BYTES {
            break;
        }
    }
    total
}

impl ScalarUDFImpl for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows.max(1);
        let bytes = planned_bytes(self.size, &args.args, rows);
        if bytes > MAX_BUILT_BYTES {
            return exec_err!(
                "{}() would build more than {MAX_BUILT_BYTES} bytes in one batch of {rows} rows",
                self.name()
            );
        }
        self.inner.invoke_with_args(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}
