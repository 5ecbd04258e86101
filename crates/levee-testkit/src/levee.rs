//! Running `levee run` against a test broker: the topics one instance reads
//! and writes, its settings file, and the child process with its log. The
//! Kafka tests of `crates/levee` and its end-to-end bench share these.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::{Context, Result};

use crate::{KafkaBroker, TopicSpec};

/// The input streams of the shipped rules (`events.<stream>`), in the order
/// of [`LeveeTopics::inputs`].
pub const STREAMS: [&str; 4] = [
    "vehicle_fuel",
    "billing_arrears",
    "procurement",
    "marketing",
];

/// The topics of one `levee run` (or one group of them), named under a prefix.
#[derive(Debug, Clone)]
pub struct LeveeTopics {
    /// `<prefix>.events.<stream>`, one per [`STREAMS`] entry, in that order.
    pub inputs: Vec<String>,
    pub tiers: [String; 3],
    pub decisions: String,
    pub dlq: String,
    pub rectification: String,
    /// Compacted, one partition.
    pub profiles: String,
    /// Compacted, as many partitions as the inputs.
    pub changelog: String,
    /// The shadow rules' alerts (`topics.shadow`), one partition.
    pub shadow: String,
    /// Closed alerts with their results (`topics.closed`): compacted, one
    /// partition.
    pub closed: String,
    /// The repartition topic of the group `<prefix>.group` (the group the
    /// tests and benches run under): `<group>-repartition`, levee's own
    /// for control points kept per another key; as many partitions as the
    /// inputs.
    pub repartition: String,
    /// The people topic of the same group, `<group>-people` (person
    /// copies of alerts); as many partitions as the inputs.
    pub people: String,
    /// People's files (`topics.people`): compacted, one partition.
    pub people_files: String,
}

impl LeveeTopics {
    /// The names under `prefix` (nothing is created).
    pub fn named(prefix: &str) -> Self {
        LeveeTopics {
            inputs: STREAMS
                .iter()
                .map(|s| format!("{prefix}.events.{s}"))
                .collect(),
            tiers: [1, 2, 3].map(|t| format!("{prefix}.alerts.tier{t}")),
            decisions: format!("{prefix}.decisions"),
            dlq: format!("{prefix}.events.dlq"),
            rectification: format!("{prefix}.events.rectification"),
            profiles: format!("{prefix}.profiles"),
            changelog: format!("{prefix}.state-changelog"),
            shadow: format!("{prefix}.alerts.shadow"),
            closed: format!("{prefix}.alerts.closed"),
            repartition: format!("{prefix}.group-repartition"),
            people: format!("{prefix}.group-people"),
            people_files: format!("{prefix}.profiles.people"),
        }
    }

    /// Creates them: the inputs (unless `with_inputs` is false), the
    /// rectification topic, the repartition and people topics and the
    /// changelog with `partitions` partitions,
    /// the others with one; the tier topics with `tier_config`; the profiles,
    /// the closed alerts and the changelog compacted.
    pub async fn create(
        &self,
        broker: &KafkaBroker,
        partitions: i32,
        with_inputs: bool,
        tier_config: &[(&str, &str)],
    ) -> Result<()> {
        let compact: &[(&str, &str)] = &[("cleanup.policy", "compact")];
        let mut specs: Vec<TopicSpec<'_>> = Vec::new();
        if with_inputs {
            specs.extend(self.inputs.iter().map(|t| TopicSpec::new(t, partitions)));
        }
        specs.extend(
            self.tiers
                .iter()
                .map(|t| TopicSpec::new(t, 1).config(tier_config)),
        );
        specs.push(TopicSpec::new(&self.decisions, 1));
        specs.push(TopicSpec::new(&self.dlq, 1));
        specs.push(TopicSpec::new(&self.shadow, 1));
        specs.push(TopicSpec::new(&self.rectification, partitions));
        specs.push(TopicSpec::new(&self.profiles, 1).config(compact));
        specs.push(TopicSpec::new(&self.closed, 1).config(compact));
        specs.push(TopicSpec::new(&self.changelog, partitions).config(compact));
        specs.push(TopicSpec::new(&self.repartition, partitions));
        specs.push(TopicSpec::new(&self.people, partitions));
        specs.push(TopicSpec::new(&self.people_files, 1).config(compact));
        broker.create_topics_with_config(&specs).await
    }

    /// A settings file for these topics: `delivery`, the broker, `group`,
    /// the rules in `rules` (reloaded every `reload_secs`, 0: never), text
    /// logs at info (librdkafka's at warn), HTTP on any free port. `kafka`
    /// is TOML added to the `[kafka]` section (e.g. `commit_interval_ms` and
    /// `[kafka.consumer]`), `extra` TOML appended at the end.
    #[allow(clippy::too_many_arguments)]
    pub fn settings(
        &self,
        brokers: &str,
        delivery: &str,
        group: &str,
        rules: &Path,
        reload_secs: u64,
        kafka: &str,
        extra: &str,
    ) -> String {
        let inputs: Vec<String> = self.inputs.iter().map(|t| format!("{t:?}")).collect();
        format!(
            r#"delivery = "{delivery}"

[kafka]
brokers = "{brokers}"
group_id = "{group}"
{kafka}

[topics]
inputs = [{inputs}]
tier1 = "{t1}"
tier2 = "{t2}"
tier3 = "{t3}"
decisions = "{decisions}"
dlq = "{dlq}"
rectification = "{rectification}"
profiles = "{profiles}"
changelog = "{changelog}"
shadow = "{shadow}"
closed = "{closed}"
people = "{people_files}"

[rules]
dir = "{rules}"
reload_interval_secs = {reload_secs}

[log]
format = "text"
level = "info,levee::kafka=warn"

[http]
# Several instances run side by side: any free port.
listen = "127.0.0.1:0"
{extra}
"#,
            inputs = inputs.join(", "),
            t1 = self.tiers[0],
            t2 = self.tiers[1],
            t3 = self.tiers[2],
            decisions = self.decisions,
            dlq = self.dlq,
            rectification = self.rectification,
            profiles = self.profiles,
            changelog = self.changelog,
            shadow = self.shadow,
            closed = self.closed,
            people_files = self.people_files,
            rules = rules.display(),
        )
    }
}

/// A `levee run` child process, its stderr (the log) in a file; killed when
/// dropped.
#[derive(Debug)]
pub struct LeveeProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl LeveeProcess {
    /// Starts `levee run --config <config> --instance-id <instance>` (the
    /// binary `levee`, in `workdir`), logging to `log`. `RUST_LOG` is
    /// `rust_log` if given, else unset (the settings file's level holds).
    pub fn spawn(
        levee: &Path,
        workdir: &Path,
        config: &Path,
        instance: &str,
        log: PathBuf,
        rust_log: Option<&str>,
    ) -> Result<Self> {
        let mut command = Command::new(levee);
        command
            .args(["run", "--config"])
            .arg(config)
            .args(["--instance-id", instance])
            .current_dir(workdir)
            .env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let stderr =
            fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", levee.display()))?;
        Ok(LeveeProcess { child, log })
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the group gave this instance a non-empty assignment (by the log).
    pub fn is_assigned(&self) -> bool {
        self.log_text()
            .lines()
            .any(|l| l.contains("partitions assigned") && !l.contains("partitions=none"))
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `sig` (`TERM`, `HUP`, …) with `kill`.
    pub fn signal(&self, sig: &str) -> Result<()> {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill -{sig} failed: {status}");
        Ok(())
    }
}

impl Drop for LeveeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
