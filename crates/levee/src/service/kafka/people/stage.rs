//! The people stage: the owner of each partition of the people topic folds
//! its person copies into files ([`Files`]) and writes every changed file
//! to `profiles.people` (compacted, keyed by the person).
//!
//! A thread of its own consumes the people topic in a group of its own,
//! `<group id>-people`, so that its rebalances never pause the stream. On
//! assignment a partition is read from its beginning (the stage commits no
//! offset: a file is the fold of every copy its partition still holds);
//! nothing of it is written until the read reaches the partition's end,
//! then every file it owns is, and from then on each changed file every
//! [`WRITE_EVERY`], and all of them every [`REFRESH_EVERY`] (their risk
//! scores decay). Before a partition is given up, what was written of it
//! is flushed, so its next owner's files land after the last owner's.
//!
//! Exactly-once. The copies are written in their alert's transaction and
//! read committed: an aborted alert is never in a file. A copy read twice
//! (after a crash, at-least-once) changes no file, the fold counts an alert
//! once by its id. A file written twice is the same file.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use levee_engine::people::{PersonProfile, Settings as PeopleSettings};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, TopicPartitionList};
use tracing::{info, warn};

use super::copies::Entry;
use super::files::{Files, Written};
use crate::service::clock;
use crate::service::config::Settings;
use crate::service::kafka::clients;
use crate::service::kafka::error::{report, PipelineError};
use crate::service::metrics::{self, KafkaErrorKind};
use crate::service::reload::Rules;

/// How often changed files are written.
pub const WRITE_EVERY: Duration = Duration::from_millis(200);
/// How often every file is written again, its score decayed to the time.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// How long after a file was not written all of them are written again.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How often the stage's lag is measured (`levee_people_lag`).
const LAG_EVERY: Duration = Duration::from_secs(5);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The stage consumer's context: rebalances noted for the stage's loop
/// (a partition given up is flushed first), librdkafka's logs.
struct StageContext {
    changes: Mutex<Vec<Change>>,
    producer: Arc<BaseProducer<FilesDelivery>>,
}

enum Change {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl ClientContext for StageContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        clients::log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        clients::client_error(&error, reason);
    }
}

impl ConsumerContext for StageContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if let Err(e) = self.producer.flush(FLUSH_TIMEOUT) {
                report(
                    KafkaErrorKind::Produce,
                    &e,
                    "flushing people's files before a rebalance",
                );
            }
            let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
            changes.push(Change::Revoked(partitions(tpl)));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
                changes.push(Change::Assigned(partitions(tpl)));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => report(KafkaErrorKind::Other, e, "people stage rebalance error"),
        }
    }
}

/// The files producer's context: a file not delivered is written again.
#[derive(Default)]
struct FilesDelivery {
    failed: AtomicBool,
}

impl ClientContext for FilesDelivery {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        clients::log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        clients::client_error(&error, reason);
    }
}

impl ProducerContext for FilesDelivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            report(
                KafkaErrorKind::Produce,
                e,
                "a person's file was not written; writing the files again",
            );
            self.failed.store(true, Ordering::Release);
        }
    }
}

/// One assigned partition.
#[derive(Default)]
struct Part {
    files: Files,
    /// Still reading what the partition held at assignment.
    restoring: bool,
    /// Its end at assignment: restoring is over there at the latest.
    end: i64,
}

struct Stage {
    consumer: BaseConsumer<StageContext>,
    producer: Arc<BaseProducer<FilesDelivery>>,
    topic: String,
    files_topic: String,
    rules: Arc<Rules>,
    parts: HashMap<i32, Part>,
    settings: PeopleSettings,
}

/// Starts the stage's thread, consuming `topic` (the people topic) until
/// `stop`.
pub fn start(
    settings: &Settings,
    topic: String,
    rules: Arc<Rules>,
    stop: Arc<AtomicBool>,
) -> Result<(), PipelineError> {
    let producer: BaseProducer<FilesDelivery> = clients::people_files_producer_config(settings)
        .create_with_context(FilesDelivery::default())
        .map_err(|e| {
            PipelineError::kafka(
                "creating the people files producer",
                KafkaErrorKind::Other,
                e,
            )
        })?;
    let producer = Arc::new(producer);
    let context = StageContext {
        changes: Mutex::new(Vec::new()),
        producer: Arc::clone(&producer),
    };
    let consumer: BaseConsumer<StageContext> = clients::people_stage_config(settings)
        .create_with_context(context)
        .map_err(|e| {
            PipelineError::kafka(
                "creating the people stage consumer",
                KafkaErrorKind::Other,
                e,
            )
        })?;
    consumer.subscribe(&[topic.as_str()]).map_err(|e| {
        PipelineError::kafka(
            "subscribing to the people topic",
            KafkaErrorKind::Consume,
            e,
        )
    })?;
    let mut stage = Stage {
        consumer,
        producer,
        topic,
        files_topic: settings.topics.people.clone(),
        rules,
        parts: HashMap::new(),
        settings: PeopleSettings::default(),
    };
    std::thread::Builder::new()
        .name("levee-people-stage".to_owned())
        .spawn(move || stage.run(&stop))
        .map_err(|e| PipelineError::Misconfigured(format!("starting the people stage: {e}")))?;
    Ok(())
}

impl Stage {
    fn run(&mut self, stop: &AtomicBool) {
        let (mut written, mut refreshed) = (Instant::now(), Instant::now());
        let mut measured = Instant::now();
        let mut retry_at: Option<Instant> = None;
        while !stop.load(Ordering::Acquire) {
            // Detached: folding needs the stage, which holds the consumer.
            let polled = self
                .consumer
                .poll(Duration::from_millis(100))
                .map(|r| r.map(|m| m.detach()));
            self.rebalanced();
            match polled {
                Some(Ok(m)) => self.fold(&m),
                Some(Err(KafkaError::PartitionEOF(p))) => self.caught_up(p),
                Some(Err(e)) => report(
                    KafkaErrorKind::Consume,
                    &e,
                    "reading the people topic failed; retrying",
                ),
                None => {}
            }
            self.producer.poll(Duration::ZERO);
            if self.producer.context().failed.swap(false, Ordering::AcqRel) {
                // A file not written: all of them again, a while later.
                retry_at.get_or_insert(Instant::now() + RETRY_AFTER);
            }
            if retry_at.is_some_and(|t| Instant::now() >= t) || refreshed.elapsed() >= REFRESH_EVERY
            {
                retry_at = None;
                self.write_all();
                refreshed = Instant::now();
            } else if written.elapsed() >= WRITE_EVERY {
                self.write_changed();
                written = Instant::now();
            }
            if measured.elapsed() >= LAG_EVERY {
                metrics::people_lag(self.lag());
                measured = Instant::now();
            }
        }
        self.write_changed();
        if let Err(e) = self.producer.flush(FLUSH_TIMEOUT) {
            report(
                KafkaErrorKind::Produce,
                &e,
                "flushing people's files at shutdown",
            );
        }
        self.consumer.unsubscribe();
    }

    /// Records still to fold over the assigned partitions: each one's end
    /// less the stage's position in it (its beginning before the first
    /// fetch). A partition whose end cannot be read now counts nothing.
    fn lag(&self) -> i64 {
        let positions = self.consumer.position().unwrap_or_default();
        let mut lag = 0;
        for &p in self.parts.keys() {
            let Ok((low, high)) =
                self.consumer
                    .fetch_watermarks(&self.topic, p, Duration::from_secs(1))
            else {
                continue;
            };
            let at = positions
                .find_partition(&self.topic, p)
                .and_then(|e| e.offset().to_raw())
                .filter(|o| *o >= 0)
                .unwrap_or(low);
            lag += (high - at).max(0);
        }
        lag
    }

    /// Takes the rebalances the context noted.
    fn rebalanced(&mut self) {
        let changes = std::mem::take(
            &mut *self
                .consumer
                .context()
                .changes
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for change in changes {
            match change {
                Change::Revoked(ps) => {
                    for p in &ps {
                        self.parts.remove(p);
                    }
                    info!(partitions = ?ps, "people partitions revoked");
                }
                Change::Assigned(ps) => {
                    for &p in &ps {
                        // Its end unknown (the broker did not answer):
                        // restoring until the consumer reports the end.
                        let (restoring, end) =
                            match self
                                .consumer
                                .fetch_watermarks(&self.topic, p, FLUSH_TIMEOUT)
                            {
                                Ok((low, high)) => (high > low, high),
                                Err(_) => (true, i64::MAX),
                            };
                        let part = Part {
                            files: Files::default(),
                            restoring,
                            end,
                        };
                        self.parts.insert(p, part);
                    }
                    info!(partitions = ?ps, "people partitions assigned");
                }
            }
        }
    }

    fn fold<M: Message>(&mut self, m: &M) {
        let Some(part) = self.parts.get_mut(&m.partition()) else {
            return;
        };
        let (graph, _) = self.rules.current();
        let grade = |cp: &str| graph.control_point(cp).and_then(|c| c.register.risk_grade);
        let payload = m.payload().unwrap_or_default();
        if let Err(e) = part.files.fold(m.key(), Entry::of(m), payload, grade) {
            warn!(error = %e, partition = m.partition(), offset = m.offset(), "a record of the people topic skipped");
            metrics::people_copy_skipped();
        }
        if part.restoring {
            if m.offset() + 1 >= part.end {
                self.caught_up(m.partition());
            }
        } else if let Some(ms) = m.timestamp().to_millis() {
            metrics::people_delay((clock::now().timestamp_millis() - ms) as f64 / 1000.0);
        }
    }

    /// A partition read to its end: once restored, all its files written.
    fn caught_up(&mut self, p: i32) {
        let Some(part) = self.parts.get_mut(&p) else {
            return;
        };
        if !part.restoring {
            return;
        }
        part.restoring = false;
        let now = clock::now_secs();
        let files = part.files.all(now, self.settings);
        info!(
            partition = p,
            files = files.len(),
            "people partition read; its files written"
        );
        self.write(files, now);
    }

    fn write_changed(&mut self) {
        self.write_restored(false);
    }

    fn write_all(&mut self) {
        self.write_restored(true);
    }

    /// Writes the files of the partitions read to their end: every one
    /// (`all`), or those changed since they were last written.
    fn write_restored(&mut self, all: bool) {
        let (now, settings) = (clock::now_secs(), self.settings);
        let files: Vec<PersonProfile> = self
            .parts
            .values_mut()
            .filter(|part| !part.restoring)
            .flat_map(|part| {
                if all {
                    part.files.all(now, settings)
                } else {
                    part.files.take_changed(now, settings)
                }
            })
            .collect();
        self.write(files, now);
    }

    /// Writes `files`, their scores as of `now` (seconds).
    fn write(&self, files: Vec<PersonProfile>, now: i64) {
        if files.is_empty() {
            return;
        }
        let as_of = chrono::DateTime::from_timestamp(now, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for profile in &files {
            let written = Written {
                profile,
                as_of: as_of.clone(),
            };
            let Ok(payload) = serde_json::to_vec(&written) else {
                continue;
            };
            loop {
                let record = BaseRecord::to(&self.files_topic)
                    .key(profile.person.as_bytes())
                    .payload(&payload);
                match self.producer.send(record) {
                    Ok(()) => {
                        metrics::people_file_written();
                        break;
                    }
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        _,
                    )) => {
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        report(
                            KafkaErrorKind::Produce,
                            &e,
                            "a person's file was not written; writing the files again",
                        );
                        self.producer
                            .context()
                            .failed
                            .store(true, Ordering::Release);
                        break;
                    }
                }
            }
        }
    }
}
