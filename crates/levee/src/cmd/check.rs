//! `levee check`: compile, check the register's columns, and report.
//!
//! The rules must compile, and every control point must state its Chinese
//! message and its register columns (`levee_rules::register`); either
//! failing lists every error and exits 1. On success, one summary line on
//! stdout; on stderr, how many control points name no basis (`company
//! rule`), and with `--verbose` which.

use std::path::Path;
use std::process::ExitCode;

use levee_rules::register::COMPANY_RULE;
use levee_rules::RuleGraph;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// List the control points whose basis is `company rule`.
    #[arg(long, short)]
    verbose: bool,
}

pub fn run(rules: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let compiled = match levee_rules::compile_dir(rules) {
        Ok(c) => c,
        Err(diags) => {
            crate::rules::print_failure(&diags);
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &compiled.warnings {
        eprintln!("{w}");
    }
    if !compiled.register.is_empty() {
        for d in &compiled.register {
            eprintln!("{d}");
        }
        let n = compiled.register.len();
        eprintln!(
            "levee: the register is incomplete: {n} error{} (message_zh, risk_grade, measure, owner, basis)",
            if n == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::FAILURE);
    }
    let graph = &compiled.graph;
    println!("{}", graph.summary());
    let unnamed = without_named_basis(graph);
    eprintln!(
        "levee: {} of {} control points name no law or regulation as basis (`{COMPANY_RULE}`: for the operator to name){}",
        unnamed.len(),
        graph.control_points.len(),
        if args.verbose || unnamed.is_empty() { "" } else { "; --verbose lists them" }
    );
    if args.verbose {
        for (id, file) in unnamed {
            eprintln!("  {id}  {file}");
        }
    }
    let blocking_nothing = blocks_on_reports(graph);
    if !blocking_nothing.is_empty() {
        eprintln!(
            "levee: {} `block` control points are on event types that are not requests: they raise their alerts and block nothing{}",
            blocking_nothing.len(),
            if args.verbose { "" } else { "; --verbose lists them" }
        );
    }
    if args.verbose {
        for (id, event_type, file) in blocking_nothing {
            eprintln!("  {id}  {event_type}  {file}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `block` control points whose event type is not a request (id, type,
/// file): the event already happened, so nothing can be blocked.
fn blocks_on_reports(graph: &levee_rules::RuleGraph) -> Vec<(&str, &str, &str)> {
    graph
        .control_points
        .iter()
        .filter(|cp| cp.action == levee_rules::model::Action::Block)
        .filter_map(|cp| {
            let et = graph.event_types.get(cp.event_type as usize)?;
            (!et.request).then_some((cp.id.as_str(), et.name.as_str(), cp.file.as_str()))
        })
        .collect()
}

/// The control points whose basis names no law, regulation or standard,
/// with their files, in file order.
fn without_named_basis(graph: &RuleGraph) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = graph
        .control_points
        .iter()
        .filter(|cp| !cp.register.names_basis())
        .map(|cp| (cp.id.as_str(), cp.file.as_str()))
        .collect();
    v.sort_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)));
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::panic)]
    use super::*;
    use levee_rules::RuleSources;

    #[test]
    fn only_points_without_a_named_basis_are_listed() {
        let point = |id: &str, basis: &str| {
            format!(
                "  - {{id: {id}, domain: d, title: t, event_type: e, when: \"n > 1\", \
                 tiers: [{{tier: 1, notify: r}}], message: \"{{n}}\", message_zh: \"{{n}}\", \
                 risk_grade: low, measure: 措施, owner: 综合部, basis: \"{basis}\"}}\n"
            )
        };
        let text = format!(
            "event_types:\n  e: {{stream: s, subject: k, fields: {{k: {{type: string, required: true}}, \
             n: {{type: number}}}}}}\ncontrol_points:\n{}{}{}",
            point("A-2", COMPANY_RULE),
            point("A-1", "《中华人民共和国招标投标法》"),
            point("A-0", COMPANY_RULE),
        );
        let compiled =
            match levee_rules::compile(&RuleSources::from_texts([("r.yaml", text.as_str())])) {
                Ok(c) => c,
                Err(d) => panic!("{d:?}"),
            };
        assert!(compiled.register.is_empty(), "{:?}", compiled.register);
        assert_eq!(
            without_named_basis(&compiled.graph),
            vec![("A-0", "r.yaml"), ("A-2", "r.yaml")]
        );
    }
}
