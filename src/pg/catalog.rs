//! `pg_catalog` and `information_schema` as clients read them, built for each statement from
//! the caller's granted catalog (a table it may not read is not in any of them), in a
//! DataFusion context of this connection's own that holds nothing else: no source is
//! reachable from it, and it plans only queries (DataFusion's `SQLOptions` refuse DDL, DML
//! and statements on the plan). The functions clients call (`version()`, `current_setting`,
//! `pg_table_is_visible`, `format_type`, ...) and the rewrites their SQL needs (`::regclass`,
//! `OPERATOR(pg_catalog.~)`, `COLLATE pg_catalog.default`, `pg_catalog.` function names) are
//! this context's only, so HTTP answers stay as they are.
//!
//! Names: a Sluice table `source.schema.table` is table `table` in namespace `source.schema`;
//! the session's default catalog and schema (or `search_path`) make a namespace visible.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, PoisonError};

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int16Array, Int32Array, Int64Array, ListBuilder, RecordBatch,
    StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::logical_expr::{
    ColumnarValue, LogicalPlan, ScalarUDF, Signature, SimpleScalarUDF, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CastKind, DataType as SqlType, Expr, ObjectName, ObjectNamePart, Statement,
    Value, visit_expressions_mut, visit_relations,
};

use super::types::{self, oid};

/// Namespace oids PostgreSQL gives its own schemas.
const PG_CATALOG_OID: i64 = 11;
const INFORMATION_SCHEMA_OID: i64 = 13_000;
/// Oids of Sluice's namespaces and tables start here (PostgreSQL's first user oid).
const FIRST_OID: i64 = 16_384;
/// Memory one catalog statement's operators may hold.
pub const CATALOG_MEMORY_BYTES: usize = 64 << 20;
/// The database every connection is in.
pub const DATABASE_OID: i64 = 16_383;

/// Where a statement runs: in the catalog context when it names a `pg_catalog` or
/// `information_schema` relation, or names none but calls a function only the catalog has
/// (`pg_table_is_visible`, `format_type`, ...); everything else through the query service, with
/// its limits (table-less computations too).
pub enum Route {
    /// The catalog context.
    Catalog,
    /// The query service.
    Service,
}

/// Privilege and visibility checks: the catalog holds only what the caller may read.
const ALWAYS_TRUE: &[&str] = &[
    "has_table_privilege",
    "has_schema_privilege",
    "has_database_privilege",
    "has_column_privilege",
    "has_any_column_privilege",
    "has_function_privilege",
    "has_type_privilege",
    "has_sequence_privilege",
    "pg_type_is_visible",
    "pg_collation_is_visible",
    "pg_function_is_visible",
    "pg_has_role",
];

/// Definitions and comments Sluice has none of.
const NULL_TEXT: &[&str] = &[
    "pg_get_expr",
    "obj_description",
    "col_description",
    "shobj_description",
    "pg_get_indexdef",
    "pg_get_constraintdef",
    "pg_get_viewdef",
    "pg_get_triggerdef",
    "pg_get_ruledef",
    "pg_get_functiondef",
    "pg_get_function_arguments",
    "pg_get_function_result",
    "pg_get_partkeydef",
    "pg_get_statisticsobjdef_columns",
    "pg_tablespace_location",
    "pg_get_serial_sequence",
    "pg_get_function_identity_arguments",
];

/// Sizes Sluice does not know.
const NULL_SIZE: &[&str] = &[
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_table_size",
    "pg_indexes_size",
    "pg_database_size",
];

/// The catalog context's other functions a table-less statement may call.
const CATALOG_FUNCTIONS: &[&str] = &[
    "pg_is_in_recovery",
    "txid_current",
    "pg_encoding_to_char",
    "pg_get_userbyid",
    "pg_postmaster_start_time",
    "inet_server_addr",
    "inet_server_port",
    "pg_relation_is_publishable",
    "pg_advisory_unlock_all",
    "pg_table_is_visible",
    "format_type",
    "to_regtype",
    "to_regclass",
    "current_schemas",
    "set_config",
    "pg_size_pretty",
    "quote_ident",
    "format",
];

/// Whether a table-less statement calling `name` runs in the catalog context.
fn is_catalog_function(name: &str) -> bool {
    [ALWAYS_TRUE, NULL_TEXT, NULL_SIZE, CATALOG_FUNCTIONS]
        .iter()
        .any(|list| list.contains(&name))
}

/// Where `statement` goes.
pub fn route(statement: &Statement) -> Route {
    if !matches!(statement, Statement::Query(_)) {
        return Route::Service;
    }
    let mut any = false;
    let mut catalog = false;
    let _ = visit_relations(statement, |name: &ObjectName| {
        any = true;
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| p.to_string().trim_matches('"').to_ascii_lowercase())
            .collect();
        // `source.information_schema.tables` is that source's, the query service's to answer.
        let is_catalog = match parts.as_slice() {
            [one] => one.starts_with("pg_"),
            [schema, _] => schema == "pg_catalog" || schema == "information_schema",
            _ => false,
        };
        catalog |= is_catalog;
        ControlFlow::<()>::Continue(())
    });
    if catalog {
        return Route::Catalog;
    }
    if any {
        return Route::Service;
    }
    let mut calls = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(statement, |e: &Expr| {
        if let Expr::Function(f) = e {
            calls |= is_catalog_function(&unqualified(&f.name));
        }
        ControlFlow::<()>::Continue(())
    });
    if calls {
        Route::Catalog
    } else {
        Route::Service
    }
}

/// Rewrites PostgreSQL syntax the catalog context cannot plan into what it can.
pub fn rewrite(statement: &mut Statement) {
    // A query (or a branch of a UNION) over an empty catalog table has no rows: its
    // subqueries (correlated lookups DataFusion cannot plan) are never evaluated, so they
    // become NULL.
    struct Pruner(u32);
    impl datafusion::sql::sqlparser::ast::VisitorMut for Pruner {
        type Break = ();
        fn post_visit_query(
            &mut self,
            q: &mut datafusion::sql::sqlparser::ast::Query,
        ) -> ControlFlow<()> {
            prune(q.body.as_mut(), &mut self.0);
            ControlFlow::Continue(())
        }
    }
    let _ = datafusion::sql::sqlparser::ast::VisitMut::visit(statement, &mut Pruner(0));
    // DataFusion wants distinct names in a select list; PostgreSQL allows `SELECT NULL, NULL`.
    let _ =
        datafusion::sql::sqlparser::ast::visit_statements_mut(statement, |st: &mut Statement| {
            if let Statement::Query(q) = st {
                let mut k = 0;
                alias_literals(q.body.as_mut(), &mut k);
            }
            ControlFlow::<()>::Continue(())
        });
    let mut n = 1_000;
    let _ = visit_expressions_mut(statement, |e: &mut Expr| {
        rewrite_expr(e, &mut n);
        ControlFlow::<()>::Continue(())
    });
}

fn unqualified(name: &ObjectName) -> String {
    name.0
        .last()
        .map(|p| p.to_string().trim_matches('"').to_ascii_lowercase())
        .unwrap_or_default()
}

/// Catalog tables that hold no rows here (no defaults, constraints, indexes, triggers,
/// policies, inheritance, publications or comments exist): a scalar subquery over them only is
/// NULL and `EXISTS` over them false, exactly, so correlated lookups clients make into them
/// (which DataFusion cannot decorrelate) need not be planned.
const EMPTY: &[&str] = &[
    "pg_attrdef",
    "pg_description",
    "pg_shdescription",
    "pg_constraint",
    "pg_index",
    "pg_inherits",
    "pg_trigger",
    "pg_rewrite",
    "pg_policy",
    "pg_statistic_ext",
    "pg_publication",
    "pg_publication_rel",
    "pg_publication_namespace",
    "pg_collation",
    "pg_enum",
    "pg_range",
    "pg_extension",
    "pg_foreign_table",
    "pg_partitioned_table",
    "pg_sequence",
    "pg_depend",
    "pg_event_trigger",
    "pg_auth_members",
];

/// Whether `q` has no rows because it reads one of [`EMPTY`] in its `FROM` list or through
/// an inner join (or reads nothing else).
fn reads_only_empty(q: &datafusion::sql::sqlparser::ast::Query) -> bool {
    use datafusion::sql::sqlparser::ast::{JoinOperator, SetExpr, TableFactor};
    let empty = |f: &TableFactor| match f {
        TableFactor::Table { name, .. } => EMPTY.contains(&unqualified(name).as_str()),
        _ => false,
    };
    if let SetExpr::Select(select) = q.body.as_ref() {
        let found = select.from.iter().any(|t| {
            empty(&t.relation)
                || t.joins.iter().any(|j| {
                    matches!(
                        j.join_operator,
                        JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_)
                    ) && empty(&j.relation)
                })
        });
        if found {
            return true;
        }
    }
    let mut any = false;
    let mut all_empty = true;
    let _ = visit_relations(q, |name: &ObjectName| {
        any = true;
        all_empty &= EMPTY.contains(&unqualified(name).as_str());
        ControlFlow::<()>::Continue(())
    });
    any && all_empty
}

/// Whether `q` reads `unnest(<column>)` only: every array column of this catalog
/// (`reloptions`, `attoptions`, `relacl`, ...) is NULL, so it has no rows.
fn unnests_a_list_column(q: &datafusion::sql::sqlparser::ast::Query) -> bool {
    use datafusion::sql::sqlparser::ast::{SetExpr, TableFactor};
    let SetExpr::Select(select) = q.body.as_ref() else {
        return false;
    };
    select.from.len() == 1
        && select.from[0].joins.is_empty()
        && match &select.from[0].relation {
            TableFactor::Function { name, args, .. } => {
                unqualified(name) == "unnest"
                    && args.len() == 1
                    && args.iter().all(|a| {
                        matches!(
                            a,
                            datafusion::sql::sqlparser::ast::FunctionArg::Unnamed(
                                datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(
                                    Expr::CompoundIdentifier(_) | Expr::Identifier(_)
                                )
                            )
                        )
                    })
            }
            TableFactor::Table {
                name,
                args: Some(args),
                ..
            } => unqualified(name) == "unnest" && args.args.len() == 1,
            _ => false,
        }
}

/// Nulls the subqueries of every empty `SELECT` in `body` (through set operations).
fn prune(body: &mut datafusion::sql::sqlparser::ast::SetExpr, n: &mut u32) {
    use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr};
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            prune(left, n);
            prune(right, n);
        }
        SetExpr::Query(q) => prune(q.body.as_mut(), n),
        SetExpr::Select(select) => {
            let probe = datafusion::sql::sqlparser::ast::Query {
                with: None,
                body: Box::new(SetExpr::Select(select.clone())),
                order_by: None,
                limit_clause: None,
                fetch: None,
                locks: Vec::new(),
                for_clause: None,
                settings: None,
                format_clause: None,
                pipe_operators: Vec::new(),
            };
            if !reads_only_empty(&probe) {
                return;
            }
            for item in &mut select.projection {
                let expr = match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                    _ => continue,
                };
                // Nothing here is evaluated: functions that would not plan over the catalog's
                // stand-in columns (`unnest(indkey)`) and subqueries alike become NULL.
                if has_subquery(expr)
                    || !matches!(
                        expr,
                        Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Value(_)
                    )
                {
                    *expr = null(n, false);
                }
            }
            let _ = visit_expressions_mut(select.as_mut(), |e: &mut Expr| {
                match e {
                    Expr::Subquery(_) => *e = null(n, false),
                    Expr::Exists { .. } | Expr::InSubquery { .. } => *e = null(n, true),
                    Expr::Function(f)
                        if matches!(
                            f.args,
                            datafusion::sql::sqlparser::ast::FunctionArguments::Subquery(_)
                        ) =>
                    {
                        *e = null(n, false);
                    }
                    _ => {}
                }
                ControlFlow::<()>::Continue(())
            });
        }
        _ => {}
    }
}

/// The mark of an alias given to a select-list item that repeats a wildcard's column name.
pub const DUPLICATE: &str = "__pg_repeat_";

/// A column's name as the client sees it: without [`DUPLICATE`]'s mark.
pub fn client_name(name: &str) -> &str {
    name.find(DUPLICATE).map_or(name, |at| &name[..at])
}

/// Aliases the literal items of each select list (`NULL`, `''`, `1`) with distinct names.
fn alias_literals(body: &mut datafusion::sql::sqlparser::ast::SetExpr, k: &mut u32) {
    use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr};
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            alias_literals(left, k);
            alias_literals(right, k);
        }
        SetExpr::Select(select) => {
            // `SELECT db.oid, db.*` (DBeaver): PostgreSQL repeats the name, DataFusion refuses
            // it; the named items get a marked alias the door strips again (`DUPLICATE`).
            let wildcard = select.projection.iter().any(|i| {
                matches!(
                    i,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                )
            });
            if wildcard {
                for item in &mut select.projection {
                    let name = match item {
                        SelectItem::UnnamedExpr(Expr::Identifier(i)) => i.value.clone(),
                        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(p)) => {
                            p.last().map(|i| i.value.clone()).unwrap_or_default()
                        }
                        _ => continue,
                    };
                    if let SelectItem::UnnamedExpr(e) = item {
                        *k += 1;
                        *item = SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: format!("{}{DUPLICATE}{k}", name.to_ascii_lowercase())
                                .as_str()
                                .into(),
                        };
                    }
                }
            }
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(e @ Expr::Value(_)) = item {
                    *k += 1;
                    *item = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: format!("column_{k}").as_str().into(),
                    };
                }
            }
        }
        _ => {}
    }
}

/// Whether `e` holds a subquery.
fn has_subquery(e: &Expr) -> bool {
    let mut found = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(e, |x: &Expr| {
        found |= matches!(
            x,
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
        ) || matches!(x, Expr::Function(f) if matches!(f.args, datafusion::sql::sqlparser::ast::FunctionArguments::Subquery(_)));
        ControlFlow::<()>::Continue(())
    });
    found
}

/// A NULL text (or `false`) that never evaluates anything: a call numbered `n` so that
/// several in one select list keep distinct names.
fn null(n: &mut u32, boolean: bool) -> Expr {
    *n += 1;
    let f = if boolean {
        "pg_sluice_false"
    } else {
        "pg_sluice_null"
    };
    call(f, vec![Expr::value(Value::Number(n.to_string(), false))])
}

/// A scalar subquery PostgreSQL checks at run time for at most one row, as DataFusion wants
/// it (a correlated one must aggregate): its one item under `max()`. Over the catalog a lookup
/// by key finds one row or none, and then `max` is that row's value or NULL, as PostgreSQL's.
fn aggregate_scalar_subquery(q: &mut datafusion::sql::sqlparser::ast::Query) {
    use datafusion::sql::sqlparser::ast::{GroupByExpr, SelectItem, SetExpr};
    let SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(v, _) if v.is_empty());
    if grouped
        || select.distinct.is_some()
        || select.projection.len() != 1
        || q.limit_clause.is_some()
    {
        return;
    }
    let (SelectItem::UnnamedExpr(item) | SelectItem::ExprWithAlias { expr: item, .. }) =
        &mut select.projection[0]
    else {
        return;
    };
    let aggregate = matches!(item, Expr::Function(f) if matches!(
        unqualified(&f.name).as_str(),
        "count" | "sum" | "min" | "max" | "avg" | "array_agg" | "string_agg" | "bool_and"
            | "bool_or" | "first_value" | "last_value" | "json_agg"
    ));
    if !aggregate {
        let inner = std::mem::replace(item, Expr::value(Value::Null));
        *item = call("max", vec![inner]);
    }
}

fn rewrite_expr(e: &mut Expr, n: &mut u32) {
    match e {
        Expr::Subquery(q) if !reads_only_empty(q) => aggregate_scalar_subquery(q),
        Expr::Subquery(q) if reads_only_empty(q) => *e = null(n, false),
        Expr::Exists { subquery, negated } if reads_only_empty(subquery) => {
            *e = if *negated {
                Expr::UnaryOp {
                    op: datafusion::sql::sqlparser::ast::UnaryOperator::Not,
                    expr: Box::new(null(n, true)),
                }
            } else {
                null(n, true)
            };
        }
        Expr::InSubquery {
            subquery, negated, ..
        } if reads_only_empty(subquery) => {
            *e = if *negated {
                Expr::UnaryOp {
                    op: datafusion::sql::sqlparser::ast::UnaryOperator::Not,
                    expr: Box::new(null(n, true)),
                }
            } else {
                null(n, true)
            };
        }
        Expr::Collate { expr, .. } => {
            let inner = std::mem::replace(expr.as_mut(), Expr::value(Value::Null));
            *e = inner;
            rewrite_expr(e, n);
        }
        Expr::BinaryOp { op, .. } => {
            if let BinaryOperator::PGCustomBinaryOperator(parts) = op {
                let mapped = match parts.last().map(String::as_str) {
                    Some("~") => Some(BinaryOperator::PGRegexMatch),
                    Some("~*") => Some(BinaryOperator::PGRegexIMatch),
                    Some("!~") => Some(BinaryOperator::PGRegexNotMatch),
                    Some("!~*") => Some(BinaryOperator::PGRegexNotIMatch),
                    Some("=") => Some(BinaryOperator::Eq),
                    Some("<>") => Some(BinaryOperator::NotEq),
                    Some("<") => Some(BinaryOperator::Lt),
                    Some(">") => Some(BinaryOperator::Gt),
                    Some("<=") => Some(BinaryOperator::LtEq),
                    Some(">=") => Some(BinaryOperator::GtEq),
                    Some("||") => Some(BinaryOperator::StringConcat),
                    _ => None,
                };
                if let Some(m) = mapped {
                    *op = m;
                }
            }
        }
        Expr::Function(f)
            if unqualified(&f.name) == "array"
                && matches!(&f.args, datafusion::sql::sqlparser::ast::FunctionArguments::Subquery(q) if reads_only_empty(q) || unnests_a_list_column(q)) =>
        {
            *e = Expr::Array(datafusion::sql::sqlparser::ast::Array {
                elem: Vec::new(),
                named: true,
            });
        }
        Expr::Function(f) if f.name.0.len() > 1 => {
            let last = unqualified(&f.name);
            f.name = ObjectName(vec![ObjectNamePart::Identifier(last.as_str().into())]);
        }
        Expr::Cast {
            expr,
            data_type,
            kind,
            ..
        } => {
            let name = match data_type {
                SqlType::Regclass => "regclass".to_owned(),
                SqlType::Custom(n, _) => unqualified(n),
                _ => return,
            };
            let literal = matches!(expr.as_ref(), Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)));
            let lookup = match name.as_str() {
                "regproc" | "regprocedure" => Some("pg_sluice_regproc"),
                "regclass" => Some("pg_sluice_regclass"),
                "regtype" => Some("pg_sluice_regtype"),
                "regnamespace" => Some("pg_sluice_regnamespace"),
                _ => None,
            };
            let to = match name.as_str() {
                "oid" | "regclass" | "regtype" | "regnamespace" | "xid" | "int8" => {
                    SqlType::BigInt(None)
                }
                "regproc" | "regprocedure" | "regoper" | "regoperator" | "regrole" => {
                    SqlType::BigInt(None)
                }
                "int4" => SqlType::Int(None),
                "int2" => SqlType::SmallInt(None),
                "float8" => SqlType::DoublePrecision,
                "float4" => SqlType::Real,
                "bool" => SqlType::Boolean,
                "text" | "name" | "char" | "bpchar" | "varchar" | "regconfig" => SqlType::Text,
                "_text" => return,
                _ => return,
            };
            // Names are looked up; oids (a column, a number) pass through the same function.
            let _ = literal;
            match (true, lookup) {
                (true, Some(f)) => {
                    let arg = std::mem::replace(expr.as_mut(), Expr::value(Value::Null));
                    *e = call(f, vec![arg]);
                }
                _ => {
                    *data_type = to;
                    *kind = CastKind::Cast;
                }
            }
        }
        _ => {}
    }
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    use datafusion::sql::sqlparser::ast::{
        Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
    };
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(name.into())]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// Replaces this session's functions (`current_setting('x')`, `version()`,
/// `current_database()`, `current_schema()`, `current_user`, `pg_backend_pid()`) with their
/// values in a statement bound for the query service, which does not know them; true when
/// anything was replaced. Only calls with literal arguments are folded.
pub fn fold_session_functions(statement: &mut Statement, inputs: &Inputs<'_>) -> bool {
    let mut folded = false;
    let _ = visit_expressions_mut(statement, |e: &mut Expr| {
        let Expr::Function(f) = e else {
            return ControlFlow::<()>::Continue(());
        };
        let name = unqualified(&f.name);
        let args: Vec<Option<String>> = match &f.args {
            datafusion::sql::sqlparser::ast::FunctionArguments::None => Vec::new(),
            datafusion::sql::sqlparser::ast::FunctionArguments::List(l) => l
                .args
                .iter()
                .map(|a| match a {
                    datafusion::sql::sqlparser::ast::FunctionArg::Unnamed(
                        datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(Expr::Value(v)),
                    ) => match &v.value {
                        Value::SingleQuotedString(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    },
                    _ => None,
                })
                .collect(),
            datafusion::sql::sqlparser::ast::FunctionArguments::Subquery(_) => {
                return ControlFlow::Continue(());
            }
        };
        if args.iter().any(Option::is_none) {
            return ControlFlow::Continue(());
        }
        let text = |s: &str| Expr::value(Value::SingleQuotedString(s.to_owned()));
        let value = match (name.as_str(), args.len()) {
            ("current_setting", 1 | 2) => {
                let key = args[0].clone().unwrap_or_default().to_ascii_lowercase();
                inputs.settings.get(&key).map(|v| text(v))
            }
            ("version", 0) => Some(text(&version_text())),
            ("current_database" | "current_catalog", 0) => Some(text(inputs.database)),
            ("current_schema", 0) => Some(text(&inputs.visible)),
            ("current_user" | "session_user" | "user" | "current_role", 0) => {
                Some(text(inputs.user))
            }
            ("pg_backend_pid", 0) => {
                Some(Expr::value(Value::Number(inputs.pid.to_string(), false)))
            }
            _ => None,
        };
        if let Some(v) = value {
            *e = v;
            folded = true;
        }
        ControlFlow::Continue(())
    });
    folded
}

fn version_text() -> String {
    format!(
        "PostgreSQL {} (Sluice {}) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit",
        super::SERVER_VERSION,
        env!("CARGO_PKG_VERSION")
    )
}

/// What the catalog is built from: the caller's tables and the session's view of them.
pub struct Inputs<'a> {
    /// Tables the caller may read.
    pub tables: &'a [sluice_planner::TableInfo],
    /// The namespace bare names resolve in (`catalog.schema`).
    pub visible: String,
    /// The database name the client connected to.
    pub database: &'a str,
    /// The user name the client gave.
    pub user: &'a str,
    /// The backend's process id.
    pub pid: i32,
    /// The session's settings.
    pub settings: BTreeMap<String, String>,
    /// `set_config` calls made by the statement, applied to the session after it.
    pub set_config: Arc<Mutex<Vec<(String, String)>>>,
}

/// One table of the catalog: its columns as `name:type` (`type` one of `oid`, `int`,
/// `smallint`, `bool`, `text`, `text[]`, `real`), and its rows.
struct Table {
    name: &'static str,
    columns: &'static str,
}

fn sql_type(t: &str) -> DataType {
    match t {
        "oid" | "int" => DataType::Int64,
        "int4" => DataType::Int32,
        "smallint" => DataType::Int16,
        "bool" => DataType::Boolean,
        "real" => DataType::Float32,
        "text[]" => DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
        "int2[]" => DataType::List(Arc::new(Field::new_list_field(DataType::Int16, true))),
        _ => DataType::Utf8,
    }
}

fn schema_of(columns: &str) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .split(',')
            .filter_map(|c| c.trim().split_once(':'))
            .map(|(n, t)| Field::new(n, sql_type(t), true))
            .collect::<Vec<_>>(),
    ))
}

/// A value in a catalog row.
#[derive(Clone)]
enum V {
    I(i64),
    S(String),
    B(bool),
    N,
}

impl From<i64> for V {
    fn from(v: i64) -> Self {
        Self::I(v)
    }
}
impl From<&str> for V {
    fn from(v: &str) -> Self {
        Self::S(v.to_owned())
    }
}
impl From<String> for V {
    fn from(v: String) -> Self {
        Self::S(v)
    }
}
impl From<bool> for V {
    fn from(v: bool) -> Self {
        Self::B(v)
    }
}

/// Rows by column name; columns a row leaves out are NULL.
fn batch(schema: &SchemaRef, rows: &[Vec<(&str, V)>]) -> datafusion::error::Result<RecordBatch> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            let values = rows.iter().map(|r| {
                r.iter()
                    .find(|(n, _)| *n == f.name())
                    .map_or(V::N, |(_, v)| v.clone())
            });
            let array: ArrayRef = match f.data_type() {
                DataType::Int64 => Arc::new(Int64Array::from_iter(values.map(|v| match v {
                    V::I(i) => Some(i),
                    _ => None,
                }))),
                DataType::Int32 => Arc::new(Int32Array::from_iter(values.map(|v| match v {
                    V::I(i) => i32::try_from(i).ok(),
                    _ => None,
                }))),
                DataType::Int16 => Arc::new(Int16Array::from_iter(values.map(|v| match v {
                    V::I(i) => i16::try_from(i).ok(),
                    _ => None,
                }))),
                DataType::Boolean => Arc::new(BooleanArray::from_iter(values.map(|v| match v {
                    V::B(b) => Some(b),
                    _ => None,
                }))),
                DataType::Float32 => Arc::new(datafusion::arrow::array::Float32Array::from_iter(
                    values.map(|v| match v {
                        V::I(i) => Some(i as f32),
                        _ => None,
                    }),
                )),
                DataType::List(f) if f.data_type() == &DataType::Int16 => {
                    let mut b = ListBuilder::new(datafusion::arrow::array::Int16Builder::new());
                    for _ in values {
                        b.append_null();
                    }
                    Arc::new(b.finish())
                }
                DataType::List(_) => {
                    let mut b = ListBuilder::new(StringBuilder::new());
                    for _ in values {
                        b.append_null();
                    }
                    Arc::new(b.finish())
                }
                _ => Arc::new(StringArray::from_iter(values.map(|v| match v {
                    V::S(s) => Some(s),
                    V::I(i) => Some(i.to_string()),
                    V::B(b) => Some(if b { "t" } else { "f" }.to_owned()),
                    V::N => None,
                }))),
            };
            array
        })
        .collect();
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

const PG_TABLES: &[Table] = &[
    Table {
        name: "pg_namespace",
        columns: "oid:oid,nspname:text,nspowner:oid,nspacl:text[]",
    },
    Table {
        name: "pg_class",
        columns: "oid:oid,relname:text,relnamespace:oid,reltype:oid,reloftype:oid,relowner:oid,relam:oid,relfilenode:oid,reltablespace:oid,relpages:int4,reltuples:real,relallvisible:int4,reltoastrelid:oid,relhasindex:bool,relisshared:bool,relpersistence:text,relkind:text,relnatts:smallint,relchecks:smallint,relhasrules:bool,relhastriggers:bool,relhassubclass:bool,relrowsecurity:bool,relforcerowsecurity:bool,relispopulated:bool,relreplident:text,relispartition:bool,relrewrite:oid,relfrozenxid:oid,relminmxid:oid,relacl:text[],reloptions:text[],relpartbound:text",
    },
    Table {
        name: "pg_attribute",
        columns: "attrelid:oid,attname:text,atttypid:oid,attstattarget:int4,attlen:smallint,attnum:smallint,attndims:int4,attcacheoff:int4,atttypmod:int4,attbyval:bool,attalign:text,attstorage:text,attcompression:text,attnotnull:bool,atthasdef:bool,atthasmissing:bool,attidentity:text,attgenerated:text,attisdropped:bool,attislocal:bool,attinhcount:int4,attcollation:oid,attacl:text[],attoptions:text[],attfdwoptions:text[],attmissingval:text",
    },
    Table {
        name: "pg_type",
        columns: "oid:oid,typname:text,typnamespace:oid,typowner:oid,typlen:smallint,typbyval:bool,typtype:text,typcategory:text,typispreferred:bool,typisdefined:bool,typdelim:text,typrelid:oid,typsubscript:text,typelem:oid,typarray:oid,typinput:oid,typoutput:oid,typreceive:oid,typsend:oid,typmodin:text,typmodout:text,typanalyze:text,typalign:text,typstorage:text,typnotnull:bool,typbasetype:oid,typtypmod:int4,typndims:int4,typcollation:oid,typdefaultbin:text,typdefault:text,typacl:text[]",
    },
    Table {
        name: "pg_database",
        columns: "oid:oid,datname:text,datdba:oid,encoding:int4,datlocprovider:text,datistemplate:bool,datallowconn:bool,datconnlimit:int4,datfrozenxid:oid,datminmxid:oid,dattablespace:oid,datcollate:text,datctype:text,daticulocale:text,datcollversion:text,datacl:text[]",
    },
    Table {
        name: "pg_settings",
        columns: "name:text,setting:text,unit:text,category:text,short_desc:text,extra_desc:text,context:text,vartype:text,source:text,min_val:text,max_val:text,enumvals:text[],boot_val:text,reset_val:text,sourcefile:text,sourceline:int4,pending_restart:bool",
    },
    Table {
        name: "pg_roles",
        columns: "oid:oid,rolname:text,rolsuper:bool,rolinherit:bool,rolcreaterole:bool,rolcreatedb:bool,rolcanlogin:bool,rolreplication:bool,rolconnlimit:int4,rolpassword:text,rolvaliduntil:text,rolbypassrls:bool,rolconfig:text[]",
    },
    Table {
        name: "pg_user",
        columns: "usename:text,usesysid:oid,usecreatedb:bool,usesuper:bool,userepl:bool,usebypassrls:bool,passwd:text,valuntil:text,useconfig:text[]",
    },
    Table {
        name: "pg_tables",
        columns: "schemaname:text,tablename:text,tableowner:text,tablespace:text,hasindexes:bool,hasrules:bool,hastriggers:bool,rowsecurity:bool",
    },
    Table {
        name: "pg_views",
        columns: "schemaname:text,viewname:text,viewowner:text,definition:text",
    },
    Table {
        name: "pg_matviews",
        columns: "schemaname:text,matviewname:text,matviewowner:text,tablespace:text,hasindexes:bool,ispopulated:bool,definition:text",
    },
    Table {
        name: "pg_am",
        columns: "oid:oid,amname:text,amhandler:text,amtype:text",
    },
    Table {
        name: "pg_proc",
        columns: "oid:oid,proname:text,pronamespace:oid,proowner:oid,prolang:oid,prokind:text,proretset:bool,prorettype:oid,proargtypes:text,proargnames:text[],prosrc:text",
    },
    Table {
        name: "pg_index",
        columns: "indexrelid:oid,indrelid:oid,indnatts:smallint,indnkeyatts:smallint,indisunique:bool,indnullsnotdistinct:bool,indisprimary:bool,indisexclusion:bool,indimmediate:bool,indisclustered:bool,indisvalid:bool,indcheckxmin:bool,indisready:bool,indislive:bool,indisreplident:bool,indkey:int2[],indcollation:int2[],indclass:int2[],indoption:int2[],indexprs:text,indpred:text",
    },
    Table {
        name: "pg_constraint",
        columns: "oid:oid,conname:text,connamespace:oid,contype:text,condeferrable:bool,condeferred:bool,convalidated:bool,conrelid:oid,contypid:oid,conindid:oid,conparentid:oid,confrelid:oid,confupdtype:text,confdeltype:text,confmatchtype:text,conislocal:bool,coninhcount:int4,connoinherit:bool,conkey:int2[],confkey:int2[],conpfeqop:text,conppeqop:text,conffeqop:text,confdelsetcols:text,conexclop:text,conbin:text",
    },
    Table {
        name: "pg_description",
        columns: "objoid:oid,classoid:oid,objsubid:int4,description:text",
    },
    Table {
        name: "pg_shdescription",
        columns: "objoid:oid,classoid:oid,description:text",
    },
    Table {
        name: "pg_attrdef",
        columns: "oid:oid,adrelid:oid,adnum:smallint,adbin:text",
    },
    Table {
        name: "pg_inherits",
        columns: "inhrelid:oid,inhparent:oid,inhseqno:int4,inhdetachpending:bool",
    },
    Table {
        name: "pg_collation",
        columns: "oid:oid,collname:text,collnamespace:oid,collowner:oid,collprovider:text,collisdeterministic:bool,collencoding:int4,collcollate:text,collctype:text",
    },
    Table {
        name: "pg_enum",
        columns: "oid:oid,enumtypid:oid,enumsortorder:real,enumlabel:text",
    },
    Table {
        name: "pg_range",
        columns: "rngtypid:oid,rngsubtype:oid,rngmultitypid:oid,rngcollation:oid,rngsubopc:oid,rngcanonical:text,rngsubdiff:text",
    },
    Table {
        name: "pg_extension",
        columns: "oid:oid,extname:text,extowner:oid,extnamespace:oid,extrelocatable:bool,extversion:text",
    },
    Table {
        name: "pg_tablespace",
        columns: "oid:oid,spcname:text,spcowner:oid,spcacl:text[],spcoptions:text[]",
    },
    Table {
        name: "pg_trigger",
        columns: "oid:oid,tgrelid:oid,tgparentid:oid,tgname:text,tgfoid:oid,tgtype:smallint,tgenabled:text,tgisinternal:bool,tgconstrrelid:oid,tgconstrindid:oid,tgconstraint:oid,tgdeferrable:bool,tginitdeferred:bool,tgnargs:smallint,tgattr:text,tgargs:text,tgqual:text,tgoldtable:text,tgnewtable:text",
    },
    Table {
        name: "pg_rewrite",
        columns: "oid:oid,rulename:text,ev_class:oid,ev_type:text,ev_enabled:text,is_instead:bool,ev_qual:text,ev_action:text",
    },
    Table {
        name: "pg_policy",
        columns: "oid:oid,polname:text,polrelid:oid,polcmd:text,polpermissive:bool,polroles:text,polqual:text,polwithcheck:text",
    },
    Table {
        name: "pg_statistic_ext",
        columns: "oid:oid,stxrelid:oid,stxname:text,stxnamespace:oid,stxowner:oid,stxstattarget:int4,stxkeys:int2[],stxkind:text[],stxexprs:text",
    },
    Table {
        name: "pg_publication",
        columns: "oid:oid,pubname:text,pubowner:oid,puballtables:bool,pubinsert:bool,pubupdate:bool,pubdelete:bool,pubtruncate:bool,pubviaroot:bool",
    },
    Table {
        name: "pg_publication_rel",
        columns: "oid:oid,prpubid:oid,prrelid:oid,prqual:text,prattrs:int2[]",
    },
    Table {
        name: "pg_publication_namespace",
        columns: "oid:oid,pnpubid:oid,pnnspid:oid",
    },
    Table {
        name: "pg_foreign_table",
        columns: "ftrelid:oid,ftserver:oid,ftoptions:text[]",
    },
    Table {
        name: "pg_partitioned_table",
        columns: "partrelid:oid,partstrat:text,partnatts:smallint,partdefid:oid,partattrs:int2[],partclass:text,partcollation:text,partexprs:text",
    },
    Table {
        name: "pg_sequence",
        columns: "seqrelid:oid,seqtypid:oid,seqstart:int,seqincrement:int,seqmax:int,seqmin:int,seqcache:int,seqcycle:bool",
    },
    Table {
        name: "pg_depend",
        columns: "classid:oid,objid:oid,objsubid:int4,refclassid:oid,refobjid:oid,refobjsubid:int4,deptype:text",
    },
    Table {
        name: "pg_language",
        columns: "oid:oid,lanname:text,lanowner:oid,lanispl:bool,lanpltrusted:bool",
    },
    Table {
        name: "pg_event_trigger",
        columns: "oid:oid,evtname:text,evtevent:text,evtowner:oid,evtfoid:oid,evtenabled:text,evttags:text[]",
    },
    Table {
        name: "pg_stat_activity",
        columns: "datid:oid,datname:text,pid:int4,usename:text,application_name:text,client_addr:text,backend_start:text,query_start:text,state:text,query:text",
    },
    Table {
        name: "pg_stat_user_tables",
        columns: "relid:oid,schemaname:text,relname:text,seq_scan:int,idx_scan:int,n_tup_ins:int,n_live_tup:int,n_dead_tup:int,last_analyze:text,last_autoanalyze:text",
    },
    Table {
        name: "pg_locks",
        columns: "locktype:text,database:oid,relation:oid,pid:int4,mode:text,granted:bool",
    },
    Table {
        name: "pg_cursors",
        columns: "name:text,statement:text,is_holdable:bool,is_binary:bool,is_scrollable:bool,creation_time:text",
    },
    Table {
        name: "pg_prepared_statements",
        columns: "name:text,statement:text,prepare_time:text,parameter_types:text[],from_sql:bool",
    },
    Table {
        name: "pg_auth_members",
        columns: "oid:oid,roleid:oid,member:oid,grantor:oid,admin_option:bool",
    },
    Table {
        name: "pg_opclass",
        columns: "oid:oid,opcmethod:oid,opcname:text,opcnamespace:oid,opcowner:oid,opcfamily:oid,opcintype:oid,opcdefault:bool,opckeytype:oid",
    },
    Table {
        name: "pg_operator",
        columns: "oid:oid,oprname:text,oprnamespace:oid,oprowner:oid,oprkind:text,oprleft:oid,oprright:oid,oprresult:oid",
    },
    Table {
        name: "pg_conversion",
        columns: "oid:oid,conname:text,connamespace:oid",
    },
];

const INFORMATION_SCHEMA: &[Table] = &[
    Table {
        name: "schemata",
        columns: "catalog_name:text,schema_name:text,schema_owner:text,default_character_set_catalog:text,default_character_set_schema:text,default_character_set_name:text,sql_path:text",
    },
    Table {
        name: "tables",
        columns: "table_catalog:text,table_schema:text,table_name:text,table_type:text,self_referencing_column_name:text,reference_generation:text,user_defined_type_catalog:text,user_defined_type_schema:text,user_defined_type_name:text,is_insertable_into:text,is_typed:text,commit_action:text",
    },
    Table {
        name: "columns",
        columns: "table_catalog:text,table_schema:text,table_name:text,column_name:text,ordinal_position:int,column_default:text,is_nullable:text,data_type:text,character_maximum_length:int,character_octet_length:int,numeric_precision:int,numeric_precision_radix:int,numeric_scale:int,datetime_precision:int,interval_type:text,udt_catalog:text,udt_schema:text,udt_name:text,is_identity:text,is_generated:text,is_updatable:text",
    },
    Table {
        name: "views",
        columns: "table_catalog:text,table_schema:text,table_name:text,view_definition:text",
    },
    Table {
        name: "routines",
        columns: "specific_catalog:text,specific_schema:text,specific_name:text,routine_name:text,routine_type:text,data_type:text",
    },
    Table {
        name: "key_column_usage",
        columns: "constraint_catalog:text,constraint_schema:text,constraint_name:text,table_catalog:text,table_schema:text,table_name:text,column_name:text,ordinal_position:int",
    },
    Table {
        name: "table_constraints",
        columns: "constraint_catalog:text,constraint_schema:text,constraint_name:text,table_catalog:text,table_schema:text,table_name:text,constraint_type:text,is_deferrable:text,initially_deferred:text",
    },
    Table {
        name: "referential_constraints",
        columns: "constraint_catalog:text,constraint_schema:text,constraint_name:text,unique_constraint_catalog:text,unique_constraint_schema:text,unique_constraint_name:text,match_option:text,update_rule:text,delete_rule:text",
    },
    Table {
        name: "character_sets",
        columns: "character_set_catalog:text,character_set_schema:text,character_set_name:text,character_repertoire:text,form_of_use:text,default_collate_catalog:text,default_collate_schema:text,default_collate_name:text",
    },
];

/// The `pg_type` rows: every type this door answers with.
const TYPES: &[(u32, &str, char, u32, u32)] = &[
    // oid, typname, category, element (arrays), array type
    (oid::BOOL, "bool", 'B', 0, oid::BOOL_ARRAY),
    (oid::BYTEA, "bytea", 'U', 0, 1001),
    (oid::NAME, "name", 'S', 0, 1003),
    (oid::INT8, "int8", 'N', 0, oid::INT8_ARRAY),
    (oid::INT2, "int2", 'N', 0, oid::INT2_ARRAY),
    (oid::INT4, "int4", 'N', 0, oid::INT4_ARRAY),
    (oid::TEXT, "text", 'S', 0, oid::TEXT_ARRAY),
    (oid::OID, "oid", 'N', 0, 1028),
    (oid::FLOAT4, "float4", 'N', 0, oid::FLOAT4_ARRAY),
    (oid::FLOAT8, "float8", 'N', 0, oid::FLOAT8_ARRAY),
    (oid::UNKNOWN, "unknown", 'X', 0, 0),
    (oid::BOOL_ARRAY, "_bool", 'A', oid::BOOL, 0),
    (oid::INT2_ARRAY, "_int2", 'A', oid::INT2, 0),
    (oid::INT4_ARRAY, "_int4", 'A', oid::INT4, 0),
    (oid::TEXT_ARRAY, "_text", 'A', oid::TEXT, 0),
    (oid::INT8_ARRAY, "_int8", 'A', oid::INT8, 0),
    (oid::FLOAT4_ARRAY, "_float4", 'A', oid::FLOAT4, 0),
    (oid::FLOAT8_ARRAY, "_float8", 'A', oid::FLOAT8, 0),
    (1042, "bpchar", 'S', 0, 1014),
    (oid::VARCHAR, "varchar", 'S', 0, 1015),
    (oid::DATE, "date", 'D', 0, 1182),
    (oid::TIME, "time", 'D', 0, 1183),
    (oid::TIMESTAMP, "timestamp", 'D', 0, 1115),
    (oid::TIMESTAMPTZ, "timestamptz", 'D', 0, 1185),
    (oid::INTERVAL, "interval", 'T', 0, 1187),
    (oid::NUMERIC, "numeric", 'N', 0, 1231),
    (oid::UUID, "uuid", 'U', 0, 2951),
    (114, "json", 'U', 0, 199),
    (3802, "jsonb", 'U', 0, 3807),
];

/// The input/output functions of the types (`int4recv`, `array_recv`, ...), with oids: what
/// `pg_type.typreceive` and friends point at, so clients tell arrays by `array_recv` (Npgsql) or
/// `array_in` (pgjdbc).
fn io_functions() -> Vec<(i64, String)> {
    let mut names: Vec<String> = vec![
        "array_in".into(),
        "array_out".into(),
        "array_recv".into(),
        "array_send".into(),
    ];
    for (_, name, _, element, _) in TYPES {
        if *element == 0 {
            for suffix in ["in", "out", "recv", "send"] {
                names.push(format!("{name}{suffix}"));
            }
        }
    }
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| (5_000 + i64::try_from(i).unwrap_or(0), n))
        .collect()
}

/// The oid of a type's `suffix` function (`in`, `out`, `recv`, `send`).
fn io_oid(name: &str, element: u32, suffix: &str) -> i64 {
    let want = if element != 0 {
        format!("array_{suffix}")
    } else {
        format!("{name}{suffix}")
    };
    io_functions()
        .into_iter()
        .find(|(_, n)| *n == want)
        .map_or(0, |(o, _)| o)
}

/// The namespace (`catalog.schema`) and bare name of each table, with oids.
struct Names {
    namespaces: BTreeMap<String, i64>,
    /// (oid, namespace oid, table)
    tables: Vec<(i64, i64, usize)>,
}

fn names(tables: &[sluice_planner::TableInfo]) -> Names {
    let mut namespaces = BTreeMap::new();
    for t in tables {
        namespaces.insert(format!("{}.{}", t.catalog, t.schema), 0);
    }
    let mut next = FIRST_OID;
    for v in namespaces.values_mut() {
        *v = next;
        next += 1;
    }
    let mut order: Vec<usize> = (0..tables.len()).collect();
    order.sort_by(|a, b| {
        let (x, y) = (&tables[*a], &tables[*b]);
        (&x.catalog, &x.schema, &x.table).cmp(&(&y.catalog, &y.schema, &y.table))
    });
    let tables_out = order
        .into_iter()
        .map(|i| {
            let t = &tables[i];
            let ns = namespaces
                .get(&format!("{}.{}", t.catalog, t.schema))
                .copied()
                .unwrap_or(0);
            let oid = next;
            next += 1;
            (oid, ns, i)
        })
        .collect();
    Names {
        namespaces,
        tables: tables_out,
    }
}

/// The catalog context for one statement.
///
/// # Errors
/// A batch or table that cannot be built (not expected).
pub fn context(inputs: &Inputs<'_>) -> datafusion::error::Result<SessionContext> {
    let config = SessionConfig::new()
        .with_default_catalog_and_schema("sluice", "pg_catalog")
        .with_create_default_catalog_and_schema(true)
        .with_information_schema(false)
        .with_target_partitions(1);
    // Bounded like a query: catalog statements share no memory with the planner's.
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_limit(CATALOG_MEMORY_BYTES, 1.0)
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let catalog = ctx
        .catalog("sluice")
        .ok_or_else(|| datafusion::error::DataFusionError::Internal("no catalog".into()))?;
    let pg = Arc::new(MemorySchemaProvider::new());
    let info = Arc::new(MemorySchemaProvider::new());
    catalog.register_schema("pg_catalog", Arc::clone(&pg) as _)?;
    catalog.register_schema("information_schema", Arc::clone(&info) as _)?;
    let names = names(inputs.tables);
    let rows = rows(inputs, &names);
    for t in PG_TABLES {
        let schema = schema_of(t.columns);
        let data = rows.get(t.name).map(Vec::as_slice).unwrap_or_default();
        let b = batch(&schema, data)?;
        let table = MemTable::try_new(Arc::clone(&schema), vec![vec![b]])?;
        datafusion::catalog::SchemaProvider::register_table(
            pg.as_ref(),
            t.name.to_owned(),
            Arc::new(table),
        )?;
    }
    for t in INFORMATION_SCHEMA {
        let schema = schema_of(t.columns);
        let key = format!("information_schema.{}", t.name);
        let data = rows
            .get(key.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let b = batch(&schema, data)?;
        let table = MemTable::try_new(Arc::clone(&schema), vec![vec![b]])?;
        datafusion::catalog::SchemaProvider::register_table(
            info.as_ref(),
            t.name.to_owned(),
            Arc::new(table),
        )?;
    }
    for f in functions(inputs, &names) {
        ctx.register_udf(f);
    }
    Ok(ctx)
}

type Rows = BTreeMap<String, Vec<Vec<(&'static str, V)>>>;

/// The catalog's own tables with oids: PostgreSQL's for the ones clients name
/// (`'pg_class'::regclass`), then numbered.
fn catalog_oids() -> Vec<(i64, &'static str)> {
    let known = |name: &str| match name {
        "pg_type" => Some(1247),
        "pg_attribute" => Some(1249),
        "pg_proc" => Some(1255),
        "pg_class" => Some(1259),
        "pg_database" => Some(1262),
        "pg_namespace" => Some(2615),
        "pg_constraint" => Some(2606),
        "pg_index" => Some(2610),
        "pg_description" => Some(2609),
        "pg_attrdef" => Some(2604),
        "pg_trigger" => Some(2620),
        "pg_rewrite" => Some(2618),
        "pg_inherits" => Some(2611),
        _ => None,
    };
    PG_TABLES
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                known(t.name).unwrap_or(3_000 + i64::try_from(i).unwrap_or(0)),
                t.name,
            )
        })
        .collect()
}

fn rows(inputs: &Inputs<'_>, names: &Names) -> Rows {
    let mut out: Rows = BTreeMap::new();
    let mut push = |table: &str, row: Vec<(&'static str, V)>| {
        out.entry(table.to_owned()).or_default().push(row);
    };
    for (name, oid) in [
        ("pg_catalog", PG_CATALOG_OID),
        ("information_schema", INFORMATION_SCHEMA_OID),
    ]
    .into_iter()
    .map(|(n, o)| (n.to_owned(), o))
    .chain(names.namespaces.iter().map(|(n, o)| (n.clone(), *o)))
    {
        push(
            "pg_namespace",
            vec![
                ("oid", oid.into()),
                ("nspname", name.clone().into()),
                ("nspowner", 10.into()),
            ],
        );
        push(
            "information_schema.schemata",
            vec![
                ("catalog_name", inputs.database.into()),
                ("schema_name", name.into()),
                ("schema_owner", inputs.user.into()),
            ],
        );
    }
    push(
        "pg_database",
        vec![
            ("oid", DATABASE_OID.into()),
            ("datname", inputs.database.into()),
            ("datdba", 10.into()),
            ("encoding", 6.into()),
            ("datlocprovider", "c".into()),
            ("datistemplate", false.into()),
            ("datallowconn", true.into()),
            ("datconnlimit", (-1).into()),
            ("dattablespace", 1663.into()),
            ("datcollate", "C".into()),
            ("datctype", "C".into()),
        ],
    );
    for (k, v) in &inputs.settings {
        push(
            "pg_settings",
            vec![
                ("name", k.clone().into()),
                ("setting", v.clone().into()),
                ("context", "user".into()),
                ("vartype", "string".into()),
                ("source", "session".into()),
                ("boot_val", v.clone().into()),
                ("reset_val", v.clone().into()),
            ],
        );
    }
    let role = vec![
        ("oid", V::I(10)),
        ("rolname", inputs.user.into()),
        ("rolsuper", false.into()),
        ("rolinherit", true.into()),
        ("rolcreaterole", false.into()),
        ("rolcreatedb", false.into()),
        ("rolcanlogin", true.into()),
        ("rolreplication", false.into()),
        ("rolconnlimit", (-1).into()),
        ("rolbypassrls", false.into()),
    ];
    push("pg_roles", role);
    push(
        "pg_user",
        vec![
            ("usename", inputs.user.into()),
            ("usesysid", 10.into()),
            ("usecreatedb", false.into()),
            ("usesuper", false.into()),
            ("userepl", false.into()),
            ("usebypassrls", false.into()),
        ],
    );
    push(
        "pg_am",
        vec![
            ("oid", 2.into()),
            ("amname", "heap".into()),
            ("amtype", "t".into()),
        ],
    );
    push(
        "pg_tablespace",
        vec![
            ("oid", 1663.into()),
            ("spcname", "pg_default".into()),
            ("spcowner", 10.into()),
        ],
    );
    for (oid, name, category, element, array) in TYPES {
        let size = types::type_size(*oid);
        push(
            "pg_type",
            vec![
                ("oid", i64::from(*oid).into()),
                ("typname", (*name).into()),
                ("typnamespace", PG_CATALOG_OID.into()),
                ("typowner", 10.into()),
                ("typlen", i64::from(size).into()),
                ("typbyval", (size > 0 && size <= 8).into()),
                ("typtype", "b".into()),
                ("typcategory", category.to_string().into()),
                ("typispreferred", false.into()),
                ("typisdefined", true.into()),
                ("typdelim", ",".into()),
                ("typrelid", 0.into()),
                ("typelem", i64::from(*element).into()),
                ("typarray", i64::from(*array).into()),
                ("typinput", io_oid(name, *element, "in").into()),
                ("typoutput", io_oid(name, *element, "out").into()),
                ("typreceive", io_oid(name, *element, "recv").into()),
                ("typsend", io_oid(name, *element, "send").into()),
                ("typalign", "i".into()),
                ("typstorage", "p".into()),
                ("typnotnull", false.into()),
                ("typbasetype", 0.into()),
                ("typtypmod", (-1).into()),
                ("typndims", 0.into()),
                (
                    "typcollation",
                    if *category == 'S' { 100 } else { 0 }.into(),
                ),
            ],
        );
    }
    for (oid, name) in io_functions() {
        push(
            "pg_proc",
            vec![
                ("oid", oid.into()),
                ("proname", name.into()),
                ("pronamespace", PG_CATALOG_OID.into()),
                ("proowner", 10.into()),
                ("prolang", 12.into()),
                ("prokind", "f".into()),
                ("proretset", false.into()),
            ],
        );
    }
    for (oid, name) in catalog_oids() {
        push(
            "pg_class",
            vec![
                ("oid", oid.into()),
                ("relname", name.into()),
                ("relnamespace", PG_CATALOG_OID.into()),
                ("reltype", 0.into()),
                ("reloftype", 0.into()),
                ("relowner", 10.into()),
                ("relam", 2.into()),
                ("relkind", "r".into()),
                ("relpersistence", "p".into()),
                ("relhasindex", false.into()),
                ("relispartition", false.into()),
                ("relispopulated", true.into()),
                ("relreplident", "n".into()),
            ],
        );
    }
    for (oid, ns, i) in &names.tables {
        let t = &inputs.tables[*i];
        let namespace = format!("{}.{}", t.catalog, t.schema);
        let fields = t.columns.fields();
        push(
            "pg_class",
            vec![
                ("oid", (*oid).into()),
                ("relname", t.table.clone().into()),
                ("relnamespace", (*ns).into()),
                ("reltype", 0.into()),
                ("reloftype", 0.into()),
                ("relowner", 10.into()),
                ("relam", 2.into()),
                ("relfilenode", (*oid).into()),
                ("reltablespace", 0.into()),
                ("relpages", 0.into()),
                ("reltuples", (-1).into()),
                ("relallvisible", 0.into()),
                ("reltoastrelid", 0.into()),
                ("relhasindex", false.into()),
                ("relisshared", false.into()),
                ("relpersistence", "p".into()),
                ("relkind", "r".into()),
                ("relnatts", i64::try_from(fields.len()).unwrap_or(0).into()),
                ("relchecks", 0.into()),
                ("relhasrules", false.into()),
                ("relhastriggers", false.into()),
                ("relhassubclass", false.into()),
                ("relrowsecurity", false.into()),
                ("relforcerowsecurity", false.into()),
                ("relispopulated", true.into()),
                ("relreplident", "d".into()),
                ("relispartition", false.into()),
                ("relrewrite", 0.into()),
            ],
        );
        push(
            "pg_stat_user_tables",
            vec![
                ("relid", (*oid).into()),
                ("schemaname", namespace.clone().into()),
                ("relname", t.table.clone().into()),
            ],
        );
        push(
            "pg_tables",
            vec![
                ("schemaname", namespace.clone().into()),
                ("tablename", t.table.clone().into()),
                ("tableowner", inputs.user.into()),
                ("hasindexes", false.into()),
                ("hasrules", false.into()),
                ("hastriggers", false.into()),
                ("rowsecurity", false.into()),
            ],
        );
        push(
            "information_schema.tables",
            vec![
                ("table_catalog", inputs.database.into()),
                ("table_schema", namespace.clone().into()),
                ("table_name", t.table.clone().into()),
                ("table_type", "BASE TABLE".into()),
                ("is_insertable_into", "NO".into()),
                ("is_typed", "NO".into()),
            ],
        );
        for (k, f) in fields.iter().enumerate() {
            let type_oid = types::pg_type(f.data_type());
            let n = i64::try_from(k + 1).unwrap_or(0);
            let (precision, scale) = match f.data_type() {
                DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
                    (V::I(i64::from(*p)), V::I(i64::from(*s)))
                }
                _ => (V::N, V::N),
            };
            push(
                "pg_attribute",
                vec![
                    ("attrelid", (*oid).into()),
                    ("attname", f.name().clone().into()),
                    ("atttypid", i64::from(type_oid).into()),
                    ("attstattarget", (-1).into()),
                    ("attlen", i64::from(types::type_size(type_oid)).into()),
                    ("attnum", n.into()),
                    ("attndims", 0.into()),
                    ("attcacheoff", (-1).into()),
                    ("atttypmod", typmod(f.data_type()).into()),
                    ("attbyval", false.into()),
                    ("attalign", "i".into()),
                    ("attstorage", "p".into()),
                    ("attcompression", "".into()),
                    ("attnotnull", (!f.is_nullable()).into()),
                    ("atthasdef", false.into()),
                    ("atthasmissing", false.into()),
                    ("attidentity", "".into()),
                    ("attgenerated", "".into()),
                    ("attisdropped", false.into()),
                    ("attislocal", true.into()),
                    ("attinhcount", 0.into()),
                    (
                        "attcollation",
                        if type_oid == oid::TEXT { 100 } else { 0 }.into(),
                    ),
                ],
            );
            push(
                "information_schema.columns",
                vec![
                    ("table_catalog", inputs.database.into()),
                    ("table_schema", namespace.clone().into()),
                    ("table_name", t.table.clone().into()),
                    ("column_name", f.name().clone().into()),
                    ("ordinal_position", n.into()),
                    (
                        "is_nullable",
                        if f.is_nullable() { "YES" } else { "NO" }.into(),
                    ),
                    ("data_type", types::type_name(type_oid).into()),
                    ("numeric_precision", precision),
                    ("numeric_scale", scale),
                    ("udt_catalog", inputs.database.into()),
                    ("udt_schema", "pg_catalog".into()),
                    ("udt_name", type_udt(type_oid).into()),
                    ("is_identity", "NO".into()),
                    ("is_generated", "NEVER".into()),
                    ("is_updatable", "NO".into()),
                ],
            );
        }
    }
    out
}

/// `atttypmod`: numeric's `(precision << 16 | scale) + 4`, else -1.
fn typmod(t: &DataType) -> i64 {
    match t {
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            ((i64::from(*p) << 16) | i64::from(*s)) + 4
        }
        _ => -1,
    }
}

fn type_udt(type_oid: u32) -> String {
    TYPES
        .iter()
        .find(|(o, ..)| *o == type_oid)
        .map_or_else(|| "text".to_owned(), |(_, n, ..)| (*n).to_owned())
}

/// A function of any arguments (the context coerces nothing: each reads what it needs).
fn udf(
    name: &str,
    ret: DataType,
    f: impl Fn(&[ColumnarValue]) -> datafusion::error::Result<ColumnarValue> + Send + Sync + 'static,
) -> ScalarUDF {
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        name,
        Signature::variadic_any(Volatility::Stable),
        ret,
        Arc::new(f),
    ))
}

/// A function with no arguments, or whose arguments do not matter (`current_user` and
/// friends are called without parentheses, `version()` with none).
fn constant(name: &str, value: ScalarValue) -> ScalarUDF {
    let ret = value.data_type();
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        name,
        Signature::one_of(
            vec![
                datafusion::logical_expr::TypeSignature::Nullary,
                datafusion::logical_expr::TypeSignature::VariadicAny,
            ],
            Volatility::Stable,
        ),
        ret,
        Arc::new(move |_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(value.clone()))),
    ))
}

/// An oid from a name (a `::regclass`-like cast): numbers pass through, names are looked up
/// by `find`; an unknown name is `missing`'s error, or NULL without one.
fn lookup_udf(
    name: &str,
    find: impl Fn(&str) -> Option<i64> + Send + Sync + 'static,
    missing: Option<&'static str>,
) -> ScalarUDF {
    udf(name, DataType::Int64, move |args| {
        let one = |s: ScalarValue| -> datafusion::error::Result<ScalarValue> {
            let v = match s {
                ScalarValue::Utf8(Some(t))
                | ScalarValue::LargeUtf8(Some(t))
                | ScalarValue::Utf8View(Some(t)) => match t.trim().parse::<i64>() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        let key = t.trim().trim_matches('"').to_owned();
                        match (
                            find(&key).or_else(|| find(&key.to_ascii_lowercase())),
                            missing,
                        ) {
                            (Some(o), _) => Some(o),
                            (None, None) => None,
                            (None, Some(what)) => {
                                return Err(datafusion::error::DataFusionError::Plan(format!(
                                    "{what} \"{t}\" does not exist"
                                )));
                            }
                        }
                    }
                },
                other if other.is_null() => None,
                other => match other.cast_to(&DataType::Int64)? {
                    ScalarValue::Int64(v) => v,
                    _ => None,
                },
            };
            Ok(ScalarValue::Int64(v))
        };
        match args.first() {
            None => Ok(ColumnarValue::Scalar(ScalarValue::Int64(None))),
            Some(ColumnarValue::Scalar(s)) => Ok(ColumnarValue::Scalar(one(s.clone())?)),
            Some(ColumnarValue::Array(a)) if a.is_empty() => Ok(ColumnarValue::Array(
                datafusion::arrow::array::new_empty_array(&DataType::Int64),
            )),
            Some(ColumnarValue::Array(a)) => {
                let values = (0..a.len())
                    .map(|i| one(ScalarValue::try_from_array(a, i)?))
                    .collect::<datafusion::error::Result<Vec<_>>>()?;
                Ok(ColumnarValue::Array(ScalarValue::iter_to_array(values)?))
            }
        }
    })
}

/// Applies `f` to the first argument's values as integers (oids), row by row.
/// Row `i`'s value of argument `k` (a scalar stands for every row).
fn arg_at(args: &[ColumnarValue], k: usize, i: usize) -> Option<ScalarValue> {
    match args.get(k)? {
        ColumnarValue::Scalar(s) => Some(s.clone()),
        ColumnarValue::Array(a) => ScalarValue::try_from_array(a, i).ok(),
    }
}

/// A text function's answer, `row` by row: a scalar when every argument is one.
fn text_rows(args: &[ColumnarValue], row: impl Fn(usize) -> Option<String>) -> ColumnarValue {
    let rows = args
        .iter()
        .find_map(|a| match a {
            ColumnarValue::Array(a) => Some(a.len()),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or(1);
    let values: Vec<Option<String>> = (0..rows).map(row).collect();
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        return ColumnarValue::Scalar(ScalarValue::Utf8(values.into_iter().next().flatten()));
    }
    ColumnarValue::Array(Arc::new(StringArray::from(values)))
}

fn on_oids(
    args: &[ColumnarValue],
    f: impl Fn(Option<i64>) -> Option<ScalarValue>,
    ret: &DataType,
) -> datafusion::error::Result<ColumnarValue> {
    let Some(first) = args.first() else {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from(ret)?));
    };
    let to_int = |s: ScalarValue| -> Option<i64> {
        match s.cast_to(&DataType::Int64).ok()? {
            ScalarValue::Int64(v) => v,
            _ => None,
        }
    };
    match first {
        ColumnarValue::Scalar(s) => Ok(ColumnarValue::Scalar(
            f(to_int(s.clone())).map_or_else(|| ScalarValue::try_from(ret), Ok)?,
        )),
        ColumnarValue::Array(a) if a.is_empty() => Ok(ColumnarValue::Array(
            datafusion::arrow::array::new_empty_array(ret),
        )),
        ColumnarValue::Array(a) => {
            let values = (0..a.len())
                .map(|i| {
                    let s = ScalarValue::try_from_array(a, i)?;
                    f(to_int(s)).map_or_else(|| ScalarValue::try_from(ret), Ok)
                })
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            Ok(ColumnarValue::Array(ScalarValue::iter_to_array(values)?))
        }
    }
}

fn text_arg(args: &[ColumnarValue], i: usize) -> Option<String> {
    match args.get(i)? {
        ColumnarValue::Scalar(s) => match s {
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                v.clone()
            }
            other if !other.is_null() => Some(other.to_string()),
            _ => None,
        },
        ColumnarValue::Array(a) if !a.is_empty() => ScalarValue::try_from_array(a, 0)
            .ok()
            .filter(|s| !s.is_null())
            .map(|s| match s {
                ScalarValue::Utf8(Some(v))
                | ScalarValue::LargeUtf8(Some(v))
                | ScalarValue::Utf8View(Some(v)) => v,
                other => other.to_string(),
            }),
        ColumnarValue::Array(_) => None,
    }
}

fn functions(inputs: &Inputs<'_>, names: &Names) -> Vec<ScalarUDF> {
    let version = version_text();
    let utf8 = |s: &str| ScalarValue::Utf8(Some(s.to_owned()));
    let user = inputs.user.to_owned();
    let mut out = vec![
        constant("version", utf8(&version)),
        constant("current_database", utf8(inputs.database)),
        constant("current_catalog", utf8(inputs.database)),
        constant("current_schema", utf8(&inputs.visible)),
        constant("current_user", utf8(&user)),
        constant("session_user", utf8(&user)),
        constant("current_role", utf8(&user)),
        constant("user", utf8(&user)),
        constant("pg_backend_pid", ScalarValue::Int32(Some(inputs.pid))),
        constant("pg_is_in_recovery", ScalarValue::Boolean(Some(false))),
        constant(
            "pg_relation_is_publishable",
            ScalarValue::Boolean(Some(false)),
        ),
        constant("pg_sluice_false", ScalarValue::Boolean(Some(false))),
        // Sluice holds no advisory locks: unlocking all is a no-op (asyncpg's pool reset).
        constant("pg_advisory_unlock_all", ScalarValue::Utf8(None)),
        constant("pg_sluice_null", ScalarValue::Null),
        constant("txid_current", ScalarValue::Int64(Some(1))),
        constant("pg_encoding_to_char", utf8("UTF8")),
        constant("pg_get_userbyid", utf8(&user)),
        constant("pg_postmaster_start_time", utf8("2000-01-01 00:00:00+00")),
        constant("inet_server_addr", ScalarValue::Utf8(None)),
        constant("inet_server_port", ScalarValue::Int32(None)),
    ];
    for name in ALWAYS_TRUE {
        out.push(constant(name, ScalarValue::Boolean(Some(true))));
    }
    for name in NULL_TEXT {
        out.push(constant(name, ScalarValue::Utf8(None)));
    }
    for name in NULL_SIZE {
        out.push(constant(name, ScalarValue::Int64(None)));
    }
    let visible: Vec<i64> = names
        .namespaces
        .get(&inputs.visible)
        .map(|ns| {
            names
                .tables
                .iter()
                .filter(|(_, n, _)| n == ns)
                .map(|(o, _, _)| *o)
                .collect()
        })
        .unwrap_or_default();
    out.push(udf("pg_table_is_visible", DataType::Boolean, move |args| {
        on_oids(
            args,
            |o| Some(ScalarValue::Boolean(o.map(|o| visible.contains(&o)))),
            &DataType::Boolean,
        )
    }));
    out.push(udf("format_type", DataType::Utf8, |args| {
        // format_type(oid, typmod): numeric's precision and scale from its typmod.
        let int_at = |k: usize, i: usize| -> Option<i64> {
            match arg_at(args, k, i)?.cast_to(&DataType::Int64).ok()? {
                ScalarValue::Int64(v) => v,
                _ => None,
            }
        };
        Ok(text_rows(args, |i| {
            let oid = u32::try_from(int_at(0, i)?).ok()?;
            let name = types::type_name(oid);
            Some(match int_at(1, i) {
                Some(m) if oid == oid::NUMERIC && m >= 4 => {
                    format!("{name}({},{})", (m - 4) >> 16, (m - 4) & 0xffff)
                }
                _ => name.to_owned(),
            })
        }))
    }));
    // `'name'::regclass` and friends: the oid of a visible (or qualified) table.
    let by_name: BTreeMap<String, i64> = names
        .tables
        .iter()
        .flat_map(|(o, ns, i)| {
            let t = &inputs.tables[*i];
            let qualified = format!("{}.{}.{}", t.catalog, t.schema, t.table);
            let mut v = vec![(qualified, *o)];
            if names.namespaces.get(&inputs.visible) == Some(ns) {
                v.push((t.table.clone(), *o));
            }
            v
        })
        .collect();
    let type_oid = |name: &str| {
        let name = name.to_ascii_lowercase();
        let name = name.strip_prefix("pg_catalog.").unwrap_or(&name).to_owned();
        TYPES
            .iter()
            .find(|(o, n, ..)| *n == name || types::type_name(*o) == name)
            .map(|(o, ..)| i64::from(*o))
    };
    out.push(lookup_udf("to_regtype", type_oid, None));
    out.push(lookup_udf("pg_sluice_regtype", type_oid, Some("type")));
    let mut by_name = by_name;
    for (oid, name) in catalog_oids() {
        by_name.insert(name.to_owned(), oid);
        by_name.insert(format!("pg_catalog.{name}"), oid);
    }
    let by_name = Arc::new(by_name);
    let lookup = Arc::clone(&by_name);
    out.push(lookup_udf(
        "to_regclass",
        move |n: &str| lookup.get(n).copied(),
        None,
    ));
    out.push(lookup_udf(
        "pg_sluice_regclass",
        move |n: &str| by_name.get(n).copied(),
        Some("relation"),
    ));
    let procs: BTreeMap<String, i64> = io_functions().into_iter().map(|(o, n)| (n, o)).collect();
    out.push(lookup_udf(
        "pg_sluice_regproc",
        move |n: &str| {
            procs
                .get(n.strip_prefix("pg_catalog.").unwrap_or(n))
                .copied()
        },
        Some("function"),
    ));
    let namespaces = names.namespaces.clone();
    out.push(lookup_udf(
        "pg_sluice_regnamespace",
        move |n: &str| match n {
            "pg_catalog" => Some(PG_CATALOG_OID),
            "information_schema" => Some(INFORMATION_SCHEMA_OID),
            other => namespaces.get(other).copied(),
        },
        Some("schema"),
    ));
    let settings = inputs.settings.clone();
    out.push(udf("current_setting", DataType::Utf8, move |args| {
        let name = text_arg(args, 0).unwrap_or_default().to_ascii_lowercase();
        let missing_ok = matches!(
            args.get(1),
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
        );
        match settings.get(&name) {
            Some(v) => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(v.clone())))),
            None if missing_ok => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None))),
            None => Err(datafusion::error::DataFusionError::Plan(format!(
                "unrecognized configuration parameter \"{name}\""
            ))),
        }
    }));
    let calls = Arc::clone(&inputs.set_config);
    out.push(udf("set_config", DataType::Utf8, move |args| {
        let name = text_arg(args, 0).unwrap_or_default();
        let value = text_arg(args, 1).unwrap_or_default();
        calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name, value.clone()));
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(value))))
    }));
    let visible_ns = inputs.visible.clone();
    out.push(udf(
        "current_schemas",
        DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
        move |_| {
            let mut b = ListBuilder::new(StringBuilder::new());
            b.values().append_value("pg_catalog");
            b.values().append_value(&visible_ns);
            b.append(true);
            Ok(ColumnarValue::Scalar(ScalarValue::List(Arc::new(
                b.finish(),
            ))))
        },
    ));
    out.push(udf("format", DataType::Utf8, |args| {
        // PostgreSQL's format(): %s, %I (identifier), %L (literal), %%.
        let text = |k: usize, i: usize| -> Option<String> {
            let s = arg_at(args, k, i)?;
            if s.is_null() {
                return None;
            }
            Some(match s {
                ScalarValue::Utf8(Some(v))
                | ScalarValue::LargeUtf8(Some(v))
                | ScalarValue::Utf8View(Some(v)) => v,
                other => other.to_string(),
            })
        };
        Ok(text_rows(args, |i| {
            let fmt = text(0, i)?;
            let mut out = String::new();
            let mut next = 1;
            let mut chars = fmt.chars();
            while let Some(c) = chars.next() {
                if c != '%' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('%') => out.push('%'),
                    Some(kind @ ('s' | 'I' | 'L')) => {
                        let v = text(next, i);
                        next += 1;
                        match (kind, v) {
                            ('s', v) => out.push_str(&v.unwrap_or_default()),
                            ('I', Some(v)) => {
                                let plain = v.chars().all(|c| {
                                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
                                });
                                if plain {
                                    out.push_str(&v);
                                } else {
                                    out.push_str(&format!("\"{}\"", v.replace('"', "\"\"")));
                                }
                            }
                            ('L', Some(v)) => out.push_str(&format!("'{}'", v.replace('\'', "''"))),
                            ('L', None) => out.push_str("NULL"),
                            _ => {}
                        }
                    }
                    Some(other) => {
                        out.push('%');
                        out.push(other);
                    }
                    None => out.push('%'),
                }
            }
            Some(out)
        }))
    }));
    out.push(udf("pg_size_pretty", DataType::Utf8, |args| {
        on_oids(
            args,
            |o| o.map(|b| ScalarValue::Utf8(Some(format!("{b} bytes")))),
            &DataType::Utf8,
        )
    }));
    out.push(udf("quote_ident", DataType::Utf8, |args| {
        let s = text_arg(args, 0).unwrap_or_default();
        let plain = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(if plain {
            s
        } else {
            format!("\"{}\"", s.replace('"', "\"\""))
        }))))
    }));
    out
}

/// Plans `statement` (already rewritten) in `ctx`, refusing anything but a query.
///
/// # Errors
/// DataFusion's planning error.
pub async fn plan(
    ctx: &SessionContext,
    statement: Statement,
) -> datafusion::error::Result<LogicalPlan> {
    let state = ctx.state();
    let plan = state
        .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
            statement,
        )))
        .await?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn parse(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_else(|| panic!("parses: {sql}"))
    }

    #[test]
    fn every_catalog_function_is_routed_or_folded() {
        let tables = Vec::new();
        let inputs = Inputs {
            tables: &tables,
            visible: "local.public".into(),
            database: "sluice",
            user: "u",
            pid: 1,
            settings: BTreeMap::new(),
            set_config: Arc::default(),
        };
        let names = names(&tables);
        let folded = [
            "version",
            "current_database",
            "current_catalog",
            "current_schema",
            "current_user",
            "session_user",
            "current_role",
            "user",
            "pg_backend_pid",
            "current_setting",
        ];
        for f in functions(&inputs, &names) {
            let n = f.name();
            assert!(
                is_catalog_function(n) || folded.contains(&n) || n.starts_with("pg_sluice_"),
                "{n} is neither routed to the catalog nor folded"
            );
        }
    }

    #[test]
    fn catalog_statements_are_rewritten_to_what_datafusion_plans() {
        let mut s = parse(
            "SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default AND c.oid = 't'::regclass AND pg_catalog.pg_table_is_visible(c.oid) AND c.reloftype::pg_catalog.regtype::pg_catalog.text = ''",
        );
        rewrite(&mut s);
        let text = s.to_string();
        assert!(text.contains("c.relname ~ '^(t)$'"), "{text}");
        assert!(text.contains("pg_sluice_regclass('t')"), "{text}");
        assert!(text.contains("AND pg_table_is_visible(c.oid)"), "{text}");
        assert!(
            text.contains("CAST(pg_sluice_regtype(c.reloftype) AS TEXT)"),
            "{text}"
        );
        assert!(matches!(route(&s), Route::Catalog));
        assert!(matches!(route(&parse("SELECT 1")), Route::Service));
        assert!(matches!(route(&parse("SELECT version()")), Route::Service));
        assert!(matches!(
            route(&parse("SELECT pg_catalog.format_type(25, -1)")),
            Route::Catalog
        ));
        assert!(matches!(
            route(&parse("SELECT * FROM orders")),
            Route::Service
        ));
    }
}
