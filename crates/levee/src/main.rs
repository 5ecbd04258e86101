//! The `levee` binary: the command line, and everything that touches the
//! outside world (files, Kafka, HTTP, signals, the clock).
//!
//! # Layout
//! - `cmd`: one module per subcommand (`check`, `catalog`, `test`, `replay`, `diff`, `graph`, `gen`, `run`),
//!   and `mutate`, the mutation testing of `levee test --mutate`.
//! - `cases`: running one rule test case and checking what it expects.
//! - `csv`: writing CSV records (`levee catalog --format csv`).
//! - `rules`: loading and compiling the rules directory with printed diagnostics.
//! - `sample`: a recorded sample of the input stream: its keyed hash,
//!   segment files and manifest; a sample directory as `replay`/`diff` input.
//! - `service`: `levee run`, the Kafka service (config, pipeline, reload).
//! - `table_files`: table rows from files (`levee replay --tables DIR`).

mod cases;
mod cmd;
mod csv;
mod rules;
mod sample;
mod service;
mod table_files;

/// mimalloc: levee allocates many small, short-lived strings and vectors
/// per event and per alert, which it serves faster than the system's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// levee: integrity-risk control points over streaming business events.
#[derive(Debug, Parser)]
#[command(name = "levee", version, about, long_about = None)]
struct Cli {
    /// The rules directory.
    #[arg(long, global = true, default_value = "rules", env = "LEVEE_RULES")]
    rules: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compile the rule files and list every error; exit 1 on any.
    Check(cmd::check::Args),
    /// List the control points.
    Catalog(cmd::catalog::Args),
    /// Run the rule test files under RULES/tests/; exit 1 on any failure.
    Test(cmd::test::Args),
    /// Evaluate JSON-lines events from files or stdin; print alerts as JSON lines.
    Replay(cmd::replay::Args),
    /// Replay events through two rulesets (directories or git revisions)
    /// and report, per control point, the alerts added, removed and
    /// changed in tier.
    Diff(cmd::diff::Args),
    /// Print the compiled rule graph.
    Graph(cmd::graph::Args),
    /// Run the Kafka service.
    Run(cmd::run::Args),
    /// Generate a seeded event stream with injected breaches and its ground truth.
    Gen(cmd::gen::Args),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    // `levee run` layers its settings: an explicit --rules (or LEVEE_RULES)
    // overrides rules.dir of the settings file, the clap default does not.
    let rules_given = matches
        .value_source("rules")
        .is_some_and(|s| s != ValueSource::DefaultValue);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Check(a) => cmd::check::run(&cli.rules, a),
        Command::Catalog(a) => cmd::catalog::run(&cli.rules, a),
        Command::Test(a) => cmd::test::run(&cli.rules, a),
        Command::Replay(a) => cmd::replay::run(&cli.rules, a),
        Command::Diff(a) => cmd::diff::run(&cli.rules, a),
        Command::Graph(a) => cmd::graph::run(&cli.rules, a),
        Command::Gen(a) => cmd::gen::run(&cli.rules, a),
        Command::Run(a) => cmd::run::run(rules_given.then(|| cli.rules.clone()), a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("levee: {e:#}");
            ExitCode::from(2)
        }
    }
}
