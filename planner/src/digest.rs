//! `sha256(text or bytes)`: the SHA-256 digest as bytes, as DataFusion's (and PostgreSQL's)
//! `sha256`. DataFusion's own is behind its `crypto_expressions` feature, which would add
//! three hash crates (md-5, blake2, blake3) for one function; `sha2` is in the tree already.
//! Column masks use it (`sha256(email)`, shown as hex text in a text column).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use sha2::{Digest, Sha256};

#[derive(Debug, PartialEq, Eq, Hash)]
struct Sha256Udf {
    signature: Signature,
}

/// The `sha256` function.
pub fn sha256() -> ScalarUDF {
    use DataType as T;
    ScalarUDF::new_from_impl(Sha256Udf {
        signature: Signature::uniform(
            1,
            vec![
                T::Utf8,
                T::LargeUtf8,
                T::Utf8View,
                T::Binary,
                T::LargeBinary,
                T::BinaryView,
            ],
            Volatility::Immutable,
        ),
    })
}

fn digest(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// Each row's bytes, `None` for nulls.
fn rows(array: &ArrayRef) -> Result<Vec<Option<&[u8]>>> {
    Ok(match array.data_type() {
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::as_bytes))
            .collect(),
        DataType::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .map(|v| v.map(str::as_bytes))
            .collect(),
        DataType::Utf8View => array
            .as_string_view()
            .iter()
            .map(|v| v.map(str::as_bytes))
            .collect(),
        DataType::Binary => array.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => array.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => array.as_binary_view().iter().collect(),
        other => return exec_err!("sha256 takes text or bytes, not {other}"),
    })
}

impl ScalarUDFImpl for Sha256Udf {
    fn name(&self) -> &str {
        "sha256"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return exec_err!("sha256 takes one argument");
        };
        match arg {
            ColumnarValue::Scalar(s) => {
                let array = s.to_array()?;
                let out = rows(&array)?.first().copied().flatten().map(digest);
                Ok(ColumnarValue::Scalar(ScalarValue::Binary(out)))
            }
            ColumnarValue::Array(array) => {
                let mut out = BinaryBuilder::with_capacity(array.len(), array.len() * 32);
                for row in rows(array)? {
                    match row {
                        Some(b) => out.append_value(digest(b)),
                        None => out.append_null(),
                    }
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_as_postgresql_does() {
        let hex: String = digest(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
