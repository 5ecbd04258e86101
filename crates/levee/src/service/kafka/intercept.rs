//! Interception on the stream's own path: `/v1/evaluate` hands a request
//! whose verdict depends on history to the stream and waits for the
//! stream's own decision.
//!
//! The request is appended to its input topic, keyed by its subject with
//! the producers' partitioner (`[kafka.producer] partitioner`, librdkafka's
//! `consistent_random` unless set: it must be the one the upstream
//! producers use), so it lands in its subject's partition, after every
//! event of the subject that reached Kafka before it, and counts in that
//! history from then on. Whichever instance owns the partition evaluates
//! it and writes the decision to `decisions` ([`super::requests`]); every
//! instance reads every partition of `decisions` from where it stood at
//! start-up (no group, uncommitted records included, so exactly-once does
//! not wait for a transaction to end) and hands each decision to the
//! handler waiting for its `event_id` ([`Board`]). No instance needs to know
//! which one owns the subject, and stream and HTTP cannot disagree: there is
//! one evaluation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use levee_engine::{Alert, Verdict};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::clients::{self, ClientLog};
use super::error::{report, PipelineError};
use super::requests::{self, DecidedBy};
use crate::service::config::Settings;
use crate::service::metrics::{self, KafkaErrorKind};

/// How long a metadata call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Handlers waiting for decisions, by `event_id`.
#[derive(Debug, Default)]
pub struct Board {
    waiting: Mutex<HashMap<String, Vec<oneshot::Sender<Value>>>>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<oneshot::Sender<Value>>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the decision on `event_id` (registered before the request
    /// is appended, so that no decision can come first).
    pub fn wait(&self, event_id: &str) -> oneshot::Receiver<Value> {
        let (tx, rx) = oneshot::channel();
        self.lock().entry(event_id.to_owned()).or_default().push(tx);
        rx
    }

    /// A decision read: every handler waiting for it gets it. Whether one
    /// was waiting.
    pub fn settle(&self, event_id: &str, decision: &Value) -> bool {
        let Some(waiters) = self.lock().remove(event_id) else {
            return false;
        };
        for w in waiters {
            let _ = w.send(decision.clone());
        }
        true
    }

    /// Drops the waiters of `event_id` that gave up.
    pub fn forget(&self, event_id: &str) {
        let mut g = self.lock();
        if let Some(ws) = g.get_mut(event_id) {
            ws.retain(|w| !w.is_closed());
            if ws.is_empty() {
                g.remove(event_id);
            }
        }
    }
}

/// Why a request got no decision from the stream.
#[derive(Debug, thiserror::Error)]
pub enum InterceptError {
    /// Not reading `decisions` yet (starting up): try again shortly.
    #[error("levee is not reading decisions yet")]
    NotReady,
    /// The request could not be appended to its topic.
    #[error("the request could not be appended to {topic}: {reason}")]
    Append { topic: String, reason: String },
    /// No decision within `http.decision_timeout` (the partition is being
    /// restored or moved, or the stream is behind). The request is in the
    /// log and is evaluated when its partition gets to it.
    #[error("no decision from the stream within http.decision_timeout ({0:?})")]
    Timeout(Duration),
}

/// `/v1/evaluate`'s way into the stream.
pub struct Interceptor {
    producer: FutureProducer<ClientLog>,
    /// The records of local decisions: nobody waits for them, so they are
    /// batched (`linger.ms` as levee's other producers).
    recorder: FutureProducer<ClientLog>,
    /// `topics.inputs`: where each stream's requests are appended.
    inputs: Vec<String>,
    decisions: String,
    board: Arc<Board>,
    reading: Arc<AtomicBool>,
    timeout: Duration,
}

impl std::fmt::Debug for Interceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interceptor")
            .field("decisions", &self.decisions)
            .finish_non_exhaustive()
    }
}

impl Interceptor {
    /// Its producer, and a thread reading `decisions` until `stop`.
    pub fn start(settings: &Settings, stop: Arc<AtomicBool>) -> Result<Arc<Self>, PipelineError> {
        let producer: FutureProducer<ClientLog> = clients::request_producer_config(settings)
            .create_with_context(ClientLog)
            .map_err(|e| {
                PipelineError::kafka("creating the request producer", KafkaErrorKind::Other, e)
            })?;
        let mut recorder_config = clients::request_producer_config(settings);
        recorder_config.set("linger.ms", "5").set(
            "client.id",
            format!("levee-{}-decisions-local", settings.instance_id()),
        );
        let recorder: FutureProducer<ClientLog> = recorder_config
            .create_with_context(ClientLog)
            .map_err(|e| {
                PipelineError::kafka("creating the decision recorder", KafkaErrorKind::Other, e)
            })?;
        let consumer: BaseConsumer<ClientLog> = clients::decisions_reader_config(settings)
            .create_with_context(ClientLog)
            .map_err(|e| {
                PipelineError::kafka("creating the decisions reader", KafkaErrorKind::Other, e)
            })?;
        let board = Arc::new(Board::default());
        let reading = Arc::new(AtomicBool::new(false));
        let topic = settings.topics.decisions.clone();
        let (b, r) = (Arc::clone(&board), Arc::clone(&reading));
        std::thread::Builder::new()
            .name("levee-decisions".to_owned())
            .spawn(move || read_decisions(&consumer, &topic, &b, &r, &stop))
            .map_err(|e| {
                PipelineError::Misconfigured(format!("starting the decisions reader: {e}"))
            })?;
        Ok(Arc::new(Interceptor {
            producer,
            recorder,
            inputs: settings.topics.inputs.clone(),
            decisions: settings.topics.decisions.clone(),
            board,
            reading,
            timeout: settings.http.decision_timeout.as_duration(),
        }))
    }

    /// The input topic that carries `stream` (`events.marketing`, also
    /// under a prefix).
    pub fn topic_for(&self, stream: &str) -> Option<&str> {
        self.inputs
            .iter()
            .find(|t| metrics::topic_is_stream(t, stream))
            .map(String::as_str)
    }

    /// Appends `request` (event `event_id`) to `topic` keyed by `subject`
    /// and waits for the stream's decision on it.
    pub async fn decide(
        &self,
        topic: &str,
        subject: &str,
        event_id: &str,
        request: &[u8],
    ) -> Result<Value, InterceptError> {
        if !self.reading.load(Ordering::Acquire) {
            return Err(InterceptError::NotReady);
        }
        let decision = self.board.wait(event_id);
        let record = FutureRecord::to(topic)
            .key(subject)
            .payload(request)
            .headers(requests::headers(event_id));
        if let Err((e, _)) = self.producer.send(record, self.timeout).await {
            self.board.forget(event_id);
            return Err(InterceptError::Append {
                topic: topic.to_owned(),
                reason: e.to_string(),
            });
        }
        match tokio::time::timeout(self.timeout, decision).await {
            Ok(Ok(d)) => Ok(d),
            _ => {
                self.board.forget(event_id);
                Err(InterceptError::Timeout(self.timeout))
            }
        }
    }

    /// Records a request decided without the stream (its type keeps no
    /// state): on `decisions`, as the stream records its own.
    pub fn record(&self, verdict: &Verdict, alerts: &[Alert], request: &[u8]) {
        let Some(r) =
            requests::decision(&self.decisions, verdict, alerts, request, DecidedBy::Local)
        else {
            return;
        };
        let record = FutureRecord::to(&r.topic)
            .key(r.key.as_deref().unwrap_or_default())
            .payload(&r.payload);
        if let Err((e, _)) = self.recorder.send_result(record) {
            report(KafkaErrorKind::Produce, &e, "recording a decision failed");
            metrics::interception("local", "unrecorded");
        }
    }

    /// Waits for the records sent to be delivered (shutdown).
    pub fn flush(&self, within: Duration) {
        let _ = self.recorder.flush(within / 2);
        let _ = self.producer.flush(within / 2);
    }
}

/// Assigns every partition of `decisions` at its end, then hands each
/// decision with `"source": "http"` to its waiters.
fn read_decisions(
    consumer: &BaseConsumer<ClientLog>,
    topic: &str,
    board: &Board,
    reading: &AtomicBool,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Acquire) && !reading.load(Ordering::Acquire) {
        match assign_at_end(consumer, topic) {
            Ok(n) => {
                info!(topic, partitions = n, "reading decisions for /v1/evaluate");
                reading.store(true, Ordering::Release);
            }
            Err(e) => {
                warn!(error = %e, topic, "cannot read decisions yet; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    while !stop.load(Ordering::Acquire) {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                report(
                    KafkaErrorKind::Consume,
                    &e,
                    "reading decisions failed; retrying",
                );
                continue;
            }
        };
        let Some(payload) = m.payload() else { continue };
        // Only decisions on requests from HTTP; the rest unread.
        if !contains(payload, br#""source":"http""#) {
            continue;
        }
        let Ok(decision) = serde_json::from_slice::<Value>(payload) else {
            continue;
        };
        if let Some(id) = decision["event_id"].as_str() {
            board.settle(id, &decision);
        }
    }
}

/// Assigns every partition of `topic` at its present end; how many.
fn assign_at_end(consumer: &BaseConsumer<ClientLog>, topic: &str) -> Result<i32, PipelineError> {
    let count = clients::partition_count(consumer, topic, CALL_TIMEOUT)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..count {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, CALL_TIMEOUT)
            .map_err(|e| {
                PipelineError::kafka("reading the end of decisions", KafkaErrorKind::Consume, e)
            })?;
        tpl.add_partition_offset(topic, p, Offset::Offset(high))
            .map_err(|e| PipelineError::kafka("assigning decisions", KafkaErrorKind::Consume, e))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| PipelineError::kafka("assigning decisions", KafkaErrorKind::Consume, e))?;
    Ok(count)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn a_decision_reaches_every_handler_waiting_for_it_once() {
        let board = Board::default();
        let (a, b) = (board.wait("r1"), board.wait("r1"));
        let other = board.wait("r2");
        assert!(board.settle("r1", &json!({"verdict": "block"})));
        assert_eq!(a.await.unwrap()["verdict"], "block");
        assert_eq!(b.await.unwrap()["verdict"], "block");
        assert!(!board.settle("r1", &json!({})), "settled once");
        drop(other);
        board.forget("r2");
        assert!(
            !board.settle("r2", &json!({})),
            "the one who gave up is gone"
        );
    }

    #[test]
    fn only_decisions_from_http_are_read() {
        assert!(contains(
            br#"{"event_id":"a","source":"http"}"#,
            br#""source":"http""#
        ));
        assert!(!contains(
            br#"{"event_id":"a","verdict":"allow"}"#,
            br#""source":"http""#
        ));
    }
}
