//! Which filters go to PostgreSQL, and the `SELECT` that carries them.
//!
//! Every filter is classified by how PostgreSQL's answer relates to DataFusion's:
//! - **exact**: the same rows, so DataFusion does not check it again (and a `LIMIT` can follow
//!   it down);
//! - **inexact**: PostgreSQL returns every row DataFusion would keep, maybe a few more, so the
//!   filter is pushed *and* re-checked locally;
//! - **local**: anything else stays in DataFusion. A filter PostgreSQL could evaluate more
//!   strictly than DataFusion is never pushed: it would drop rows.
//!
//! What decides it, per column type (remote sessions run with `TimeZone = 'UTC'` and
//! `standard_conforming_strings = on`, see [`super::scan`]):
//! - integers, `numeric(p, s)`, `bool`, `date`, `time`, `timestamp`, `timestamptz`: exact.
//!   Zoned timestamp literals are sent as their UTC wall time, which the UTC session reads back
//!   as the same instant (the unparser would otherwise drop their offset).
//! - text under a deterministic collation: `=`, `<>`, `IN`, `LIKE` exact; ranges are sent as
//!   `col COLLATE "C" < '…'`, byte order, which is DataFusion's order for UTF-8, so they are
//!   exact too, whatever the column's collation (at the cost of its index, unless that is `C`).
//! - `float4`/`float8`: inexact, and only against finite non-zero literals. PostgreSQL counts
//!   `-0` equal to `0` and every NaN equal and greatest; Arrow orders by IEEE total order. With
//!   the literal away from zero and NaN the only remaining difference is a negative NaN stored
//!   in a row, which PostgreSQL never produces from its own arithmetic but keeps if inserted.
//! - `uuid` (read as its canonical text): exact against a literal in canonical form
//!   (PostgreSQL's byte order of a uuid is the order of that text).
//! - everything else (`char(n)`, unconstrained `numeric`, intervals, JSON, arrays, bytea, types
//!   read as text): local. Unconstrained `numeric` values are rounded to scale 10 on the way
//!   in, so PostgreSQL would compare other numbers than DataFusion.
//!
//! Shapes pushed: `col op literal` (either side), `BETWEEN`, `IN (literals)`, `LIKE`,
//! `IS [NOT] NULL`, a boolean column, `NOT` (of an exact filter only: the complement of a
//! superset is a subset), `AND`/`OR`, and widening numeric casts of a column.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::expr::{InList, Like};
use datafusion::logical_expr::{Between, BinaryExpr, Cast, Expr, Operator};
use datafusion::sql::sqlparser::ast::{self, Ident, ObjectName};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::PostgreSqlDialect;

use super::types::PgType;
use super::{PgColumn, PgTableDef};

/// How a pushed filter relates to DataFusion's own evaluation of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fidelity {
    /// PostgreSQL may return extra rows: DataFusion checks the filter again.
    Inexact,
    /// PostgreSQL returns exactly DataFusion's rows.
    Exact,
}

/// A double-quoted identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `SELECT <columns> FROM <table> [WHERE <filters>] [LIMIT n]`. Filters that [`render`] cannot
/// express are left out; DataFusion only hands down the ones it was told it could push.
pub fn select_sql(
    def: &PgTableDef,
    columns: &[usize],
    filters: &[Expr],
    limit: Option<usize>,
) -> String {
    // No columns (count(*)): PostgreSQL sends rows without values, which is all that is needed.
    let list: Vec<String> = columns
        .iter()
        .filter_map(|&i| def.columns.get(i))
        .map(|c| c.ty.select_expr(&quote(&c.name)))
        .collect();
    let mut sql = format!(
        "SELECT {}{}FROM {}.{}",
        list.join(", "),
        if list.is_empty() { "" } else { " " },
        quote(&def.schema),
        quote(&def.name)
    );
    let conditions: Vec<String> = filters
        .iter()
        .filter_map(|f| render(f, def))
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

/// The filter as PostgreSQL SQL and how faithful it is, or `None` if it stays local.
pub fn render(filter: &Expr, def: &PgTableDef) -> Option<(ast::Expr, Fidelity)> {
    Render { def }.expr(filter)
}

/// How a column's values compare in PostgreSQL, relative to DataFusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Equality and order agree.
    Ordered,
    /// Deterministic text: equality agrees, order agrees under `COLLATE "C"`.
    Text,
    /// `name`: as text, for literals PostgreSQL does not truncate (at most 63 bytes).
    Name,
    /// Floats: agree away from zero and NaN.
    Float,
    /// A uuid read as text: agrees for literals in canonical form.
    Uuid,
}

/// PostgreSQL's `NAMEDATALEN - 1`: a longer `name` literal is cut to this many bytes.
const NAME_MAX_BYTES: usize = 63;

impl Class {
    fn is_text(self) -> bool {
        matches!(self, Self::Text | Self::Name)
    }
}

fn class(c: &PgColumn) -> Option<Class> {
    match c.ty {
        PgType::Bool
        | PgType::Int2
        | PgType::Int4
        | PgType::Int8
        | PgType::Numeric { .. }
        | PgType::Date
        | PgType::Time
        | PgType::Timestamp
        | PgType::Timestamptz => Some(Class::Ordered),
        PgType::Text if c.deterministic => Some(Class::Text),
        PgType::Name if c.deterministic => Some(Class::Name),
        // `citext` compares case-insensitively: `= 'abc'` would match `ABC` remotely and not
        // locally, so nothing on it is pushed.
        PgType::Float4 | PgType::Float8 => Some(Class::Float),
        PgType::Uuid => Some(Class::Uuid),
        _ => None,
    }
}

fn is_range(op: Operator) -> bool {
    matches!(
        op,
        Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
    )
}

struct Render<'a> {
    def: &'a PgTableDef,
}

/// A column operand: its SQL and how it compares.
struct Operand {
    sql: ast::Expr,
    class: Class,
}

impl Render<'_> {
    fn unparse(&self, e: &Expr) -> Option<ast::Expr> {
        Unparser::new(&PostgreSqlDialect {}).expr_to_sql(e).ok()
    }

    fn column(&self, c: &Column) -> Option<&PgColumn> {
        self.def.columns.iter().find(|d| d.name == c.name)
    }

    fn ident(name: &str) -> ast::Expr {
        ast::Expr::Identifier(Ident::with_quote('"', name))
    }

    /// A column, or a widening numeric cast of one.
    fn operand(&self, e: &Expr) -> Option<Operand> {
        match e {
            Expr::Column(c) => {
                let col = self.column(c)?;
                Some(Operand {
                    sql: Self::ident(&col.name),
                    class: class(col)?,
                })
            }
            Expr::Cast(Cast { expr, field }) => {
                let Expr::Column(c) = expr.as_ref() else {
                    return None;
                };
                let col = self.column(c)?;
                let to = field.data_type();
                let class = match (class(col)?, &col.ty) {
                    (
                        Class::Ordered,
                        PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric { .. },
                    ) if to.is_integer() || matches!(to, DataType::Decimal128(..)) => {
                        Class::Ordered
                    }
                    // An integer or float compared with a float: float semantics.
                    (Class::Ordered | Class::Float, _) if to.is_floating() => Class::Float,
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
    fn literal(&self, e: &Expr, class: Class) -> Option<ast::Expr> {
        let Expr::Literal(v, _) = e else {
            return None;
        };
        if v.is_null() {
            return None;
        }
        let ok = match class {
            Class::Ordered => {
                matches!(
                    v,
                    ScalarValue::Boolean(_)
                        | ScalarValue::Int8(_)
                        | ScalarValue::Int16(_)
                        | ScalarValue::Int32(_)
                        | ScalarValue::Int64(_)
                        | ScalarValue::UInt8(_)
                        | ScalarValue::UInt16(_)
                        | ScalarValue::UInt32(_)
                        | ScalarValue::UInt64(_)
                        | ScalarValue::Decimal128(..)
                        | ScalarValue::Date32(_)
                        | ScalarValue::Time32Second(_)
                        | ScalarValue::Time32Millisecond(_)
                        | ScalarValue::Time64Microsecond(_)
                        | ScalarValue::TimestampSecond(..)
                        | ScalarValue::TimestampMillisecond(..)
                        | ScalarValue::TimestampMicrosecond(..)
                ) || whole_micros(v)
            }
            Class::Text => text_value(v).is_some(),
            Class::Name => text_value(v).is_some_and(|t| t.len() <= NAME_MAX_BYTES),
            Class::Float => match v {
                ScalarValue::Float64(Some(f)) => f.is_finite() && *f != 0.0,
                ScalarValue::Float32(Some(f)) => f.is_finite() && *f != 0.0,
                ScalarValue::Int32(Some(i)) => *i != 0,
                ScalarValue::Int64(Some(i)) => *i != 0,
                _ => false,
            },
            Class::Uuid => text_value(v).is_some_and(is_canonical_uuid),
        };
        if !ok {
            return None;
        }
        self.unparse(&Expr::Literal(utc_wall_time(v)?, None))
    }

    fn comparison(&self, left: &Expr, op: Operator, right: &Expr) -> Option<(ast::Expr, Fidelity)> {
        let sql_op = binary_op(op)?;
        let (col, col_left) = match (self.operand(left), self.operand(right)) {
            (Some(c), None) => (c, true),
            (None, Some(c)) => (c, false),
            _ => return None,
        };
        let lit = self.literal(if col_left { right } else { left }, col.class)?;
        let fidelity = match col.class {
            Class::Float => Fidelity::Inexact,
            _ => Fidelity::Exact,
        };
        let col_sql = if col.class.is_text() && is_range(op) {
            collate_c(col.sql)
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
            fidelity,
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
                (col.ty == PgType::Bool).then(|| (Self::ident(&col.name), Fidelity::Exact))
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
                let fidelity = if col.class == Class::Float {
                    Fidelity::Inexact
                } else {
                    Fidelity::Exact
                };
                if *negated && fidelity != Fidelity::Exact {
                    return None;
                }
                let sql = if col.class.is_text() {
                    collate_c(col.sql)
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
                let fidelity = if col.class == Class::Float {
                    Fidelity::Inexact
                } else {
                    Fidelity::Exact
                };
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
                if !col.class.is_text() {
                    return None;
                }
                let pattern = self.literal(pattern, Class::Text)?;
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

fn collate_c(e: ast::Expr) -> ast::Expr {
    ast::Expr::Collate {
        expr: Box::new(e),
        collation: ObjectName::from(vec![Ident::with_quote('"', "C")]),
    }
}

fn text_value(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s),
        _ => None,
    }
}

/// Nanosecond timestamps and times PostgreSQL (microseconds) holds without rounding.
fn whole_micros(v: &ScalarValue) -> bool {
    match v {
        ScalarValue::TimestampNanosecond(Some(n), _) | ScalarValue::Time64Nanosecond(Some(n)) => {
            n % 1000 == 0
        }
        _ => false,
    }
}

/// A zoned timestamp literal as the same instant's UTC wall time without a zone: the remote
/// session's `TimeZone` is UTC, so PostgreSQL reads it back as that instant. Everything else
/// is returned as it is.
fn utc_wall_time(v: &ScalarValue) -> Option<ScalarValue> {
    Some(match v {
        ScalarValue::TimestampSecond(t, Some(_)) => ScalarValue::TimestampSecond(*t, None),
        ScalarValue::TimestampMillisecond(t, Some(_)) => {
            ScalarValue::TimestampMillisecond(*t, None)
        }
        ScalarValue::TimestampMicrosecond(t, Some(_)) => {
            ScalarValue::TimestampMicrosecond(*t, None)
        }
        ScalarValue::TimestampNanosecond(t, Some(_)) => ScalarValue::TimestampNanosecond(*t, None),
        other => other.clone(),
    })
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lower-case hex: how uuid values are read.
fn is_canonical_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{cast, col, lit};
    use std::ops::Not;

    fn def() -> PgTableDef {
        let c = |name: &str, ty| PgColumn {
            name: name.into(),
            ty,
            nullable: true,
            deterministic: true,
        };
        PgTableDef {
            schema: "public".into(),
            name: "T".into(),
            view: false,
            columns: vec![
                c("id", PgType::Int4),
                c("name", PgType::Text),
                c("price", PgType::Float8),
                c("code", PgType::Bpchar),
                c("at", PgType::Timestamptz),
                c("u", PgType::Uuid),
                c("ok", PgType::Bool),
                PgColumn {
                    deterministic: false,
                    ..c("ci", PgType::Text)
                },
                c("nm", PgType::Name),
                c("ct", PgType::CiText),
            ],
        }
    }

    fn sql(e: &Expr) -> Option<(String, Fidelity)> {
        render(e, &def()).map(|(s, f)| (s.to_string(), f))
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
            col("ct").eq(lit("abc")), // citext: case-insensitive
            col("ct").like(lit("a%")),
            col("ct").in_list(vec![lit("a")], false),
            col("nm").eq(lit("x".repeat(64))), // name: truncated to 63
            col("nm").in_list(vec![lit("a"), lit("y".repeat(70))], false),
        ] {
            assert_eq!(sql(&local), None, "{local}");
        }
        // A `name` literal PostgreSQL keeps whole is pushed as text is.
        assert_eq!(
            sql(&col("nm").eq(lit("x".repeat(63)))),
            exact(&format!("(\"nm\" = '{}')", "x".repeat(63)))
        );
    }

    #[test]
    fn select_quotes_names_casts_text_types_and_keeps_row_counts() {
        let mut d = def();
        d.columns.push(PgColumn {
            name: "mo\"od".into(),
            ty: PgType::AsText,
            nullable: true,
            deterministic: true,
        });
        let sql = select_sql(&d, &[0, 10], &[col("id").lt_eq(lit(3))], Some(10));
        assert_eq!(
            sql,
            "SELECT \"id\", \"mo\"\"od\"::text FROM \"public\".\"T\" WHERE (\"id\" <= 3) LIMIT 10"
        );
        assert_eq!(
            select_sql(&d, &[], &[], None),
            "SELECT FROM \"public\".\"T\""
        );
    }
}
