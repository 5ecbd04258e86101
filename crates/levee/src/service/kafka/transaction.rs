//! Exactly-once: the Kafka transaction that holds one checkpoint interval's
//! output, changelog records and input offsets.
//!
//! [`Transaction::ensure_open`] begins one before work is handed to the
//! partition tasks; at the checkpoint, [`Transaction::finish`] sends the
//! offsets and commits it, or aborts it (a partition failed, or the commit
//! did): the one place a transaction commits or aborts. After an abort the
//! partitions are redone from their last commit. A producer that failed
//! fatally (fenced by a newer instance with the same `transactional.id`)
//! stops the service. [`init`] registers the transactional id at start-up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::TopicPartitionList;

use super::delivery::LeveeProducer;
use super::error::{report, PipelineError, Retry};
use crate::service::metrics::KafkaErrorKind;

/// How long one transactional call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The transactional calls: the producer in the service, a fake in tests.
pub trait Transactional: Send + Sync {
    fn begin(&self) -> Result<(), PipelineError>;
    /// Sends `offsets` (if any) to the transaction, then commits it.
    fn commit(
        &self,
        offsets: &TopicPartitionList,
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<(), PipelineError>;
    fn abort(&self) -> Result<(), PipelineError>;
}

fn failed(doing: &str) -> impl FnOnce(KafkaError) -> PipelineError + '_ {
    move |e| PipelineError::kafka(doing, KafkaErrorKind::Transaction, e)
}

impl Transactional for LeveeProducer {
    fn begin(&self) -> Result<(), PipelineError> {
        self.begin_transaction()
            .map_err(failed("beginning a transaction"))
    }

    fn commit(
        &self,
        offsets: &TopicPartitionList,
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<(), PipelineError> {
        if offsets.count() > 0 {
            let group = group.ok_or_else(|| {
                PipelineError::NotYet("the consumer has no group metadata".to_owned())
            })?;
            self.send_offsets_to_transaction(offsets, group, CALL_TIMEOUT)
                .map_err(failed("sending the offsets to the transaction"))?;
        }
        // rdkafka's commit flushes first, and its flush polls in rounds of
        // 100 ms that end only when the round does: with anything still in
        // flight, every commit took 100 ms more (the stream's p99 for
        // `/v1/evaluate` exactly-once was that commit). Wait for the
        // deliveries here; the commit then finds nothing to flush.
        drained(|| self.in_flight_count(), CALL_TIMEOUT);
        self.commit_transaction(CALL_TIMEOUT)
            .map_err(failed("committing the transaction"))
    }

    fn abort(&self) -> Result<(), PipelineError> {
        self.abort_transaction(CALL_TIMEOUT)
            .map_err(failed("aborting the transaction"))
    }
}

/// Waits until `in_flight` (records queued or unacknowledged) is zero,
/// looking every millisecond, for at most `within`; whether it is.
fn drained(in_flight: impl Fn() -> i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if in_flight() <= 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How a transaction ended at a checkpoint.
#[derive(Debug)]
pub enum Ended {
    /// None was open: nothing was handed out since the last checkpoint.
    NoneOpen,
    Committed,
    /// Aborted (why): redo the partitions from their last commit.
    Aborted(PipelineError),
}

/// Whether a transaction is open.
#[derive(Debug, Default)]
pub struct Transaction {
    open: bool,
}

impl Transaction {
    /// Begins one unless one is open.
    pub fn ensure_open(&mut self, producer: &dyn Transactional) -> Result<(), PipelineError> {
        if !self.open {
            producer.begin()?;
            self.open = true;
        }
        Ok(())
    }

    /// Commits the open transaction with `offsets`, or aborts it if a
    /// partition's part failed (`failure`) or the commit fails. `Err`: a
    /// fatal error; the service stops.
    pub fn finish(
        &mut self,
        producer: &dyn Transactional,
        offsets: &TopicPartitionList,
        group: Option<&ConsumerGroupMetadata>,
        failure: Option<PipelineError>,
    ) -> Result<Ended, PipelineError> {
        if !self.open {
            return Ok(Ended::NoneOpen);
        }
        let producer_failed = failure.is_none();
        let result = match failure {
            Some(e) => Err(e),
            None => producer.commit(offsets, group),
        };
        let e = match result {
            Ok(()) => {
                self.open = false;
                return Ok(Ended::Committed);
            }
            Err(e) => e,
        };
        if producer_failed && e.retry() == Retry::Fatal {
            // The producer is unusable: nothing more to ask of it.
            self.open = false;
            return Err(e);
        }
        self.abort(producer)?;
        match e.retry() {
            Retry::Fatal => Err(e),
            _ => Ok(Ended::Aborted(e)),
        }
    }

    /// Aborts the open transaction, if any. `Err`: the producer failed fatally.
    pub fn abort(&mut self, producer: &dyn Transactional) -> Result<(), PipelineError> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        match producer.abort() {
            Ok(()) => Ok(()),
            Err(e) if e.retry() == Retry::Fatal => Err(e),
            Err(e) => {
                report(
                    KafkaErrorKind::Transaction,
                    &e,
                    "aborting the transaction failed",
                );
                Ok(())
            }
        }
    }
}

/// Exactly-once: two transactional producers (two transactional ids) used
/// a checkpoint interval each, in turn.
///
/// After a commit the broker still writes the transaction's markers, and
/// until it has, it refuses to add partitions to the producer's next
/// transaction; librdkafka then retries after 20 ms, so with one producer
/// the first records after every checkpoint waited 20 ms more (the p99 of
/// `/v1/evaluate` through the stream, BENCHMARKS.md). The other producer's
/// last transaction ended a whole interval ago. Only one transaction is
/// ever open: the next begins after the last committed, so the output and
/// the changelog stay in order.
pub struct Alternating<T> {
    producers: [Arc<T>; 2],
    active: AtomicUsize,
}

impl<T> Alternating<T> {
    pub fn new(first: Arc<T>, second: Arc<T>) -> Self {
        Alternating {
            producers: [first, second],
            active: AtomicUsize::new(0),
        }
    }

    /// The producer of the open (or next) transaction: where records go.
    pub fn active(&self) -> &Arc<T> {
        &self.producers[self.active.load(Ordering::Acquire) % 2]
    }
}

impl<T: Transactional> Transactional for Alternating<T> {
    fn begin(&self) -> Result<(), PipelineError> {
        self.active().begin()
    }

    fn commit(
        &self,
        offsets: &TopicPartitionList,
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<(), PipelineError> {
        self.active().commit(offsets, group)?;
        // Nothing is sent until the next begin: the turn is taken now.
        self.active.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn abort(&self) -> Result<(), PipelineError> {
        self.active().abort()
    }
}

/// Registers the transactional id (fencing an earlier instance with the
/// same id and aborting its open transaction); retries while the broker is
/// away, gives up on an error retrying cannot fix.
pub async fn init(producer: &Arc<LeveeProducer>) -> Result<(), PipelineError> {
    let mut backoff = Duration::from_millis(500);
    loop {
        let p = Arc::clone(producer);
        let r = tokio::task::spawn_blocking(move || p.init_transactions(CALL_TIMEOUT))
            .await
            .unwrap_or(Err(KafkaError::Canceled));
        let error = match r {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let retry = match &error {
            KafkaError::Transaction(t) if !t.is_retriable() => Retry::Fatal,
            _ => Retry::Retriable,
        };
        let e = PipelineError::Kafka {
            doing: "initialising transactions".to_owned(),
            kind: KafkaErrorKind::Transaction,
            retry,
            error,
        };
        if e.retry() == Retry::Fatal {
            return Err(e);
        }
        report(
            KafkaErrorKind::Transaction,
            &e,
            "initialising transactions failed; retrying",
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A [`Transactional`] that records its calls and fails as told.

    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    pub struct FakeProducer {
        pub calls: Mutex<Vec<&'static str>>,
        /// The next commit's error.
        pub commit_fails: Mutex<Option<PipelineError>>,
        /// The next abort's error.
        pub abort_fails: Mutex<Option<PipelineError>>,
    }

    impl FakeProducer {
        pub fn calls(&self) -> Vec<&'static str> {
            self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }

        fn call(&self, name: &'static str) {
            self.calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(name);
        }
    }

    /// A Kafka error with the given hint.
    pub fn kafka_error(retry: Retry) -> PipelineError {
        PipelineError::Kafka {
            doing: "committing the transaction".to_owned(),
            kind: KafkaErrorKind::Transaction,
            retry,
            error: KafkaError::Canceled,
        }
    }

    impl Transactional for FakeProducer {
        fn begin(&self) -> Result<(), PipelineError> {
            self.call("begin");
            Ok(())
        }

        fn commit(
            &self,
            _: &TopicPartitionList,
            _: Option<&ConsumerGroupMetadata>,
        ) -> Result<(), PipelineError> {
            self.call("commit");
            match self
                .commit_fails
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }

        fn abort(&self) -> Result<(), PipelineError> {
            self.call("abort");
            match self
                .abort_fails
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::fake::{kafka_error, FakeProducer};
    use super::*;
    use crate::service::kafka::TopicPartition;

    #[test]
    fn a_commit_waits_for_the_records_in_flight_and_no_longer() {
        use std::sync::atomic::{AtomicI32, Ordering};
        // Three records in flight, one acknowledged at each look.
        let in_flight = AtomicI32::new(3);
        let started = Instant::now();
        assert!(drained(
            || in_flight.fetch_sub(1, Ordering::Relaxed),
            Duration::from_secs(5)
        ));
        assert_eq!(in_flight.load(Ordering::Relaxed), -1);
        assert!(started.elapsed() < Duration::from_secs(5));
        // Never acknowledged: it gives up when the time is up.
        let started = Instant::now();
        assert!(!drained(|| 1, Duration::from_millis(20)));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    fn finish(
        t: &mut Transaction,
        p: &dyn Transactional,
        failure: Option<PipelineError>,
    ) -> Result<Ended, PipelineError> {
        t.finish(p, &TopicPartitionList::new(), None, failure)
    }

    #[test]
    fn the_two_producers_take_a_transaction_each_in_turn() {
        let (a, b) = (
            Arc::new(FakeProducer::default()),
            Arc::new(FakeProducer::default()),
        );
        let turns = Alternating::new(Arc::clone(&a), Arc::clone(&b));
        let mut t = Transaction::default();
        t.ensure_open(&turns).unwrap();
        assert!(
            Arc::ptr_eq(turns.active(), &a),
            "records go to the open one"
        );
        assert!(matches!(finish(&mut t, &turns, None), Ok(Ended::Committed)));
        assert!(Arc::ptr_eq(turns.active(), &b), "the next is the other's");
        t.ensure_open(&turns).unwrap();
        // A failed commit aborts on the same producer, which begins again.
        *b.commit_fails.lock().unwrap() = Some(kafka_error(Retry::Retriable));
        assert!(matches!(
            finish(&mut t, &turns, None),
            Ok(Ended::Aborted(_))
        ));
        assert!(Arc::ptr_eq(turns.active(), &b));
        t.ensure_open(&turns).unwrap();
        assert!(matches!(finish(&mut t, &turns, None), Ok(Ended::Committed)));
        assert_eq!(a.calls(), ["begin", "commit"]);
        assert_eq!(b.calls(), ["begin", "commit", "abort", "begin", "commit"]);
        assert!(Arc::ptr_eq(turns.active(), &a));
    }

    #[test]
    fn one_transaction_per_interval() {
        let (p, mut t) = (FakeProducer::default(), Transaction::default());
        t.ensure_open(&p).unwrap();
        t.ensure_open(&p).unwrap();
        assert!(matches!(finish(&mut t, &p, None), Ok(Ended::Committed)));
        assert!(matches!(finish(&mut t, &p, None), Ok(Ended::NoneOpen)));
        t.ensure_open(&p).unwrap();
        assert_eq!(p.calls(), ["begin", "commit", "begin"]);
    }

    #[test]
    fn a_commit_that_fails_aborts_the_transaction() {
        let (p, mut t) = (FakeProducer::default(), Transaction::default());
        *p.commit_fails.lock().unwrap() = Some(kafka_error(Retry::Retriable));
        t.ensure_open(&p).unwrap();
        let ended = finish(&mut t, &p, None).unwrap();
        assert!(matches!(ended, Ended::Aborted(_)), "{ended:?}");
        assert_eq!(p.calls(), ["begin", "commit", "abort"]);
        // The next interval gets a new one.
        t.ensure_open(&p).unwrap();
        assert_eq!(p.calls().last(), Some(&"begin"));
    }

    #[test]
    fn a_failed_partition_aborts_without_committing() {
        let (p, mut t) = (FakeProducer::default(), Transaction::default());
        t.ensure_open(&p).unwrap();
        let stopped = PipelineError::TaskStopped(TopicPartition::new("events.a", 0));
        let ended = finish(&mut t, &p, Some(stopped)).unwrap();
        assert!(matches!(
            ended,
            Ended::Aborted(PipelineError::TaskStopped(_))
        ));
        assert_eq!(p.calls(), ["begin", "abort"]);
    }

    #[test]
    fn a_fenced_producer_stops_the_service() {
        let (p, mut t) = (FakeProducer::default(), Transaction::default());
        *p.commit_fails.lock().unwrap() = Some(kafka_error(Retry::Fatal));
        t.ensure_open(&p).unwrap();
        assert!(finish(&mut t, &p, None).is_err());
        assert_eq!(
            p.calls(),
            ["begin", "commit"],
            "no call to a broken producer"
        );

        // A partition that cannot be restored: aborted, then stopped.
        let (p, mut t) = (FakeProducer::default(), Transaction::default());
        t.ensure_open(&p).unwrap();
        let missing = PipelineError::Misconfigured("no changelog".into());
        assert!(finish(&mut t, &p, Some(missing)).is_err());
        assert_eq!(p.calls(), ["begin", "abort"]);
    }

    #[test]
    fn an_abort_that_fails_is_reported_unless_fatal() {
        let (p, mut t) = (FakeProducer::default(), Transaction::default());
        t.abort(&p).unwrap();
        assert!(p.calls().is_empty(), "none open: nothing to abort");
        t.ensure_open(&p).unwrap();
        *p.abort_fails.lock().unwrap() = Some(kafka_error(Retry::Retriable));
        t.abort(&p).unwrap();
        t.ensure_open(&p).unwrap();
        *p.abort_fails.lock().unwrap() = Some(kafka_error(Retry::Fatal));
        assert!(t.abort(&p).is_err());
    }
}
