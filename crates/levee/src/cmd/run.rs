//! `levee run`: the Kafka service (see [`crate::service`]).
//!
//! Settings come from the embedded defaults, `--config FILE`,
//! `LEVEE__SECTION__KEY` environment variables and the flags below, in that
//! order. SIGTERM or SIGINT stops it gracefully (exit 0); SIGHUP reloads the rules.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

use crate::service::config::{self, LogFormat, Overrides, Settings};
use crate::service::{self, RulesError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The settings file (TOML); see deploy/levee.toml.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective settings (secrets masked) and exit.
    #[arg(long)]
    print_config: bool,
    /// Kafka bootstrap servers (kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Consumer group (kafka.group_id).
    #[arg(long)]
    group_id: Option<String>,
    /// This instance's id within the group (kafka.instance_id).
    #[arg(long)]
    instance_id: Option<String>,
    /// at_least_once or exactly_once (delivery).
    #[arg(long)]
    delivery: Option<String>,
    /// text or json (log.format).
    #[arg(long)]
    log_format: Option<String>,
}

/// `rules_flag`: `--rules`/`LEVEE_RULES` if given explicitly (overrides rules.dir).
pub fn run(rules_flag: Option<PathBuf>, args: Args) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        brokers: args.brokers,
        group_id: args.group_id,
        instance_id: args.instance_id,
        delivery: args.delivery,
        log_format: args.log_format,
        rules_dir: rules_flag,
    };
    let settings = config::load(args.config.as_deref(), std::env::vars(), &overrides)?;
    if args.print_config {
        print!("{}", settings.to_masked_toml()?);
        return Ok(ExitCode::SUCCESS);
    }
    init_logging(&settings)?;
    // Before the state grows: see service::pages.
    match service::pages::disable_huge_pages() {
        service::pages::HugePages::Off => {
            tracing::info!("transparent huge pages are off for this process")
        }
        service::pages::HugePages::Refused(why) => {
            tracing::warn!("transparent huge pages stay as the machine sets them: {why}")
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("levee-worker")
        .build()
        .context("starting the tokio runtime")?;
    let result = runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        service::run(settings, shutdown).await
    });
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => match e.downcast::<RulesError>() {
            Ok(rules) => {
                crate::rules::print_failure(&rules.diagnostics);
                Ok(ExitCode::FAILURE)
            }
            Err(e) => Err(e),
        },
    }
}

/// Completes on the first SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

fn init_logging(settings: &Settings) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => EnvFilter::try_new(f),
        _ => EnvFilter::try_new(&settings.log.level),
    }
    .with_context(|| format!("log.level {:?} is not a valid filter", settings.log.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let installed = match settings.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}
