//! Request and response bodies of the HTTP API (`../shared/API.md`). The handlers build and
//! return these types, and `GET /openapi.json` is generated from them, so the document says
//! what the server sends.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/query` and `POST /v1/explain` JSON body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sql": "SELECT n_name FROM nation WHERE n_regionkey = $1", "params": [1], "max_rows": 100}))]
pub struct QueryRequest {
    /// One read-only SQL statement.
    pub sql: String,
    /// Values for `$1`-style (array) or `:name` / `$name` (object) placeholders.
    #[serde(default)]
    pub params: Option<QueryParams>,
    /// Wall-time limit; capped by the server's `limits.query_timeout_ms`.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub timeout_ms: Option<u64>,
    /// Row limit; capped by the server's `limits.max_rows`.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub max_rows: Option<u64>,
    /// Spool the result (`[spool]`): the answer is a [`SpoolManifest`] of segment URLs, as
    /// with `Accept: application/vnd.sluice.spool+json`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spool: bool,
    /// The catalog and schema bare table names resolve in, when a door's session set them
    /// (Flight SQL's session options); not part of any HTTP body.
    #[serde(skip)]
    #[schema(ignore)]
    pub defaults: Option<NameDefaults>,
}

/// Where bare table names resolve: a session's catalog and schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameDefaults {
    /// Catalog (source).
    pub catalog: String,
    /// Schema.
    pub schema: String,
}

/// Placeholder values: positional or named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum QueryParams {
    /// `$1`, `$2`, ...
    Positional(Vec<serde_json::Value>),
    /// `:name` or `$name`.
    Named(serde_json::Map<String, serde_json::Value>),
}

/// Error body: `{"error": {"code", "message", "query_id"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": {"code": "sql_invalid", "message": "SQL does not parse: ...", "query_id": "q_0f3c..."}}))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code (`sql_invalid`, `read_only`, ...).
    pub code: String,
    /// What went wrong, safe to show a user.
    pub message: String,
    /// The query this error belongs to, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
}

/// A result column: its name, Arrow type and nullability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Arrow data type, as Arrow prints it (`Int64`, `Utf8`, `Decimal128(15, 2)`, ...).
    #[serde(rename = "type")]
    pub data_type: String,
    /// May hold NULL.
    pub nullable: bool,
}

/// `POST /v1/query` answered as `application/json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"columns": [{"name": "n", "type": "Int64", "nullable": false}], "rows": [[25]]}))]
pub struct QueryResult {
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// Rows as arrays in column order; integers beyond 2^53 and wide decimals are strings.
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// A spooled result (`"spool": true`, `Accept: application/vnd.sluice.spool+json`): the first
/// rows inline, then segments listed as they are written. Every row is in the segments (the
/// inline rows too); `inline` is a preview for a quick look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SpoolManifest {
    /// The query's id.
    pub query_id: String,
    /// The result's columns.
    pub schema: Vec<Column>,
    /// The first rows (at most 1,000 and about 1 MiB of JSON), as `application/json` shows them.
    pub inline: QueryResult,
    /// The segments written so far, in result order.
    pub segments: Vec<SpoolSegment>,
    /// Rows in the listed segments.
    pub row_count: u64,
    /// True once the last segment is listed; until then `GET` on `ack` lists more.
    pub complete: bool,
    /// The segments' media type: `application/vnd.apache.arrow.stream` (each segment a whole
    /// IPC stream) or `application/vnd.apache.parquet` (each a whole file).
    pub format: String,
    /// `GET` lists the segments again (fresh URLs); `DELETE` acknowledges the result and
    /// deletes its segments.
    pub ack: String,
    /// When a finished result is deleted unless acknowledged first (RFC 3339; absent while it
    /// runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// One segment of a spooled result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SpoolSegment {
    /// Where to `GET` it: a presigned S3 URL, an Azure SAS URL (no credentials needed), or
    /// Sluice's `/v1/queries/{id}/spool/{index}` (the same key as the query).
    pub url: String,
    /// Its place in the result, from 0.
    pub index: u64,
    /// Rows in it.
    pub rows: u64,
    /// Its size.
    pub bytes: u64,
    /// SHA-256 of its bytes, in hex.
    pub sha256: String,
    /// When `url` stops working (RFC 3339).
    pub expires_at: String,
}

/// A statement sent to a remote source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RemoteStatementBody {
    /// Source (catalog) name.
    pub source: String,
    /// The exact SQL the source runs (a join above it may add its keys as a filter when the
    /// query runs).
    pub sql: String,
    /// When the operator above this statement is computed by Sluice: which operator, and why
    /// it was not sent with the statement (a function the source lacks, crossing sources, the
    /// source's `pushdown` setting, a type rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_local: Option<String>,
    /// The source's own estimate of the statement, when the cost-aware cut weighed it
    /// (PostgreSQL's `EXPLAIN`; a source with `pushdown = "full"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<StatementEstimate>,
}

/// A source planner's estimate of a statement, in its own units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatementEstimate {
    /// Rows it returns.
    pub rows: f64,
    /// Average bytes per row.
    pub width: f64,
    /// Total cost (PostgreSQL: one sequential page read is 1.0).
    pub cost: f64,
    /// When keeping part of it in Sluice was weighed and not taken: the two costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighed: Option<String>,
}

/// `POST /v1/explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"query_id": "q_5b1e...", "sources": ["pg"], "tables": ["pg.public.orders"], "logical_plan": "Projection: count(*)\n  RemoteQuery: source=pg, sql=SELECT count(*) FROM \"public\".\"orders\" AS \"orders\" WHERE (\"orders\".\"id\" > 10)", "physical_plan": "CooperativeExec\n  RemoteScanExec: source=pg, sql=...", "remote": [{"source": "pg", "sql": "SELECT count(*) FROM \"public\".\"orders\" AS \"orders\" WHERE (\"orders\".\"id\" > 10)"}]}))]
pub struct ExplainResponse {
    /// The id this explain ran under.
    pub query_id: String,
    /// Sources the statement reads.
    pub sources: Vec<String>,
    /// Tables the statement reads, fully qualified.
    pub tables: Vec<String>,
    /// The optimized logical plan.
    pub logical_plan: String,
    /// The physical plan.
    pub physical_plan: String,
    /// The statements sent to remote sources.
    pub remote: Vec<RemoteStatementBody>,
}

/// Lifecycle of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueryState {
    /// Planning or streaming.
    Running,
    /// Every row was sent.
    Finished,
    /// Ended with an error.
    Failed,
    /// Cancelled by `DELETE` or by the client going away.
    Cancelled,
}

/// Why a query failed or was cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueryError {
    /// The code its answer had (or would have had, had the client still listened).
    pub code: String,
    /// The message.
    pub message: String,
}

/// `GET /v1/queries/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"query_id": "q_5b1e...", "state": "failed", "rows": 0, "bytes": 0, "elapsed_ms": 12, "started_at_ms": 1796160000000_u64, "sources": ["local"], "error": {"code": "data_error", "message": "Arrow error: Divide by zero error"}}))]
pub struct QueryStatus {
    /// Query id.
    pub query_id: String,
    /// State.
    pub state: QueryState,
    /// Rows sent so far.
    pub rows: u64,
    /// Bytes sent so far.
    pub bytes: u64,
    /// Wall time so far, or in total once ended.
    pub elapsed_ms: u64,
    /// Start, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Sources read.
    pub sources: Vec<String>,
    /// What was pulled from each remote source: statements sent, rows and bytes received.
    #[serde(default)]
    pub per_source: Vec<SourcePull>,
    /// The error, when failed or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<QueryError>,
    /// The statement (its first 4,096 bytes), once read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// Whether it was run (`query`) or explained (`explain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    /// The key (or token subject's `sub_…` id) that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The door it came through: `http`, `mcp`, `flight` or `pg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<String>,
    /// Whether the result cache answered it (absent: the cache was not asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hit: Option<bool>,
}

/// What one query pulled from one remote source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SourcePull {
    /// Source (catalog) name.
    pub source: String,
    /// Statements sent.
    pub statements: u64,
    /// Rows received.
    pub rows: u64,
    /// Bytes of values received.
    pub bytes: u64,
}

/// `GET /v1/queries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueryList {
    /// Newest first.
    pub queries: Vec<QueryStatus>,
}

/// A source's health state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Not checked yet.
    Starting,
    /// Serving.
    Healthy,
    /// Serving, with a problem (a saturated pool, a failing check).
    Degraded,
    /// Failing its checks; queries on it answer `source_unavailable`.
    Unavailable,
}

/// A source: health with its evidence, never credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "pg", "kind": "postgres", "location": "postgres://db1:5432/app", "state": "healthy", "state_since_ms": 1796160000000_u64, "last_error": null, "last_check_ms": 1796160010000_u64, "health_check_latency_ms": 0.8, "consecutive_failures": 0, "tables": 12, "refreshed_at_ms": 1796160000000_u64, "refresh_error": null}))]
pub struct SourceInfo {
    /// Catalog name.
    pub name: String,
    /// `parquet` or `postgres`.
    pub kind: String,
    /// Where it reads, without credentials.
    pub location: String,
    /// Health state.
    pub state: SourceState,
    /// When the state last changed, ms since the Unix epoch.
    pub state_since_ms: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When it was last checked, ms since the Unix epoch.
    pub last_check_ms: Option<u64>,
    /// How long the last check took.
    pub health_check_latency_ms: Option<f64>,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
    /// Tables loaded, when the source has a catalog.
    pub tables: Option<u64>,
    /// When the tables were last loaded, ms since the Unix epoch.
    pub refreshed_at_ms: Option<u64>,
    /// Why the last reload failed, if it did.
    pub refresh_error: Option<String>,
    /// Each replica with its routing figures, in config order (one for a source without
    /// replicas).
    #[serde(default)]
    pub replicas: Vec<ReplicaInfo>,
    /// The source's statement slots and queue (`max_concurrency`), when it has a limit.
    #[serde(default)]
    pub queue: Option<QueueInfo>,
    /// The source that serves when every replica is down.
    #[serde(default)]
    pub fallback: Option<String>,
    /// Where the source is defined: `config` (the config file; the API cannot change it) or
    /// `registry` (added through `/v1/sources`, shared by every server on the metadata store).
    #[serde(default = "origin_config")]
    pub origin: String,
}

fn origin_config() -> String {
    "config".to_owned()
}

/// One replica of a source, as the router sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"index": 0, "location": "postgres://app@db1:5432/app", "state": "healthy", "circuit": "closed", "score": 2.4, "latency_ewma_ms": 1.2, "error_rate": 0.0, "p50_ms": 1.0, "p99_ms": 7.0, "in_flight": 1, "statements": 5120, "failures": 0, "consecutive_failures": 0, "transitions": 1, "restarts": 0, "open_for_ms": null, "state_since_ms": 1796160000000_u64, "last_error": null}))]
pub struct ReplicaInfo {
    /// Position in the source's `replicas` list.
    pub index: u32,
    /// Where it is, without credentials (empty for a reader key).
    pub location: String,
    /// Health state.
    pub state: SourceState,
    /// Circuit breaker: `closed`, `half_open` or `open`.
    pub circuit: String,
    /// The router's score: lower is better; `null` while the circuit is open.
    pub score: Option<f64>,
    /// Moving average latency of statements and checks, milliseconds.
    pub latency_ewma_ms: f64,
    /// Moving share of failures, 0 to 1.
    pub error_rate: f64,
    /// Median time to a statement's first answer over the last 1,024 statements, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile of the same.
    pub p99_ms: Option<f64>,
    /// Statements running on it now.
    pub in_flight: u32,
    /// Statements routed to it since start.
    pub statements: u64,
    /// Statements that failed because it could not serve.
    pub failures: u64,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Health state changes since start.
    pub transitions: u64,
    /// Times its actor was restarted after a fault.
    pub restarts: u32,
    /// How long its open circuit still cools down, ms.
    pub open_for_ms: Option<u64>,
    /// When the state last changed, ms since the Unix epoch.
    pub state_since_ms: u64,
    /// The last failure (admin keys only).
    pub last_error: Option<String>,
}

/// A source's concurrency slots and queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueueInfo {
    /// `max_concurrency`.
    pub capacity: u32,
    /// Statements holding a slot.
    pub running: u32,
    /// Statements waiting for one.
    pub queued: u32,
}

/// `GET /v1/sources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SourceList {
    /// Every source.
    pub sources: Vec<SourceInfo>,
    /// The version of the source registry this server has applied (0: nothing was ever
    /// added through the API). Admins only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_version: Option<u64>,
}

/// The answer to `POST /v1/sources`, `PUT /v1/sources/{name}` and `DELETE /v1/sources/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "orders_db", "action": "created", "registry_version": 7, "source": null}))]
pub struct SourceChange {
    /// Source (catalog) name.
    pub name: String,
    /// `created`, `replaced` or `deleted`.
    pub action: String,
    /// The registry's version with this change; every server sharing the metadata store
    /// applies it within `metadata.registry_sync_ms`.
    pub registry_version: u64,
    /// The source as this server runs it now (its first load done), absent once deleted.
    pub source: Option<SourceInfo>,
}

/// The answer to `POST /v1/admin/reload` (what `SIGHUP` does too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"added": ["lake2"], "removed": [], "changed": ["pg"], "unchanged": 3, "log_level": "info", "restart_required": ["limits"]}))]
pub struct ReloadReport {
    /// Sources the file added, now serving.
    pub added: Vec<String>,
    /// Sources gone from the file, now stopped.
    pub removed: Vec<String>,
    /// Sources whose entry changed, replaced.
    pub changed: Vec<String>,
    /// Sources left as they were.
    pub unchanged: usize,
    /// The `[log] level` now in force.
    pub log_level: String,
    /// Sections of the file that differ from what the server started with and take effect
    /// only at the next start (everything but `[[sources]]` and `[log] level`).
    pub restart_required: Vec<String>,
}

/// `POST /v1/sources/{name}/refresh`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "lake", "tables": 8, "elapsed_ms": 41.5}))]
pub struct RefreshResponse {
    /// Source name.
    pub name: String,
    /// Tables after the reload (none for a source without a catalog).
    pub tables: Option<u64>,
    /// How long the reload took.
    pub elapsed_ms: f64,
}

/// One table in `GET /v1/tables`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TableSummary {
    /// `source.schema.table`.
    pub name: String,
    /// Source (catalog).
    pub source: String,
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Number of columns.
    pub columns: u64,
    /// The columns themselves, with `?with_columns=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<Column>>,
}

/// `GET /v1/tables`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TableList {
    /// Every table, sorted.
    pub tables: Vec<TableSummary>,
}

/// `GET /v1/tables/{source}.{schema}.{table}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "local.public.nation", "source": "local", "schema": "public", "table": "nation", "columns": [{"name": "n_nationkey", "type": "Int64", "nullable": false}, {"name": "n_name", "type": "Utf8", "nullable": false}]}))]
pub struct TableDescription {
    /// `source.schema.table`.
    pub name: String,
    /// Source (catalog).
    pub source: String,
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Columns as clients receive them.
    pub columns: Vec<Column>,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    pub status: String,
}

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// First catalog loads; not ready.
    Starting,
    /// Serving; ready.
    Serving,
    /// Asked to stop; not ready, new queries refused.
    Draining,
}

/// `GET /ready`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"ready": true, "phase": "serving", "capacity": {"accepting_queries": true, "audit": "ok", "audit_buffered": 0, "audit_buffer_records": 10000, "queries_running": 0, "max_concurrent_queries": 64}, "sources": []}))]
pub struct Readiness {
    /// True while serving and able to take queries, whatever the sources' health.
    pub ready: bool,
    /// Where the server is in its life.
    pub phase: Phase,
    /// Sluice's own capacity: whether it can keep the audit records of new queries.
    pub capacity: Capacity,
    /// Each source's state.
    pub sources: Vec<SourceInfo>,
}

/// Sluice's own capacity, as readiness reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Capacity {
    /// False while new queries are refused because the audit log cannot keep their records
    /// (its store is down under `policy = "reject"`, or its buffer is full).
    pub accepting_queries: bool,
    /// The audit log's state.
    pub audit: AuditState,
    /// Audit records accepted and not yet in the store.
    pub audit_buffered: u64,
    /// The audit buffer's bound.
    pub audit_buffer_records: u64,
    /// Queries running now.
    pub queries_running: u32,
    /// `limits.max_concurrent_queries`.
    pub max_concurrent_queries: u32,
}

/// The audit log's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditState {
    /// Records reach the store.
    Ok,
    /// The store cannot be written; records wait in the buffer.
    StoreUnreachable,
    /// The buffer is full: new queries are refused until the store takes records again.
    BufferFull,
}

/// Which tables a key may read: glob patterns (`*` any run of characters, `?` one) over
/// source, schema and table names as `GET /v1/tables` shows them. A missing part is `*`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"source": "pg", "schema": "public", "table": "orders*"}))]
pub struct Grant {
    /// Source (catalog) pattern.
    #[serde(default = "any_name")]
    pub source: String,
    /// Schema pattern.
    #[serde(default = "any_name")]
    pub schema: String,
    /// Table pattern.
    #[serde(default = "any_name")]
    pub table: String,
}

fn any_name() -> String {
    "*".to_owned()
}

/// What a key's role allows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// Everything, every table, key administration included.
    Admin,
    /// Its operations, on its granted tables.
    Reader,
}

/// A row filter and column masks for the tables a glob matches, attached to roles, keys or
/// groups (`[[policies]]`, `/v1/policies`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "emea_only", "tables": "pg.public.orders*",
    "row_filter": "region = principal.attr('region')",
    "masks": {"email": "sha256(email)", "salary": "NULL"},
    "applies_to": {"roles": ["reader"]}}))]
pub struct Policy {
    /// Unique name: letters, digits, `_`, `-`, `.` (at most 128).
    pub name: String,
    /// A glob over `source.schema.table` (`*` any run, `?` one character).
    pub tables: String,
    /// A boolean SQL expression over the table's columns; `principal.attr('name')` is the
    /// caller's attribute (a key's `attributes`, a token's claim) as text, `NULL` when it has
    /// none. Rows it does not keep do not exist for the caller. Several policies' filters on one
    /// table combine with `AND`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_filter: Option<String>,
    /// Column → an expression over the table's columns that replaces it everywhere
    /// (`sha256(email)`, `NULL`, `date_trunc('year', birth_date)`), cast to the column's type;
    /// a digest of a text column is its hex text. When several policies mask one column, the
    /// first by name decides.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub masks: std::collections::BTreeMap<String, String>,
    /// Who it applies to (any of the lists matching); absent: every caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applies_to: Option<PolicyTargets>,
    /// Admins are exempt. Off by default: a policy that applies to admins binds them too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admins_bypass: bool,
}

/// The callers a policy applies to: any caller matching one entry of any list.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct PolicyTargets {
    /// Roles (`reader`, `admin`).
    #[serde(default)]
    pub roles: Vec<KeyRole>,
    /// Key ids (`key_...`) or token subjects' ids (`sub_...`).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Groups that `[[auth.oidc.rules]]` and `[[auth.certificate_rules]]` map callers to.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A policy as `GET /v1/policies` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyInfo {
    /// The policy.
    pub policy: Policy,
    /// `config` (from `[[policies]]`, not changeable through the API) or `store` (the
    /// metadata store's, shared by every server using it).
    pub origin: String,
}

/// `GET /v1/policies` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyList {
    /// Every policy, by name.
    pub policies: Vec<PolicyInfo>,
}

/// An operation a key may perform.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `POST /v1/query` (and `GET /v1/queries` for its own queries).
    Query,
    /// `POST /v1/explain` and `EXPLAIN` statements.
    Explain,
    /// `GET /v1/tables`, `GET /v1/sources`.
    List,
    /// Key administration and source refreshes (admin keys only).
    Admin,
}

impl Operation {
    /// The name, as in the config and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Explain => "explain",
            Self::List => "list",
            Self::Admin => "admin",
        }
    }
}

/// A token bucket: `per_second` requests refill it, `burst` is its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per second.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub per_second: u32,
    /// Requests that may arrive at once; `per_second` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub burst: Option<u32>,
}

/// `POST /v1/keys` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "analyst", "role": "reader", "grants": [{"source": "pg", "schema": "*", "table": "orders*"}], "rate_limit": {"per_second": 10, "burst": 20}, "max_concurrent": 4}))]
pub struct CreateKeyRequest {
    /// Human name.
    pub name: String,
    /// `reader` (default) or `admin`.
    #[serde(default)]
    pub role: Option<KeyRole>,
    /// Tables a reader may read; none means it sees nothing. Admins see everything.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// Operations a reader may perform (default `query`, `explain`, `list`).
    #[serde(default)]
    pub operations: Option<Vec<Operation>>,
    /// Overrides the role's rate limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Overrides the role's concurrent-query limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_concurrent: Option<u32>,
    /// RFC 3339; the key stops working then.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Attributes policies read with `principal.attr('name')` (`{"region": "EMEA"}`).
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// A key as `GET /v1/keys` lists it: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    /// Public id (`key_...`); the secret starts with `sluice_<id>_`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Role.
    pub role: KeyRole,
    /// Granted tables (readers).
    pub grants: Vec<Grant>,
    /// Allowed operations.
    pub operations: Vec<Operation>,
    /// Its own rate limit, if it overrides the role's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Its own concurrent-query limit, if it overrides the role's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// RFC 3339, when it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// RFC 3339, the last rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<String>,
    /// RFC 3339, until when the secret before the last rotation still works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<String>,
    /// Attributes policies read with `principal.attr('name')`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// `POST /v1/keys` and `POST /v1/keys/{id}/rotate` answer: the key and its secret, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedKey {
    /// The key.
    #[serde(flatten)]
    pub info: KeyInfo,
    /// The secret: `Authorization: Bearer <key>`. Not stored; shown this once.
    pub key: String,
}

/// `GET /v1/keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    /// Every key, newest first, revoked ones included.
    pub keys: Vec<KeyInfo>,
}

/// One key's use on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageDay {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Queries run (explains included).
    pub queries: u64,
    /// Rows returned.
    pub rows: u64,
    /// Bytes returned.
    pub bytes: u64,
    /// Queries that failed.
    pub errors: u64,
}

/// `GET /v1/keys/{id}/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyUsage {
    /// Key id.
    pub id: String,
    /// Days with any use, oldest first.
    pub days: Vec<UsageDay>,
}

/// OAuth 2.0 Protected Resource Metadata (RFC 9728), at
/// `/.well-known/oauth-protected-resource` once `[auth.oidc]` is configured: how a client
/// finds where to get a token for this server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProtectedResource {
    /// This server's resource identifier, exactly as configured (`auth.resource`).
    pub resource: String,
    /// The trusted issuers.
    pub authorization_servers: Vec<String>,
    /// The scopes a token needs (`auth.scopes`).
    pub scopes_supported: Vec<String>,
    /// How a token is presented: `header` (`Authorization: Bearer`).
    pub bearer_methods_supported: Vec<String>,
    /// A name for people.
    pub resource_name: String,
}

/// `GET /v1/me`: who the server takes the caller for, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// The key's id, or a token or certificate subject's `sub_…` id; absent for anonymous
    /// access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The key's name, or the token's or certificate's subject.
    pub name: String,
    /// For a subject: the token's issuer or the certificate's issuer name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// How the caller signed in: `key`, `subject` (an OAuth token's or a client certificate's
    /// subject) or `anonymous`.
    pub kind: String,
    /// Role.
    pub role: KeyRole,
    /// Allowed operations.
    pub operations: Vec<Operation>,
}

/// `GET /v1/stats`: the server's recent activity, one sample per second, oldest first (admins
/// only). Only seconds with any finished query are listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServerStats {
    /// The server's clock, milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// Seconds covered (the window asked for, at most 600).
    pub window_s: u64,
    /// Queries running now.
    pub running: u64,
    /// One sample per second with any query ending in it.
    pub samples: Vec<StatsSample>,
}

/// What the queries that ended in one second did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsSample {
    /// The second's start, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Queries that ended.
    pub queries: u64,
    /// Of those, the failed and cancelled ones, by error code.
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Median wall time, milliseconds (from a histogram: within 12% of the true value).
    pub p50_ms: f64,
    /// 99th percentile wall time, milliseconds (same precision).
    pub p99_ms: f64,
    /// Answered by the result cache.
    pub cache_hits: u64,
    /// Asked the result cache and ran.
    pub cache_misses: u64,
    /// Result bytes sent to clients.
    pub bytes_sent: u64,
    /// Bytes of values pulled from each remote source.
    pub bytes_pulled: std::collections::BTreeMap<String, u64>,
}

/// `GET`/`PUT /v1/admin/log`: the server log's filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogLevel {
    /// A level (`error`, `warn`, `info`, `debug`, `trace`) or a filter in `RUST_LOG`'s syntax
    /// (`info,sluice::http=warn`).
    pub level: String,
}
