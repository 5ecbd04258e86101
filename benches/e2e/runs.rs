//! `levee run` at-least-once, then exactly-once, over the bench's input:
//! throughput from the group's commits, CPU, bytes written per topic,
//! start-up milestones.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;

use crate::common::{Bench, PARTITIONS, WAIT};
use crate::levee::{config_file, levee_topics, Levee};
use crate::observe::{cpu_ticks, topic_bytes, Monitor, Throughput};

/// The two runs' throughput, and the memory (VmRSS, VmHWM in KiB) of the
/// at-least-once one after it. `round` names their topics and groups.
pub(crate) fn levee_runs(b: &Bench, round: usize) -> (Vec<Throughput>, (u64, u64)) {
    let (rt, broker, inputs) = (&b.rt, &b.broker, &b.inputs);
    let (total, broker_pid, input_mib) = (b.total, b.broker_pid, b.input_mib);
    let dir = &b.dir;
    let mut levee_runs = Vec::new();
    let mut al_memory = (0, 0);
    for delivery in ["at_least_once", "exactly_once"] {
        let prefix = format!("bench.{delivery}.{round}");
        let o = levee_topics(rt, broker, &prefix, Some(inputs));
        let group = format!("{prefix}.group");
        let config = config_file(dir.path(), delivery, broker, delivery, &group, &o);
        let monitor = Monitor::new(broker, &group, inputs);
        let start = Instant::now();
        let broker_cpu = cpu_ticks(broker_pid);
        let mut levee = Levee::spawn(dir.path(), delivery, &config);
        let r = monitor.watch(total, start, || levee.check_alive());
        println!(
            "  CPU: levee {:.1} s, broker {:.1} s",
            cpu_ticks(levee.pid()) as f64 / 100.0,
            (cpu_ticks(broker_pid) - broker_cpu) as f64 / 100.0
        );
        if delivery == "at_least_once" {
            std::thread::sleep(Duration::from_secs(1));
            al_memory = levee.memory();
        }
        let startup = levee.startup();
        levee.terminate();
        let alerts: usize = o
            .tiers
            .iter()
            .map(|t| rt.block_on(broker.consume_all(t, WAIT)).unwrap().len())
            .sum();
        let dlq = rt.block_on(broker.consume_all(&o.dlq, WAIT)).unwrap().len();
        let changelog: i64 = (0..PARTITIONS)
            .map(|p| {
                monitor
                    .consumer
                    .fetch_watermarks(&o.changelog, p, Duration::from_secs(5))
                    .unwrap()
                    .1
            })
            .sum();
        let mib_of = |topic: &str| topic_bytes(broker, topic) as f64 / 1_048_576.0;
        let alert_mib: f64 = o.tiers.iter().map(|t| mib_of(t)).sum();
        println!(
            "  written: changelog {:.1} MiB, profiles {:.1} MiB, decisions {:.1} MiB, alerts {alert_mib:.1} MiB (input {input_mib:.1} MiB)",
            mib_of(&o.changelog),
            mib_of(&o.profiles),
            mib_of(&o.decisions),
        );
        println!(
            "levee run {delivery}: {:.0} events/s steady, {:.2} s start to all committed ({} commits), {alerts} alerts, {dlq} to the DLQ, {changelog} changelog offsets",
            r.steady,
            r.wall.as_secs_f64(),
            r.commits
        );
        println!(
            "  start-up (ms after `run` started): {startup}; first commit {} ms after spawn",
            r.first.as_millis()
        );
        levee_runs.push(r);
    }
    (levee_runs, al_memory)
}
