//! Which filters a single-table scan sends to its source, and the `SELECT` that carries them.
//!
//! Every filter is classified by how the source's answer relates to DataFusion's:
//! - **exact**: the same rows, so DataFusion does not check it again (and a `LIMIT` can follow
//!   it down);
//! - **inexact**: the source returns every row DataFusion would keep, maybe a few more, so the
//!   filter is pushed *and* re-checked locally;
//! - **local**: anything else stays in DataFusion. A filter the source could evaluate more
//!   strictly than DataFusion is never pushed: it would drop rows.
//!
//! What decides it is the column's [`ColumnClass`]:
//! - [`ColumnClass::Exact`][]: comparisons with literals, exact.
//! - [`ColumnClass::Text`][]: `=`, `<>`, `IN`, `LIKE` exact; ranges are sent in byte order
//!   (PostgreSQL: `COLLATE "C"`), DataFusion's order for UTF-8, so they are exact too.
//! - [`ColumnClass::BoundedText`][]: as text, for literals the source does not cut.
//! - [`ColumnClass::Float`][]: inexact, and only against finite non-zero literals. PostgreSQL
//!   counts `-0` equal to `0` and every NaN equal and greatest; Arrow orders by IEEE total
//!   order. With the literal away from zero and NaN the only remaining difference is a
//!   negative NaN stored in a row.
//! - [`ColumnClass::CanonicalText`][]: exact against literals in canonical form.
//! - [`ColumnClass::Opaque`][]: local.
//!
//! Shapes pushed: `col op literal` (either side), `BETWEEN`, `IN (literals)`, `LIKE`,
//! `IS [NOT] NULL`, a boolean column, `NOT` (of an exact filter only: the complement of a
//! superset is a subset), `AND`/`OR`, and casts of a column the capability table calls exact.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::expr::{InList, Like};
use datafusion::logical_expr::{Between, BinaryExpr, Cast, Expr, Operator};
use datafusion::sql::sqlparser::ast::{self, Ident};
use datafusion::sql::unparser::Unparser;

use super::dialect::SourceDialect;
use super::executor::{ColumnClass, RemoteColumn, RemoteTableDef};

/// How a pushed filter relates to DataFusion's own evaluation of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fidelity {
    /// The source may return extra rows: DataFusion checks the filter again.
    Inexact,
    /// The source returns exactly DataFusion's rows.
    Exact,
}

/// `SELECT <columns> FROM <table> [WHERE <filters>] [LIMIT n]`. Filters that [`render`] cannot
/// express are left out; DataFusion only hands down the ones it was told it could push.
pub fn select_sql(
    dialect: &dyn SourceDialect,
    def: &RemoteTableDef,
    columns: &[usize],
    filters: &[Expr],
    limit: Option<usize>,
) -> String {
    // No columns (count(*)): the source sends rows without values, which is all that is
    // needed, or where its SQL cannot say that, a constant the executor counts the rows of.
    let mut list: Vec<String> = columns
        .iter()
        .filter_map(|&i| def.columns.get(i))
        .map(|c| dialect.select_column(c))
        .collect();
    if list.is_empty() && !dialect.unparser().supports_empty_select_list() {
        list.push("1".to_owned());
    }
    let mut sql = format!(
        "SELECT {}{}FROM {}.{}",
        list.join(", "),
        if list.is_empty() { "" } else { " " },
        dialect.quote(&def.schema),
        dialect.quote(&def.name)
    );
    let conditions: Vec<String> = filters
        .iter()
        .filter_map(|f| render(dialect, f, def))
        .map(|(sql, _)| sql.to_string())
        .collect();
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    if let Some(n) = limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    sql
}

/// The filter as the source's SQL and how faithful it is, or `None` if it stays local.
pub fn render(
    dialect: &dyn SourceDialect,
    filter: &Expr,
    def: &RemoteTableDef,
) -> Option<(ast::Expr, Fidelity)> {
    Render { dialect, def }.expr(filter)
}

fn is_range(op: Operator) -> bool {
    matches!(
        op,
        Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
    )
}

fn is_text_class(c: ColumnClass) -> bool {
    matches!(c, ColumnClass::Text | ColumnClass::BoundedText { .. })
}

struct Render<'a> {
    dialect: &'a dyn SourceDialect,
    def: &'a RemoteTableDef,
}

/// A column operand: its SQL and how it compares.
struct Operand {
    sql: ast::Expr,
    class: ColumnClass,
}

impl Render<'_> {
    fn unparse(&self, e: &Expr) -> Option<ast::Expr> {
        Unparser::new(self.dialect.unparser()).expr_to_sql(e).ok()
    }

    fn column(&self, c: &Column) -> Option<&RemoteColumn> {
        self.def
            .columns
            .iter()
            .find(|d| self.dialect.local_name(&d.name) == c.name)
    }

    fn ident(name: &str) -> ast::Expr {
        ast::Expr::Identifier(Ident::with_quote('"', name))
    }

    /// A column, or a cast of one the capability table calls exact.
    fn operand(&self, e: &Expr) -> Option<Operand> {
        match e {
            Expr::Column(c) => {
                let col = self.column(c)?;
                (col.class != ColumnClass::Opaque && col.read.is_none()).then(|| Operand {
                    sql: Self::ident(&col.name),
                    class: col.class,
                })
            }
            Expr::Cast(Cast { expr, field }) => {
                let Expr::Column(c) = expr.as_ref() else {
                    return None;
                };
                let col = self.column(c)?;
                let to = field.data_type();
                if col.read.is_some() || !(self.dialect.capabilities().cast)(&col.data_type, to) {
                    return None;
                }
                let class = match col.class {
                    // An integer or decimal compared with a float: float semantics.
                    ColumnClass::Exact | ColumnClass::Float if to.is_floating() => {
                        ColumnClass::Float
                    }
                    ColumnClass::Exact
                        if to.is_integer() || matches!(to, DataType::Decimal128(..)) =>
                    {
                        ColumnClass::Exact
                    }
                    _ => return None,
                };
                let cast = Expr::Cast(Cast {
                    expr: Box::new(Expr::Column(Column::new_unqualified(&col.name))),
                    field: field.clone(),
                });
                Some(Operand {
                    sql: self.unparse(&cast)?,
                    class,
                })
            }
            _ => None,
        }
    }

    /// A literal this class can be compared with, as SQL.
    fn literal(&self, e: &Expr, class: ColumnClass) -> Option<ast::Expr> {
        let Expr::Literal(v, _) = e else {
            return None;
        };
        if v.is_null() || !(self.dialect.capabilities().literal)(v) {
            return None;
        }
        let ok = match class {
            ColumnClass::Exact => !matches!(
                v,
                ScalarValue::Utf8(_)
                    | ScalarValue::LargeUtf8(_)
                    | ScalarValue::Utf8View(_)
                    | ScalarValue::Float32(_)
                    | ScalarValue::Float64(_)
            ),
            ColumnClass::Text => text_value(v).is_some(),
            ColumnClass::BoundedText { max_bytes } => {
                text_value(v).is_some_and(|t| t.len() <= max_bytes)
            }
            ColumnClass::Float => match v {
                ScalarValue::Float64(Some(f)) => f.is_finite() && *f != 0.0,
                ScalarValue::Float32(Some(f)) => f.is_finite() && *f != 0.0,
                ScalarValue::Int32(Some(i)) => *i != 0,
                ScalarValue::Int64(Some(i)) => *i != 0,
                _ => false,
            },
            ColumnClass::CanonicalText => text_value(v).is_some_and(is_canonical_uuid),
            ColumnClass::Opaque => false,
        };
        if !ok {
            return None;
        }
        self.unparse(e)
    }

    fn fidelity(class: ColumnClass) -> Fidelity {
        match class {
            ColumnClass::Float => Fidelity::Inexact,
            _ => Fidelity::Exact,
        }
    }

    fn comparison(&self, left: &Expr, op: Operator, right: &Expr) -> Option<(ast::Expr, Fidelity)> {
        let sql_op = binary_op(op)?;
        let (col, col_left) = match (self.operand(left), self.operand(right)) {
            (Some(c), None) => (c, true),
            (None, Some(c)) => (c, false),
            _ => return None,
        };
        let lit = self.literal(if col_left { right } else { left }, col.class)?;
        let col_sql = if is_text_class(col.class) && is_range(op) {
            self.dialect.byte_order(col.sql)
        } else {
            col.sql
        };
        let (l, r) = if col_left {
            (col_sql, lit)
        } else {
            (lit, col_sql)
        };
        Some((
            nested(ast::Expr::BinaryOp {
                left: Box::new(l),
                op: sql_op,
                right: Box::new(r),
            }),
            Self::fidelity(col.class),
        ))
    }

    fn expr(&self, e: &Expr) -> Option<(ast::Expr, Fidelity)> {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And | Operator::Or => {
                    let (l, lf) = self.expr(left)?;
                    let (r, rf) = self.expr(right)?;
                    let op = if *op == Operator::And {
                        ast::BinaryOperator::And
                    } else {
                        ast::BinaryOperator::Or
                    };
                    Some((
                        nested(ast::Expr::BinaryOp {
                            left: Box::new(l),
                            op,
                            right: Box::new(r),
                        }),
                        lf.min(rf),
                    ))
                }
                // Comparisons; anything else has no `binary_op` and stays local.
                op => self.comparison(left, *op, right),
            },
            Expr::Not(inner) => match self.expr(inner)? {
                (sql, Fidelity::Exact) => Some((
                    ast::Expr::UnaryOp {
                        op: ast::UnaryOperator::Not,
                        expr: Box::new(nested(sql)),
                    },
                    Fidelity::Exact,
                )),
                (_, Fidelity::Inexact) => None,
            },
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                let Expr::Column(c) = inner.as_ref() else {
                    return None;
                };
                let col = Self::ident(&self.column(c)?.name);
                let sql = if matches!(e, Expr::IsNull(_)) {
                    ast::Expr::IsNull(Box::new(col))
                } else {
                    ast::Expr::IsNotNull(Box::new(col))
                };
                Some((nested(sql), Fidelity::Exact))
            }
            Expr::Column(c) => {
                let col = self.column(c)?;
                (col.data_type == DataType::Boolean && col.class == ColumnClass::Exact)
                    .then(|| (Self::ident(&col.name), Fidelity::Exact))
            }
            Expr::Between(Between {
                expr,
                negated,
                low,
                high,
            }) => {
                let col = self.operand(expr)?;
                let low = self.literal(low, col.class)?;
                let high = self.literal(high, col.class)?;
                let fidelity = Self::fidelity(col.class);
                if *negated && fidelity != Fidelity::Exact {
                    return None;
                }
                let sql = if is_text_class(col.class) {
                    self.dialect.byte_order(col.sql)
                } else {
                    col.sql
                };
                Some((
                    nested(ast::Expr::Between {
                        expr: Box::new(sql),
                        negated: *negated,
                        low: Box::new(low),
                        high: Box::new(high),
                    }),
                    fidelity,
                ))
            }
            Expr::InList(InList {
                expr,
                list,
                negated,
            }) => {
                let col = self.operand(expr)?;
                let items = list
                    .iter()
                    .map(|i| self.literal(i, col.class))
                    .collect::<Option<Vec<_>>>()?;
                let fidelity = Self::fidelity(col.class);
                if items.is_empty() || (*negated && fidelity != Fidelity::Exact) {
                    return None;
                }
                Some((
                    nested(ast::Expr::InList {
                        expr: Box::new(col.sql),
                        list: items,
                        negated: *negated,
                    }),
                    fidelity,
                ))
            }
            Expr::Like(Like {
                negated,
                expr,
                pattern,
                escape_char: None,
                case_insensitive: false,
            }) => {
                let col = self.operand(expr)?;
                if !is_text_class(col.class) {
                    return None;
                }
                let pattern = self.literal(pattern, ColumnClass::Text)?;
                Some((
                    nested(ast::Expr::Like {
                        negated: *negated,
                        any: false,
                        expr: Box::new(col.sql),
                        pattern: Box::new(pattern),
                        escape_char: None,
                    }),
                    Fidelity::Exact,
                ))
            }
            _ => None,
        }
    }
}

fn binary_op(op: Operator) -> Option<ast::BinaryOperator> {
    Some(match op {
        Operator::Eq => ast::BinaryOperator::Eq,
        Operator::NotEq => ast::BinaryOperator::NotEq,
        Operator::Lt => ast::BinaryOperator::Lt,
        Operator::LtEq => ast::BinaryOperator::LtEq,
        Operator::Gt => ast::BinaryOperator::Gt,
        Operator::GtEq => ast::BinaryOperator::GtEq,
        _ => return None,
    })
}

fn nested(e: ast::Expr) -> ast::Expr {
    ast::Expr::Nested(Box::new(e))
}

fn text_value(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s),
        _ => None,
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lower-case hex: how uuid values are read.
pub fn is_canonical_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::dialect::postgres::PostgresDialect;
    use crate::federation::dialect::snowflake::SnowflakeDialect;
    use crate::federation::executor::ReadAs;
    use datafusion::logical_expr::{cast, col, lit};
    use std::ops::Not;

    fn column(name: &str, data_type: DataType, class: ColumnClass) -> RemoteColumn {
        RemoteColumn::plain(name, data_type, class)
    }

    fn def() -> RemoteTableDef {
        use ColumnClass as C;
        use DataType as D;
        RemoteTableDef {
            schema: "public".into(),
            name: "T".into(),
            view: false,
            rows_estimate: None,
            columns: vec![
                column("id", D::Int32, C::Exact),
                column("name", D::Utf8, C::Text),
                column("price", D::Float64, C::Float),
                column("code", D::Utf8, C::Opaque),
                column(
                    "at",
                    D::Timestamp(
                        datafusion::arrow::datatypes::TimeUnit::Microsecond,
                        Some("UTC".into()),
                    ),
                    C::Exact,
                ),
                column("u", D::Utf8, C::CanonicalText),
                column("ok", D::Boolean, C::Exact),
                column("ci", D::Utf8, C::Opaque),
                column("nm", D::Utf8, C::BoundedText { max_bytes: 63 }),
                column("amount", D::Decimal128(10, 2), C::Exact),
            ],
        }
    }

    fn sql(e: &Expr) -> Option<(String, Fidelity)> {
        render(&PostgresDialect, e, &def()).map(|(s, f)| (s.to_string(), f))
    }

    fn exact(s: &str) -> Option<(String, Fidelity)> {
        Some((s.to_owned(), Fidelity::Exact))
    }

    #[test]
    fn exact_filters_render() {
        assert_eq!(
            sql(&col("id").gt(lit(5)).and(col("name").eq(lit("a'b")))),
            exact("((\"id\" > 5) AND (\"name\" = 'a''b'))")
        );
        assert_eq!(
            sql(&col("name").gt_eq(lit("m"))),
            exact("(\"name\" COLLATE \"C\" >= 'm')")
        );
        assert_eq!(
            sql(&lit(3).lt(col("id"))),
            exact("(3 < \"id\")"),
            "literal on the left"
        );
        assert_eq!(
            sql(&col("name").like(lit("ab%"))),
            exact("(\"name\" LIKE 'ab%')")
        );
        assert_eq!(
            sql(&col("id").in_list(vec![lit(1), lit(2)], true)),
            exact("(\"id\" NOT IN (1, 2))")
        );
        assert_eq!(sql(&col("name").is_null()), exact("(\"name\" IS NULL)"));
        assert_eq!(sql(&col("ok").not()), exact("NOT (\"ok\")"));
        assert_eq!(
            sql(&cast(col("id"), DataType::Int64).eq(lit(7i64))),
            exact("(CAST(\"id\" AS BIGINT) = 7)")
        );
        assert_eq!(
            sql(&col("u").eq(lit("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))),
            exact("(\"u\" = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')")
        );
    }

    #[test]
    fn zoned_timestamps_go_as_utc_wall_time() {
        // 2020-01-01T08:00:00+08:00 is midnight UTC.
        let micros = 1_577_836_800_000_000i64;
        let e = col("at").gt(lit(ScalarValue::TimestampMicrosecond(
            Some(micros),
            Some("+08:00".into()),
        )));
        assert_eq!(
            sql(&e),
            exact("(\"at\" > CAST('2020-01-01 00:00:00' AS TIMESTAMP))")
        );
        let ns = ScalarValue::TimestampNanosecond(Some(micros * 1000 + 1), None);
        assert_eq!(sql(&col("at").gt(lit(ns))), None, "sub-microsecond");
    }

    #[test]
    fn floats_are_inexact_and_only_away_from_zero() {
        assert_eq!(
            sql(&col("price").gt(lit(1.5))),
            Some(("(\"price\" > 1.5)".to_owned(), Fidelity::Inexact))
        );
        assert_eq!(
            sql(&col("id").gt(lit(1)).and(col("price").lt(lit(2.5)))).map(|s| s.1),
            Some(Fidelity::Inexact)
        );
        for local in [
            col("price").lt(lit(0.0)),
            col("price").eq(lit(f64::NAN)),
            col("price").gt(lit(f64::INFINITY)),
            col("price").gt(lit(1.5)).not(),
            col("price").in_list(vec![lit(1.5)], true),
        ] {
            assert_eq!(sql(&local), None, "{local}");
        }
    }

    #[test]
    fn the_rest_stays_local() {
        for local in [
            col("code").eq(lit("a")),                                 // blank padding
            col("ci").eq(lit("a")),                                   // nondeterministic collation
            col("id").gt(col("id")),                                  // no literal
            col("name").ilike(lit("a%")),                             // case folding is locale's
            col("u").eq(lit("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")), // not canonical
            col("id").eq(lit(ScalarValue::Int32(None))),              // NULL literal
            col("id").gt(lit(1)).or(col("code").lt(lit("x"))),
            col("nm").eq(lit("x".repeat(64))), // name: truncated to 63
            col("nm").in_list(vec![lit("a"), lit("y".repeat(70))], false),
            // A decimal cast to an integer truncates in DataFusion and rounds in PostgreSQL.
            cast(col("amount"), DataType::Int64).eq(lit(2i64)),
        ] {
            assert_eq!(sql(&local), None, "{local}");
        }
        // A `name` literal the source keeps whole is pushed as text is.
        assert_eq!(
            sql(&col("nm").eq(lit("x".repeat(63)))),
            exact(&format!("(\"nm\" = '{}')", "x".repeat(63)))
        );
    }

    #[test]
    fn select_quotes_names_reads_columns_and_keeps_row_counts() {
        let mut d = def();
        d.columns.push(RemoteColumn {
            read: Some(ReadAs::Text),
            ..column("mo\"od", DataType::Utf8, ColumnClass::Opaque)
        });
        let sql = select_sql(
            &PostgresDialect,
            &d,
            &[0, 10],
            &[col("id").lt_eq(lit(3))],
            Some(10),
        );
        assert_eq!(
            sql,
            "SELECT \"id\", \"mo\"\"od\"::text FROM \"public\".\"T\" WHERE (\"id\" <= 3) LIMIT 10"
        );
        assert_eq!(
            select_sql(&PostgresDialect, &d, &[], &[], None),
            "SELECT FROM \"public\".\"T\""
        );
        assert_eq!(
            select_sql(&SnowflakeDialect, &d, &[], &[], None),
            "SELECT 1 FROM \"public\".\"T\""
        );
    }
}
