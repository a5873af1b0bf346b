//! The targeted cases of `testdata/federation/cases.sql`: each with pushdown on and off,
//! answers compared, and what PostgreSQL received checked against the case's directives
//! and against `POST /v1/explain`.

use super::{Run, app, fixture, logged, ordered, run, same};
use crate::testdata;

#[derive(Debug, Default)]
struct Case {
    name: String,
    sql: String,
    pushed: Vec<String>,
    local: Vec<String>,
    statements: Option<usize>,
    error: Option<String>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(testdata().join("federation/cases.sql")).unwrap();
    let mut out: Vec<Case> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- case: ") {
            out.push(Case {
                name: name.trim().to_owned(),
                ..Case::default()
            });
            continue;
        }
        let Some(case) = out.last_mut() else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("-- ") {
            if let Some(v) = rest.strip_prefix("pushed: ") {
                case.pushed.push(v.to_owned());
            } else if let Some(v) = rest.strip_prefix("local: ") {
                case.local.push(v.to_owned());
            } else if let Some(v) = rest.strip_prefix("statements: ") {
                case.statements = Some(v.trim().parse().unwrap());
            } else if let Some(v) = rest.strip_prefix("error: ") {
                case.error = Some(v.trim().to_owned());
            }
            continue;
        }
        if !line.trim().is_empty() {
            if !case.sql.is_empty() {
                case.sql.push('\n');
            }
            case.sql.push_str(line);
        }
    }
    out
}

fn fill(sql: &str, mode: &str) -> String {
    sql.replace("{pg}", &format!("pga_{mode}.fed"))
        .replace("{local}", "local.public")
}

/// A logged statement without the runtime filter a join may have wrapped around it.
fn planned_part(logged: &str) -> &str {
    logged
        .strip_prefix("SELECT * FROM (")
        .and_then(|s| s.rsplit_once(") AS \"sluice_rf\"("))
        .map_or(logged, |(inner, _)| inner)
}

/// Runs one case; every way it fails, as messages.
async fn check(app: &crate::TestApp, case: &Case) -> Vec<String> {
    let mut failures = Vec::new();
    let what = format!("case {}", case.name);
    let full_sql = fill(&case.sql, "full");
    let full: Run = run(app, &full_sql).await;
    match (&case.error, &full.outcome) {
        (Some(code), Err((_, got, message))) if got != code => {
            failures.push(format!("{what}: expected {code}, got {got}: {message}"));
        }
        (Some(_), Err(_)) => {}
        (Some(code), Ok(_)) => failures.push(format!("{what}: expected {code}, got an answer")),
        (None, Err(e)) => failures.push(format!("{what}: pushdown full failed: {e:?}")),
        (None, Ok(full_answer)) => {
            let none = run(app, &fill(&case.sql, "none")).await;
            // The reference gets whole tables and nothing else: no filter, join, aggregate,
            // order or limit, and no join keys at run time.
            for s in logged(&none.query_id, 1).await {
                if [
                    " WHERE ",
                    " JOIN ",
                    " GROUP BY ",
                    " ORDER BY ",
                    " LIMIT ",
                    "sluice_rf",
                ]
                .iter()
                .any(|k| s.contains(k))
                {
                    failures.push(format!("{what}: pushdown none sent more than a table: {s}"));
                }
            }
            match none.outcome {
                Err(e) => failures.push(format!("{what}: pushdown none failed: {e:?}")),
                Ok(none_answer) => {
                    if let Err(e) = same(&what, full_answer, &none_answer, ordered(&case.sql)) {
                        failures.push(e);
                    }
                }
            }
        }
    }
    // What PostgreSQL received is what explain shows, and what the case says.
    let explain = app.explain(&full_sql).await;
    let Some(remote) = explain["remote"].as_array() else {
        // A statement that fails while planning fails to explain too.
        if case.error.is_none() {
            failures.push(format!("{what}: explain failed: {explain}"));
        }
        return failures;
    };
    let shown: Vec<String> = remote
        .iter()
        .filter(|r| r["source"] == "pga_full")
        .map(|r| r["sql"].as_str().unwrap_or_default().to_owned())
        .collect();
    let sent = logged(&full.query_id, shown.len()).await;
    let mut planned: Vec<&str> = sent.iter().map(|s| planned_part(s)).collect();
    let mut expected: Vec<&str> = shown.iter().map(String::as_str).collect();
    planned.sort_unstable();
    expected.sort_unstable();
    // A failed statement may stop the others before they are sent.
    if case.error.is_none() && planned != expected {
        failures.push(format!(
            "{what}: PostgreSQL ran {planned:#?}, explain showed {expected:#?}"
        ));
    }
    if let Some(n) = case.statements
        && sent.len() != n
    {
        failures.push(format!(
            "{what}: {} statements sent, not {n}: {sent:#?}",
            sent.len()
        ));
    }
    for p in &case.pushed {
        if !sent.iter().any(|s| s.contains(p.as_str())) {
            failures.push(format!(
                "{what}: expected {p:?} in what PostgreSQL received: {sent:#?}"
            ));
        }
    }
    for l in &case.local {
        if sent.iter().any(|s| s.contains(l.as_str())) {
            failures.push(format!(
                "{what}: {l:?} must stay local, but PostgreSQL received: {sent:#?}"
            ));
        }
    }
    failures
}

#[actix_web::test]
async fn targeted_cases_do_not_depend_on_pushdown_and_reach_postgres_as_shown() {
    let Some(f) = fixture().await else {
        return;
    };
    let app = app(&f).await;
    let cases = cases();
    assert!(cases.len() >= 80, "{} targeted cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        failures.extend(check(&app, case).await);
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
