//! Read-only validation: exactly one statement, and a plan with no DDL, DML, COPY or session
//! statements.
//!
//! Two layers on purpose. The parsed statement is checked first, so `CREATE EXTERNAL TABLE`,
//! `COPY` and `SET` are refused before planning could touch anything (planning `CREATE
//! EXTERNAL TABLE` would already list a path). The logical plan is then checked too, which
//! also covers writes hidden in subqueries or CTEs.

use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::error::{PlanError, Result};

/// Longest SQL text accepted, in bytes; longer text is [`PlanError::TooLarge`].
pub const MAX_SQL_BYTES: usize = 1 << 20;
/// Deepest nesting the parser accepts (parentheses, subqueries, expressions); deeper is a
/// clear `sql_invalid`. The query runtime's stack is sized for what this allows
/// (`QUERY_THREAD_STACK_BYTES`).
pub const MAX_NESTING: usize = 64;
/// Most set-operation branches (`UNION`/`INTERSECT`/`EXCEPT`) in one statement. A left-deep
/// chain of set operations is not nesting to the parser but is to every pass after it.
pub const MAX_SET_BRANCHES: usize = 1024;
/// Deepest expression accepted, counted in operators: a chain of 1,000 `OR`s or `+`s is fine.
pub const MAX_EXPR_DEPTH: usize = 1024;

/// Parses `sql` into exactly one statement that can only read.
pub fn parse_single_read_only(sql: &str) -> Result<Statement> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(PlanError::TooLarge(format!(
            "the SQL text is {} bytes; at most {MAX_SQL_BYTES} are accepted",
            sql.len()
        )));
    }
    if sql.trim().trim_end_matches(';').trim().is_empty() {
        return Err(PlanError::Empty);
    }
    let dialect = GenericDialect {};
    let mut parser = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .with_recursion_limit(MAX_NESTING)
        .build()
        .map_err(PlanError::Parse)?;
    let mut statements = parser.parse_statements().map_err(|e| match e.find_root() {
        datafusion::error::DataFusionError::SQL(err, _)
            if matches!(
                err.as_ref(),
                datafusion::sql::sqlparser::parser::ParserError::RecursionLimitExceeded
            ) =>
        {
            PlanError::TooDeep(format!(
                "the statement nests deeper than {MAX_NESTING} levels (parentheses, subqueries or operators)"
            ))
        }
        _ => PlanError::Parse(e),
    })?;
    let statement = match (statements.pop_front(), statements.len()) {
        (Some(s), 0) => s,
        (None, _) => return Err(PlanError::Empty),
        (Some(_), rest) => return Err(PlanError::MultipleStatements(rest + 1)),
    };
    check_shape(&statement)?;
    check_statement(&statement)?;
    let mut statement = statement;
    number_question_marks(&mut statement)?;
    Ok(statement)
}

/// JDBC's and ODBC's `?` placeholders become `$1`, `$2`, ... in the order they are written,
/// in the syntax tree (never the text), so positional parameters bind to them. A statement that
/// mixes `?` with `$n` is refused: which value goes where would be a guess.
fn number_question_marks(statement: &mut Statement) -> Result<()> {
    match statement {
        Statement::Statement(s) => {
            let (mut marks, mut numbered) = (0_usize, 0_usize);
            let _ = ast::visit_expressions(s.as_ref(), |e| {
                if let ast::Expr::Value(v) = e
                    && let ast::Value::Placeholder(p) = &v.value
                {
                    if p == "?" {
                        marks += 1;
                    } else {
                        numbered += 1;
                    }
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            if marks > 0 && numbered > 0 {
                return Err(PlanError::Params(
                    "the statement mixes `?` and `$n` (or `:name`) placeholders; use one kind"
                        .to_owned(),
                ));
            }
            if marks == 0 {
                return Ok(());
            }
            let mut n = 0_usize;
            let _ = ast::visit_expressions_mut(s.as_mut(), |e| {
                if let ast::Expr::Value(v) = e
                    && let ast::Value::Placeholder(p) = &mut v.value
                    && p == "?"
                {
                    n += 1;
                    *p = format!("${n}");
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            Ok(())
        }
        Statement::Explain(e) => number_question_marks(&mut e.statement),
        _ => Ok(()),
    }
}

fn check_statement(statement: &Statement) -> Result<()> {
    match statement {
        Statement::Statement(s) => check_reads(s),
        Statement::Explain(e) => check_statement(&e.statement),
        Statement::CreateExternalTable(_) => {
            Err(PlanError::ReadOnly("CREATE EXTERNAL TABLE".to_owned()))
        }
        Statement::CopyTo(_) => Err(PlanError::ReadOnly("COPY".to_owned())),
        Statement::Reset(_) => Err(PlanError::ReadOnly("RESET".to_owned())),
    }
}

/// The statement kinds that only read: queries, and the catalog statements DataFusion
/// answers from `information_schema` (`SHOW TABLES`, `SHOW COLUMNS`, `SHOW <variable>`,
/// `SHOW FUNCTIONS`, `SHOW CREATE`, `DESCRIBE`). `EXPLAIN` reads when what it explains does.
fn reads(s: &ast::Statement) -> bool {
    matches!(
        s,
        ast::Statement::Query(_)
            | ast::Statement::ShowTables { .. }
            | ast::Statement::ShowColumns { .. }
            | ast::Statement::ShowVariable { .. }
            | ast::Statement::ShowFunctions { .. }
            | ast::Statement::ShowCreate { .. }
            | ast::Statement::ExplainTable { .. }
    )
}

/// Every statement in `s`, `s` itself first, must read: this refuses a write at the top, under
/// `EXPLAIN` (ANALYZE runs it), and hidden inside a read, as `WITH x AS (...) INSERT ...`, a
/// CTE that deletes or a set operation with an `UPDATE` branch, which the parser nests as
/// statements in the query body.
fn check_reads(s: &ast::Statement) -> Result<()> {
    use std::ops::ControlFlow;
    let found = ast::visit_statements(s, |inner| {
        if reads(inner) || matches!(inner, ast::Statement::Explain { .. }) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(statement_kind(inner))
        }
    });
    match found {
        ControlFlow::Break(kind) => Err(PlanError::ReadOnly(kind)),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Bounds the shapes the parser builds without recursing, which every later pass then walks
/// recursively: set-operation branches (`a UNION b UNION c ...`) and left-deep operator
/// chains (`1 + 1 + ...`, `x = 1 OR x = 2 OR ...`, `v::int::int...`). The walk itself stops
/// at the limit, so it never recurses deeper than what it allows.
fn check_shape(statement: &Statement) -> Result<()> {
    match statement {
        Statement::Statement(s) => check_ast_shape(s),
        Statement::Explain(e) => check_shape(&e.statement),
        _ => Ok(()),
    }
}

/// [`check_shape`] for a statement a door parsed itself (the PostgreSQL protocol's), before it
/// walks the tree: deeper than the limits is [`PlanError::TooDeep`].
///
/// # Errors
/// [`PlanError::TooDeep`].
pub fn check_ast_shape(statement: &ast::Statement) -> Result<()> {
    use std::ops::ControlFlow;
    struct Shape {
        branches: usize,
        depth: usize,
    }
    impl ast::Visitor for Shape {
        type Break = String;
        fn pre_visit_query(&mut self, query: &ast::Query) -> ControlFlow<String> {
            self.branches = self.branches.saturating_add(branches(&query.body));
            if self.branches > MAX_SET_BRANCHES {
                return ControlFlow::Break(format!(
                    "the statement has more than {MAX_SET_BRANCHES} UNION/INTERSECT/EXCEPT branches"
                ));
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, _: &ast::Expr) -> ControlFlow<String> {
            self.depth += 1;
            if self.depth > MAX_EXPR_DEPTH {
                return ControlFlow::Break(format!(
                    "an expression in the statement nests deeper than {MAX_EXPR_DEPTH} operators"
                ));
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, _: &ast::Expr) -> ControlFlow<String> {
            self.depth = self.depth.saturating_sub(1);
            ControlFlow::Continue(())
        }
    }
    fn branches(e: &ast::SetExpr) -> usize {
        // Left-deep chains (how the parser builds `a UNION b UNION c`) are walked in a loop.
        let mut count = 1usize;
        let mut cur = e;
        while let ast::SetExpr::SetOperation { left, right, .. } = cur {
            count = count.saturating_add(match right.as_ref() {
                ast::SetExpr::SetOperation { .. } => branches(right),
                _ => 1,
            });
            if count > MAX_SET_BRANCHES {
                break;
            }
            cur = left;
        }
        count
    }
    use ast::Visit as _;
    match statement.visit(&mut Shape {
        branches: 0,
        depth: 0,
    }) {
        ControlFlow::Break(m) => Err(PlanError::TooDeep(m)),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// The leading keywords of a statement, for messages (`INSERT`, `CREATE TABLE`, ...).
fn statement_kind(s: &ast::Statement) -> String {
    let text = s.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [first, second, ..]
            if matches!(
                first.to_ascii_uppercase().as_str(),
                "CREATE" | "DROP" | "ALTER" | "SHOW" | "TRUNCATE"
            ) =>
        {
            format!(
                "{} {}",
                first.to_ascii_uppercase(),
                second.to_ascii_uppercase()
            )
        }
        [first, ..] => first.to_ascii_uppercase(),
        [] => "this statement".to_owned(),
    }
}

/// Refuses plans that write or change state, wherever they hide.
pub fn check_plan(plan: &LogicalPlan) -> Result<()> {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(plan)
        .map_err(|e| PlanError::ReadOnly(e.strip_backtrace()))
}

/// True when every scalar function in `plan` (subqueries included) is immutable: the same
/// data gives the same answer. `random()`, `uuid()` (volatile) and `now()`,
/// `current_date` (stable: one value per statement) are not.
pub fn is_immutable(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Expr, Volatility};
    let changing = |e: &Expr| {
        Ok(matches!(e, Expr::ScalarFunction(f)
            if f.func.signature().volatility != Volatility::Immutable))
    };
    let mut immutable = true;
    // Walking a plan in memory does not fail; an error would only end the walk early.
    let _ = plan.apply_with_subqueries(|node| {
        if node
            .expressions()
            .iter()
            .any(|e| e.exists(changing).unwrap_or(true))
        {
            immutable = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    immutable
}

/// The statement in a canonical spelling (keywords, spacing, comments gone), for keying
/// results of the same statement written differently; `None` when it does not parse.
pub fn normalized(sql: &str) -> Option<String> {
    parse_single_read_only(sql).ok().map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_are_numbered_in_order_and_never_mixed() {
        let s = parse_single_read_only("SELECT ? AS a FROM t WHERE x = ? AND y IN (?, ?)").unwrap();
        let text = s.to_string();
        for (i, n) in ["$1", "$2", "$3", "$4"].iter().enumerate() {
            assert!(text.contains(n), "{i}: {text}");
        }
        assert!(!text.contains('?'), "{text}");
        let s = parse_single_read_only("EXPLAIN SELECT * FROM t WHERE x = ?").unwrap();
        assert!(s.to_string().contains("$1"), "{s}");
        assert!(matches!(
            parse_single_read_only("SELECT $1, ?"),
            Err(PlanError::Params(_))
        ));
        // Inside a string it is text, not a placeholder.
        let s = parse_single_read_only("SELECT '?' AS q").unwrap();
        assert!(s.to_string().contains("'?'"), "{s}");
    }

    #[test]
    fn accepts_queries() {
        for sql in [
            "SELECT 1",
            "select * from t;",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "EXPLAIN SELECT 1",
            "VALUES (1), (2)",
        ] {
            parse_single_read_only(sql).unwrap();
        }
    }

    #[test]
    fn rejects_empty_multiple_and_writes() {
        assert!(matches!(
            parse_single_read_only("  ;"),
            Err(PlanError::Empty)
        ));
        assert!(matches!(
            parse_single_read_only("-- hi"),
            Err(PlanError::Empty)
        ));
        assert!(matches!(
            parse_single_read_only("SELECT 1; SELECT 2"),
            Err(PlanError::MultipleStatements(2))
        ));
        for (sql, kind) in [
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("DELETE FROM t", "DELETE"),
            ("UPDATE t SET a = 1", "UPDATE"),
            ("DROP TABLE t", "DROP TABLE"),
            ("CREATE TABLE t (a INT)", "CREATE TABLE"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            (
                "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc'",
                "CREATE EXTERNAL TABLE",
            ),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("EXPLAIN INSERT INTO t VALUES (1)", "INSERT"),
        ] {
            match parse_single_read_only(sql) {
                Err(PlanError::ReadOnly(k)) => assert_eq!(k, kind, "{sql}"),
                other => panic!("{sql}: {other:?}"),
            }
        }
    }

    #[test]
    fn parse_errors_are_parse_errors() {
        assert!(matches!(
            parse_single_read_only("SELEC 1"),
            Err(PlanError::Parse(_))
        ));
    }
}
