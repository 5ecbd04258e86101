//! The Kafka pipeline: one consumer thread, one tokio task per assigned
//! partition, one shared producer.
//!
//! The consumer thread polls the group consumer and hands each message to its
//! partition's task over a bounded channel, so a partition's events are
//! evaluated in order while partitions run concurrently. Every
//! `commit_interval_ms`, and before partitions are revoked or the service
//! stops, the thread takes a *checkpoint*: it sends a barrier down every
//! partition channel; a task answers once everything before the barrier has
//! been evaluated and (at-least-once) every record it produced is
//! acknowledged by the broker. Only then are the offsets committed
//! (at-least-once), or sent to the transaction that is then committed
//! (exactly-once). So a committed offset never runs ahead of its output.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use chrono::{SecondsFormat, Utc};
use levee_engine::{Engine, Source};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::config::{Delivery, Settings, Topics};
use super::reload::Rules;

/// How long one Kafka call made while holding up the pipeline may take
/// before it is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages queued per partition task.
const PARTITION_QUEUE: usize = 1024;
/// Unacknowledged records a partition task keeps before it waits for some.
const MAX_PENDING: usize = 8192;

/// librdkafka's logs and errors, as tracing events.
#[derive(Debug, Default, Clone, Copy)]
pub struct KafkaLog;

impl ClientContext for KafkaLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&error, reason);
    }
}

/// Client errors repeat at every reconnect attempt while a broker is away
/// (librdkafka retries by itself): one line per 10 seconds is enough.
fn log_client_error(error: &KafkaError, reason: &str) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let last = LAST.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 10
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        warn!(target: "levee::kafka", %error, "kafka client error (retrying): {reason}");
    } else {
        debug!(target: "levee::kafka", %error, "kafka client error (retrying): {reason}");
    }
}

fn log_librdkafka(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => warn!(target: "levee::kafka", facility = fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            info!(target: "levee::kafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Debug => debug!(target: "levee::kafka", facility = fac, "{message}"),
    }
}

pub type LeveeProducer = FutureProducer<KafkaLog>;
pub type LeveeConsumer = BaseConsumer<Pipeline>;

/// The producer configuration: levee's settings, then the passthrough.
pub fn producer_config(settings: &Settings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.kafka.brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("client.id", format!("levee-{}", settings.instance_id()));
    if settings.delivery == Delivery::ExactlyOnce {
        c.set("transactional.id", settings.transactional_id());
    }
    for (k, v) in &settings.kafka.producer {
        c.set(k, v.to_string());
    }
    c
}

/// The consumer configuration: levee's settings, then the passthrough.
pub fn consumer_config(settings: &Settings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.kafka.brokers)
        .set("group.id", &settings.kafka.group_id)
        .set("client.id", format!("levee-{}", settings.instance_id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    for (k, v) in &settings.kafka.consumer {
        c.set(k, v.to_string());
    }
    c
}

/// One record to produce; kept until acknowledged so it can be sent again.
#[derive(Debug, Clone)]
struct OutRecord {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Option<OwnedHeaders>,
}

enum Work {
    Message(OwnedMessage),
    /// Answer with the next offset to commit once everything before is done.
    Barrier(oneshot::Sender<anyhow::Result<Option<i64>>>),
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
}

/// The consumer's context and everything the consumer thread shares with it.
pub struct Pipeline {
    settings: Settings,
    producer: Arc<LeveeProducer>,
    rules: Arc<Rules>,
    runtime: Handle,
    state: Mutex<State>,
    /// A fatal error (exactly-once: fenced) noticed inside a callback.
    fatal: Mutex<Option<anyhow::Error>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl ClientContext for Pipeline {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&error, reason);
    }
}

impl ConsumerContext for Pipeline {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
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
                info!(partitions = %show(&tp_list(tpl)), "partitions assigned");
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
        rules: Arc<Rules>,
        runtime: Handle,
    ) -> Self {
        Pipeline {
            settings,
            producer,
            rules,
            runtime,
            state: Mutex::new(State::default()),
            fatal: Mutex::new(None),
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

    /// Hands one message to its partition's task (starting it if needed).
    fn dispatch(&self, message: OwnedMessage) -> anyhow::Result<()> {
        if self.exactly_once() {
            let mut st = self.state();
            if !st.in_transaction {
                self.producer
                    .begin_transaction()
                    .context("beginning a transaction")?;
                st.in_transaction = true;
            }
        }
        let tp = (message.topic().to_owned(), message.partition());
        let tx = {
            let mut st = self.state();
            let task = st
                .tasks
                .entry(tp.clone())
                .or_insert_with(|| self.spawn_task(&tp));
            task.tx.clone()
        };
        self.runtime
            .block_on(tx.send(Work::Message(message)))
            .map_err(|_| anyhow!("the task of partition {}[{}] has stopped", tp.0, tp.1))
    }

    fn spawn_task(&self, tp: &Tp) -> PartitionTask {
        let (tx, rx) = mpsc::channel(PARTITION_QUEUE);
        let (graph, generation) = self.rules.current();
        let worker = PartitionWorker {
            engine: Engine::new(graph),
            generation,
            rules: Arc::clone(&self.rules),
            producer: Arc::clone(&self.producer),
            topics: self.settings.topics.clone(),
            track_deliveries: !self.exactly_once(),
            pending: Vec::new(),
            next_offset: None,
        };
        let handle = self.runtime.spawn(worker.run(rx));
        debug!(topic = %tp.0, partition = tp.1, "partition task started");
        PartitionTask { tx, handle }
    }

    /// Waits until every partition in `only` (all if `None`) has evaluated
    /// and delivered everything handed to it, then commits their offsets.
    pub fn checkpoint(&self, consumer: &LeveeConsumer, only: Option<&[Tp]>) -> anyhow::Result<()> {
        let barriers: Vec<(Tp, mpsc::Sender<Work>)> = {
            let st = self.state();
            st.tasks
                .iter()
                .filter(|(tp, _)| only.is_none_or(|o| o.contains(tp)))
                .map(|(tp, t)| (tp.clone(), t.tx.clone()))
                .collect()
        };
        let replies = self.runtime.block_on(async {
            let mut waits = Vec::with_capacity(barriers.len());
            for (tp, tx) in barriers {
                let (reply, rx) = oneshot::channel();
                if tx.send(Work::Barrier(reply)).await.is_ok() {
                    waits.push((tp, rx));
                }
            }
            let mut replies = Vec::with_capacity(waits.len());
            for (tp, rx) in waits {
                let r = rx
                    .await
                    .unwrap_or_else(|_| Err(anyhow!("partition task ended")));
                replies.push((tp, r));
            }
            replies
        });

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
            return self.finish_transaction(consumer, &offsets, to_record, failure);
        }
        if let Some(e) = failure {
            // At-least-once tasks retry deliveries themselves; this is a bug.
            return Err(e);
        }
        if offsets.count() == 0 {
            return Ok(());
        }
        match consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => {
                let mut st = self.state();
                for (tp, next) in to_record {
                    st.committed.insert(tp, next);
                }
                Ok(())
            }
            Err(e) => {
                // Not fatal: the output is delivered, the offsets get committed
                // next time (or the messages are redelivered: at-least-once).
                warn!(error = %e, "committing offsets failed; will retry");
                Ok(())
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
    producer: Arc<LeveeProducer>,
    topics: Topics,
    /// At-least-once: keep delivery futures and wait for them at barriers.
    /// Exactly-once: the transaction commit does that.
    track_deliveries: bool,
    pending: Vec<(DeliveryFuture, OutRecord)>,
    next_offset: Option<i64>,
}

impl PartitionWorker {
    async fn run(mut self, mut rx: mpsc::Receiver<Work>) {
        while let Some(work) = rx.recv().await {
            match work {
                Work::Message(m) => {
                    self.refresh_rules();
                    let records = self.evaluate(&m);
                    for r in records {
                        self.send(r).await;
                    }
                    self.next_offset = Some(m.offset() + 1);
                    if self.pending.len() >= MAX_PENDING {
                        self.settle().await;
                    }
                }
                Work::Barrier(reply) => {
                    self.settle().await;
                    let _ = reply.send(Ok(self.next_offset));
                }
            }
        }
    }

    /// Rules are swapped only here, between messages.
    fn refresh_rules(&mut self) {
        if self.rules.generation() != self.generation {
            let (graph, generation) = self.rules.current();
            self.engine = Engine::new(graph);
            self.generation = generation;
        }
    }

    fn evaluate(&mut self, m: &OwnedMessage) -> Vec<OutRecord> {
        let payload = m.payload().unwrap_or_default();
        let mut out = Vec::new();
        match self.engine.evaluate(payload) {
            Ok(_) => {
                let hits = self.engine.hits();
                if hits.is_empty() && self.engine.verdict().is_none() {
                    return out;
                }
                let source = Source::Kafka {
                    topic: m.topic().to_owned(),
                    partition: m.partition(),
                    offset: m.offset(),
                };
                let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
                for &hit in hits {
                    let alert = self.engine.alert(hit, &source, &now);
                    match serde_json::to_vec(&alert) {
                        Ok(payload) => out.push(OutRecord {
                            topic: self.topics.tier(alert.tier).to_owned(),
                            key: Some(alert.subject.into_bytes()),
                            payload,
                            headers: None,
                        }),
                        Err(e) => error!(error = %e, "an alert could not be serialized"),
                    }
                }
                if let Some(verdict) = self.engine.verdict() {
                    match serde_json::to_vec(&verdict) {
                        Ok(payload) => out.push(OutRecord {
                            topic: self.topics.decisions.clone(),
                            key: Some(verdict.event_id.into_bytes()),
                            payload,
                            headers: None,
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
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "levee.error",
                        value: Some(reason.as_str()),
                    })
                    .insert(Header {
                        key: "levee.error.kind",
                        value: Some(bad.kind.as_str()),
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
                });
            }
        }
        out
    }

    async fn send(&mut self, r: OutRecord) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let mut rec: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&r.topic).payload(r.payload.as_slice());
            if let Some(k) = &r.key {
                rec = rec.key(k.as_slice());
            }
            if let Some(h) = &r.headers {
                rec = rec.headers(h.clone());
            }
            match self.producer.send_result(rec) {
                Ok(future) => {
                    if self.track_deliveries {
                        self.pending.push((future, r));
                    }
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {}
                Err((e, _)) => {
                    warn!(error = %e, topic = %r.topic, "producing failed; retrying");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Waits until every record produced so far is acknowledged, sending
    /// again what the broker did not take.
    async fn settle(&mut self) {
        let mut backoff = Duration::from_millis(100);
        while !self.pending.is_empty() {
            let mut failed = Vec::new();
            for (future, record) in self.pending.drain(..) {
                match future.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => {
                        warn!(error = %e, topic = %record.topic, "a record was not delivered; sending it again");
                        failed.push(record);
                    }
                    Err(_) => failed.push(record),
                }
            }
            if failed.is_empty() {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
            for r in failed {
                self.send(r).await;
            }
        }
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
    consumer
        .subscribe(&topics)
        .context("subscribing to the input topics")?;
    let mut last_checkpoint = Instant::now();
    let mut last_error_log: Option<Instant> = None;
    let result = loop {
        if stop.load(Ordering::Acquire) {
            break Ok(());
        }
        if let Some(e) = pipeline.take_fatal() {
            break Err(e);
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                if let Err(e) = pipeline.dispatch(m.detach()) {
                    break Err(e);
                }
            }
            Some(Err(e)) => {
                // librdkafka reconnects by itself; say so, but not in a flood.
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    warn!(error = %e, "consuming failed; retrying");
                    last_error_log = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if last_checkpoint.elapsed() >= interval {
            if let Err(e) = pipeline.checkpoint(&consumer, None) {
                break Err(e);
            }
            last_checkpoint = Instant::now();
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
