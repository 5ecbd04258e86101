//! `levee test`: run the rule test files under `RULES/tests/`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use levee_engine::{Alert, Engine, Source};
use levee_rules::model::{ExpectedAlert, TestCase, TestFile};
use levee_rules::RuleGraph;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only cases whose file or name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Print only failures and the summary.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(rules: &Path, args: Args) -> anyhow::Result<ExitCode> {
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
    let mut covered: BTreeSet<String> = BTreeSet::new();
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
            match run_case(&graph, &f.relative, case) {
                Ok(()) => {
                    passed += 1;
                    covered.extend(case.expect.iter().map(|e| e.control_point.clone()));
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
    let total = graph.control_points.len();
    let uncovered: Vec<&str> = graph
        .control_points
        .iter()
        .map(|c| c.id.as_str())
        .filter(|id| !covered.contains(*id))
        .collect();
    let n_covered = total - uncovered.len();
    if !uncovered.is_empty() && args.filter.is_none() {
        let shown: Vec<&str> = uncovered.iter().take(20).copied().collect();
        println!(
            "not covered by any passing test: {}{}",
            shown.join(", "),
            if uncovered.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        );
    }
    println!(
        "levee test: {passed} cases passed, {failed} failed; covered: {n_covered} of {total} control points"
    );
    Ok(if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_case(
    graph: &std::sync::Arc<RuleGraph>,
    file: &str,
    case: &TestCase,
) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut engine = Engine::new(graph.clone());
    let mut alerts: Vec<Alert> = Vec::new();
    let detected = "1970-01-01T00:00:00.000Z";
    // The case's clock, if it sets one: the bound on event time.
    let now = match case
        .now
        .as_deref()
        .map(chrono::DateTime::parse_from_rfc3339)
    {
        None => None,
        Some(Ok(t)) => Some(t.timestamp()),
        Some(Err(e)) => return Err(vec![format!("`now` is not an RFC 3339 time: {e}")]),
    };
    let mut refused: Vec<String> = Vec::new();
    for (i, ev) in case.events.iter().enumerate() {
        let step = i + 1;
        if let Some(cp_id) = ev.get("rectify").and_then(|v| v.as_str()) {
            match rectify_step(graph, &mut engine, cp_id, ev) {
                Ok(()) => {}
                Err(e) => problems.push(format!("step {step}: {e}")),
            }
            continue;
        }
        if let Some(t) = ev.get("tick") {
            match t.as_str().map(chrono::DateTime::parse_from_rfc3339) {
                Some(Ok(at)) => alerts.extend(engine.tick(at.timestamp(), detected)),
                _ => problems.push(format!("step {step}: `tick` needs an RFC 3339 time")),
            }
            continue;
        }
        let bytes = serde_json::to_vec(ev).unwrap_or_default();
        let source = Source::File {
            file: file.to_owned(),
            line: step as u64,
        };
        let processed = match now {
            Some(now) => engine.process_bounded(&bytes, &source, detected, (now, 3600)),
            None => engine.process(&bytes, &source, detected),
        };
        match processed {
            Ok(p) => alerts.extend(p.alerts),
            Err(bad) if bad.kind == levee_engine::BadKind::Future => {
                let id = ev.get("event_id").and_then(|v| v.as_str()).unwrap_or("?");
                refused.push(id.to_owned());
            }
            Err(bad) => problems.push(format!("event {step} is bad input: {bad}")),
        }
        let wm = engine.watermark();
        alerts.extend(engine.tick(wm, detected));
    }
    if refused != case.expect_future {
        problems.push(format!(
            "events refused as future: {refused:?}; expected {:?}",
            case.expect_future
        ));
    }
    for e in &case.expect {
        if !graph.control_points.iter().any(|c| c.id == e.control_point) {
            problems.push(format!("expects unknown control point {}", e.control_point));
            continue;
        }
        if !alerts.iter().any(|a| matches(a, e)) {
            problems.push(format!(
                "expected {}; {}",
                describe(e),
                got(&alerts, &e.control_point)
            ));
        }
    }
    for id in &case.expect_none {
        if !graph.control_points.iter().any(|c| &c.id == id) {
            problems.push(format!("expect_none names unknown control point {id}"));
        }
        for a in alerts.iter().filter(|a| &a.control_point == id) {
            problems.push(format!(
                "expected {id} not to fire, but it fired at tier {} on event {} (subject {})",
                a.tier, a.event_id, a.subject
            ));
        }
    }
    for (id, want) in &case.expect_count {
        let got = alerts.iter().filter(|a| &a.control_point == id).count();
        if got != *want {
            problems.push(format!(
                "expected {id} to raise {want} alert(s), it raised {got}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `{rectify: CP, event_id: ID, status: rectified|dismissed|acknowledged}`.
fn rectify_step(
    graph: &RuleGraph,
    engine: &mut Engine,
    cp_id: &str,
    step: &serde_json::Value,
) -> Result<(), String> {
    let cp = graph
        .control_points
        .iter()
        .find(|c| c.id == cp_id)
        .ok_or_else(|| format!("rectify names unknown control point {cp_id}"))?;
    let event_id = step
        .get("event_id")
        .and_then(|v| v.as_str())
        .ok_or("rectify needs the `event_id` of the alerted event")?;
    let status: levee_engine::Status = serde_json::from_value(
        step.get("status")
            .cloned()
            .unwrap_or_else(|| "rectified".into()),
    )
    .map_err(|e| format!("rectify `status`: {e}"))?;
    let event_type = &graph.event_types[cp.event_type as usize].name;
    let id = levee_engine::alert_id(event_type, event_id, cp_id);
    if engine.rectify(&id, status) {
        Ok(())
    } else {
        Err(format!(
            "no open alert of {cp_id} on event {event_id} to rectify"
        ))
    }
}

fn matches(a: &Alert, e: &ExpectedAlert) -> bool {
    a.control_point == e.control_point
        && a.tier == e.tier
        && e.subject.as_ref().is_none_or(|s| &a.subject == s)
        && e.event_id.as_ref().is_none_or(|s| &a.event_id == s)
        && e.action.is_none_or(|x| a.action == x.as_str())
        && e.escalated.is_none_or(|x| a.escalated_from.is_some() == x)
        && e.calendar
            .is_none_or(|c| a.calendar.as_deref() == c.label())
}

fn describe(e: &ExpectedAlert) -> String {
    let mut s = format!("{} at tier {}", e.control_point, e.tier);
    if let Some(x) = &e.subject {
        s.push_str(&format!(" about {x}"));
    }
    if let Some(x) = &e.event_id {
        s.push_str(&format!(" on event {x}"));
    }
    if let Some(x) = e.action {
        s.push_str(&format!(" with action {}", x.as_str()));
    }
    if e.escalated == Some(true) {
        s.push_str(" (escalated)");
    }
    if let Some(c) = e.calendar {
        s.push_str(&format!(" on a {} calendar", c.as_str()));
    }
    s
}

fn got(alerts: &[Alert], cp: &str) -> String {
    let same: Vec<String> = alerts
        .iter()
        .filter(|a| a.control_point == cp)
        .map(|a| {
            let calendar = a.calendar.as_deref().unwrap_or("published");
            format!(
                "tier {} about {} on event {} ({}, {calendar} calendar)",
                a.tier, a.subject, a.event_id, a.action
            )
        })
        .collect();
    if same.is_empty() {
        format!("{cp} did not fire")
    } else {
        format!("got {}", same.join("; "))
    }
}
