//! `levee test`: run the rule test files under `RULES/tests/`; with
//! `--mutate`, find out whether they would notice a control point changed
//! (see [`super::mutate`]).

use std::path::Path;
use std::process::ExitCode;

use levee_rules::model::TestFile;

use crate::cases::{self, Scope};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only cases whose file or name contains this text (with `--mutate`:
    /// only control points whose id or file contains it).
    #[arg(long)]
    filter: Option<String>,
    /// Print only failures and the summary.
    #[arg(long, short)]
    quiet: bool,
    /// Mutation testing: mutate each control point's conditions (numbers,
    /// comparisons, terms, tiers, lists) and run its tests against each
    /// mutant; report the mutants no test notices.
    #[arg(long)]
    mutate: bool,
    /// With `--mutate`: exit 1 when the score (killed / total) is below this.
    #[arg(long, requires = "mutate")]
    min_score: Option<f64>,
    /// With `--mutate`: the report as text or JSON.
    #[arg(long, value_enum, default_value = "text", requires = "mutate")]
    format: super::mutate::Format,
    /// With `--mutate`: write suggested test cases for the surviving
    /// mutants to DIR/boundaries_<rule file>.yaml, to review and keep.
    #[arg(long, value_name = "DIR", requires = "mutate")]
    suggest: Option<std::path::PathBuf>,
}

pub fn run(rules: &Path, args: Args) -> anyhow::Result<ExitCode> {
    if args.mutate {
        let options = super::mutate::Options {
            filter: args.filter,
            min_score: args.min_score,
            format: args.format,
            suggest: args.suggest,
        };
        return super::mutate::run(rules, &options);
    }
    let Some(graph) = crate::rules::load(rules) else {
        return Ok(ExitCode::FAILURE);
    };
    let files = match levee_rules::read_test_files(rules) {
        Ok(f) => f,
        Err(diags) => {
            crate::rules::print_failure(&diags);
            return Ok(ExitCode::FAILURE);
        }
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut coverage = super::coverage::Coverage::default();
    for f in &files {
        let parsed: TestFile = match serde_norway::from_str(&f.text) {
            Ok(t) => t,
            Err(e) => {
                println!("FAIL  {}: the test file does not parse: {e}", f.path);
                failed += 1;
                continue;
            }
        };
        for case in &parsed.cases {
            let label = format!("{}: {}", f.path, case.name);
            if let Some(filter) = &args.filter {
                if !label.contains(filter.as_str()) {
                    continue;
                }
            }
            match cases::run(&graph, &f.relative, case, Scope::All) {
                Ok(()) => {
                    passed += 1;
                    coverage.add(case);
                    if !args.quiet {
                        println!("ok    {label}");
                    }
                }
                Err(problems) => {
                    failed += 1;
                    println!("FAIL  {label}");
                    for p in problems {
                        println!("      {p}");
                    }
                }
            }
        }
    }
    let report = coverage.report(&graph);
    let whole = args.filter.is_none();
    if whole {
        list("not covered by any passing test", &report.uncovered_points);
        list(
            "tiers no passing test expects (add a case at the tier)",
            &report.uncovered_tiers,
        );
    }
    let ((n_covered, total), (t_covered, t_total)) = (report.points, report.tiers);
    println!(
        "levee test: {passed} cases passed, {failed} failed; covered: {n_covered} of {total} control points, {t_covered} of {t_total} tiers"
    );
    // A whole run also fails on a declared tier no case expects.
    let tiers_ok = !whole || report.uncovered_tiers.is_empty();
    Ok(if failed == 0 && passed > 0 && tiers_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints `what: a, b, …` (the first 20) unless `items` is empty.
fn list(what: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let shown: Vec<&str> = items.iter().take(20).map(String::as_str).collect();
    let more = if items.len() > shown.len() {
        format!(", … ({} in all)", items.len())
    } else {
        String::new()
    };
    println!("{what}: {}{more}", shown.join(", "));
}
