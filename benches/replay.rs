//! `levee replay` against its baseline, timed as a user runs them: the
//! whole `levee replay` process against the whole baseline process
//! (`benches/json_lines.rs`: each line parsed into `serde_json::Value`,
//! counted, a one-line summary) on the same file.
//!
//! Two streams of `LEVEE_BENCH_REPLAY_EVENTS` events (300,000 by default):
//! - *quiet*: `levee gen --seed 11` (about 2 % of the events alert);
//! - *storm*: `levee gen --seed 11 --breach-rate 0.5` (about half of the
//!   events alert: injected breach cases make up half of the stream).
//!
//! `levee replay FILE --now 2026-11-26T00:00:00Z`, alerts written to a file;
//! the baseline's summary to a pipe that nothing reads. One untimed run of
//! each first (the file in the page cache), then `LEVEE_BENCH_REPLAY_RUNS`
//! rounds (5 by default), the two alternating within each round so that a
//! burst of other load on a shared machine hits both alike. Prints each
//! side's median and spread (min–max) and the ratio of the medians
//! (baseline time / replay time: replay's speed as a share of the
//! baseline's), with the spread of the per-round ratios. Asserts nothing.
//!
//! Run: `cargo bench -p levee --bench replay`. The baseline is built with
//! `cargo build --release -p levee --example json_lines` (the bench runs
//! that itself if the binary is missing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NOW: &str = "2026-11-26T00:00:00Z";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The baseline program, built beside levee (same profile directory).
fn baseline(root: &Path, levee: &Path) -> PathBuf {
    let exe = levee
        .parent()
        .unwrap()
        .join("examples")
        .join(format!("json_lines{}", std::env::consts::EXE_SUFFIX));
    if !exe.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(root)
            .args([
                "build",
                "--release",
                "-p",
                "levee",
                "--example",
                "json_lines",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "building the json_lines example failed");
    }
    assert!(
        exe.exists(),
        "{} is missing: cargo build --release -p levee --example json_lines",
        exe.display()
    );
    exe
}

fn run(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let status = cmd.status().unwrap();
    let spent = t.elapsed();
    assert!(status.success(), "{cmd:?}");
    spent
}

/// Median and spread of some durations, in seconds.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    (median, v[0], v[v.len() - 1])
}

fn main() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let levee = Path::new(env!("CARGO_BIN_EXE_levee"));
    let json_lines = baseline(root, levee);
    let n = env_or("LEVEE_BENCH_REPLAY_EVENTS", 300_000);
    let rounds = env_or("LEVEE_BENCH_REPLAY_RUNS", 5).max(1);
    let dir = std::env::temp_dir().join(format!("levee-bench-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    for (name, extra) in [("quiet", &[][..]), ("storm", &["--breach-rate", "0.5"][..])] {
        let events = dir.join(format!("{name}.jsonl"));
        let out = dir.join(format!("{name}.alerts.jsonl"));
        let status = Command::new(levee)
            .current_dir(root)
            .args(["gen", "--seed", "11", "--events", &n.to_string()])
            .args(extra)
            .arg("--out")
            .arg(&events)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let replay = || {
            let mut c = Command::new(levee);
            c.current_dir(root)
                .arg("replay")
                .arg(&events)
                .args(["--now", NOW])
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(Stdio::null());
            c
        };
        let parse = || {
            let mut c = Command::new(&json_lines);
            c.arg(&events).stdout(Stdio::piped()).stderr(Stdio::null());
            c
        };
        // Untimed: the file into the page cache, both programs loaded once.
        run(&mut replay());
        run(&mut parse());
        let (mut r, mut p, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let a = run(&mut replay()).as_secs_f64();
            let b = run(&mut parse()).as_secs_f64();
            r.push(a);
            p.push(b);
            ratios.push(b / a);
        }
        let lines = std::fs::read_to_string(&out).unwrap().lines().count();
        let (rm, rlo, rhi) = stats(r);
        let (pm, plo, phi) = stats(p);
        let (_, qlo, qhi) = stats(ratios);
        let target = if name == "quiet" { 0.5 } else { 0.3 };
        println!(
            "replay {name}: {n} events, {lines} alerts; levee replay median {rm:.3} s ({rlo:.3}-{rhi:.3}) = {:.0} events/s; \
             json_lines median {pm:.3} s ({plo:.3}-{phi:.3}) = {:.0} events/s; \
             ratio {:.2}x (rounds {qlo:.2}-{qhi:.2}, {rounds} alternating runs each; target >= {target}x)",
            n as f64 / rm,
            n as f64 / pm,
            pm / rm,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
