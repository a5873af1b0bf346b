//! Discovery: the tables of the configured database, through `information_schema`, with
//! their columns as Sluice reads them (Arrow type, comparison class, read expression).
//!
//! Names stay as Snowflake stores them here; the dialect shows unquoted upper-case names in
//! lower case ([`sluice_planner::federation::SourceDialect::local_name`]).

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use sluice_planner::datafusion;
use sluice_planner::federation::{ColumnClass, ReadAs, RemoteColumn, RemoteTableDef};

/// A discovered row: column name (upper case) to its value as text.
pub type Row = BTreeMap<String, Option<String>>;

/// Fractional digits Snowflake gives times and timestamps declared without them.
const DEFAULT_TIME_SCALE: u32 = 9;

/// A string literal in Snowflake: quotes doubled, and backslashes, which Snowflake reads as
/// escapes.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// `WHERE` of both discovery statements: the schemas asked for, or all but
/// `INFORMATION_SCHEMA`.
fn schema_filter(schemas: Option<&[String]>) -> String {
    match schemas {
        Some(list) if !list.is_empty() => format!(
            "table_schema IN ({})",
            list.iter()
                .map(|s| literal(s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => "table_schema <> 'INFORMATION_SCHEMA'".to_owned(),
    }
}

/// The statement listing tables (with their kind and row counts).
pub fn tables_sql(schemas: Option<&[String]>) -> String {
    format!(
        "SELECT table_schema, table_name, table_type, row_count FROM information_schema.tables \
         WHERE {} ORDER BY table_schema, table_name",
        schema_filter(schemas)
    )
}

/// The statement listing columns. `SELECT *`: emulators lack some of the columns read here
/// (`DATETIME_PRECISION`), which then take their defaults.
pub fn columns_sql(schemas: Option<&[String]>) -> String {
    format!(
        "SELECT * FROM information_schema.columns WHERE {} \
         ORDER BY table_schema, table_name, ordinal_position",
        schema_filter(schemas)
    )
}

fn get<'a>(row: &'a Row, key: &str) -> Option<&'a str> {
    row.get(key).and_then(|v| v.as_deref())
}

fn number(row: &Row, key: &str) -> Option<u32> {
    get(row, key).and_then(|v| v.trim().parse().ok())
}

/// A column's type as Sluice reads it: `(Arrow type, class, read expression)`.
pub fn column_type(
    data_type: &str,
    precision: Option<u32>,
    scale: Option<u32>,
    time_scale: Option<u32>,
    collation: Option<&str>,
) -> (DataType, ColumnClass, Option<ReadAs>) {
    let unit = || match time_scale.unwrap_or(DEFAULT_TIME_SCALE) {
        0 => TimeUnit::Second,
        1..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    };
    match data_type.to_ascii_uppercase().as_str() {
        "NUMBER" | "DECIMAL" | "NUMERIC" | "FIXED" => {
            let p = precision.unwrap_or(38).clamp(1, 38);
            let s = scale.unwrap_or(0).min(p);
            let (Ok(p8), Ok(s8)) = (u8::try_from(p), i8::try_from(s)) else {
                return (DataType::Decimal128(38, 0), ColumnClass::Exact, None);
            };
            if s == 0 && p <= 18 {
                (DataType::Int64, ColumnClass::Exact, None)
            } else {
                (DataType::Decimal128(p8, s8), ColumnClass::Exact, None)
            }
        }
        "FLOAT" | "FLOAT4" | "FLOAT8" | "DOUBLE" | "DOUBLE PRECISION" | "REAL" => {
            (DataType::Float64, ColumnClass::Float, None)
        }
        "TEXT" | "VARCHAR" | "STRING" | "CHAR" | "CHARACTER" => {
            // A collation changes how the column compares: pass it through only.
            let class = if collation.is_some_and(|c| !c.trim().is_empty()) {
                ColumnClass::Opaque
            } else {
                ColumnClass::Text
            };
            (DataType::Utf8, class, None)
        }
        "BOOLEAN" => (DataType::Boolean, ColumnClass::Exact, None),
        "DATE" => (DataType::Date32, ColumnClass::Exact, None),
        "TIME" => {
            let unit = match unit() {
                TimeUnit::Nanosecond => TimeUnit::Nanosecond,
                _ => TimeUnit::Microsecond,
            };
            (DataType::Time64(unit), ColumnClass::Exact, None)
        }
        "TIMESTAMP_NTZ" | "DATETIME" => {
            (DataType::Timestamp(unit(), None), ColumnClass::Exact, None)
        }
        // Instants; compared as instants in Snowflake too.
        "TIMESTAMP_LTZ" | "TIMESTAMP_TZ" => (
            DataType::Timestamp(unit(), Some("UTC".into())),
            ColumnClass::Exact,
            None,
        ),
        "BINARY" | "VARBINARY" => (DataType::Binary, ColumnClass::Opaque, None),
        // Semi-structured values arrive as their JSON text.
        "VARIANT" | "OBJECT" | "ARRAY" => (DataType::Utf8, ColumnClass::Opaque, None),
        // GEOGRAPHY, GEOMETRY, VECTOR, MAP, ...: as Snowflake prints them.
        _ => (DataType::Utf8, ColumnClass::Opaque, Some(ReadAs::Text)),
    }
}

/// Tables from the rows of [`tables_sql`] and [`columns_sql`]. Columns of tables the first
/// list lacks (dropped in between) are skipped.
pub fn assemble(tables: &[Row], columns: &[Row]) -> Vec<RemoteTableDef> {
    let mut out: BTreeMap<(String, String), RemoteTableDef> = BTreeMap::new();
    for t in tables {
        let (Some(schema), Some(name)) = (get(t, "TABLE_SCHEMA"), get(t, "TABLE_NAME")) else {
            continue;
        };
        let view = get(t, "TABLE_TYPE").is_some_and(|k| k.to_ascii_uppercase().contains("VIEW"));
        out.insert(
            (schema.to_owned(), name.to_owned()),
            RemoteTableDef {
                schema: schema.to_owned(),
                name: name.to_owned(),
                view,
                columns: Vec::new(),
                rows_estimate: get(t, "ROW_COUNT").and_then(|r| r.trim().parse().ok()),
            },
        );
    }
    for c in columns {
        let (Some(schema), Some(table), Some(name), Some(data_type)) = (
            get(c, "TABLE_SCHEMA"),
            get(c, "TABLE_NAME"),
            get(c, "COLUMN_NAME"),
            get(c, "DATA_TYPE"),
        ) else {
            continue;
        };
        let Some(def) = out.get_mut(&(schema.to_owned(), table.to_owned())) else {
            continue;
        };
        let (arrow, class, read) = column_type(
            data_type,
            number(c, "NUMERIC_PRECISION"),
            number(c, "NUMERIC_SCALE"),
            number(c, "DATETIME_PRECISION"),
            get(c, "COLLATION_NAME"),
        );
        def.columns.push(RemoteColumn {
            name: name.to_owned(),
            data_type: arrow,
            nullable: get(c, "IS_NULLABLE").is_none_or(|n| !n.eq_ignore_ascii_case("NO")),
            class,
            read,
            type_name: data_type.to_ascii_uppercase(),
        });
    }
    out.into_values()
        .filter(|t| !t.columns.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, Option<&str>)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn types_map_as_documented() {
        let t = |d, p, s, ts, coll| column_type(d, p, s, ts, coll);
        assert_eq!(
            t("NUMBER", Some(18), Some(0), None, None).0,
            DataType::Int64
        );
        assert_eq!(
            t("NUMBER", Some(38), Some(0), None, None).0,
            DataType::Decimal128(38, 0)
        );
        assert_eq!(
            t("NUMBER", Some(12), Some(2), None, None).0,
            DataType::Decimal128(12, 2)
        );
        assert_eq!(t("FLOAT", None, None, None, None).1, ColumnClass::Float);
        assert_eq!(t("TEXT", None, None, None, None).1, ColumnClass::Text);
        assert_eq!(
            t("TEXT", None, None, None, Some("en-ci")).1,
            ColumnClass::Opaque
        );
        assert_eq!(
            t("TIMESTAMP_NTZ", None, None, None, None).0,
            DataType::Timestamp(TimeUnit::Nanosecond, None)
        );
        assert_eq!(
            t("TIMESTAMP_NTZ", None, None, Some(6), None).0,
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(
            t("TIMESTAMP_TZ", None, None, Some(3), None).0,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert_eq!(
            t("TIME", None, None, Some(0), None).0,
            DataType::Time64(TimeUnit::Microsecond)
        );
        assert_eq!(
            t("VARIANT", None, None, None, None),
            (DataType::Utf8, ColumnClass::Opaque, None)
        );
        assert_eq!(t("GEOGRAPHY", None, None, None, None).2, Some(ReadAs::Text));
    }

    #[test]
    fn assembles_tables_in_order_and_skips_strays() {
        let tables = [
            row(&[
                ("TABLE_SCHEMA", Some("PUBLIC")),
                ("TABLE_NAME", Some("T")),
                ("TABLE_TYPE", Some("BASE TABLE")),
                ("ROW_COUNT", Some("7")),
            ]),
            row(&[
                ("TABLE_SCHEMA", Some("PUBLIC")),
                ("TABLE_NAME", Some("V")),
                ("TABLE_TYPE", Some("VIEW")),
                ("ROW_COUNT", None),
            ]),
        ];
        let columns = [
            row(&[
                ("TABLE_SCHEMA", Some("PUBLIC")),
                ("TABLE_NAME", Some("T")),
                ("COLUMN_NAME", Some("A")),
                ("DATA_TYPE", Some("NUMBER")),
                ("NUMERIC_PRECISION", Some("10")),
                ("NUMERIC_SCALE", Some("2")),
                ("IS_NULLABLE", Some("NO")),
            ]),
            row(&[
                ("TABLE_SCHEMA", Some("PUBLIC")),
                ("TABLE_NAME", Some("T")),
                ("COLUMN_NAME", Some("Mixed")),
                ("DATA_TYPE", Some("TEXT")),
                ("IS_NULLABLE", Some("YES")),
            ]),
            row(&[
                ("TABLE_SCHEMA", Some("PUBLIC")),
                ("TABLE_NAME", Some("V")),
                ("COLUMN_NAME", Some("X")),
                ("DATA_TYPE", Some("BOOLEAN")),
            ]),
            row(&[
                ("TABLE_SCHEMA", Some("PUBLIC")),
                ("TABLE_NAME", Some("GONE")),
                ("COLUMN_NAME", Some("X")),
                ("DATA_TYPE", Some("BOOLEAN")),
            ]),
        ];
        let defs = assemble(&tables, &columns);
        assert_eq!(defs.len(), 2);
        assert_eq!(defs[0].name, "T");
        assert_eq!(defs[0].rows_estimate, Some(7));
        assert!(!defs[0].view && defs[1].view);
        assert_eq!(defs[0].columns[0].data_type, DataType::Decimal128(10, 2));
        assert!(!defs[0].columns[0].nullable);
        assert_eq!(defs[0].columns[1].name, "Mixed");
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal(r"it's a \ b"), r"'it''s a \\ b'");
        assert_eq!(
            schema_filter(Some(&["PUBLIC".to_owned(), "O'K".to_owned()])),
            "table_schema IN ('PUBLIC', 'O''K')"
        );
    }
}
