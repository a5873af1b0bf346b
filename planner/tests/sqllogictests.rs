//! sqllogictest harness: every `testdata/slt/*.slt` file runs against a fresh [`Planner`] over
//! the TPC-H Parquet files in `testdata/tpch`, as catalog `local` with default schema `public`.
//!
//! `cargo test -p sluice-planner --test sqllogictests` runs them all; add file names to run
//! only those; add `--complete` to rewrite expected output from what the engine returns.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use sluice_planner::{Planner, PlannerOptions};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

struct SluiceDb {
    planner: Planner,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DbError(String);

impl SluiceDb {
    async fn new() -> Result<Self, DbError> {
        let planner = Planner::new(&PlannerOptions {
            default_catalog: Some("local".into()),
            default_schema: Some("public".into()),
            target_partitions: Some(2),
            ..PlannerOptions::default()
        })
        .map_err(|e| DbError(e.to_string()))?;
        let base = url::Url::from_directory_path(
            testdata()
                .join("tpch")
                .canonicalize()
                .map_err(|e| DbError(e.to_string()))?,
        )
        .map_err(|()| DbError("bad testdata path".into()))?;
        planner
            .load_parquet_source(
                sluice_planner::ParquetSourceSpec {
                    catalog: "local".into(),
                    schema: "public".into(),
                    base,
                    tables: Vec::new(),
                    pushdown_filters: false,
                },
                Arc::new(object_store::local::LocalFileSystem::new()),
            )
            .await
            .map_err(|e| DbError(e.to_string()))?;
        Ok(Self { planner })
    }
}

fn cell_type(t: &datafusion::arrow::datatypes::DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() || matches!(t, datafusion::arrow::datatypes::DataType::Decimal128(..))
    {
        DefaultColumnType::FloatingPoint
    } else if matches!(
        t,
        datafusion::arrow::datatypes::DataType::Utf8
            | datafusion::arrow::datatypes::DataType::LargeUtf8
            | datafusion::arrow::datatypes::DataType::Utf8View
    ) {
        DefaultColumnType::Text
    } else {
        DefaultColumnType::Any
    }
}

fn rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, DbError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DbError(e.to_string()))?;
        for i in 0..b.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| {
                        let s = f.value(i).to_string();
                        if s.is_empty() {
                            "(empty)".to_owned()
                        } else {
                            s
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl AsyncDB for SluiceDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let planned = self
            .planner
            .plan(sql, None, None)
            .await
            .map_err(|e| DbError(format!("{}: {e}", kind(&e))))?;
        let schema = planned.output_schema();
        let stream = self
            .planner
            .execute(&planned, None)
            .map_err(|e| DbError(e.to_string()))?;
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| {
            let e = sluice_planner::PlanError::classify(e);
            DbError(format!("{}: {e}", kind(&e)))
        })?;
        Ok(DBOutput::Rows {
            types: schema
                .fields()
                .iter()
                .map(|f| cell_type(f.data_type()))
                .collect(),
            rows: rows(&batches)?,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "sluice"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

/// Error class prefix, so `.slt` files can assert the class (`read_only`, `table_not_found`).
fn kind(e: &sluice_planner::PlanError) -> &'static str {
    use sluice_planner::PlanError as P;
    match e {
        P::Empty | P::Parse(_) | P::Invalid(_) | P::TooDeep(_) => "sql_invalid",
        P::TooLarge(_) => "request_too_large",
        P::Data(_) => "data_error",
        P::MultipleStatements(_) | P::ReadOnly(_) => "read_only",
        P::TableNotFound(_) => "table_not_found",
        P::SourceNotFound(_) => "source_not_found",
        P::SourceUnavailable { .. } => "source_unavailable",
        P::Params(_) => "bad_request",
        P::Unsupported(_) => "unsupported",
        P::Execution(_) => "execution",
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let complete = args.iter().any(|a| a == "--complete");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(testdata().join("slt")) {
        Ok(d) => d
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "slt"))
            .filter(|p| {
                filters.is_empty()
                    || filters
                        .iter()
                        .any(|f| p.to_string_lossy().contains(f.as_str()))
            })
            .collect(),
        Err(e) => {
            eprintln!("cannot read testdata/slt: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    files.sort();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = runtime.block_on(async {
            let mut runner = sqllogictest::Runner::new(SluiceDb::new);
            if complete {
                runner
                    .update_test_file(
                        file,
                        " ",
                        sqllogictest::default_validator,
                        sqllogictest::default_normalizer,
                        sqllogictest::default_column_validator,
                    )
                    .await
                    .map_err(|e| e.to_string())
            } else {
                runner
                    .run_file_async(file)
                    .await
                    .map_err(|e| e.display(true).to_string())
            }
        });
        match result {
            Ok(()) => {
                println!("test slt::{name} ... ok");
                passed += 1;
            }
            Err(e) => {
                println!("test slt::{name} ... FAILED\n{e}");
                failed += 1;
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    // A name filter that selects no .slt file (a run of one HTTP test) is not a failure.
    if failed == 0 && (passed > 0 || !filters.is_empty()) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
