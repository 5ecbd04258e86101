//! The cost of one alert: rendering it (alert id, message, evidence) and
//! writing its JSON line, against building an `Alert` and serializing it
//! with serde_json (the service's path, and replay's before).
//!
//! - `alert/write`: `Engine::write_alert` into a re-used buffer, what
//!   `levee replay` does for each hit.
//! - `alert/serde`: `Engine::alert` then `serde_json::to_writer`, the
//!   alert dropped after.
//!
//! Both over the hits of the same events (the events of the file that
//! raise at least one alert, at most 20,000), with an engine that records
//! nothing, so that neither the ledger of open alerts (its own cost, the
//! same for both) nor the state enter the figure. Each event is evaluated
//! untimed; only the alerts of its hits are timed.
//!
//! Run: `LEVEE_BENCH_EVENTS=FILE cargo bench -p levee-engine --bench alert`
//! (default: `examples/events.jsonl`). An alert-storm file:
//! `levee gen --events 300000 --seed 11 --breach-rate 0.5`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use levee_engine::{Engine, Source};

const NOW: &str = "2026-11-26T00:00:00.000Z";

fn benches(c: &mut Criterion) {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let graph = Arc::new(levee_rules::compile_dir(&root.join("rules")).unwrap().graph);
    let file = std::env::var("LEVEE_BENCH_EVENTS")
        .map(Into::into)
        .unwrap_or_else(|_| root.join("examples/events.jsonl"));
    let mut engine = Engine::new(graph);
    engine.set_record(false);
    let mut alerts = 0;
    let mut events: Vec<Vec<u8>> = Vec::new();
    for line in std::fs::read_to_string(file).unwrap().lines() {
        if events.len() < 20_000
            && engine.evaluate(line.as_bytes()).is_ok()
            && !engine.hits().is_empty()
        {
            alerts += engine.hits().len();
            events.push(line.as_bytes().to_vec());
        }
    }
    println!(
        "alert: {alerts} alerts of {} events (the events that raise one)",
        events.len()
    );
    let source = Source::File {
        file: "events.jsonl".into(),
        line: 123_456,
    };

    let mut g = c.benchmark_group("alert");
    g.throughput(Throughput::Elements(alerts as u64));
    let mut out = Vec::with_capacity(1 << 16);
    g.bench_function("write", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                for e in &events {
                    engine.evaluate(e).unwrap();
                    out.clear();
                    let start = Instant::now();
                    for &hit in engine.hits() {
                        engine.write_alert(hit, &source, NOW, &mut out);
                        out.push(b'\n');
                    }
                    spent += start.elapsed();
                    std::hint::black_box(&out);
                }
            }
            spent
        })
    });
    g.bench_function("serde", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                for e in &events {
                    engine.evaluate(e).unwrap();
                    out.clear();
                    let start = Instant::now();
                    for &hit in engine.hits() {
                        let alert = engine.alert(hit, &source, NOW);
                        serde_json::to_writer(&mut out, &alert).unwrap();
                        out.push(b'\n');
                    }
                    spent += start.elapsed();
                    std::hint::black_box(&out);
                }
            }
            spent
        })
    });
    g.finish();
}

criterion_group! {
    name = group;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(group);
