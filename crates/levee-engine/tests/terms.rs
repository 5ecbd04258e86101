//! Conditions are decided term by term (`&&` operands, cheapest first): a
//! false term decides, a missing field leaves the condition unknown only
//! when no term is false, and what fires is what evalexpr would fire.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use levee_engine::{Engine, EvalStats};
use levee_rules::{compile, RuleSources};

const RULES: &str = r#"
event_types:
  t:
    stream: s
    subject: who
    fields:
      who: { type: string, required: true }
      a: { type: number, required: true }
      b: { type: number }
      n: { type: integer, required: true }
    derived:
      per: "n / (n - 3)"
control_points:
  - id: T-1
    domain: d
    title: both bounds
    event_type: t
    when: "b > 1 && a > 10"
    tiers: [{ tier: 1, notify: r }, { tier: 2, when: "b > 100" }]
    message: "{who}: {a} and {b}"
  - id: T-2
    domain: d
    title: integer division that can fail
    event_type: t
    when: "a > 10 && per > 1"
    tiers: [{ tier: 1, notify: r }]
    message: "{who}: {per}"
  - id: T-3
    domain: d
    title: held for an hour
    event_type: t
    when: "a > 50 && n > 0"
    for: 1h
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
"#;

fn engine() -> Engine {
    let graph = compile(&RuleSources::from_texts([("t.yaml", RULES)]))
        .unwrap()
        .graph;
    Engine::new(Arc::new(graph))
}

/// Evaluates one event; returns the fired control points with their tiers,
/// and the stats.
fn eval(e: &mut Engine, at: &str, fields: &str) -> (Vec<(String, u8)>, EvalStats) {
    let line = format!(
        r#"{{"event_id":"e-{at}","type":"t","occurred_at":"{at}","branch":"x","who":"w",{fields}}}"#
    );
    let stats = e.evaluate(line.as_bytes()).unwrap();
    let fired = e
        .hits()
        .iter()
        .map(|h| {
            (
                e.graph().control_points[h.control_point as usize]
                    .id
                    .clone(),
                h.tier,
            )
        })
        .collect();
    (fired, stats)
}

#[test]
fn a_false_term_decides_even_when_another_reads_a_missing_field() {
    let mut e = engine();
    // a > 10 is false: T-1 is decided (false), though b is missing.
    let (fired, stats) = eval(&mut e, "2026-01-01T00:00:00Z", r#""a":5,"n":1"#);
    assert!(fired.is_empty());
    assert_eq!(stats.unknown, 0);
    // a > 10 holds and b is missing: T-1 is unknown and does not fire.
    let (fired, stats) = eval(&mut e, "2026-01-01T00:00:01Z", r#""a":20,"n":1"#);
    assert!(fired.is_empty(), "{fired:?}");
    assert_eq!(stats.unknown, 1);
    // Both hold: fires, and the tier reads b (evaluated only then).
    let (fired, _) = eval(&mut e, "2026-01-01T00:00:02Z", r#""a":20,"b":500,"n":1"#);
    assert_eq!(fired, vec![("T-1".to_owned(), 2)]);
    let (fired, _) = eval(&mut e, "2026-01-01T00:00:03Z", r#""a":20,"b":5,"n":1"#);
    assert_eq!(fired, vec![("T-1".to_owned(), 1)]);
    // The message of a fired control point reads this event's values, not
    // those of an earlier event of the type.
    let hit = e.hits()[0];
    let alert = e.alert(
        hit,
        &levee_engine::Source::File {
            file: "t".into(),
            line: 1,
        },
        "now",
    );
    assert_eq!(alert.message, "w: 20 and 5");
}

#[test]
fn evaluation_errors_count_only_when_no_term_is_false() {
    let mut e = engine();
    // n = 3: per divides by zero (an error in evalexpr too).
    let (fired, stats) = eval(&mut e, "2026-01-01T00:00:00Z", r#""a":20,"b":0,"n":3"#);
    assert!(fired.is_empty());
    assert_eq!(stats.errors, 1);
    // a > 10 false: decided, no error counted.
    let (_, stats) = eval(&mut e, "2026-01-01T00:00:01Z", r#""a":1,"b":0,"n":3"#);
    assert_eq!(stats.errors, 0);
    // n = 6: per = 2 > 1, fires with its value in the message.
    let (fired, _) = eval(&mut e, "2026-01-01T00:00:02Z", r#""a":20,"b":0,"n":6"#);
    assert_eq!(fired, vec![("T-2".to_owned(), 1)]);
}

#[test]
fn a_false_term_resets_a_held_condition() {
    let mut e = engine();
    let (fired, _) = eval(&mut e, "2026-01-01T00:00:00Z", r#""a":60,"n":1"#);
    assert!(fired.is_empty());
    // Still holding after 61 minutes: fires.
    let (fired, _) = eval(&mut e, "2026-01-01T01:01:00Z", r#""a":60,"n":1"#);
    assert_eq!(fired, vec![("T-3".to_owned(), 1)]);
    // One false term (a > 50) breaks the hold; it starts again.
    let (fired, _) = eval(&mut e, "2026-01-01T01:02:00Z", r#""a":10,"n":1"#);
    assert!(fired.is_empty());
    let (fired, _) = eval(&mut e, "2026-01-01T01:03:00Z", r#""a":60,"n":1"#);
    assert!(fired.is_empty(), "{fired:?}");
    let (fired, _) = eval(&mut e, "2026-01-01T02:04:00Z", r#""a":60,"n":1"#);
    assert_eq!(fired, vec![("T-3".to_owned(), 1)]);
}
