//! What a statement is, before anything runs: a session command this door answers itself
//! (`SET`, `BEGIN`, `DECLARE`, ...), a `COPY (query) TO STDOUT`, or a query for the catalog or
//! the query service. Only the commands are read from the syntax; whether a query may run is
//! decided by the query service on its resolved plan.

use datafusion::sql::sqlparser::ast::{
    CloseCursor, CopyLegacyOption, CopyOption, CopySource, CopyTarget, DiscardObject, Expr,
    FetchDirection, ObjectName, Reset, Set, Statement, TransactionAccessMode, TransactionMode,
    Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::errors::{PgError, state};

/// How a `COPY ... TO STDOUT` writes rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFormat {
    /// CSV (else PostgreSQL's text format).
    pub csv: bool,
    /// A header line (CSV only).
    pub header: bool,
    /// The field separator.
    pub delimiter: char,
    /// How NULL is written.
    pub null: String,
}

/// One statement of a query string.
#[derive(Debug, Clone)]
pub enum Command {
    /// Nothing (an empty query string).
    Empty,
    /// A query: the catalog's or the query service's. `ast` when it parsed as PostgreSQL.
    Query {
        /// The statement's text.
        sql: String,
        /// Its syntax tree.
        ast: Option<Box<Statement>>,
    },
    /// `SET name = value` (`None`: `DEFAULT`); `local` for `SET LOCAL`.
    Set {
        /// Lower-case parameter name.
        name: String,
        /// The value, as text.
        value: Option<String>,
        /// `SET LOCAL`.
        local: bool,
    },
    /// `SET TRANSACTION ...` / `SET SESSION CHARACTERISTICS`: accepted, nothing to change.
    SetTransaction,
    /// `SHOW name` or `SHOW ALL`.
    Show(String),
    /// `RESET name` (`None`: `RESET ALL`).
    Reset(Option<String>),
    /// `DISCARD ALL | PLANS | SEQUENCES | TEMP`.
    Discard {
        /// `ALL`.
        all: bool,
    },
    /// `BEGIN` / `START TRANSACTION` (`read_write` when asked for).
    Begin,
    /// `COMMIT` / `END`.
    Commit,
    /// `ROLLBACK` / `ABORT`.
    Rollback,
    /// `SAVEPOINT name`.
    Savepoint(String),
    /// `RELEASE [SAVEPOINT] name`.
    Release(String),
    /// `ROLLBACK TO [SAVEPOINT] name`.
    RollbackTo(String),
    /// `DEALLOCATE name | ALL`.
    Deallocate(Option<String>),
    /// `DECLARE name [BINARY] CURSOR [WITH HOLD] FOR query`.
    Declare {
        /// Cursor name.
        name: String,
        /// The query.
        sql: String,
        /// Its syntax tree.
        ast: Box<Statement>,
        /// `WITH HOLD`.
        hold: bool,
        /// `BINARY`.
        binary: bool,
    },
    /// `FETCH [count | ALL | NEXT] [FROM | IN] name` (`None`: all); `MOVE` discards.
    Fetch {
        /// Cursor name.
        name: String,
        /// Rows; `None` for all.
        count: Option<u64>,
    },
    /// `CLOSE name | ALL`.
    Close(Option<String>),
    /// `COPY (query) TO STDOUT`.
    Copy {
        /// The query.
        sql: String,
        /// Its syntax tree.
        ast: Box<Statement>,
        /// How rows are written.
        format: CopyFormat,
    },
    /// `UNLISTEN`: nothing is listened to here.
    Unlisten,
    /// Refused as PostgreSQL refuses it on a read-only server.
    Refuse(PgError),
}

impl Command {
    /// The command tag of a command that answers with no rows.
    pub fn tag(&self) -> &'static str {
        match self {
            Self::Set { .. } | Self::SetTransaction => "SET",
            Self::Reset(_) => "RESET",
            Self::Discard { all: true } => "DISCARD ALL",
            Self::Discard { all: false } => "DISCARD",
            Self::Begin => "BEGIN",
            Self::Commit => "COMMIT",
            Self::Rollback | Self::RollbackTo(_) => "ROLLBACK",
            Self::Savepoint(_) => "SAVEPOINT",
            Self::Release(_) => "RELEASE",
            Self::Deallocate(None) => "DEALLOCATE ALL",
            Self::Deallocate(Some(_)) => "DEALLOCATE",
            Self::Declare { .. } => "DECLARE CURSOR",
            Self::Close(None) => "CLOSE CURSOR ALL",
            Self::Close(Some(_)) => "CLOSE CURSOR",
            Self::Show(_) => "SHOW",
            Self::Fetch { .. } => "FETCH",
            Self::Copy { .. } => "COPY",
            Self::Query { .. } => "SELECT",
            Self::Unlisten => "UNLISTEN",
            Self::Empty | Self::Refuse(_) => "",
        }
    }

    /// Whether a failed transaction block still accepts it.
    pub fn ends_block(&self) -> bool {
        matches!(self, Self::Commit | Self::Rollback | Self::RollbackTo(_))
    }
}

/// The statements of `text`, in order. Text that does not parse as PostgreSQL is one query
/// for the query service, whose answer (and error) is the authority.
pub fn split(text: &str) -> Vec<Command> {
    let trimmed = text.trim().trim_end_matches(';').trim();
    if trimmed.is_empty()
        || trimmed
            .split(';')
            .all(|s| s.trim().is_empty() || is_comment(s))
    {
        return vec![Command::Empty];
    }
    let whole = || {
        vec![Command::Query {
            sql: trimmed.to_owned(),
            ast: None,
        }]
    };
    // Text the planner would refuse as too large or too deep goes to it as is, for its answer;
    // nothing here walks a tree deeper than it allows.
    if text.len() > sluice_planner::validate::MAX_SQL_BYTES {
        return whole();
    }
    let parsed = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(sluice_planner::validate::MAX_NESTING)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_statements());
    let Ok(statements) = parsed else {
        return whole();
    };
    if statements
        .iter()
        .any(|s| sluice_planner::validate::check_ast_shape(s).is_err())
    {
        return whole();
    }
    if statements.is_empty() {
        // Only comments (`/* x */`): an empty query, as PostgreSQL answers it.
        return vec![Command::Empty];
    }
    let single = statements.len() == 1;
    statements
        .into_iter()
        .map(|s| {
            let sql = if single {
                trimmed.to_owned()
            } else {
                s.to_string()
            };
            command(s, sql)
        })
        .collect()
}

fn is_comment(s: &str) -> bool {
    s.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
}

fn ident_text(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|p| p.to_string().trim_matches('"').to_owned())
        .collect::<Vec<_>>()
        .join(".")
        .to_ascii_lowercase()
}

/// A `SET` value as text: a string's contents, a number, an identifier's name; lists joined.
fn value_text(values: &[Expr]) -> Option<String> {
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                Value::EscapedStringLiteral(s) => s.clone(),
                other => other.to_string(),
            },
            Expr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect();
    if parts.len() == 1 && parts[0].eq_ignore_ascii_case("default") {
        return None;
    }
    Some(parts.join(", "))
}

fn read_only(what: &str) -> Command {
    Command::Refuse(PgError::new(
        state::READ_ONLY_TRANSACTION,
        format!("cannot execute {what} in a read-only transaction"),
    ))
}

fn command(statement: Statement, sql: String) -> Command {
    match statement {
        Statement::Set(set) => match set {
            Set::SingleAssignment {
                scope,
                variable,
                values,
                ..
            } => {
                let name = ident_text(&variable);
                let local = scope.is_some_and(|s| s.to_string().eq_ignore_ascii_case("local"));
                Command::Set {
                    name,
                    value: value_text(&values),
                    local,
                }
            }
            Set::SetTimeZone { local, value } => Command::Set {
                name: "timezone".into(),
                value: value_text(std::slice::from_ref(&value)),
                local,
            },
            Set::SetNames { charset_name, .. } => Command::Set {
                name: "client_encoding".into(),
                value: Some(charset_name.value),
                local: false,
            },
            Set::SetTransaction { modes, .. } => {
                if modes.iter().any(|m| {
                    matches!(
                        m,
                        TransactionMode::AccessMode(TransactionAccessMode::ReadWrite)
                    )
                }) {
                    read_only("SET TRANSACTION READ WRITE")
                } else {
                    Command::SetTransaction
                }
            }
            Set::SetRole { .. } | Set::SetSessionAuthorization(_) => Command::Refuse(PgError::new(
                state::INSUFFICIENT_PRIVILEGE,
                "permission denied to set role: Sluice connections act as their API key",
            )),
            _ => Command::Refuse(PgError::new(
                state::FEATURE_NOT_SUPPORTED,
                "this form of SET is not supported",
            )),
        },
        Statement::ShowVariable { variable } => Command::Show(
            variable
                .iter()
                .map(|i| i.value.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Statement::Reset(r) => match r.reset {
            Reset::ALL => Command::Reset(None),
            Reset::ConfigurationParameter(name) => Command::Reset(Some(ident_text(&name))),
        },
        Statement::Discard { object_type } => Command::Discard {
            all: matches!(object_type, DiscardObject::ALL),
        },
        Statement::StartTransaction { .. } => Command::Begin,
        Statement::Commit { .. } => Command::Commit,
        Statement::Rollback {
            savepoint: Some(name),
            ..
        } => Command::RollbackTo(name.value.to_ascii_lowercase()),
        Statement::Rollback { .. } => Command::Rollback,
        Statement::Savepoint { name } => Command::Savepoint(name.value.to_ascii_lowercase()),
        Statement::ReleaseSavepoint { name } => Command::Release(name.value.to_ascii_lowercase()),
        Statement::Deallocate { name, .. } => {
            if name.value.eq_ignore_ascii_case("all") && name.quote_style.is_none() {
                Command::Deallocate(None)
            } else {
                Command::Deallocate(Some(name.value))
            }
        }
        Statement::Declare { stmts } => declare(stmts),
        Statement::Fetch {
            name, direction, ..
        } => fetch(name.value, &direction),
        Statement::Close { cursor } => match cursor {
            CloseCursor::All => Command::Close(None),
            CloseCursor::Specific { name } => Command::Close(Some(name.value)),
        },
        Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } => copy(source, to, &target, &options, &legacy_options),
        Statement::Query(_) | Statement::Explain { .. } => Command::Query {
            sql,
            ast: Some(Box::new(statement)),
        },
        Statement::UNLISTEN { .. } => Command::Unlisten,
        Statement::LISTEN { .. } | Statement::NOTIFY { .. } => Command::Refuse(PgError::new(
            state::FEATURE_NOT_SUPPORTED,
            "LISTEN and NOTIFY are not supported",
        )),
        Statement::Prepare { .. } | Statement::Execute { .. } => Command::Refuse(PgError::new(
            state::FEATURE_NOT_SUPPORTED,
            "SQL-level PREPARE and EXECUTE are not supported; use the extended query protocol",
        )),
        // Everything else (writes, DDL, ...) is the query service's to refuse on its plan.
        other => Command::Query {
            sql,
            ast: Some(Box::new(other)),
        },
    }
}

fn declare(stmts: Vec<datafusion::sql::sqlparser::ast::Declare>) -> Command {
    let Some(d) = stmts.into_iter().next() else {
        return Command::Refuse(PgError::new(state::SYNTAX_ERROR, "DECLARE needs a cursor"));
    };
    let (Some(name), Some(query)) = (d.names.first(), d.for_query) else {
        return Command::Refuse(PgError::new(
            state::FEATURE_NOT_SUPPORTED,
            "only DECLARE name CURSOR FOR query is supported",
        ));
    };
    let statement = Statement::Query(query);
    Command::Declare {
        name: name.value.clone(),
        sql: statement.to_string(),
        ast: Box::new(statement),
        hold: d.hold.unwrap_or(false),
        binary: d.binary.unwrap_or(false),
    }
}

fn count_of(limit: &datafusion::sql::sqlparser::ast::ValueWithSpan) -> Option<u64> {
    match &limit.value {
        Value::Number(n, _) => n.parse().ok(),
        _ => None,
    }
}

fn fetch(name: String, direction: &FetchDirection) -> Command {
    let count = match direction {
        FetchDirection::Next | FetchDirection::Forward { limit: None } => Some(1),
        FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => {
            match count_of(limit) {
                Some(n) => Some(n),
                None => {
                    return Command::Refuse(PgError::new(
                        state::FEATURE_NOT_SUPPORTED,
                        "cursors only move forward (FETCH n, NEXT, ALL, FORWARD)",
                    ));
                }
            }
        }
        FetchDirection::All | FetchDirection::ForwardAll => None,
        _ => {
            return Command::Refuse(PgError::new(
                state::FEATURE_NOT_SUPPORTED,
                "cursor can only scan forward (declare it NO SCROLL: FETCH n, NEXT, ALL, FORWARD)",
            ));
        }
    };
    Command::Fetch { name, count }
}

fn copy(
    source: CopySource,
    to: bool,
    target: &CopyTarget,
    options: &[CopyOption],
    legacy: &[CopyLegacyOption],
) -> Command {
    if !to {
        return read_only("COPY FROM");
    }
    if !matches!(target, CopyTarget::Stdout) {
        return Command::Refuse(PgError::new(
            state::INSUFFICIENT_PRIVILEGE,
            "COPY to a file or program is not allowed; use COPY ... TO STDOUT",
        ));
    }
    let statement = match source {
        CopySource::Query(q) => Statement::Query(q),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let cols = if columns.is_empty() {
                "*".to_owned()
            } else {
                columns
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let text = format!("SELECT {cols} FROM {table_name}");
            match Parser::parse_sql(&PostgreSqlDialect {}, &text)
                .ok()
                .and_then(|mut v| v.pop())
            {
                Some(s) => s,
                None => {
                    return Command::Refuse(PgError::new(state::SYNTAX_ERROR, "bad COPY source"));
                }
            }
        }
    };
    let mut format = CopyFormat {
        csv: false,
        header: false,
        delimiter: '\t',
        null: "\\N".into(),
    };
    for o in options {
        match o {
            CopyOption::Format(f) if f.value.eq_ignore_ascii_case("csv") => {
                format.csv = true;
                format.delimiter = ',';
                format.null = String::new();
            }
            CopyOption::Format(f) if f.value.eq_ignore_ascii_case("text") => {}
            CopyOption::Format(_) => {
                return Command::Refuse(PgError::new(
                    state::FEATURE_NOT_SUPPORTED,
                    "COPY TO STDOUT writes text or csv",
                ));
            }
            CopyOption::Header(h) => format.header = *h,
            CopyOption::Delimiter(d) if d.is_ascii() => format.delimiter = *d,
            CopyOption::Delimiter(_) => {
                return Command::Refuse(PgError::new(
                    "22023",
                    "COPY delimiter must be a single one-byte character",
                ));
            }
            CopyOption::Null(n) => format.null.clone_from(n),
            _ => {}
        }
    }
    for o in legacy {
        let text = o.to_string().to_ascii_uppercase();
        if text.starts_with("CSV") {
            format.csv = true;
            format.delimiter = ',';
            format.null = String::new();
            if text.contains("HEADER") {
                format.header = true;
            }
        } else if text == "HEADER" {
            format.header = true;
        } else if text == "BINARY" {
            return Command::Refuse(PgError::new(
                state::FEATURE_NOT_SUPPORTED,
                "COPY TO STDOUT writes text or csv",
            ));
        }
    }
    Command::Copy {
        sql: statement.to_string(),
        ast: Box::new(statement),
        format,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_commands_and_queries_are_told_apart() {
        let c = split("SET TIME ZONE 'UTC'; select 1; BEGIN READ ONLY; show search_path");
        assert!(
            matches!(&c[0], Command::Set { name, value: Some(v), .. } if name == "timezone" && v == "UTC")
        );
        assert!(matches!(&c[1], Command::Query { .. }));
        assert!(matches!(&c[2], Command::Begin));
        assert!(matches!(&c[3], Command::Show(n) if n == "search_path"));
        assert!(matches!(&split("  ; -- nothing\n")[0], Command::Empty));
        assert!(matches!(&split("SET ROLE admin")[0], Command::Refuse(e) if e.state == "42501"));
        assert!(matches!(&split("COPY t FROM STDIN")[0], Command::Refuse(e) if e.state == "25006"));
        assert!(matches!(
            &split("DECLARE c CURSOR WITH HOLD FOR SELECT 1")[0],
            Command::Declare { hold: true, .. }
        ));
        assert!(matches!(
            &split("FETCH 5 FROM c")[0],
            Command::Fetch { count: Some(5), .. }
        ));
        assert!(matches!(
            &split("FETCH ALL IN c")[0],
            Command::Fetch { count: None, .. }
        ));
        assert!(
            matches!(&split("copy (select 1) to stdout with csv header")[0], Command::Copy { format, .. } if format.csv && format.header)
        );
    }
}

/// The column names PostgreSQL gives a query's unaliased expressions (`count(*)` → `count`,
/// `1` → `?column?`), where DataFusion names them by their text; `None` when the select list
/// has wildcards or the query is not a plain `SELECT`.
pub fn column_names(statement: &Statement) -> Option<Vec<String>> {
    use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr};
    let Statement::Query(q) = statement else {
        return None;
    };
    let SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Some(expr_name(e)),
            SelectItem::ExprWithAlias { alias, .. } => Some(ident_name(alias)),
            _ => None,
        })
        .collect()
}

fn ident_name(i: &datafusion::sql::sqlparser::ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_ascii_lowercase()
    }
}

/// The name PostgreSQL gives a cast's column: its type's internal name (`float8`, `int4`).
fn internal_type_name(t: &datafusion::sql::sqlparser::ast::DataType) -> String {
    let text = t.to_string().to_ascii_lowercase();
    let base = text.split('(').next().unwrap_or_default().trim();
    match base {
        "double precision" | "double" | "float8" | "float" => "float8",
        "real" | "float4" => "float4",
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "boolean" | "bool" => "bool",
        "decimal" | "numeric" => "numeric",
        "character varying" | "varchar" => "varchar",
        "character" | "char" | "bpchar" => "bpchar",
        "timestamp with time zone" | "timestamptz" => "timestamptz",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "time" | "time without time zone" => "time",
        other => other,
    }
    .to_owned()
}

fn expr_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => ident_name(i),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map_or_else(|| "?column?".to_owned(), ident_name),
        Expr::Function(f) => f.name.0.last().map_or_else(
            || "?column?".to_owned(),
            |p| p.to_string().trim_matches('"').to_ascii_lowercase(),
        ),
        Expr::Cast {
            expr, data_type, ..
        } => match expr_name(expr).as_str() {
            "?column?" => internal_type_name(data_type),
            n => n.to_owned(),
        },
        Expr::Nested(e) => expr_name(e),
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Array(_) => "array".into(),
        _ => "?column?".into(),
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn comments_and_trailing_semicolons_are_one_statement() {
        for sql in ["SELECT 1 -- comment", "SELECT 1;", "SELECT 1; -- trailing"] {
            let c = split(sql);
            assert_eq!(c.len(), 1, "{sql}: {c:?}");
        }
    }
}
