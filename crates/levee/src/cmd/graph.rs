//! `levee graph`: the compiled rule graph as Graphviz dot or Mermaid.

use std::path::Path;
use std::process::ExitCode;

use levee_rules::render::{render, GraphFormat};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value = "dot")]
    format: GraphFormatArg,
    /// Only this event type.
    #[arg(long)]
    event_type: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum GraphFormatArg {
    Dot,
    Mermaid,
}

pub fn run(rules: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let Some(graph) = crate::rules::load(rules) else {
        return Ok(ExitCode::FAILURE);
    };
    if let Some(t) = &args.event_type {
        if graph.event_type(t).is_none() {
            anyhow::bail!("no event type `{t}` in the rules");
        }
    }
    let format = match args.format {
        GraphFormatArg::Dot => GraphFormat::Dot,
        GraphFormatArg::Mermaid => GraphFormat::Mermaid,
    };
    print!("{}", render(&graph, format, args.event_type.as_deref()));
    Ok(ExitCode::SUCCESS)
}
