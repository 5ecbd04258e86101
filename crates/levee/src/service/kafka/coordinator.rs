//! The consumer group's side of the pipeline: one partition task per
//! assigned partition, the messages polled and not yet handed over, the
//! checkpoint under way, the offsets committed, the open transaction
//! (exactly-once), and what a rebalance does.
//!
//! [`Coordinator`] is the group consumer's context: librdkafka calls its
//! rebalance callbacks from inside `poll` on the consumer thread.
//! - **Assigned**: a task starts for each new partition at once, so its
//!   state is restored before its first event.
//! - **Revoked**: a checkpoint of the revoked partitions (their output
//!   delivered, their offsets committed), then their tasks stop. If the
//!   assignment is already lost (the session timed out), another instance
//!   owns them: committing would fail (or be fenced), so the work since the
//!   last commit is dropped instead and the new owner redoes it.
//! - **Redo** (a transaction aborted): every task stops, and the partitions
//!   still assigned are rewound to their last committed offsets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use levee_engine::rectify::Rectification;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientContext, Message, Offset, Statistics, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::checkpoint::{self, Checkpoint, Committed, Committer, Outcome};
use super::clients;
use super::delivery::Producers;
use super::error::{report, PipelineError};
use super::partition::{PartitionTask, Shared};
use super::rectify::Rectifications;
use super::restore::Restore;
use super::transaction::{Transaction, Transactional};
use super::work::{send_blocking, Work};
use super::TopicPartition;
use crate::service::config::{Delivery, Settings};
use crate::service::health::health;
use crate::service::metrics::{self, KafkaErrorKind};
use crate::service::reload::Rules;

/// How long one Kafka call made while holding up the pipeline may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Batches of messages queued per partition task. A barrier waits behind
/// them: 64 held a third of the bench's input at start-up and put the first
/// commit seconds after the first event.
const PARTITION_QUEUE: usize = 8;

/// The group consumer.
pub type LeveeConsumer = BaseConsumer<Coordinator>;

/// A running partition task.
struct Running {
    tx: mpsc::Sender<Work>,
    handle: JoinHandle<()>,
}

/// The partition tasks and the bookkeeping of their commits.
#[derive(Default)]
struct Tasks {
    running: HashMap<TopicPartition, Running>,
    committed: Committed,
    /// At-least-once: a checkpoint whose barriers are sent, not yet answered.
    in_flight: Option<Checkpoint>,
}

/// Messages polled but not yet handed to their tasks (one poll round),
/// batched per partition in the order they came.
#[derive(Debug, Default)]
struct Held(Vec<(TopicPartition, Vec<OwnedMessage>)>);

impl Held {
    fn push(&mut self, m: OwnedMessage) {
        let (topic, partition) = (m.topic(), m.partition());
        match self.0.iter_mut().find(|(tp, _)| tp.is(topic, partition)) {
            Some((_, batch)) => batch.push(m),
            None => {
                let tp = TopicPartition::new(topic, partition);
                self.0.push((tp, vec![m]));
            }
        }
    }

    fn take(&mut self) -> Vec<(TopicPartition, Vec<OwnedMessage>)> {
        std::mem::take(&mut self.0)
    }

    /// Drops the messages of `only` (all if `None`).
    fn drop_partitions(&mut self, only: Option<&[TopicPartition]>) {
        self.0
            .retain(|(tp, _)| only.is_some_and(|o| !o.contains(tp)));
    }
}

/// The group consumer's context and everything the consumer thread shares
/// with it.
pub struct Coordinator {
    settings: Settings,
    runtime: Handle,
    shared: Arc<Shared>,
    /// Exactly-once: the transactional producers' calls.
    producer: Arc<dyn Transactional>,
    tasks: Mutex<Tasks>,
    transaction: Mutex<Transaction>,
    held: Mutex<Held>,
    /// A fatal error noticed inside a callback.
    fatal: Mutex<Option<PipelineError>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the commit bookkeeping down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn tp_list(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

fn show(tps: &[TopicPartition]) -> String {
    let mut v: Vec<String> = tps.iter().map(ToString::to_string).collect();
    v.sort();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

impl Coordinator {
    /// `producers` for the records, `producer` for the transactions
    /// (exactly-once).
    pub fn new(
        settings: Settings,
        producers: Producers,
        producer: Arc<dyn Transactional>,
        rules: Arc<Rules>,
        runtime: Handle,
        restore: Arc<dyn Restore>,
        shadow: Option<Arc<Rules>>,
    ) -> Self {
        let rectifications = Rectifications::new(settings.state.max_pending_rectifications);
        let mut shared = Shared::new(
            &settings,
            rules,
            Arc::new(producers),
            restore,
            Arc::new(rectifications),
        );
        shared.shadow = shadow;
        Coordinator {
            shared: Arc::new(shared),
            settings,
            runtime,
            producer,
            tasks: Mutex::new(Tasks::default()),
            transaction: Mutex::new(Transaction::default()),
            held: Mutex::new(Held::default()),
            fatal: Mutex::new(None),
        }
    }

    /// Hands every partition task the sampler (`[sample]`); before any
    /// task starts.
    pub fn with_sample(mut self, sample: Option<Arc<crate::service::sampler::Sampler>>) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.sample = sample;
        }
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every rectification seen, for alerts a task may hold or raise later.
    pub fn rectifications(&self) -> &Rectifications {
        &self.shared.rectifications
    }

    pub fn exactly_once(&self) -> bool {
        self.settings.delivery == Delivery::ExactlyOnce
    }

    fn set_fatal(&self, e: PipelineError) {
        error!(error = %e, "fatal pipeline error");
        lock(&self.fatal).get_or_insert(e);
    }

    pub fn take_fatal(&self) -> Option<PipelineError> {
        lock(&self.fatal).take()
    }

    /// A checkpoint is under way (its answers are looked at after every poll).
    pub fn checkpoint_under_way(&self) -> bool {
        lock(&self.tasks).in_flight.is_some()
    }

    /// Exactly-once: makes sure a transaction is open for what tasks produce.
    fn ensure_transaction(&self) -> Result<(), PipelineError> {
        if self.exactly_once() {
            lock(&self.transaction).ensure_open(self.producer.as_ref())?;
        }
        Ok(())
    }

    /// Hands `work` to every partition task.
    pub fn broadcast(&self, work: impl Fn() -> Work) -> Result<(), PipelineError> {
        self.flush()?;
        let txs: Vec<mpsc::Sender<Work>> = lock(&self.tasks)
            .running
            .values()
            .map(|t| t.tx.clone())
            .collect();
        if txs.is_empty() {
            return Ok(());
        }
        self.ensure_transaction()?;
        for tx in txs {
            // A task that stopped (revoked) has nothing left to apply it to.
            let _ = send_blocking(&tx, work(), &self.runtime);
        }
        Ok(())
    }

    /// A rectification: remembered, and offered to every partition task.
    pub fn rectification(&self, r: Rectification) -> Result<(), PipelineError> {
        let r = Arc::new(r);
        self.shared.rectifications.insert(Arc::clone(&r));
        self.broadcast(|| Work::Rectify(Arc::clone(&r)))
    }

    /// Holds one polled message until [`Coordinator::flush`].
    pub fn hold(&self, message: OwnedMessage) {
        lock(&self.held).push(message);
    }

    /// Hands the held messages to their partitions' tasks; done before
    /// anything else goes down the channels (barriers, ticks, rectifications).
    pub fn flush(&self) -> Result<(), PipelineError> {
        let held = lock(&self.held).take();
        for (tp, batch) in held {
            self.dispatch(tp, batch)?;
        }
        Ok(())
    }

    /// Hands a partition's messages to its task (starting it if needed).
    fn dispatch(
        &self,
        tp: TopicPartition,
        messages: Vec<OwnedMessage>,
    ) -> Result<(), PipelineError> {
        self.ensure_transaction()?;
        let tx = {
            let mut tasks = lock(&self.tasks);
            let task = tasks
                .running
                .entry(tp.clone())
                .or_insert_with(|| self.spawn_task(&tp));
            task.tx.clone()
        };
        send_blocking(&tx, Work::Messages(messages), &self.runtime)
            .map_err(|_| PipelineError::TaskStopped(tp))
    }

    fn spawn_task(&self, tp: &TopicPartition) -> Running {
        let (tx, rx) = mpsc::channel(PARTITION_QUEUE);
        let task = PartitionTask::new(tp.clone(), Arc::clone(&self.shared));
        let handle = self.runtime.spawn(task.run(rx));
        debug!(topic = %tp.topic, partition = tp.partition, "partition task started");
        Running { tx, handle }
    }

    /// Waits until every partition in `only` (all if `None`) has evaluated
    /// and delivered everything handed to it, then commits their offsets.
    /// A checkpoint already under way is finished first.
    pub fn checkpoint(
        &self,
        consumer: &LeveeConsumer,
        only: Option<&[TopicPartition]>,
    ) -> Result<(), PipelineError> {
        if let Some(earlier) = self.take_in_flight() {
            self.finish_checkpoint(consumer, earlier, true)?;
        }
        let started = self.start_checkpoint(only)?;
        self.finish_checkpoint(consumer, started, true).map(drop)
    }

    fn take_in_flight(&self) -> Option<Checkpoint> {
        lock(&self.tasks).in_flight.take()
    }

    /// At-least-once, on the consumer thread between polls: starts a
    /// checkpoint if none is under way and `due`, and commits the one under
    /// way once every partition has answered, without waiting for it. The
    /// partitions keep evaluating (and the consumer keeps fetching) while
    /// their output is being acknowledged. Whether it started one.
    pub fn checkpoint_step(
        &self,
        consumer: &LeveeConsumer,
        due: bool,
    ) -> Result<bool, PipelineError> {
        let mut started = false;
        let in_flight = match self.take_in_flight() {
            Some(c) => Some(c),
            None if due => {
                started = true;
                Some(self.start_checkpoint(None)?)
            }
            None => None,
        };
        if let Some(c) = in_flight {
            if let Some(c) = self.finish_checkpoint(consumer, c, false)? {
                lock(&self.tasks).in_flight = Some(c);
            }
        }
        Ok(started)
    }

    /// Sends a barrier down every partition channel of `only` (all if `None`).
    fn start_checkpoint(
        &self,
        only: Option<&[TopicPartition]>,
    ) -> Result<Checkpoint, PipelineError> {
        self.flush()?;
        let channels: Vec<(TopicPartition, mpsc::Sender<Work>)> = lock(&self.tasks)
            .running
            .iter()
            .filter(|(tp, _)| only.is_none_or(|o| o.contains(tp)))
            .map(|(tp, t)| (tp.clone(), t.tx.clone()))
            .collect();
        Ok(Checkpoint::start(channels, &self.runtime))
    }

    /// Collects the answers to a checkpoint's barriers (waiting for them if
    /// `block`, else giving the checkpoint back while some are missing),
    /// then commits the offsets they name.
    fn finish_checkpoint(
        &self,
        consumer: &LeveeConsumer,
        mut c: Checkpoint,
        block: bool,
    ) -> Result<Option<Checkpoint>, PipelineError> {
        if block {
            c.wait(&self.runtime);
        } else if !c.collect() {
            return Ok(Some(c));
        }
        let plan = c.plan(&lock(&self.tasks).committed);
        let outcome = if self.exactly_once() {
            let mut transaction = lock(&self.transaction);
            let committer = Committer::Transaction {
                consumer,
                transaction: &mut transaction,
                producer: self.producer.as_ref(),
            };
            checkpoint::commit(plan, committer)?
        } else {
            checkpoint::commit(plan, Committer::Consumer(consumer))?
        };
        match outcome {
            Outcome::Committed(offsets) => lock(&self.tasks).committed.record(offsets),
            Outcome::Redo => self.abandon(consumer, None)?,
        }
        Ok(None)
    }

    /// Drops uncommitted work: aborts the open transaction (exactly-once),
    /// stops the partition tasks of `only` (all if `None`) and rewinds those
    /// still assigned to their committed offsets, so nothing is lost.
    fn abandon(
        &self,
        consumer: &LeveeConsumer,
        only: Option<&[TopicPartition]>,
    ) -> Result<(), PipelineError> {
        // Its offsets are not committed: the partitions are redone from the
        // last commit.
        drop(self.take_in_flight());
        if self.exactly_once() {
            lock(&self.transaction).abort(self.producer.as_ref())?;
        }
        let stopped = self.stop_tasks(only);
        if !consumer.assignment_lost() {
            rewind(consumer, &stopped);
        }
        Ok(())
    }

    /// Stops the tasks of `only` (all if `None`); queued work is dropped,
    /// and with it the task's cuts under way.
    fn stop_tasks(&self, only: Option<&[TopicPartition]>) -> Vec<TopicPartition> {
        lock(&self.held).drop_partitions(only);
        let mut tasks = lock(&self.tasks);
        let keys: Vec<TopicPartition> = tasks
            .running
            .keys()
            .filter(|tp| only.is_none_or(|o| o.contains(tp)))
            .cloned()
            .collect();
        for tp in &keys {
            if let Some(task) = tasks.running.remove(tp) {
                task.handle.abort();
            }
            health().forget_partition(&tp.topic, tp.partition);
            tasks.committed.forget(tp);
        }
        keys
    }
}

/// Seeks the partitions of `stopped` still assigned back to their
/// committed offsets (the beginning if none).
fn rewind(consumer: &LeveeConsumer, stopped: &[TopicPartition]) {
    let assigned: Vec<TopicPartition> = consumer
        .assignment()
        .map(|a| tp_list(&a))
        .unwrap_or_default();
    let committed = consumer.committed(CALL_TIMEOUT).ok();
    for tp in stopped.iter().filter(|tp| assigned.contains(tp)) {
        let offset = committed
            .as_ref()
            .and_then(|c| c.find_partition(&tp.topic, tp.partition))
            .map(|e| e.offset())
            .filter(|o| matches!(o, Offset::Offset(_)))
            .unwrap_or(Offset::Beginning);
        if let Err(e) = consumer.seek(&tp.topic, tp.partition, offset, CALL_TIMEOUT) {
            report(
                KafkaErrorKind::Consume,
                &e,
                &format!("rewinding {tp} failed"),
            );
        }
    }
}

impl ClientContext for Coordinator {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        clients::log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        clients::client_error(&error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        health().set_broker_up(metrics::consumer_statistics(&statistics));
    }
}

impl ConsumerContext for Coordinator {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            health().set_assigned(false);
            let revoked = tp_list(tpl);
            info!(partitions = %show(&revoked), "partitions revoked");
            let result = if consumer.assignment_lost() {
                warn!("assignment lost: dropping uncommitted work, the new owner redoes it");
                self.abandon(consumer, Some(&revoked))
            } else {
                self.checkpoint(consumer, Some(&revoked))
            };
            if let Err(e) = result {
                self.set_fatal(e);
            }
            self.stop_tasks(Some(&revoked));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let assigned = tp_list(tpl);
                info!(
                    partitions = %show(&assigned),
                    since_start_ms = crate::service::since_start(),
                    "partitions assigned"
                );
                // Start restoring their state now, not at their first event.
                let mut tasks = lock(&self.tasks);
                for tp in assigned {
                    if let std::collections::hash_map::Entry::Vacant(e) = tasks.running.entry(tp) {
                        let task = self.spawn_task(e.key());
                        e.insert(task);
                    }
                }
                health().set_assigned(true);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => report(KafkaErrorKind::Other, e, "rebalance error"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rdkafka::message::Timestamp;

    use super::*;

    fn message(topic: &str, partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(
            None,
            None,
            topic.into(),
            Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    fn offsets(held: &[(TopicPartition, Vec<OwnedMessage>)]) -> Vec<(String, Vec<i64>)> {
        held.iter()
            .map(|(tp, b)| (tp.to_string(), b.iter().map(Message::offset).collect()))
            .collect()
    }

    #[test]
    fn a_poll_round_is_batched_per_partition_in_order() {
        let mut held = Held::default();
        for (t, p, o) in [
            ("a", 0, 1),
            ("a", 1, 7),
            ("a", 0, 2),
            ("b", 0, 5),
            ("a", 0, 3),
        ] {
            held.push(message(t, p, o));
        }
        let want = [
            ("a[0]".to_owned(), vec![1, 2, 3]),
            ("a[1]".to_owned(), vec![7]),
            ("b[0]".to_owned(), vec![5]),
        ];
        assert_eq!(offsets(&held.take()), want);
        assert!(held.take().is_empty());
    }

    #[test]
    fn a_revoke_in_the_middle_of_a_poll_round_drops_only_its_partitions() {
        let mut held = Held::default();
        for (p, o) in [(0, 1), (1, 7), (0, 2), (2, 9)] {
            held.push(message("a", p, o));
        }
        held.drop_partitions(Some(&[
            TopicPartition::new("a", 0),
            TopicPartition::new("a", 2),
        ]));
        assert_eq!(offsets(&held.take()), [("a[1]".to_owned(), vec![7])]);
        held.push(message("a", 1, 8));
        held.drop_partitions(None);
        assert!(held.take().is_empty(), "None: every partition");
    }

    #[test]
    fn partitions_show_sorted() {
        let tps = [TopicPartition::new("b", 0), TopicPartition::new("a", 10)];
        assert_eq!(show(&tps), "a[10], b[0]");
        assert_eq!(show(&[]), "none");
    }
}
