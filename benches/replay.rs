//! `levee replay` throughput against its baseline, in one run: parsing the
//! same file line by line into `serde_json::Value` and nothing else.
//!
//! Run: `cargo bench -p levee --bench replay` (300,000 events from
//! `levee gen --seed 11`; set `LEVEE_BENCH_REPLAY_EVENTS` for another count).
//! Prints each figure next to its baseline and the ratio; asserts nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn time<F: FnMut()>(mut f: F) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn main() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let levee = env!("CARGO_BIN_EXE_levee");
    let n: usize = std::env::var("LEVEE_BENCH_REPLAY_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let dir = std::env::temp_dir().join(format!("levee-bench-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    let out = dir.join("alerts.jsonl");
    let status = Command::new(levee)
        .current_dir(root)
        .args(["gen", "--seed", "11", "--events", &n.to_string(), "--out"])
        .arg(&events)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let mut run_replay = || {
        let status = Command::new(levee)
            .current_dir(root)
            .arg("replay")
            .arg(&events)
            .args(["--now", "2026-11-26T00:00:00Z"])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    };
    let mut run_parse = || {
        let f = BufReader::with_capacity(1 << 16, std::fs::File::open(&events).unwrap());
        let mut count = 0usize;
        for line in f.split(b'\n') {
            let line = line.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
            count += usize::from(v.is_object());
        }
        assert_eq!(count, n);
    };
    // Alternate the two, five rounds, and keep each one's best: a burst of
    // other load on a shared machine then hits both alike.
    let mut replay = Duration::MAX;
    let mut parse = Duration::MAX;
    for _ in 0..5 {
        replay = replay.min(time(&mut run_replay));
        parse = parse.min(time(&mut run_parse));
    }
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "replay: {n} events in {:.3} s = {:.0} events/s (compiled rules, alerts written to a file)",
        replay.as_secs_f64(),
        rate(replay)
    );
    println!(
        "baseline: serde_json::Value line parse in {:.3} s = {:.0} events/s",
        parse.as_secs_f64(),
        rate(parse)
    );
    println!(
        "ratio replay/baseline: {:.2}x (target >= 0.5x)",
        rate(replay) / rate(parse)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
