//! The `levee` binary: the command line, and everything that touches the
//! outside world (files, Kafka, HTTP, signals, the clock).
//!
//! # Layout
//! - `cmd`: one module per subcommand (`check`, `catalog`, `test`, `replay`, `graph`).
//! - `rules`: loading and compiling the rules directory with printed diagnostics.

mod cmd;
mod rules;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Print the compiled rule graph.
    Graph(cmd::graph::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(a) => cmd::check::run(&cli.rules, a),
        Command::Catalog(a) => cmd::catalog::run(&cli.rules, a),
        Command::Test(a) => cmd::test::run(&cli.rules, a),
        Command::Replay(a) => cmd::replay::run(&cli.rules, a),
        Command::Graph(a) => cmd::graph::run(&cli.rules, a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("levee: {e:#}");
            ExitCode::from(2)
        }
    }
}
