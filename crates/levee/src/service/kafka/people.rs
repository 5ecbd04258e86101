//! People's files (一人一档) in `levee run`: one profile per person, across
//! every event type, partition and instance.
//!
//! Alerts name their people (`people`, the HR employee numbers of the
//! fields a control point holds accountable). Every instance reads every
//! partition of the three tier topics and of `topics.rectification` (no
//! group, from the beginning, committed records only, as Kafka Streams
//! reads a global table) and folds them with
//! [`levee_engine::people::People`]: each alert once by `alert_id` (an
//! at-least-once duplicate or an escalation changes no count), each
//! rectification into the alert it closes (one read before its alert waits
//! for it). So `GET /v1/people/{id}` gives the same file from any instance,
//! the file `levee replay --profiles` gives for the same alerts and
//! rectifications, and it survives any instance's crash: it is read back
//! from the topics, which are the record.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::DateTime;
use levee_engine::people::{People, PersonProfile, Settings as PeopleSettings};
use levee_engine::rectify::Rectification;
use levee_engine::Alert;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::clients::{self, ClientLog};
use super::error::{report, PipelineError};
use crate::service::config::Settings;
use crate::service::metrics::KafkaErrorKind;
use crate::service::reload::Rules;

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The fold of every alert and rectification, shared with the HTTP handler.
pub struct PeopleFiles {
    people: Mutex<People>,
    /// Rectifications read before their alert: (status, when).
    early: Mutex<HashMap<String, (Rectification, Option<i64>)>>,
    /// `state.max_pending_rectifications`.
    max_early: usize,
    /// Read to the end of every partition as it was at start-up.
    caught_up: AtomicBool,
    rules: Arc<Rules>,
    settings: PeopleSettings,
}

impl std::fmt::Debug for PeopleFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeopleFiles").finish_non_exhaustive()
    }
}

fn seconds(rfc3339: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp())
}

impl PeopleFiles {
    pub fn new(rules: Arc<Rules>, max_early: usize) -> Self {
        PeopleFiles {
            people: Mutex::new(People::default()),
            early: Mutex::new(HashMap::new()),
            max_early: max_early.max(1),
            caught_up: AtomicBool::new(false),
            rules,
            settings: PeopleSettings::default(),
        }
    }

    fn people(&self) -> std::sync::MutexGuard<'_, People> {
        self.people.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn early(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Rectification, Option<i64>)>> {
        self.early.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether every record there was at start-up has been read.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// The file of `person` as of `now` (seconds), if an alert names them.
    pub fn profile(&self, person: &str, now: i64) -> Option<PersonProfile> {
        self.people().profile_of(person, now, self.settings)
    }

    /// An alert as its tier topic holds it, raised at its event's time
    /// (as `levee replay --profiles` counts it).
    pub fn alert(&self, alert: &Alert) {
        let (graph, _) = self.rules.current();
        let grade = graph
            .control_point(&alert.control_point)
            .and_then(|c| c.register.risk_grade);
        let at = seconds(&alert.occurred_at)
            .or_else(|| seconds(&alert.detected_at))
            .unwrap_or(0);
        let mut people = self.people();
        people.raised(alert, grade, at);
        if let Some((r, at)) = self.early().remove(&alert.alert_id) {
            let _ = people.rectify_checked(&r, at);
        }
    }

    /// A rectification; `fallback_at` (seconds) when it says no `at`.
    pub fn rectification(&self, r: &Rectification, fallback_at: Option<i64>) {
        let at = r.at.as_deref().and_then(seconds).or(fallback_at);
        match self.people().rectify_checked(r, at) {
            Ok(true) => return,
            // The stream refuses it too (to the DLQ): no file changes.
            Err(_) => return,
            Ok(false) => {}
        }
        let mut early = self.early();
        if early.len() >= self.max_early {
            // Forget an arbitrary one rather than grow without bound.
            if let Some(k) = early.keys().next().cloned() {
                early.remove(&k);
            }
        }
        early.insert(r.alert_id.clone(), (r.clone(), at));
    }

    /// One record of the topics read.
    fn record(&self, m: &BorrowedMessage<'_>, rectifications: &str) {
        let Some(payload) = m.payload() else { return };
        if m.topic() == rectifications {
            match serde_json::from_slice::<Rectification>(payload) {
                Ok(r) => {
                    let at = m.timestamp().to_millis().map(|ms| ms / 1000);
                    self.rectification(&r, at);
                }
                Err(e) => {
                    warn!(error = %e, topic = m.topic(), offset = m.offset(), "bad rectification skipped in people's files")
                }
            }
            return;
        }
        match serde_json::from_slice::<Alert>(payload) {
            Ok(a) => self.alert(&a),
            Err(e) => {
                warn!(error = %e, topic = m.topic(), offset = m.offset(), "an alert levee cannot read skipped in people's files")
            }
        }
    }

    /// Starts the thread that reads the topics until `stop`.
    pub fn start(
        settings: &Settings,
        rules: Arc<Rules>,
        stop: Arc<AtomicBool>,
    ) -> Result<Arc<Self>, PipelineError> {
        let consumer: BaseConsumer<ClientLog> = clients::people_reader_config(settings)
            .create_with_context(ClientLog)
            .map_err(|e| {
                PipelineError::kafka("creating the people reader", KafkaErrorKind::Other, e)
            })?;
        let files = Arc::new(PeopleFiles::new(
            rules,
            settings.state.max_pending_rectifications,
        ));
        let topics = &settings.topics;
        let mut read: Vec<String> = (1..=3).map(|t| topics.tier(t).to_owned()).collect();
        read.push(topics.rectification.clone());
        let rectifications = topics.rectification.clone();
        let f = Arc::clone(&files);
        std::thread::Builder::new()
            .name("levee-people".to_owned())
            .spawn(move || f.read(&consumer, &read, &rectifications, &stop))
            .map_err(|e| {
                PipelineError::Misconfigured(format!("starting the people reader: {e}"))
            })?;
        Ok(files)
    }

    fn read(
        &self,
        consumer: &BaseConsumer<ClientLog>,
        topics: &[String],
        rectifications: &str,
        stop: &AtomicBool,
    ) {
        let mut ends = loop {
            if stop.load(Ordering::Acquire) {
                return;
            }
            match assign_from_start(consumer, topics) {
                Ok(ends) => break ends,
                Err(e) => {
                    warn!(error = %e, "cannot read the alert topics for people's files yet; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        };
        let started = std::time::Instant::now();
        let mut read = 0u64;
        while !stop.load(Ordering::Acquire) {
            if ends.is_empty() && !self.caught_up() {
                self.caught_up.store(true, Ordering::Release);
                info!(
                    records = read,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "people's files read to the end of the alert topics"
                );
            }
            let Some(m) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            match m {
                Ok(m) => {
                    let key = (m.topic().to_owned(), m.partition());
                    if ends.get(&key).is_some_and(|end| m.offset() + 1 >= *end) {
                        ends.remove(&key);
                    }
                    self.record(&m, rectifications);
                    read += 1;
                }
                Err(e) => report(
                    KafkaErrorKind::Consume,
                    &e,
                    "reading alerts for people's files failed; retrying",
                ),
            }
        }
    }
}

/// Assigns every partition of `topics` from the beginning; the end of each
/// partition that holds anything now.
fn assign_from_start(
    consumer: &BaseConsumer<ClientLog>,
    topics: &[String],
) -> Result<HashMap<(String, i32), i64>, PipelineError> {
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for topic in topics {
        let count = clients::partition_count(consumer, topic, CALL_TIMEOUT)?;
        for p in 0..count {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, CALL_TIMEOUT)
                .map_err(|e| {
                    PipelineError::kafka(
                        "reading the end of an alert topic",
                        KafkaErrorKind::Consume,
                        e,
                    )
                })?;
            if high > low {
                ends.insert((topic.clone(), p), high);
            }
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| {
                    PipelineError::kafka("assigning an alert topic", KafkaErrorKind::Consume, e)
                })?;
        }
    }
    consumer.assign(&tpl).map_err(|e| {
        PipelineError::kafka("assigning the alert topics", KafkaErrorKind::Consume, e)
    })?;
    Ok(ends)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn alert(id: &str, people: &[&str]) -> Alert {
        serde_json::from_value(serde_json::json!({
            "alert_id": id, "control_point": "SO-002", "domain": "procurement",
            "title": "t", "tier": 1, "notify": "r", "action": "alert",
            "subject": "supplier:S-1", "people": people, "branch": "wuhan",
            "event_id": "e", "event_type": "purchase",
            "occurred_at": "2026-11-02T09:00:00+08:00",
            "detected_at": "2026-11-02T01:00:00.000Z",
            "source": {"topic": "events.procurement", "partition": 0, "offset": 1},
            "ruleset_version": "v", "message": "m", "evidence": {}
        }))
        .unwrap()
    }

    fn files() -> PeopleFiles {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
        PeopleFiles::new(Arc::new(Rules::load(dir).unwrap()), 2)
    }

    fn rectified(id: &str, at: &str) -> Rectification {
        serde_json::from_value(serde_json::json!({"alert_id": id, "status": "rectified", "at": at}))
            .unwrap()
    }

    #[test]
    fn an_alert_counts_once_and_a_rectification_may_come_first() {
        let f = files();
        let now = seconds("2026-11-10T00:00:00Z").unwrap();
        f.rectification(&rectified("a2", "2026-11-03T09:00:00+08:00"), None);
        f.alert(&alert("a1", &["E1", "E2"]));
        f.alert(&alert("a1", &["E1", "E2"]));
        f.alert(&alert("a2", &["E1"]));
        let p = f.profile("E1", now).unwrap();
        assert_eq!((p.alerts, p.open, p.rectified), (2, 1, 1));
        assert_eq!(
            p.time_to_rectify.mean_s,
            Some(86_400),
            "from the event to `at`"
        );
        assert_eq!(f.profile("E2", now).unwrap().alerts, 1);
        assert!(f.profile("E3", now).is_none());
    }

    #[test]
    fn early_rectifications_are_bounded() {
        let f = files();
        for id in ["x1", "x2", "x3"] {
            f.rectification(&rectified(id, "2026-11-03T09:00:00+08:00"), None);
        }
        assert_eq!(f.early().len(), 2);
    }
}
