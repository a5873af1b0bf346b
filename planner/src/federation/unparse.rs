//! A pushed-down subtree as one statement in its source's SQL.
//!
//! Every operator becomes (part of) a `SELECT` whose output columns are named `c0`, `c1`, …
//! in the subtree's column order; an operator that cannot share its input's `SELECT` (a filter
//! above a `LIMIT`, an aggregate above a `DISTINCT`) reads it as a derived table with an alias
//! of its own. So no column reference ever depends on a qualifier the plan happened to carry,
//! and same-named tables, self joins and nested subqueries cannot be confused. Operators merge
//! into their input's `SELECT` where SQL's clause order allows (`WHERE`, `GROUP BY`,
//! `HAVING`, window functions, `ORDER BY`, `LIMIT`), so ordinary queries read as one level per
//! aggregation. Expressions are written by DataFusion's `Unparser` with the source's dialect.
//!
//! Before that, the subtree is prepared for the dialect: every ordering use of text (range
//! comparisons, `BETWEEN`, sort keys, window order, `min`/`max`) is marked for byte order,
//! DataFusion's order of UTF-8, and typed `NULL` literals keep their type.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result as DfResult, ScalarValue, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    Aggregate, Between, BinaryExpr, Cast, Distinct, Expr, ExprSchemable, Filter, Join, JoinType,
    Limit, LogicalPlan, Projection, Sort, SortExpr, TableScan, Window, WindowFunctionDefinition,
};
use datafusion::sql::unparser::Unparser;

use super::capability::{Reason, unalias};
use super::dialect::SourceDialect;
use super::placeholders;
use super::table::RemoteTable;

/// The statement that computes `plan` at its source, and the order of its rows when the
/// statement ends with `ORDER BY` over its own columns: `(column, ascending, nulls first)`.
///
/// # Errors
/// The reason it cannot be expressed.
pub fn subtree_sql(
    plan: &LogicalPlan,
    dialect: &dyn SourceDialect,
) -> Result<(String, Ordering), Reason> {
    let prepared = prepare(plan.clone()).map_err(|e| format!("preparing the SQL failed: {e}"))?;
    let mut g = Gen {
        dialect,
        unparser: Unparser::new(dialect.unparser()),
        aliases: 0,
    };
    let level = g.level(&prepared)?;
    if level.order_lost {
        return Err("its row order cannot be kept through a derived table".into());
    }
    let ordering = level
        .order_by
        .iter()
        .map(|k| {
            level
                .items
                .iter()
                .position(|i| unalias(i) == unalias(&k.expr))
                .map(|i| (i, k.asc, k.nulls_first))
        })
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default();
    Ok((g.render(&level)?, ordering))
}

/// The order of a statement's rows: `(output column, ascending, nulls first)` per key.
pub type Ordering = Vec<(usize, bool, bool)>;

/// A condition of a `SELECT`: an expression, or SQL already written (`EXISTS (…)`).
#[derive(Debug, Clone)]
enum Cond {
    Expr(Expr),
    Sql(String),
}

/// A `SELECT` being built.
#[derive(Debug, Clone, Default)]
struct Level {
    /// The `FROM` clause, aliases included.
    from: String,
    /// Output columns, over the `FROM`'s aliases.
    items: Vec<Expr>,
    filters: Vec<Cond>,
    group_by: Option<Vec<Expr>>,
    having: Vec<Expr>,
    order_by: Vec<SortExpr>,
    limit: Option<Expr>,
    offset: Option<Expr>,
    distinct: bool,
    windowed: bool,
    /// An order was there but could not be carried through a derived table.
    order_lost: bool,
}

impl Level {
    /// Only a `FROM` and plain columns: usable directly as a join input.
    fn is_plain(&self) -> bool {
        self.filters.is_empty()
            && self.group_by.is_none()
            && self.having.is_empty()
            && self.order_by.is_empty()
            && self.limit.is_none()
            && self.offset.is_none()
            && !self.distinct
            && !self.windowed
            && self
                .items
                .iter()
                .all(|i| matches!(unalias(i), Expr::Column(_)))
    }

    fn is_limited(&self) -> bool {
        self.limit.is_some() || self.offset.is_some()
    }
}

struct Gen<'a> {
    dialect: &'a dyn SourceDialect,
    unparser: Unparser<'a>,
    aliases: usize,
}

fn col_name(i: usize) -> String {
    format!("c{i}")
}

impl Gen<'_> {
    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("s{}", self.aliases)
    }

    fn sql(&self, e: &Expr) -> Result<String, Reason> {
        self.unparser
            .expr_to_sql(e)
            .map(|a| a.to_string())
            .map_err(|err| format!("{e} cannot be written as SQL: {}", err.strip_backtrace()))
    }

    /// A grouping or ordering key: a constant is cast, so it is never read as a position.
    fn key_sql(&self, e: &Expr) -> Result<String, Reason> {
        match unalias(e) {
            Expr::Literal(v, _) => {
                let t = v.data_type();
                self.sql(&Expr::Cast(Cast::new(Box::new(unalias(e).clone()), t)))
            }
            other => self.sql(other),
        }
    }

    /// `e` with every `sum`, plain or over a window, cast to the type DataFusion gives it,
    /// where the dialect asks for that ([`super::SourceDialect::pins_sum_types`]).
    fn pinned(&self, e: &Expr, schema: &DFSchema) -> Expr {
        if !self.dialect.pins_sum_types() {
            return e.clone();
        }
        e.clone()
            .transform_up(|e| {
                let sum = match &e {
                    Expr::AggregateFunction(AggregateFunction { func, .. }) => func.name() == "sum",
                    Expr::WindowFunction(w) => matches!(
                        &w.fun,
                        WindowFunctionDefinition::AggregateUDF(f) if f.name() == "sum"
                    ),
                    _ => false,
                };
                if sum && let Ok(t) = e.get_type(schema) {
                    return Ok(Transformed::yes(Expr::Cast(Cast::new(Box::new(e), t))));
                }
                Ok(Transformed::no(e))
            })
            .map_or_else(|_| e.clone(), |t| t.data)
    }

    fn render(&self, l: &Level) -> Result<String, Reason> {
        let items = l
            .items
            .iter()
            .enumerate()
            .map(|(i, e)| {
                Ok(format!(
                    "{} AS {}",
                    self.sql(unalias(e))?,
                    self.dialect.quote(&col_name(i))
                ))
            })
            .collect::<Result<Vec<_>, Reason>>()?;
        // No columns: rows without values where the dialect allows it, else a constant
        // whose rows the executor counts (it expects no columns).
        let list = if items.is_empty() && !self.dialect.unparser().supports_empty_select_list() {
            "1".to_owned()
        } else {
            items.join(", ")
        };
        let head = format!("SELECT {}{list}", if l.distinct { "DISTINCT " } else { "" });
        let mut sql = format!("{} FROM {}", head.trim_end(), l.from);
        let conds = l
            .filters
            .iter()
            .map(|c| match c {
                Cond::Expr(e) => self.sql(e).map(|s| format!("({s})")),
                Cond::Sql(s) => Ok(s.clone()),
            })
            .collect::<Result<Vec<_>, Reason>>()?;
        if !conds.is_empty() {
            sql.push_str(&format!(" WHERE {}", conds.join(" AND ")));
        }
        if let Some(keys) = &l.group_by
            && !keys.is_empty()
        {
            let keys = keys
                .iter()
                .map(|k| self.key_sql(k))
                .collect::<Result<Vec<_>, Reason>>()?;
            sql.push_str(&format!(" GROUP BY {}", keys.join(", ")));
        }
        if !l.having.is_empty() {
            let conds = l
                .having
                .iter()
                .map(|e| self.sql(e).map(|s| format!("({s})")))
                .collect::<Result<Vec<_>, Reason>>()?;
            sql.push_str(&format!(" HAVING {}", conds.join(" AND ")));
        }
        if !l.order_by.is_empty() {
            let keys = l
                .order_by
                .iter()
                .map(|k| {
                    Ok(format!(
                        "{} {} NULLS {}",
                        self.key_sql(&k.expr)?,
                        if k.asc { "ASC" } else { "DESC" },
                        if k.nulls_first { "FIRST" } else { "LAST" }
                    ))
                })
                .collect::<Result<Vec<_>, Reason>>()?;
            sql.push_str(&format!(" ORDER BY {}", keys.join(", ")));
        }
        if let Some(n) = &l.limit {
            sql.push_str(&format!(" LIMIT {}", self.sql(n)?));
        }
        if let Some(n) = &l.offset {
            sql.push_str(&format!(" OFFSET {}", self.sql(n)?));
        }
        Ok(sql)
    }

    /// `l` as a derived table of a new level; its order is kept where its keys are columns.
    fn nest(&mut self, l: Level) -> Result<Level, Reason> {
        let sql = self.render(&l)?;
        let alias = self.alias();
        let items: Vec<Expr> = (0..l.items.len())
            .map(|i| {
                Expr::Column(Column::new(
                    Some(TableReference::bare(alias.clone())),
                    col_name(i),
                ))
            })
            .collect();
        let mut order_by = Vec::new();
        let mut order_lost = l.order_lost;
        for k in &l.order_by {
            match l.items.iter().position(|i| unalias(i) == unalias(&k.expr)) {
                Some(i) => order_by.push(SortExpr {
                    expr: items[i].clone(),
                    ..k.clone()
                }),
                None => order_lost = true,
            }
        }
        if order_lost {
            order_by.clear();
        }
        Ok(Level {
            from: format!("({sql}) AS {}", self.dialect.quote(&alias)),
            items,
            order_by,
            order_lost,
            ..Level::default()
        })
    }

    /// The level of `plan`, whose output columns are `plan`'s, in order.
    fn level(&mut self, plan: &LogicalPlan) -> Result<Level, Reason> {
        match plan {
            LogicalPlan::TableScan(scan) => self.scan(scan),
            LogicalPlan::SubqueryAlias(a) => self.level(&a.input),
            LogicalPlan::Projection(Projection { expr, input, .. }) => {
                let l = self.level(input)?;
                let mut l = if l.distinct { self.nest(l)? } else { l };
                let schema = input.schema();
                l.items = expr
                    .iter()
                    .map(|e| subst(e, schema, &l.items))
                    .collect::<Result<_, _>>()?;
                Ok(l)
            }
            LogicalPlan::Filter(Filter {
                predicate, input, ..
            }) => {
                let l = self.level(input)?;
                let blocked = l.windowed || l.is_limited() || l.distinct;
                let mut l = if blocked { self.nest(l)? } else { l };
                let pred = subst(predicate, input.schema(), &l.items)?;
                if l.group_by.is_some() {
                    l.having.push(pred);
                } else {
                    l.filters.push(Cond::Expr(pred));
                }
                Ok(l)
            }
            LogicalPlan::Aggregate(Aggregate {
                input,
                group_expr,
                aggr_expr,
                ..
            }) => {
                let l = self.level(input)?;
                let blocked = l.group_by.is_some()
                    || l.distinct
                    || l.is_limited()
                    || l.windowed
                    || !l.having.is_empty();
                let mut l = if blocked { self.nest(l)? } else { l };
                let schema = input.schema();
                let keys = group_expr
                    .iter()
                    .map(|e| subst(e, schema, &l.items))
                    .collect::<Result<Vec<_>, _>>()?;
                let aggs = aggr_expr
                    .iter()
                    .map(|e| {
                        subst(
                            &self.pinned(&exact_avg(e, schema), schema),
                            schema,
                            &l.items,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                l.items = keys.iter().cloned().chain(aggs).collect();
                l.group_by = Some(keys);
                // An aggregate's output has no order.
                l.order_by.clear();
                l.order_lost = false;
                Ok(l)
            }
            LogicalPlan::Sort(Sort { expr, input, fetch }) => {
                let l = self.level(input)?;
                let mut l = if l.is_limited() || l.distinct {
                    self.nest(l)?
                } else {
                    l
                };
                let schema = input.schema();
                l.order_by = expr
                    .iter()
                    .map(|k| {
                        Ok(SortExpr {
                            expr: subst(&k.expr, schema, &l.items)?,
                            ..k.clone()
                        })
                    })
                    .collect::<Result<_, Reason>>()?;
                l.order_lost = false;
                if let Some(n) = fetch {
                    l.limit = Some(Expr::Literal(
                        ScalarValue::Int64(Some(i64::try_from(*n).unwrap_or(i64::MAX))),
                        None,
                    ));
                }
                Ok(l)
            }
            LogicalPlan::Limit(Limit { skip, fetch, input }) => {
                let mut l = self.level(input)?;
                let no_skip = skip.as_deref().is_none_or(
                    |s| matches!(s, Expr::Literal(v, _) if v.is_null() || *v == ScalarValue::Int64(Some(0))),
                );
                // A limit of a limit without offsets is the smaller one.
                if no_skip
                    && l.offset.is_none()
                    && let (Some(Expr::Literal(a, _)), Some(Expr::Literal(b, _))) =
                        (l.limit.as_ref(), fetch.as_deref())
                    && let (Ok(a), Ok(b)) = (
                        a.clone().cast_to(&DataType::Int64),
                        b.clone().cast_to(&DataType::Int64),
                    )
                {
                    let smaller = if a.partial_cmp(&b) == Some(std::cmp::Ordering::Less) {
                        a
                    } else {
                        b
                    };
                    l.limit = Some(Expr::Literal(smaller, None));
                    return Ok(l);
                }
                let mut l = if l.is_limited() { self.nest(l)? } else { l };
                if l.order_lost {
                    return Err("a LIMIT over an order that a derived table loses".into());
                }
                l.limit = fetch.as_deref().cloned();
                l.offset = skip.as_deref().cloned().filter(|s| {
                    !matches!(s, Expr::Literal(v, _) if v.is_null() || *v == ScalarValue::Int64(Some(0)))
                });
                Ok(l)
            }
            LogicalPlan::Distinct(Distinct::All(input)) => {
                let l = self.level(input)?;
                let mut l = if l.distinct || l.is_limited() || !l.order_by.is_empty() {
                    self.nest(l)?
                } else {
                    l
                };
                l.distinct = true;
                l.order_by.clear();
                Ok(l)
            }
            LogicalPlan::Window(Window {
                input, window_expr, ..
            }) => {
                let l = self.level(input)?;
                let mut l = if l.is_limited() || l.distinct {
                    self.nest(l)?
                } else {
                    l
                };
                let schema = input.schema();
                let windows = window_expr
                    .iter()
                    .map(|e| subst(&self.pinned(e, schema), schema, &l.items))
                    .collect::<Result<Vec<_>, _>>()?;
                l.items.extend(windows);
                l.windowed = true;
                Ok(l)
            }
            LogicalPlan::Union(u) => {
                let mut parts = Vec::with_capacity(u.inputs.len());
                for input in &u.inputs {
                    let l = self.level(input)?;
                    parts.push(format!("({})", self.render(&l)?));
                }
                let alias = self.alias();
                Ok(Level {
                    from: format!(
                        "({}) AS {}",
                        parts.join(" UNION ALL "),
                        self.dialect.quote(&alias)
                    ),
                    items: (0..plan.schema().fields().len())
                        .map(|i| {
                            Expr::Column(Column::new(
                                Some(TableReference::bare(alias.clone())),
                                col_name(i),
                            ))
                        })
                        .collect(),
                    ..Level::default()
                })
            }
            LogicalPlan::Join(join) => self.join(join),
            other => Err(format!(
                "{} cannot be written as SQL",
                super::capability::name_of(other)
            )),
        }
    }

    fn scan(&mut self, scan: &TableScan) -> Result<Level, Reason> {
        let provider = source_as_provider(&scan.source).map_err(|e| e.to_string())?;
        let any: &dyn std::any::Any = provider.as_ref();
        let Some(table) = any.downcast_ref::<RemoteTable>() else {
            return Err("a table of another source".into());
        };
        let def = table.def();
        let alias = self.alias();
        let qualifier = Some(TableReference::bare(alias.clone()));
        let columns: Vec<usize> = scan
            .projection
            .clone()
            .unwrap_or_else(|| (0..def.columns.len()).collect());
        let items = columns
            .iter()
            .map(|&i| {
                def.columns
                    .get(i)
                    .map(|c| Expr::Column(Column::new(qualifier.clone(), c.name.clone())))
                    .ok_or_else(|| "a projection outside the table".to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The scan's own filters name the table's columns as Sluice shows them.
        let remote_name = |local: &str| {
            def.columns
                .iter()
                .find(|c| self.dialect.local_name(&c.name) == local)
                .map_or_else(|| local.to_owned(), |c| c.name.clone())
        };
        let filters = scan
            .filters
            .iter()
            .map(|f| {
                f.clone()
                    .transform_up(|e| {
                        Ok(match e {
                            Expr::Column(c) => Transformed::yes(Expr::Column(Column::new(
                                qualifier.clone(),
                                remote_name(&c.name),
                            ))),
                            other => Transformed::no(other),
                        })
                    })
                    .map(|t| Cond::Expr(t.data))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Level {
            from: format!(
                "{}.{} AS {}",
                self.dialect.quote(&def.schema),
                self.dialect.quote(&def.name),
                self.dialect.quote(&alias)
            ),
            items,
            filters,
            limit: scan.fetch.map(|n| {
                Expr::Literal(
                    ScalarValue::Int64(Some(i64::try_from(n).unwrap_or(i64::MAX))),
                    None,
                )
            }),
            ..Level::default()
        })
    }

    /// A join input as a `FROM` item and its columns: directly when plain, else derived.
    fn join_input(&mut self, plan: &LogicalPlan) -> Result<(String, Vec<Expr>, bool), Reason> {
        let l = self.level(plan)?;
        if l.is_plain() {
            let is_join = l.from.contains(" JOIN ");
            return Ok((l.from, l.items, is_join));
        }
        let l = self.nest(l)?;
        Ok((l.from, l.items, false))
    }

    fn join(&mut self, join: &Join) -> Result<Level, Reason> {
        let (lfrom, litems, _) = self.join_input(&join.left)?;
        let (rfrom, ritems, rjoin) = self.join_input(&join.right)?;
        let rfrom = if rjoin { format!("({rfrom})") } else { rfrom };
        let (ls, rs) = (join.left.schema(), join.right.schema());
        let mut conds = Vec::new();
        for (l, r) in &join.on {
            let l = subst(l, ls, &litems)?;
            let r = subst(r, rs, &ritems)?;
            conds.push(format!("({})", self.sql(&l.eq(r))?));
        }
        if let Some(f) = &join.filter {
            let both = ls.join(rs).map_err(|e| e.to_string())?;
            let items: Vec<Expr> = litems.iter().chain(&ritems).cloned().collect();
            conds.push(format!("({})", self.sql(&subst(f, &both, &items)?)?));
        }
        let on = if conds.is_empty() {
            "TRUE".to_owned()
        } else {
            conds.join(" AND ")
        };
        let exists = |from: &str, negated: bool| {
            Cond::Sql(format!(
                "{}EXISTS (SELECT 1 FROM {from} WHERE {on})",
                if negated { "NOT " } else { "" }
            ))
        };
        let (from, items, filters) = match join.join_type {
            JoinType::Inner => (
                format!("{lfrom} INNER JOIN {rfrom} ON {on}"),
                litems.into_iter().chain(ritems).collect(),
                vec![],
            ),
            JoinType::Left => (
                format!("{lfrom} LEFT JOIN {rfrom} ON {on}"),
                litems.into_iter().chain(ritems).collect(),
                vec![],
            ),
            JoinType::Right => (
                format!("{lfrom} RIGHT JOIN {rfrom} ON {on}"),
                litems.into_iter().chain(ritems).collect(),
                vec![],
            ),
            JoinType::Full => (
                format!("{lfrom} FULL JOIN {rfrom} ON {on}"),
                litems.into_iter().chain(ritems).collect(),
                vec![],
            ),
            JoinType::LeftSemi => (lfrom, litems, vec![exists(&rfrom, false)]),
            JoinType::LeftAnti => (lfrom, litems, vec![exists(&rfrom, true)]),
            JoinType::RightSemi => (rfrom, ritems, vec![exists(&lfrom, false)]),
            JoinType::RightAnti => (rfrom, ritems, vec![exists(&lfrom, true)]),
            other => return Err(format!("{other} joins cannot be written as SQL")),
        };
        Ok(Level {
            from,
            items,
            filters,
            ..Level::default()
        })
    }
}

/// `avg` of a decimal as DataFusion computes it (see [`placeholders::decimal_avg`]).
fn exact_avg(e: &Expr, schema: &DFSchema) -> Expr {
    e.clone()
        .transform_up(|e| {
            if let Expr::AggregateFunction(AggregateFunction { func, params }) = &e
                && func.name() == "avg"
                && let [arg] = params.args.as_slice()
                && !params.distinct
                && params.filter.is_none()
                && let Ok(DataType::Decimal128(p, s)) = e.get_type(schema)
            {
                return Ok(Transformed::yes(placeholders::decimal_avg(
                    arg.clone(),
                    p,
                    s,
                )));
            }
            Ok(Transformed::no(e))
        })
        .map_or_else(|_| e.clone(), |t| t.data)
}

/// `e` over `schema`'s columns, with each column replaced by that column's item.
fn subst(e: &Expr, schema: &DFSchema, items: &[Expr]) -> Result<Expr, Reason> {
    e.clone()
        .transform_up(|e| {
            Ok(match e {
                Expr::Column(c) => {
                    let i = schema.index_of_column(&c)?;
                    match items.get(i) {
                        Some(item) => Transformed::yes(unalias(item).clone()),
                        None => Transformed::no(Expr::Column(c)),
                    }
                }
                other => Transformed::no(other),
            })
        })
        .map(|t| t.data)
        .map_err(|err| format!("{e} refers to a column its input lacks: {err}"))
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Text in ordering positions in byte order; typed NULLs keep their type.
fn prepare(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    plan.transform_up(|node| {
        let inputs = node.inputs();
        let schema = if inputs.is_empty() {
            node.schema().as_ref().clone()
        } else {
            merge_schema(&inputs)
        };
        let sort_node = matches!(node, LogicalPlan::Sort(_));
        let names = NamePreserver::new(&node);
        let node = node.map_expressions(|e| {
            let name = names.save(&e);
            let t = e.transform_up(|e| rewrite(e, &schema))?;
            Ok(if t.transformed {
                t.update_data(|e| name.restore(e))
            } else {
                t
            })
        })?;
        if !sort_node {
            return Ok(node);
        }
        // A Sort's expressions are its keys.
        node.map_data(|n| match n {
            LogicalPlan::Sort(s) => {
                let expr = s.expr.into_iter().map(|k| sort_key(k, &schema)).collect();
                Ok(LogicalPlan::Sort(Sort { expr, ..s }))
            }
            other => Ok(other),
        })
    })
    .map(|t| t.data)
}

fn sort_key(k: SortExpr, schema: &DFSchema) -> SortExpr {
    match k.expr.get_type(schema) {
        Ok(t) if is_text(&t) => SortExpr {
            expr: placeholders::byte_order(k.expr),
            ..k
        },
        _ => k,
    }
}

fn text_typed(e: &Expr, schema: &DFSchema) -> bool {
    e.get_type(schema).is_ok_and(|t| is_text(&t))
}

fn rewrite(e: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    use datafusion::logical_expr::Operator as O;
    Ok(match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, O::Lt | O::LtEq | O::Gt | O::GtEq)
                && (text_typed(&left, schema) || text_typed(&right, schema)) =>
        {
            Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                left: Box::new(placeholders::byte_order(*left)),
                op,
                right: Box::new(placeholders::byte_order(*right)),
            }))
        }
        Expr::Between(b) if text_typed(&b.expr, schema) => {
            Transformed::yes(Expr::Between(Between {
                expr: Box::new(placeholders::byte_order(*b.expr)),
                low: Box::new(placeholders::byte_order(*b.low)),
                high: Box::new(placeholders::byte_order(*b.high)),
                negated: b.negated,
            }))
        }
        Expr::AggregateFunction(AggregateFunction { func, mut params })
            if matches!(func.name(), "min" | "max")
                && params.args.iter().any(|a| text_typed(a, schema)) =>
        {
            params.args = params
                .args
                .into_iter()
                .map(placeholders::byte_order)
                .collect();
            Transformed::yes(Expr::AggregateFunction(AggregateFunction { func, params }))
        }
        Expr::WindowFunction(w) => {
            let WindowFunction { fun, mut params } = *w;
            let mut changed = false;
            params.order_by = params
                .order_by
                .into_iter()
                .map(|k| {
                    let before = k.clone();
                    let after = sort_key(k, schema);
                    changed |= after != before;
                    after
                })
                .collect();
            if let WindowFunctionDefinition::AggregateUDF(f) = &fun
                && matches!(f.name(), "min" | "max")
                && params.args.iter().any(|a| text_typed(a, schema))
            {
                params.args = params
                    .args
                    .into_iter()
                    .map(placeholders::byte_order)
                    .collect();
                changed = true;
            }
            let w = Expr::WindowFunction(Box::new(WindowFunction { fun, params }));
            if changed {
                Transformed::yes(w)
            } else {
                Transformed::no(w)
            }
        }
        Expr::Literal(v, meta) if v.is_null() && v.data_type() != DataType::Null => {
            let t = v.data_type();
            Transformed::yes(Expr::Cast(Cast::new(
                Box::new(Expr::Literal(ScalarValue::Null, meta)),
                t,
            )))
        }
        other => Transformed::no(other),
    })
}
