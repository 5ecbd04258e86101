//! State that moves with its partition, and the rectification loop.
//!
//! # Changelog
//! Each input partition's engine keeps the state of its subjects (windows,
//! `for:`, suppression), its open alerts and its subjects' profiles. The
//! partition task writes one record per subject that changed since the last
//! write, then the partition record, to the compacted `topics.changelog`
//! topic, in the partition of the same number as its input partition
//! (at-least-once: every 100 ms and at every checkpoint, only once the output
//! of the events before is acknowledged; exactly-once: as subjects change,
//! inside the checkpoint's transaction):
//!
//! | key | value |
//! |---|---|
//! | `<input topic>/<partition>/<subject>` | the subject's [`SubjectSnapshot`] as JSON; a tombstone once nothing is left |
//! | `<input topic>/<partition>` | [`Meta`]: the input offset the state has consumed up to, and the watermark |
//!
//! The records are delivered before the offsets are committed
//! (at-least-once), or sent in the same transaction as the alerts and the
//! offsets (exactly-once). When a partition is assigned, its task reads its
//! changelog partition to the end (read_committed), keeps the keys of its
//! input partition, and only then evaluates its first event. Events below
//! the restored [`Meta::next_offset`] are skipped: their effect is already
//! in the state and their alerts were delivered before the changelog was
//! written, so a redelivery after a crash does not count them twice.
//!
//! Operators create the changelog topic with `cleanup.policy=compact` and as
//! many partitions as the input topics have (partition `p` of every input
//! keeps its state in partition `p`).
//!
//! # Rectifications
//! `events.rectification` is keyed by `alert_id`, not by subject, so a
//! rectification lands on a partition unrelated to the alert's. Every
//! instance therefore reads *all* partitions of it (no consumer group, from
//! the beginning at start-up, as Kafka Streams reads a global table) into a
//! bounded [`Rectifications`] table, and hands each new one to every local
//! partition task; the task whose ledger has the alert open applies it.
//! Tasks also consult the table when they raise an alert (a rectification
//! that came first) and after restoring a partition (one applied by a
//! previous owner that crashed before its changelog was written).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use levee_engine::{Status, SubjectSnapshot};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::service::config::Settings;

/// A topic levee needs is missing or has too few partitions: the operator's
/// to fix; retrying does not help.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Misconfigured(pub String);

/// How long a metadata or restore call may take before it is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The partition-level record of the changelog.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Meta {
    /// The next input offset to evaluate: everything before is in the state.
    pub next_offset: i64,
    /// The partition's watermark (event time, seconds).
    pub watermark: i64,
}

/// The changelog key of a subject of an input partition.
pub fn subject_key(topic: &str, partition: i32, subject: &str) -> String {
    format!("{topic}/{partition}/{subject}")
}

/// The changelog key of an input partition's [`Meta`].
pub fn meta_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// A partition's state as read back from the changelog.
#[derive(Debug, Default)]
pub struct Restored {
    pub subjects: HashMap<String, SubjectSnapshot>,
    pub meta: Option<Meta>,
    /// Changelog records read (all keys of the changelog partition).
    pub records: u64,
}

/// The changelog's partition count and watermarks, for every partition task
/// of the instance: one client, so that a restore of an empty changelog
/// partition is one round trip, not a consumer of its own.
pub struct ChangelogProbe {
    consumer: BaseConsumer<QuietEof>,
    topic: String,
    partitions: Mutex<Option<i32>>,
}

impl std::fmt::Debug for ChangelogProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangelogProbe")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl ChangelogProbe {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let consumer = restore_config(settings, "probe")
            .create_with_context(QuietEof)
            .context("creating the changelog client")?;
        Ok(ChangelogProbe {
            consumer,
            topic: settings.topics.changelog.clone(),
            partitions: Mutex::new(None),
        })
    }

    /// The changelog's partition count (read once).
    fn partitions(&self) -> anyhow::Result<i32> {
        let mut known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = *known {
            return Ok(n);
        }
        let n = partition_count(&self.consumer, &self.topic)?;
        *known = Some(n);
        Ok(n)
    }

    /// The low and high watermarks of a changelog partition.
    fn watermarks(&self, partition: i32) -> anyhow::Result<(i64, i64)> {
        self.consumer
            .fetch_watermarks(&self.topic, partition, CALL_TIMEOUT)
            .with_context(|| format!("reading the watermarks of {}[{partition}]", self.topic))
    }
}

/// The configuration of the changelog clients: the consumer settings
/// (they never join the group: librdkafka wants a `group.id` to assign
/// partitions all the same), and no waiting for more data.
fn restore_config(settings: &Settings, role: &str) -> rdkafka::ClientConfig {
    super::clients::changelog_reader_config(settings, role)
}

/// Reads changelog partition `partition` to its end and keeps the records of
/// input partition `topic[partition]`, the last one per key winning. An
/// empty changelog partition (low = high watermark) is not read at all.
/// Blocking; run it off the async threads.
pub fn restore(
    settings: &Settings,
    probe: &ChangelogProbe,
    topic: &str,
    partition: i32,
) -> anyhow::Result<Restored> {
    let changelog = &settings.topics.changelog;
    let partitions = probe.partitions()?;
    if partition >= partitions {
        return Err(Misconfigured(format!(
            "the changelog topic {changelog} has {partitions} partitions, but input {topic} has partition {partition}: \
             create {changelog} with as many partitions as the input topics"
        ))
        .into());
    }
    let mut out = Restored::default();
    let (low, high) = probe.watermarks(partition)?;
    if high <= low {
        return Ok(out);
    }
    let consumer: BaseConsumer<QuietEof> = restore_config(settings, "restore")
        .create_with_context(QuietEof)
        .context("creating the changelog consumer")?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(changelog, partition, Offset::Beginning)?;
    consumer
        .assign(&tpl)
        .context("assigning the changelog partition")?;

    let prefix = format!("{topic}/{partition}/");
    let meta = meta_key(topic, partition);
    let started = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(KafkaError::Global(RDKafkaErrorCode::PartitionEOF))) => break,
            Some(Err(e)) => {
                if started.elapsed() > CALL_TIMEOUT {
                    return Err(anyhow!(e).context(format!("reading {changelog}[{partition}]")));
                }
                warn!(error = %e, "reading the changelog failed; retrying");
            }
            Some(Ok(m)) => {
                out.records += 1;
                // The last record there was when the restore began: done
                // (read_committed may hide the last offsets: then at EOF).
                let last = m.offset() + 1 >= high;
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    if last {
                        break;
                    }
                    continue;
                };
                if let Some(subject) = key.strip_prefix(&prefix) {
                    match m.payload() {
                        None => {
                            out.subjects.remove(subject);
                        }
                        Some(p) => match serde_json::from_slice::<SubjectSnapshot>(p) {
                            Ok(snap) => {
                                out.subjects.insert(subject.to_owned(), snap);
                            }
                            Err(e) => warn!(
                                error = %e, key, "a changelog record does not parse; skipping it"
                            ),
                        },
                    }
                } else if key == meta {
                    out.meta = m.payload().and_then(|p| serde_json::from_slice(p).ok());
                }
                if last {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// The restore consumer's context: reaching the end of the changelog
/// partition is what it waits for, not an error to log.
#[derive(Debug, Clone, Copy)]
pub struct QuietEof;

impl ClientContext for QuietEof {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            warn!(target: "levee::kafka", %error, "kafka client error (retrying): {reason}");
        }
    }
}

impl ConsumerContext for QuietEof {}

fn partition_count<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> anyhow::Result<i32> {
    let md = consumer
        .fetch_metadata(Some(topic), CALL_TIMEOUT)
        .with_context(|| format!("reading the metadata of {topic}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| anyhow!("no metadata for {topic}"))?;
    if t.error().is_some() || t.partitions().is_empty() {
        return Err(Misconfigured(format!(
            "the topic {topic} does not exist: create it (the changelog and profiles with \
             cleanup.policy=compact, the changelog with as many partitions as the input topics)"
        ))
        .into());
    }
    Ok(t.partitions().len() as i32)
}

/// Rectifications seen on `topics.rectification`, by alert id, oldest
/// forgotten first once there are more than the bound.
#[derive(Debug)]
pub struct Rectifications {
    inner: Mutex<RectInner>,
    max: usize,
}

#[derive(Debug, Default)]
struct RectInner {
    by_id: HashMap<String, Status>,
    order: VecDeque<String>,
}

impl Rectifications {
    pub fn new(max: usize) -> Self {
        Rectifications {
            inner: Mutex::new(RectInner::default()),
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RectInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one; the latest status of an alert wins.
    pub fn insert(&self, alert_id: &str, status: Status) {
        let mut g = self.lock();
        if g.by_id.insert(alert_id.to_owned(), status).is_none() {
            g.order.push_back(alert_id.to_owned());
        }
        while g.order.len() > self.max {
            if let Some(old) = g.order.pop_front() {
                g.by_id.remove(&old);
            }
        }
    }

    /// The statuses known for these alert ids.
    pub fn lookup<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<(String, Status)> {
        let g = self.lock();
        if g.by_id.is_empty() {
            return Vec::new();
        }
        ids.into_iter()
            .filter_map(|id| g.by_id.get(id).map(|s| (id.to_owned(), *s)))
            .collect()
    }
}

/// The reader of `topics.rectification`: all partitions, no group.
pub struct RectificationReader {
    consumer: BaseConsumer,
    topic: String,
    assigned: bool,
    last_try: Option<Instant>,
}

impl std::fmt::Debug for RectificationReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RectificationReader")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// One message of `topics.rectification`.
#[derive(Debug)]
pub enum RectMessage {
    Rectify(String, Status),
    Bad(String),
}

impl RectificationReader {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let config = super::clients::rectification_reader_config(settings);
        let consumer: BaseConsumer = config
            .create()
            .context("creating the rectification consumer")?;
        Ok(RectificationReader {
            consumer,
            topic: settings.topics.rectification.clone(),
            assigned: false,
            last_try: None,
        })
    }

    /// Assigns every partition of the topic from the beginning; retried
    /// every 30 s while the topic is missing.
    fn ensure_assigned(&mut self) {
        if self.assigned
            || self
                .last_try
                .is_some_and(|t| t.elapsed() < Duration::from_secs(30))
        {
            return;
        }
        self.last_try = Some(Instant::now());
        let count = match partition_count(&self.consumer, &self.topic) {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %format!("{e:#}"), topic = %self.topic, "cannot read rectifications yet; retrying in 30 s");
                return;
            }
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..count {
            if tpl
                .add_partition_offset(&self.topic, p, Offset::Beginning)
                .is_err()
            {
                return;
            }
        }
        match self.consumer.assign(&tpl) {
            Ok(()) => {
                self.assigned = true;
                info!(topic = %self.topic, partitions = count, "reading rectifications");
            }
            Err(e) => warn!(error = %e, "assigning the rectification topic failed"),
        }
    }

    /// The next rectification, waiting at most `timeout`.
    pub fn poll(&mut self, timeout: Duration) -> Option<RectMessage> {
        self.ensure_assigned();
        if !self.assigned {
            return None;
        }
        match self.consumer.poll(timeout)? {
            Ok(m) => {
                let body = m.payload().unwrap_or_default();
                let parsed = serde_json::from_slice::<levee_engine::rectify::Rectification>(body)
                    .map_err(|e| format!("not a valid rectification: {e}"));
                Some(match parsed {
                    Ok(r) => RectMessage::Rectify(r.alert_id, r.status),
                    Err(reason) => RectMessage::Bad(format!(
                        "{}[{}]@{}: {reason}",
                        m.topic(),
                        m.partition(),
                        m.offset()
                    )),
                })
            }
            Err(e) => {
                warn!(error = %e, "reading rectifications failed; retrying");
                None
            }
        }
    }

    /// The end offset of every partition that holds anything: one request
    /// for the first offsets and one for the ends of all partitions (a
    /// watermark query per partition took about 0.4 s each at start-up).
    fn ends(&self) -> HashMap<i32, i64> {
        let offsets = |at: i64| -> HashMap<i32, i64> {
            self.consumer
                .offsets_for_timestamp(at, CALL_TIMEOUT)
                .map(|tpl| {
                    tpl.elements()
                        .iter()
                        .filter_map(|e| match e.offset() {
                            Offset::Offset(o) => Some((e.partition(), o)),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        // ListOffsets' timestamps: -2 the earliest offset, -1 the latest.
        let (first, last) = (offsets(-2), offsets(-1));
        let mut ends: HashMap<i32, i64> = HashMap::new();
        for (partition, high) in last {
            if first.get(&partition).is_some_and(|low| high > *low) {
                ends.insert(partition, high);
            }
        }
        ends
    }

    /// Reads what the topic holds now (for at most `limit`), so that a
    /// starting instance knows the rectifications before its first event.
    pub fn catch_up(&mut self, table: &Rectifications, limit: Duration) -> usize {
        let started = Instant::now();
        self.ensure_assigned();
        if !self.assigned {
            return 0;
        }
        // The end of each partition now: read up to there.
        let mut ends = self.ends();
        let mut n = 0;
        while !ends.is_empty() && started.elapsed() < limit {
            let Some(m) = self.consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let Ok(m) = m else { continue };
            if ends
                .get(&m.partition())
                .is_some_and(|end| m.offset() + 1 >= *end)
            {
                ends.remove(&m.partition());
            }
            let body = m.payload().unwrap_or_default();
            match serde_json::from_slice::<levee_engine::rectify::Rectification>(body) {
                Ok(r) => {
                    table.insert(&r.alert_id, r.status);
                    n += 1;
                }
                Err(e) => warn!(error = %e, offset = m.offset(), "bad rectification skipped"),
            }
        }
        n
    }
}
