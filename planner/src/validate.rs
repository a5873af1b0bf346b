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

/// Parses `sql` into exactly one statement that can only read.
pub fn parse_single_read_only(sql: &str) -> Result<Statement> {
    if sql.trim().trim_end_matches(';').trim().is_empty() {
        return Err(PlanError::Empty);
    }
    let dialect = GenericDialect {};
    let mut parser = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .build()
        .map_err(PlanError::Parse)?;
    let mut statements = parser.parse_statements().map_err(PlanError::Parse)?;
    let statement = match (statements.pop_front(), statements.len()) {
        (Some(s), 0) => s,
        (None, _) => return Err(PlanError::Empty),
        (Some(_), rest) => return Err(PlanError::MultipleStatements(rest + 1)),
    };
    check_statement(&statement)?;
    Ok(statement)
}

fn check_statement(statement: &Statement) -> Result<()> {
    match statement {
        Statement::Statement(s) => match s.as_ref() {
            ast::Statement::Query(_) => Ok(()),
            // EXPLAIN of a query is read-only; EXPLAIN ANALYZE runs it, which is still a read.
            ast::Statement::Explain { statement, .. } => {
                check_statement(&Statement::Statement(statement.clone()))
            }
            other => Err(PlanError::ReadOnly(statement_kind(other))),
        },
        Statement::Explain(e) => check_statement(&e.statement),
        Statement::CreateExternalTable(_) => {
            Err(PlanError::ReadOnly("CREATE EXTERNAL TABLE".to_owned()))
        }
        Statement::CopyTo(_) => Err(PlanError::ReadOnly("COPY".to_owned())),
        Statement::Reset(_) => Err(PlanError::ReadOnly("RESET".to_owned())),
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

#[cfg(test)]
mod tests {
    use super::*;

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
