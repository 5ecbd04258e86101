//! Running one rule test case (`rules/tests/*.yaml`) through an engine and
//! checking what it expects: the alerts listed in `expect` (exactly those,
//! unless `expect_also_others`), `expect_none`, `expect_count` and
//! `expect_future`.
//!
//! `levee test` runs a case against the whole catalog ([`Scope::All`]);
//! `levee test --mutate` runs it against a graph holding one (mutated)
//! control point, and checks only what the case says about that point
//! ([`Scope::Only`]): a point's alerts never depend on another's.

use std::sync::Arc;

use levee_engine::{Alert, Engine, Source};
use levee_rules::model::{ExpectedAlert, TestCase};
use levee_rules::RuleGraph;

/// Which control points a run checks.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// All of them: the graph is the catalog.
    All,
    /// Only this one: the graph holds it alone, and steps and expectations
    /// about other control points are left out.
    Only(&'a str),
}

impl Scope<'_> {
    fn covers(&self, control_point: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(id) => *id == control_point,
        }
    }
}

/// Runs `case` (from rule test file `file`) against `graph`: `Ok` if it
/// holds, or every problem found.
pub fn run(
    graph: &Arc<RuleGraph>,
    file: &str,
    case: &TestCase,
    scope: Scope<'_>,
) -> Result<(), Vec<String>> {
    let (alerts, mut problems) = play(graph, file, case, scope);
    check(graph, case, &alerts, scope, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Plays a case's steps: the alerts raised, and the problems of steps
/// that could not be played (bad input, a refusal not expected, …).
pub fn play(
    graph: &Arc<RuleGraph>,
    file: &str,
    case: &TestCase,
    scope: Scope<'_>,
) -> (Vec<Alert>, Vec<String>) {
    let mut problems = Vec::new();
    let mut engine = Engine::new(graph.clone());
    // The case's rows replace the rules' rows of their tables.
    for (name, rows) in &case.tables {
        if let Err(e) = engine.tables().replace_rows(graph, name, rows) {
            return (Vec::new(), vec![format!("tables: {e}")]);
        }
    }
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
        Some(Err(e)) => {
            return (
                Vec::new(),
                vec![format!("`now` is not an RFC 3339 time: {e}")],
            )
        }
    };
    let mut refused: Vec<String> = Vec::new();
    for (i, ev) in case.events.iter().enumerate() {
        let step = i + 1;
        if let Some(cp_id) = ev.get("rectify").and_then(|v| v.as_str()) {
            if !scope.covers(cp_id) {
                continue;
            }
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
    (alerts, problems)
}

/// Checks the alerts a case's events raised against what it expects.
fn check(
    graph: &RuleGraph,
    case: &TestCase,
    alerts: &[Alert],
    scope: Scope<'_>,
    problems: &mut Vec<String>,
) {
    let known = |id: &str| graph.control_points.iter().any(|c| c.id == id);
    for e in case
        .expect
        .iter()
        .filter(|e| scope.covers(&e.control_point))
    {
        if !known(&e.control_point) {
            problems.push(format!("expects unknown control point {}", e.control_point));
            continue;
        }
        if !alerts.iter().any(|a| matches(a, e)) {
            problems.push(format!(
                "expected {}; {}",
                describe(e),
                got(alerts, &e.control_point)
            ));
        }
    }
    if !case.expect_also_others {
        for a in alerts {
            if !case.expect.iter().any(|e| matches(a, e)) {
                problems.push(format!(
                    "unexpected alert: {} at tier {} about {} on event {} ({}); list it in \
                     `expect`, or set `expect_also_others: true`",
                    a.control_point, a.tier, a.subject, a.event_id, a.action
                ));
            }
        }
    }
    for id in case.expect_none.iter().filter(|id| scope.covers(id)) {
        if !known(id) {
            problems.push(format!("expect_none names unknown control point {id}"));
        }
        for a in alerts.iter().filter(|a| &a.control_point == id) {
            problems.push(format!(
                "expected {id} not to fire, but it fired at tier {} on event {} (subject {})",
                a.tier, a.event_id, a.subject
            ));
        }
    }
    for (id, want) in case.expect_count.iter().filter(|(id, _)| scope.covers(id)) {
        let got = alerts.iter().filter(|a| &a.control_point == id).count();
        if got != *want {
            problems.push(format!(
                "expected {id} to raise {want} alert(s), it raised {got}"
            ));
        }
    }
}

/// `{rectify: CP, event_id: ID, status: rectified|dismissed|acknowledged|archived,
/// by: E, role: R, refused: KIND}`: `refused` expects the rectification to be
/// refused with that kind (`rectification_conflict`, `rectification_role`,
/// `rectification_backwards`).
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
    let event_type = graph.event_types[cp.event_type as usize].origin_name();
    let id = levee_engine::alert_id(event_type, event_id, cp_id);
    let text = |k: &str| step.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let r = levee_engine::rectify::Rectification {
        by: text("by"),
        role: text("role"),
        ..levee_engine::rectify::Rectification::new(&id, status)
    };
    use levee_engine::rectify::Applied;
    match (engine.apply(&r), text("refused")) {
        (Ok(Applied::Moved | Applied::Closed(_)), None) => Ok(()),
        (Ok(Applied::Moved | Applied::Closed(_)), Some(kind)) => Err(format!(
            "the rectification of {cp_id} on event {event_id} was applied, not refused ({kind})"
        )),
        // Archiving closes the loop: nothing is left open to move.
        (Ok(Applied::NotHere), None) if status == levee_engine::Status::Archived => Ok(()),
        (Ok(Applied::NotHere), _) => Err(format!(
            "no open alert of {cp_id} on event {event_id} to rectify"
        )),
        (Err(refused), Some(kind)) if refused.kind() == kind => Ok(()),
        (Err(refused), _) => Err(format!(
            "rectification refused ({}): {refused}",
            refused.kind()
        )),
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use levee_rules::model::TestFile;
    use levee_rules::RuleSources;

    const RULES: &str = r#"
event_types:
  t:
    stream: s
    subject: who
    fields:
      who: { type: string, required: true }
      a: { type: number, required: true }
control_points:
  - id: T-1
    domain: d
    title: t
    event_type: t
    when: "a > 10"
    tiers: [{ tier: 1, notify: r }, { tier: 2, when: "a > 100" }]
    message: "{who}"
  - id: T-2
    domain: d
    title: t
    event_type: t
    when: "a > 50"
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
"#;

    fn graph() -> Arc<RuleGraph> {
        let sources = RuleSources::from_texts([("t.yaml", RULES)]);
        Arc::new(levee_rules::compile(&sources).unwrap().graph)
    }

    fn case(yaml: &str) -> TestCase {
        let f: TestFile = serde_norway::from_str(yaml).unwrap();
        f.cases.into_iter().next().unwrap()
    }

    const EVENT: &str = r#"{"event_id": "e1", "type": "t", "occurred_at": "2026-01-01T00:00:00Z", "branch": "b", "who": "x", "a": 60}"#;

    #[test]
    fn expect_is_exact_unless_others_are_allowed() {
        let g = graph();
        let only_t1 = format!(
            "cases:\n  - name: n\n    events: [{EVENT}]\n    expect: [{{control_point: T-1, tier: 1}}]\n"
        );
        let problems = run(&g, "f", &case(&only_t1), Scope::All).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("unexpected alert: T-2 at tier 1"));

        let relaxed = format!("{only_t1}    expect_also_others: true\n");
        assert!(run(&g, "f", &case(&relaxed), Scope::All).is_ok());

        let both = format!(
            "cases:\n  - name: n\n    events: [{EVENT}]\n    expect: [{{control_point: T-1, tier: 1}}, {{control_point: T-2, tier: 1}}]\n"
        );
        assert!(run(&g, "f", &case(&both), Scope::All).is_ok());
    }

    #[test]
    fn a_wrong_tier_is_both_missing_and_unexpected() {
        let g = graph();
        let wrong = format!(
            "cases:\n  - name: n\n    events: [{EVENT}]\n    expect: [{{control_point: T-1, tier: 2}}, {{control_point: T-2, tier: 1}}]\n"
        );
        let problems = run(&g, "f", &case(&wrong), Scope::All).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("expected T-1 at tier 2; got tier 1"));
        assert!(problems[1].starts_with("unexpected alert: T-1 at tier 1"));
    }

    #[test]
    fn a_case_sets_table_rows_for_its_events() {
        let t3 = r#"  - id: T-3
    domain: d
    title: t
    event_type: t
    when: a > lookup("limits", who, "max")
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
tables:
  limits:
    key: who
    columns: { who: { type: string }, max: { type: number } }
    rows: [{ who: x, max: 1000 }]
"#;
        let text = format!("{RULES}{t3}");
        let g = Arc::new(
            levee_rules::compile(&RuleSources::from_texts([("t.yaml", text.as_str())]))
                .unwrap()
                .graph,
        );
        let expect = "expect: [{control_point: T-1, tier: 1}, {control_point: T-2, tier: 1}";
        // The rules' row: 60 is within the limit of 1000.
        let quiet = format!("cases:\n  - name: n\n    events: [{EVENT}]\n    {expect}]\n");
        assert!(run(&g, "f", &case(&quiet), Scope::All).is_ok());
        // The case's row replaces it: 60 is over 50.
        let rows = "    tables: {limits: [{who: x, max: 50, valid_from: \"2025-12-31\"}]}\n";
        let fires = format!(
            "cases:\n  - name: n\n    events: [{EVENT}]\n    {expect}, {{control_point: T-3, tier: 1}}]\n{rows}"
        );
        assert!(run(&g, "f", &case(&fires), Scope::All).is_ok());
        // Valid only from after the event: quiet again.
        let later = fires.replace("2025-12-31", "2026-01-02");
        let problems = run(&g, "f", &case(&later), Scope::All).unwrap_err();
        assert!(
            problems[0].starts_with("expected T-3 at tier 1"),
            "{problems:?}"
        );
        let unknown = fires.replace("{limits:", "{limit:");
        let problems = run(&g, "f", &case(&unknown), Scope::All).unwrap_err();
        assert_eq!(
            problems[0],
            "tables: no table `limit`; did you mean `limits`?"
        );
    }

    #[test]
    fn a_scoped_run_checks_only_its_control_point() {
        // A graph holding T-1 alone: the case's word on T-2 is left out.
        let sources = RuleSources::from_texts([("t.yaml", RULES)]);
        let mut catalog = levee_rules::variant::Catalog::parse(&sources).unwrap();
        catalog.add_lists("x.yaml", Default::default());
        let (file, t1) = catalog.control_points().next().unwrap();
        let alone = Arc::new(catalog.compile_one(file, t1).unwrap().graph);
        let c = case(&format!(
            "cases:\n  - name: n\n    events: [{EVENT}]\n    expect: [{{control_point: T-1, tier: 1}}, {{control_point: T-2, tier: 1}}]\n    expect_none: [T-2]\n"
        ));
        assert!(run(&alone, "f", &c, Scope::Only("T-1")).is_ok());
        // The same case against the catalog: T-2 fired though expected not to.
        let problems = run(&graph(), "f", &c, Scope::All).unwrap_err();
        assert!(
            problems[0].starts_with("expected T-2 not to fire"),
            "{problems:?}"
        );
    }
}
