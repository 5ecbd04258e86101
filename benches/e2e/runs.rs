//! `levee run` at-least-once, then exactly-once, over the bench's input:
//! throughput from the group's commits, CPU, bytes written per topic,
//! start-up milestones. With `LEVEE_BENCH_E2E_SHADOW` (`shadow.rs`), an
//! at-least-once run with shadow rules after the one without, and the ratio
//! of their CPU.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;

use crate::common::{Bench, PARTITIONS, WAIT};
use crate::levee::{config_file, levee_topics, Levee};
use crate::observe::{cpu_ticks, topic_bytes, Monitor, Throughput};
use crate::shadow::{shadow_rules, with_shadow};

/// The two runs' throughput (at-least-once, exactly-once; then the shadow
/// run's, if on), and the memory (VmRSS, VmHWM in KiB) of the at-least-once
/// one after it. `round` names their topics and groups.
pub(crate) fn levee_runs(b: &Bench, round: usize) -> (Vec<Throughput>, (u64, u64)) {
    let (rt, broker, inputs) = (&b.rt, &b.broker, &b.inputs);
    let (total, broker_pid, input_mib) = (b.total, b.broker_pid, b.input_mib);
    let dir = &b.dir;
    let mut levee_runs = Vec::new();
    let mut al_memory = (0, 0);
    let shadow = shadow_rules(dir.path());
    let mut runs = vec![
        ("at_least_once", "at_least_once"),
        ("exactly_once", "exactly_once"),
    ];
    if shadow.is_some() {
        runs.insert(1, ("at_least_once+shadow", "at_least_once"));
    }
    // levee's CPU ticks in the at-least-once runs without and with shadow.
    let (mut plain_cpu, mut shadow_cpu) = (0, 0);
    for (name, delivery) in runs {
        let prefix = format!("bench.{}.{round}", name.replace('+', "_"));
        let o = levee_topics(rt, broker, &prefix, Some(inputs));
        let group = format!("{prefix}.group");
        let config = config_file(dir.path(), delivery, broker, delivery, &group, &o);
        let shadowed = name.ends_with("+shadow");
        if let (true, Some(rules)) = (shadowed, shadow.as_deref()) {
            with_shadow(&config, rules);
        }
        let monitor = Monitor::new(broker, &group, inputs);
        let start = Instant::now();
        let broker_cpu = cpu_ticks(broker_pid);
        let mut levee = Levee::spawn(dir.path(), delivery, &config);
        let r = monitor.watch(total, start, || levee.check_alive());
        let levee_cpu = cpu_ticks(levee.pid());
        println!(
            "  CPU: levee {:.1} s, broker {:.1} s",
            levee_cpu as f64 / 100.0,
            (cpu_ticks(broker_pid) - broker_cpu) as f64 / 100.0
        );
        match name {
            "at_least_once" => plain_cpu = levee_cpu,
            "at_least_once+shadow" => shadow_cpu = levee_cpu,
            _ => {}
        }
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
        if shadowed {
            println!("  written: alerts.shadow {:.1} MiB", mib_of(&o.shadow));
        }
        println!(
            "  written: changelog {:.1} MiB, profiles {:.1} MiB, decisions {:.1} MiB, alerts {alert_mib:.1} MiB (input {input_mib:.1} MiB)",
            mib_of(&o.changelog),
            mib_of(&o.profiles),
            mib_of(&o.decisions),
        );
        println!(
            "levee run {name}: {:.0} events/s steady, {:.2} s start to all committed ({} commits), {alerts} alerts, {dlq} to the DLQ, {changelog} changelog offsets",
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
    if shadow.is_some() && plain_cpu > 0 {
        println!(
            "shadow cost, round {round}: levee CPU {:.2}x the at-least-once run without (target <= 1.3x)",
            shadow_cpu as f64 / plain_cpu as f64
        );
    }
    // The shadow run's throughput last: [0] and [1] stay the two modes.
    if levee_runs.len() == 3 {
        let s = levee_runs.remove(1);
        levee_runs.push(s);
    }
    (levee_runs, al_memory)
}
