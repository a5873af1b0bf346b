//! The `sluice` binary: `serve`, `check`, `query`, `keys`, `sources` and `mcp-config`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice::Application;
use sluice::cli::query::OutputFormat;
use sluice_schemas::Config;

/// jemalloc returns what big joins and sorts freed to the OS (glibc's arenas keep it), and is
/// faster under the query runtime's threads: benches/RESULTS.md has the figures.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// On Linux jemalloc is built with `thp:always` (`.cargo/config.toml`) for one of its two
/// effects: it then clears reused memory for a zeroed allocation with `memset`, where by default
/// it hands the pages back to the kernel and faults them in again (DataFusion's map for a join on
/// a dense integer key is read before it is written, so each page faulted twice, the second time
/// flushing the other cores' TLBs: TPC-H Q21 1.14-1.28x embedded DataFusion, 0.80-1.03x with
/// `memset`). The other effect, huge pages for its arenas, keeps memory resident that jemalloc
/// purged in part (150-240 MiB more after heavy queries), so the process opts out of huge pages,
/// unless the operator chose jemalloc's `thp` (in `_RJEM_MALLOC_CONF`). benches/RESULTS.md,
/// "Q21 and jemalloc's zeroing".
fn keep_pages_small() {
    #[cfg(target_os = "linux")]
    if !std::env::var("_RJEM_MALLOC_CONF").is_ok_and(|conf| sets_thp(&conf)) {
        // Best effort: where it is refused, the kernel's own setting applies.
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
}

/// Whether a jemalloc configuration string (`key:value,…`) sets `thp` (not `metadata_thp`).
#[cfg(target_os = "linux")]
fn sets_thp(conf: &str) -> bool {
    conf.split(',').any(|option| {
        option
            .split(':')
            .next()
            .is_some_and(|key| key.trim() == "thp")
    })
}

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "A federated SQL gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the embedded default over testdata/ when no config is given).
    Serve {
        /// Config file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to listen on, overriding the config.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Log as JSON lines.
        #[arg(long)]
        log_json: bool,
    },
    /// Validate a config and report every error at once.
    Check {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Submit SQL to a server and print the result.
    Query {
        #[command(flatten)]
        to: sluice::cli::Connection,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// Spool the result on the server and write it to this file (`.parquet`, `.arrow` or
        /// `.csv`), fetching segments in parallel with a progress line; a failed segment is
        /// fetched again.
        #[arg(long, conflicts_with = "format")]
        out: Option<std::path::PathBuf>,
        /// Segments fetched at once with `--out`.
        #[arg(long, default_value_t = 4, requires = "out")]
        parallel: usize,
        /// The SQL statement.
        sql: String,
    },
    /// Show each source with its replicas: health, score, circuit, latency, in-flight, queue;
    /// or add, replace and remove sources in the registry every server follows.
    Sources {
        #[command(flatten)]
        to: sluice::cli::Connection,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<sluice::cli::sources::SourcesCommand>,
    },
    /// Print the JSON an MCP client (Claude Code, Claude Desktop, VS Code) needs to use this
    /// server's /mcp with an API key.
    McpConfig {
        /// Server URL, as the MCP client reaches it.
        #[arg(long, env = "SLUICE_URL", default_value = sluice::cli::DEFAULT_SERVER)]
        server: String,
        /// API key (a `${SLUICE_API_KEY}` placeholder when absent).
        #[arg(long, env = "SLUICE_API_KEY", hide_env_values = true)]
        key: Option<String>,
        /// The client whose config file the snippet is for.
        #[arg(long, value_enum, default_value_t = sluice::cli::mcp_config::McpClient::ClaudeCode)]
        client: sluice::cli::mcp_config::McpClient,
    },
    /// Manage API keys: through a server (an admin key), or on the store a config names.
    Keys {
        /// The server (ignored with --config), with an admin key or an admin's token.
        #[command(flatten)]
        to: sluice::cli::Connection,
        /// Work on the metadata store this config names, without a server.
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: sluice::cli::keys::KeysCommand,
    },
    /// Manage row filters and column masks through a server (an admin key or token).
    Policies {
        /// The server, with an admin key or an admin's token.
        #[command(flatten)]
        to: sluice::cli::Connection,
        #[command(subcommand)]
        command: sluice::cli::policies::PoliciesCommand,
    },
}

fn main() -> ExitCode {
    keep_pages_small();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            log_json,
        } => serve(config, listen, log_json),
        Command::Check { config } => check(&config),
        Command::Query {
            to,
            out: Some(out),
            parallel,
            sql,
            ..
        } => match sluice::cli::spool::download(&to, &sql, &out, parallel) {
            Ok(d) => {
                eprintln!(
                    "{} rows in {} segments ({} bytes, {} fetches retried) written to {}",
                    d.rows,
                    d.segments,
                    d.bytes,
                    d.retried,
                    out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Query {
            to, format, sql, ..
        } => match sluice::cli::query::run(&to, format, &sql) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::McpConfig {
            server,
            key,
            client,
        } => {
            let snippet = sluice::cli::mcp_config::snippet(&server, key.as_deref(), client);
            println!(
                "{}",
                serde_json::to_string_pretty(&snippet).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Sources {
            to,
            command: Some(command),
            ..
        } => printed(sluice::cli::sources::change(&to, &command)),
        Command::Sources {
            to,
            json,
            command: None,
        } => match sluice::cli::sources::fetch(&to) {
            Ok(list) => {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&list).unwrap_or_default()
                    );
                } else {
                    print!("{}", sluice::cli::sources::render(&list));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Keys {
            to,
            config,
            command,
        } => {
            let target = match config {
                Some(path) => sluice::cli::keys::Target::Config(path),
                None => sluice::cli::keys::Target::Server(to),
            };
            printed(sluice::cli::keys::run(&target, &command))
        }
        Command::Policies { to, command } => printed(sluice::cli::policies::run(&to, &command)),
    }
}

/// Prints an admin command's answer, or its error.
fn printed(answer: Result<serde_json::Value, String>) -> ExitCode {
    match answer {
        Ok(v) => {
            sluice::cli::keys::print(&v);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let errors = match sluice_schemas::loader::load_file(path) {
        // The config parses: also build each source's store, pools or client (no network),
        // which checks locations, URLs, options and credentials against what they accept.
        Ok(cfg) => cfg
            .sources
            .iter()
            .filter_map(|s| {
                sluice_actors::sources::validate(s)
                    .err()
                    .map(|e| format!("sources.{}: {e}", s.name()))
            })
            .chain(cfg.policies.iter().filter_map(|p| {
                sluice::governance::policies_check(p)
                    .err()
                    .map(|e| format!("policies.{}: {e}", p.name))
            }))
            .collect::<Vec<_>>(),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    };
    if errors.is_empty() {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    eprintln!("{}: {} error(s)", path.display(), errors.len());
    for e in &errors {
        eprintln!("  - {e}");
    }
    ExitCode::FAILURE
}

fn serve(
    config: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    log_json: bool,
) -> ExitCode {
    let embedded = config.is_none();
    let path = config.clone();
    let mut config = match &config {
        Some(path) => match sluice_schemas::loader::load_file(path) {
            Ok(c) => c,
            Err(errors) => {
                eprintln!("{}: {} error(s)", path.display(), errors.0.len());
                for e in &errors.0 {
                    eprintln!("  - {e}");
                }
                return ExitCode::FAILURE;
            }
        },
        None => Config::embedded(&sluice::embedded_data_dir()),
    };
    // What the file said, before the command line's overrides: what a reload compares with.
    let file = path.clone().map(|p| (p, config.clone()));
    if let Some(addr) = listen {
        config.server.listen = addr;
        // The embedded default's Flight listener follows `--listen` to its address, on a free
        // port (printed in the ready line).
        if embedded && let Some(flight) = &mut config.flight {
            flight.listen = std::net::SocketAddr::new(addr.ip(), 0);
        }
        if embedded && let Some(pg) = &mut config.pg {
            pg.listen = std::net::SocketAddr::new(addr.ip(), 0);
        }
    }
    // The query runtime is built first and lives beside the actix System, never under it.
    let runtime = match sluice::query_runtime(None, "sluice-query") {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the query runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if log_json {
        config.log.format = sluice_schemas::LogFormat::Json;
    }
    // Logs and traces, from `[log]` and `[telemetry]`; the exporter's requests run on the
    // query runtime.
    if let Err(e) = sluice::telemetry::init(&config.log, &config.telemetry, Some(runtime.handle()))
    {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    // With a config file, SIGHUP reads it again (registered before serving, so a SIGHUP from
    // here on never ends the process); without one, SIGHUP keeps its default.
    #[cfg(unix)]
    let hangups = match &path {
        Some(_) => {
            let _in = runtime.enter();
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "SIGHUP cannot be caught: the config is read again through the API only.");
                    None
                }
            }
        }
        None => None,
    };
    let handle = runtime.handle().clone();
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build_from(config, file, handle).await?;
        #[cfg(unix)]
        if let Some(hangups) = hangups {
            app.reload_on(hangups);
        }
        let mut urls = format!("url={}", app.url());
        if let Some(flight) = app.flight_url() {
            urls.push_str(&format!(" flight={flight}"));
        }
        if let Some(pg) = app.pg_url() {
            urls.push_str(&format!(" pg={pg}"));
        }
        match app.admin_key() {
            Some(key) => println!("sluice ready: {urls} api_key={key}"),
            None if app.authenticates() => {
                println!("sluice ready: {urls} (keys in the configured store)");
            }
            None => println!("sluice ready: {urls} (authentication off)"),
        }
        app.run().await.map_err(|e| sluice::StartupError::Bind {
            addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            source: e,
        })
    });
    // The spans still buffered go out on the runtime, so before it stops.
    sluice::telemetry::flush();
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
