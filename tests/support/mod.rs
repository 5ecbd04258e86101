//! Shared set-up of the Kafka tests: fresh topics per test, a settings file,
//! the real `levee` binary as a child process, and reading the outputs back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    missing_debug_implementations
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
pub use levee_testkit::levee::STREAMS;
use levee_testkit::{
    shared_broker, unique_topic_prefix, KafkaBroker, LeveeProcess, LeveeTopics, ReceivedMessage,
    Record,
};
use serde_json::Value;

pub const LEVEE: &str = env!("CARGO_BIN_EXE_levee");
pub const WAIT: Duration = Duration::from_secs(90);

/// The `[kafka]` settings of the tests: commit often, notice a dead
/// instance within seconds.
const KAFKA_SETTINGS: &str = r#"commit_interval_ms = 200

[kafka.consumer]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 500
"fetch.wait.max.ms" = 100

[kafka.producer]
"linger.ms" = 5"#;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One test's world: its topics, group, settings file and scratch directory.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub prefix: String,
    pub group: String,
    pub rules: PathBuf,
    /// stream name (`vehicle_fuel`) → input topic.
    pub inputs: BTreeMap<String, String>,
    /// event type → stream name, from the compiled rules.
    pub stream_of: HashMap<String, String>,
    /// event type → its subject field: the key producers give its events.
    pub subject_field: HashMap<String, String>,
    /// Its topics (also through `Deref`: `setup.tiers`, `setup.dlq`, …;
    /// the inputs by stream are `inputs` above).
    pub topics: LeveeTopics,
}

impl std::ops::Deref for Setup {
    type Target = LeveeTopics;

    fn deref(&self) -> &LeveeTopics {
        &self.topics
    }
}

impl Setup {
    pub async fn new(name: &str) -> Setup {
        Setup::with(name, None).await
    }

    /// `rules`: a rules directory to use instead of the workspace's.
    pub async fn with(name: &str, rules: Option<PathBuf>) -> Setup {
        let broker = broker();
        let prefix = unique_topic_prefix(name);
        let topics = LeveeTopics::named(&prefix);
        topics.create(broker, 3, true, &[]).await.unwrap();
        let inputs: BTreeMap<String, String> = STREAMS
            .iter()
            .map(|s| (*s).to_owned())
            .zip(topics.inputs.iter().cloned())
            .collect();
        let rules = rules.unwrap_or_else(|| workspace().join("rules"));
        let compiled = levee_rules::compile_dir(&rules).unwrap_or_else(|d| {
            panic!("rules do not compile: {d:?}");
        });
        let stream_of = compiled
            .graph
            .event_types
            .iter()
            .map(|t| {
                let stream = t.stream.trim_start_matches("events.").to_owned();
                (t.name.clone(), stream)
            })
            .collect();
        let subject_field = compiled
            .graph
            .event_types
            .iter()
            .map(|t| (t.name.clone(), t.fields[t.subject as usize].name.clone()))
            .collect();
        Setup {
            dir: tempfile::tempdir().unwrap(),
            group: format!("{prefix}.group"),
            prefix,
            rules,
            inputs,
            stream_of,
            subject_field,
            topics,
        }
    }

    /// Writes the settings file for `delivery`, with `extra` TOML appended
    /// to the top level.
    pub fn config(&self, delivery: &str, reload_secs: u64) -> PathBuf {
        self.config_with(delivery, reload_secs, "")
    }

    /// [`Setup::config`] with `extra` TOML (sections) appended.
    pub fn config_with(&self, delivery: &str, reload_secs: u64, extra: &str) -> PathBuf {
        self.config_at(delivery, reload_secs, extra, 0)
    }

    /// [`Setup::config_with`] for a levee whose clock runs `ahead` seconds
    /// after the tests' clock ([`test_now`]).
    pub fn config_at(&self, delivery: &str, reload_secs: u64, extra: &str, ahead: i64) -> PathBuf {
        let offset = clock_offset() + ahead;
        // Before `extra`: callers may expect their last table to stay last.
        let extra = format!("[clock]\noffset = \"{offset}s\"\n\n{extra}");
        let text = self.topics.settings(
            &broker().bootstrap_servers(),
            delivery,
            &self.group,
            &self.rules,
            reload_secs,
            KAFKA_SETTINGS,
            &extra,
        );
        static CONFIGS: AtomicUsize = AtomicUsize::new(0);
        let n = CONFIGS.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("levee-{delivery}-{n}.toml"));
        fs::write(&path, text).unwrap();
        path
    }

    /// Starts `levee run` with this settings file as instance `instance`.
    pub fn spawn(&self, config: &Path, instance: &str) -> Levee {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let log = self.dir.path().join(format!("levee-{instance}-{run}.log"));
        Levee(
            LeveeProcess::spawn(Path::new(LEVEE), &workspace(), config, instance, log, None)
                .unwrap(),
        )
    }

    /// The input topic of an event (by its `type`).
    pub fn topic_of(&self, event: &[u8]) -> String {
        let v: Value = serde_json::from_slice(event).unwrap();
        let ty = v["type"].as_str().unwrap();
        let stream = &self.stream_of[ty];
        self.inputs[stream].clone()
    }

    /// The Kafka key of an event: its subject field's value, as
    /// production keys events.
    pub fn key_of(&self, event: &[u8]) -> String {
        let v: Value = serde_json::from_slice(event).unwrap();
        let field = &self.subject_field[v["type"].as_str().unwrap()];
        match &v[field.as_str()] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// Produces good events (JSON lines) to their topics, keyed by subject.
    pub async fn produce_events(&self, lines: &[String]) {
        let mut by_topic: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for line in lines {
            let key = self.key_of(line.as_bytes());
            by_topic
                .entry(self.topic_of(line.as_bytes()))
                .or_default()
                .push(Record::new(line.as_bytes().to_vec()).key(key));
        }
        for (topic, records) in by_topic {
            broker().produce(&topic, records).await.unwrap();
        }
    }

    /// Every committed record of the three tier topics, parsed.
    pub async fn alerts(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for t in &self.tiers {
            for m in broker().consume_all(t, WAIT).await.unwrap() {
                out.push(serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap());
            }
        }
        out
    }

    /// Polls the tier topics until every alert of `expected` is there.
    pub async fn wait_for_alerts(&self, expected: &AlertSet) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.alerts().await;
            let keys = alert_keys(&got);
            let missing: Vec<_> = expected.keys().filter(|k| !keys.contains_key(*k)).collect();
            if missing.is_empty() {
                return got;
            }
            if Instant::now() >= deadline {
                // What came instead: control point, event and tier of each.
                let seen: Vec<String> = got
                    .iter()
                    .take(10)
                    .map(|a| {
                        format!(
                            "{} {} tier {}",
                            a["control_point"], a["event_id"], a["tier"]
                        )
                    })
                    .collect();
                panic!(
                    "{} of {} expected alerts missing after {WAIT:?}, e.g. {:?}; received {}: {seen:?}",
                    missing.len(),
                    expected.len(),
                    missing.iter().take(3).collect::<Vec<_>>(),
                    got.len(),
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub async fn dlq(&self) -> Vec<ReceivedMessage> {
        broker().consume_all(&self.dlq, WAIT).await.unwrap()
    }

    /// The DLQ once it holds at least `n` records (or after [`WAIT`]).
    pub async fn wait_dlq(&self, n: usize) -> Vec<ReceivedMessage> {
        let deadline = Instant::now() + WAIT;
        loop {
            let dlq = self.dlq().await;
            if dlq.len() >= n || Instant::now() > deadline {
                return dlq;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// The broker of this test binary's [`Setup`]s: the shared one, unless
/// [`use_broker`] chose another.
pub fn broker() -> &'static KafkaBroker {
    BROKER.get().copied().unwrap_or_else(shared_broker)
}

static BROKER: std::sync::OnceLock<&'static KafkaBroker> = std::sync::OnceLock::new();

/// Makes [`broker`] return `broker` from now on in this test binary (the
/// first call wins): for tests that need a broker started otherwise, such
/// as one with a SASL_SSL listener.
pub fn use_broker(broker: &'static KafkaBroker) {
    let _ = BROKER.set(broker);
}

/// A running `levee run` child process.
pub struct Levee(pub LeveeProcess);

impl std::ops::Deref for Levee {
    type Target = LeveeProcess;

    fn deref(&self) -> &LeveeProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Levee {
    fn deref_mut(&mut self) -> &mut LeveeProcess {
        &mut self.0
    }
}

impl Levee {
    /// Waits until the log contains `needle` `times` times.
    pub async fn wait_log(&mut self, needle: &str, times: usize) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.log_text().matches(needle).count() >= times {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "levee exited ({status}) before logging {needle:?}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log after {WAIT:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the group gave this instance a non-empty assignment.
    pub async fn wait_assigned(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.is_assigned() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never assigned partitions:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn signal(&self, sig: &str) {
        self.0.signal(sig).unwrap();
    }

    /// SIGTERM, then the exit status (bounded wait).
    pub async fn terminate(mut self) -> (ExitStatus, String) {
        self.signal("TERM");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.exited() {
                return (status, self.log_text());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("levee did not exit after SIGTERM:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// kill -9.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// (alert_id, tier) → the alert.
pub type AlertSet = BTreeMap<(String, u64), Value>;

pub fn alert_keys(alerts: &[Value]) -> AlertSet {
    alerts
        .iter()
        .map(|a| {
            (
                (
                    a["alert_id"].as_str().unwrap().to_owned(),
                    a["tier"].as_u64().unwrap(),
                ),
                a.clone(),
            )
        })
        .collect()
}

/// What `levee replay` gives for these events: the expected alerts, as
/// raised. Escalations are left out: replay escalates on event time, the
/// service on the clock that raised the alert (the wall clock), so a batch
/// spanning more than a period escalates in one and not (yet) in the other.
/// The escalation tests (kafka_state.rs) check those on their own.
pub fn replay(setup: &Setup, lines: &[String]) -> AlertSet {
    replay_with(setup, &setup.rules, lines)
}

/// [`replay`] with the rules in `rules` (a shadow ruleset, say).
pub fn replay_with(setup: &Setup, rules: &std::path::Path, lines: &[String]) -> AlertSet {
    let out = replay_output_with(setup, rules, lines);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|a| a["escalated_from"].is_null())
        .collect();
    alert_keys(&alerts)
}

/// `levee replay` of these lines with the setup's rules on the tests' clock,
/// as it ran (stdout: alerts; stderr: bad lines and the summary).
pub fn replay_output(setup: &Setup, lines: &[String]) -> std::process::Output {
    replay_output_with(setup, &setup.rules, lines)
}

/// [`replay_output`] with the rules in `rules` (a shadow ruleset, say).
pub fn replay_output_with(
    setup: &Setup,
    rules: &std::path::Path,
    lines: &[String],
) -> std::process::Output {
    static REPLAYS: AtomicUsize = AtomicUsize::new(0);
    let n = REPLAYS.fetch_add(1, Ordering::Relaxed);
    let file = setup.dir.path().join(format!("replay-{n}.jsonl"));
    fs::write(&file, lines.join("\n") + "\n").unwrap();
    Command::new(LEVEE)
        .arg("--rules")
        .arg(rules)
        .args(["replay", "--now", &rfc3339(test_now())])
        .arg(&file)
        .output()
        .unwrap()
}

/// The lines of examples/events.jsonl, split into good and bad ones by the engine.
pub fn example_events() -> (Vec<String>, Vec<String>) {
    let graph = levee_rules::compile_dir(&workspace().join("rules"))
        .unwrap()
        .graph;
    let mut engine = levee_engine::Engine::new(std::sync::Arc::new(graph));
    fs::read_to_string(workspace().join("examples/events.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .partition(|l| engine.evaluate(l.as_bytes()).is_ok())
}

/// Seconds the tests' clock runs ahead of the machine's:
/// `LEVEE_TEST_CLOCK_OFFSET` (`400d`; default none). The suite passes on
/// any day: run it with the clock moved to see that it does.
pub fn clock_offset() -> i64 {
    match std::env::var("LEVEE_TEST_CLOCK_OFFSET") {
        Ok(s) if !s.trim().is_empty() => levee_rules::parse_duration(&s)
            .unwrap_or_else(|e| panic!("LEVEE_TEST_CLOCK_OFFSET={s:?}: {e}")),
        _ => 0,
    }
}

/// The tests' now: the machine's clock moved by [`clock_offset`]. Test
/// events are dated from it, never from a fixed date.
pub fn test_now() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(clock_offset())
}

/// RFC 3339, seconds, UTC.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `t` written in Beijing time (`+08:00`), as the operator's systems do.
pub fn beijing(t: DateTime<Utc>) -> String {
    let zone = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    t.with_timezone(&zone)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Generated trips and arrears snapshots, `n` of each, ids tagged with `tag`;
/// about a third of them breach VF-001 or BA-001. Dated days before
/// [`test_now`].
pub fn generated_events(tag: &str, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(2 * n);
    let trip_at = beijing(test_now() - chrono::Duration::days(3));
    let snapshot_at = rfc3339(test_now() - chrono::Duration::days(5));
    for i in 0..n {
        let fuel = 8.0 + (i % 9) as f64; // standard 10 per 100 km over 100 km
        out.push(format!(
            r#"{{"event_id":"trip-{tag}-{i}","type":"trip","occurred_at":"{trip_at}","branch":"wuhan","vehicle_id":"V-{tag}-{v}","driver_id":"D-{i}","distance_km":100,"fuel_used_l":{fuel},"standard_l_per_100km":10}}"#,
            v = i % 7
        ));
        let arrears = 60_000 + (i % 5) * 15_000;
        let months = 3 + i % 6;
        out.push(format!(
            r#"{{"event_id":"arrears-{tag}-{i}","type":"arrears_snapshot","occurred_at":"{snapshot_at}","branch":"wuhan","group_customer_id":"GC-{tag}-{i}","customer_manager_id":"CM-{m}","arrears_cny":{arrears},"overdue_months":{months}}}"#,
            m = i % 4
        ));
    }
    out
}

/// Fails if any alert id appears more than once.
pub fn assert_no_duplicates(alerts: &[Value]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for a in alerts {
        *seen.entry(a["alert_id"].as_str().unwrap()).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicate alerts: {dups:?}");
}

/// Fails unless the alerts `got` (control point and event, as keyed) are
/// those `want`ed, naming a few missing and extra ones.
pub fn assert_same_keys(got: &BTreeSet<(String, u64)>, want: &BTreeSet<(String, u64)>) {
    let missing: Vec<_> = want.difference(got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} missing, e.g. {:?}; {} extra, e.g. {:?}",
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(3).collect::<Vec<_>>()
    );
}
