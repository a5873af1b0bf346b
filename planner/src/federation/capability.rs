//! The capability check: may this plan node, with these expressions over columns of these
//! classes, be computed by the source? Every `Err` is the reason `EXPLAIN` shows for keeping
//! the node local.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, NullEquality};
use datafusion::logical_expr::expr::{
    AggregateFunction, AggregateFunctionParams, Alias, InList, Like, ScalarFunction,
    WindowFunction, WindowFunctionParams,
};
use datafusion::logical_expr::{
    Between, BinaryExpr, Cast, Distinct, Expr, ExprSchemable, Join, LogicalPlan, Operator,
    SortExpr, WindowFunctionDefinition,
};

use super::dialect::SourceDialect;
use super::executor::ColumnClass;

/// Why something stays local.
pub type Reason = String;

/// The class of a value of type `t` computed remotely (not read from a column).
pub fn class_of_type(t: &DataType) -> ColumnClass {
    match t {
        t if t.is_integer() => ColumnClass::Exact,
        DataType::Decimal128(..)
        | DataType::Boolean
        | DataType::Date32
        | DataType::Time64(_)
        | DataType::Timestamp(..)
        | DataType::Null => ColumnClass::Exact,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnClass::Text,
        t if t.is_floating() => ColumnClass::Float,
        _ => ColumnClass::Opaque,
    }
}

/// Expressions over one input: its schema and the classes of its columns.
pub struct Scope<'a> {
    /// The source's dialect.
    pub dialect: &'a dyn SourceDialect,
    /// The input's schema.
    pub schema: &'a DFSchema,
    /// A class per field of `schema`.
    pub classes: &'a [ColumnClass],
}

impl Scope<'_> {
    fn class_of(&self, c: &Column) -> Result<ColumnClass, Reason> {
        let i = self
            .schema
            .index_of_column(c)
            .map_err(|_| format!("column {c} is not in its input"))?;
        Ok(self.classes.get(i).copied().unwrap_or(ColumnClass::Opaque))
    }

    fn type_of(&self, e: &Expr) -> Result<DataType, Reason> {
        e.get_type(self.schema)
            .map_err(|_| format!("the type of {e} is unknown"))
    }

    /// The class of `e`'s value: a column's own, or by type.
    pub fn class_of_expr(&self, e: &Expr) -> ColumnClass {
        match unalias(e) {
            Expr::Column(c) => self.class_of(c).unwrap_or(ColumnClass::Opaque),
            other => self
                .type_of(other)
                .map_or(ColumnClass::Opaque, |t| class_of_type(&t)),
        }
    }

    fn name(&self) -> &'static str {
        self.dialect.name()
    }

    /// `e` may be passed through as it is: a column of any class but the unreadable.
    pub fn passthrough(&self, e: &Expr) -> Result<(), Reason> {
        match unalias(e) {
            Expr::Column(_) => Ok(()),
            other => self.expr(other),
        }
    }

    /// `e` is computed by the source exactly as DataFusion computes it.
    pub fn expr(&self, e: &Expr) -> Result<(), Reason> {
        let caps = self.dialect.capabilities();
        match e {
            Expr::Alias(Alias { expr, .. }) => self.expr(expr),
            Expr::Column(c) => match self.class_of(c)? {
                ColumnClass::Opaque => Err(format!(
                    "column {} has a type whose comparisons or functions differ in {}",
                    c.name,
                    self.name()
                )),
                _ => Ok(()),
            },
            Expr::Literal(v, _) => {
                if (caps.literal)(v) {
                    Ok(())
                } else {
                    Err(format!("the literal {v} has no exact {} form", self.name()))
                }
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                self.expr(left)?;
                self.expr(right)?;
                let (lt, rt) = (self.type_of(left)?, self.type_of(right)?);
                if !(caps.operator)(*op, &lt, &rt) {
                    return Err(format!(
                        "{op} on {lt} and {rt} is not computed as DataFusion computes it in {}",
                        self.name()
                    ));
                }
                if is_comparison(*op) {
                    self.comparable(left, right, *op)?;
                }
                Ok(())
            }
            Expr::Not(e)
            | Expr::IsNull(e)
            | Expr::IsNotNull(e)
            | Expr::IsTrue(e)
            | Expr::IsFalse(e)
            | Expr::IsNotTrue(e)
            | Expr::IsNotFalse(e)
            | Expr::IsUnknown(e)
            | Expr::IsNotUnknown(e)
            | Expr::Negative(e) => self.expr(e),
            Expr::Between(Between {
                expr, low, high, ..
            }) => {
                self.expr(expr)?;
                self.expr(low)?;
                self.expr(high)?;
                self.comparable(expr, low, Operator::GtEq)?;
                self.comparable(expr, high, Operator::LtEq)
            }
            Expr::InList(InList { expr, list, .. }) => {
                self.expr(expr)?;
                for item in list {
                    self.expr(item)?;
                    self.comparable(expr, item, Operator::Eq)?;
                }
                Ok(())
            }
            Expr::Like(Like {
                expr,
                pattern,
                escape_char,
                case_insensitive,
                ..
            }) => {
                if *case_insensitive {
                    return Err(format!(
                        "ILIKE folds case by the database's locale in {}",
                        self.name()
                    ));
                }
                self.expr(expr)?;
                self.expr(pattern)?;
                if !(caps.like)(pattern, *escape_char) {
                    return Err("this LIKE pattern".to_owned());
                }
                match self.class_of_expr(expr) {
                    ColumnClass::Text | ColumnClass::BoundedText { .. } => Ok(()),
                    _ => Err("LIKE on a value that is not plain text".to_owned()),
                }
            }
            Expr::Case(case) => {
                if let Some(e) = &case.expr {
                    self.expr(e)?;
                }
                for (when, then) in &case.when_then_expr {
                    self.expr(when)?;
                    self.expr(then)?;
                    if let Some(e) = &case.expr {
                        self.comparable(e, when, Operator::Eq)?;
                    }
                }
                if let Some(e) = &case.else_expr {
                    self.expr(e)?;
                }
                Ok(())
            }
            Expr::Cast(Cast { expr, field }) => {
                self.expr(expr)?;
                let from = self.type_of(expr)?;
                if (caps.cast)(&from, field.data_type()) {
                    Ok(())
                } else {
                    Err(format!(
                        "a cast from {from} to {} differs in {}",
                        field.data_type(),
                        self.name()
                    ))
                }
            }
            Expr::ScalarFunction(ScalarFunction { func, args }) => {
                let Some(check) = caps.scalar(func.name()) else {
                    return Err(format!(
                        "function {} is not known to be computed as DataFusion computes it in {}",
                        func.name(),
                        self.name()
                    ));
                };
                for a in args {
                    self.expr(a)?;
                }
                let types = args
                    .iter()
                    .map(|a| self.type_of(a))
                    .collect::<Result<Vec<_>, _>>()?;
                check(args, &types).map_err(|why| format!("{} with {why}", func.name()))
            }
            Expr::AggregateFunction(AggregateFunction { func, params }) => {
                self.aggregate(func.name(), params)
            }
            Expr::WindowFunction(w) => self.window(w),
            Expr::TryCast(_) => Err(format!("TRY_CAST has no {} form", self.name())),
            Expr::ScalarSubquery(_)
            | Expr::Exists(_)
            | Expr::InSubquery(_)
            | Expr::SetComparison(_)
            | Expr::OuterReferenceColumn(..) => {
                Err("a subquery that was not turned into a join".to_owned())
            }
            other => Err(format!("{} is not sent to sources", other.variant_name())),
        }
    }

    /// Both sides compare (and order, for ranges) as DataFusion compares them.
    fn comparable(&self, l: &Expr, r: &Expr, op: Operator) -> Result<(), Reason> {
        for side in [l, r] {
            match self.class_of_expr(side) {
                ColumnClass::Float => {
                    return Err(format!(
                        "floats compare differently in {} (NaN, -0)",
                        self.name()
                    ));
                }
                ColumnClass::Opaque => {
                    return Err("a comparison of a value with source-specific semantics".into());
                }
                ColumnClass::BoundedText { max_bytes } => {
                    let other = if std::ptr::eq(side, l) { r } else { l };
                    match unalias(other) {
                        Expr::Literal(v, _)
                            if v.try_as_str()
                                .flatten()
                                .is_some_and(|s| s.len() <= max_bytes) => {}
                        _ => {
                            return Err(format!(
                                "a comparison of text the source cuts to {max_bytes} bytes"
                            ));
                        }
                    }
                }
                ColumnClass::CanonicalText => {
                    if op != Operator::Eq && op != Operator::NotEq {
                        return Err("ordering of a uuid read as text".into());
                    }
                    let other = if std::ptr::eq(side, l) { r } else { l };
                    match unalias(other) {
                        Expr::Literal(v, _)
                            if v.try_as_str()
                                .flatten()
                                .is_some_and(super::filters::is_canonical_uuid) => {}
                        Expr::Column(_)
                            if self.class_of_expr(other) == ColumnClass::CanonicalText => {}
                        _ => return Err("a uuid compared with non-canonical text".into()),
                    }
                }
                ColumnClass::Exact | ColumnClass::Text => {}
            }
        }
        Ok(())
    }

    /// A sort key the source orders as DataFusion does (text in byte order).
    pub fn sort_key(&self, s: &SortExpr) -> Result<(), Reason> {
        self.expr(&s.expr)?;
        match self.class_of_expr(&s.expr) {
            ColumnClass::Exact | ColumnClass::Text => Ok(()),
            ColumnClass::Float => Err(format!(
                "floats order differently in {} (NaN, -0)",
                self.name()
            )),
            _ => Err("ordering by a value with source-specific semantics".into()),
        }
    }

    /// A grouping or join key: equality as DataFusion's.
    pub fn key(&self, e: &Expr) -> Result<(), Reason> {
        self.expr(e)?;
        match self.class_of_expr(e) {
            ColumnClass::Exact | ColumnClass::Text | ColumnClass::CanonicalText => Ok(()),
            ColumnClass::Float => Err(format!(
                "floats group and join differently in {} (NaN, -0)",
                self.name()
            )),
            _ => Err("grouping or joining on a value with source-specific semantics".into()),
        }
    }

    fn aggregate(&self, name: &str, params: &AggregateFunctionParams) -> Result<(), Reason> {
        let caps = self.dialect.capabilities();
        let Some(check) = caps.aggregate(name) else {
            return Err(format!(
                "aggregate {name} is not known to be computed as DataFusion computes it in {}",
                self.name()
            ));
        };
        if !params.order_by.is_empty() || params.null_treatment.is_some() {
            return Err(format!("an ordered aggregate {name}"));
        }
        if name == "avg" && (params.distinct || params.filter.is_some()) {
            return Err("avg with DISTINCT or FILTER".into());
        }
        for a in &params.args {
            self.expr(a)?;
        }
        if params.distinct {
            for a in &params.args {
                self.key(a)?;
            }
        }
        if let Some(f) = &params.filter {
            self.expr(f)?;
        }
        let types = params
            .args
            .iter()
            .map(|a| self.type_of(a))
            .collect::<Result<Vec<_>, _>>()?;
        check(&params.args, &types).map_err(|why| format!("{name} with {why}"))
    }

    fn window(&self, w: &WindowFunction) -> Result<(), Reason> {
        let WindowFunctionParams {
            args,
            partition_by,
            order_by,
            filter,
            null_treatment,
            distinct,
            ..
        } = &w.params;
        if filter.is_some() || null_treatment.is_some() || *distinct {
            return Err("a window function with FILTER, DISTINCT or IGNORE NULLS".into());
        }
        for p in partition_by {
            self.key(p)?;
        }
        for s in order_by {
            self.sort_key(s)?;
        }
        match &w.fun {
            WindowFunctionDefinition::AggregateUDF(f) => self.aggregate(
                f.name(),
                &AggregateFunctionParams {
                    args: args.clone(),
                    distinct: false,
                    filter: None,
                    order_by: vec![],
                    null_treatment: None,
                },
            ),
            WindowFunctionDefinition::WindowUDF(f) => {
                let caps = self.dialect.capabilities();
                if !caps.window_functions.contains(&f.name()) {
                    return Err(format!(
                        "window function {} is not known to be computed as DataFusion computes it in {}",
                        f.name(),
                        self.name()
                    ));
                }
                for a in args {
                    self.expr(a)?;
                }
                Ok(())
            }
        }
    }
}

/// `=`, `<>`, `<`, `<=`, `>`, `>=` and `IS [NOT] DISTINCT FROM`.
pub fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    )
}

/// `e` without its aliases.
pub fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(Alias { expr, .. }) => unalias(expr),
        other => other,
    }
}

/// A join the source runs with DataFusion's semantics.
pub fn join(dialect: &dyn SourceDialect, join: &Join) -> Result<(), Reason> {
    if !dialect.capabilities().join_types.contains(&join.join_type) {
        return Err(format!(
            "{} joins are not sent to {}",
            join.join_type,
            dialect.name()
        ));
    }
    if join.null_aware {
        return Err("NOT IN with a subquery (null-aware anti join)".into());
    }
    if join.null_equality == NullEquality::NullEqualsNull {
        return Err("a join whose keys match NULL to NULL".into());
    }
    Ok(())
}

/// DISTINCT ON keeps the first row per key by an order, which is kept local.
pub fn distinct(d: &Distinct) -> Result<(), Reason> {
    match d {
        Distinct::All(_) => Ok(()),
        Distinct::On(_) => Err("DISTINCT ON".into()),
    }
}

/// Whether `plan` is a node kind the cut may send at all.
pub fn node_kind(plan: &LogicalPlan) -> Result<(), Reason> {
    match plan {
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Aggregate(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Join(_)
        | LogicalPlan::Union(_)
        | LogicalPlan::Distinct(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Window(_)
        | LogicalPlan::TableScan(_) => Ok(()),
        other if crate::policy::fence::PolicyFence::of(other).is_some() => Err(
            "a row filter or column mask guards the table: only its policy and predicates that \
             cannot fail or leak are sent with its scan"
                .into(),
        ),
        other => Err(format!("{} is computed by Sluice", name_of(other))),
    }
}

/// The operator's name, as plans print it.
pub fn name_of(plan: &LogicalPlan) -> String {
    let shown = plan.display().to_string();
    shown.split(':').next().unwrap_or(&shown).trim().to_owned()
}
