//! SQL parity: every statement of `testdata/parity/parity.sql` runs through Sluice's HTTP path
//! (Arrow IPC) and through a plain DataFusion `SessionContext` over the same Parquet files,
//! in the same test, and the answers must be equal: column names, types (string views and
//! plain strings count as one, as Sluice always sends plain strings), and rows. Rows are
//! compared as a multiset of rendered values, floats to 10 significant digits (parallel
//! aggregation adds in any order). Nondeterministic statements (`-- shape`) compare names,
//! types and row counts; `EXPLAIN` compares names, types and that both have a plan.
//! Parameters go through Sluice's binder; the reference gets the same values as literals.

use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use serde_json::{Value, json};

use crate::{ARROW, TestApp};

/// One corpus entry.
struct Case {
    sql: String,
    shape_only: bool,
    params: Option<Value>,
}

fn corpus() -> Vec<Case> {
    let text = std::fs::read_to_string(crate::testdata().join("parity/parity.sql")).unwrap();
    let mut cases = Vec::new();
    let (mut shape_only, mut params, mut sql) = (false, None, String::new());
    for line in text.lines() {
        let trimmed = line.trim();
        if sql.is_empty() {
            if let Some(d) = trimmed.strip_prefix("-- ") {
                if d == "shape" {
                    shape_only = true;
                } else if let Some(p) = d.strip_prefix("params: ") {
                    params = Some(serde_json::from_str(p).unwrap());
                }
                continue;
            }
            if trimmed.is_empty() || trimmed.starts_with("--") {
                continue;
            }
        }
        sql.push_str(line);
        sql.push('\n');
        if trimmed.ends_with(';') {
            let stmt = sql.trim().trim_end_matches(';').to_owned();
            cases.push(Case {
                sql: stmt,
                shape_only: std::mem::take(&mut shape_only),
                params: params.take(),
            });
            sql.clear();
        }
    }
    cases
}

/// The reference: DataFusion as it comes, over the same files, with the SQL options that
/// are Sluice's documented semantics (decimal literals, `information_schema`, the defaults).
async fn reference() -> SessionContext {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema("local", "public");
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    let ctx = SessionContext::new_with_config(config);
    let dir = crate::testdata().join("tpch");
    for t in [
        "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
    ] {
        ctx.register_parquet(
            t,
            dir.join(format!("{t}.parquet")).to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    }
    ctx
}

/// `value` as an SQL literal, for the reference.
fn literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        other => panic!("no literal for {other}"),
    }
}

/// The statement with its parameters spliced in as literals (the oracle may; Sluice never).
fn spliced(sql: &str, params: &Value) -> String {
    let mut out = sql.to_owned();
    match params {
        Value::Array(values) => {
            // Highest first, so `$1` does not eat the start of `$10`.
            for (i, v) in values.iter().enumerate().rev() {
                out = out.replace(&format!("${}", i + 1), &literal(v));
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                out = out
                    .replace(&format!("${k}"), &literal(v))
                    .replace(&format!(":{k}"), &literal(v));
            }
        }
        other => panic!("params must be an array or object, not {other}"),
    }
    out
}

/// Types as clients compare them: views are the same values as their plain forms.
fn normalized(t: &DataType) -> DataType {
    let field = |f: &Arc<Field>| Arc::new(Field::new(f.name(), normalized(f.data_type()), true));
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            DataType::List(field(f))
        }
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field).collect()),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        other => other.clone(),
    }
}

/// An answer in comparable form.
#[derive(Debug, PartialEq)]
struct Answer {
    columns: Vec<(String, String)>,
    rows: Vec<String>,
}

fn answer(schema: &SchemaRef, batches: &[RecordBatch]) -> Answer {
    let columns = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), normalized(f.data_type()).to_string()))
        .collect();
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for i in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .zip(batch.columns())
                .map(|(f, c)| {
                    let text = f.value(i).to_string();
                    match c.data_type() {
                        DataType::Float16 | DataType::Float32 | DataType::Float64
                            if c.is_valid(i) =>
                        {
                            text.parse::<f64>()
                                .map_or(text.clone(), |v| format!("{v:.9e}"))
                        }
                        _ => text,
                    }
                })
                .collect();
            rows.push(cells.join("\u{1f}"));
        }
    }
    rows.sort();
    Answer { columns, rows }
}

async fn sluice_answer(app: &TestApp, case: &Case) -> Result<Answer, String> {
    let mut body = json!({ "sql": case.sql });
    if let Some(p) = &case.params {
        body["params"] = p.clone();
    }
    let resp = app.query(body, ARROW).await;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
    }
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes.to_vec()), None)
        .map_err(|e| e.to_string())?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok(answer(&schema, &batches))
}

async fn reference_answer(ctx: &SessionContext, case: &Case) -> Result<Answer, String> {
    let sql = match &case.params {
        Some(p) => spliced(&case.sql, p),
        None => case.sql.clone(),
    };
    let df = ctx.sql(&sql).await.map_err(|e| e.to_string())?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(|e| e.to_string())?;
    Ok(answer(&schema, &batches))
}

#[actix_web::test]
async fn sluice_answers_what_datafusion_answers() {
    let app = TestApp::spawn().await;
    let ctx = reference().await;
    let cases = corpus();
    assert!(
        cases.len() >= 300,
        "the corpus has {} statements",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let ours = sluice_answer(&app, case).await;
        let theirs = reference_answer(&ctx, case).await;
        let (ours, theirs) = match (ours, theirs) {
            (Ok(o), Ok(t)) => (o, t),
            (o, t) => {
                failures.push(format!(
                    "{}\n  sluice: {o:?}\n  datafusion: {t:?}",
                    case.sql
                ));
                continue;
            }
        };
        let explain = case
            .sql
            .trim_start()
            .to_ascii_uppercase()
            .starts_with("EXPLAIN");
        // Parameters are bound after the names are chosen: `$1` names its column, the
        // spliced literal names the reference's.
        let same_columns = if case.params.is_some() {
            ours.columns
                .iter()
                .map(|c| &c.1)
                .eq(theirs.columns.iter().map(|c| &c.1))
        } else {
            ours.columns == theirs.columns
        };
        let same = same_columns
            && if explain {
                !ours.rows.is_empty() && !theirs.rows.is_empty()
            } else if case.shape_only {
                ours.rows.len() == theirs.rows.len()
            } else {
                ours.rows == theirs.rows
            };
        if !same {
            let show = |a: &Answer| {
                format!(
                    "{:?} {} rows: {:?}",
                    a.columns,
                    a.rows.len(),
                    a.rows.iter().take(5).collect::<Vec<_>>()
                )
            };
            failures.push(format!(
                "{}\n  sluice:     {}\n  datafusion: {}",
                case.sql,
                show(&ours),
                show(&theirs)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} statements differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
