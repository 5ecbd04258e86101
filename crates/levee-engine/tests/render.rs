//! An alert written straight as JSON (`Engine::write_alert`) is byte for
//! byte the alert `Engine::alert` builds, serialized: over every case of
//! the shipped rule tests, escalations included.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use levee_engine::{render, Engine, Source};
use levee_rules::model::TestFile;

#[test]
fn written_alerts_are_the_serialized_alerts_of_every_rule_test_case() {
    let rules = common::shipped();
    let graph = Arc::new(levee_rules::compile_dir(&rules).unwrap().graph);
    let (mut cases, mut alerts, mut escalated, mut points) =
        (0, 0, 0, std::collections::BTreeSet::new());
    for f in levee_rules::read_test_files(&rules).unwrap() {
        let tf: TestFile = serde_norway::from_str(&f.text).unwrap();
        for case in tf.cases {
            cases += 1;
            // One engine builds alerts, the other writes them: each keeps
            // its own ledger, which must stay the same.
            let mut built = Engine::new(graph.clone());
            let mut written = Engine::new(graph.clone());
            for (line, ev) in case.events.iter().enumerate() {
                if ev.get("rectify").is_some() || ev.get("tick").is_some() {
                    continue;
                }
                let bytes = serde_json::to_vec(ev).unwrap();
                let (Ok(_), Ok(_)) = (built.evaluate(&bytes), written.evaluate(&bytes)) else {
                    continue;
                };
                let source = Source::File {
                    file: f.path.clone(),
                    line: line as u64 + 1,
                };
                let now = "2026-11-26T00:00:00.000Z";
                let mut out = Vec::new();
                for &hit in built.hits() {
                    let alert = built.alert(hit, &source, now);
                    out.clear();
                    let w = written.write_alert(hit, &source, now, &mut out);
                    assert_eq!(
                        String::from_utf8(out.clone()).unwrap(),
                        serde_json::to_string(&alert).unwrap(),
                        "{}: {}",
                        f.path,
                        case.name
                    );
                    assert_eq!((w.tier, w.calendar), (alert.tier, alert.calendar.is_some()));
                    alerts += 1;
                    points.insert(alert.control_point);
                }
                // Far ahead, so that every alert that escalates does.
                let later = built.watermark() + 400 * 86_400;
                let (a, b) = (built.tick(later, now), written.tick(later, now));
                assert_eq!(a, b);
                for alert in &a {
                    out.clear();
                    render::write_alert(alert, &mut out);
                    assert_eq!(
                        String::from_utf8(out.clone()).unwrap(),
                        serde_json::to_string(alert).unwrap()
                    );
                    escalated += 1;
                }
            }
            assert_eq!(
                serde_json::to_value(ledger_of(&built)).unwrap(),
                serde_json::to_value(ledger_of(&written)).unwrap(),
                "{}",
                case.name
            );
        }
    }
    // The rule tests fire every control point of the catalog.
    assert!(
        cases > 500 && alerts > 500 && escalated > 10,
        "{cases} {alerts} {escalated}"
    );
    assert!(
        points.len() * 10 > graph.control_points.len() * 9,
        "{}",
        points.len()
    );
}

/// Every profile and open alert of an engine's ledger, by subject.
fn ledger_of(engine: &Engine) -> Vec<(String, levee_engine::SubjectSnapshot)> {
    let subjects: Vec<String> = engine
        .ledger()
        .profiles()
        .map(|(s, _)| s.to_owned())
        .collect();
    engine.snapshot(subjects)
}
