//! End to end over a real Kafka broker on loopback (issue 7, items 5 and 6),
//! every figure beside its baseline from the same run.
//!
//! Run: `cargo bench -p levee --bench e2e` (about 4–6 minutes; starts its own
//! broker with levee-testkit). Prints figures and ratios; asserts nothing.
//!
//! 1. `levee gen --events N --seed 7` (N = `LEVEE_BENCH_E2E_EVENTS`, default
//!    1,200,000, so that each run commits about ten times, once a second),
//!    produced keyed by subject (the event type's subject field) to the four
//!    input topics of its stream, 4 partitions each.
//! 2. Baseline: a bare passthrough written here with rdkafka and levee's
//!    client settings (consumer: manual commit, `read_committed`, earliest;
//!    producer: `acks=all`, idempotence, `linger.ms=5`): consume all four
//!    topics in a group, produce each payload unchanged (same key) to one
//!    output topic, and every second wait for every delivery and commit.
//!    It runs before the levee runs and again after them (fresh group and
//!    output); the baseline is the mean of the two, both printed.
//! 3. `levee run` at-least-once, then exactly-once, as child processes with
//!    the built-in defaults (commit/transaction every 1000 ms), each with a
//!    fresh group, output topics and changelog over the same input topics.
//!    Throughput is read from the group's committed offsets, polled every
//!    50 ms: the steady rate between the first and the last commit before
//!    the final one, and the wall time from start to everything committed.
//!    A committed offset implies its alerts are acknowledged (at-least-once)
//!    or committed with them (exactly-once).
//! 4. Latency: a fresh broker, warmed by 5 s of the passthrough below (on
//!    topics of its own); fresh input topics and `levee run` (at-least-once),
//!    warmed by `LEVEE_BENCH_E2E_LATENCY_WARM` (2) seconds of the events at
//!    the same rate, all committed (their latency is printed apart); then
//!    the events after them, at half the measured at-least-once rate for up to
//!    `LEVEE_BENCH_E2E_LATENCY_SECS` (10) seconds, each with its Kafka
//!    timestamp set to the moment it is produced; alert topics use
//!    `message.timestamp.type=LogAppendTime`, so alert timestamp − event
//!    timestamp is event → alert acknowledged by the broker. Escalations (raised
//!    by the clock, not an event) are left out. The CPU seconds of levee, the
//!    broker and the load generator over the phase are printed (at 30,000
//!    events/s the broker used more than levee). `LEVEE_BENCH_E2E_LATENCY_RATE`
//!    sets the rate, `LEVEE_BENCH_E2E_LATENCY_LINGER` the load generator's
//!    `linger.ms` (default 0). After it, the same feed, warm-up included,
//!    through the bare passthrough (`baseline_latency.rs`): the machine's
//!    own event → record acknowledged at that rate, with nothing evaluated.
//!    `LEVEE_BENCH_E2E_LATENCY_DUMP=FILE` writes each alert's event stamp
//!    and latency there.
//!
//! Throughput and start-up diagnostics: the CPU seconds and bytes written of
//! each run, and levee's start-up milestones from its log.
//! `LEVEE_BENCH_E2E_ONLY=throughput` stops after the throughput runs;
//! `LEVEE_BENCH_E2E_ONLY=latency` runs the latency phases alone, at
//! `LEVEE_BENCH_E2E_LATENCY_RATE` (required then);
//! `LEVEE_BENCH_E2E_SHADOW=1` (or a rules directory) adds an at-least-once
//! run with shadow rules to each round and prints its CPU over the one
//! without (`shadow.rs`);
//! `LEVEE_BENCH_E2E_LOG` is the `RUST_LOG` of the levee processes (e.g.
//! `info,levee=debug` for the start-up timings and each cut's waits) and
//! `LEVEE_BENCH_E2E_KEEP_LOGS` a directory to copy their logs to.
//! 5. Memory: VmRSS of `levee run` with the catalog loaded, partitions
//!    assigned and idle; VmRSS/VmHWM of `levee run` after the at-least-once
//!    run; and `levee replay` of clean `purchase` events (stateful: SO-101
//!    keeps 30-day windows per supplier) with 100,000 and 1,000,000 distinct
//!    subjects fed on stdin, read once all input is evaluated: per subject =
//!    the difference / 900,000.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod baseline_latency;
mod common;
mod latency;
mod levee;
mod load;
mod memory;
mod observe;
mod passthrough;
mod ratios;
mod runs;
mod shadow;

use std::time::Instant;

use levee_testkit::KafkaBroker;
use rdkafka::producer::DeliveryFuture;

use crate::common::{env_num, mib, percentile, Bench, PARTITIONS};
use crate::levee::levee_topics;
use crate::load::{generate, load_producer, send};
use crate::observe::{topic_bytes, Throughput};
use crate::ratios::Ratios;

fn main() {
    let n = env_num("LEVEE_BENCH_E2E_EVENTS", 1_200_000);
    let latency_secs = env_num("LEVEE_BENCH_E2E_LATENCY_SECS", 10);
    let mem_subjects = usize::try_from(env_num("LEVEE_BENCH_E2E_SUBJECTS", 1_000_000)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let t = Instant::now();
    let events = generate(n, dir.path());
    let total = i64::try_from(events.len()).unwrap();
    let distinct: std::collections::HashSet<(usize, &str)> =
        events.iter().map(|e| (e.stream, e.key.as_str())).collect();
    println!(
        "generated {} events ({} distinct stream/subject keys) in {:.1} s",
        events.len(),
        distinct.len(),
        t.elapsed().as_secs_f64()
    );

    let broker = KafkaBroker::start().unwrap();
    println!("broker at {}", broker.bootstrap_servers());
    let only = std::env::var("LEVEE_BENCH_E2E_ONLY").unwrap_or_default();
    if only == "latency" {
        let rate = std::env::var("LEVEE_BENCH_E2E_LATENCY_RATE")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .expect("LEVEE_BENCH_E2E_ONLY=latency needs LEVEE_BENCH_E2E_LATENCY_RATE (events/s)");
        let bench = Bench::for_latency(rt, broker, dir, total);
        let (latency, _) = latency_phases(&bench, &events, rate, latency_secs);
        if !latency.latencies.is_empty() {
            println!(
                "latency p99 at {rate:.0} events/s: {} ms (target < 50 ms)",
                percentile(&latency.latencies, 0.99)
            );
        }
        return;
    }

    // The input, shared by the three throughput runs.
    let inputs = levee_topics(&rt, &broker, "bench.tp", None).inputs;
    let t = Instant::now();
    {
        let producer = load_producer(&broker, "20");
        let futures: Vec<DeliveryFuture> = events
            .iter()
            .map(|e| send(&producer, &inputs[e.stream], e, None))
            .collect();
        rt.block_on(async {
            for f in futures {
                f.await.unwrap().unwrap();
            }
        });
    }
    println!(
        "produced to 4 topics x {PARTITIONS} partitions in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // (a) bare passthrough, before and again after the levee runs: the
    // baseline is their mean, so that a change in the shared machine's load
    // during the run shows (the two differ) rather than skews one side.
    let broker_pid = broker.pid().unwrap();
    let input_mib: f64 = inputs
        .iter()
        .map(|t| topic_bytes(&broker, t) as f64 / 1_048_576.0)
        .sum();
    let bench = Bench {
        rt,
        broker,
        broker_pid,
        dir,
        inputs,
        total,
        input_mib,
    };
    // Rounds of passthrough, at-least-once, exactly-once, alternating, so
    // that a change in the shared machine's load shows as spread rather
    // than skewing one side; each ratio is taken within its round.
    let rounds = usize::try_from(env_num("LEVEE_BENCH_E2E_ROUNDS", 5))
        .unwrap()
        .max(1);
    let mut measured: Vec<[Throughput; 3]> = Vec::new();
    let mut al_memory = (0, 0);
    for round in 0..rounds {
        println!("-- round {} of {rounds} --", round + 1);
        let pass = passthrough::measure(&bench, &format!("passthrough-{round}"));
        let (levee_runs, memory) = runs::levee_runs(&bench, round);
        if round == 0 {
            al_memory = memory;
        }
        measured.push([pass, levee_runs[0], levee_runs[1]]);
    }
    let ratios = Ratios::of(&measured);
    let median_of = |i: usize| {
        let mut v: Vec<Throughput> = measured.iter().map(|m| m[i]).collect();
        v.sort_by(|a, b| a.steady.total_cmp(&b.steady));
        v[v.len() / 2]
    };
    let (pass, al, eos) = (median_of(0), median_of(1), median_of(2));
    println!("{}", ratios.summary());
    if only == "throughput" {
        return;
    }

    // (d) latency at half the at-least-once rate, and idle memory.
    // Half the at-least-once rate from start to everything committed (the
    // steady rate rests on two or three commits once a run takes a few
    // seconds, and overstates what can be sustained). LEVEE_BENCH_E2E_LATENCY_RATE
    // (events/s) overrides it.
    let rate = std::env::var("LEVEE_BENCH_E2E_LATENCY_RATE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(events.len() as f64 / al.wall.as_secs_f64() / 2.0);
    // On a broker of its own: the rounds leave some 700 partitions of spent
    // topics on theirs, and on it the bare passthrough's p99 at this rate
    // was 669–1,044 ms against 37 ms on a fresh one (BENCHMARKS.md, 2026-12-06).
    let bench = bench.on_fresh_broker();
    let (latency, baseline) = latency_phases(&bench, &events, rate, latency_secs);
    drop(bench);

    let state = memory::state_memory(&events, mem_subjects);
    println!();
    println!("== 5. End to end over Kafka ({total} events, 4 topics x {PARTITIONS} partitions) ==");
    println!(
        "passthrough (baseline)     {:>9.0} events/s  wall {:>6.2} s  (median of {rounds} rounds)",
        pass.steady,
        pass.wall.as_secs_f64(),
    );
    println!(
        "levee run at-least-once    {:>9.0} events/s  wall {:>6.2} s  (median)",
        al.steady,
        al.wall.as_secs_f64(),
    );
    println!(
        "levee run exactly-once     {:>9.0} events/s  wall {:>6.2} s  (median)",
        eos.steady,
        eos.wall.as_secs_f64(),
    );
    println!("{}", ratios.summary());
    if !latency.latencies.is_empty() {
        println!(
            "latency p99 at {:.0} events/s: {} ms (target < 50 ms); the bare passthrough at that rate: {} ms",
            latency.rate,
            percentile(&latency.latencies, 0.99),
            baseline.last().map_or(0, |_| percentile(&baseline, 0.99))
        );
    }
    println!();
    println!("== 6. Memory ==");
    println!(
        "levee run, catalog loaded, assigned, idle: VmRSS {:.1} MiB",
        mib(latency.idle_memory.0)
    );
    println!(
        "levee run after the at-least-once run ({} keys): VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        distinct.len(),
        mib(al_memory.0),
        mib(al_memory.1)
    );
    println!(
        "levee replay, {} subjects: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        state.small,
        mib(state.rss_small),
        mib(state.hwm_small)
    );
    println!(
        "levee replay, {mem_subjects} subjects: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        mib(state.rss_big),
        mib(state.hwm_big)
    );
    println!(
        "per subject (difference / {}): {:.0} bytes (target < 1024); whole process / subjects: {:.0} bytes",
        mem_subjects - state.small,
        state.per_subject,
        state.hwm_big as f64 * 1024.0 / mem_subjects as f64
    );
}

/// The latency phases on a fresh broker: 5 s of the feed through the bare
/// passthrough to warm it (its JIT compiles as it serves; the first phase
/// on a cold broker had a p99 two to three times the second's), then
/// levee's phase, then the passthrough's, measured.
fn latency_phases(
    bench: &Bench,
    events: &[load::Ev],
    rate: f64,
    secs: u64,
) -> (latency::Latency, Vec<i64>) {
    println!("warming the fresh broker: the passthrough for 5 s");
    baseline_latency::measure(bench, "bench.warm", events, rate, 5);
    let latency = latency::measure(bench, events, rate, secs);
    let baseline = baseline_latency::measure(bench, "bench.plat", events, rate, secs);
    (latency, baseline)
}
