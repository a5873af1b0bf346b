//! The cut and the SQL it sends, on remote tables that need no server: plans only.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use sluice_schemas::Pushdown;

use super::dialect::postgres::PostgresDialect;
use super::executor::{ColumnClass, RemoteColumn, RemoteTableDef};
use super::table::RemoteSource;
use crate::{Planner, PlannerOptions};

fn column(name: &str, data_type: DataType, class: ColumnClass) -> RemoteColumn {
    RemoteColumn::plain(name, data_type, class)
}

fn tables(schema: &str) -> Vec<RemoteTableDef> {
    use ColumnClass as C;
    use DataType as D;
    vec![
        RemoteTableDef {
            schema: schema.into(),
            name: "t".into(),
            view: false,
            rows_estimate: Some(1000),
            columns: vec![
                column("id", D::Int32, C::Exact),
                column("name", D::Utf8, C::Text),
                column("price", D::Float64, C::Float),
                column("amount", D::Decimal128(10, 2), C::Exact),
                column("d", D::Date32, C::Exact),
                column(
                    "ts",
                    D::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    C::Exact,
                ),
                column("ci", D::Utf8, C::Opaque),
            ],
        },
        RemoteTableDef {
            schema: schema.into(),
            name: "u".into(),
            view: false,
            rows_estimate: Some(10),
            columns: vec![
                column("id", D::Int32, C::Exact),
                column("t_id", D::Int32, C::Exact),
                column("label", D::Utf8, C::Text),
            ],
        },
    ]
}

/// A planner whose unqualified names resolve in `pg.{schema}`.
fn empty_planner(schema: &str) -> Planner {
    Planner::new(&PlannerOptions {
        default_catalog: Some("pg".into()),
        default_schema: Some(schema.into()),
        ..Default::default()
    })
    .unwrap()
}

fn planner(pushdown: Pushdown) -> Planner {
    let planner = empty_planner("s");
    for (name, schema) in [("pg", "s"), ("other", "s")] {
        let catalog = planner.register_remote_source(
            RemoteSource {
                name: name.into(),
                dialect: PostgresDialect::shared(),
                pushdown,
                estimates: None,
            },
            None,
        );
        catalog.install(tables(schema)).unwrap();
    }
    planner
}

/// The statements `sql` sends, with why the operator above each stayed local.
async fn remote(planner: &Planner, sql: &str) -> Vec<(String, String, Option<String>)> {
    let planned = planner.plan(sql, None, None).await.unwrap();
    planner
        .remote_statements(&planned)
        .into_iter()
        .map(|r| (r.source, r.sql, r.kept_local))
        .collect()
}

#[tokio::test]
async fn whole_subtrees_go_as_one_statement() {
    let p = planner(Pushdown::Full);
    for (sql, expected) in [
        (
            "SELECT id FROM t WHERE id > 5",
            "SELECT \"id\" FROM \"s\".\"t\" WHERE (\"id\" > 5)",
        ),
        (
            "SELECT name, count(*) AS n FROM t GROUP BY name ORDER BY name LIMIT 3",
            "",
        ),
        (
            "SELECT t.name, u.label FROM t JOIN u ON t.id = u.t_id WHERE u.label > 'm'",
            "",
        ),
        ("SELECT id FROM t WHERE id IN (SELECT t_id FROM u)", ""),
        (
            "SELECT id FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.t_id = t.id)",
            "",
        ),
        (
            "SELECT id, sum(amount) OVER (PARTITION BY name ORDER BY d) FROM t",
            "",
        ),
        ("SELECT id FROM t UNION SELECT id FROM u", ""),
        ("SELECT count(DISTINCT name) FROM t", ""),
        ("SELECT min(name), max(d) FROM t", ""),
        ("SELECT a.id FROM s.t a JOIN other.s.t b ON a.id = b.id", ""),
        (
            "SELECT id FROM pg.s.t WHERE id BETWEEN 10 AND 20 AND name <> 'x' LIMIT 4",
            "",
        ),
        ("SELECT id FROM s.t ORDER BY id", ""),
        ("SELECT count(*) FROM pg.s.t", ""),
        (
            "SELECT count(*) FROM (SELECT d FROM t WHERE id > 1 ORDER BY d LIMIT 5)",
            "SELECT count(1) AS \"c0\" FROM (SELECT FROM \"s\".\"t\" AS \"s1\" WHERE ((\"s1\".\"id\" > 1)) ORDER BY \"s1\".\"d\" ASC NULLS LAST LIMIT 5) AS \"s2\"",
        ),
        ("SELECT id, ci FROM pg.s.t WHERE ci = 'a'", ""),
        ("SELECT id FROM pg.s.t WHERE price > 1.5 ORDER BY id", ""),
    ] {
        let got = remote(&p, sql).await;
        println!("{sql}\n  -> {got:?}\n");
        if !expected.is_empty() {
            assert_eq!(got[0].1, expected);
        }
    }
}

/// A guarded table: the statement sent for it always carries the row filter, the caller's
/// predicates that could fail stay in Sluice above the fence, the leakproof ones go along,
/// and nothing of the caller's is joined or aggregated at the source past the policy.
#[tokio::test]
async fn a_guarded_table_is_sent_with_its_policy_and_only_leakproof_predicates() {
    use std::collections::BTreeMap;

    use crate::policy::{PolicySet, TablePolicy};
    let p = planner(Pushdown::Full).with_policies(std::sync::Arc::new(PolicySet::new(
        vec![TablePolicy {
            name: "only_a".into(),
            tables: "pg.s.t".into(),
            row_filter: Some("name = 'a'".into()),
            masks: BTreeMap::from([("price".to_owned(), "NULL".to_owned())]),
        }],
        true,
    )));
    for (sql, sent, not_sent) in [
        ("SELECT id FROM t", "(\"name\" = 'a')", ""),
        ("SELECT id FROM t WHERE id = 5", "(\"id\" = 5)", ""),
        (
            "SELECT id FROM t WHERE 1 / (id - 42) > 0",
            "(\"name\" = 'a')",
            "42",
        ),
        ("SELECT id FROM t WHERE price > 1", "\"name\" = 'a'", "> 1"),
        (
            "SELECT t.id FROM t JOIN u ON t.id = u.t_id",
            "\"name\" = 'a'",
            "JOIN",
        ),
        ("SELECT count(*) FROM t", "(\"name\" = 'a')", "count"),
        (
            "SELECT id FROM t WHERE id IN (SELECT t_id FROM u) AND name LIKE 'x%'",
            "(\"name\" = 'a')",
            "LIKE",
        ),
    ] {
        let got = remote(&p, sql).await;
        println!("{sql}\n  -> {got:?}\n");
        let guarded: Vec<_> = got.iter().filter(|r| r.1.contains("\"t\"")).collect();
        assert_eq!(guarded.len(), 1, "{sql}: {got:?}");
        let statement = &guarded[0].1;
        assert!(statement.contains("\"name\" = 'a')"), "{sql}: {statement}");
        assert!(statement.contains(sent), "{sql}: {statement}");
        if !not_sent.is_empty() {
            assert!(!statement.contains(not_sent), "{sql}: {statement}");
        }
    }
    // A caller who may not see the policy sees the statement without its literals.
    let hidden = planner(Pushdown::Full).with_policies(std::sync::Arc::new(PolicySet::new(
        vec![TablePolicy {
            name: "only_a".into(),
            tables: "pg.s.t".into(),
            row_filter: Some("name = 'a'".into()),
            masks: BTreeMap::new(),
        }],
        false,
    )));
    let shown = remote(&hidden, "SELECT id FROM t WHERE id = 5").await;
    assert_eq!(
        shown[0].1,
        "SELECT \"id\" FROM \"s\".\"t\" WHERE (\"name\" = ?) AND (\"id\" = ?)"
    );
    // A policy that cannot apply is the deployment's fault: the query is refused.
    let broken = planner(Pushdown::Full).with_policies(std::sync::Arc::new(PolicySet::new(
        vec![TablePolicy {
            name: "broken".into(),
            tables: "pg.s.*".into(),
            row_filter: Some("no_such_column = 1".into()),
            masks: BTreeMap::new(),
        }],
        false,
    )));
    let err = broken
        .plan("SELECT id FROM t", None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, crate::PlanError::Execution(_)), "{err:?}");
}

/// A source's planner, as a table of estimates by what a statement reads: enough to check
/// the cost-aware cut's search without a server (the choices against a real PostgreSQL are
/// in the server's tests and `benches/federation.sh`).
#[derive(Debug)]
struct EstimatesByShape {
    /// The source's cost for `a ⋈ b` narrowed by a runtime filter's keys.
    narrowed_join: f64,
}

impl super::executor::RemoteExecutor for EstimatesByShape {
    fn name(&self) -> &'static str {
        "pg"
    }

    fn compute_context(&self) -> &'static str {
        "pg"
    }

    fn dialect(&self) -> std::sync::Arc<dyn super::dialect::SourceDialect> {
        PostgresDialect::shared()
    }

    fn execute(
        &self,
        _sql: &str,
        _schema: datafusion::arrow::datatypes::SchemaRef,
        _context: &super::executor::StatementContext,
    ) -> Result<datafusion::execution::SendableRecordBatchStream, super::error::RemoteError> {
        Err(super::error::RemoteError::new(
            "pg",
            super::error::ErrorClass::Unavailable,
            "plans only",
        ))
    }

    fn estimate<'a>(
        &'a self,
        sql: &'a str,
    ) -> futures::future::BoxFuture<
        'a,
        Result<Option<super::executor::Estimate>, super::error::RemoteError>,
    > {
        let reads = |t: &str| sql.contains(&format!("\"w\".\"{t}\""));
        let (rows, cost) = if sql.starts_with("SELECT DISTINCT") {
            (5.0, 1.0)
        } else if sql.contains(" IN (") {
            // Narrowed by a runtime filter's keys.
            (10.0, if reads("b") { self.narrowed_join } else { 50.0 })
        } else if reads("a") && reads("c") {
            (10.0, 100_000.0)
        } else if reads("a") && reads("b") {
            // The source joins `a` with `b` slowly: split, the join is cheaper in Sluice.
            (100_000.0, 50_000.0)
        } else if reads("a") {
            (100_000.0, 2_000.0)
        } else if reads("b") {
            (100.0, 10.0)
        } else {
            (5.0, 10.0)
        };
        Box::pin(async move {
            Ok(Some(super::executor::Estimate {
                rows,
                width: 8.0,
                cost,
            }))
        })
    }

    fn tables<'a>(
        &'a self,
        _schemas: Option<&'a [String]>,
    ) -> futures::future::BoxFuture<'a, Result<Vec<RemoteTableDef>, super::error::RemoteError>>
    {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// Tables `a`, `b` and `c` on one source whose estimates are [`EstimatesByShape`]'s.
fn weighed_planner(narrowed_join: f64) -> Planner {
    use ColumnClass as C;
    use DataType as D;
    let planner = empty_planner("w");
    let executor: std::sync::Arc<dyn super::executor::RemoteExecutor> =
        std::sync::Arc::new(EstimatesByShape { narrowed_join });
    let catalog = planner.register_remote_source(
        RemoteSource {
            name: "pg".into(),
            dialect: PostgresDialect::shared(),
            pushdown: Pushdown::Full,
            estimates: Some(std::sync::Arc::new(super::cost::Estimates::new(vec![
                executor,
            ]))),
        },
        None,
    );
    let table = |name: &str, columns: Vec<RemoteColumn>| RemoteTableDef {
        schema: "w".into(),
        name: name.into(),
        view: false,
        rows_estimate: None,
        columns,
    };
    catalog
        .install(vec![
            table(
                "a",
                vec![
                    column("id", D::Int32, C::Exact),
                    column("bk", D::Int32, C::Exact),
                ],
            ),
            table(
                "b",
                vec![
                    column("id", D::Int32, C::Exact),
                    column("ck", D::Int32, C::Exact),
                ],
            ),
            table(
                "c",
                vec![
                    column("id", D::Int32, C::Exact),
                    column("label", D::Utf8, C::Text),
                ],
            ),
        ])
        .unwrap();
    planner
}

/// A join split below, because the source joins its inputs slowly, is still sent whole when
/// the join above narrows it by its keys to less than the split costs: the search keeps the
/// whole as the alternative instead of committing to the cheaper choice below (TPC-H Q2 over
/// two PostgreSQL databases flipped between the two plans with each `ANALYZE`'s sample).
#[tokio::test]
async fn a_split_below_does_not_hide_the_whole_statement_a_join_above_narrows() {
    let planner = weighed_planner(50.0);
    let sql = "SELECT a.id FROM a JOIN b ON a.bk = b.id JOIN c ON b.ck = c.id WHERE c.label = 'x'";
    let got = remote(&planner, sql).await;
    println!("{got:#?}");
    assert_eq!(got.len(), 2, "a ⋈ b whole, and c: {got:#?}");
    let ab = got
        .iter()
        .find(|r| r.1.contains("\"w\".\"a\""))
        .expect("a statement reads a");
    assert!(
        ab.1.contains("\"w\".\"b\"") && ab.1.contains("JOIN"),
        "{got:#?}"
    );
    assert!(
        !ab.1.contains("\"w\".\"c\""),
        "the join with c stays in Sluice: {got:#?}"
    );
    assert!(
        ab.2.as_deref().is_some_and(|why| why.starts_with("cost: ")),
        "{got:#?}"
    );
    let planned = planner.plan(sql, None, None).await.unwrap();
    let weighed: Vec<String> = planner
        .remote_statements(&planned)
        .into_iter()
        .filter_map(|r| r.estimate.and_then(|(_, why)| why))
        .collect();
    assert!(
        weighed
            .iter()
            .any(|w| w.contains("narrowed by the join above")),
        "{weighed:?}"
    );

    // Where the whole statement narrowed costs more than the split as chosen, the split stays:
    // a, b and c each their own statement, and nothing says it was narrowed from above.
    let planner = weighed_planner(1_000.0);
    let got = remote(&planner, sql).await;
    assert_eq!(got.len(), 3, "a, b and c: {got:#?}");
    let planned = planner.plan(sql, None, None).await.unwrap();
    assert!(
        planner
            .remote_statements(&planned)
            .into_iter()
            .filter_map(|r| r.estimate.and_then(|(_, why)| why))
            .all(|w| !w.contains("narrowed by the join above")),
        "{got:#?}"
    );
}
