//! Scaling with rule count: the shipped catalog (583 control points) and
//! synthetic catalogs of 10× and 100× as many, derived from it the way real
//! deployments grow — every control point repeated with its thresholds
//! varied (each numeric literal of its conditions scaled by a different
//! factor), so the copies share fields and shapes but not constants.
//!
//! Measures, in one run: compile time per catalog, and evaluation per event
//! (decode + evaluate, recording nothing) over generated events.
//!
//! Run: `cargo bench -p levee-engine --bench scaling`. Events: the good lines
//! of `LEVEE_BENCH_EVENTS` (e.g. from `levee gen`), else `examples/events.jsonl`.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use levee_engine::Engine;
use levee_rules::model::RuleFile;
use levee_rules::{compile, RuleSources};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Scales every numeric literal of an expression by `factor`.
fn vary(expr: &str, factor: f64) -> String {
    let mut out = String::with_capacity(expr.len() + 16);
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c.is_ascii_digit() && !prev_ident {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let lit: String = chars[start..i].iter().collect();
            match lit.parse::<f64>() {
                Ok(v) if v != 0.0 => out.push_str(&format!("{:?}", v * factor)),
                _ => out.push_str(&lit),
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The shipped rule files with every control point repeated `copies` times.
fn catalog(copies: usize) -> RuleSources {
    let sources = levee_rules::read_rules_dir(&root().join("rules")).unwrap();
    if copies == 1 {
        return sources;
    }
    let mut files: Vec<(String, String)> = Vec::new();
    for f in &sources.files {
        let mut rf: RuleFile = serde_norway::from_str(&f.text).unwrap();
        let originals = std::mem::take(&mut rf.control_points);
        let mut text = String::new();
        // Schemas and lists stay in a file of their own; control points are
        // written out again, `copies` times.
        if !originals.is_empty() {
            text.push_str("control_points:\n");
            for k in 0..copies {
                let factor = 1.0 + k as f64 * 0.0137;
                for cp in &originals {
                    let mut cp_yaml = serde_norway::to_value(cp_to_json(cp, k, factor)).unwrap();
                    if let serde_norway::Value::Mapping(m) = &mut cp_yaml {
                        m.remove("title_zh");
                    }
                    let one = serde_norway::to_string(&vec![cp_yaml]).unwrap();
                    for line in one.lines() {
                        text.push_str("  ");
                        text.push_str(line);
                        text.push('\n');
                    }
                }
            }
        }
        let rest = strip_control_points(&f.text);
        files.push((format!("{}.rest.yaml", f.relative), rest));
        files.push((f.relative.clone(), text));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    RuleSources::from_texts(refs)
}

/// The file without its `control_points:` section (schemas and lists stay).
fn strip_control_points(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with("control_points:") {
            skipping = true;
            continue;
        }
        if skipping
            && !line.starts_with(' ')
            && !line.starts_with('-')
            && !line.trim().is_empty()
            && !line.starts_with('#')
        {
            skipping = false;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn cp_to_json(
    cp: &levee_rules::model::ControlPointDef,
    k: usize,
    factor: f64,
) -> serde_json::Value {
    let tiers: Vec<serde_json::Value> = cp
        .tiers
        .iter()
        .map(|t| {
            let mut v = serde_json::json!({"tier": t.tier});
            if let Some(w) = &t.when {
                v["when"] = vary(w, factor).into();
            }
            if let Some(n) = &t.notify {
                v["notify"] = n.as_str().into();
            }
            v
        })
        .collect();
    let mut v = serde_json::json!({
        "id": if k == 0 { cp.id.clone() } else { format!("{}-x{k}", cp.id) },
        "domain": cp.domain,
        "title": cp.title,
        "event_type": cp.event_type,
        "when": if k == 0 { cp.when.clone() } else { vary(&cp.when, factor) },
        "tiers": tiers,
        "action": cp.action.as_str(),
        "message": cp.message,
    });
    match &cp.subject {
        Some(levee_rules::model::SubjectDef::One(s)) => v["subject"] = s.as_str().into(),
        Some(levee_rules::model::SubjectDef::Composite(fs)) => v["subject"] = fs.clone().into(),
        None => {}
    }
    if !cp.aggregates.is_empty() {
        let mut aggs = serde_json::Map::new();
        for (name, a) in &cp.aggregates {
            let mut av =
                serde_json::json!({"fn": format!("{:?}", a.func).to_lowercase(), "over": a.over});
            if let Some(of) = &a.of {
                av["of"] = of.as_str().into();
            }
            if let Some(w) = &a.filter {
                av["where"] = vary(w, factor).into();
            }
            aggs.insert(name.clone(), av);
        }
        v["aggregates"] = aggs.into();
    }
    for (key, val) in [
        ("for", &cp.for_),
        ("suppress", &cp.suppress),
        ("escalate_after", &cp.escalate_after),
    ] {
        if let Some(x) = val {
            v[key] = x.as_str().into();
        }
    }
    v
}

fn events(graph: &Arc<levee_rules::RuleGraph>) -> Vec<Vec<u8>> {
    let file = std::env::var("LEVEE_BENCH_EVENTS")
        .map(Into::into)
        .unwrap_or_else(|_| root().join("examples/events.jsonl"));
    let mut engine = Engine::new(graph.clone());
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| l.as_bytes().to_vec())
        .filter(|l| engine.evaluate(l).is_ok())
        .take(5_000)
        .collect()
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("scaling");
    let base = Arc::new(compile(&catalog(1)).unwrap().graph);
    let evs = events(&base);
    g.throughput(Throughput::Elements(evs.len() as u64));
    for copies in [1usize, 10, 100] {
        let sources = catalog(copies);
        let started = Instant::now();
        let compiled = compile(&sources).unwrap_or_else(|d| {
            panic!(
                "{}",
                d.iter()
                    .take(5)
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        let took = started.elapsed();
        let graph = Arc::new(compiled.graph);
        eprintln!(
            "scaling: {} control points compiled in {:.3} s",
            graph.control_points.len(),
            took.as_secs_f64()
        );
        let mut engine = Engine::new(graph.clone());
        engine.set_record(false);
        g.bench_with_input(
            BenchmarkId::new("evaluate", graph.control_points.len()),
            &evs,
            |b, evs| {
                b.iter(|| {
                    let mut hits = 0;
                    for e in evs {
                        let _ = engine.evaluate(e);
                        hits += engine.hits().len();
                    }
                    hits
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = group;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(group);
