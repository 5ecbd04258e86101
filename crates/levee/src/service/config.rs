//! Settings of `levee run`, in layers: the embedded `default.toml`, then the
//! user's file, then `LEVEE__SECTION__KEY` environment variables, then flags.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `delivery` | `at_least_once` | or `exactly_once` (Kafka transactions) |
//! | `kafka.brokers` | `127.0.0.1:9092` | bootstrap servers |
//! | `kafka.group_id` | `levee` | consumer group |
//! | `kafka.instance_id` | host name | this instance; part of the `transactional.id` |
//! | `kafka.commit_interval_ms` | `1000` | offset commit / transaction interval |
//! | `[kafka.consumer]`, `[kafka.producer]` | | librdkafka properties, passed through |
//! | `topics.inputs` | the four `events.*` | input topics (env: comma-separated) |
//! | `topics.tier1` … `tier3`, `decisions`, `dlq` | docs/contract.md's names | output topics |
//! | `topics.rectification` | `events.rectification` | rectifications (input; every instance reads all of it) |
//! | `topics.profiles` | `profiles` | subject profiles (output, compacted) |
//! | `topics.changelog` | `levee.state-changelog` | state changelog (compacted; as many partitions as the inputs) |
//! | `state.ttl` | `400d` | forget a subject idle this long (event time) |
//! | `state.allowed_lateness` | `7d` | events older than the partition's watermark minus this go to the DLQ (`late`) |
//! | `state.max_future_skew` | `1h` | events stamped further ahead of the clock go to the DLQ (`future`) |
//! | `state.tick_interval_ms` | `1000` | escalate due alerts by the wall clock this often, also without events (0: only when events arrive) |
//! | `clock.offset` | `0s` | shift levee's clock (`400d`, `-2h`): drills and tests |
//! | `state.max_pending_rectifications` | `1000000` | rectifications kept for alerts this instance may yet hold |
//! | `rules.dir` | `rules` | the rules directory (also `--rules`) |
//! | `rules.reload_interval_secs` | `5` | poll the rule files for changes (0: SIGHUP only) |
//! | `log.format` | `text` | or `json` |
//! | `log.level` | `info` | a tracing filter (`RUST_LOG` wins) |
//! | `http.listen` | `127.0.0.1:9464` | `/metrics`, `/healthz`, `/readyz`, `/v1/*` (`0.0.0.0:9464` in containers; port 0: any free port) |
//! | `http.token` | empty | bearer token `/v1/*` requires; empty: none (masked by `--print-config`) |
//! | `http.max_body_bytes` | `1048576` | larger request bodies get 413 |
//! | `http.max_batch` | `1000` | most events in one `POST /v1/evaluate` array; more get 413 |

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// The embedded defaults.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// The environment variable prefix: `LEVEE__KAFKA__BROKERS` sets `kafka.brokers`.
pub const ENV_PREFIX: &str = "LEVEE";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    AtLeastOnce,
    ExactlyOnce,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Delivery::AtLeastOnce => "at_least_once",
            Delivery::ExactlyOnce => "exactly_once",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// The effective settings of `levee run`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub delivery: Delivery,
    pub kafka: KafkaSettings,
    pub topics: Topics,
    pub rules: RulesSettings,
    pub log: LogSettings,
    pub state: StateSettings,
    pub clock: ClockSettings,
    pub http: HttpSettings,
}

/// The service's clock: see [`super::clock`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSettings {
    /// Shifts the wall clock: `0s`, `400d`, `-2h`.
    pub offset: String,
}

impl ClockSettings {
    /// `clock.offset` in seconds (validated by [`Settings::validate`]).
    pub fn offset_secs(&self) -> i64 {
        super::clock::parse_offset(&self.offset).unwrap_or(0)
    }
}

/// Stateful control points: see [`super::state`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    /// A duration (`400d`): subjects idle this long in event time are forgotten.
    pub ttl: String,
    /// A duration (`7d`): how far behind its partition's watermark an event may be.
    pub allowed_lateness: String,
    /// A duration (`1h`): how far ahead of the clock an event may be stamped.
    pub max_future_skew: String,
    /// Wall-clock escalation tick; 0 turns it off.
    pub tick_interval_ms: u64,
    pub max_pending_rectifications: usize,
}

impl StateSettings {
    /// `state.ttl` in seconds (validated by [`Settings::validate`]).
    pub fn ttl_secs(&self) -> i64 {
        levee_rules::compile::parse_duration(&self.ttl).unwrap_or(400 * 86_400)
    }

    /// `state.allowed_lateness` in seconds.
    pub fn allowed_lateness_secs(&self) -> i64 {
        levee_rules::compile::parse_duration(&self.allowed_lateness).unwrap_or(7 * 86_400)
    }

    /// `state.max_future_skew` in seconds.
    pub fn max_future_skew_secs(&self) -> i64 {
        levee_rules::compile::parse_duration(&self.max_future_skew).unwrap_or(3600)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    pub instance_id: String,
    pub commit_interval_ms: u64,
    #[serde(default)]
    pub consumer: BTreeMap<String, Property>,
    #[serde(default)]
    pub producer: BTreeMap<String, Property>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    pub inputs: Vec<String>,
    pub tier1: String,
    pub tier2: String,
    pub tier3: String,
    pub decisions: String,
    pub dlq: String,
    pub rectification: String,
    pub profiles: String,
    pub changelog: String,
}

impl Topics {
    /// The topic of alerts of `tier` (1..=3; higher tiers go to tier 3).
    pub fn tier(&self, tier: u8) -> &str {
        match tier {
            0 | 1 => &self.tier1,
            2 => &self.tier2,
            _ => &self.tier3,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSettings {
    pub dir: PathBuf,
    pub reload_interval_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: String,
    pub token: String,
    pub max_body_bytes: usize,
    pub max_batch: usize,
}

/// A librdkafka property value: TOML lets people write numbers and booleans
/// unquoted; librdkafka wants strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Property {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Property::Bool(b) => write!(f, "{b}"),
            Property::Int(i) => write!(f, "{i}"),
            Property::Float(x) => write!(f, "{x}"),
            Property::Str(s) => f.write_str(s),
        }
    }
}

/// Settings given on the command line: the last layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub brokers: Option<String>,
    pub group_id: Option<String>,
    pub instance_id: Option<String>,
    pub delivery: Option<String>,
    pub log_format: Option<String>,
    pub rules_dir: Option<PathBuf>,
}

/// librdkafka properties levee sets itself from its own settings.
const RESERVED_CONSUMER: &[(&str, &str)] = &[
    ("bootstrap.servers", "kafka.brokers"),
    ("group.id", "kafka.group_id"),
    (
        "enable.auto.commit",
        "levee's delivery mode (it commits itself)",
    ),
    ("enable.auto.offset.store", "levee's delivery mode"),
];
const RESERVED_PRODUCER: &[(&str, &str)] = &[
    ("bootstrap.servers", "kafka.brokers"),
    ("transactional.id", "kafka.group_id and kafka.instance_id"),
];

/// Loads the layers. `file` is `--config`; `env` is the environment to read
/// `LEVEE__…` variables from (tests pass their own).
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &Overrides,
) -> anyhow::Result<Settings> {
    use config::{Config, Environment, File, FileFormat};

    let mut builder = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
    if let Some(path) = file {
        if !path.is_file() {
            bail!("the config file {} does not exist", path.display());
        }
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    let vars: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("topics.inputs")
            .try_parsing(true)
            .source(Some(vars)),
    );
    let flag_values = [
        ("kafka.brokers", flags.brokers.clone()),
        ("kafka.group_id", flags.group_id.clone()),
        ("kafka.instance_id", flags.instance_id.clone()),
        ("delivery", flags.delivery.clone()),
        ("log.format", flags.log_format.clone()),
        (
            "rules.dir",
            flags.rules_dir.as_ref().map(|p| p.display().to_string()),
        ),
    ];
    for (key, value) in flag_values {
        builder = builder.set_override_option(key, value)?;
    }
    let settings: Settings = builder
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|e| anyhow::anyhow!("bad setting: {e}"))
        .with_context(|| match file {
            Some(p) => format!(
                "reading the settings ({} and LEVEE__* variables)",
                p.display()
            ),
            None => "reading the settings (LEVEE__* variables)".to_owned(),
        })?;
    settings.validate()?;
    Ok(settings)
}

impl Settings {
    /// Checks what serde cannot; every message names the setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        if self.kafka.brokers.trim().is_empty() {
            errors.push("kafka.brokers is empty: name at least one host:port".to_owned());
        }
        if self.kafka.group_id.trim().is_empty() {
            errors.push("kafka.group_id is empty".to_owned());
        }
        if self.kafka.commit_interval_ms == 0 {
            errors.push("kafka.commit_interval_ms must be at least 1".to_owned());
        }
        if self.topics.inputs.is_empty() {
            errors.push("topics.inputs is empty: name at least one input topic".to_owned());
        }
        let named = [
            ("topics.tier1", &self.topics.tier1),
            ("topics.tier2", &self.topics.tier2),
            ("topics.tier3", &self.topics.tier3),
            ("topics.decisions", &self.topics.decisions),
            ("topics.dlq", &self.topics.dlq),
            ("topics.profiles", &self.topics.profiles),
            ("topics.changelog", &self.topics.changelog),
            ("topics.rectification", &self.topics.rectification),
        ];
        for (key, topic) in named.iter().map(|(k, t)| (*k, t.as_str())).chain(
            self.topics
                .inputs
                .iter()
                .map(|t| ("topics.inputs", t.as_str())),
        ) {
            if topic.is_empty() || !topic.chars().all(legal_topic_char) {
                errors.push(format!(
                    "{key}: {topic:?} is not a legal Kafka topic name (letters, digits, '.', '_', '-')"
                ));
            }
        }
        for input in &self.topics.inputs {
            if named.iter().any(|(_, t)| *t == input) {
                errors.push(format!(
                    "topics.inputs: {input:?} is also an output topic; levee would read its own output"
                ));
            }
        }
        for (key, value) in [
            ("state.ttl", &self.state.ttl),
            ("state.allowed_lateness", &self.state.allowed_lateness),
            ("state.max_future_skew", &self.state.max_future_skew),
        ] {
            if let Err(e) = levee_rules::compile::parse_duration(value) {
                errors.push(format!("{key}: {value:?} is not a duration: {e}"));
            }
        }
        if let Err(e) = super::clock::parse_offset(&self.clock.offset) {
            errors.push(format!(
                "clock.offset: {:?} is not an offset such as \"0s\", \"400d\" or \"-2h\": {e}",
                self.clock.offset
            ));
        }
        for (section, props, reserved) in [
            ("kafka.consumer", &self.kafka.consumer, RESERVED_CONSUMER),
            ("kafka.producer", &self.kafka.producer, RESERVED_PRODUCER),
        ] {
            for (key, instead) in reserved {
                if props.contains_key(*key) {
                    errors.push(format!(
                        "{section}.\"{key}\" cannot be passed through: it is set from {instead}"
                    ));
                }
            }
        }
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            errors.push(format!(
                "http.listen: {:?} is not an address:port such as 127.0.0.1:9464",
                self.http.listen
            ));
        }
        if self.http.max_body_bytes == 0 || self.http.max_batch == 0 {
            errors.push("http.max_body_bytes and http.max_batch must be at least 1".to_owned());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("bad settings:\n  {}", errors.join("\n  "))
        }
    }

    /// The instance id: the setting, or the host name, or the process id.
    pub fn instance_id(&self) -> String {
        if !self.kafka.instance_id.is_empty() {
            return self.kafka.instance_id.clone();
        }
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("pid{}", std::process::id()))
    }

    /// The `transactional.id` of exactly-once mode.
    pub fn transactional_id(&self) -> String {
        format!("{}-{}", self.kafka.group_id, self.instance_id())
    }

    /// The settings as TOML, secrets masked: what `--print-config` shows.
    pub fn to_masked_toml(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        if !shown.http.token.is_empty() {
            shown.http.token = "********".to_owned();
        }
        for props in [&mut shown.kafka.consumer, &mut shown.kafka.producer] {
            for (key, value) in props.iter_mut() {
                if is_secret(key) {
                    *value = Property::Str("********".to_owned());
                }
            }
        }
        toml::to_string(&shown).context("rendering the settings as TOML")
    }
}

fn legal_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// librdkafka properties whose values must not be printed.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.ends_with(".pem")
        || k == "sasl.oauthbearer.config"
        || k == "sasl.jaas.config"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_alone_are_valid() {
        let s = load(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(s.delivery, Delivery::AtLeastOnce);
        assert_eq!(s.topics.inputs.len(), 4);
        assert_eq!(s.topics.tier(2), "alerts.tier2");
        assert_eq!(s.rules.dir, PathBuf::from("rules"));
    }

    #[test]
    fn layers_file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("levee.toml");
        std::fs::write(
            &path,
            r#"
delivery = "exactly_once"
[kafka]
brokers = "file:1"
group_id = "from-file"
[kafka.consumer]
"session.timeout.ms" = 6000
"sasl.password" = "hunter2"
[topics]
inputs = ["a", "b"]
"#,
        )
        .unwrap();
        let s = load(
            Some(&path),
            env(&[
                ("LEVEE__KAFKA__GROUP_ID", "from-env"),
                ("LEVEE__KAFKA__BROKERS", "env:1"),
                ("LEVEE__TOPICS__INPUTS", "x,y,z"),
                ("OTHER", "ignored"),
            ]),
            &Overrides {
                brokers: Some("flag:1".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(s.delivery, Delivery::ExactlyOnce);
        assert_eq!(s.kafka.group_id, "from-env");
        assert_eq!(s.kafka.brokers, "flag:1");
        assert_eq!(s.topics.inputs, ["x", "y", "z"]);
        assert_eq!(
            s.kafka
                .consumer
                .get("session.timeout.ms")
                .unwrap()
                .to_string(),
            "6000"
        );
        let shown = s.to_masked_toml().unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("********"), "{shown}");
        assert!(shown.contains("6000"), "{shown}");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/levee.toml");
        let s = load(Some(&path), env(&[]), &Overrides::default()).unwrap();
        assert_eq!(s.topics.inputs.len(), 4);
        assert_eq!(s.log.format, LogFormat::Json);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("levee.toml");
        std::fs::write(&path, "[kafka]\nbrokerz = \"x\"\n").unwrap();
        let err = load(Some(&path), env(&[]), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("brokerz"), "{err:#}");

        let err = load(
            None,
            env(&[("LEVEE__DELIVERY", "twice")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("twice"), "{err:#}");

        std::fs::write(&path, "[kafka.consumer]\n\"group.id\" = \"x\"\n").unwrap();
        let err = load(Some(&path), env(&[]), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("kafka.group_id"), "{err:#}");

        let err = load(
            Some(&dir.path().join("missing.toml")),
            env(&[]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    }
}
