//! The metadata commands, built with arrow-flight's builders (their exact result schemas),
//! each filtered by the caller's grants: what a reader may not read does not exist for it.
//! Their tickets are the commands themselves (`Any`-packed), as clients expect.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Command, Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlSupportedCaseSensitivity,
    SqlSupportedTransaction, SupportedSqlGrammar, XdbcDataType, XdbcDatetimeSubcode,
};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use futures::TryStreamExt;
use prost::Message;
use tonic::{Response, Status};

use super::FlightDoor;
use super::caller::Caller;
use super::encode::column_metadata;
use super::service::BoxStreamData;
use crate::error::ApiError;

/// The only table type Sluice has.
const TABLE: &str = "TABLE";

/// What `GetSqlInfo` answers: a read-only SQL server without transactions, DataFusion's
/// identifier rules.
pub fn sql_info() -> Result<SqlInfoData, arrow_flight::error::FlightError> {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "Sluice");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.5 (arrow-rs 59)");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    // No transactions: clients then never send BeginTransaction.
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    // Unquoted names fold to lower case; quoted ones keep theirs.
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    // Quoted names keep their case and match only as written: Flight SQL's values are
    // insensitive, upper or lower, none of which is true, so: unknown.
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityUnknown as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    b.append(SqlInfo::SqlKeywords, KEYWORDS);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(
        SqlInfo::SqlSupportedGrammar,
        SupportedSqlGrammar::SqlCoreGrammar as i32,
    );
    // ANSI-92 entry level.
    b.append(SqlInfo::SqlAnsi92SupportedLevel, 0_i32);
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlCatalogTerm, "source");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.build()
}

/// Keywords beyond SQL-92's that clients must quote.
const KEYWORDS: &[&str] = &[
    "ANALYZE", "ARRAY", "EXPLAIN", "FILTER", "ILIKE", "LIMIT", "OFFSET", "QUALIFY", "RLIKE",
    "SIMILAR", "STRUCT", "UNNEST", "WINDOW",
];

/// One row of `GetXdbcTypeInfo`.
fn xdbc(
    name: &str,
    data_type: XdbcDataType,
    column_size: Option<i32>,
    prefix_suffix: Option<&str>,
) -> XdbcTypeInfo {
    let (datetime_subcode, sql_data_type) = match data_type {
        // ODBC's SQL_CODE_DATE (1), which Flight SQL names `YEAR`.
        XdbcDataType::XdbcDate => (
            Some(XdbcDatetimeSubcode::XdbcSubcodeYear),
            XdbcDataType::XdbcDatetime,
        ),
        XdbcDataType::XdbcTime => (
            Some(XdbcDatetimeSubcode::XdbcSubcodeTime),
            XdbcDataType::XdbcDatetime,
        ),
        XdbcDataType::XdbcTimestamp => (
            Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
            XdbcDataType::XdbcDatetime,
        ),
        other => (None, other),
    };
    let numeric = matches!(
        data_type,
        XdbcDataType::XdbcTinyint
            | XdbcDataType::XdbcSmallint
            | XdbcDataType::XdbcInteger
            | XdbcDataType::XdbcBigint
            | XdbcDataType::XdbcReal
            | XdbcDataType::XdbcDouble
            | XdbcDataType::XdbcDecimal
    );
    XdbcTypeInfo {
        type_name: name.to_owned(),
        data_type,
        column_size,
        literal_prefix: prefix_suffix.map(str::to_owned),
        literal_suffix: prefix_suffix.map(str::to_owned),
        create_params: (data_type == XdbcDataType::XdbcDecimal)
            .then(|| vec!["precision".to_owned(), "scale".to_owned()]),
        nullable: Nullable::NullabilityNullable,
        case_sensitive: data_type == XdbcDataType::XdbcVarchar,
        searchable: Searchable::Full,
        unsigned_attribute: numeric.then_some(false),
        fixed_prec_scale: data_type == XdbcDataType::XdbcDecimal,
        auto_increment: numeric.then_some(false),
        local_type_name: Some(name.to_owned()),
        minimum_scale: (data_type == XdbcDataType::XdbcDecimal).then_some(0),
        maximum_scale: (data_type == XdbcDataType::XdbcDecimal).then_some(38),
        sql_data_type,
        datetime_subcode,
        num_prec_radix: numeric.then_some(10),
        interval_precision: None,
    }
}

/// What `GetXdbcTypeInfo` answers: the SQL types results carry.
pub fn xdbc_types() -> Result<XdbcTypeInfoData, arrow_flight::error::FlightError> {
    let mut b = XdbcTypeInfoDataBuilder::new();
    for info in [
        xdbc("BOOLEAN", XdbcDataType::XdbcBit, Some(1), None),
        xdbc("TINYINT", XdbcDataType::XdbcTinyint, Some(3), None),
        xdbc("SMALLINT", XdbcDataType::XdbcSmallint, Some(5), None),
        xdbc("INTEGER", XdbcDataType::XdbcInteger, Some(10), None),
        xdbc("BIGINT", XdbcDataType::XdbcBigint, Some(19), None),
        xdbc("REAL", XdbcDataType::XdbcReal, Some(24), None),
        xdbc("DOUBLE", XdbcDataType::XdbcDouble, Some(53), None),
        xdbc("DECIMAL", XdbcDataType::XdbcDecimal, Some(38), None),
        xdbc("VARCHAR", XdbcDataType::XdbcVarchar, None, Some("'")),
        xdbc("VARBINARY", XdbcDataType::XdbcVarbinary, None, None),
        xdbc("DATE", XdbcDataType::XdbcDate, Some(10), Some("'")),
        xdbc("TIME", XdbcDataType::XdbcTime, Some(18), Some("'")),
        xdbc(
            "TIMESTAMP",
            XdbcDataType::XdbcTimestamp,
            Some(29),
            Some("'"),
        ),
    ] {
        b.append(info);
    }
    b.build()
}

/// `GetPrimaryKeys`' result schema (Flight SQL's; no builder exists for it).
fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

fn arrow(e: &ArrowError) -> Status {
    ApiError::internal(None, e).into()
}

impl FlightDoor {
    /// The schema of a metadata command's result, or `UNIMPLEMENTED`.
    fn metadata_schema(&self, cmd: &Command) -> Result<SchemaRef, Status> {
        Ok(match cmd {
            Command::CommandGetCatalogs(c) => (*c).into_builder().schema(),
            Command::CommandGetDbSchemas(c) => c.clone().into_builder().schema(),
            Command::CommandGetTables(c) => c.clone().into_builder().schema(),
            Command::CommandGetTableTypes(c) => (*c).into_builder().schema(),
            Command::CommandGetSqlInfo(_) => self.sql_info.schema(),
            Command::CommandGetXdbcTypeInfo(_) => self.xdbc.schema(),
            Command::CommandGetPrimaryKeys(_) => primary_keys_schema(),
            other => {
                return Err(Status::unimplemented(format!(
                    "{} is not supported by Sluice's Flight SQL service",
                    other.type_url()
                )));
            }
        })
    }

    /// `GetFlightInfo` for a metadata command: its schema, and the command as its ticket.
    pub(super) async fn metadata_info(
        &self,
        caller: &Caller,
        cmd: Command,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let schema = self.metadata_schema(&cmd)?;
        // Listing is an operation of its own: a key without it learns so here, not at DoGet.
        caller
            .principal
            .require(sluice_schemas::api::Operation::List)
            .or_else(|e| match cmd {
                Command::CommandGetSqlInfo(_)
                | Command::CommandGetXdbcTypeInfo(_)
                | Command::CommandGetTableTypes(_) => Ok(()),
                _ => Err(e),
            })?;
        let ticket = Ticket::new(cmd.into_any().encode_to_vec());
        FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| arrow(&e))
            .map(|info| {
                info.with_endpoint(FlightEndpoint::new().with_ticket(ticket))
                    .with_descriptor(descriptor)
                    .with_total_records(-1)
                    .with_total_bytes(-1)
            })
    }

    /// `DoGet` of a metadata command: one batch, as the caller's grants allow.
    pub(super) async fn metadata_data(
        &self,
        caller: &Caller,
        cmd: Command,
    ) -> Result<Response<BoxStreamData>, Status> {
        let schema = self.metadata_schema(&cmd)?;
        let batch = self.metadata_batch(caller, cmd).await?;
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async move { Ok(batch) }))
            // Arrow's text stays in the log.
            .map_err(|e| Status::from(ApiError::internal(None, &e)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn metadata_batch(&self, caller: &Caller, cmd: Command) -> Result<RecordBatch, Status> {
        check_patterns(&cmd)?;
        let principal = &caller.principal;
        let batch = match cmd {
            Command::CommandGetSqlInfo(c) => c.into_builder(&self.sql_info).build(),
            Command::CommandGetXdbcTypeInfo(c) => c.into_builder(&self.xdbc).build(),
            Command::CommandGetTableTypes(c) => {
                let mut b = c.into_builder();
                b.append(TABLE);
                b.build()
            }
            Command::CommandGetCatalogs(c) => {
                let mut b = c.into_builder();
                // The sources the caller sees tables in.
                let tables = self.service.table_schemas(principal).await?;
                let catalogs: BTreeSet<String> = tables.into_iter().map(|t| t.catalog).collect();
                for catalog in catalogs {
                    b.append(catalog);
                }
                b.build()
            }
            Command::CommandGetDbSchemas(c) => {
                let mut b = c.into_builder();
                let tables = self.service.table_schemas(principal).await?;
                let schemas: BTreeSet<(String, String)> =
                    tables.into_iter().map(|t| (t.catalog, t.schema)).collect();
                for (catalog, schema) in schemas {
                    b.append(catalog, schema);
                }
                b.build()
            }
            Command::CommandGetTables(c) => {
                let wanted_type =
                    c.table_types.is_empty() || c.table_types.iter().any(|t| t == TABLE);
                let mut b = c.into_builder();
                if wanted_type {
                    for t in self.service.table_schemas(principal).await? {
                        let schema = table_schema(&t);
                        b.append(&t.catalog, &t.schema, &t.table, TABLE, &schema)
                            .map_err(|e| Status::from(ApiError::internal(None, &e)))?;
                    }
                }
                b.build()
            }
            // No source declares primary keys to Sluice: an empty answer, never a guessed one.
            Command::CommandGetPrimaryKeys(_) => Ok(RecordBatch::new_empty(primary_keys_schema())),
            other => {
                return Err(Status::unimplemented(format!(
                    "{} is not supported by Sluice's Flight SQL service",
                    other.type_url()
                )));
            }
        };
        batch.map_err(|e| Status::from(ApiError::internal(None, &e)))
    }
}

/// Longest `LIKE` pattern a metadata command may filter by (each becomes a regular expression).
const MAX_PATTERN_CHARS: usize = 1_024;

/// A filter pattern too long to compile is the caller's mistake, said before it is tried.
fn check_patterns(cmd: &Command) -> Result<(), Status> {
    let patterns: Vec<&Option<String>> = match cmd {
        Command::CommandGetDbSchemas(c) => vec![&c.db_schema_filter_pattern],
        Command::CommandGetTables(c) => {
            vec![&c.db_schema_filter_pattern, &c.table_name_filter_pattern]
        }
        _ => Vec::new(),
    };
    match patterns
        .into_iter()
        .flatten()
        .find(|p| p.chars().count() > MAX_PATTERN_CHARS)
    {
        Some(_) => Err(ApiError::bad_request(format!(
            "a filter pattern is longer than {MAX_PATTERN_CHARS} characters"
        ))
        .into()),
        None => Ok(()),
    }
}

/// A table's columns with `ARROW:FLIGHT:SQL:*` metadata, for `GetTables(include_schema)`.
fn table_schema(t: &sluice_planner::TableInfo) -> Schema {
    Schema::new(
        t.columns
            .fields()
            .iter()
            .map(|f| {
                Field::new(f.name(), f.data_type().clone(), f.is_nullable()).with_metadata(
                    column_metadata(f.data_type(), Some((&t.catalog, &t.schema, &t.table))),
                )
            })
            .collect::<Vec<_>>(),
    )
}
