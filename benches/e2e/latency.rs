//! Event → alert latency: a fresh `levee run` (at-least-once) fed at half
//! the at-least-once rate, each event stamped when produced; alert topics
//! use LogAppendTime, so alert − event timestamp is event → alert
//! acknowledged by the broker. Also the idle memory of `levee run`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::Offset;
use serde_json::Value;

use crate::common::{now_ms, percentile, Bench, WAIT};
use crate::levee::{config_file, levee_topics, Levee};
use crate::load::{load_producer, send, Ev};
use crate::observe::{cpu_ticks, partitions, Monitor};

/// What the latency phase measured.
pub(crate) struct Latency {
    /// Events per second fed.
    pub(crate) rate: f64,
    /// Event → alert acknowledged, ms, sorted.
    pub(crate) latencies: Vec<i64>,
    /// (VmRSS, VmHWM) in KiB of `levee run` assigned and idle.
    pub(crate) idle_memory: (u64, u64),
}

/// Produces `events` to their input topics at `rate` events/s, each stamped
/// (as its Kafka timestamp) with the wall clock when handed to the producer;
/// returns the stamps by event id.
pub(crate) fn feed<'a>(
    producer: &FutureProducer,
    inputs: &[String],
    events: &'a [Ev],
    rate: f64,
) -> HashMap<&'a str, i64> {
    let mut stamps = HashMap::with_capacity(events.len());
    let start = Instant::now();
    for (i, e) in events.iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now + Duration::from_millis(1) {
            std::thread::sleep(due - now);
        }
        let ts = now_ms();
        stamps.insert(e.id.as_str(), ts);
        drop(send(producer, &inputs[e.stream], e, Some(ts)));
    }
    stamps
}

/// The load generator's linger (ms; LEVEE_BENCH_E2E_LATENCY_LINGER, default
/// 0): each event is stamped when handed to the producer, so a linger
/// counts in the latency measured.
pub(crate) fn linger() -> String {
    std::env::var("LEVEE_BENCH_E2E_LATENCY_LINGER").unwrap_or_else(|_| "0".into())
}

/// p50, p90, p99 and max of sorted latencies, one line.
pub(crate) fn describe(latencies: &[i64]) -> String {
    format!(
        "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        percentile(latencies, 0.5),
        percentile(latencies, 0.9),
        percentile(latencies, 0.99),
        latencies.last().unwrap()
    )
}

pub(crate) fn measure(b: &Bench, events: &[Ev], rate: f64, latency_secs: u64) -> Latency {
    let (rt, broker, broker_pid) = (&b.rt, &b.broker, b.broker_pid);
    let dir = &b.dir;
    let o = levee_topics(rt, broker, "bench.lat", None);
    let inputs2 = o.inputs.clone();
    let group = "bench.lat.group";
    let config = config_file(dir.path(), "latency", broker, "at_least_once", group, &o);
    let monitor = Monitor::new(broker, group, &inputs2);
    let mut levee = Levee::spawn(dir.path(), "latency", &config);
    levee.wait_assigned();
    std::thread::sleep(Duration::from_secs(3));
    let idle_memory = levee.memory();
    let count = events
        .len()
        .min((rate * latency_secs as f64) as usize)
        .max(1);
    // Commit completions (wall clock, ms), seen by polling every 10 ms.
    let watching = Arc::new(AtomicBool::new(true));
    let commit_watch = {
        let watching = Arc::clone(&watching);
        let (bootstrap, inputs) = (broker.bootstrap_servers(), inputs2.clone());
        std::thread::spawn(move || {
            let consumer: BaseConsumer = levee_testkit::clients::client_config(&bootstrap)
                .set("group.id", group)
                .create()
                .unwrap();
            let tpl = partitions(&inputs);
            let mut seen = Vec::new();
            let mut last = None;
            while watching.load(Ordering::Acquire) {
                if let Ok(c) = consumer.committed_offsets(tpl.clone(), Duration::from_secs(5)) {
                    let offsets: Vec<Offset> = c.elements().iter().map(|e| e.offset()).collect();
                    if last.as_ref() != Some(&offsets) {
                        seen.push(now_ms());
                        last = Some(offsets);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            seen
        })
    };
    let linger = linger();
    let producer = load_producer(broker, &linger);
    let cpu0 = (
        cpu_ticks(levee.pid()),
        cpu_ticks(broker_pid),
        cpu_ticks(std::process::id()),
    );
    let start = Instant::now();
    let stamps = feed(&producer, &inputs2, &events[..count], rate);
    let produced_in = start.elapsed();
    producer.flush(Duration::from_secs(60)).unwrap();
    monitor.watch(i64::try_from(count).unwrap(), start, || levee.check_alive());
    println!(
        "  CPU while producing and until all committed ({:.1} s): levee {:.1} s, broker {:.1} s, the bench (load generator) {:.1} s",
        start.elapsed().as_secs_f64(),
        (cpu_ticks(levee.pid()) - cpu0.0) as f64 / 100.0,
        (cpu_ticks(broker_pid) - cpu0.1) as f64 / 100.0,
        (cpu_ticks(std::process::id()) - cpu0.2) as f64 / 100.0
    );
    watching.store(false, Ordering::Release);
    let commits = commit_watch.join().unwrap();
    let mut latencies = Vec::new();
    let mut slow_after_commit = (0usize, 0usize);
    let mut unmatched = 0;
    for t in &o.tiers {
        for m in rt.block_on(broker.consume_all(t, WAIT)).unwrap() {
            let a: Value = serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap();
            if !a["escalated_from"].is_null() {
                continue;
            }
            match a["event_id"].as_str().and_then(|id| stamps.get(id)) {
                Some(ts) => {
                    let acked = m.timestamp.unwrap();
                    let latency = acked - ts;
                    latencies.push(latency);
                    if latency > 50 {
                        // Acknowledged within 150 ms after a commit completed?
                        slow_after_commit.1 += 1;
                        if commits.iter().any(|c| (0..=150).contains(&(acked - c))) {
                            slow_after_commit.0 += 1;
                        }
                    }
                }
                None => unmatched += 1,
            }
        }
    }
    levee.terminate();
    latencies.sort_unstable();
    println!(
        "latency: {count} events at {:.0} events/s (target rate {rate:.0}) over {:.1} s; {} alerts ({unmatched} unmatched)",
        count as f64 / produced_in.as_secs_f64(),
        produced_in.as_secs_f64(),
        latencies.len()
    );
    if !latencies.is_empty() {
        println!(
            "event -> alert acknowledged: {} (target p99 < 50 ms)",
            describe(&latencies)
        );
        let span = (commits.last().unwrap_or(&0) - commits.first().unwrap_or(&0)).max(1);
        println!(
            "alerts over 50 ms: {} of {}; {} of them acknowledged within 150 ms after a checkpoint commit ({} commits seen, such windows cover {:.0} % of the time)",
            slow_after_commit.1,
            latencies.len(),
            slow_after_commit.0,
            commits.len(),
            100.0 * (commits.len() as f64 * 150.0 / span as f64).min(1.0)
        );
    }
    Latency {
        rate,
        latencies,
        idle_memory,
    }
}
