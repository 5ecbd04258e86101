//! Producing records and knowing they arrived.
//!
//! - [`OutRecord`]: one record to produce.
//! - [`Sink`]: where records are queued: [`Producers`] in the service, a
//!   fake in tests. Nothing else calls the producers' `send`.
//! - [`PendingDeliveries`]: a group of records produced and not yet
//!   acknowledged, counted down by the producer's delivery callback (no
//!   future, channel or task per record).
//! - [`produce`]: queues one record, waiting while the producer's queue is full.
//! - [`PendingDeliveries::wait_delivered`]: waits for a group's
//!   acknowledgements, and is **the one place a record is sent again**
//!   (to the same partition) after the broker did not take it. Only
//!   at-least-once: exactly-once, such a record fails its transaction,
//!   which is aborted and redone as a whole.
//! - A record the broker will never take as it is is not retried blindly:
//!   a dead letter too large for its topic is cut to [`DEAD_LETTER_FLOOR`]
//!   bytes and sent; any other ([`permanent`]: not authorized, no such
//!   topic, too large) breaks the sink ([`take_broken`]): the service stops
//!   with that one error, and the record stays unacknowledged, so nothing
//!   after it is committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};
use rdkafka::Message;
use tracing::debug;

use super::clients::ClientLog;
use super::error::{report, PipelineError};
pub use super::out::OutRecord;
use super::transaction::Alternating;
use crate::service::config::Topics;
use crate::service::metrics::{self, KafkaErrorKind};

/// How long a record waits before it is offered again to a producer whose
/// queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(2);

/// The size a dead letter is cut to when the broker refuses it even at
/// `dlq.max_payload_bytes`.
pub const DEAD_LETTER_FLOOR: usize = 1024;

/// Why the broker will never take a record as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permanent {
    /// Larger than the producer or the topic allows.
    Size,
    /// Not allowed, or nowhere to go (no such topic, not authorized).
    Refused,
}

/// Whether `e` says the record can never be written as it is.
pub fn permanent(e: &KafkaError) -> Option<Permanent> {
    use RDKafkaErrorCode as C;
    let code = match e {
        KafkaError::MessageProduction(c) => *c,
        _ => return None,
    };
    match code {
        C::MessageSizeTooLarge | C::InvalidMessageSize => Some(Permanent::Size),
        C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::UnknownTopic
        | C::UnknownTopicOrPartition
        | C::InvalidTopic
        | C::InvalidRecord => Some(Permanent::Refused),
        _ => None,
    }
}

/// The first record the broker would never take, as the error that stops
/// the service.
static BROKEN: Mutex<Option<PipelineError>> = Mutex::new(None);

fn set_broken(topic: &str, error: &KafkaError) {
    let e = PipelineError::Misconfigured(format!(
        "a record to {topic} can never be written ({error}): check the topic exists, levee may write to it, and its max.message.bytes; nothing after it is committed"
    ));
    let mut broken = BROKEN.lock().unwrap_or_else(|p| p.into_inner());
    if broken.is_none() {
        tracing::error!(error = %e, "a record cannot be written; stopping");
        *broken = Some(e);
    }
}

/// The error that broke the sink, if one did (taken once).
pub fn take_broken() -> Option<PipelineError> {
    BROKEN.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Where records are queued for the broker.
pub trait Sink: Send + Sync {
    /// Queues `record`; its delivery is reported to `deliveries`. An error:
    /// not queued, and no report will come.
    fn enqueue(
        &self,
        record: &OutRecord,
        deliveries: &Arc<PendingDeliveries>,
    ) -> Result<(), KafkaError>;
}

/// The producers' type: deliveries are reported per [`PendingDeliveries`].
pub type LeveeProducer = ThreadedProducer<ClientLog>;

/// The producers: at-least-once, the changelog and profiles go through one
/// of their own, so that a checkpoint's burst of state records does not
/// queue ahead of alerts on the same connection. Exactly-once: everything
/// goes to the transactional producer whose turn it is
/// ([`super::transaction::Alternating`]).
pub struct Producers {
    route: Route,
    changelog: String,
    profiles: String,
}

enum Route {
    Split {
        main: Arc<LeveeProducer>,
        state: Arc<LeveeProducer>,
    },
    Turns(Arc<Alternating<LeveeProducer>>),
}

impl std::fmt::Debug for Producers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producers").finish_non_exhaustive()
    }
}

impl Producers {
    /// At-least-once: `main`, and `state` for the changelog and profiles.
    pub fn new(main: Arc<LeveeProducer>, state: Arc<LeveeProducer>, topics: &Topics) -> Self {
        Producers {
            route: Route::Split { main, state },
            changelog: topics.changelog.clone(),
            profiles: topics.profiles.clone(),
        }
    }

    /// Exactly-once: the transactional producers, in turn.
    pub fn transactional(turns: Arc<Alternating<LeveeProducer>>, topics: &Topics) -> Self {
        Producers {
            route: Route::Turns(turns),
            changelog: topics.changelog.clone(),
            profiles: topics.profiles.clone(),
        }
    }

    fn of(&self, topic: &str) -> &LeveeProducer {
        match &self.route {
            Route::Turns(turns) => turns.active(),
            Route::Split { state, .. } if topic == self.changelog || topic == self.profiles => {
                state
            }
            Route::Split { main, .. } => main,
        }
    }
}

impl Sink for Producers {
    fn enqueue(
        &self,
        r: &OutRecord,
        deliveries: &Arc<PendingDeliveries>,
    ) -> Result<(), KafkaError> {
        let mut rec: BaseRecord<'_, [u8], [u8], Arc<PendingDeliveries>> =
            BaseRecord::with_opaque_to(&r.topic, Arc::clone(deliveries));
        if !r.tombstone {
            rec = rec.payload(r.payload.as_slice());
        }
        if let Some(p) = r.partition {
            rec = rec.partition(p);
        }
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(h) = &r.headers {
            rec = rec.headers(h.clone());
        }
        self.of(&r.topic).send(rec).map_err(|(e, _)| e)
    }
}

impl ProducerContext for ClientLog {
    type DeliveryOpaque = Arc<PendingDeliveries>;

    fn delivery(&self, result: &DeliveryResult<'_>, deliveries: Arc<PendingDeliveries>) {
        match result {
            Ok(_) => deliveries.acknowledged(),
            Err((e, m)) => deliveries.not_delivered(e, m.topic(), || OutRecord::of_message(m)),
        }
    }
}

/// The deliveries of a group of records: how many are not yet acknowledged,
/// and those the broker did not take. One per batch of output and per
/// changelog cut (at-least-once); exactly-once, one per partition task that
/// no one waits for (the transaction commit does). An alert's record gets
/// one of its own ([`PendingDeliveries::for_alert`]) that only carries its
/// event's Kafka timestamp (for `levee_end_to_end_seconds`) and counts
/// against its group.
#[derive(Debug, Default)]
pub struct PendingDeliveries {
    remaining: AtomicU64,
    /// Records not delivered, to send again (only if `resend`).
    failed: Mutex<Vec<OutRecord>>,
    resend: bool,
    done: tokio::sync::Notify,
    alert_born_ms: Option<i64>,
    group: Option<Arc<PendingDeliveries>>,
}

impl PendingDeliveries {
    /// A group; `resend`: keep what the broker did not take, to send again.
    pub fn new(resend: bool) -> Arc<Self> {
        Arc::new(PendingDeliveries {
            resend,
            ..PendingDeliveries::default()
        })
    }

    /// An alert's record, of an event written at `born_ms`: counts against `group`.
    pub fn for_alert(group: &Arc<Self>, born_ms: i64) -> Arc<Self> {
        Arc::new(PendingDeliveries {
            alert_born_ms: Some(born_ms),
            group: Some(Arc::clone(group)),
            ..PendingDeliveries::default()
        })
    }

    fn group(&self) -> &PendingDeliveries {
        self.group.as_deref().unwrap_or(self)
    }

    fn expect(&self, n: u64) {
        self.remaining.fetch_add(n, Ordering::AcqRel);
    }

    fn done(&self, n: u64) {
        if self.remaining.fetch_sub(n, Ordering::AcqRel) == n {
            self.done.notify_one();
        }
    }

    /// Nothing unacknowledged, nothing to send again.
    pub fn is_empty(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
            && self
                .failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
    }

    /// The broker acknowledged one record.
    pub fn acknowledged(&self) {
        if let Some(born) = self.alert_born_ms {
            metrics::alert_acknowledged(born);
        }
        self.group().done(1);
    }

    /// The broker did not take one record (of `topic`); `record` rebuilds it.
    pub fn not_delivered(
        &self,
        error: &KafkaError,
        topic: &str,
        record: impl FnOnce() -> OutRecord,
    ) {
        let group = self.group();
        let record = record();
        let again = match permanent(error) {
            None => Some(record),
            Some(Permanent::Size)
                if record.is_dead_letter() && record.payload.len() > DEAD_LETTER_FLOOR =>
            {
                Some(record.shrunk(DEAD_LETTER_FLOOR))
            }
            Some(_) => {
                // Stays unacknowledged: nothing after it is committed.
                set_broken(topic, error);
                return;
            }
        };
        if group.resend {
            report(
                KafkaErrorKind::Produce,
                error,
                &format!("a record to {topic} was not delivered; sending it again"),
            );
            if let Some(r) = again {
                group
                    .failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(r);
            }
        } else {
            // Exactly-once: the transaction fails (or was aborted, purging
            // its records) and is redone as a whole.
            debug!(error = %error, topic, "a record of the transaction was not delivered");
        }
        group.done(1);
    }

    /// Waits until every record counted is acknowledged, sending again (to
    /// the same partition) what the broker did not take, with a growing
    /// pause before each round.
    pub async fn wait_delivered(self: &Arc<Self>, sink: &dyn Sink) {
        let mut backoff = Duration::from_millis(100);
        loop {
            loop {
                let notified = self.done.notified();
                if self.remaining.load(Ordering::Acquire) == 0 {
                    break;
                }
                notified.await;
            }
            let failed =
                std::mem::take(&mut *self.failed.lock().unwrap_or_else(|p| p.into_inner()));
            if failed.is_empty() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
            for r in &failed {
                produce(sink, r, self).await;
            }
        }
    }
}

/// Queues one record, counted against `deliveries`, retrying while the
/// producer's queue is full or producing fails for a while; a dead letter
/// too large is cut down, and a record that can never be written breaks
/// the sink (see the module doc) and stays counted.
pub async fn produce(sink: &dyn Sink, r: &OutRecord, deliveries: &Arc<PendingDeliveries>) {
    let mut backoff = Duration::from_millis(10);
    let mut cut: Option<OutRecord> = None;
    loop {
        let record = cut.as_ref().unwrap_or(r);
        deliveries.group().expect(1);
        let Err(e) = sink.enqueue(record, deliveries) else {
            return;
        };
        match permanent(&e) {
            Some(Permanent::Size)
                if record.is_dead_letter() && record.payload.len() > DEAD_LETTER_FLOOR =>
            {
                deliveries.group().done(1);
                report(
                    KafkaErrorKind::Produce,
                    &e,
                    &format!(
                        "a dead letter to {} is too large; cut to {DEAD_LETTER_FLOOR} bytes",
                        record.topic
                    ),
                );
                cut = Some(record.shrunk(DEAD_LETTER_FLOOR));
                continue;
            }
            Some(_) => {
                // Counted and never acknowledged: nothing after it commits.
                set_broken(&record.topic, &e);
                return;
            }
            None => {}
        }
        // Not queued: no delivery report will come for it.
        deliveries.group().done(1);
        if let KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) = e {
            // The queue drains as the broker acknowledges: try again
            // soon, not after a growing back-off.
            tokio::time::sleep(QUEUE_FULL_WAIT).await;
            continue;
        }
        report(
            KafkaErrorKind::Produce,
            &e,
            &format!("producing to {} failed; retrying", record.topic),
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A [`Sink`] that keeps what it is given until a test acknowledges
    //! or fails it.

    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[derive(Default)]
    pub struct FakeSink {
        queued: Mutex<Vec<(OutRecord, Arc<PendingDeliveries>)>>,
        /// Every record ever queued, in order.
        pub log: Mutex<Vec<OutRecord>>,
        /// Refuse this many sends with a full queue.
        pub full: AtomicUsize,
        /// Refuse payloads larger than this as too large (0: no limit).
        pub max_size: AtomicUsize,
    }

    impl Sink for FakeSink {
        fn enqueue(
            &self,
            record: &OutRecord,
            deliveries: &Arc<PendingDeliveries>,
        ) -> Result<(), KafkaError> {
            if self
                .full
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull));
            }
            let max = self.max_size.load(Ordering::Acquire);
            if max > 0 && record.payload.len() > max {
                return Err(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageSizeTooLarge,
                ));
            }
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            log.push(record.clone());
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            queued.push((record.clone(), Arc::clone(deliveries)));
            Ok(())
        }
    }

    impl FakeSink {
        /// Records queued and not yet acknowledged or failed.
        pub fn in_flight(&self) -> Vec<OutRecord> {
            let queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            queued.iter().map(|(r, _)| r.clone()).collect()
        }

        /// The broker acknowledges everything queued; what it was.
        pub fn ack_all(&self) -> Vec<OutRecord> {
            let queued =
                std::mem::take(&mut *self.queued.lock().unwrap_or_else(|p| p.into_inner()));
            queued
                .into_iter()
                .map(|(r, d)| {
                    d.acknowledged();
                    r
                })
                .collect()
        }

        /// The broker acknowledges the records queued that `pick` picks.
        pub fn ack_where(&self, pick: impl Fn(&OutRecord) -> bool) -> Vec<OutRecord> {
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            let (acked, kept) = std::mem::take(&mut *queued)
                .into_iter()
                .partition::<Vec<_>, _>(|(r, _)| pick(r));
            *queued = kept;
            drop(queued);
            acked
                .into_iter()
                .map(|(r, d)| {
                    d.acknowledged();
                    r
                })
                .collect()
        }

        /// The broker does not take the first record queued.
        pub fn fail_first(&self) -> Option<OutRecord> {
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            if queued.is_empty() {
                return None;
            }
            let (r, d) = queued.remove(0);
            drop(queued);
            let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
            d.not_delivered(&timeout, &r.topic, || r.clone());
            Some(r)
        }

        /// Every record queued so far, of `topic`.
        pub fn sent_to(&self, topic: &str) -> Vec<OutRecord> {
            let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            log.iter().filter(|r| r.topic == topic).cloned().collect()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::fake::FakeSink;
    use super::*;

    /// What identifies a record here (headers have no equality).
    fn id(r: &OutRecord) -> (String, Option<Vec<u8>>, Vec<u8>, Option<i32>) {
        (
            r.topic.clone(),
            r.key.clone(),
            r.payload.clone(),
            r.partition,
        )
    }

    fn record(topic: &str, n: u8) -> OutRecord {
        OutRecord {
            partition: Some(2),
            ..OutRecord::keyed(topic, vec![n], vec![n, n])
        }
    }

    /// Lets spawned tasks run until they wait.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn waiting_ends_with_the_last_acknowledgement() {
        let sink = Arc::new(FakeSink::default());
        let pending = PendingDeliveries::new(true);
        for n in 0..3 {
            produce(sink.as_ref(), &record("alerts", n), &pending).await;
        }
        assert!(!pending.is_empty());
        let (s, p) = (Arc::clone(&sink), Arc::clone(&pending));
        let waiting = tokio::spawn(async move { p.wait_delivered(s.as_ref()).await });
        settle().await;
        assert!(!waiting.is_finished());
        assert_eq!(sink.ack_all().len(), 3);
        waiting.await.unwrap();
        assert!(pending.is_empty());
    }

    #[tokio::test]
    async fn a_record_the_broker_did_not_take_is_sent_again() {
        let sink = Arc::new(FakeSink::default());
        let pending = PendingDeliveries::new(true);
        produce(sink.as_ref(), &record("alerts", 1), &pending).await;
        produce(sink.as_ref(), &record("alerts", 2), &pending).await;
        let failed = sink.fail_first().unwrap();
        sink.ack_all();
        let (s, p) = (Arc::clone(&sink), Arc::clone(&pending));
        let waiting = tokio::spawn(async move { p.wait_delivered(s.as_ref()).await });
        // Sent again after a pause, as it was (same partition), and waited for.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.in_flight().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never sent again");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let again: Vec<_> = sink.in_flight().iter().map(id).collect();
        assert_eq!(again, [id(&failed)]);
        assert!(!waiting.is_finished());
        sink.ack_all();
        waiting.await.unwrap();
        assert_eq!(sink.sent_to("alerts").len(), 3);
        assert_eq!(id(&sink.sent_to("alerts")[2]), id(&failed));
    }

    #[tokio::test]
    async fn exactly_once_leaves_failures_to_the_transaction() {
        let sink = FakeSink::default();
        let pending = PendingDeliveries::new(false);
        produce(&sink, &record("alerts", 1), &pending).await;
        sink.fail_first().unwrap();
        pending.wait_delivered(&sink).await;
        assert_eq!(sink.sent_to("alerts").len(), 1, "not sent again");
        assert!(pending.is_empty());
    }

    #[tokio::test]
    async fn an_alert_counts_against_its_group() {
        let sink = FakeSink::default();
        let group = PendingDeliveries::new(true);
        let alert = PendingDeliveries::for_alert(&group, 0);
        produce(&sink, &record("alerts.tier1", 1), &alert).await;
        assert!(!group.is_empty());
        sink.ack_all();
        assert!(group.is_empty());
        // Its failure is the group's to send again.
        produce(&sink, &record("alerts.tier1", 2), &alert).await;
        sink.fail_first().unwrap();
        assert!(!group.is_empty());
    }

    #[tokio::test]
    async fn a_full_queue_is_offered_the_record_again() {
        let sink = FakeSink::default();
        sink.full.store(3, Ordering::Release);
        let pending = PendingDeliveries::new(true);
        produce(&sink, &record("alerts", 1), &pending).await;
        assert_eq!(sink.in_flight().len(), 1);
        sink.ack_all();
        assert!(pending.is_empty(), "the refused sends are not counted");
    }

    fn dead_letter(size: usize) -> OutRecord {
        OutRecord {
            headers: Some(
                rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                    key: "levee.error",
                    value: Some("bad"),
                }),
            ),
            ..OutRecord::keyed("dlq", "k", vec![b'x'; size])
        }
    }

    #[tokio::test]
    async fn a_dead_letter_too_large_is_cut_and_anything_else_breaks_the_sink() {
        let sink = Arc::new(FakeSink::default());
        sink.max_size.store(4096, Ordering::Release);
        let pending = PendingDeliveries::new(true);
        produce(sink.as_ref(), &dead_letter(100_000), &pending).await;
        let sent = sink.sent_to("dlq");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].payload.len(), DEAD_LETTER_FLOOR);
        assert!(take_broken().is_none());
        sink.ack_all();
        assert!(pending.is_empty());

        // An alert cannot be cut: the sink is broken, and the record stays
        // unacknowledged, so no checkpoint after it completes.
        let alert = OutRecord::keyed("alerts", "k", vec![b'x'; 10_000]);
        produce(sink.as_ref(), &alert, &pending).await;
        assert!(sink.sent_to("alerts").is_empty());
        assert!(!pending.is_empty());
        let broken = take_broken().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            broken.contains("alerts") && broken.contains("never"),
            "{broken}"
        );
    }

    #[test]
    fn permanent_errors_are_told_from_passing_ones() {
        let e = |c| KafkaError::MessageProduction(c);
        assert_eq!(
            permanent(&e(RDKafkaErrorCode::MessageSizeTooLarge)),
            Some(Permanent::Size)
        );
        assert_eq!(
            permanent(&e(RDKafkaErrorCode::TopicAuthorizationFailed)),
            Some(Permanent::Refused)
        );
        assert_eq!(permanent(&e(RDKafkaErrorCode::QueueFull)), None);
        assert_eq!(permanent(&e(RDKafkaErrorCode::MessageTimedOut)), None);
        assert_eq!(permanent(&e(RDKafkaErrorCode::AllBrokersDown)), None);
    }
}
