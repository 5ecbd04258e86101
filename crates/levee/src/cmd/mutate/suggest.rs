//! Suggested test cases for surviving mutants (`--suggest DIR`): for a
//! survivor, a search for one of the point's cases with one field of one
//! event changed (to a threshold, just beside it, a multiple of another
//! field, the other truth value) on which the point and the mutant raise
//! different alerts. The suggestion expects what the catalog raises on it,
//! exactly: a boundary case the author reviews before keeping it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use levee_rules::model::{ControlPointDef, EventTypeDef, FieldType, TestCase};
use levee_rules::RuleGraph;
use serde_json::Value;

use super::tokens::{tokenize, Kind};
use crate::cases::{self, Scope};

/// A case to run, from a test file.
pub struct Base<'a> {
    pub file: &'a str,
    pub case: &'a TestCase,
}

/// What the search needs of a control point.
pub struct Point<'a> {
    pub def: &'a ControlPointDef,
    pub event_type: &'a EventTypeDef,
    /// The catalog, to expect exactly what it raises.
    pub full: &'a Arc<RuleGraph>,
    /// The point alone, unmutated.
    pub alone: &'a Arc<RuleGraph>,
}

/// A suggested case, as YAML, and what it tells apart.
#[derive(Debug)]
pub struct Suggestion {
    pub yaml: String,
}

/// The point's alerts on a case: (tier, event, subject), sorted; `None`
/// if the case cannot be played.
fn outcome(
    graph: &Arc<RuleGraph>,
    file: &str,
    case: &TestCase,
    id: &str,
) -> Option<Vec<(u8, String, String)>> {
    let (alerts, problems) = cases::play(graph, file, case, Scope::Only(id));
    if !problems.is_empty() {
        return None;
    }
    let mut out: Vec<_> = alerts
        .into_iter()
        .map(|a| (a.tier, a.event_id, a.subject))
        .collect();
    out.sort();
    Some(out)
}

/// The names a condition reads, through derived values and the point's
/// aggregates, and the numbers and strings it is written with.
fn reads(src: &str, p: &Point<'_>) -> (BTreeSet<String>, Vec<f64>, Vec<String>) {
    let mut names = BTreeSet::new();
    let mut numbers = Vec::new();
    let mut strings = Vec::new();
    let mut todo = vec![src.to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(text) = todo.pop() {
        if !seen.insert(text.clone()) || seen.len() > 64 {
            continue;
        }
        for t in tokenize(&text).unwrap_or_default() {
            let w = t.text(&text);
            match t.kind {
                Kind::Number => numbers.extend(w.parse::<f64>().ok()),
                Kind::Str => strings.push(w.trim_matches('"').to_owned()),
                Kind::Name => {
                    if let Some(d) = p.event_type.derived.get(w) {
                        todo.push(d.clone());
                    } else if let Some(a) = p.def.aggregates.get(w) {
                        todo.extend(a.of.clone());
                        todo.extend(a.filter.clone());
                    } else if p.event_type.fields.contains_key(w) {
                        names.insert(w.to_owned());
                    }
                }
                _ => {}
            }
        }
    }
    // Products: `30 * 86400` is a threshold as much as 30 is.
    let n = numbers.len().min(8);
    for i in 0..n {
        for j in i + 1..n {
            numbers.push(numbers[i] * numbers[j]);
        }
    }
    (names, numbers, strings)
}

/// Values worth trying for field `name` of an event.
fn candidates(
    ty: FieldType,
    ev: &Value,
    name: &str,
    others: &[f64],
    numbers: &[f64],
    strings: &[String],
    gaps: &[f64],
) -> Vec<Value> {
    let current = ev.get(name);
    let mut xs: Vec<f64> = Vec::new();
    // A window's sum moves with the event's own value: the gaps between
    // the values the point's alerts read and the thresholds.
    if let Some(v) = current.and_then(Value::as_f64) {
        for g in gaps {
            xs.extend([v + g, v + g - 0.01, v + g + 0.01, v + g - 1.0, v + g + 1.0]);
        }
    }
    for &c in numbers {
        xs.extend([c, c - 0.01, c + 0.01, c - 1.0, c + 1.0, c * 0.99, c * 1.01]);
        for &o in others {
            let m = o * c;
            xs.extend([m, m - 0.01, m + 0.01, m - 1.0, m + 1.0]);
            if c != 0.0 {
                xs.extend([o / c, o / c - 0.01, o / c + 0.01]);
            }
        }
    }
    if let Some(v) = current.and_then(Value::as_f64) {
        xs.extend([
            v - 0.01,
            v + 0.01,
            v - 1.0,
            v + 1.0,
            v * 0.99,
            v * 1.01,
            0.0,
        ]);
    }
    let mut out: Vec<Value> = Vec::new();
    let mut push = |v: Value| {
        if Some(&v) != current && !out.contains(&v) {
            out.push(v);
        }
    };
    match ty {
        FieldType::Integer => xs
            .iter()
            .filter(|x| x.is_finite())
            .for_each(|x| push(Value::from(x.round() as i64))),
        FieldType::Number => xs
            .iter()
            .filter(|x| x.is_finite())
            .for_each(|x| push(Value::from((x * 100.0).round() / 100.0))),
        FieldType::Boolean => {
            push(Value::Bool(true));
            push(Value::Bool(false));
        }
        FieldType::String => {
            strings.iter().for_each(|s| push(Value::from(s.as_str())));
            push(Value::from("levee-mutant-other"));
        }
        FieldType::Timestamp => {
            for &o in others {
                for &c in numbers {
                    for d in [-1.0, 0.0, 1.0] {
                        for t in [o + c + d, o - c + d] {
                            if let Some(s) = chrono::DateTime::from_timestamp(t as i64, 0) {
                                push(Value::from(
                                    s.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    out.truncate(400);
    out
}

/// A field's value as a number (timestamps in seconds).
fn number(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| {
        v.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp() as f64)
    })
}

/// A case telling `mutant` apart from the point, from one of `bases` with
/// one field of one event changed, and what it changed.
pub fn find(
    p: &Point<'_>,
    mutant: &Arc<RuleGraph>,
    condition: &str,
    bases: &[Base<'_>],
) -> Option<(TestCase, String, usize)> {
    let (names, numbers, strings) = reads(condition, p);
    for (k, b) in bases.iter().enumerate().take(12) {
        let (alerts, _) = cases::play(p.alone, b.file, b.case, Scope::Only(&p.def.id));
        let mut gaps: Vec<f64> = Vec::new();
        for a in &alerts {
            for e in a.evidence.values().filter_map(Value::as_f64) {
                gaps.extend(numbers.iter().map(|c| c - e).filter(|g| *g != 0.0));
            }
        }
        gaps.sort_by(f64::total_cmp);
        gaps.dedup();
        gaps.truncate(40);
        for (i, ev) in b.case.events.iter().enumerate() {
            if ev.get("type").and_then(Value::as_str) != Some(p.def.event_type.as_str()) {
                continue;
            }
            for name in &names {
                let Some(field) = p.event_type.fields.get(name) else {
                    continue;
                };
                let others: Vec<f64> = names
                    .iter()
                    .chain(std::iter::once(&"occurred_at".to_owned()))
                    .filter(|n| *n != name)
                    .filter_map(|n| ev.get(n.as_str()).and_then(number))
                    .collect();
                for v in candidates(field.ty, ev, name, &others, &numbers, &strings, &gaps) {
                    let mut events = b.case.events.clone();
                    events[i][name.as_str()] = v.clone();
                    let case = TestCase {
                        name: String::new(),
                        events,
                        expect: Vec::new(),
                        expect_also_others: false,
                        expect_none: Vec::new(),
                        expect_count: Default::default(),
                        now: b.case.now.clone(),
                        expect_future: b.case.expect_future.clone(),
                        tables: b.case.tables.clone(),
                    };
                    let Some(want) = outcome(p.alone, b.file, &case, &p.def.id) else {
                        continue;
                    };
                    if outcome(mutant, b.file, &case, &p.def.id).is_none_or(|got| got != want) {
                        let id = ev.get("event_id").and_then(Value::as_str).unwrap_or("?");
                        return Some((case, format!("{name} = {v} on event {id}"), k));
                    }
                }
            }
        }
    }
    None
}

/// Whether `case` tells `mutant` apart from the point.
pub fn kills(p: &Point<'_>, mutant: &Arc<RuleGraph>, file: &str, case: &TestCase) -> bool {
    let want = outcome(p.alone, file, case, &p.def.id);
    want.is_some() && outcome(mutant, file, case, &p.def.id) != want
}

/// The suggested case as YAML: the catalog's alerts on it, exactly.
pub fn write(
    p: &Point<'_>,
    file: &str,
    case: &TestCase,
    what: &str,
    changes: &[String],
) -> Option<Suggestion> {
    let (alerts, problems) = cases::play(p.full, file, case, Scope::All);
    if !problems.is_empty() {
        return None;
    }
    let mut y = String::new();
    let name = format!(
        "{} boundary: {what} (tells apart {})",
        p.def.id,
        changes.join("; ")
    );
    let _ = writeln!(y, "  - name: {}", serde_json::to_string(&name).ok()?);
    if let Some(now) = &case.now {
        let _ = writeln!(y, "    now: {}", serde_json::to_string(now).ok()?);
    }
    let _ = writeln!(y, "    events:");
    for ev in &case.events {
        let _ = writeln!(y, "      - {}", serde_json::to_string(ev).ok()?);
    }
    let mut listed: Vec<(String, u8, String)> = alerts
        .iter()
        .map(|a| (a.control_point.clone(), a.tier, a.event_id.clone()))
        .collect();
    listed.sort();
    listed.dedup();
    if !listed.is_empty() {
        let _ = writeln!(y, "    expect:");
        for (cp, tier, ev) in &listed {
            let _ = writeln!(
                y,
                "      - {{control_point: {cp}, tier: {tier}, event_id: {}}}",
                serde_json::to_string(ev).ok()?
            );
        }
    }
    if !listed.iter().any(|(cp, _, _)| *cp == p.def.id) {
        let _ = writeln!(y, "    expect_none: [{}]", p.def.id);
    }
    if !case.expect_future.is_empty() {
        let _ = writeln!(
            y,
            "    expect_future: {}",
            serde_json::to_string(&case.expect_future).ok()?
        );
    }
    Some(Suggestion { yaml: y })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_tried_at_thresholds_beside_them_and_at_multiples() {
        let ev = json!({"a": 150.0, "b": 100.0});
        let got = candidates(FieldType::Number, &ev, "a", &[100.0], &[1.5], &[], &[]);
        for want in [1.5, 1.49, 1.51, 150.01, 149.99, 151.0] {
            assert!(got.contains(&json!(want)), "{want} not in {got:?}");
        }
        // The current value is no candidate.
        assert!(!got.contains(&json!(150.0)));
        // A gap to a threshold moves the event's value by it.
        let got = candidates(
            FieldType::Integer,
            &json!({"n": 7}),
            "n",
            &[],
            &[],
            &[],
            &[3.0],
        );
        assert!(got.contains(&json!(10)) && got.contains(&json!(9)));
    }

    #[test]
    fn other_kinds_flip_or_take_the_conditions_words() {
        let ev = json!({"ok": true, "m": "x"});
        let got = candidates(FieldType::Boolean, &ev, "ok", &[], &[], &[], &[]);
        assert_eq!(got, [json!(false)]);
        let words = ["single_source".to_owned()];
        let got = candidates(FieldType::String, &ev, "m", &[], &[], &words, &[]);
        assert_eq!(got, [json!("single_source"), json!("levee-mutant-other")]);
        let t = json!({"at": "2026-01-01T00:00:00Z"});
        let got = candidates(
            FieldType::Timestamp,
            &t,
            "at",
            &[1_767_225_600.0],
            &[60.0],
            &[],
            &[],
        );
        assert!(got.contains(&json!("2026-01-01T00:01:00Z")));
    }
}
