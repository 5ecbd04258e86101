//! The fuzz targets: the event decoder (with evaluation), the rule
//! compiler (YAML and expressions, then evaluation), and the HTTP evaluate
//! body (split, then each event evaluated).

pub mod compile;
pub mod decode;
pub mod http;

use std::sync::Arc;

use levee_engine::{BadInput, BadKind, Engine, Processed};
use levee_rules::RuleGraph;

use crate::corpus::Corpus;
use crate::event::{self, Knowledge};
use crate::json::J;
use crate::rng::{fnv, Rng};

/// A name for each kind of bad input (the report's classes).
pub fn class_of(bad: &BadInput) -> &'static str {
    bad.kind.as_str()
}

/// The behaviour of a bad input: its kind and the field it names.
pub fn bad_signature(event_type: &str, bad: &BadInput) -> u64 {
    let field = bad.reason.split('`').nth(1).unwrap_or("");
    fnv(format!("bad {event_type} {} {field}", bad.kind.as_str()).as_bytes())
}

/// The behaviour of an evaluated event: its type, what fired at which
/// tier, and whether conditions were unknown or failed.
pub fn hit_signature(engine: &Engine, p: &Processed) -> u64 {
    let mut h = fnv(engine.envelope().event_type.as_bytes());
    for hit in engine.hits() {
        h = h.rotate_left(5) ^ (u64::from(hit.control_point) << 8 | u64::from(hit.tier));
    }
    h ^ (u64::from(p.stats.unknown.min(3)) << 60)
        ^ (u64::from(p.stats.errors.min(3)) << 58)
        ^ (u64::from(p.stats.suppressed.min(1)) << 57)
}

/// Checks what the decoder promises of its answer; a broken promise is a
/// finding (it panics, as a crash does).
pub fn check_promises(input: &[u8], result: &Result<Processed, BadInput>, engine: &Engine) {
    let parsed = serde_json::from_slice::<serde_json::Value>(input);
    match result {
        Ok(p) => {
            // Only a JSON object of a known type is decoded.
            let ty = parsed
                .as_ref()
                .ok()
                .and_then(|v| v.get("type"))
                .and_then(serde_json::Value::as_str);
            assert_eq!(
                ty,
                Some(engine.envelope().event_type.as_str()),
                "decoded, but not a JSON object of that type"
            );
            for alert in &p.alerts {
                assert_eq!(alert.event_id, engine.envelope().event_id);
                assert!(
                    serde_json::to_vec(alert).is_ok(),
                    "an alert that does not serialize"
                );
            }
        }
        Err(bad) => match bad.kind {
            BadKind::NotJson | BadKind::InvalidUnicode | BadKind::NonFinite | BadKind::Bom => {
                assert!(
                    parsed.is_err(),
                    "refused as {} but it is JSON",
                    bad.kind.as_str()
                );
            }
            BadKind::NotObject => {
                assert!(
                    parsed.as_ref().is_ok_and(|v| !v.is_object()),
                    "refused as not an object"
                );
            }
            _ => {}
        },
    }
}

/// The shipped catalog, compiled once.
pub fn shipped_graph(corpus: &Corpus) -> Result<Arc<RuleGraph>, String> {
    levee_rules::compile_dir(&corpus.root.join("rules"))
        .map(|c| Arc::new(c.graph))
        .map_err(|d| {
            let first: Vec<String> = d.iter().take(3).map(ToString::to_string).collect();
            format!("the shipped rules do not compile: {}", first.join("; "))
        })
}

/// Generates one event message, structure-aware: a seed (or a kept
/// input) or a generated event of any type, mutated a few times, printed,
/// and now and then damaged byte by byte.
///
/// With `focus`, every event is of that type (an index into
/// [`Knowledge::types`]).
pub fn event_message(
    k: &Knowledge,
    pool: &[J],
    rng: &mut Rng,
    last: &mut Option<J>,
    out: &mut Vec<u8>,
    focus: Option<usize>,
) {
    let any = |rng: &mut Rng| focus.unwrap_or_else(|| rng.below(k.types.len()));
    if rng.percent(6) {
        let raw = match rng.below(2) {
            0 if focus.is_none() => rng.pick(&k.raw),
            _ => None,
        };
        let mut bytes = match raw {
            Some(r) => r.clone(),
            None => {
                let ti = any(rng);
                k.seed_of(rng, ti).to_bytes()
            }
        };
        let other = k
            .raw
            .get(rng.below(k.raw.len().max(1)))
            .cloned()
            .unwrap_or_default();
        for _ in 0..rng.small(4) {
            event::damage(rng, &mut bytes, &other);
        }
        *last = None;
        out.extend_from_slice(&bytes);
        return;
    }
    let mut e = match rng.below(100) {
        0..=24 if !pool.is_empty() => pool[rng.below(pool.len())].clone(),
        0..=69 => {
            let ti = focus.unwrap_or_else(|| rng.below(k.seeds.len()));
            k.seed_of(rng, ti)
        }
        _ => {
            let ti = any(rng);
            k.generate(rng, ti)
        }
    };
    let n = if rng.percent(12) { 0 } else { rng.small(5) };
    for _ in 0..n {
        event::mutate(k, rng, &mut e);
    }
    if e.size() > 100_000 {
        let ti = any(rng);
        e = k.generate(rng, ti);
    }
    e.write(event::layout(rng), out);
    if rng.percent(3) {
        let other = rng.pick(&k.raw).cloned().unwrap_or_default();
        event::damage(rng, out, &other);
        *last = None;
    } else {
        *last = Some(e);
    }
}
