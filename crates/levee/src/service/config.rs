//! Settings of `levee run`, in layers: the embedded `default.toml`, then the
//! user's file, then `LEVEE__SECTION__KEY` environment variables, then flags.
//! This table is where each setting is documented; durations are
//! [`Span`]s (`500ms`, `5s`, `400d`), parsed when the settings load.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `delivery` | `at_least_once` | or `exactly_once` (Kafka transactions) |
//! | `shutdown_timeout` | `30s` | after SIGTERM, finish and commit for at most this long, then exit (what was not committed is redone) |
//! | `kafka.brokers` | `127.0.0.1:9092` | bootstrap servers |
//! | `kafka.group_id` | `levee` | consumer group |
//! | `kafka.instance_id` | host name | this instance; part of the `transactional.id` |
//! | `kafka.commit_interval` | `1s` | offset commit / transaction interval (at least `1ms`; was `commit_interval_ms`, a number of ms, still read) |
//! | `[kafka.consumer]`, `[kafka.producer]` | | librdkafka properties, passed through |
//! | `topics.inputs` | the four `events.*` | input topics (env: comma-separated) |
//! | `topics.tier1` … `tier3`, `decisions`, `dlq`, `shadow`, `closed`, `people` | docs/contract.md's names | output topics (`shadow`: `alerts.shadow`, the shadow rules' alerts; `closed`: `alerts.closed`, closed alerts with their results, compacted; `people`: `profiles.people`, people's files, compacted) |
//! | `topics.rectification` | `events.rectification` | rectifications (input, keyed by `alert_id`; every instance reads all of it: keep it, or compact it, for the longest `escalate_after` plus a restart) |
//! | `topics.profiles` | `profiles` | subject profiles (output, compacted) |
//! | `topics.changelog` | `levee.state-changelog` | state changelog (compacted; as many partitions as the inputs) |
//! | `state.ttl` | `400d` | forget a subject idle this long (event time; whole seconds) |
//! | `state.allowed_lateness` | `7d` | events older than the partition's watermark minus this go to the DLQ (`late`) |
//! | `state.max_future_skew` | `1h` | events stamped further ahead of the clock go to the DLQ (`future`) |
//! | `state.tick_interval` | `1s` | escalate due alerts by the wall clock this often, also without events (`0s`: only when events arrive; was `tick_interval_ms`, still read) |
//! | `state.max_pending_rectifications` | `1000000` | rectifications kept for alerts this instance may yet hold |
//! | `alerts.languages` | `["zh", "en"]` | the languages of an alert's message: `en` is `message` (required), `zh` adds `message_zh` |
//! | `state.changelog_encoding` | `"binary"` | how subjects are written to the changelog: `binary`, or `json` for the first step of a rolling upgrade from a version that wrote JSON; both are read |
//! | `input.max_event_bytes` | `1048576` | a larger input record goes to the DLQ unparsed (`oversize`) |
//! | `input.on_misrouted` | `dlq` | an event of a stateful type not keyed by its subject, or on another stream's topic: `dlq` (kind `misrouted`) or `process`; counted either way |
//! | `dlq.max_payload_bytes` | `65536` | a larger dead letter is written truncated to this, with its original size and SHA-256 in headers |
//! | `clock.offset` | `0s` | shift levee's clock (`400d`, `-2h`; an [`Offset`]): drills and tests |
//! | `rules.dir` | `rules` | the rules directory (also `--rules`) |
//! | `rules.reload_interval` | `5s` | poll the rule files for changes (`0s`: SIGHUP only; was `reload_interval_secs`, still read) |
//! | `shadow.rules_dir` | empty (off) | shadow rules (a directory, or a git revision of `rules.dir`'s repository) evaluated beside the live ones, alerts to `topics.shadow` only ([`super::shadow`]) |
//! | `sample.enabled` | `false` | keep a rolling sample of the input events for `levee diff` ([`super::sample`], docs/rule-changes.md) |
//! | `sample.dir` | `sample` | the sample's directory (segments and `manifest.json`); one per instance |
//! | `sample.max_bytes` | `1GiB` | the most its segments take together (a [`super::size::Size`], at least `64KiB`); the oldest segment is deleted first |
//! | `sample.subjects_per_10000` | `100` | subjects of each event type sampled per 10,000 (1 to 10000), each with its whole history |
//! | `sample.key_env` | `LEVEE_SAMPLE_KEY` | the environment variable holding the key of the sample's hash (at least 16 bytes; never in the file); required when sampling is on and the rules mark `sensitive` fields |
//! | `log.format` | `text` | or `json` |
//! | `log.level` | `info` | a tracing filter (`RUST_LOG` wins) |
//! | `http.listen` | `127.0.0.1:9464` | `/metrics`, `/healthz`, `/readyz`, `/v1/*` (`0.0.0.0:9464` in containers; port 0: any free port) |
//! | `http.token` | empty | bearer token `/v1/*` requires; empty: none (masked by `--print-config`) |
//! | `http.max_body_bytes` | `1048576` | larger request bodies get 413 |
//! | `http.max_batch` | `1000` | most events in one `POST /v1/evaluate` array; more get 413 |
//! | `http.read_timeout` | `10s` | a request body not read in this long gets 408 (the token is checked before the body is read) |
//! | `http.people_token` | empty | the token of `GET /v1/people/{id}` (personal data, apart from `http.token`); empty: the route answers 401 to everyone |
//! | `http.decision_timeout` | `5s` | how long `/v1/evaluate` waits for the stream's decision on a request that keeps state; then 503 with `Retry-After` |
//!
//! A renamed key (`kafka.commit_interval_ms`, `state.tick_interval_ms`,
//! `rules.reload_interval_secs`) set in the file or the environment wins
//! over the built-in default of its new name; setting both names is an error.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

pub use super::duration::{Offset, Span};
pub use super::sample::SampleSettings;
pub use super::shadow::ShadowSettings;
pub use super::topics::Topics;

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
    /// How long a stop (SIGTERM) may take to finish in-flight work and
    /// commit before levee exits anyway.
    pub shutdown_timeout: Span,
    pub kafka: KafkaSettings,
    pub topics: Topics,
    pub rules: RulesSettings,
    pub shadow: ShadowSettings,
    pub sample: SampleSettings,
    pub log: LogSettings,
    pub state: StateSettings,
    pub input: InputSettings,
    pub dlq: DlqSettings,
    pub alerts: AlertsSettings,
    pub clock: ClockSettings,
    pub http: HttpSettings,
}

/// `[input]`: what levee takes from its input topics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSettings {
    pub max_event_bytes: usize,
    pub on_misrouted: OnMisrouted,
}

/// What to do with an event keyed or routed otherwise than its type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMisrouted {
    /// Set it aside (kind `misrouted`, with the key it should have).
    Dlq,
    /// Evaluate it anyway: its subject's state may be split.
    Process,
}

/// `[dlq]`: what levee writes to the dead-letter topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlqSettings {
    pub max_payload_bytes: usize,
}

/// `[alerts]`: what alerts say.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSettings {
    /// The languages of an alert's message: `en` is `message` (always
    /// there: consumers rely on it), `zh` adds `message_zh`.
    #[serde(deserialize_with = "languages")]
    pub languages: Vec<String>,
}

impl AlertsSettings {
    /// Whether alerts carry `message_zh`.
    pub fn chinese(&self) -> bool {
        self.languages.iter().any(|l| l == "zh")
    }
}

fn languages<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let langs = Vec::<String>::deserialize(d)?;
    if let Some(l) = langs.iter().find(|l| !matches!(l.as_str(), "zh" | "en")) {
        return Err(serde::de::Error::custom(format!(
            "alerts.languages: unknown language `{l}` (known: zh, en)"
        )));
    }
    if !langs.iter().any(|l| l == "en") {
        return Err(serde::de::Error::custom(
            "alerts.languages must include \"en\": `message` is a required field of every alert",
        ));
    }
    Ok(langs)
}

/// `[clock]`: see [`super::clock`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSettings {
    pub offset: Offset,
}

/// `[state]`: see [`super::kafka`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "StateLayers")]
pub struct StateSettings {
    pub ttl: Span,
    pub allowed_lateness: Span,
    pub max_future_skew: Span,
    pub tick_interval: Span,
    pub max_pending_rectifications: usize,
    pub changelog_encoding: levee_engine::codec::Encoding,
}

/// `[state]` as the layers write it (with the renamed `tick_interval_ms`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateLayers {
    ttl: Span,
    allowed_lateness: Span,
    max_future_skew: Span,
    tick_interval: Option<Span>,
    tick_interval_ms: Option<u64>,
    max_pending_rectifications: usize,
    changelog_encoding: levee_engine::codec::Encoding,
}

impl TryFrom<StateLayers> for StateSettings {
    type Error = String;

    fn try_from(s: StateLayers) -> Result<Self, String> {
        Ok(StateSettings {
            ttl: s.ttl,
            allowed_lateness: s.allowed_lateness,
            max_future_skew: s.max_future_skew,
            tick_interval: renamed(
                "state.tick_interval",
                s.tick_interval,
                s.tick_interval_ms.map(Span::from_millis),
            )?,
            max_pending_rectifications: s.max_pending_rectifications,
            changelog_encoding: s.changelog_encoding,
        })
    }
}

/// `[kafka]`. Its `Debug` masks secret librdkafka properties.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "KafkaLayers")]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    pub instance_id: String,
    pub commit_interval: Span,
    pub consumer: BTreeMap<String, Property>,
    pub producer: BTreeMap<String, Property>,
}

/// `[kafka]` as the layers write it (with the renamed `commit_interval_ms`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KafkaLayers {
    brokers: String,
    group_id: String,
    instance_id: String,
    commit_interval: Option<Span>,
    commit_interval_ms: Option<u64>,
    #[serde(default)]
    consumer: BTreeMap<String, Property>,
    #[serde(default)]
    producer: BTreeMap<String, Property>,
}

impl TryFrom<KafkaLayers> for KafkaSettings {
    type Error = String;

    fn try_from(k: KafkaLayers) -> Result<Self, String> {
        Ok(KafkaSettings {
            commit_interval: renamed(
                "kafka.commit_interval",
                k.commit_interval,
                k.commit_interval_ms.map(Span::from_millis),
            )?,
            brokers: k.brokers,
            group_id: k.group_id,
            instance_id: k.instance_id,
            consumer: k.consumer,
            producer: k.producer,
        })
    }
}

/// A setting renamed when it became a duration: the old name, if set, wins
/// (the defaults only set the new one; [`load`] refuses both in the layers
/// above the defaults).
fn renamed(key: &str, new: Option<Span>, old: Option<Span>) -> Result<Span, String> {
    old.or(new).ok_or_else(|| format!("{key} is missing"))
}

/// Settings renamed when they became durations: (new key, old key).
const RENAMED: &[(&str, &str)] = &[
    ("kafka.commit_interval", "kafka.commit_interval_ms"),
    ("state.tick_interval", "state.tick_interval_ms"),
    ("rules.reload_interval", "rules.reload_interval_secs"),
];

/// `[rules]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "RulesLayers")]
pub struct RulesSettings {
    pub dir: PathBuf,
    pub reload_interval: Span,
}

/// `[rules]` as the layers write it (with the renamed `reload_interval_secs`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesLayers {
    dir: PathBuf,
    reload_interval: Option<Span>,
    reload_interval_secs: Option<u64>,
}

impl TryFrom<RulesLayers> for RulesSettings {
    type Error = String;

    fn try_from(r: RulesLayers) -> Result<Self, String> {
        Ok(RulesSettings {
            reload_interval: renamed(
                "rules.reload_interval",
                r.reload_interval,
                r.reload_interval_secs.map(Span::from_secs),
            )?,
            dir: r.dir,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// `[http]`. Its `Debug` masks the token.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: String,
    pub token: String,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    /// How long a client may take to send a request's body.
    pub read_timeout: Span,
    /// How long `/v1/evaluate` waits for the stream's decision on a request.
    pub decision_timeout: Span,
    /// The token of `GET /v1/people/{id}` (people's files); none: closed.
    pub people_token: String,
}

/// What `Debug` shows of a secret.
const MASK: &str = "********";

impl fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSettings")
            .field("listen", &self.listen)
            .field("token", &if self.token.is_empty() { "" } else { MASK })
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_batch", &self.max_batch)
            .field("read_timeout", &self.read_timeout)
            .field("decision_timeout", &self.decision_timeout)
            .field(
                "people_token",
                &if self.people_token.is_empty() {
                    ""
                } else {
                    MASK
                },
            )
            .finish()
    }
}

/// librdkafka properties with the secret ones masked.
struct MaskedProperties<'a>(&'a BTreeMap<String, Property>);

impl fmt::Debug for MaskedProperties<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown: &dyn fmt::Debug = if is_secret(k) { &MASK } else { v };
                (k, shown)
            }))
            .finish()
    }
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("instance_id", &self.instance_id)
            .field("commit_interval", &self.commit_interval)
            .field("consumer", &MaskedProperties(&self.consumer))
            .field("producer", &MaskedProperties(&self.producer))
            .finish()
    }
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
    use config::Config;

    if let Some(path) = file {
        if !path.is_file() {
            bail!("the config file {} does not exist", path.display());
        }
    }
    let vars: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
    let context = || match file {
        Some(p) => format!(
            "reading the settings ({} and LEVEE__* variables)",
            p.display()
        ),
        None => "reading the settings (LEVEE__* variables)".to_owned(),
    };
    let settings: Settings = layers(true, file, &vars, flags)?
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|e| anyhow::anyhow!("bad setting: {e}"))
        .with_context(context)?;
    // A renamed key and its new name both set above the defaults: which one
    // was meant is anyone's guess.
    let user = layers(false, file, &vars, flags)?
        .build()
        .map_err(|e| anyhow::anyhow!("bad setting: {e}"))
        .with_context(context)?;
    for (new, old) in RENAMED {
        let set = |key: &str| user.get::<config::Value>(key).is_ok();
        if set(new) && set(old) {
            return Err(anyhow::anyhow!(
                "bad setting: both {new} and {old} (its old name) are set: keep {new}"
            ))
            .with_context(context);
        }
    }
    settings.validate()?;
    Ok(settings)
}

/// The layers over one another: the defaults (if `defaults`), the file,
/// the environment, the flags.
fn layers(
    defaults: bool,
    file: Option<&Path>,
    vars: &config::Map<String, String>,
    flags: &Overrides,
) -> anyhow::Result<config::ConfigBuilder<config::builder::DefaultState>> {
    use config::{Config, Environment, File, FileFormat};

    let mut builder = Config::builder();
    if defaults {
        builder = builder.add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
    }
    if let Some(path) = file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("topics.inputs")
            .with_list_parse_key("alerts.languages")
            .try_parsing(true)
            .source(Some(vars.clone())),
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
    Ok(builder)
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
        if self.kafka.commit_interval.is_zero() {
            errors.push("kafka.commit_interval must be at least 1ms".to_owned());
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
            ("topics.shadow", &self.topics.shadow),
            ("topics.closed", &self.topics.closed),
            ("topics.people", &self.topics.people),
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
            ("state.ttl", self.state.ttl),
            ("state.allowed_lateness", self.state.allowed_lateness),
            ("state.max_future_skew", self.state.max_future_skew),
        ] {
            // Event time counts in seconds.
            if value.is_zero() || !value.is_whole_secs() {
                errors.push(format!(
                    "{key}: {value} must be a positive whole number of seconds (such as \"90s\" or \"7d\")"
                ));
            }
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
        if self.input.max_event_bytes == 0 || self.dlq.max_payload_bytes < 1024 {
            errors.push(
                "input.max_event_bytes must be at least 1 and dlq.max_payload_bytes at least 1024"
                    .to_owned(),
            );
        }
        if self.http.max_body_bytes == 0 || self.http.max_batch == 0 {
            errors.push("http.max_body_bytes and http.max_batch must be at least 1".to_owned());
        }
        self.sample.validate(&mut errors);
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
#[path = "config_tests.rs"]
mod tests;
