//! Harness for callgrind: decodes the first N good events of a file and runs
//! `Engine::run` on each (as levee runs: one engine, recording state).
//! `valgrind --tool=callgrind --toggle-collect='*run_one*' target/release/examples/callgrind_eval FILE N`
//! (BENCHMARKS.md, section 1: instructions per event of rule evaluation).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::path::Path;
use std::sync::Arc;

use levee_engine::{Engine, EvalStats};

#[inline(never)]
fn run_one(engine: &mut Engine) -> EvalStats {
    engine.run()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let file = args.next().expect("events file");
    let n: usize = args.next().map_or(10_000, |s| s.parse().unwrap());
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let graph = Arc::new(levee_rules::compile_dir(&root.join("rules")).unwrap().graph);
    let mut check = Engine::new(graph.clone());
    check.set_record(false);
    let text = std::fs::read_to_string(file).unwrap();
    let events: Vec<&[u8]> = text
        .lines()
        .map(str::as_bytes)
        .filter(|l| check.decode(l).is_ok())
        .take(n)
        .collect();
    let mut engine = Engine::new(graph);
    let mut hits = 0usize;
    for e in &events {
        engine.decode(e).unwrap();
        run_one(&mut engine);
        hits += engine.hits().len();
    }
    println!("{} events, {} hits", events.len(), hits);
}
