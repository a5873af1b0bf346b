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

fn planner(pushdown: Pushdown) -> Planner {
    let planner = Planner::new(&PlannerOptions {
        default_catalog: Some("pg".into()),
        default_schema: Some("s".into()),
        ..Default::default()
    })
    .unwrap();
    for (name, schema) in [("pg", "s"), ("other", "s")] {
        let catalog = planner.register_remote_source(
            RemoteSource {
                name: name.into(),
                dialect: PostgresDialect::shared(),
                pushdown,
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
