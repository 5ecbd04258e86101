//! `levee run` as a child process of the bench: its topics, its settings
//! file, its memory, CPU and start-up milestones.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use levee_testkit::{KafkaBroker, LeveeProcess, LeveeTopics};

use crate::common::{root, LEVEE, PARTITIONS, WAIT};
use crate::observe::proc_memory;

/// Fresh topics for one `levee run` under `prefix`, reading `inputs` (or
/// inputs of their own, created here, if `None`); the alert topics with
/// `LogAppendTime` (see the latency phase).
pub(crate) fn levee_topics(
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
pub(crate) fn config_file(
    dir: &Path,
    name: &str,
    broker: &KafkaBroker,
    delivery: &str,
    group: &str,
    topics: &LeveeTopics,
) -> PathBuf {
    // LEVEE_BENCH_E2E_SETTINGS: TOML appended to every levee run's settings
    // (e.g. a `[kafka.consumer]` table), to measure a setting's effect.
    let extra = std::env::var("LEVEE_BENCH_E2E_SETTINGS").unwrap_or_default();
    let text = topics.settings(
        &broker.bootstrap_servers(),
        delivery,
        group,
        &root().join("rules"),
        0,
        "",
        &extra,
    );
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, text).unwrap();
    path
}

pub(crate) struct Levee(LeveeProcess);

impl Levee {
    pub(crate) fn spawn(dir: &Path, name: &str, config: &Path) -> Levee {
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

    pub(crate) fn pid(&self) -> u32 {
        self.0.child.id()
    }

    /// The `since_start_ms` of the first log line with `message` (the last
    /// one if `last`): milliseconds from `run` starting.
    pub(crate) fn since_start(&self, message: &str, last: bool) -> Option<u64> {
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
    pub(crate) fn startup(&self) -> String {
        let show = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v} ms"));
        format!(
            "rectifications read {}, partitions assigned {}, last partition restored {}",
            show(self.since_start("rectifications read", false)),
            show(self.since_start("partitions assigned", false)),
            show(self.since_start("partition state restored", true)),
        )
    }

    /// Copies the log to `LEVEE_BENCH_E2E_KEEP_LOGS` (a directory), if set.
    pub(crate) fn keep_log(&self) {
        if let Ok(keep) = std::env::var("LEVEE_BENCH_E2E_KEEP_LOGS") {
            let name = self.0.log.file_name().unwrap();
            fs::create_dir_all(&keep).unwrap();
            fs::copy(&self.0.log, Path::new(&keep).join(name)).unwrap();
        }
    }

    pub(crate) fn check_alive(&mut self) {
        if let Some(status) = self.0.exited() {
            panic!("levee exited ({status}):\n{}", self.0.log_text());
        }
    }

    pub(crate) fn wait_assigned(&mut self) {
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
    pub(crate) fn memory(&self) -> (u64, u64) {
        proc_memory(self.pid())
    }

    pub(crate) fn terminate(mut self) {
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
