//! What the bench reads off the machine and the broker: /proc of a
//! process (memory, CPU), bytes a topic holds, and a group's committed
//! offsets over time (throughput).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use levee_testkit::KafkaBroker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::common::{PARTITIONS, WAIT};

pub(crate) fn proc_field(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

pub(crate) fn proc_memory(pid: u32) -> (u64, u64) {
    (proc_field(pid, "VmRSS:"), proc_field(pid, "VmHWM:"))
}

/// utime + stime of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Bytes of a topic's log segments on the broker's disk (all partitions).
pub(crate) fn topic_bytes(broker: &KafkaBroker, topic: &str) -> u64 {
    pub(crate) fn walk(dir: &Path, topic: &str, inside: bool, total: &mut u64) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                let ours = name
                    .strip_prefix(topic)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|p| p.parse::<u32>().is_ok());
                walk(&path, topic, inside || ours, total);
            } else if inside && name.ends_with(".log") {
                *total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    let mut total = 0;
    walk(broker.dir(), topic, false, &mut total);
    total
}

pub(crate) fn partitions(inputs: &[String]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for t in inputs {
        for p in 0..PARTITIONS {
            tpl.add_partition(t, p);
        }
    }
    tpl
}

/// Reads a group's committed offsets (without joining it).
pub(crate) struct Monitor {
    pub(crate) consumer: BaseConsumer,
    pub(crate) tpl: TopicPartitionList,
}

impl Monitor {
    pub(crate) fn new(broker: &KafkaBroker, group: &str, inputs: &[String]) -> Monitor {
        let consumer: BaseConsumer = broker
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        Monitor {
            consumer,
            tpl: partitions(inputs),
        }
    }

    pub(crate) fn committed(&self) -> i64 {
        match self
            .consumer
            .committed_offsets(self.tpl.clone(), Duration::from_secs(5))
        {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum(),
            Err(_) => -1,
        }
    }

    /// Polls every 50 ms until `total` is committed; the commit steps seen.
    pub(crate) fn watch(&self, total: i64, start: Instant, mut alive: impl FnMut()) -> Throughput {
        let mut steps: Vec<(Duration, i64)> = Vec::new();
        let mut last = 0;
        loop {
            let c = self.committed();
            if c > last {
                steps.push((start.elapsed(), c));
                last = c;
            }
            if c >= total {
                break;
            }
            alive();
            assert!(
                start.elapsed() < WAIT,
                "only {c} of {total} committed after {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Throughput::from_steps(total, &steps)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Throughput {
    /// Start of the process (or client) to everything committed.
    pub(crate) wall: Duration,
    /// Events per second between the first commit and the last before the
    /// final one (the final one lags the end by up to a commit interval).
    pub(crate) steady: f64,
    pub(crate) commits: usize,
    /// Start to the first commit.
    pub(crate) first: Duration,
}

impl Throughput {
    pub(crate) fn from_steps(total: i64, steps: &[(Duration, i64)]) -> Throughput {
        let wall = steps.last().unwrap().0;
        let steady = if steps.len() >= 3 {
            let (t0, c0) = steps[0];
            let (t1, c1) = steps[steps.len() - 2];
            (c1 - c0) as f64 / (t1 - t0).as_secs_f64()
        } else {
            total as f64 / wall.as_secs_f64()
        };
        Throughput {
            wall,
            steady,
            commits: steps.len(),
            first: steps[0].0,
        }
    }
}
