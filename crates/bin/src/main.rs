//! The `cflogs` binary: loads the configuration, builds the adapters, injects them into one
//! pipeline per stream, and runs a command.

mod commands;
mod config;
mod demo;
mod doctor;
mod metrics;
mod wiring;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Moves Cloudflare audit logs into PostgreSQL (or SQLite) and a Parquet archive, exactly once.
///
/// Configuration comes from environment variables (the same names as the Python poller's
/// `.env`), a `.env` file in the working directory, and an optional TOML file
/// (`--config`). Run `cflogs config --list` for every variable. Without PostgreSQL settings
/// the analytics store is SQLite under ./cflogs-data; without S3 settings the archive is a
/// local directory there.
#[derive(Parser, Debug)]
#[command(name = "cflogs", version, about, long_about)]
struct Cli {
    /// TOML file with settings and `[[streams]]` tables (also CFLOGS_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The .env file to read, if it exists.
    #[arg(long, global = true, default_value = ".env")]
    env_file: PathBuf,
    /// Log format (also CFLOGS_LOG_FORMAT) [default: human].
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

/// `--take-over`, shared by the commands that take streams.
#[derive(Args, Debug)]
struct TakeOver {
    /// Take each stream's lease even while another instance holds it (that instance goes to
    /// standby and claims the stream again once this one releases or loses it).
    #[arg(long)]
    take_over: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every configured stream continuously, each supervised; stop cleanly on Ctrl-C or
    /// SIGTERM. A stream another instance holds waits in standby.
    Run {
        #[command(flatten)]
        lease: TakeOver,
    },
    /// Catch every stream up once and exit (for cron and tests); refused for a stream another
    /// instance holds, unless --take-over.
    Once {
        #[command(flatten)]
        lease: TakeOver,
    },
    /// Read a past range for streams cflogs has not read yet, with progress.
    Backfill {
        /// Start (RFC 3339), e.g. 2026-11-01T00:00:00Z.
        #[arg(long)]
        since: chrono::DateTime<chrono::Utc>,
        /// End (RFC 3339); default: now.
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        #[command(flatten)]
        lease: TakeOver,
    },
    /// Check the archive's hash chain and every object's SHA-256; exit 1 on any finding.
    Verify,
    /// Load the archived Parquet back into the analytics store (idempotent), e.g. into a new
    /// database.
    Rehydrate,
    /// Create or update the database schema.
    Migrate,
    /// Check the Cloudflare credentials and permissions, the database and the archive, one
    /// PASS/FAIL line each; exit 1 if any fails.
    Doctor {
        /// Check only the database and the archive (no Cloudflare settings needed).
        #[arg(long)]
        archive: bool,
    },
    /// Print the effective configuration, secrets masked.
    Config {
        /// List every variable cflogs reads instead.
        #[arg(long)]
        list: bool,
    },
    /// Try cflogs with no account and no services: a simulated Cloudflare API, SQLite and a
    /// local Parquet archive, then a look at what landed.
    Demo {
        /// Simulated audit events.
        #[arg(long, default_value_t = 5_000)]
        events: u64,
        /// Hours of history they span.
        #[arg(long, default_value_t = 6)]
        hours: i64,
        /// Where the demo's SQLite file and archive go (emptied first).
        #[arg(long, default_value = "./cflogs-demo")]
        dir: PathBuf,
    },
}

/// The variables read from the process environment only (before the settings are loaded, so
/// not from `.env` or the TOML file), listed by `config --list` after [`config::variables`].
const PROCESS_VARIABLES: &[(&str, &str)] = &[
    (
        "CFLOGS_LOG",
        "log filter, e.g. info or cflogs=debug,info (process environment only; default info)",
    ),
    (
        "CFLOGS_LOG_FORMAT",
        "human or json, like --log-format (process environment only; default human)",
    ),
    (
        "CFLOGS_CONFIG",
        "TOML file with settings and [[streams]], like --config (process environment only)",
    ),
];

/// A variable of the process environment, unless it is unset or empty.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `--log-format`, else CFLOGS_LOG_FORMAT (empty means unset), else human.
fn log_format(cli: &Cli) -> Result<LogFormat, String> {
    match (cli.log_format, process_env("CFLOGS_LOG_FORMAT")) {
        (Some(format), _) => Ok(format),
        (None, None) => Ok(LogFormat::Human),
        (None, Some(value)) => LogFormat::from_str(value.trim(), true).map_err(|_| {
            format!("CFLOGS_LOG_FORMAT={value:?} is not a log format: set it to human or json")
        }),
    }
}

fn init_logging(format: LogFormat, default: &str) -> Result<(), String> {
    // PostgreSQL's notices ("relation … already exists, skipping") are not news at `info`.
    let default = format!("{default},sqlx::postgres::notice=warn");
    // An empty CFLOGS_LOG is unset, as for every other variable (an empty filter would turn off
    // all logging, errors included).
    let filter = match process_env("CFLOGS_LOG") {
        Some(directives) => tracing_subscriber::EnvFilter::try_new(&directives).map_err(|e| {
            format!(
                "CFLOGS_LOG={directives:?} is not a log filter ({e}): use a level such as info \
                 or debug, or directives such as cflogs=debug,info"
            )
        })?,
        None => tracing_subscriber::EnvFilter::new(default),
    };
    // Colours only on a terminal: journald, files and log shippers get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn main_async(cli: Cli) -> Result<ExitCode> {
    if let Command::Demo { events, hours, dir } = &cli.command {
        demo::demo(dir, *events, *hours).await?;
        return Ok(ExitCode::SUCCESS);
    }
    // The list of variables needs no settings: a broken .env or TOML file must not hide it.
    if let Command::Config { list: true } = &cli.command {
        let process = PROCESS_VARIABLES.iter().map(|(n, w)| ((*n).to_owned(), *w));
        for (name, what) in config::variables().chain(process) {
            println!("{name:<38} {what}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    // CFLOGS_CONFIG here rather than through clap: empty means unset, as for every variable.
    let config_file = cli
        .config
        .clone()
        .or_else(|| process_env("CFLOGS_CONFIG").map(PathBuf::from));
    let settings = config::Settings::load(Some(&cli.env_file), config_file.as_deref())?;
    if let Command::Config { .. } = &cli.command {
        for line in settings.describe() {
            println!("{line}");
        }
        let config = config::Config::from_settings(&settings, chrono::Utc::now())?;
        println!(
            "# streams: {}",
            config
                .cloudflare()?
                .streams
                .iter()
                .map(|s| s.id().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("# archive: {}", config.archive.describe());
        return Ok(ExitCode::SUCCESS);
    }
    let config = config::Config::from_settings(&settings, chrono::Utc::now())?;
    match cli.command {
        Command::Run { lease } => {
            commands::run(&config, lease.take_over, shutdown_signal()).await?;
        }
        Command::Once { lease } => commands::once(&config, lease.take_over).await?,
        Command::Backfill {
            since,
            until,
            lease,
        } => commands::backfill(&config, since, until, lease.take_over).await?,
        Command::Verify => {
            if !commands::verify(&config).await? {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Migrate => commands::migrate(&config).await?,
        Command::Rehydrate => commands::rehydrate(&config).await?,
        Command::Doctor { archive } => {
            if !doctor::doctor(&config, !archive).await? {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Config { .. } | Command::Demo { .. } => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own report; its log would only interleave with it.
    let default_level = if matches!(cli.command, Command::Demo { .. }) {
        "warn"
    } else {
        "info"
    };
    let format = match log_format(&cli) {
        Ok(format) => format,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    if let Err(message) = init_logging(format, default_level) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(main_async(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
