//! Reading a partition's state back from the changelog when the partition
//! is assigned (see `changelog.rs` for what is written).
//!
//! The task of a newly assigned input partition `topic[p]` reads changelog
//! partition `p` to its end (read_committed), keeps the keys of its input
//! partition, the last record per key winning, and only then evaluates its
//! first event. Events below the restored [`Meta::next_offset`] are skipped:
//! their effect is already in the state and their output was delivered
//! before the changelog was written, so a redelivery after a crash does not
//! count them twice. An empty changelog partition is not read at all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use levee_engine::SubjectSnapshot;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tracing::warn;

use super::changelog::{closing_prefix, meta_key, request_prefix, Meta};
use super::clients::{self, changelog_reader_config};
use super::error::{report, PipelineError};
use super::TopicPartition;
use crate::service::config::Settings;
use crate::service::metrics::KafkaErrorKind;

/// How long a metadata or restore call may take before it is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A partition's state as read back from the changelog.
#[derive(Debug, Default)]
pub struct Restored {
    pub subjects: HashMap<String, SubjectSnapshot>,
    pub meta: Option<Meta>,
    /// Requests decided over HTTP (`event_id`, decision payload), oldest
    /// first.
    pub answered: Vec<(String, Vec<u8>)>,
    /// Closed alerts kept until archived, oldest first.
    pub closings: Vec<levee_engine::closings::Closing>,
    /// Changelog records read (all keys of the changelog partition).
    pub records: u64,
}

/// Where a partition task's state comes from: the changelog in the
/// service, a fixed state in tests.
pub trait Restore: Send + Sync {
    /// The state of input partition `tp`. Blocking: run it off the async threads.
    fn restore(&self, tp: &TopicPartition) -> Result<Restored, PipelineError>;
}

/// Reads the changelog. One client for every partition task of the
/// instance holds the partition count and answers the watermarks, so that
/// the restore of an empty changelog partition is one round trip, not a
/// consumer of its own.
pub struct ChangelogReader {
    settings: Settings,
    probe: BaseConsumer<QuietEof>,
    partitions: Mutex<Option<i32>>,
}

impl std::fmt::Debug for ChangelogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangelogReader")
            .field("topic", &self.settings.topics.changelog)
            .finish_non_exhaustive()
    }
}

impl ChangelogReader {
    pub fn new(settings: &Settings) -> Result<Self, PipelineError> {
        let probe = changelog_reader_config(settings, "probe")
            .create_with_context(QuietEof)
            .map_err(|e| {
                PipelineError::kafka("creating the changelog client", KafkaErrorKind::Other, e)
            })?;
        Ok(ChangelogReader {
            settings: settings.clone(),
            probe,
            partitions: Mutex::new(None),
        })
    }

    fn topic(&self) -> &str {
        &self.settings.topics.changelog
    }

    /// The changelog's partition count (read once).
    fn partitions(&self) -> Result<i32, PipelineError> {
        let mut known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = *known {
            return Ok(n);
        }
        let n = clients::partition_count(&self.probe, self.topic(), CALL_TIMEOUT)?;
        *known = Some(n);
        Ok(n)
    }

    /// The low and high watermarks of a changelog partition.
    fn watermarks(&self, partition: i32) -> Result<(i64, i64), PipelineError> {
        self.probe
            .fetch_watermarks(self.topic(), partition, CALL_TIMEOUT)
            .map_err(|e| {
                PipelineError::kafka(
                    format!("reading the watermarks of {}[{partition}]", self.topic()),
                    KafkaErrorKind::Consume,
                    e,
                )
            })
    }
}

impl Restore for ChangelogReader {
    /// Reads changelog partition `tp.partition` to the end it had when the
    /// restore began.
    fn restore(&self, tp: &TopicPartition) -> Result<Restored, PipelineError> {
        let (topic, partition) = (tp.topic.as_str(), tp.partition);
        let changelog = self.topic();
        let partitions = self.partitions()?;
        if partition >= partitions {
            return Err(PipelineError::Misconfigured(format!(
                "the changelog topic {changelog} has {partitions} partitions, but input {topic} has partition {partition}: \
                 create {changelog} with as many partitions as the input topics"
            )));
        }
        let mut out = Restored::default();
        let (low, high) = self.watermarks(partition)?;
        if high <= low {
            return Ok(out);
        }
        let kafka = |doing: &str, e| {
            PipelineError::kafka(
                format!("{doing} {changelog}[{partition}]"),
                KafkaErrorKind::Consume,
                e,
            )
        };
        let consumer: BaseConsumer<QuietEof> = changelog_reader_config(&self.settings, "restore")
            .create_with_context(QuietEof)
            .map_err(|e| kafka("creating the consumer of", e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(changelog, partition, Offset::Beginning)
            .map_err(|e| kafka("assigning", e))?;
        consumer.assign(&tpl).map_err(|e| kafka("assigning", e))?;

        let prefix = format!("{topic}/{partition}/");
        let meta = meta_key(topic, partition);
        let requests = request_prefix(topic, partition);
        let closed = closing_prefix(topic, partition);
        let mut answered = Kept::default();
        let mut closings = Kept::default();
        let started = Instant::now();
        loop {
            match consumer.poll(Duration::from_millis(500)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(KafkaError::Global(RDKafkaErrorCode::PartitionEOF))) => break,
                Some(Err(e)) => {
                    if started.elapsed() > CALL_TIMEOUT {
                        return Err(kafka("reading", e));
                    }
                    report(
                        KafkaErrorKind::Consume,
                        &e,
                        "reading the changelog failed; retrying",
                    );
                }
                Some(Ok(m)) => {
                    out.records += 1;
                    // The last record there was when the restore began: done
                    // (read_committed may hide the last offsets: then at EOF).
                    let last = m.offset() + 1 >= high;
                    if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
                        if let Some(subject) = key.strip_prefix(&prefix) {
                            keep(&mut out, subject, m.payload());
                        } else if key == meta {
                            out.meta = m.payload().and_then(|p| serde_json::from_slice(p).ok());
                        } else if let Some(id) = key.strip_prefix(&requests) {
                            answered.keep(id, m.offset(), m.payload());
                        } else if let Some(id) = key.strip_prefix(&closed) {
                            closings.keep(id, m.offset(), m.payload());
                        }
                    }
                    if last {
                        break;
                    }
                }
            }
        }
        out.answered = answered.oldest_first();
        out.closings = closings
            .oldest_first()
            .into_iter()
            .filter_map(|(id, p)| match serde_json::from_slice(&p) {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!(error = %e, alert_id = %id, "a closed alert in the changelog does not parse; skipping it");
                    None
                }
            })
            .collect();
        Ok(out)
    }
}

/// Records kept beside the subjects (requests decided over HTTP, closed
/// alerts) read back: the last record per id wins, a tombstone forgets.
#[derive(Debug, Default)]
struct Kept(HashMap<String, (i64, Vec<u8>)>);

impl Kept {
    fn keep(&mut self, event_id: &str, offset: i64, payload: Option<&[u8]>) {
        match payload {
            Some(p) => {
                self.0.insert(event_id.to_owned(), (offset, p.to_vec()));
            }
            None => {
                self.0.remove(event_id);
            }
        }
    }

    /// In the order they were decided (their records' offsets).
    fn oldest_first(self) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, (i64, Vec<u8>))> = self.0.into_iter().collect();
        v.sort_by_key(|(_, (offset, _))| *offset);
        v.into_iter().map(|(id, (_, p))| (id, p)).collect()
    }
}

/// One subject's record: its snapshot, or a tombstone (forgotten).
fn keep(out: &mut Restored, subject: &str, payload: Option<&[u8]>) {
    match payload {
        None => {
            out.subjects.remove(subject);
        }
        // Binary or the JSON of earlier versions: see `levee_engine::codec`.
        Some(p) => match levee_engine::codec::decode(p) {
            Ok(snap) => {
                out.subjects.insert(subject.to_owned(), snap);
            }
            Err(e) => warn!(
                error = %e, subject, "a changelog record does not parse; skipping it"
            ),
        },
    }
}

/// The changelog readers' context: reaching the end of the changelog
/// partition is what they wait for, not an error to log.
#[derive(Debug, Clone, Copy)]
pub struct QuietEof;

impl ClientContext for QuietEof {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            report(
                KafkaErrorKind::of_client_error(&error),
                &error,
                &format!("kafka client error (retrying): {reason}"),
            );
        }
    }
}

impl ConsumerContext for QuietEof {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn decided_requests_come_back_oldest_first_and_a_tombstone_forgets() {
        let mut a = Kept::default();
        a.keep("r2", 5, Some(b"two"));
        a.keep("r1", 3, Some(b"one"));
        a.keep("r3", 7, Some(b"three"));
        a.keep("r2", 9, Some(b"two again"));
        a.keep("r3", 10, None);
        let back = a.oldest_first();
        let ids: Vec<&str> = back.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["r1", "r2"]);
        assert_eq!(back[1].1, b"two again");
    }

    #[test]
    fn the_last_record_of_a_subject_wins_and_a_tombstone_forgets() {
        let mut out = Restored::default();
        keep(&mut out, "s1", Some(b"{}"));
        keep(&mut out, "s2", Some(b"{}"));
        keep(&mut out, "s1", None);
        keep(&mut out, "s2", Some(b"not json"));
        let subjects: Vec<&String> = out.subjects.keys().collect();
        assert_eq!(subjects, ["s2"], "s1 forgotten; s2's bad record skipped");
    }
}
