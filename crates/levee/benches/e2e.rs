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
//! 4. Latency: fresh input topics and a fresh `levee run` (at-least-once);
//!    events produced at half the measured at-least-once rate for up to
//!    `LEVEE_BENCH_E2E_LATENCY_SECS` (10) seconds, each with its Kafka
//!    timestamp set to the moment it is produced; alert topics use
//!    `message.timestamp.type=LogAppendTime`, so alert timestamp − event
//!    timestamp is event → alert acknowledged by the broker. Escalations (raised
//!    by the clock, not an event) are left out. The CPU seconds of levee, the
//!    broker and the load generator over the phase are printed (at 30,000
//!    events/s the broker used more than levee). `LEVEE_BENCH_E2E_LATENCY_RATE`
//!    sets the rate, `LEVEE_BENCH_E2E_LATENCY_LINGER` the load generator's
//!    `linger.ms` (default 0).
//!
//! Throughput and start-up diagnostics: the CPU seconds and bytes written of
//! each run, and levee's start-up milestones from its log.
//! `LEVEE_BENCH_E2E_ONLY=throughput` stops after the throughput runs;
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

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use levee_testkit::levee::STREAMS;
use levee_testkit::{KafkaBroker, LeveeProcess, LeveeTopics};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

const LEVEE: &str = env!("CARGO_BIN_EXE_levee");
const PARTITIONS: i32 = 4;
const WAIT: Duration = Duration::from_secs(240);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// One generated event, routed and keyed.
struct Ev {
    stream: usize,
    key: String,
    id: String,
    payload: String,
}

/// event type → (stream index, subject field), from the compiled rules.
fn routing() -> HashMap<String, (usize, String)> {
    let compiled = levee_rules::compile_dir(&root().join("rules"))
        .unwrap_or_else(|d| panic!("rules do not compile: {d:?}"));
    compiled
        .graph
        .event_types
        .iter()
        .map(|t| {
            let stream = t.stream.trim_start_matches("events.");
            let idx = STREAMS
                .iter()
                .position(|s| *s == stream)
                .unwrap_or_else(|| panic!("unknown stream {}", t.stream));
            let subject = t.slot_name(t.subject).unwrap().to_owned();
            (t.name.clone(), (idx, subject))
        })
        .collect()
}

fn generate(n: u64, dir: &Path) -> Vec<Ev> {
    let file = dir.join("events.jsonl");
    let status = Command::new(LEVEE)
        .current_dir(root())
        .args(["gen", "--seed", "7", "--events", &n.to_string(), "--out"])
        .arg(&file)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let routes = routing();
    fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let (stream, subject) = &routes[v["type"].as_str().unwrap()];
            let key = match &v[subject.as_str()] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Ev {
                stream: *stream,
                key,
                id: v["event_id"].as_str().unwrap().to_owned(),
                payload: line.to_owned(),
            }
        })
        .collect()
}

fn load_producer(broker: &KafkaBroker, linger_ms: &str) -> FutureProducer {
    broker
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", linger_ms)
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap()
}

fn send(producer: &FutureProducer, topic: &str, ev: &Ev, timestamp: Option<i64>) -> DeliveryFuture {
    let mut record = FutureRecord::to(topic)
        .key(ev.key.as_bytes())
        .payload(ev.payload.as_bytes());
    if let Some(ts) = timestamp {
        record = record.timestamp(ts);
    }
    loop {
        match producer.send_result(record) {
            Ok(f) => return f,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, _)) => panic!("producing to {topic}: {e}"),
        }
    }
}

/// Fresh topics for one `levee run` under `prefix`, reading `inputs` (or
/// inputs of their own, created here, if `None`); the alert topics with
/// `LogAppendTime` (see the latency phase).
fn levee_topics(
    rt: &tokio::runtime::Runtime,
    broker: &KafkaBroker,
    prefix: &str,
    inputs: Option<&[String]>,
) -> LeveeTopics {
    let mut topics = LeveeTopics::named(prefix);
    if let Some(inputs) = inputs {
        topics.inputs = inputs.to_vec();
    }
    let append: &[(&str, &str)] = &[("message.timestamp.type", "LogAppendTime")];
    rt.block_on(topics.create(broker, PARTITIONS, inputs.is_none(), append))
        .unwrap();
    topics
}

/// A settings file: built-in defaults but for the broker, topics and group.
fn config_file(
    dir: &Path,
    name: &str,
    broker: &KafkaBroker,
    delivery: &str,
    group: &str,
    topics: &LeveeTopics,
) -> PathBuf {
    let text = topics.settings(
        &broker.bootstrap_servers(),
        delivery,
        group,
        &root().join("rules"),
        0,
        "",
        "",
    );
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, text).unwrap();
    path
}

struct Levee(LeveeProcess);

impl Levee {
    fn spawn(dir: &Path, name: &str, config: &Path) -> Levee {
        let log = dir.join(format!("{name}.log"));
        // A log filter of its own, e.g. "info,levee=debug" for the start-up timings.
        let filter = std::env::var("LEVEE_BENCH_E2E_LOG").ok();
        Levee(
            LeveeProcess::spawn(
                Path::new(LEVEE),
                &root(),
                config,
                name,
                log,
                filter.as_deref(),
            )
            .unwrap(),
        )
    }

    fn pid(&self) -> u32 {
        self.0.child.id()
    }

    /// The `since_start_ms` of the first log line with `message` (the last
    /// one if `last`): milliseconds from `run` starting.
    fn since_start(&self, message: &str, last: bool) -> Option<u64> {
        let text = self.0.log_text();
        let mut lines = text.lines().filter(|l| l.contains(message));
        let line = if last {
            lines.next_back()
        } else {
            lines.next()
        }?;
        let (_, rest) = line.split_once("since_start_ms=")?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    /// Start-up milestones from the log, ms after `run` started.
    fn startup(&self) -> String {
        let show = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v} ms"));
        format!(
            "rectifications read {}, partitions assigned {}, last partition restored {}",
            show(self.since_start("rectifications read", false)),
            show(self.since_start("partitions assigned", false)),
            show(self.since_start("partition state restored", true)),
        )
    }

    /// Copies the log to `LEVEE_BENCH_E2E_KEEP_LOGS` (a directory), if set.
    fn keep_log(&self) {
        if let Ok(keep) = std::env::var("LEVEE_BENCH_E2E_KEEP_LOGS") {
            let name = self.0.log.file_name().unwrap();
            fs::create_dir_all(&keep).unwrap();
            fs::copy(&self.0.log, Path::new(&keep).join(name)).unwrap();
        }
    }

    fn check_alive(&mut self) {
        if let Some(status) = self.0.exited() {
            panic!("levee exited ({status}):\n{}", self.0.log_text());
        }
    }

    fn wait_assigned(&mut self) {
        let deadline = Instant::now() + WAIT;
        while !self.0.is_assigned() {
            self.check_alive();
            assert!(
                Instant::now() < deadline,
                "never assigned:\n{}",
                self.0.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory(&self) -> (u64, u64) {
        proc_memory(self.pid())
    }

    fn terminate(mut self) {
        let _ = self.0.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && self.0.exited().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
        self.keep_log();
    }
}

fn proc_field(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn proc_memory(pid: u32) -> (u64, u64) {
    (proc_field(pid, "VmRSS:"), proc_field(pid, "VmHWM:"))
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Bytes of a topic's log segments on the broker's disk (all partitions).
fn topic_bytes(broker: &KafkaBroker, topic: &str) -> u64 {
    fn walk(dir: &Path, topic: &str, inside: bool, total: &mut u64) {
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

fn partitions(inputs: &[String]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for t in inputs {
        for p in 0..PARTITIONS {
            tpl.add_partition(t, p);
        }
    }
    tpl
}

/// Reads a group's committed offsets (without joining it).
struct Monitor {
    consumer: BaseConsumer,
    tpl: TopicPartitionList,
}

impl Monitor {
    fn new(broker: &KafkaBroker, group: &str, inputs: &[String]) -> Monitor {
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

    fn committed(&self) -> i64 {
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
    fn watch(&self, total: i64, start: Instant, mut alive: impl FnMut()) -> Throughput {
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
struct Throughput {
    /// Start of the process (or client) to everything committed.
    wall: Duration,
    /// Events per second between the first commit and the last before the
    /// final one (the final one lags the end by up to a commit interval).
    steady: f64,
    commits: usize,
    /// Start to the first commit.
    first: Duration,
}

impl Throughput {
    fn from_steps(total: i64, steps: &[(Duration, i64)]) -> Throughput {
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

/// The baseline: consume → produce unchanged, commit after delivery.
fn passthrough(
    broker: &KafkaBroker,
    group: &str,
    inputs: &[String],
    output: &str,
    stop: &AtomicBool,
) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", group)
        .set("client.id", "passthrough")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("statistics.interval.ms", "5000")
        .create()
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("client.id", "passthrough")
        .create()
        .unwrap();
    let topics: Vec<&str> = inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut pending: Vec<DeliveryFuture> = Vec::new();
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::Acquire) {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(output);
            if let Some(k) = m.key() {
                record = record.key(k);
            }
            if let Some(p) = m.payload() {
                record = record.payload(p);
            }
            loop {
                match producer.send_result(record) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => panic!("passthrough produce: {e}"),
                }
            }
            next.insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
        }
        if last_commit.elapsed() >= Duration::from_millis(1000) {
            rt.block_on(async {
                for f in pending.drain(..) {
                    f.await.unwrap().unwrap();
                }
            });
            if !next.is_empty() {
                let mut tpl = TopicPartitionList::new();
                for ((t, p), o) in &next {
                    tpl.add_partition_offset(t, *p, Offset::Offset(*o)).unwrap();
                }
                consumer.commit(&tpl, CommitMode::Sync).unwrap();
            }
            last_commit = Instant::now();
        }
    }
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Feeds `n` clean purchase events with distinct suppliers to `levee replay -`
/// and reads its memory once all are evaluated. (VmRSS, VmHWM) in KiB.
fn replay_memory(template: &Value, subject: &str, n: usize) -> (u64, u64) {
    let mut child = Command::new(LEVEE)
        .current_dir(root())
        .args(["replay", "--now", "2026-11-26T00:00:00Z", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let template = template.clone();
    let subject = subject.to_owned();
    let writer = std::thread::spawn(move || {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut stdin);
        let mut v = template;
        for i in 0..n {
            v[subject.as_str()] = Value::String(format!("SUP-MEM-{i:07}"));
            v["event_id"] = Value::String(format!("mem{i}"));
            serde_json::to_writer(&mut w, &v).unwrap();
            w.write_all(b"\n").unwrap();
        }
        w.flush().unwrap();
        drop(w);
        stdin
    });
    let stdin = writer.join().unwrap();
    // Everything is written; wait until the process has gone idle.
    let mut last = cpu_ticks(pid);
    let mut idle = 0;
    while idle < 3 {
        std::thread::sleep(Duration::from_millis(200));
        let t = cpu_ticks(pid);
        idle = if t == last { idle + 1 } else { 0 };
        last = t;
    }
    let mem = proc_memory(pid);
    drop(stdin);
    assert!(child.wait().unwrap().success());
    mem
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

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
    let run_passthrough = |name: &str| -> Throughput {
        let out = format!("bench.{name}.out");
        let group = format!("bench.{name}");
        rt.block_on(broker.create_topics(&[(out.as_str(), PARTITIONS)]))
            .unwrap();
        let monitor = Monitor::new(&broker, &group, &inputs);
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let cpu0 = (cpu_ticks(std::process::id()), cpu_ticks(broker_pid));
        let pass = std::thread::scope(|s| {
            let stop2 = Arc::clone(&stop);
            let (b, i, o, g) = (&broker, &inputs, &out, &group);
            s.spawn(move || passthrough(b, g, i, o, &stop2));
            let r = monitor.watch(total, start, || {});
            stop.store(true, Ordering::Release);
            r
        });
        println!(
            "{name}: {:.0} events/s steady, {:.2} s start to all committed ({} commits, the first {} ms after start)",
            pass.steady,
            pass.wall.as_secs_f64(),
            pass.commits,
            pass.first.as_millis()
        );
        println!(
            "  CPU: passthrough (the bench process) {:.1} s, broker {:.1} s",
            (cpu_ticks(std::process::id()) - cpu0.0) as f64 / 100.0,
            (cpu_ticks(broker_pid) - cpu0.1) as f64 / 100.0
        );
        println!(
            "  written: {:.1} MiB (input {input_mib:.1} MiB)",
            topic_bytes(&broker, &out) as f64 / 1_048_576.0
        );
        pass
    };
    let pass_before = run_passthrough("passthrough");

    // (b), (c) levee run.
    let mut levee_runs = Vec::new();
    let mut al_memory = (0, 0);
    for delivery in ["at_least_once", "exactly_once"] {
        let prefix = format!("bench.{delivery}");
        let o = levee_topics(&rt, &broker, &prefix, Some(&inputs));
        let group = format!("{prefix}.group");
        let config = config_file(dir.path(), delivery, &broker, delivery, &group, &o);
        let monitor = Monitor::new(&broker, &group, &inputs);
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
        let mib_of = |topic: &str| topic_bytes(&broker, topic) as f64 / 1_048_576.0;
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
    let (al, eos) = (levee_runs[0], levee_runs[1]);
    let pass_after = run_passthrough("passthrough-again");
    let pass = Throughput {
        wall: (pass_before.wall + pass_after.wall) / 2,
        steady: (pass_before.steady + pass_after.steady) / 2.0,
        commits: pass_before.commits + pass_after.commits,
        first: (pass_before.first + pass_after.first) / 2,
    };
    if std::env::var("LEVEE_BENCH_E2E_ONLY").is_ok_and(|v| v == "throughput") {
        println!(
            "ratios (steady, wall): at-least-once {:.2}x {:.2}x, exactly-once {:.2}x {:.2}x",
            al.steady / pass.steady,
            pass.wall.as_secs_f64() / al.wall.as_secs_f64(),
            eos.steady / pass.steady,
            pass.wall.as_secs_f64() / eos.wall.as_secs_f64()
        );
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
    let o = levee_topics(&rt, &broker, "bench.lat", None);
    let inputs2 = o.inputs.clone();
    let group = "bench.lat.group";
    let config = config_file(dir.path(), "latency", &broker, "at_least_once", group, &o);
    let monitor = Monitor::new(&broker, group, &inputs2);
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
    // The load generator's linger (ms; LEVEE_BENCH_E2E_LATENCY_LINGER, default
    // 0): each event is stamped when handed to the producer, so a linger
    // counts in the latency measured.
    let linger = std::env::var("LEVEE_BENCH_E2E_LATENCY_LINGER").unwrap_or_else(|_| "0".into());
    let producer = load_producer(&broker, &linger);
    let mut stamps: HashMap<&str, i64> = HashMap::with_capacity(count);
    let cpu0 = (
        cpu_ticks(levee.pid()),
        cpu_ticks(broker_pid),
        cpu_ticks(std::process::id()),
    );
    let start = Instant::now();
    for (i, e) in events.iter().take(count).enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now + Duration::from_millis(1) {
            std::thread::sleep(due - now);
        }
        let ts = now_ms();
        stamps.insert(e.id.as_str(), ts);
        drop(send(&producer, &inputs2[e.stream], e, Some(ts)));
    }
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
            "event -> alert acknowledged: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (target p99 < 50 ms)",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
            latencies.last().unwrap()
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
    drop(broker);

    // Memory of the state: levee replay with many distinct subjects.
    let routes = routing();
    let subject = routes["purchase"].1.clone();
    let template: Value = events
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.payload).unwrap())
        .find(|v| v["type"] == "purchase" && v["event_id"].as_str().unwrap().starts_with('c'))
        .expect("a clean purchase event");
    let small = (mem_subjects / 10).max(1);
    let (rss_small, hwm_small) = replay_memory(&template, &subject, small);
    let (rss_big, hwm_big) = replay_memory(&template, &subject, mem_subjects);
    let per_subject =
        (hwm_big.saturating_sub(hwm_small)) as f64 * 1024.0 / (mem_subjects - small) as f64;

    println!();
    println!("== 5. End to end over Kafka ({total} events, 4 topics x {PARTITIONS} partitions) ==");
    println!(
        "passthrough (baseline)     {:>9.0} events/s  wall {:>6.2} s  (mean of {:.0} before and {:.0} after the levee runs; wall {:.2} s, {:.2} s)",
        pass.steady,
        pass.wall.as_secs_f64(),
        pass_before.steady,
        pass_after.steady,
        pass_before.wall.as_secs_f64(),
        pass_after.wall.as_secs_f64()
    );
    println!(
        "levee run at-least-once    {:>9.0} events/s  wall {:>6.2} s  ratio {:.2}x (target >= 0.7x; wall ratio {:.2}x)",
        al.steady,
        al.wall.as_secs_f64(),
        al.steady / pass.steady,
        pass.wall.as_secs_f64() / al.wall.as_secs_f64()
    );
    println!(
        "levee run exactly-once     {:>9.0} events/s  wall {:>6.2} s  ratio {:.2}x (target >= 0.5x; wall ratio {:.2}x)",
        eos.steady,
        eos.wall.as_secs_f64(),
        eos.steady / pass.steady,
        pass.wall.as_secs_f64() / eos.wall.as_secs_f64()
    );
    if !latencies.is_empty() {
        println!(
            "latency p99 at {rate:.0} events/s: {} ms (target < 50 ms)",
            percentile(&latencies, 0.99)
        );
    }
    println!();
    println!("== 6. Memory ==");
    println!(
        "levee run, catalog loaded, assigned, idle: VmRSS {:.1} MiB",
        mib(idle_memory.0)
    );
    println!(
        "levee run after the at-least-once run ({} keys): VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        distinct.len(),
        mib(al_memory.0),
        mib(al_memory.1)
    );
    println!(
        "levee replay, {small} subjects: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        mib(rss_small),
        mib(hwm_small)
    );
    println!(
        "levee replay, {mem_subjects} subjects: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        mib(rss_big),
        mib(hwm_big)
    );
    println!(
        "per subject (difference / {}): {per_subject:.0} bytes (target < 1024); whole process / subjects: {:.0} bytes",
        mem_subjects - small,
        hwm_big as f64 * 1024.0 / mem_subjects as f64
    );
}
