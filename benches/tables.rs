//! Tables (issue 16): what a lookup adds to an event's evaluation, and what
//! a 1,000,000-row table costs to hold and to load.
//!
//! - `lookup/evaluate_exists` vs `lookup/evaluate_contains`: one purchase
//!   through a ruleset of one control point, `exists("blacklist",
//!   supplier_id)` against a table of `LEVEE_BENCH_TABLE_ROWS` rows (default
//!   1,000,000), beside the same point over `contains(list, supplier_id)` of
//!   a 3-item list: the difference is what a lookup adds to an event.
//! - `lookup/column_hit`, `lookup/miss`: `TableSet::lookup` alone, a string
//!   key found (a number column read) and not found, in the same table.
//! - `load/rows_per_second`: rows parsed from JSON against the table's
//!   columns and put, as the table reader does with each record of a topic
//!   (the broker's part is measured end to end, see BENCHMARKS.md).
//!
//! Memory: run with `LEVEE_BENCH_TABLE_MEMORY=1` to print the resident
//! memory (`/proc/self/statm`) before and after filling the table, and the
//! bytes per row, then exit.
//!
//! Run: `cargo bench -p levee-engine --bench tables`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use levee_engine::tables::TableSet;
use levee_engine::{Engine, Val};
use levee_rules::{compile, RuleGraph, RuleSources};

const RULES: &str = r#"
event_types:
  purchase:
    stream: events.procurement
    subject: supplier_id
    fields:
      supplier_id: { type: string, required: true }
      amount_cny: { type: number, required: true }
tables:
  blacklist:
    key: supplier_id
    columns:
      supplier_id: { type: string }
      reason: { type: string }
      limit_cny: { type: number }
lists:
  listed: [SUP-A, SUP-B, SUP-C]
control_points:
  - id: T-1
    domain: d
    title: t
    event_type: purchase
    when: WHEN
    tiers: [{ tier: 1, notify: r }]
    message: "{supplier_id}"
"#;

fn graph(when: &str) -> Arc<RuleGraph> {
    let text = RULES.replace("WHEN", &serde_json::to_string(when).unwrap());
    Arc::new(
        compile(&RuleSources::from_texts([("r.yaml", text.as_str())]))
            .unwrap()
            .graph,
    )
}

fn rows() -> usize {
    std::env::var("LEVEE_BENCH_TABLE_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

fn row_json(i: usize) -> serde_json::Value {
    serde_json::json!({
        "supplier_id": format!("SUP-{i:07}"),
        "reason": "串通投标 bid rigging",
        "limit_cny": 100_000 + i,
        "valid_from": "2025-06-01",
    })
}

/// Fills table 0 of `set` with `n` rows; returns the seconds it took.
fn fill(graph: &RuleGraph, set: &TableSet, n: usize) -> f64 {
    let table = &graph.tables[0];
    let started = Instant::now();
    let mut rows = set.write(0);
    for i in 0..n {
        let row = table.row(&row_json(i), &graph.calendar).unwrap();
        let key = row.key.clone();
        rows.put(&key, [row]);
    }
    started.elapsed().as_secs_f64()
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn event(supplier: &str) -> Vec<u8> {
    format!(
        r#"{{"event_id":"e1","type":"purchase","occurred_at":"2026-11-05T10:00:00+08:00","branch":"wuhan","supplier_id":"{supplier}","amount_cny":1000}}"#
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let n = rows();
    if std::env::var_os("LEVEE_BENCH_TABLE_MEMORY").is_some() {
        let g = graph("exists(\"blacklist\", supplier_id)");
        let set = TableSet::from_graph(&g);
        let before = resident_bytes();
        let secs = fill(&g, &set, n);
        let after = resident_bytes();
        println!(
            "{n} rows: {:.1} MiB resident more ({:.0} bytes a row), parsed and put in {secs:.2} s ({:.0} rows/s)",
            (after - before) as f64 / (1 << 20) as f64,
            (after - before) as f64 / n as f64,
            n as f64 / secs
        );
        return;
    }
    let exists = graph("exists(\"blacklist\", supplier_id)");
    let contains = graph("contains(listed, supplier_id)");
    let set = Arc::new(TableSet::from_graph(&exists));
    fill(&exists, &set, n);
    // A key in the middle of the table, and one not in it.
    let hit = event(&format!("SUP-{:07}", n / 2));
    let miss = event("SUP-NOT-LISTED");

    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    let mut e = Engine::new(exists.clone());
    e.set_tables(set.clone());
    e.set_record(false);
    g.bench_function("evaluate_exists", |b| {
        b.iter(|| {
            e.evaluate(&hit).unwrap();
            e.evaluate(&miss).unwrap();
        })
    });
    let mut e = Engine::new(contains);
    e.set_record(false);
    g.bench_function("evaluate_contains", |b| {
        b.iter(|| {
            e.evaluate(&hit).unwrap();
            e.evaluate(&miss).unwrap();
        })
    });
    let col = exists.tables[0].column("limit_cny").unwrap().0;
    let key_hit = [Val::Str(format!("SUP-{:07}", n / 2))];
    let key_miss = [Val::Str("SUP-NOT-LISTED".to_owned())];
    let at = 1_790_000_000;
    let mut out = Val::Missing;
    g.bench_function("column_hit", |b| {
        b.iter(|| set.lookup(0, col, &[0], &key_hit, at, &mut out))
    });
    g.bench_function("miss", |b| {
        b.iter(|| set.lookup(0, col, &[0], &key_miss, at, &mut out))
    });
    g.finish();

    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("rows_per_second", |b| {
        b.iter(|| {
            let s = TableSet::from_graph(&exists);
            fill(&exists, &s, 100_000)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
