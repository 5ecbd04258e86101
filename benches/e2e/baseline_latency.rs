//! The latency phase's baseline: the bench's bare passthrough (every event
//! consumed and produced unchanged to one output topic, committed every
//! second) fed exactly as `levee run` is in the latency phase, its output
//! topic with `LogAppendTime`: output timestamp − event timestamp is the
//! machine's own event → record acknowledged, with nothing evaluated. The
//! passthrough forwards every event where levee writes an alert for about
//! one in fifty, so it is the heavier of the two on the broker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use levee_testkit::clients::TopicSpec;
use rdkafka::producer::Producer;

use crate::common::{Bench, PARTITIONS, WAIT};
use crate::latency::{describe, feed, latencies_of, linger, split, warm_up};
use crate::levee::levee_topics;
use crate::load::{load_producer, Ev};
use crate::observe::{cpu_ticks, Monitor};

/// Feeds `events` at `rate` for up to `secs` seconds through the passthrough,
/// after the same warm-up as levee's (`latency::split`), over topics and a
/// group named from `name`; prints and returns the sorted latencies (ms) of
/// every measured event.
pub(crate) fn measure(b: &Bench, name: &str, events: &[Ev], rate: f64, secs: u64) -> Vec<i64> {
    let (rt, broker, broker_pid) = (&b.rt, &b.broker, b.broker_pid);
    let inputs = levee_topics(rt, broker, name, None).inputs;
    let out = format!("{name}.out");
    let out = out.as_str();
    let append: &[(&str, &str)] = &[("message.timestamp.type", "LogAppendTime")];
    rt.block_on(
        broker.create_topics_with_config(&[TopicSpec::new(out, PARTITIONS).config(append)]),
    )
    .unwrap();
    let group = format!("{name}.group");
    let group = group.as_str();
    let (warm, measured) = split(events, rate, secs);
    let count = measured.len();
    let monitor = Monitor::new(broker, group, &inputs);
    let stop = Arc::new(AtomicBool::new(false));
    let producer = load_producer(broker, &linger());
    let (stamps, warm_stamps, produced_in, cpu) = std::thread::scope(|s| {
        let stop2 = Arc::clone(&stop);
        let (i, g) = (&inputs, group);
        s.spawn(move || crate::passthrough::passthrough(broker, g, i, out, &stop2));
        // The passthrough's consumer joins its group before the feed starts.
        std::thread::sleep(std::time::Duration::from_secs(3));
        let warm_stamps = warm_up(&producer, &inputs, warm, rate, &monitor, || {});
        let cpu0 = (cpu_ticks(broker_pid), cpu_ticks(std::process::id()));
        let start = Instant::now();
        let stamps = feed(&producer, &inputs, measured, rate);
        let produced_in = start.elapsed();
        producer.flush(WAIT).unwrap();
        monitor.watch(i64::try_from(warm.len() + count).unwrap(), start, || {});
        stop.store(true, Ordering::Release);
        let cpu = (
            start.elapsed(),
            (cpu_ticks(broker_pid) - cpu0.0) as f64 / 100.0,
            (cpu_ticks(std::process::id()) - cpu0.1) as f64 / 100.0,
        );
        (stamps, warm_stamps, produced_in, cpu)
    });
    let forwarded: Vec<(String, i64)> = rt
        .block_on(broker.consume_all(out, WAIT))
        .unwrap()
        .into_iter()
        .filter_map(|m| {
            let id: serde_json::Value = serde_json::from_slice(m.payload.as_deref()?).ok()?;
            Some((id["event_id"].as_str()?.to_owned(), m.timestamp?))
        })
        .collect();
    let records = || forwarded.iter().map(|(id, t)| (id.as_str(), *t));
    let warm_latencies = latencies_of(records(), &warm_stamps);
    if !warm_latencies.is_empty() {
        println!(
            "warm-up ({} events, the passthrough just started): {}",
            warm.len(),
            describe(&warm_latencies)
        );
    }
    let latencies = latencies_of(records(), &stamps);
    println!(
        "  CPU while producing and until all committed ({:.1} s): broker {:.1} s, the bench (load generator and passthrough) {:.1} s",
        cpu.0.as_secs_f64(),
        cpu.1,
        cpu.2
    );
    println!(
        "passthrough latency: {count} events at {:.0} events/s over {:.1} s; {} forwarded",
        count as f64 / produced_in.as_secs_f64(),
        produced_in.as_secs_f64(),
        latencies.len()
    );
    if !latencies.is_empty() {
        println!(
            "event -> passthrough record acknowledged: {}",
            describe(&latencies)
        );
    }
    latencies
}
