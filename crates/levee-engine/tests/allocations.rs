//! The hot path allocates almost nothing once warm: evaluating an event
//! (the rule graph over its decoded fields) makes no heap allocation, and
//! decoding makes one (the list of the message's entries), plus one for a
//! string field whose previous value was null. Counted with dhat's counting
//! allocator over the example events.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use levee_engine::Engine;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

#[test]
fn evaluation_allocates_nothing_and_decoding_once_per_event() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let graph = Arc::new(levee_rules::compile_dir(&root.join("rules")).unwrap().graph);
    let text = std::fs::read_to_string(root.join("examples/events.jsonl")).unwrap();
    let mut engine = Engine::new(graph);
    // What-if evaluation: state is read, never grown (a new subject's
    // windows are allocations by design, not per-event overhead).
    engine.set_record(false);
    let events: Vec<&[u8]> = text
        .lines()
        .map(str::as_bytes)
        .filter(|l| engine.evaluate(l).is_ok())
        .collect();
    assert!(events.len() >= 10, "{} good example events", events.len());
    // Warm: every buffer has seen its type's values once.
    for e in &events {
        engine.evaluate(e).unwrap();
    }

    let mut decode = 0;
    let mut evaluate = 0;
    for e in &events {
        let before = blocks();
        engine.decode(e).unwrap();
        let between = blocks();
        engine.run();
        let after = blocks();
        decode += between - before;
        evaluate += after - between;
    }
    assert_eq!(
        evaluate,
        0,
        "allocations while evaluating {} events",
        events.len()
    );
    // One per event (the entries list), and one for a string field that
    // was null in the type's previous event (a missing value keeps no
    // buffer): campaign-0002's partner after campaign-0001's null.
    assert_eq!(
        decode,
        events.len() as u64 + 1,
        "allocations while decoding {} events",
        events.len()
    );
}
