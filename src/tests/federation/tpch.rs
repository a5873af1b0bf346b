//! The 22 TPC-H queries in five layouts, each with `pushdown = "full"` and `"none"` (and, in
//! the two all-PostgreSQL layouts, a source whose estimates make the cost-aware cut split):
//! everything in PostgreSQL; a star split (facts in Parquet, dimensions in PostgreSQL); the
//! tables in two PostgreSQL databases as two sources; facts in Parquet with dimensions in
//! Snowflake (fakesnow); and a three-way split (lineitem in Parquet, orders and customers in
//! PostgreSQL, the rest in Snowflake). The answers must be equal, and equal to DuckDB's over
//! the same Parquet files.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Answer, Cell, TPCH_TABLES, app, assert_same, fixture, ordered, pulled, run};
use crate::testdata;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    AllPostgres,
    Star,
    TwoDatabases,
    /// Facts in Parquet, dimensions in Snowflake.
    SnowflakeStar,
    /// `lineitem` in Parquet, `orders` and `customer` in PostgreSQL, the rest in Snowflake.
    ThreeWay,
}

/// Each table's catalog and schema in `layout`, with remote sources in `mode`.
fn home(layout: Layout, table: &str, mode: &str) -> String {
    let facts = matches!(table, "lineitem" | "orders");
    let first_db = matches!(table, "lineitem" | "orders" | "customer");
    match layout {
        Layout::AllPostgres => format!("pga_{mode}.tpch"),
        Layout::Star if facts => "local.public".to_owned(),
        Layout::Star => format!("pga_{mode}.tpch"),
        Layout::TwoDatabases if first_db => format!("pga_{mode}.tpch"),
        Layout::TwoDatabases => format!("pgb_{mode}.tpch"),
        Layout::SnowflakeStar if facts => "local.public".to_owned(),
        Layout::SnowflakeStar => format!("sf_{mode}.public"),
        Layout::ThreeWay if table == "lineitem" => "local.public".to_owned(),
        Layout::ThreeWay if first_db => format!("pga_{mode}.tpch"),
        Layout::ThreeWay => format!("sf_{mode}.public"),
    }
}

/// `sql` with every TPC-H table name in a `FROM` list qualified for `layout` and `mode`.
fn qualify(sql: &str, layout: Layout, mode: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 256);
    let mut word = String::new();
    // In a FROM list, and the last token was FROM, JOIN or a comma there.
    let (mut in_from, mut table_next) = (false, false);
    let mut quoted = false;
    let end_word = |word: &mut String, out: &mut String, in_from: &mut bool, next: &mut bool| {
        if word.is_empty() {
            return;
        }
        let upper = word.to_ascii_uppercase();
        if *in_from && *next && TPCH_TABLES.contains(&word.as_str()) {
            out.push_str(&format!("{}.{word}", home(layout, word, mode)));
        } else {
            out.push_str(word);
        }
        match upper.as_str() {
            "FROM" | "JOIN" => {
                *in_from = true;
                *next = true;
            }
            "WHERE" | "GROUP" | "ORDER" | "HAVING" | "LIMIT" | "UNION" | "SELECT" | "ON" => {
                *in_from = false;
                *next = false;
            }
            _ => *next = false,
        }
        word.clear();
    };
    for c in sql.chars() {
        if quoted || c == '\'' {
            end_word(&mut word, &mut out, &mut in_from, &mut table_next);
            if c == '\'' {
                quoted = !quoted;
            }
            out.push(c);
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            word.push(c);
            continue;
        }
        end_word(&mut word, &mut out, &mut in_from, &mut table_next);
        match c {
            ',' if in_from => table_next = true,
            ')' => in_from = false,
            _ => {}
        }
        out.push(c);
    }
    end_word(&mut word, &mut out, &mut in_from, &mut table_next);
    out
}

fn queries() -> Vec<(String, String)> {
    let dir = testdata().join("../benches/tpch");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().to_lowercase(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert_eq!(out.len(), 22, "the 22 TPC-H queries in benches/tpch");
    out
}

/// DuckDB's answers, by query (`q01` …), or `None` without DuckDB (never in CI).
async fn duckdb_answers() -> Option<BTreeMap<String, Vec<Vec<Value>>>> {
    let python = crate::needs("SLUICE_TEST_PYTHON", "the project's Python with DuckDB")?;
    let mut cmd = std::process::Command::new(python);
    cmd.arg(testdata().join("federation/duckdb_tpch.py"))
        .arg(testdata().join("tpch"))
        .arg(testdata().join("../benches/tpch"));
    let out = crate::output(cmd).await;
    assert!(
        out.status.success(),
        "DuckDB failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// A value as DuckDB and Sluice can both be read: numbers within 1e-6 relative (DuckDB
/// averages decimals as doubles), everything else as text.
fn loosely_equal(sluice: &Cell, duck: &Value) -> bool {
    match (sluice, duck) {
        (Cell::Null, Value::Null) => true,
        (Cell::Float(a), Value::Number(b)) => {
            let b = b.as_f64().unwrap_or(f64::NAN);
            (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
        }
        (Cell::Text(a), Value::Number(b)) => {
            let (Ok(a), Some(b)) = (a.parse::<f64>(), b.as_f64()) else {
                return false;
            };
            (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
        }
        (Cell::Text(a), Value::String(b)) => a == b,
        _ => false,
    }
}

fn sort_key(cells: &[String]) -> String {
    cells.join("\u{1}")
}

fn assert_matches_duckdb(what: &str, answer: &Answer, duck: &[Vec<Value>]) {
    assert_eq!(answer.rows.len(), duck.len(), "{what}: row count vs DuckDB");
    // Compare as sorted rows: the engines may break ties in a different order.
    let show = |c: &Cell| match c {
        Cell::Null => "NULL".to_owned(),
        Cell::Float(f) => format!("{f:.2}"),
        Cell::Text(t) => t
            .parse::<f64>()
            .map_or_else(|_| t.clone(), |f| format!("{f:.2}")),
    };
    let show_duck = |v: &Value| match v {
        Value::Null => "NULL".to_owned(),
        Value::Number(n) => format!("{:.2}", n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => s
            .parse::<f64>()
            .map_or_else(|_| s.clone(), |f| format!("{f:.2}")),
        other => other.to_string(),
    };
    let mut ours: Vec<(String, &Vec<Cell>)> = answer
        .rows
        .iter()
        .map(|r| (sort_key(&r.iter().map(show).collect::<Vec<_>>()), r))
        .collect();
    let mut theirs: Vec<(String, &Vec<Value>)> = duck
        .iter()
        .map(|r| (sort_key(&r.iter().map(show_duck).collect::<Vec<_>>()), r))
        .collect();
    ours.sort_by(|a, b| a.0.cmp(&b.0));
    theirs.sort_by(|a, b| a.0.cmp(&b.0));
    for ((_, a), (_, b)) in ours.iter().zip(&theirs) {
        assert_eq!(a.len(), b.len(), "{what}: columns vs DuckDB");
        for (x, y) in a.iter().zip(b.iter()) {
            assert!(loosely_equal(x, y), "{what}: {x:?} vs DuckDB's {y}");
        }
    }
}

#[actix_web::test]
async fn tpch_answers_do_not_depend_on_pushdown_and_match_duckdb() {
    let Some(f) = fixture().await else {
        return;
    };
    let app = app(&f).await;
    let duck = duckdb_answers().await;
    let mut bytes: BTreeMap<(String, &str), u64> = BTreeMap::new();
    let mut splits: BTreeMap<String, usize> = BTreeMap::new();
    let mut layouts = vec![Layout::AllPostgres, Layout::Star, Layout::TwoDatabases];
    if crate::snowflake::seeded().await.is_some() {
        layouts.extend([Layout::SnowflakeStar, Layout::ThreeWay]);
    }
    for layout in layouts {
        for (name, sql) in queries() {
            let what = format!("{name} ({layout:?})");
            let full = run(&app, &qualify(&sql, layout, "full")).await;
            let none = run(&app, &qualify(&sql, layout, "none")).await;
            let (Ok(fa), Ok(na)) = (&full.outcome, &none.outcome) else {
                panic!(
                    "{what}: full {:?}, none {:?}",
                    full.outcome.as_ref().err(),
                    none.outcome.as_ref().err()
                );
            };
            assert_same(&what, fa, na, ordered(&sql));
            if let Some(duck) = &duck {
                assert_matches_duckdb(&what, fa, &duck[&name]);
            }
            for (mode, r) in [("full", &full), ("none", &none)] {
                let total: u64 = pulled(&app, &r.query_id).await.values().map(|p| p.2).sum();
                *bytes.entry((format!("{layout:?}"), mode)).or_default() += total;
            }
            // The cost-aware cut's splits give the same answers.
            if matches!(layout, Layout::AllPostgres | Layout::TwoDatabases) {
                let sql = qualify(&sql, layout, "split");
                let split = run(&app, &sql).await;
                let Ok(sa) = &split.outcome else {
                    panic!("{what}: split {:?}", split.outcome.as_ref().err());
                };
                assert_same(&format!("{what} split"), sa, na, ordered(&sql));
                let explain = app.explain(&sql).await;
                let by_cost = explain["remote"].as_array().is_some_and(|r| {
                    r.iter().any(|s| {
                        s["kept_local"]
                            .as_str()
                            .is_some_and(|w| w.starts_with("cost: "))
                    })
                });
                *splits.entry(format!("{layout:?}")).or_default() += usize::from(by_cost);
            }
        }
    }
    eprintln!("queries the cost-aware cut split, by layout: {splits:?}");
    for layout in ["AllPostgres", "TwoDatabases"] {
        assert!(
            splits.get(layout).copied().unwrap_or(0) >= 10,
            "{layout}: the split sources must exercise the cost-aware cut: {splits:?}"
        );
    }
    eprintln!("bytes pulled by layout and pushdown: {bytes:?}");
    // Sending whole queries pulls less than sending nothing: the point of it, measured.
    let all_full = bytes[&("AllPostgres".to_owned(), "full")];
    let all_none = bytes[&("AllPostgres".to_owned(), "none")];
    assert!(
        all_full * 10 < all_none,
        "everything in PostgreSQL: {all_full} bytes with pushdown, {all_none} without"
    );
    for layout in ["SnowflakeStar", "ThreeWay"] {
        let Some(full) = bytes.get(&(layout.to_owned(), "full")) else {
            continue;
        };
        let none = bytes[&(layout.to_owned(), "none")];
        assert!(
            full * 5 < none,
            "{layout}: {full} bytes with pushdown, {none} without"
        );
    }
}

#[test]
fn tables_are_qualified_and_columns_are_not() {
    assert_eq!(
        qualify(
            "SELECT n1.n_name AS nation FROM nation n1, lineitem WHERE n1.nation = 'nation' \
             AND x IN (SELECT 1 FROM region) ORDER BY nation",
            Layout::Star,
            "full"
        ),
        "SELECT n1.n_name AS nation FROM pga_full.tpch.nation n1, local.public.lineitem \
         WHERE n1.nation = 'nation' AND x IN (SELECT 1 FROM pga_full.tpch.region) ORDER BY nation"
    );
}
