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

use crate::common::{env_num, now_ms, percentile, Bench, WAIT};
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

/// The events of a latency phase: a warm-up of
/// `LEVEE_BENCH_E2E_LATENCY_WARM` (2) seconds at `rate` from the start of
/// the set, then the measured ones, `secs` seconds of the events after it
/// (in event time after it too: the warm-up must not make them late).
/// Each process under measure has served the warm-up, all committed
/// ([`warm_up`]), before the measured feed begins: in its first 250 ms
/// after start, an idle `levee run` answered in 50-180 ms (memory,
/// connections and caches first touched), which says nothing of the stream
/// it serves afterwards. The warm-up's own latency is printed.
pub(crate) fn split(events: &[Ev], rate: f64, secs: u64) -> (&[Ev], &[Ev]) {
    let warm =
        ((rate * env_num("LEVEE_BENCH_E2E_LATENCY_WARM", 2) as f64) as usize).min(events.len() / 2);
    let count = (events.len() - warm)
        .min((rate * secs as f64) as usize)
        .max(1);
    (&events[..warm], &events[warm..warm + count])
}

/// Feeds the warm-up `events` and waits until they are committed
/// (`alive` checks the process under measure meanwhile); their stamps.
pub(crate) fn warm_up<'a>(
    producer: &FutureProducer,
    inputs: &[String],
    events: &'a [Ev],
    rate: f64,
    monitor: &Monitor,
    alive: impl FnMut(),
) -> HashMap<&'a str, i64> {
    let stamps = feed(producer, inputs, events, rate);
    producer.flush(WAIT).unwrap();
    monitor.watch(i64::try_from(events.len()).unwrap(), Instant::now(), alive);
    stamps
}

/// Sorted latencies (ms) of the records whose event id is in `stamps`:
/// `acked` (its `LogAppendTime`) − the event's stamp.
pub(crate) fn latencies_of<'a>(
    records: impl Iterator<Item = (&'a str, i64)>,
    stamps: &HashMap<&str, i64>,
) -> Vec<i64> {
    let mut out: Vec<i64> = records
        .filter_map(|(id, acked)| Some(acked - stamps.get(id)?))
        .collect();
    out.sort_unstable();
    out
}

/// Writes each latency beside its event's stamp (`stamp latency`, ms, one a
/// line) to the file `LEVEE_BENCH_E2E_LATENCY_DUMP` names, if any: where in
/// the phase the slow ones were.
pub(crate) fn dump(pairs: &[(i64, i64)]) {
    if let Ok(path) = std::env::var("LEVEE_BENCH_E2E_LATENCY_DUMP") {
        let lines: Vec<String> = pairs.iter().map(|(s, l)| format!("{s} {l}")).collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
    }
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
    let (warm, measured) = split(events, rate, latency_secs);
    let count = measured.len();
    let linger = linger();
    let producer = load_producer(broker, &linger);
    let warm_stamps = warm_up(&producer, &inputs2, warm, rate, &monitor, || {
        levee.check_alive()
    });
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
    let cpu0 = (
        cpu_ticks(levee.pid()),
        cpu_ticks(broker_pid),
        cpu_ticks(std::process::id()),
    );
    let start = Instant::now();
    let stamps = feed(&producer, &inputs2, measured, rate);
    let produced_in = start.elapsed();
    producer.flush(Duration::from_secs(60)).unwrap();
    monitor.watch(i64::try_from(warm.len() + count).unwrap(), start, || {
        levee.check_alive()
    });
    println!(
        "  CPU while producing and until all committed ({:.1} s): levee {:.1} s, broker {:.1} s, the bench (load generator) {:.1} s",
        start.elapsed().as_secs_f64(),
        (cpu_ticks(levee.pid()) - cpu0.0) as f64 / 100.0,
        (cpu_ticks(broker_pid) - cpu0.1) as f64 / 100.0,
        (cpu_ticks(std::process::id()) - cpu0.2) as f64 / 100.0
    );
    watching.store(false, Ordering::Release);
    let commits = commit_watch.join().unwrap();
    // (event id, acknowledged) of every alert an event raised.
    let mut acked: Vec<(String, i64)> = Vec::new();
    for t in &o.tiers {
        for m in rt.block_on(broker.consume_all(t, WAIT)).unwrap() {
            let a: Value = serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap();
            if a["escalated_from"].is_null() {
                let id = a["event_id"].as_str().unwrap_or_default().to_owned();
                acked.push((id, m.timestamp.unwrap()));
            }
        }
    }
    levee.terminate();
    let unmatched = acked
        .iter()
        .filter(|(id, _)| {
            !stamps.contains_key(id.as_str()) && !warm_stamps.contains_key(id.as_str())
        })
        .count();
    let warm_latencies = latencies_of(acked.iter().map(|(id, t)| (id.as_str(), *t)), &warm_stamps);
    if !warm_latencies.is_empty() {
        println!(
            "warm-up ({} events, levee just started): {} alerts, {}",
            warm.len(),
            warm_latencies.len(),
            describe(&warm_latencies)
        );
    }
    let pairs: Vec<(i64, i64)> = acked
        .iter()
        .filter_map(|(id, t)| stamps.get(id.as_str()).map(|s| (*s, t - s)))
        .collect();
    dump(&pairs);
    // Alerts over 50 ms acknowledged within 150 ms after a commit completed.
    let slow: Vec<i64> = pairs
        .iter()
        .filter(|p| p.1 > 50)
        .map(|p| p.0 + p.1)
        .collect();
    let slow_after_commit = (
        slow.iter()
            .filter(|a| commits.iter().any(|c| (0..=150).contains(&(*a - c))))
            .count(),
        slow.len(),
    );
    let mut latencies: Vec<i64> = pairs.iter().map(|p| p.1).collect();
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
