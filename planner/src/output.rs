//! Results as clients receive them: string and binary views become plain strings and binary.
//!
//! Views are DataFusion's internal fast path; most Arrow clients, JSON and CSV prefer plain
//! types, and views make the IPC wire ~1.8x larger (STACK.md). Only top-level columns are
//! rewritten; nested views are rare in results and pass through unchanged.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

fn plain_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    }
}

/// `schema` with top-level view types replaced by their plain forms.
pub fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema
        .fields()
        .iter()
        .any(|f| plain_type(f.data_type()).is_some())
    {
        return Arc::clone(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match plain_type(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Casts `batch` to `target` (from [`plain_schema`]); a no-op when nothing differs.
///
/// # Errors
/// Only if a cast the schema promised fails, which would be a bug.
pub fn to_plain(batch: RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if Arc::ptr_eq(&batch.schema(), target) || batch.schema().fields() == target.fields() {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                cast(c, f.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(target), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringViewArray};

    #[test]
    fn views_become_plain() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, false),
            Field::new("s", DataType::Utf8View, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(StringViewArray::from(vec![Some("x"), None])),
            ],
        )
        .unwrap();
        let target = plain_schema(&schema);
        assert_eq!(target.field(1).data_type(), &DataType::Utf8);
        let out = to_plain(batch, &target).unwrap();
        assert_eq!(out.column(1).data_type(), &DataType::Utf8);
        assert_eq!(out.column(1).null_count(), 1);
        let same = plain_schema(&target);
        assert!(Arc::ptr_eq(&same, &target));
    }
}
