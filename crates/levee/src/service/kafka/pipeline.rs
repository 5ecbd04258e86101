//! The Kafka pipeline: one consumer thread, one tokio task per assigned
//! partition, one shared producer (at-least-once: a second one for the
//! changelog and profiles).
//!
//! The consumer thread polls the group consumer and hands each poll round's
//! messages, batched per partition, to its partition's task over a bounded
//! channel, so a partition's events are evaluated in order while partitions
//! run concurrently. Every `commit_interval_ms`, and before partitions are
//! revoked or the service stops, the thread takes a *checkpoint*: it sends a
//! barrier down every partition channel; a task answers once everything
//! before the barrier has been evaluated and (at-least-once) every record it
//! produced is acknowledged by the broker. Only then are the offsets
//! committed (at-least-once), or sent to the transaction that is then
//! committed (exactly-once). So a committed offset never runs ahead of its
//! output.
//!
//! At-least-once, nothing waits for a checkpoint but its commit: the consumer
//! thread keeps polling and dispatching while the answers come (one
//! checkpoint under way at a time), and a task hands the acknowledgement of
//! a barrier's output to a background task and goes on with the next
//! messages, unless [`CUTS_IN_FLIGHT`] such background tasks are still
//! waiting (back-pressure: evaluation stays within a few hundred
//! milliseconds of the broker's acknowledgements, and a barrier within a
//! few short queues of its partition's tasks). Exactly-once, the consumer
//! thread waits (the transaction must hold exactly the output before the
//! barrier).
//!
//! Each partition task owns its partition's [`Engine`] and so its state: it
//! restores it from the changelog before its first event and writes what
//! changed (see [`super::state`]): at-least-once every 100 ms and at each
//! barrier, once the output before is acknowledged (a *cut*); exactly-once
//! as it changes, into the open transaction. The consumer thread also reads
//! every rectification and hands it, and a wall-clock escalation tick, to
//! every task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use chrono::SecondsFormat;
use levee_engine::{Clock, Engine, Source, Status};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::Producer;
use rdkafka::{ClientContext, Message, Offset, Statistics, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::clients;
use super::delivery::{produce, LeveeProducer, OutRecord, PendingDeliveries, Producers};
use super::state::{
    self as pstate, ChangelogProbe, Meta, RectMessage, RectificationReader, Rectifications,
};
use crate::service::clock;
use crate::service::config::{Delivery, Settings, Topics};
use crate::service::health::{health, Restoring};
use crate::service::metrics::{self, KafkaErrorKind};
use crate::service::reload::Rules;

/// How long one Kafka call made while holding up the pipeline may take
/// before it is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// At-least-once: how often a partition task writes its state to the
/// changelog between checkpoints (after the output before it is acknowledged).
const CUT_INTERVAL: Duration = Duration::from_millis(100);
/// At-least-once: cuts of a partition task waiting for their
/// acknowledgements at most; a task with as many waits before it evaluates
/// more, so that evaluation does not run seconds ahead of the broker.
const CUTS_IN_FLIGHT: usize = 4;
/// Batches of messages (up to [`POLL_BATCH`] each) queued per partition
/// task. A barrier waits behind them: 64 held a third of the bench's input
/// at start-up and put the first commit seconds after the first event.
const PARTITION_QUEUE: usize = 8;
/// Messages the consumer thread takes from one poll round before handing
/// them to their tasks (one channel send and wake-up per partition batch).
const POLL_BATCH: usize = 256;

pub type LeveeConsumer = BaseConsumer<Pipeline>;

enum Work {
    /// Consecutive messages of the partition.
    Messages(Vec<OwnedMessage>),
    /// Answer with the next offset to commit once everything before is done.
    Barrier(oneshot::Sender<anyhow::Result<Option<i64>>>),
    /// A rectification from `topics.rectification`.
    Rectify(Arc<str>, Status),
    /// Escalate what is due by now on the service's clock.
    Tick,
}

struct PartitionTask {
    tx: mpsc::Sender<Work>,
    handle: JoinHandle<()>,
}

type Tp = (String, i32);

#[derive(Default)]
struct State {
    tasks: HashMap<Tp, PartitionTask>,
    /// Offsets committed (or sent to a committed transaction) by this instance.
    committed: HashMap<Tp, i64>,
    /// Exactly-once: a transaction is open.
    in_transaction: bool,
    /// At-least-once: a checkpoint whose barriers are sent, not yet answered.
    in_flight: Option<InFlight>,
}

type Reply = anyhow::Result<Option<i64>>;

/// A checkpoint under way: each partition's answer to its barrier.
#[derive(Default)]
struct InFlight {
    waiting: Vec<(Tp, oneshot::Receiver<Reply>)>,
    replies: Vec<(Tp, Reply)>,
}

/// The consumer's context and everything the consumer thread shares with it.
pub struct Pipeline {
    settings: Settings,
    producer: Arc<LeveeProducer>,
    producers: Arc<Producers>,
    rules: Arc<Rules>,
    runtime: Handle,
    state: Mutex<State>,
    /// Every rectification seen, for alerts a task may hold or raise later.
    rectifications: Arc<Rectifications>,
    /// A fatal error (exactly-once: fenced) noticed inside a callback.
    fatal: Mutex<Option<anyhow::Error>>,
    /// Messages polled but not yet handed to their tasks (one poll round).
    held: Mutex<Vec<(Tp, Vec<OwnedMessage>)>>,
    /// The changelog's metadata and watermarks, for the restores.
    probe: Arc<ChangelogProbe>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl ClientContext for Pipeline {
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

impl ConsumerContext for Pipeline {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            health().set_assigned(false);
            let revoked = tp_list(tpl);
            info!(partitions = %show(&revoked), "partitions revoked");
            // The assignment may already be lost (session timed out): then
            // another instance owns the partitions and committing would fail
            // (at-least-once) or be fenced (exactly-once); drop the work instead.
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
                let mut st = self.state();
                for tp in assigned {
                    if let std::collections::hash_map::Entry::Vacant(e) = st.tasks.entry(tp) {
                        let task = self.spawn_task(e.key());
                        e.insert(task);
                    }
                }
                health().set_assigned(true);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
        }
    }
}

fn tp_list(tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

fn show(tps: &[Tp]) -> String {
    let mut v: Vec<String> = tps.iter().map(|(t, p)| format!("{t}[{p}]")).collect();
    v.sort();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

impl Pipeline {
    pub fn new(
        settings: Settings,
        producer: Arc<LeveeProducer>,
        state_producer: Arc<LeveeProducer>,
        rules: Arc<Rules>,
        runtime: Handle,
        probe: Arc<ChangelogProbe>,
    ) -> Self {
        Pipeline {
            probe,
            producers: Arc::new(Producers::new(
                Arc::clone(&producer),
                state_producer,
                &settings.topics,
            )),
            rectifications: Arc::new(Rectifications::new(
                settings.state.max_pending_rectifications,
            )),
            settings,
            producer,
            rules,
            runtime,
            state: Mutex::new(State::default()),
            fatal: Mutex::new(None),
            held: Mutex::new(Vec::new()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the commit bookkeeping down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_fatal(&self, e: anyhow::Error) {
        error!(error = %format!("{e:#}"), "fatal pipeline error");
        let mut f = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        f.get_or_insert(e);
    }

    fn take_fatal(&self) -> Option<anyhow::Error> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn exactly_once(&self) -> bool {
        self.settings.delivery == Delivery::ExactlyOnce
    }

    /// Exactly-once: makes sure a transaction is open for what tasks produce.
    fn ensure_transaction(&self) -> anyhow::Result<()> {
        if self.exactly_once() {
            let mut st = self.state();
            if !st.in_transaction {
                self.producer
                    .begin_transaction()
                    .context("beginning a transaction")?;
                st.in_transaction = true;
            }
        }
        Ok(())
    }

    /// Hands `work` to every partition task.
    fn broadcast(&self, work: impl Fn() -> Work) -> anyhow::Result<()> {
        self.flush()?;
        let txs: Vec<mpsc::Sender<Work>> =
            self.state().tasks.values().map(|t| t.tx.clone()).collect();
        if txs.is_empty() {
            return Ok(());
        }
        self.ensure_transaction()?;
        for tx in txs {
            // A task that stopped (revoked) has nothing left to apply it to.
            let _ = self.runtime.block_on(tx.send(work()));
        }
        Ok(())
    }

    /// A rectification: remembered, and offered to every partition task.
    fn rectification(&self, alert_id: &str, status: Status) -> anyhow::Result<()> {
        self.rectifications.insert(alert_id, status);
        let id: Arc<str> = Arc::from(alert_id);
        self.broadcast(|| Work::Rectify(Arc::clone(&id), status))
    }

    /// Holds one polled message until [`Pipeline::flush`].
    fn hold(&self, message: OwnedMessage) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let (topic, partition) = (message.topic(), message.partition());
        match held
            .iter_mut()
            .find(|(tp, _)| tp.1 == partition && tp.0 == topic)
        {
            Some((_, batch)) => batch.push(message),
            None => {
                let tp = (topic.to_owned(), partition);
                held.push((tp, vec![message]));
            }
        }
    }

    /// Hands the held messages to their partitions' tasks; done before
    /// anything else goes down the channels (barriers, ticks, rectifications).
    fn flush(&self) -> anyhow::Result<()> {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(|p| p.into_inner()));
        for (tp, batch) in held {
            self.dispatch(tp, batch)?;
        }
        Ok(())
    }

    /// Hands a partition's messages to its task (starting it if needed).
    fn dispatch(&self, tp: Tp, messages: Vec<OwnedMessage>) -> anyhow::Result<()> {
        self.ensure_transaction()?;
        let tx = {
            let mut st = self.state();
            let task = st
                .tasks
                .entry(tp.clone())
                .or_insert_with(|| self.spawn_task(&tp));
            task.tx.clone()
        };
        let stopped = || anyhow!("the task of partition {}[{}] has stopped", tp.0, tp.1);
        match tx.try_send(Work::Messages(messages)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(work)) => {
                self.runtime.block_on(tx.send(work)).map_err(|_| stopped())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(stopped()),
        }
    }

    fn spawn_task(&self, tp: &Tp) -> PartitionTask {
        let (tx, rx) = mpsc::channel(PARTITION_QUEUE);
        let (graph, generation) = self.rules.current();
        let worker = PartitionWorker {
            engine: {
                // Rectification periods run on the service's clock.
                let mut engine = Engine::new(graph);
                engine.set_clock(Clock::Wall(clock::now_secs()));
                engine
            },
            generation,
            rules: Arc::clone(&self.rules),
            producers: Arc::clone(&self.producers),
            topics: self.settings.topics.clone(),
            track_deliveries: !self.exactly_once(),
            pending: PendingDeliveries::new(!self.exactly_once()),
            settling: None,
            settlers: Vec::new(),
            cuts_in_flight: Arc::new(tokio::sync::Semaphore::new(CUTS_IN_FLIGHT)),
            last_cut: Instant::now(),
            born_ms: None,
            restoring: Some(health().restoring()),
            next_offset: None,
            tp: tp.clone(),
            settings: self.settings.clone(),
            rectifications: Arc::clone(&self.rectifications),
            probe: Arc::clone(&self.probe),
            skip_below: 0,
            written: None,
            staged: HashMap::new(),
            changed: false,
            failed: None,
            expired_at: i64::MIN,
            expire_every: expire_every(self.settings.state.ttl.secs()),
            expired_wall: Instant::now()
                .checked_sub(EXPIRE_WALL)
                .unwrap_or_else(Instant::now),
            ok_counters: HashMap::new(),
            now: clock::now_rfc3339(),
            now_secs: clock::now_secs(),
            now_read: Instant::now(),
            ttl: self.settings.state.ttl.secs(),
            lateness: self.settings.state.allowed_lateness.secs(),
            future_skew: self.settings.state.max_future_skew.secs(),
        };
        let handle = self.runtime.spawn(worker.run(rx));
        debug!(topic = %tp.0, partition = tp.1, "partition task started");
        PartitionTask { tx, handle }
    }

    /// Waits until every partition in `only` (all if `None`) has evaluated
    /// and delivered everything handed to it, then commits their offsets.
    /// A checkpoint already under way is finished first.
    pub fn checkpoint(&self, consumer: &LeveeConsumer, only: Option<&[Tp]>) -> anyhow::Result<()> {
        if let Some(earlier) = self.take_in_flight() {
            self.finish_checkpoint(consumer, earlier, true)?;
        }
        let started = self.start_checkpoint(only)?;
        self.finish_checkpoint(consumer, started, true).map(drop)
    }

    fn take_in_flight(&self) -> Option<InFlight> {
        self.state().in_flight.take()
    }

    /// At-least-once, on the consumer thread between polls: starts a
    /// checkpoint if none is under way and `due`, and commits the one under
    /// way once every partition has answered, without waiting for it. The
    /// partitions keep evaluating (and the consumer keeps fetching) while
    /// their output is being acknowledged.
    fn checkpoint_step(&self, consumer: &LeveeConsumer, due: bool) -> anyhow::Result<bool> {
        let mut started = false;
        let in_flight = match self.take_in_flight() {
            Some(f) => Some(f),
            None if due => {
                started = true;
                Some(self.start_checkpoint(None)?)
            }
            None => None,
        };
        if let Some(f) = in_flight {
            if let Some(f) = self.finish_checkpoint(consumer, f, false)? {
                self.state().in_flight = Some(f);
            }
        }
        Ok(started)
    }

    /// Sends a barrier down every partition channel of `only` (all if `None`).
    fn start_checkpoint(&self, only: Option<&[Tp]>) -> anyhow::Result<InFlight> {
        self.flush()?;
        let barriers: Vec<(Tp, mpsc::Sender<Work>)> = {
            let st = self.state();
            st.tasks
                .iter()
                .filter(|(tp, _)| only.is_none_or(|o| o.contains(tp)))
                .map(|(tp, t)| (tp.clone(), t.tx.clone()))
                .collect()
        };
        let mut f = InFlight::default();
        for (tp, tx) in barriers {
            let (reply, rx) = oneshot::channel();
            let barrier = Work::Barrier(reply);
            let sent = match tx.try_send(barrier) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(barrier)) => {
                    self.runtime.block_on(tx.send(barrier)).is_ok()
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            };
            if sent {
                f.waiting.push((tp, rx));
            }
        }
        Ok(f)
    }

    /// Collects the answers to a checkpoint's barriers (waiting for them if
    /// `block`, else giving the checkpoint back while some are missing),
    /// then commits the offsets they name.
    fn finish_checkpoint(
        &self,
        consumer: &LeveeConsumer,
        mut f: InFlight,
        block: bool,
    ) -> anyhow::Result<Option<InFlight>> {
        if block {
            let waiting = std::mem::take(&mut f.waiting);
            let replies = self.runtime.block_on(async {
                let mut replies = Vec::with_capacity(waiting.len());
                for (tp, rx) in waiting {
                    let r = rx
                        .await
                        .unwrap_or_else(|_| Err(anyhow!("partition task ended")));
                    replies.push((tp, r));
                }
                replies
            });
            f.replies.extend(replies);
        } else {
            let mut still = Vec::new();
            for (tp, mut rx) in std::mem::take(&mut f.waiting) {
                match rx.try_recv() {
                    Ok(r) => f.replies.push((tp, r)),
                    Err(oneshot::error::TryRecvError::Empty) => still.push((tp, rx)),
                    Err(oneshot::error::TryRecvError::Closed) => {
                        f.replies.push((tp, Err(anyhow!("partition task ended"))));
                    }
                }
            }
            if !still.is_empty() {
                f.waiting = still;
                return Ok(Some(f));
            }
        }
        let replies = f.replies;

        let mut offsets = TopicPartitionList::new();
        let mut to_record = Vec::new();
        let mut failure = None;
        {
            let st = self.state();
            for (tp, reply) in replies {
                match reply {
                    Ok(Some(next)) if st.committed.get(&tp) != Some(&next) => {
                        offsets.add_partition_offset(&tp.0, tp.1, Offset::Offset(next))?;
                        to_record.push((tp, next));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failure.get_or_insert(e.context(format!("partition {}[{}]", tp.0, tp.1)));
                    }
                }
            }
        }

        if self.exactly_once() {
            return self
                .finish_transaction(consumer, &offsets, to_record, failure)
                .map(|()| None);
        }
        if let Some(e) = failure {
            // At-least-once tasks retry deliveries themselves; this is a bug.
            return Err(e);
        }
        if offsets.count() == 0 {
            return Ok(None);
        }
        match consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => {
                let mut st = self.state();
                for (tp, next) in to_record {
                    st.committed.insert(tp, next);
                }
                Ok(None)
            }
            Err(e) => {
                // Not fatal: the output is delivered, the offsets get committed
                // next time (or the messages are redelivered: at-least-once).
                metrics::kafka_error(KafkaErrorKind::Commit);
                warn!(error = %e, "committing offsets failed; will retry");
                Ok(None)
            }
        }
    }

    fn finish_transaction(
        &self,
        consumer: &LeveeConsumer,
        offsets: &TopicPartitionList,
        to_record: Vec<(Tp, i64)>,
        failure: Option<anyhow::Error>,
    ) -> anyhow::Result<()> {
        if !self.state().in_transaction {
            return Ok(());
        }
        let result = match failure {
            Some(e) => Err(e),
            None => self.commit_transaction(consumer, offsets),
        };
        self.state().in_transaction = false;
        match result {
            Ok(()) => {
                let mut st = self.state();
                for (tp, next) in to_record {
                    st.committed.insert(tp, next);
                }
                Ok(())
            }
            Err(e) => {
                if let Some(KafkaError::Transaction(re)) = e.downcast_ref::<KafkaError>() {
                    if re.is_fatal() {
                        return Err(e.context("the transactional producer failed fatally"));
                    }
                }
                metrics::kafka_error(KafkaErrorKind::Transaction);
                warn!(error = %format!("{e:#}"), "transaction failed; aborting and re-reading from the last commit");
                self.abandon(consumer, None)
            }
        }
    }

    fn commit_transaction(
        &self,
        consumer: &LeveeConsumer,
        offsets: &TopicPartitionList,
    ) -> anyhow::Result<()> {
        if offsets.count() > 0 {
            let metadata: ConsumerGroupMetadata = consumer
                .group_metadata()
                .ok_or_else(|| anyhow!("the consumer has no group metadata"))?;
            self.producer
                .send_offsets_to_transaction(offsets, &metadata, CALL_TIMEOUT)?;
        }
        self.producer.commit_transaction(CALL_TIMEOUT)?;
        Ok(())
    }

    /// Drops uncommitted work: aborts the open transaction (exactly-once),
    /// stops the partition tasks and rewinds still-assigned partitions to
    /// their committed offsets, so nothing is lost.
    fn abandon(&self, consumer: &LeveeConsumer, only: Option<&[Tp]>) -> anyhow::Result<()> {
        // Its offsets are not committed: the partitions are redone from the
        // last commit.
        drop(self.take_in_flight());
        if self.exactly_once() && self.state().in_transaction {
            if let Err(e) = self.producer.abort_transaction(CALL_TIMEOUT) {
                if let KafkaError::Transaction(re) = &e {
                    if re.is_fatal() {
                        return Err(anyhow!(e).context("aborting the transaction"));
                    }
                }
                warn!(error = %e, "aborting the transaction failed");
            }
            self.state().in_transaction = false;
        }
        let stopped = self.stop_tasks(only);
        if consumer.assignment_lost() {
            return Ok(());
        }
        let assigned: Vec<Tp> = consumer
            .assignment()
            .map(|a| tp_list(&a))
            .unwrap_or_default();
        let committed = consumer.committed(CALL_TIMEOUT).ok();
        for tp in stopped.iter().filter(|tp| assigned.contains(tp)) {
            let offset = committed
                .as_ref()
                .and_then(|c| c.find_partition(&tp.0, tp.1))
                .map(|e| e.offset())
                .filter(|o| matches!(o, Offset::Offset(_)))
                .unwrap_or(Offset::Beginning);
            if let Err(e) = consumer.seek(&tp.0, tp.1, offset, CALL_TIMEOUT) {
                warn!(error = %e, topic = %tp.0, partition = tp.1, "rewinding failed");
            }
        }
        Ok(())
    }

    /// Stops the tasks of `only` (all if `None`); queued work is dropped.
    fn stop_tasks(&self, only: Option<&[Tp]>) -> Vec<Tp> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(tp, _)| only.is_some_and(|o| !o.contains(tp)));
        let mut st = self.state();
        let keys: Vec<Tp> = st
            .tasks
            .keys()
            .filter(|tp| only.is_none_or(|o| o.contains(tp)))
            .cloned()
            .collect();
        for tp in &keys {
            if let Some(task) = st.tasks.remove(tp) {
                task.handle.abort();
            }
            health().forget_partition(&tp.0, tp.1);
            st.committed.remove(tp);
        }
        keys
    }
}

/// Evaluates one partition's messages in order.
struct PartitionWorker {
    engine: Engine,
    generation: u64,
    rules: Arc<Rules>,
    producers: Arc<Producers>,
    topics: Topics,
    /// At-least-once: wait for the deliveries at each cut (and barrier).
    /// Exactly-once: the transaction commit does that.
    track_deliveries: bool,
    /// Deliveries of what was produced since the last cut (at-least-once;
    /// exactly-once: of everything, awaited by no one).
    pending: Arc<PendingDeliveries>,
    /// At-least-once: the background task of the last cut, which the next
    /// one waits for, and every cut's not yet finished (aborted with the task).
    settling: Option<JoinHandle<anyhow::Result<()>>>,
    settlers: Vec<tokio::task::AbortHandle>,
    /// Permits for cuts under way (see [`CUTS_IN_FLIGHT`]).
    cuts_in_flight: Arc<tokio::sync::Semaphore>,
    last_cut: Instant,
    /// The Kafka timestamp (ms) of the message whose output is being sent.
    born_ms: Option<i64>,
    /// Holds readiness back until the partition's state is restored.
    restoring: Option<Restoring>,
    next_offset: Option<i64>,
    tp: Tp,
    settings: Settings,
    rectifications: Arc<Rectifications>,
    probe: Arc<ChangelogProbe>,
    /// Offsets below this are already in the restored state.
    skip_below: i64,
    /// The partition record last written to the changelog.
    written: Option<Meta>,
    /// At-least-once: changelog (and profile) records of subjects that
    /// changed since the last cut, serialized as they change and written
    /// at the next cut with the partition record, so the changelog never
    /// holds state ahead of its partition record. Exactly-once sends them
    /// at once, into the open transaction.
    staged: HashMap<String, (OutRecord, Option<OutRecord>)>,
    /// Subjects changed since the last barrier.
    changed: bool,
    /// The partition's state could not be restored: why.
    failed: Option<String>,
    /// The watermark at the last expiry.
    expired_at: i64,
    /// Event time (seconds) between two expiries: see [`expire_every`].
    expire_every: i64,
    /// When the last expiry ran (wall clock): see [`EXPIRE_WALL`].
    expired_wall: Instant,
    /// `levee_events_total{outcome="ok"}` of this partition's topic, by event type.
    ok_counters: HashMap<String, prometheus::IntCounter>,
    /// The wall-clock time (RFC 3339, ms) alerts are detected at, and when
    /// it was read: read again once a millisecond has passed, not per event.
    now: String,
    /// The same in epoch seconds: deadlines and escalation run on it.
    now_secs: i64,
    now_read: Instant,
    ttl: i64,
    lateness: i64,
    /// `state.max_future_skew` in seconds.
    future_skew: i64,
}

impl Drop for PartitionWorker {
    /// A stopped task's cuts still under way are dropped with it: the
    /// partition is redone from its last commit (by this instance or the
    /// new owner), and a late write must not land after the new owner's.
    fn drop(&mut self) {
        for h in &self.settlers {
            h.abort();
        }
    }
}

/// The least wall-clock time between two scans for idle subjects: a
/// backlog of months of events is read in seconds, and a scan per
/// [`expire_every`] of its event time would still visit every subject
/// dozens of times a second.
const EXPIRE_WALL: Duration = Duration::from_secs(1);

/// How far the watermark moves (seconds of event time) between two scans
/// for idle subjects: an hour, or a 64th of the TTL if that is longer (a
/// subject is forgotten at most 1/64 of the TTL late). Each scan visits
/// every subject of the partition; at every hour, a stream spanning months
/// of event time spent an eighth of its CPU time scanning.
fn expire_every(ttl: i64) -> i64 {
    (ttl / 64).max(3600)
}

/// Why a message goes to the DLQ: bad input, or too late.
struct Rejected {
    kind: &'static str,
    reason: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.kind)
    }
}

impl PartitionWorker {
    async fn run(mut self, mut rx: mpsc::Receiver<Work>) {
        self.restore().await;
        while let Some(work) = rx.recv().await {
            match work {
                Work::Messages(batch) => {
                    for m in batch {
                        self.message(&m).await;
                    }
                    // State changes serialized as they come, not all at
                    // the barrier.
                    for r in self.stage() {
                        self.send(r).await;
                    }
                    if self.track_deliveries
                        && self.failed.is_none()
                        && self.last_cut.elapsed() >= CUT_INTERVAL
                    {
                        self.cut(None).await;
                    }
                }
                Work::Barrier(reply) => {
                    if let Some(why) = &self.failed {
                        let _ = reply.send(Err(anyhow!("{why}")));
                        continue;
                    }
                    if !self.track_deliveries {
                        // Exactly-once: the transaction commit waits for them.
                        for r in self.changelog_records() {
                            self.send(r).await;
                        }
                        let _ = reply.send(Ok(self.next_offset));
                        continue;
                    }
                    // At-least-once: the changelog records go with the cut,
                    // after the output before them is acknowledged.
                    self.cut(Some(reply)).await;
                }
                Work::Rectify(id, status) => {
                    if self.engine.rectify(&id, status) {
                        debug!(alert_id = %id, ?status, topic = %self.tp.0, partition = self.tp.1, "rectification applied");
                    }
                }
                Work::Tick => {
                    // Alerts raised on the service's clock escalate on it.
                    self.refresh_now();
                    let now = self.now_secs;
                    let escalated = self.engine.tick(now, &self.now.clone());
                    for r in self.alert_records(escalated) {
                        self.send(r).await;
                    }
                }
            }
        }
    }

    /// At-least-once: hands what was produced since the last cut, and the
    /// changelog records of the state at this point (with the partition
    /// record), to a background task that waits for the former (and for the
    /// cut before), only then writes the latter and waits for them, then
    /// answers `reply` (a barrier) with the offset to commit. So the
    /// changelog is written little by little, never holds the effect of an
    /// event whose output is not acknowledged, and this task goes on with
    /// the next messages meanwhile.
    async fn cut(&mut self, reply: Option<oneshot::Sender<Reply>>) {
        // Back-pressure: at most CUTS_IN_FLIGHT cuts wait for their
        // acknowledgements; then this task waits before evaluating more
        // (and its queue, then the consumer thread, wait in turn).
        let Ok(permit) = Arc::clone(&self.cuts_in_flight).acquire_owned().await else {
            return;
        };
        self.last_cut = Instant::now();
        let records = self.changelog_records();
        if records.is_empty() && self.pending.is_empty() && reply.is_none() {
            return;
        }
        let pending = std::mem::replace(&mut self.pending, PendingDeliveries::new(true));
        let before = self.settling.take();
        let producers = Arc::clone(&self.producers);
        let next = self.next_offset;
        let (tp, barrier) = (self.tp.clone(), reply.is_some());
        let handle = tokio::spawn(async move {
            let r = async {
                let t0 = Instant::now();
                if let Some(h) = before {
                    h.await.map_err(|e| anyhow!("{e}"))??;
                }
                let t1 = Instant::now();
                pending.wait_delivered(&*producers).await;
                let t2 = Instant::now();
                let written = PendingDeliveries::new(true);
                for r in &records {
                    produce(&*producers, r, &written).await;
                }
                let (count, t3) = (records.len(), Instant::now());
                drop(records);
                written.wait_delivered(&*producers).await;
                debug!(
                    topic = %tp.0, partition = tp.1, barrier, records = count,
                    wait_before_ms = (t1 - t0).as_millis() as u64,
                    wait_outputs_ms = (t2 - t1).as_millis() as u64,
                    produce_ms = (t3 - t2).as_millis() as u64,
                    wait_written_ms = t3.elapsed().as_millis() as u64,
                    "cut written"
                );
                anyhow::Ok(())
            }
            .await;
            drop(permit);
            if let Some(reply) = reply {
                let _ = reply.send(match &r {
                    Ok(()) => Ok(next),
                    Err(e) => Err(anyhow!("{e:#}")),
                });
            }
            r
        });
        self.settlers.retain(|h| !h.is_finished());
        self.settlers.push(handle.abort_handle());
        self.settling = Some(handle);
    }

    async fn message(&mut self, m: &OwnedMessage) {
        if self.next_offset.is_none() {
            debug!(
                topic = %self.tp.0,
                partition = self.tp.1,
                since_start_ms = crate::service::since_start(),
                "start-up: first message of the partition"
            );
        }
        if self.failed.is_some() || m.offset() < self.skip_below {
            // Already in the restored state, its output delivered.
            self.next_offset = Some(m.offset() + 1);
            return;
        }
        self.refresh_rules();
        let mut records = self.evaluate(m);
        records.extend(self.after_event());
        self.born_ms = m.timestamp().to_millis();
        for r in records {
            self.send(r).await;
        }
        self.born_ms = None;
        self.next_offset = Some(m.offset() + 1);
    }

    /// Reads the partition's state back from the changelog (retrying while
    /// Kafka is away), then applies the rectifications already known.
    async fn restore(&mut self) {
        // A topic just created may not have its leader known yet: retry soon.
        let mut backoff = Duration::from_millis(50);
        let started = Instant::now();
        let restored = loop {
            let (settings, (topic, partition)) = (self.settings.clone(), self.tp.clone());
            let probe = Arc::clone(&self.probe);
            let r = tokio::task::spawn_blocking(move || {
                pstate::restore(&settings, &probe, &topic, partition)
            })
            .await
            .map_err(|e| anyhow!("restoring: {e}"))
            .and_then(|r| r);
            match r {
                Ok(r) => break r,
                Err(e) if e.is::<pstate::Misconfigured>() => {
                    error!(error = %format!("{e:#}"), topic = %self.tp.0, partition = self.tp.1, "cannot restore the partition's state");
                    self.failed = Some(format!("{e:#}"));
                    self.restoring = None;
                    return;
                }
                Err(e) => {
                    warn!(error = %format!("{e:#}"), topic = %self.tp.0, partition = self.tp.1, "restoring the partition's state failed; retrying");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        };
        self.restoring = None;
        let subjects = restored.subjects.len();
        let mut meta = restored.meta.unwrap_or_default();
        self.refresh_now();
        let bound = self.now_secs.saturating_add(self.future_skew);
        if meta.watermark > bound {
            // Written before the bound existed, or by an instance whose
            // clock ran ahead: it would make every later event late.
            warn!(
                topic = %self.tp.0,
                partition = self.tp.1,
                watermark = meta.watermark,
                clamped_to = bound,
                "restored watermark is beyond state.max_future_skew; clamped"
            );
            metrics::watermark_clamped();
            meta.watermark = bound;
        }
        self.engine
            .restore_subjects(restored.subjects, meta.watermark);
        for (subject, profile) in &self.engine.ledger().profiles {
            health().put_profile(&self.tp.0, self.tp.1, subject, Some(profile));
        }
        self.skip_below = meta.next_offset;
        self.written = restored.meta;
        let ids: Vec<String> = self.engine.ledger().open_ids().map(str::to_owned).collect();
        for (id, status) in self.rectifications.lookup(ids.iter().map(String::as_str)) {
            self.engine.rectify(&id, status);
        }
        info!(
            topic = %self.tp.0,
            partition = self.tp.1,
            subjects,
            records = restored.records,
            next_offset = meta.next_offset,
            elapsed_ms = started.elapsed().as_millis() as u64,
            since_start_ms = crate::service::since_start(),
            "partition state restored"
        );
    }

    /// Reads the service's clock into `now` if a millisecond has passed.
    fn refresh_now(&mut self) {
        if self.now_read.elapsed() >= Duration::from_millis(1) {
            let now = clock::now();
            self.now = now.to_rfc3339_opts(SecondsFormat::Millis, true);
            self.now_secs = now.timestamp();
            self.now_read = Instant::now();
            self.engine.set_clock(Clock::Wall(self.now_secs));
        }
    }

    /// After an event: escalations now due (on the clock that raised the
    /// alerts, not the event's), rectifications that came before their
    /// alerts, expiry of idle subjects.
    fn after_event(&mut self) -> Vec<OutRecord> {
        self.refresh_now();
        let watermark = self.engine.watermark();
        let now = self.now_secs;
        let escalated = self.engine.tick(now, &self.now.clone());
        let out = self.alert_records(escalated);
        if watermark.saturating_sub(self.expired_at) >= self.expire_every
            && self.expired_wall.elapsed() >= EXPIRE_WALL
        {
            self.engine.expire(self.ttl);
            self.expired_at = watermark;
            self.expired_wall = Instant::now();
        }
        out
    }

    /// Alerts as records to their tier topics; applies rectifications that
    /// arrived before them.
    fn alert_records(&mut self, alerts: Vec<levee_engine::Alert>) -> Vec<OutRecord> {
        let known = self
            .rectifications
            .lookup(alerts.iter().map(|a| a.alert_id.as_str()));
        let mut out = Vec::with_capacity(alerts.len());
        for alert in alerts {
            metrics::alert_raised(&alert);
            match serde_json::to_vec(&alert) {
                Ok(payload) => out.push(OutRecord {
                    topic: self.topics.tier(alert.tier).to_owned(),
                    key: Some(alert.subject.into_bytes()),
                    payload,
                    headers: None,
                    partition: None,
                    tombstone: false,
                }),
                Err(e) => error!(error = %e, "an alert could not be serialized"),
            }
        }
        for (id, status) in known {
            self.engine.rectify(&id, status);
        }
        out
    }

    /// Serializes the subjects changed since the last call: staged until
    /// the barrier (at-least-once), or returned to be sent now (exactly-once).
    fn stage(&mut self) -> Vec<OutRecord> {
        let dirty = self.engine.take_dirty_subjects();
        if dirty.is_empty() {
            return Vec::new();
        }
        self.changed = true;
        let (topic, partition) = (&self.tp.0, self.tp.1);
        let send_now = !self.track_deliveries;
        let mut out = Vec::new();
        let snapshots = self.engine.snapshot(dirty);
        health().put_profiles(
            topic,
            partition,
            snapshots
                .iter()
                .map(|(subject, snap)| (subject.as_str(), snap.profile.as_ref())),
        );
        for (subject, snap) in snapshots {
            let profile = snap.profile.as_ref().and_then(|profile| {
                let payload = serde_json::to_vec(profile).ok()?;
                Some(OutRecord {
                    topic: self.topics.profiles.clone(),
                    key: Some(subject.clone().into_bytes()),
                    payload,
                    headers: None,
                    partition: None,
                    tombstone: false,
                })
            });
            let key = pstate::subject_key(topic, partition, &subject).into_bytes();
            let (payload, tombstone) = if snap.is_empty() {
                (Vec::new(), true)
            } else {
                match serde_json::to_vec(&snap) {
                    Ok(p) => (p, false),
                    Err(e) => {
                        error!(error = %e, "a subject's state could not be serialized");
                        continue;
                    }
                }
            };
            let record = OutRecord {
                topic: self.topics.changelog.clone(),
                key: Some(key),
                payload,
                headers: None,
                partition: Some(partition),
                tombstone,
            };
            if send_now {
                out.extend(profile);
                out.push(record);
            } else {
                self.staged.insert(subject, (record, profile));
            }
        }
        out
    }

    /// The changelog records of what changed since the last barrier (those
    /// not sent yet), the changed profiles, and the partition record.
    fn changelog_records(&mut self) -> Vec<OutRecord> {
        let mut out = self.stage();
        // Nothing evaluated, applied or escalated since the restore: nothing
        // to write (and, exactly-once, no transaction open to write in).
        if !self.changed && self.next_offset.is_none() {
            return out;
        }
        let meta = Meta {
            next_offset: self.next_offset.unwrap_or(self.skip_below),
            watermark: self.engine.watermark(),
        };
        let unchanged = self
            .written
            .is_some_and(|w| w.next_offset == meta.next_offset && w.watermark == meta.watermark);
        if !self.changed && unchanged {
            return out;
        }
        self.changed = false;
        let (topic, partition) = (&self.tp.0, self.tp.1);
        out.reserve(2 * self.staged.len() + 1);
        for (_, (record, profile)) in self.staged.drain() {
            out.extend(profile);
            out.push(record);
        }
        if let Ok(payload) = serde_json::to_vec(&meta) {
            out.push(OutRecord {
                topic: self.topics.changelog.clone(),
                key: Some(pstate::meta_key(topic, partition).into_bytes()),
                payload,
                headers: None,
                partition: Some(partition),
                tombstone: false,
            });
        }
        self.written = Some(meta);
        out
    }

    /// Rules are swapped only here, between messages; the state stays.
    fn refresh_rules(&mut self) {
        if self.rules.generation() != self.generation {
            let (graph, generation) = self.rules.current();
            self.engine.set_graph(graph);
            self.generation = generation;
        }
    }

    /// Decodes, rejects an event stamped in the future or later than the
    /// allowed lateness (neither touches event time or state), evaluates.
    fn decode_checked(&mut self, payload: &[u8]) -> Result<levee_engine::EvalStats, Rejected> {
        self.refresh_now();
        let checked = self
            .engine
            .decode(payload)
            .and_then(|()| self.engine.check_future(self.now_secs, self.future_skew));
        if let Err(bad) = checked {
            return Err(Rejected {
                kind: bad.kind.as_str(),
                reason: bad.reason,
            });
        }
        let watermark = self.engine.watermark();
        if let Some(at) = self.engine.envelope().occurred {
            if at.timestamp() < watermark.saturating_sub(self.lateness) {
                let mark = chrono::DateTime::from_timestamp(watermark, 0)
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                    .unwrap_or_default();
                return Err(Rejected {
                    kind: "late",
                    reason: format!(
                        "late event: occurred_at {} is more than state.allowed_lateness ({}) behind the partition's watermark {mark}",
                        self.engine.envelope().occurred_at,
                        self.settings.state.allowed_lateness
                    ),
                });
            }
        }
        Ok(self.engine.run())
    }

    fn evaluate(&mut self, m: &OwnedMessage) -> Vec<OutRecord> {
        let payload = m.payload().unwrap_or_default();
        let mut out = Vec::new();
        let started = Instant::now();
        let evaluated = self.decode_checked(payload);
        match &evaluated {
            Ok(_) => {
                let event_type = self.engine.envelope().event_type.as_str();
                match self.ok_counters.get(event_type) {
                    Some(c) => c.inc(),
                    None => {
                        let c = metrics::events_ok(m.topic(), event_type);
                        c.inc();
                        self.ok_counters.insert(event_type.to_owned(), c);
                    }
                }
                metrics::evaluated(started.elapsed());
            }
            Err(bad) => metrics::event_invalid(m.topic(), payload, self.engine.graph(), bad.kind),
        }
        match evaluated {
            Ok(_) => {
                let verdict = self.engine.verdict();
                if self.engine.hits().is_empty() && verdict.is_none() {
                    return out;
                }
                self.refresh_now();
                let hits = self.engine.hits();
                let source = Source::Kafka {
                    topic: m.topic().to_owned(),
                    partition: m.partition(),
                    offset: m.offset(),
                };
                let now = &self.now;
                let alerts: Vec<_> = hits
                    .iter()
                    .map(|&hit| self.engine.alert(hit, &source, now))
                    .collect();
                out.extend(self.alert_records(alerts));
                if let Some(verdict) = verdict {
                    match serde_json::to_vec(&verdict) {
                        Ok(payload) => out.push(OutRecord {
                            topic: self.topics.decisions.clone(),
                            key: Some(verdict.event_id.into_bytes()),
                            payload,
                            headers: None,
                            partition: None,
                            tombstone: false,
                        }),
                        Err(e) => error!(error = %e, "a verdict could not be serialized"),
                    }
                }
            }
            Err(bad) => {
                debug!(topic = m.topic(), partition = m.partition(), offset = m.offset(), reason = %bad, "bad input to the DLQ");
                let partition = m.partition().to_string();
                let offset = m.offset().to_string();
                let reason = bad.to_string();
                let kind = bad.kind;
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "levee.error",
                        value: Some(reason.as_str()),
                    })
                    .insert(Header {
                        key: "levee.error.kind",
                        value: Some(kind),
                    })
                    .insert(Header {
                        key: "levee.source.topic",
                        value: Some(m.topic()),
                    })
                    .insert(Header {
                        key: "levee.source.partition",
                        value: Some(partition.as_str()),
                    })
                    .insert(Header {
                        key: "levee.source.offset",
                        value: Some(offset.as_str()),
                    });
                out.push(OutRecord {
                    topic: self.topics.dlq.clone(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                    headers: Some(headers),
                    partition: None,
                    tombstone: false,
                });
            }
        }
        out
    }

    async fn send(&mut self, r: OutRecord) {
        let sink = &*self.producers;
        match self.born_ms.filter(|_| self.is_alert_topic(&r.topic)) {
            Some(born) => {
                produce(sink, &r, &PendingDeliveries::for_alert(&self.pending, born)).await
            }
            None => produce(sink, &r, &self.pending).await,
        }
    }

    fn is_alert_topic(&self, topic: &str) -> bool {
        [&self.topics.tier1, &self.topics.tier2, &self.topics.tier3]
            .iter()
            .any(|t| t.as_str() == topic)
    }
}

/// The consumer thread: subscribe, poll, dispatch, checkpoint; on `stop`,
/// a last checkpoint, then leave the group. Returns once the consumer is closed.
pub fn consume(
    consumer: LeveeConsumer,
    interval: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let pipeline = Arc::clone(consumer.context());
    let topics: Vec<&str> = pipeline
        .settings
        .topics
        .inputs
        .iter()
        .map(String::as_str)
        .collect();
    // Rectifications first: a starting instance knows those already made
    // before it evaluates (and escalates) anything.
    let mut rectifications = RectificationReader::new(&pipeline.settings)?;
    let known = rectifications.catch_up(&pipeline.rectifications, Duration::from_secs(30));
    info!(
        rectifications = known,
        since_start_ms = crate::service::since_start(),
        "rectifications read"
    );
    let tick_every = pipeline.settings.state.tick_interval.as_duration();
    let mut last_tick = Instant::now();
    consumer
        .subscribe(&topics)
        .context("subscribing to the input topics")?;
    debug!(
        since_start_ms = crate::service::since_start(),
        "start-up: subscribed"
    );
    let mut first_message = true;
    let mut last_checkpoint = Instant::now();
    let mut last_error_log: Option<Instant> = None;
    let result = loop {
        if stop.load(Ordering::Acquire) {
            break Ok(());
        }
        if let Some(e) = pipeline.take_fatal() {
            break Err(e);
        }
        // A checkpoint under way is looked at after every poll.
        let wait = if pipeline.state().in_flight.is_some() {
            Duration::from_millis(5)
        } else {
            Duration::from_millis(100)
        };
        match consumer.poll(wait) {
            None => {}
            Some(Ok(m)) => {
                if first_message {
                    first_message = false;
                    debug!(
                        since_start_ms = crate::service::since_start(),
                        "start-up: first message polled"
                    );
                }
                pipeline.hold(m.detach());
                // What else is fetched already, handed over in one go.
                for _ in 1..POLL_BATCH {
                    match consumer.poll(Duration::ZERO) {
                        Some(Ok(m)) => pipeline.hold(m.detach()),
                        Some(Err(e)) => {
                            metrics::kafka_error(KafkaErrorKind::Consume);
                            debug!(error = %e, "consuming failed; retrying");
                            break;
                        }
                        None => break,
                    }
                }
                if let Err(e) = pipeline.flush() {
                    break Err(e);
                }
            }
            Some(Err(e)) => {
                metrics::kafka_error(KafkaErrorKind::Consume);
                // librdkafka reconnects by itself; say so, but not in a flood.
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    warn!(error = %e, "consuming failed; retrying");
                    last_error_log = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let mut failed = None;
        for _ in 0..256 {
            match rectifications.poll(Duration::ZERO) {
                None => break,
                Some(RectMessage::Rectify(id, status)) => {
                    if let Err(e) = pipeline.rectification(&id, status) {
                        failed = Some(e);
                        break;
                    }
                }
                Some(RectMessage::Bad(reason)) => warn!("bad rectification skipped: {reason}"),
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
        if !tick_every.is_zero() && last_tick.elapsed() >= tick_every {
            last_tick = Instant::now();
            if let Err(e) = pipeline.broadcast(|| Work::Tick) {
                break Err(e);
            }
        }
        let due = last_checkpoint.elapsed() >= interval;
        if pipeline.exactly_once() {
            if due {
                if let Err(e) = pipeline.checkpoint(&consumer, None) {
                    break Err(e);
                }
                last_checkpoint = Instant::now();
            }
        } else {
            match pipeline.checkpoint_step(&consumer, due) {
                Ok(true) => last_checkpoint = Instant::now(),
                Ok(false) => {}
                Err(e) => break Err(e),
            }
        }
    };
    if result.is_ok() {
        pipeline.checkpoint(&consumer, None)?;
        info!("in-flight work delivered and committed; leaving the group");
    }
    // Closing the consumer revokes the partitions (one more checkpoint,
    // nothing left to do) and leaves the group.
    drop(consumer);
    result?;
    match pipeline.take_fatal() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
