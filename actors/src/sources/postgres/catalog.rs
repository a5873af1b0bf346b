//! Discovery: the tables a PostgreSQL login may read, with their columns as Sluice reads them
//! (Arrow type, comparison class, read expression).

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use sluice_planner::datafusion;
use sluice_planner::federation::{ColumnClass, ReadAs, RemoteColumn, RemoteTableDef};
use std::sync::Arc;

/// Precision and scale given to `numeric` columns declared without them.
pub const UNCONSTRAINED_NUMERIC: (u8, i8) = (38, 10);

/// PostgreSQL's `NAMEDATALEN - 1`: a longer `name` literal is cut to this many bytes.
const NAME_MAX_BYTES: usize = 63;

/// A column type as discovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgType {
    /// `bool`.
    Bool,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `float4`.
    Float4,
    /// `float8`.
    Float8,
    /// `numeric(p, s)` with `p` at most 38.
    Numeric {
        /// Precision.
        precision: u8,
        /// Scale.
        scale: i8,
    },
    /// `numeric` without precision and scale: read as [`UNCONSTRAINED_NUMERIC`], rounded half
    /// away from zero (PostgreSQL's `round`) to its scale.
    NumericAny,
    /// `text`, `varchar`.
    Text,
    /// `name`: text, but PostgreSQL truncates a `name` literal to 63 bytes before comparing.
    Name,
    /// `citext` (the extension): text that PostgreSQL compares case-insensitively.
    CiText,
    /// `char(n)`: blank-padded, and compared ignoring the padding in PostgreSQL.
    Bpchar,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timestamp`.
    Timestamp,
    /// `timestamptz`, as UTC.
    Timestamptz,
    /// `interval`.
    Interval,
    /// `uuid`, as its hyphenated text.
    Uuid,
    /// `json`.
    Json,
    /// `jsonb`.
    Jsonb,
    /// `bytea`.
    Bytea,
    /// A one-dimensional array.
    Array(Box<PgType>),
    /// `inet`, as PostgreSQL prints it (`abbrev`: no `/32` on a single host).
    Inet,
    /// Anything else (enums, `cidr`, `money`, ranges, geometric types, ...): selected as
    /// `::text`. Domains are read as their base type.
    AsText,
}

impl PgType {
    /// The type from `pg_type.typname` and `pg_attribute.atttypmod`. Array types arrive as
    /// their element's name with `is_array`.
    pub fn from_catalog(typname: &str, typmod: i32, is_array: bool) -> Self {
        let scalar = match typname {
            "bool" => Self::Bool,
            "int2" => Self::Int2,
            "int4" => Self::Int4,
            "int8" => Self::Int8,
            "float4" => Self::Float4,
            "float8" => Self::Float8,
            "numeric" => numeric(typmod),
            "text" | "varchar" => Self::Text,
            "name" => Self::Name,
            "citext" => Self::CiText,
            "bpchar" => Self::Bpchar,
            "date" => Self::Date,
            "time" => Self::Time,
            "timestamp" => Self::Timestamp,
            "timestamptz" => Self::Timestamptz,
            "interval" => Self::Interval,
            "uuid" => Self::Uuid,
            "json" => Self::Json,
            "jsonb" => Self::Jsonb,
            "bytea" => Self::Bytea,
            "inet" => Self::Inet,
            _ => Self::AsText,
        };
        match (is_array, scalar) {
            // Arrays of text-cast types are cast as `text[]`.
            (true, Self::AsText | Self::Inet) => Self::Array(Box::new(Self::Text)),
            (true, s) => Self::Array(Box::new(s)),
            (false, s) => s,
        }
    }

    /// The Arrow type of this column.
    pub fn arrow(&self) -> DataType {
        match self {
            Self::Bool => DataType::Boolean,
            Self::Int2 => DataType::Int16,
            Self::Int4 => DataType::Int32,
            Self::Int8 => DataType::Int64,
            Self::Float4 => DataType::Float32,
            Self::Float8 => DataType::Float64,
            Self::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            Self::NumericAny => {
                DataType::Decimal128(UNCONSTRAINED_NUMERIC.0, UNCONSTRAINED_NUMERIC.1)
            }
            Self::Text
            | Self::Name
            | Self::CiText
            | Self::Bpchar
            | Self::Uuid
            | Self::Json
            | Self::Jsonb
            | Self::Inet
            | Self::AsText => DataType::Utf8,
            Self::Date => DataType::Date32,
            Self::Time => DataType::Time64(TimeUnit::Microsecond),
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            Self::Bytea => DataType::Binary,
            Self::Array(e) => DataType::List(Arc::new(Field::new("item", e.arrow(), true))),
        }
    }

    /// How its values compare in PostgreSQL, next to DataFusion (`deterministic`: the
    /// column's collation compares byte for byte for equality).
    pub fn class(&self, deterministic: bool) -> ColumnClass {
        match self {
            Self::Bool
            | Self::Int2
            | Self::Int4
            | Self::Int8
            | Self::Numeric { .. }
            | Self::Date
            | Self::Time
            | Self::Timestamp
            | Self::Timestamptz => ColumnClass::Exact,
            Self::Text if deterministic => ColumnClass::Text,
            Self::Name if deterministic => ColumnClass::BoundedText {
                max_bytes: NAME_MAX_BYTES,
            },
            Self::Float4 | Self::Float8 => ColumnClass::Float,
            Self::Uuid => ColumnClass::CanonicalText,
            // `citext` compares case-insensitively, `char(n)` ignoring its padding; decimals
            // without a declared scale are rounded on the way in; the rest has its own
            // semantics or is read as text.
            _ => ColumnClass::Opaque,
        }
    }

    /// How the column is selected so it arrives as [`Self::arrow`].
    pub fn read(&self) -> Option<ReadAs> {
        match self {
            Self::AsText => Some(ReadAs::Text),
            Self::Inet => Some(ReadAs::Function("abbrev")),
            Self::NumericAny => Some(ReadAs::Round(UNCONSTRAINED_NUMERIC.1)),
            Self::Array(e) if **e == Self::Text => Some(ReadAs::TextArray),
            _ => None,
        }
    }

    /// The PostgreSQL type name, for messages.
    pub fn name(&self) -> String {
        match self {
            Self::Bool => "bool".into(),
            Self::Int2 => "int2".into(),
            Self::Int4 => "int4".into(),
            Self::Int8 => "int8".into(),
            Self::Float4 => "float4".into(),
            Self::Float8 => "float8".into(),
            Self::Numeric { precision, scale } => format!("numeric({precision}, {scale})"),
            Self::NumericAny => "numeric".into(),
            Self::Text => "text".into(),
            Self::Name => "name".into(),
            Self::CiText => "citext".into(),
            Self::Bpchar => "bpchar".into(),
            Self::Date => "date".into(),
            Self::Time => "time".into(),
            Self::Timestamp => "timestamp".into(),
            Self::Timestamptz => "timestamptz".into(),
            Self::Interval => "interval".into(),
            Self::Uuid => "uuid".into(),
            Self::Json => "json".into(),
            Self::Jsonb => "jsonb".into(),
            Self::Bytea => "bytea".into(),
            Self::Inet => "inet".into(),
            Self::AsText => "a type read as text".into(),
            Self::Array(e) => format!("{}[]", e.name()),
        }
    }
}

fn numeric(typmod: i32) -> PgType {
    if typmod < 4 {
        return PgType::NumericAny;
    }
    let m = typmod - 4;
    let precision = (m >> 16) & 0xffff;
    // The scale is an 11-bit signed number since PostgreSQL 15; 0..=precision is the norm.
    let scale = m & 0xffff;
    match (u8::try_from(precision), i8::try_from(scale)) {
        (Ok(p @ 1..=38), Ok(s)) if (0..=i32::from(p)).contains(&i32::from(s)) => PgType::Numeric {
            precision: p,
            scale: s,
        },
        // Wider than Decimal128 holds: exact as text.
        _ => PgType::AsText,
    }
}

/// Tables, views, materialized views, partitioned and foreign tables the login may read, with
/// their columns, outside the system schemas. Domains are described by their base type;
/// arrays by their element type. Needs PostgreSQL 12 or later (`collisdeterministic`).
const DISCOVER_SQL: &str = "\
SELECT n.nspname::text, c.relname::text, a.attname::text, NOT a.attnotnull, \
       coalesce(et.typname, bt.typname)::text, \
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, \
       et.oid IS NOT NULL, coalesce(co.collisdeterministic, true), c.relkind IN ('v', 'm'), \
       CASE WHEN c.reltuples >= 0 AND c.relkind IN ('r', 'm', 'p') THEN c.reltuples::int8 END \
FROM pg_catalog.pg_class c \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
LEFT JOIN pg_catalog.pg_type et ON bt.typcategory = 'A' AND et.oid = bt.typelem \
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') \
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
  AND has_table_privilege(c.oid, 'SELECT') \
ORDER BY 1, 2, a.attnum";

/// How long reading the catalog may take.
pub const DISCOVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads every readable table's columns (optionally only in `schemas`).
///
/// # Errors
/// The connection or the catalog query failed.
pub async fn discover(
    client: &impl deadpool_postgres::GenericClient,
    schemas: Option<&[String]>,
) -> Result<Vec<RemoteTableDef>, tokio_postgres::Error> {
    let rows = client.query(DISCOVER_SQL, &[]).await?;
    let mut out: Vec<RemoteTableDef> = Vec::new();
    for row in rows {
        let schema: String = row.try_get(0)?;
        if schemas.is_some_and(|s| !s.contains(&schema)) {
            continue;
        }
        let table: String = row.try_get(1)?;
        let ty = PgType::from_catalog(
            &row.try_get::<_, String>(4)?,
            row.try_get(5)?,
            row.try_get(6)?,
        );
        let column = RemoteColumn {
            name: row.try_get(2)?,
            data_type: ty.arrow(),
            nullable: row.try_get(3)?,
            class: ty.class(row.try_get(7)?),
            read: ty.read(),
            type_name: ty.name(),
        };
        match out.last_mut() {
            Some(t) if t.schema == schema && t.name == table => t.columns.push(column),
            _ => out.push(RemoteTableDef {
                schema,
                name: table,
                view: row.try_get(8)?,
                columns: vec![column],
                rows_estimate: row
                    .try_get::<_, Option<i64>>(9)?
                    .and_then(|n| u64::try_from(n).ok()),
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_types_map() {
        assert_eq!(
            PgType::from_catalog("numeric", (10 << 16) + 2 + 4, false),
            PgType::Numeric {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(
            PgType::from_catalog("numeric", -1, false).arrow(),
            DataType::Decimal128(38, 10)
        );
        assert_eq!(
            PgType::from_catalog("numeric", (60 << 16) + 4, false),
            PgType::AsText
        );
        assert_eq!(
            PgType::from_catalog("mood", -1, true).read(),
            Some(ReadAs::TextArray)
        );
        assert_eq!(
            PgType::from_catalog("cidr", -1, false).read(),
            Some(ReadAs::Text)
        );
        assert_eq!(
            PgType::from_catalog("inet", -1, false).read(),
            Some(ReadAs::Function("abbrev"))
        );
        assert_eq!(PgType::Text.class(false), ColumnClass::Opaque);
        assert_eq!(PgType::CiText.class(true), ColumnClass::Opaque);
        assert_eq!(PgType::Int8.class(true), ColumnClass::Exact);
    }
}
