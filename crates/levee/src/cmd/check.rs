//! `levee check`: compile and report.

use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(rules: &Path, _args: Args) -> anyhow::Result<ExitCode> {
    match crate::rules::load(rules) {
        Some(graph) => {
            println!("{}", graph.summary());
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::FAILURE),
    }
}
