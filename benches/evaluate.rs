//! Rule evaluation and decoding, each beside its baseline in the same run.
//!
//! - `evaluate/compiled` vs `evaluate/evalexpr`: the shipped catalog over
//!   decoded events. The compiled graph's time is (decode + evaluate) minus
//!   decode, as `levee replay` runs: one engine per pass over the events
//!   (the file is in event time order), recording state from empty (window
//!   entries added and pruned by event time, `for:` holds, suppression),
//!   no changelog tracking, no alerts built. The baseline builds an evalexpr
//!   `HashMapContext` per event from the decoded fields and evaluates every
//!   control point's conditions one by one with evalexpr's interpreter (trees
//!   parsed once, up front). evalexpr has no windows: a stateful control
//!   point's aggregate names are unbound there and its condition fails at
//!   the first one, while the compiled graph keeps and reads the windows.
//! - `decode/levee` vs `decode/serde_json_value`: bytes → typed slots with
//!   schema checks, against parsing the same bytes into `serde_json::Value`.
//!
//! Run: `cargo bench -p levee-engine --bench evaluate`. Events: the good lines
//! of `examples/events.jsonl`, or the file named by `LEVEE_BENCH_EVENTS`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use evalexpr::{ContextWithMutableVariables, HashMapContext, Node, Value};
use levee_engine::{Engine, Val};
use levee_rules::model::FieldType;
use levee_rules::RuleGraph;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn load() -> (Arc<RuleGraph>, Vec<Vec<u8>>) {
    let graph = Arc::new(
        levee_rules::compile_dir(&root().join("rules"))
            .unwrap()
            .graph,
    );
    let file = std::env::var("LEVEE_BENCH_EVENTS")
        .map(Into::into)
        .unwrap_or_else(|_| root().join("examples/events.jsonl"));
    let mut engine = Engine::new(graph.clone());
    let events: Vec<Vec<u8>> = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| l.as_bytes().to_vec())
        .filter(|l| engine.evaluate(l).is_ok())
        .take(20_000)
        .collect();
    (graph, events)
}

/// evalexpr's view of one event type: parsed trees, derived values in
/// dependency order.
struct Interpreted {
    derived: Vec<(String, Node)>,
    points: Vec<(Node, Vec<Node>)>,
}

fn interpreted(graph: &RuleGraph, sources: &Path) -> Vec<Interpreted> {
    // Derived value sources come from the rule files, as authors wrote them.
    let mut derived_src: std::collections::HashMap<(String, String), String> = Default::default();
    for f in levee_rules::read_rules_dir(sources).unwrap().files {
        let rf: levee_rules::model::RuleFile = serde_norway::from_str(&f.text).unwrap();
        for (t, def) in rf.event_types {
            for (n, e) in def.derived {
                derived_src.insert((t.clone(), n), e);
            }
        }
    }
    graph
        .event_types
        .iter()
        .map(|et| {
            // Order derived values so each comes after those it reads.
            let mut pending: Vec<(String, Node)> = et
                .derived
                .iter()
                .map(|(n, _)| {
                    let src = &derived_src[&(et.name.clone(), n.clone())];
                    (n.clone(), evalexpr::build_operator_tree(src).unwrap())
                })
                .collect();
            let mut derived = Vec::new();
            while !pending.is_empty() {
                let ready = pending
                    .iter()
                    .position(|(_, node)| {
                        node.iter_variable_identifiers()
                            .all(|id| !pending.iter().any(|(p, _)| p == id))
                    })
                    .unwrap();
                derived.push(pending.remove(ready));
            }
            let points = et
                .control_points
                .iter()
                .map(|&c| {
                    let cp = &graph.control_points[c as usize];
                    let tiers = cp
                        .tiers
                        .iter()
                        .filter_map(|t| t.when_src.as_deref())
                        .map(|s| evalexpr::build_operator_tree(s).unwrap())
                        .collect();
                    (evalexpr::build_operator_tree(&cp.when_src).unwrap(), tiers)
                })
                .collect();
            Interpreted { derived, points }
        })
        .collect()
}

fn to_value(v: &Val) -> Option<Value> {
    Some(match v {
        Val::Bool(b) => Value::Boolean(*b),
        Val::Int(i) => Value::Int(*i),
        Val::Float(f) => Value::Float(*f),
        Val::Str(s) => Value::String(s.clone()),
        _ => return None,
    })
}

fn benches(c: &mut Criterion) {
    let (graph, events) = load();
    let interp = interpreted(&graph, &root().join("rules"));

    // The baseline's input: each event's fields as evalexpr values, taken
    // from levee's decoder.
    let mut engine = Engine::new(graph.clone());
    let mut fields: Vec<(usize, Vec<(String, Value)>)> = Vec::new();
    for e in &events {
        engine.decode(e).unwrap();
        let ti = engine.envelope().type_index;
        let et = &graph.event_types[ti as usize];
        let vals = et
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.ty != FieldType::Timestamp || !f.common)
            .filter_map(|(i, f)| to_value(engine.slot(ti, i as u32)).map(|v| (f.name.clone(), v)))
            .collect();
        fields.push((ti as usize, vals));
    }

    let mut g = c.benchmark_group("evaluate");
    g.throughput(Throughput::Elements(events.len() as u64));
    // The compiled graph evaluates an event in the buffer the decoder has
    // just filled, as levee runs: one engine, decode then evaluate, state
    // recorded. Its cost is measured as (decode + evaluate) minus decode
    // alone, both timed back to back over all events in every iteration.
    // Each iteration starts a fresh engine (untimed), so that the events'
    // history is recorded once, in event time order, as a replay of the
    // file records it: the same events fed again would pile up in windows.
    g.bench_function("compiled", |b| {
        b.iter_custom(|iters| {
            let mut both = Duration::ZERO;
            let mut decode_only = Duration::ZERO;
            let mut hits = 0;
            for _ in 0..iters {
                let mut engine = Engine::new(graph.clone());
                engine.state_mut().set_tracking(false);
                let start = Instant::now();
                for e in &events {
                    engine.decode(e).unwrap();
                }
                decode_only += start.elapsed();
                let start = Instant::now();
                for e in &events {
                    engine.decode(e).unwrap();
                    engine.run();
                    hits += engine.hits().len();
                }
                both += start.elapsed();
                // Dropping the state is not evaluation.
                std::hint::black_box(&engine);
                drop(engine);
            }
            std::hint::black_box(hits);
            both.saturating_sub(decode_only)
        })
    });
    g.bench_function("evalexpr", |b| {
        b.iter(|| {
            let mut hits = 0;
            for (ti, vals) in &fields {
                let mut ctx = HashMapContext::new();
                for (n, v) in vals {
                    ctx.set_value(n.clone(), v.clone()).unwrap();
                }
                let it = &interp[*ti];
                for (n, node) in &it.derived {
                    if let Ok(v) = node.eval_with_context(&ctx) {
                        ctx.set_value(n.clone(), v).unwrap();
                    }
                }
                for (when, tiers) in &it.points {
                    if when.eval_boolean_with_context(&ctx) == Ok(true) {
                        hits += 1;
                        for t in tiers {
                            let _ = t.eval_boolean_with_context(&ctx);
                        }
                    }
                }
            }
            hits
        })
    });
    g.finish();

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(events.len() as u64));
    let mut engine = Engine::new(graph.clone());
    g.bench_function("levee", |b| {
        b.iter(|| {
            for e in &events {
                engine.decode(e).unwrap();
            }
        })
    });
    g.bench_function("serde_json_value", |b| {
        b.iter(|| {
            for e in &events {
                let v: serde_json::Value = serde_json::from_slice(e).unwrap();
                std::hint::black_box(v);
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = group;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(group);
