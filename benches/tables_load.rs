//! Loading a table from its topic (issue 16, Done-when: "a 1,000,000-row
//! table ... loads from its topic in < 20 s on this machine"), over a real
//! Kafka broker on loopback.
//!
//! Run: `cargo bench -p levee --bench tables_load` (starts its own broker
//! with levee-testkit). Prints figures; asserts only that levee read every
//! row.
//!
//! 1. A compacted topic of 3 partitions (as `deploy/k8s/topics.yaml`) for
//!    the `fleet` table, and N rows (`LEVEE_BENCH_TABLE_ROWS`, default
//!    1,000,000) produced to it keyed by the table key (`vehicle_id`,
//!    docs/tables.md): fleet-like rows (plate, class, standard, tank) with
//!    a `valid_from`; every tenth vehicle re-rated, its record the array of
//!    its two versions. The producer batches (`linger.ms=50`, lz4, acks=1).
//! 2. `levee run` over the shipped rules, every table topic renamed under
//!    the bench's prefix (the others created empty). Timed from the spawn
//!    to the log line `tables read to the end of their topics`: by the
//!    line's own timestamp (the process writes it; from the spawn), and by
//!    its `elapsed_ms` (from assigning the table topics to the end of the
//!    last). No event is evaluated before it. The same for a run whose
//!    fleet topic is empty: the difference is what the rows cost.
//! 3. levee's resident memory (VmRSS, VmHWM) once the table is read,
//!    against a run of the same rules whose `fleet` topic is empty: the
//!    difference is what the rows cost.
//!
//! `LEVEE_BENCH_KEEP_LOGS`: a directory to copy levee's logs to;
//! `LEVEE_BENCH_TABLE_LOG`: their `RUST_LOG` (e.g.
//! `info,levee::service::kafka::tables=debug` for the phases of the load).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use levee_testkit::{KafkaBroker, LeveeProcess, LeveeTopics, TopicSpec};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const LEVEE: &str = env!("CARGO_BIN_EXE_levee");
const WAIT: Duration = Duration::from_secs(600);
const LOADED: &str = "tables read to the end of their topics";
const PREFIX: &str = "bench.tl";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The shipped rules in `dir`, every table topic under the bench's prefix,
/// the fleet's named `fleet_topic`.
fn rules(dir: &Path, fleet_topic: &str) -> PathBuf {
    let to = dir.join("rules");
    copy_dir(&root().join("rules"), &to);
    for f in fs::read_dir(to.join("tables")).unwrap() {
        let path = f.unwrap().path();
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace("topic: tables.fleet\n", &format!("topic: {fleet_topic}\n"))
            .replace("topic: tables.", &format!("topic: {PREFIX}."));
        fs::write(&path, text).unwrap();
    }
    to
}

/// The table topics of the shipped rules under the bench's prefix.
fn table_topics() -> Vec<String> {
    let mut topics = Vec::new();
    for f in fs::read_dir(root().join("rules/tables")).unwrap() {
        let text = fs::read_to_string(f.unwrap().path()).unwrap();
        for line in text.lines() {
            if let Some(t) = line.trim().strip_prefix("topic: tables.") {
                topics.push(format!("{PREFIX}.{t}"));
            }
        }
    }
    topics
}

/// Vehicle `i`'s key and record value.
fn fleet_row(i: u64) -> (String, String) {
    const CLASSES: [(&str, f64, u32); 5] = [
        ("sedan", 8.5, 55),
        ("suv", 10.5, 70),
        ("van", 12.0, 75),
        ("pickup", 11.0, 80),
        ("bus", 22.0, 150),
    ];
    const PLATES: [&str; 4] = ["鄂A", "鄂E", "鄂F", "鄂B"];
    let id = format!("VH-{i:07}");
    let (class, standard, tank) = CLASSES[(i % 5) as usize];
    let plate = format!("{}·G{:05}", PLATES[(i % 4) as usize], i % 100_000);
    let from = format!("20{:02}-{:02}-01", 20 + i % 6, 1 + i % 12);
    let row = |standard: f64, from: &str, to: Option<&str>| {
        let to = to.map_or(String::new(), |t| format!(r#","valid_to":"{t}""#));
        format!(
            r#"{{"vehicle_id":"{id}","plate":"{plate}","vehicle_class":"{class}","standard_l_per_100km":{standard},"tank_capacity_l":{tank},"valid_from":"{from}"{to}}}"#
        )
    };
    let value = if i.is_multiple_of(10) {
        // Re-rated on 2026-07-01: both versions in one record.
        format!(
            "[{},{}]",
            row(standard, &from, Some("2026-07-01")),
            row(standard - 0.7, "2026-07-01", None)
        )
    } else {
        row(standard, &from, None)
    };
    (id, value)
}

/// Produces `n` fleet rows to `topic`; the bytes produced.
fn produce(broker: &KafkaBroker, topic: &str, n: u64) -> u64 {
    let producer: BaseProducer = broker
        .client_config()
        .set("acks", "1")
        .set("linger.ms", "50")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "120000")
        .create()
        .unwrap();
    let mut bytes = 0;
    for i in 0..n {
        let (key, value) = fleet_row(i);
        bytes += (key.len() + value.len()) as u64;
        let mut record = BaseRecord::to(topic).key(&key).payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(20));
                }
                Err((e, _)) => panic!("producing row {i}: {e}"),
            }
        }
        if i.is_multiple_of(10_000) {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(300)).unwrap();
    bytes
}

/// `key=<digits>` of a log line.
fn field(line: &str, key: &str) -> Option<u64> {
    let (_, rest) = line.split_once(&format!("{key}="))?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// (VmRSS, VmHWM) of a process, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let get = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

struct Run {
    /// From the spawn to the log line's own timestamp.
    logged: Duration,
    elapsed_ms: u64,
    line: String,
    rss_kib: u64,
    hwm_kib: u64,
}

/// `levee run` over `rules` until its tables are read; then stopped.
fn run(dir: &Path, name: &str, broker: &KafkaBroker, rules: &Path) -> Run {
    let topics = LeveeTopics::named(&format!("{PREFIX}.{name}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(topics.create(broker, 1, true, &[])).unwrap();
    let config = dir.join(format!("{name}.toml"));
    let settings = topics.settings(
        &broker.bootstrap_servers(),
        "at_least_once",
        // The group whose repartition topic `create` made.
        &format!("{PREFIX}.{name}.group"),
        rules,
        0,
        "",
        "",
    );
    fs::write(&config, settings).unwrap();
    let log = dir.join(format!("{name}.log"));
    let filter = std::env::var("LEVEE_BENCH_TABLE_LOG").ok();
    let spawned = chrono::Utc::now();
    let started = Instant::now();
    let mut levee = LeveeProcess::spawn(
        Path::new(LEVEE),
        &root(),
        &config,
        name,
        log,
        filter.as_deref(),
    )
    .unwrap();
    let line = loop {
        if let Some(l) = levee.log_text().lines().find(|l| l.contains(LOADED)) {
            break l.to_owned();
        }
        if let Some(status) = levee.exited() {
            panic!("levee exited ({status}):\n{}", levee.log_text());
        }
        assert!(
            started.elapsed() < WAIT,
            "no {LOADED:?} after {WAIT:?}:\n{}",
            levee.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // The line starts with its RFC 3339 timestamp.
    let at = line
        .split_whitespace()
        .next()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no timestamp in {line}"));
    let logged = (at.with_timezone(&chrono::Utc) - spawned)
        .to_std()
        .unwrap_or_default();
    // The allocator settles, the consumer's fetch buffers drain.
    std::thread::sleep(Duration::from_secs(2));
    let (rss_kib, hwm_kib) = memory(levee.child.id());
    levee.signal("TERM").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while levee.exited().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Ok(keep) = std::env::var("LEVEE_BENCH_KEEP_LOGS") {
        fs::create_dir_all(&keep).unwrap();
        fs::copy(
            &levee.log,
            Path::new(&keep).join(format!("tables_load-{name}.log")),
        )
        .unwrap();
    }
    Run {
        logged,
        elapsed_ms: field(&line, "elapsed_ms").unwrap_or(0),
        line,
        rss_kib,
        hwm_kib,
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let n: u64 = std::env::var("LEVEE_BENCH_TABLE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let broker = KafkaBroker::start().unwrap();
    let fleet = format!("{PREFIX}.fleet");
    let empty = format!("{PREFIX}.fleet-empty");
    let compact: &[(&str, &str)] = &[("cleanup.policy", "compact")];
    let mut specs = vec![
        TopicSpec::new(&fleet, 3).config(compact),
        TopicSpec::new(&empty, 3).config(compact),
    ];
    let others = table_topics();
    specs.extend(
        others
            .iter()
            .filter(|t| **t != fleet)
            .map(|t| TopicSpec::new(t, 1).config(compact)),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(broker.create_topics_with_config(&specs))
        .unwrap();

    let t = Instant::now();
    let bytes = produce(&broker, &fleet, n);
    let produced = t.elapsed();
    println!(
        "produced {n} fleet rows ({:.1} MiB of keys and values) to {fleet} (3 partitions) in {:.1} s",
        bytes as f64 / 1_048_576.0,
        produced.as_secs_f64()
    );

    let base_dir = dir.path().join("base");
    let full_dir = dir.path().join("full");
    // The loaded run first, the broker warmed up by the producer.
    let full = run(dir.path(), "full", &broker, &rules(&full_dir, &fleet));
    let base = run(dir.path(), "base", &broker, &rules(&base_dir, &empty));
    // Every tenth vehicle has two versions.
    let versions = n + n.div_ceil(10);
    assert!(
        full.line.contains(&format!("fleet={versions}")),
        "levee read {} (expected fleet={versions})",
        full.line
    );

    println!("== 7. Table load from its topic ({n} rows, {versions} versions) ==");
    println!(
        "levee: tables read {:.2} s after the spawn (the log line's time), elapsed_ms {} ms (assigning the table topics to the end of the last partition)",
        full.logged.as_secs_f64(),
        full.elapsed_ms,
    );
    println!(
        "empty fleet topic: tables read {:.2} s after the spawn, elapsed_ms {} ms",
        base.logged.as_secs_f64(),
        base.elapsed_ms
    );
    let rows_ms = full.elapsed_ms.saturating_sub(base.elapsed_ms);
    println!(
        "the rows: {rows_ms} ms more than with the topic empty, {:.0} rows/s",
        n as f64 * 1000.0 / rows_ms.max(1) as f64
    );
    println!(
        "resident memory once read: {:.1} MiB (peak {:.1} MiB) against {:.1} MiB (peak {:.1} MiB) with the topic empty: {:.1} MiB added, {:.0} bytes a row",
        mib(full.rss_kib),
        mib(full.hwm_kib),
        mib(base.rss_kib),
        mib(base.hwm_kib),
        mib(full.rss_kib.saturating_sub(base.rss_kib)),
        full.rss_kib.saturating_sub(base.rss_kib) as f64 * 1024.0 / n as f64
    );
    println!("target: a 1,000,000-row table loads from its topic in < 20 s");
}
