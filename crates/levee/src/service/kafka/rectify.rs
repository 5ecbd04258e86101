//! Rectifications: read from every partition of `topics.rectification`,
//! remembered, and offered to every partition task.
//!
//! The topic is keyed by `alert_id`, not by subject, so a rectification
//! lands on a partition unrelated to the alert's. Every instance therefore
//! reads *all* partitions of it ([`RectificationReader`]: no consumer group,
//! from the beginning at start-up, as Kafka Streams reads a global table)
//! into a bounded [`Rectifications`] table, and the consumer thread hands
//! each new one to every local partition task; the task whose ledger has
//! the alert open applies it. Tasks also consult the table when they raise
//! an alert (a rectification that came first) and after restoring a
//! partition (one applied by a previous owner that crashed before its
//! changelog was written).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use levee_engine::rectify::Rectification;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::clients::{self, rectification_reader_config, ClientLog};
use super::error::{report, PipelineError};
use crate::service::config::Settings;
use crate::service::metrics::KafkaErrorKind;

/// How long a metadata or offsets call may take: short, since the consumer
/// thread makes it between polls and must still see a stop (SIGTERM while
/// the broker is away exits within seconds, not after a 30 s call).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait before trying again to read a topic that is missing.
const RETRY_ASSIGN: Duration = Duration::from_secs(10);

/// Rectifications seen on `topics.rectification`, by alert id, oldest
/// forgotten first once there are more than the bound.
#[derive(Debug)]
pub struct Rectifications {
    inner: Mutex<Table>,
    max: usize,
}

#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<String, Arc<Rectification>>,
    order: VecDeque<String>,
}

impl Rectifications {
    pub fn new(max: usize) -> Self {
        Rectifications {
            inner: Mutex::new(Table::default()),
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one; the latest of an alert wins.
    pub fn insert(&self, r: Arc<Rectification>) {
        let mut g = self.lock();
        let alert_id = r.alert_id.clone();
        if g.by_id.insert(alert_id.clone(), r).is_none() {
            g.order.push_back(alert_id);
        }
        while g.order.len() > self.max {
            if let Some(old) = g.order.pop_front() {
                g.by_id.remove(&old);
            }
        }
    }

    /// The rectifications known for these alert ids.
    pub fn lookup<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<Arc<Rectification>> {
        let g = self.lock();
        if g.by_id.is_empty() {
            return Vec::new();
        }
        ids.into_iter()
            .filter_map(|id| g.by_id.get(id).cloned())
            .collect()
    }
}

/// One message of the topic: a rectification, or bad input
/// ([`PipelineError::BadInput`], naming where it is).
fn parse(m: &impl Message) -> Result<Rectification, PipelineError> {
    let body = m.payload().unwrap_or_default();
    serde_json::from_slice::<Rectification>(body).map_err(|e| {
        PipelineError::BadInput(format!(
            "{}[{}]@{}: not a valid rectification: {e}",
            m.topic(),
            m.partition(),
            m.offset()
        ))
    })
}

/// The reader of `topics.rectification`: all partitions, no group.
pub struct RectificationReader {
    consumer: BaseConsumer<ClientLog>,
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

impl RectificationReader {
    pub fn new(settings: &Settings) -> Result<Self, PipelineError> {
        let consumer = rectification_reader_config(settings)
            .create_with_context(ClientLog)
            .map_err(|e| {
                PipelineError::kafka(
                    "creating the rectification consumer",
                    KafkaErrorKind::Other,
                    e,
                )
            })?;
        Ok(RectificationReader {
            consumer,
            topic: settings.topics.rectification.clone(),
            assigned: false,
            last_try: None,
        })
    }

    /// Assigns every partition of the topic from the beginning; retried
    /// every [`RETRY_ASSIGN`] while the topic is missing.
    fn ensure_assigned(&mut self) {
        if self.assigned || self.last_try.is_some_and(|t| t.elapsed() < RETRY_ASSIGN) {
            return;
        }
        self.last_try = Some(Instant::now());
        let count = match clients::partition_count(&self.consumer, &self.topic, CALL_TIMEOUT) {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, topic = %self.topic, "cannot read rectifications yet; retrying in 30 s");
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
            Err(e) => report(
                KafkaErrorKind::Consume,
                &e,
                "assigning the rectification topic failed",
            ),
        }
    }

    /// The next rectification, waiting at most `timeout`; bad input is an
    /// `Err` to skip.
    pub fn poll(&mut self, timeout: Duration) -> Option<Result<Rectification, PipelineError>> {
        self.ensure_assigned();
        if !self.assigned {
            return None;
        }
        match self.consumer.poll(timeout)? {
            Ok(m) => Some(parse(&m)),
            Err(e) => {
                report(
                    KafkaErrorKind::Consume,
                    &e,
                    "reading rectifications failed; retrying",
                );
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

    /// Reads what the topic holds now (for at most `limit`) into `table`,
    /// so that a starting instance knows the rectifications before its
    /// first event.
    /// Gives up when `stop` is set.
    pub fn catch_up(
        &mut self,
        table: &Rectifications,
        limit: Duration,
        stop: &AtomicBool,
    ) -> usize {
        let started = Instant::now();
        loop {
            self.ensure_assigned();
            if self.assigned || started.elapsed() >= limit || stop.load(AtomicOrdering::Acquire) {
                break;
            }
            // The broker may be starting: try again soon, not in 10 s.
            self.last_try = None;
            std::thread::sleep(Duration::from_millis(200));
        }
        if !self.assigned {
            return 0;
        }
        // The end of each partition now: read up to there.
        let mut ends = self.ends();
        let mut n = 0;
        while !ends.is_empty() && started.elapsed() < limit && !stop.load(AtomicOrdering::Acquire) {
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
            match parse(&m) {
                Ok(r) => {
                    table.insert(Arc::new(r));
                    n += 1;
                }
                Err(e) => warn!(error = %e, "bad rectification skipped"),
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rdkafka::message::{OwnedMessage, Timestamp};

    use levee_engine::Status;

    use super::super::error::Retry;
    use super::*;

    fn r(id: &str, status: Status) -> Arc<Rectification> {
        Arc::new(Rectification::new(id, status))
    }

    #[test]
    fn the_latest_status_wins_and_the_oldest_are_forgotten() {
        let table = Rectifications::new(2);
        assert!(table.lookup(["a"]).is_empty());
        table.insert(r("a", Status::Acknowledged));
        table.insert(r("a", Status::Rectified));
        table.insert(r("b", Status::Dismissed));
        assert_eq!(table.lookup(["a", "x"]), [r("a", Status::Rectified)]);
        table.insert(r("c", Status::Rectified));
        assert!(table.lookup(["a"]).is_empty(), "a was the oldest");
        assert_eq!(table.lookup(["b", "c"]).len(), 2);
    }

    fn message(body: &str) -> OwnedMessage {
        OwnedMessage::new(
            Some(body.as_bytes().to_vec()),
            None,
            "events.rectification".into(),
            Timestamp::NotAvailable,
            3,
            42,
            None,
        )
    }

    #[test]
    fn a_bad_rectification_is_bad_input_that_says_where() {
        let ok = parse(&message(r#"{"alert_id":"x1","status":"rectified"}"#)).unwrap();
        assert_eq!((ok.alert_id.as_str(), ok.status), ("x1", Status::Rectified));
        let bad = parse(&message(r#"{"alert_id":"x1","status":"maybe"}"#)).unwrap_err();
        assert_eq!(bad.retry(), Retry::BadInput);
        assert!(
            bad.to_string()
                .starts_with("events.rectification[3]@42: not a valid rectification"),
            "{bad}"
        );
    }
}
