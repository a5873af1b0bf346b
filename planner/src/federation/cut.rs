//! The cut: the optimized logical plan, with each largest subtree that one remote source can
//! compute exactly replaced by a [`RemoteQueryNode`].
//!
//! Bottom up, a node joins its inputs' source when every input is computable by the same
//! source (a source with `pushdown = "full"`), the node kind is one the source runs, and the
//! capability table accepts each of its expressions over its inputs' column classes. The
//! first node that fails is kept local, with the reason shown by `EXPLAIN` on the remote
//! statements below it. A subtree the unparser cannot write is split at its root the same way.
//!
//! Sources with `pushdown = "filters"` or `"none"` only ever get single-table scans, and so
//! do scans reading a column through a read expression (types read as text), which the
//! unparser does not know.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result as DfResult, internal_datafusion_err};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{
    Aggregate, Analyze, Explain, Expr, ExprSchemable, Filter, Join, JoinType, Limit, LogicalPlan,
    Projection, Sort, TableScan, Union, Window,
};
use sluice_schemas::Pushdown;

use super::capability::{self as cap, Reason, Scope, class_of_type, unalias};
use super::executor::ColumnClass;
use super::node::{Origin, RemoteQueryNode};
use super::table::{RemoteSource, RemoteTable};
use super::unparse;

/// What a subtree is.
#[derive(Debug, Clone)]
pub(super) enum Found {
    /// Computable by `source`, with the class of each output column. `mergeable`: a node
    /// above may join it.
    Remote {
        source: Arc<RemoteSource>,
        classes: Vec<ColumnClass>,
        mergeable: Result<(), Reason>,
    },
    /// Computed by Sluice (or already sent).
    Local,
}

/// `plan` with its largest remote subtrees replaced by [`RemoteQueryNode`]s.
///
/// # Errors
/// Only internal errors: anything the sources cannot do stays local.
pub fn federate(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    match plan {
        // EXPLAIN shows the plan that runs.
        LogicalPlan::Explain(e) => {
            let inner = federate(Arc::unwrap_or_clone(e.plan))?;
            Ok(LogicalPlan::Explain(Explain {
                plan: Arc::new(inner),
                ..e
            }))
        }
        LogicalPlan::Analyze(a) => {
            let inner = federate(Arc::unwrap_or_clone(a.input))?;
            Ok(LogicalPlan::Analyze(Analyze {
                input: Arc::new(inner),
                ..a
            }))
        }
        plan => {
            let (plan, found) = visit(plan)?;
            let plan = match found {
                Found::Remote {
                    source, classes, ..
                } => remote_node(plan, &source, classes, None)?,
                Found::Local => plan,
            };
            mark_guarded(plan)
        }
    }
}

/// Every remote statement under a policy fence marked as such (see
/// [`super::exec::RemoteStatementSpec::guarded`]).
pub(super) fn mark_guarded(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    plan.transform_down_with_subqueries(|node| {
        let Some(fence) = crate::policy::fence::PolicyFence::of(&node) else {
            return Ok(Transformed::no(node));
        };
        let mut fence = fence.clone();
        fence.input = fence
            .input
            .transform_down_with_subqueries(|inner| {
                let LogicalPlan::Extension(e) = &inner else {
                    return Ok(Transformed::no(inner));
                };
                let Some(remote) = e.node.as_any().downcast_ref::<RemoteQueryNode>() else {
                    return Ok(Transformed::no(inner));
                };
                let mut remote = remote.clone();
                remote.spec.guarded = true;
                Ok(Transformed::yes(remote.into_plan()))
            })?
            .data;
        Ok(Transformed::new(
            fence.into_plan(),
            true,
            TreeNodeRecursion::Jump,
        ))
    })
    .map(|t| t.data)
}

/// The remote table a scan reads, if it reads one.
fn remote_table(scan: &TableScan) -> Option<Arc<dyn datafusion::catalog::TableProvider>> {
    let provider = source_as_provider(&scan.source).ok()?;
    let any: &dyn std::any::Any = provider.as_ref();
    any.downcast_ref::<RemoteTable>()
        .is_some()
        .then_some(provider)
}

fn as_remote(p: &Arc<dyn datafusion::catalog::TableProvider>) -> Option<&RemoteTable> {
    let any: &dyn std::any::Any = p.as_ref();
    any.downcast_ref::<RemoteTable>()
}

pub(super) fn visit(plan: LogicalPlan) -> DfResult<(LogicalPlan, Found)> {
    if let LogicalPlan::TableScan(scan) = &plan {
        let Some(provider) = remote_table(scan) else {
            return Ok((plan, Found::Local));
        };
        let Some(table) = as_remote(&provider) else {
            return Ok((plan, Found::Local));
        };
        let source = Arc::clone(table.source());
        let columns: Vec<usize> = scan
            .projection
            .clone()
            .unwrap_or_else(|| (0..table.def().columns.len()).collect());
        let defs: Vec<_> = columns
            .iter()
            .filter_map(|&i| table.def().columns.get(i))
            .collect();
        let classes = defs.iter().map(|c| c.class).collect();
        let mergeable = match source.pushdown {
            Pushdown::Full => match defs.iter().find(|c| c.read.is_some()) {
                Some(c) => Err(format!(
                    "column {} ({}) is read through a conversion, so only its scan is sent",
                    c.name, c.type_name
                )),
                None => Ok(()),
            },
            other => Err(format!(
                "source {} has pushdown = \"{}\"",
                source.name,
                other.as_str()
            )),
        };
        return Ok((
            plan,
            Found::Remote {
                source,
                classes,
                mergeable,
            },
        ));
    }
    if let LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) = plan {
        return Ok((federate(plan)?, Found::Local));
    }

    let inputs: Vec<LogicalPlan> = plan.inputs().into_iter().cloned().collect();
    let results = inputs
        .into_iter()
        .map(visit)
        .collect::<DfResult<Vec<_>>>()?;
    let children: Vec<&Found> = results.iter().map(|(_, f)| f).collect();
    let decision = if children.is_empty() {
        // Leaves that read no remote table: VALUES, empty relations, local scans.
        return Ok((plan, Found::Local));
    } else {
        decide(&plan, &children)
    };
    match decision {
        Ok((source, classes)) => Ok((
            plan,
            Found::Remote {
                source,
                classes,
                mergeable: Ok(()),
            },
        )),
        Err(reason) => {
            let mut new_inputs = Vec::with_capacity(results.len());
            for (child, found) in results {
                new_inputs.push(match found {
                    Found::Remote {
                        source, classes, ..
                    } => remote_node(child, &source, classes, Some(reason.clone()))?,
                    Found::Local => child,
                });
            }
            let plan = with_inputs(plan, new_inputs)?;
            // Subqueries left in expressions are federated on their own.
            let plan = plan
                .map_subqueries(|sub| {
                    let federated = sub.map_children(|c| federate(c).map(Transformed::yes))?;
                    Ok(federated)
                })?
                .data;
            Ok((plan, Found::Local))
        }
    }
}

/// `plan` with its inputs replaced, in order.
pub(super) fn with_inputs(plan: LogicalPlan, inputs: Vec<LogicalPlan>) -> DfResult<LogicalPlan> {
    let mut inputs = inputs.into_iter();
    plan.map_children(|_| {
        inputs
            .next()
            .map(Transformed::yes)
            .ok_or_else(|| internal_datafusion_err!("federation: fewer inputs than children"))
    })
    .map(|t| t.data)
}

/// Whether `plan` can join its inputs' source; its source and output classes if so.
fn decide(
    plan: &LogicalPlan,
    children: &[&Found],
) -> Result<(Arc<RemoteSource>, Vec<ColumnClass>), Reason> {
    let mut source: Option<&Arc<RemoteSource>> = None;
    let mut inputs: Vec<&Vec<ColumnClass>> = Vec::with_capacity(children.len());
    for child in children {
        match child {
            Found::Local => {
                return Err(match source {
                    Some(s) => format!("it combines source {} with data Sluice computes", s.name),
                    None => "it combines a remote result with data Sluice computes".to_owned(),
                });
            }
            Found::Remote {
                source: s,
                classes,
                mergeable,
            } => {
                mergeable.clone()?;
                if let Some(first) = source
                    && first.name != s.name
                {
                    return Err(format!("it combines sources {} and {}", first.name, s.name));
                }
                source = Some(s);
                inputs.push(classes);
            }
        }
    }
    let Some(source) = source else {
        return Err("no input is remote".to_owned());
    };
    cap::node_kind(plan)?;
    let classes = check(plan, source, &inputs)?;
    Ok((Arc::clone(source), classes))
}

/// The capability checks of one node; its output classes.
fn check(
    plan: &LogicalPlan,
    source: &RemoteSource,
    inputs: &[&Vec<ColumnClass>],
) -> Result<Vec<ColumnClass>, Reason> {
    let dialect = source.dialect.as_ref();
    let first = inputs.first().map(|c| c.as_slice()).unwrap_or_default();
    match plan {
        LogicalPlan::Projection(Projection { expr, input, .. }) => {
            let scope = Scope {
                dialect,
                schema: input.schema(),
                classes: first,
            };
            for e in expr {
                scope.passthrough(e)?;
            }
            Ok(expr.iter().map(|e| scope.class_of_expr(e)).collect())
        }
        LogicalPlan::Filter(Filter {
            predicate, input, ..
        }) => {
            Scope {
                dialect,
                schema: input.schema(),
                classes: first,
            }
            .expr(predicate)?;
            Ok(first.to_vec())
        }
        LogicalPlan::Aggregate(Aggregate {
            input,
            group_expr,
            aggr_expr,
            ..
        }) => {
            let scope = Scope {
                dialect,
                schema: input.schema(),
                classes: first,
            };
            let mut out = Vec::new();
            for g in group_expr {
                if matches!(unalias(g), Expr::GroupingSet(_)) {
                    return Err("GROUPING SETS, ROLLUP and CUBE are computed by Sluice".into());
                }
                scope.key(g)?;
                out.push(scope.class_of_expr(g));
            }
            for a in aggr_expr {
                scope.expr(a)?;
                out.push(aggregate_class(&scope, a));
            }
            Ok(out)
        }
        LogicalPlan::Sort(Sort { expr, input, .. }) => {
            let scope = Scope {
                dialect,
                schema: input.schema(),
                classes: first,
            };
            for s in expr {
                scope.sort_key(s)?;
            }
            Ok(first.to_vec())
        }
        LogicalPlan::Limit(Limit { skip, fetch, .. }) => {
            for e in [skip, fetch].into_iter().flatten() {
                if !matches!(e.as_ref(), Expr::Literal(..)) {
                    return Err("a LIMIT or OFFSET that is not a constant".into());
                }
            }
            Ok(first.to_vec())
        }
        LogicalPlan::Join(join) => check_join(join, dialect, inputs),
        LogicalPlan::Union(Union { .. }) => {
            let mut out = first.to_vec();
            for classes in inputs.iter().skip(1) {
                for (o, c) in out.iter_mut().zip(classes.iter()) {
                    if *o != *c {
                        // Different origins: only passed through.
                        *o = ColumnClass::Opaque;
                    }
                }
            }
            Ok(out)
        }
        LogicalPlan::Distinct(d) => {
            cap::distinct(d)?;
            let input = d.input();
            let scope = Scope {
                dialect,
                schema: input.schema(),
                classes: first,
            };
            for c in input.schema().columns() {
                scope.key(&Expr::Column(c))?;
            }
            Ok(first.to_vec())
        }
        LogicalPlan::SubqueryAlias(_) => Ok(first.to_vec()),
        LogicalPlan::Window(Window {
            input, window_expr, ..
        }) => {
            let scope = Scope {
                dialect,
                schema: input.schema(),
                classes: first,
            };
            let mut out = first.to_vec();
            for w in window_expr {
                scope.expr(w)?;
                out.push(
                    w.get_type(input.schema())
                        .map_or(ColumnClass::Opaque, |t| class_of_type(&t)),
                );
            }
            Ok(out)
        }
        other => Err(format!("{} is computed by Sluice", cap::name_of(other))),
    }
}

fn check_join(
    join: &Join,
    dialect: &dyn super::dialect::SourceDialect,
    inputs: &[&Vec<ColumnClass>],
) -> Result<Vec<ColumnClass>, Reason> {
    cap::join(dialect, join)?;
    let left = inputs.first().map(|c| c.as_slice()).unwrap_or_default();
    let right = inputs.get(1).map(|c| c.as_slice()).unwrap_or_default();
    let ls = Scope {
        dialect,
        schema: join.left.schema(),
        classes: left,
    };
    let rs = Scope {
        dialect,
        schema: join.right.schema(),
        classes: right,
    };
    for (l, r) in &join.on {
        ls.key(l)?;
        rs.key(r)?;
    }
    let both: Vec<ColumnClass> = left.iter().chain(right).copied().collect();
    if let Some(filter) = &join.filter {
        let schema = join
            .left
            .schema()
            .join(join.right.schema())
            .map_err(|e| format!("join schema: {e}"))?;
        Scope {
            dialect,
            schema: &schema,
            classes: &both,
        }
        .expr(filter)?;
    }
    Ok(match join.join_type {
        JoinType::LeftSemi | JoinType::LeftAnti => left.to_vec(),
        JoinType::RightSemi | JoinType::RightAnti => right.to_vec(),
        _ => both,
    })
}

/// The class of an aggregate's value: a column's own for `min`/`max` of it, else by type.
fn aggregate_class(scope: &Scope<'_>, a: &Expr) -> ColumnClass {
    if let Expr::AggregateFunction(f) = unalias(a)
        && matches!(f.func.name(), "min" | "max")
        && let [arg] = f.params.args.as_slice()
    {
        return scope.class_of_expr(arg);
    }
    scope.class_of_expr(a)
}

/// A rough count of the rows a remote subtree returns, from its tables' own estimates, so
/// DataFusion can tell the small side of a join (its build side, whose keys then narrow the
/// other side's statement). `None` when a table has no estimate.
fn estimate_rows(plan: &LogicalPlan) -> Option<usize> {
    // DataFusion's own default selectivity for a filter it cannot estimate.
    const FILTER: f64 = 0.2;
    // Groups per input row, for an aggregate with keys.
    const GROUPS: f64 = 0.1;
    let inputs =
        || -> Option<Vec<usize>> { plan.inputs().into_iter().map(estimate_rows).collect() };
    #[expect(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "an estimate"
    )]
    let scale = |n: usize, f: f64| ((n as f64) * f).ceil() as usize;
    Some(match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = remote_table(scan)?;
            let table = as_remote(&provider)?;
            let n = usize::try_from(table.def().rows_estimate?).ok()?;
            let n = if scan.filters.is_empty() {
                n
            } else {
                scale(n, FILTER)
            };
            scan.fetch.map_or(n, |f| n.min(f))
        }
        LogicalPlan::Filter(_) => scale(*inputs()?.first()?, FILTER),
        LogicalPlan::Aggregate(a) if a.group_expr.is_empty() => 1,
        LogicalPlan::Aggregate(_) => scale(*inputs()?.first()?, GROUPS).max(1),
        LogicalPlan::Limit(l) => {
            let n = *inputs()?.first()?;
            match l.get_fetch_type() {
                Ok(datafusion::logical_expr::logical_plan::FetchType::Literal(Some(f))) => n.min(f),
                _ => n,
            }
        }
        // A join of a key to its foreign key returns about the larger side.
        LogicalPlan::Join(j) => match j.join_type {
            JoinType::LeftSemi | JoinType::LeftAnti => *inputs()?.first()?,
            JoinType::RightSemi | JoinType::RightAnti => *inputs()?.get(1)?,
            _ => inputs()?.into_iter().max()?,
        },
        LogicalPlan::Union(_) => inputs()?.into_iter().sum(),
        _ => *inputs()?.first()?,
    })
}

/// `plan`, computable by `source`, as a node sending it there. A bare scan sends the scan's
/// own statement; anything larger is unparsed, and when it cannot be, it is split: its root
/// stays local and its inputs are sent.
pub(super) fn remote_node(
    plan: LogicalPlan,
    source: &Arc<RemoteSource>,
    classes: Vec<ColumnClass>,
    kept_local: Option<String>,
) -> DfResult<LogicalPlan> {
    let schema = Arc::clone(plan.schema());
    if let LogicalPlan::TableScan(scan) = &plan
        && let Some(provider) = remote_table(scan)
        && let Some(table) = as_remote(&provider)
    {
        let exec = table.scan_exec(
            scan.projection.as_ref(),
            &scan.filters,
            scan.fetch,
            kept_local,
        )?;
        return Ok(RemoteQueryNode {
            spec: exec.spec().clone(),
            schema,
            origin: None,
        }
        .into_plan());
    }
    tracing::trace!(subtree = %plan.display_indent(), "Writing a remote subtree as SQL.");
    let origin = source.estimates.is_some().then(|| {
        Arc::new(Origin {
            subtree: plan.clone(),
            source: Arc::clone(source),
        })
    });
    match unparse::subtree_sql(&plan, source.dialect.as_ref()) {
        Ok((sql, ordering)) => Ok(RemoteQueryNode {
            spec: super::exec::RemoteStatementSpec {
                source: source.name.clone(),
                dialect: Arc::clone(&source.dialect),
                sql,
                fetched: Arc::new(schema.as_arrow().clone()),
                projection: None,
                classes,
                rows_estimate: estimate_rows(&plan),
                kept_local,
                estimate: None,
                weighed: None,
                ordering,
                narrowable: true,
                guarded: false,
            },
            schema,
            origin,
        }
        .into_plan()),
        Err(reason) => {
            // Keep the root local; its inputs are each computable by the source.
            let reason = format!("{} {reason}", cap::name_of(&plan));
            let inputs: Vec<LogicalPlan> = plan.inputs().into_iter().cloned().collect();
            let mut new_inputs = Vec::with_capacity(inputs.len());
            for input in inputs {
                let (input, found) = visit(input)?;
                new_inputs.push(match found {
                    Found::Remote {
                        source, classes, ..
                    } => remote_node(input, &source, classes, Some(reason.clone()))?,
                    Found::Local => input,
                });
            }
            with_inputs(plan, new_inputs)
        }
    }
}
