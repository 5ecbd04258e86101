//! One input partition's task: it owns the partition's [`Engine`] and so
//! its state, and takes [`Work`] from its channel in order.
//!
//! Before its first event it restores the partition's state (`restore.rs`),
//! clamping a restored watermark that is beyond the future bound, and
//! applies the rectifications already known. Then per message: skip it if
//! the restored state already holds it; otherwise decode it, dead-letter it
//! if it is bad, stamped too far in the future or too late, else evaluate
//! it and produce its alerts and verdict; then escalate what is due and
//! expire idle subjects. Changed subjects go to the changelog
//! (`changelog.rs`): at-least-once in a cut every 100 ms and at every
//! barrier, after the output before is acknowledged; exactly-once at once,
//! into the open transaction. A barrier is answered with the next offset to
//! commit once everything before it is done.

use std::sync::Arc;
use std::time::{Duration, Instant};

use levee_engine::{Clock, Engine, EvalStats, Source};
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use super::changelog::{Changed, Cuts, Meta, Staging};
use super::delivery::{produce, OutRecord, PendingDeliveries, Sink};
use super::error::{report, PipelineError, Retry};
use super::lifecycle::{Lifecycle, Outputs};
use super::pacing::{Expiry, Now};
use super::people;
use super::people::copies::{copies, Entry};
use super::records::{self, Rejected};
use super::rectify::Rectifications;
use super::repartition::{self, Upstreams};
use super::requests;
use super::restore::Restore;
use super::shadow::Shadow;
use super::work::{BarrierReply, Work};
use super::TopicPartition;
use crate::service::config::{Settings, Span, Topics};
use crate::service::health::{health, Restoring};
use crate::service::reload::Rules;
use crate::service::{clock, metrics};
use levee_engine::rectify::Rectification;

/// What every partition task of the instance shares.
pub struct Shared {
    pub rules: Arc<Rules>,
    pub sink: Arc<dyn Sink>,
    pub restore: Arc<dyn Restore>,
    pub rectifications: Arc<Rectifications>,
    pub topics: Topics,
    pub exactly_once: bool,
    /// `state.ttl` in seconds.
    pub ttl: i64,
    /// `state.changelog_encoding`.
    pub encoding: levee_engine::codec::Encoding,
    /// `alerts.languages` has `zh`.
    pub chinese: bool,
    /// `state.allowed_lateness`.
    pub lateness: Span,
    /// `state.max_future_skew` in seconds.
    pub future_skew: i64,
    /// `input.max_event_bytes`.
    pub max_event_bytes: usize,
    /// `dlq.max_payload_bytes`.
    pub dlq_max_payload: usize,
    /// `input.on_misrouted`: set misrouted events aside (else evaluate them).
    pub misrouted_to_dlq: bool,
    /// `[shadow]`: the shadow rules, if on.
    pub shadow: Option<Arc<Rules>>,
    /// `[sample]`: the sampler, if on.
    pub sample: Option<Arc<crate::service::sampler::Sampler>>,
    /// The repartition topic ([`repartition`]): re-keyed copies go there.
    pub repartition: String,
    /// The people topic: alerts copied per person ([`people::copies`]).
    pub people: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(
        settings: &Settings,
        rules: Arc<Rules>,
        sink: Arc<dyn Sink>,
        restore: Arc<dyn Restore>,
        rectifications: Arc<Rectifications>,
    ) -> Self {
        Shared {
            rules,
            sink,
            restore,
            rectifications,
            topics: settings.topics.clone(),
            exactly_once: settings.delivery == crate::service::config::Delivery::ExactlyOnce,
            ttl: settings.state.ttl.secs(),
            encoding: settings.state.changelog_encoding,
            chinese: settings.alerts.chinese(),
            lateness: settings.state.allowed_lateness,
            future_skew: settings.state.max_future_skew.secs(),
            max_event_bytes: settings.input.max_event_bytes,
            dlq_max_payload: settings.dlq.max_payload_bytes,
            misrouted_to_dlq: settings.input.on_misrouted
                == crate::service::config::OnMisrouted::Dlq,
            shadow: None,
            sample: None,
            repartition: repartition::topic(&settings.kafka.group_id),
            people: people::topic(&settings.kafka.group_id),
        }
    }

    fn is_alert_topic(&self, topic: &str) -> bool {
        [&self.topics.tier1, &self.topics.tier2, &self.topics.tier3]
            .iter()
            .any(|t| t.as_str() == topic)
    }
}

/// Evaluates one partition's messages in order.
pub struct PartitionTask {
    tp: TopicPartition,
    shared: Arc<Shared>,
    engine: Engine,
    /// The rules generation the engine runs.
    generation: u64,
    staging: Staging,
    /// Cuts under way, and the deliveries of the output since the last.
    cuts: Cuts,
    now: Now,
    expiry: Expiry,
    /// The Kafka timestamp (ms) of the message whose output is being sent.
    born_ms: Option<i64>,
    /// Holds readiness back until the partition's state is restored.
    restoring: Option<Restoring>,
    /// The offset after the last message handled.
    next_offset: Option<i64>,
    /// Offsets below this are already in the restored state.
    skip_below: i64,
    /// The partition's state could not be restored: why.
    failed: Option<PipelineError>,
    /// `levee_events_total{outcome="ok"}` of this partition's topic, by event type.
    ok_counters: foldhash::HashMap<String, prometheus::IntCounter>,
    /// `levee_evaluate_seconds`, flushed after each batch.
    evaluate_seconds: prometheus::local::LocalHistogram,
    /// The shadow rules' engine, once the state is restored.
    shadow: Option<Shadow>,
    /// Decisions on requests from HTTP, for a request appended again.
    answered: requests::Answered,
    /// Closed alerts kept until archived.
    lifecycle: Lifecycle,
    /// On the repartition topic: its upstreams' watermarks.
    upstreams: Upstreams,
}

impl std::fmt::Debug for PartitionTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionTask")
            .field("tp", &self.tp)
            .finish_non_exhaustive()
    }
}

impl PartitionTask {
    pub fn new(tp: TopicPartition, shared: Arc<Shared>) -> Self {
        let (graph, generation, tables) = shared.rules.current_with_tables();
        // Rectification periods run on the service's clock.
        let mut engine = Engine::new(graph);
        engine.set_tables(tables);
        engine.set_clock(Clock::Wall(clock::now_secs()));
        engine.set_chinese(shared.chinese);
        // Re-keyed copies are evaluated on their keys' partitions.
        engine.set_forward_copies(true);
        let exactly_once = shared.exactly_once;
        PartitionTask {
            staging: Staging::new(tp.clone(), &shared.topics, shared.encoding, exactly_once),
            cuts: Cuts::new(tp.clone(), Arc::clone(&shared.sink), !exactly_once),
            expiry: Expiry::new(shared.ttl),
            tp,
            engine,
            generation,
            now: Now::read(),
            born_ms: None,
            restoring: Some(health().restoring()),
            next_offset: None,
            skip_below: 0,
            failed: None,
            ok_counters: foldhash::HashMap::default(),
            evaluate_seconds: metrics::evaluate_timer(),
            shadow: None,
            answered: requests::Answered::default(),
            lifecycle: Lifecycle::default(),
            upstreams: Upstreams::default(),
            shared,
        }
    }

    /// Restores the state, then takes work until the channel closes.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Work>) {
        self.restore().await;
        while let Some(work) = rx.recv().await {
            match work {
                Work::Messages(batch) => {
                    for m in batch {
                        self.message(&m).await;
                    }
                    self.evaluate_seconds.flush();
                    // State changes serialized as they come, not all at
                    // the barrier.
                    for r in self.stage() {
                        self.send(r).await;
                    }
                    if !self.shared.exactly_once && self.failed.is_none() && self.cuts.due() {
                        self.cut(None).await;
                    }
                }
                Work::Barrier(reply) => self.barrier(reply).await,
                Work::Rectify(r) => {
                    if let Some(s) = self.shadow.as_mut() {
                        s.rectify(&r.alert_id, r.status);
                    }
                    for record in self.rectify(&[r]) {
                        self.send(record).await;
                    }
                }
                Work::Tick => {
                    // Alerts raised on the service's clock escalate on it.
                    self.refresh_now();
                    let escalated = self.engine.tick(self.now.secs, &self.now.text);
                    let mut records = self.alert_records(escalated);
                    if let Some(s) = self.shadow.as_mut() {
                        records.extend(s.tick(self.now.secs, &self.now.text));
                    }
                    for r in records {
                        self.send(r).await;
                    }
                }
            }
        }
    }

    /// Answers a barrier: exactly-once at once, the changelog records sent
    /// into the transaction (its commit waits for them); at-least-once
    /// with a cut, once the output before and the cut are acknowledged.
    async fn barrier(&mut self, reply: oneshot::Sender<BarrierReply>) {
        if let Some(e) = &self.failed {
            let _ = reply.send(Err(e.clone()));
            return;
        }
        if self.shared.exactly_once {
            for r in self.changelog_records() {
                self.send(r).await;
            }
            let _ = reply.send(Ok(self.next_offset));
            return;
        }
        self.cut(Some(reply)).await;
    }

    /// At-least-once: a cut of the state at this point (see [`Cuts::cut`]).
    async fn cut(&mut self, reply: Option<oneshot::Sender<BarrierReply>>) {
        let records = self.changelog_records();
        self.cuts.cut(records, self.next_offset, reply).await;
    }

    async fn message(&mut self, m: &OwnedMessage) {
        if self.next_offset.is_none() {
            debug!(
                topic = %self.tp.topic,
                partition = self.tp.partition,
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

    /// Reads the partition's state back (retrying while Kafka is away),
    /// then applies the rectifications already known.
    async fn restore(&mut self) {
        // A topic just created may not have its leader known yet: retry soon.
        let mut backoff = Duration::from_millis(50);
        let started = Instant::now();
        let restored = loop {
            let (restore, tp) = (Arc::clone(&self.shared.restore), self.tp.clone());
            let r = tokio::task::spawn_blocking(move || restore.restore(&tp))
                .await
                .unwrap_or_else(|_| Err(PipelineError::TaskStopped(self.tp.clone())));
            match r {
                Ok(r) => break r,
                Err(e) if e.retry() == Retry::Fatal => {
                    error!(error = %e, topic = %self.tp.topic, partition = self.tp.partition, "cannot restore the partition's state");
                    self.failed = Some(e);
                    self.restoring = None;
                    return;
                }
                Err(e) => report(
                    e.kind(),
                    &e,
                    &format!("restoring the state of {} failed; retrying", self.tp),
                ),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        };
        self.restoring = None;
        let subjects = restored.subjects.len();
        let mut meta = restored.meta.unwrap_or_default();
        self.refresh_now();
        let bound = self.now.secs.saturating_add(self.shared.future_skew);
        if meta.watermark > bound {
            // Written before the bound existed, or by an instance whose
            // clock ran ahead: it would make every later event late.
            warn!(
                topic = %self.tp.topic,
                partition = self.tp.partition,
                watermark = meta.watermark,
                clamped_to = bound,
                "restored watermark is beyond state.max_future_skew; clamped"
            );
            metrics::watermark_clamped();
            meta.watermark = bound;
        }
        self.engine
            .restore_subjects(restored.subjects, meta.watermark);
        for (subject, profile) in self.engine.ledger().profiles() {
            health().put_profile(&self.tp.topic, self.tp.partition, subject, Some(profile));
        }
        self.skip_below = meta.next_offset;
        self.staging.restored(restored.meta);
        for (id, decision) in &restored.answered {
            self.answered.insert(id, decision);
        }
        self.lifecycle.restored(restored.closings);
        let mut ids: Vec<String> = self.engine.ledger().open_ids().map(str::to_owned).collect();
        ids.extend(self.lifecycle.ids().map(str::to_owned));
        let known = self
            .shared
            .rectifications
            .lookup(ids.iter().map(String::as_str));
        for record in self.rectify(&known) {
            self.send(record).await;
        }
        self.shadow = self.shared.shadow.as_ref().map(|rules| {
            let mut s = Shadow::start(
                Arc::clone(rules),
                &self.engine,
                &self.shared.topics.shadow,
                self.shared.chinese,
            );
            s.set_clock(Clock::Wall(self.now.secs));
            s
        });
        info!(
            topic = %self.tp.topic,
            partition = self.tp.partition,
            subjects,
            records = restored.records,
            next_offset = meta.next_offset,
            elapsed_ms = started.elapsed().as_millis() as u64,
            since_start_ms = crate::service::since_start(),
            "partition state restored"
        );
    }

    /// Reads the service's clock if a millisecond has passed.
    fn refresh_now(&mut self) {
        if self.now.refresh() {
            self.engine.set_clock(Clock::Wall(self.now.secs));
            if let Some(s) = self.shadow.as_mut() {
                s.set_clock(Clock::Wall(self.now.secs));
            }
        }
    }

    /// After an event: escalations now due (on the clock that raised the
    /// alerts, not the event's), rectifications that came before their
    /// alerts, expiry of idle subjects.
    fn after_event(&mut self) -> Vec<OutRecord> {
        self.refresh_now();
        let watermark = self.engine.watermark();
        let escalated = self.engine.tick(self.now.secs, &self.now.text);
        let mut out = self.alert_records(escalated);
        let due = self.expiry.due(watermark);
        if due {
            self.engine.expire(self.shared.ttl);
        }
        if let Some(s) = self.shadow.as_mut() {
            out.extend(s.tick(self.now.secs, &self.now.text));
            if due {
                s.expire(self.shared.ttl);
            }
        }
        out
    }

    /// Alerts as records to their tier topics; applies rectifications that
    /// arrived before them.
    fn alert_records(&mut self, alerts: Vec<levee_engine::Alert>) -> Vec<OutRecord> {
        let known = self
            .shared
            .rectifications
            .lookup(alerts.iter().map(|a| a.alert_id.as_str()));
        let mut out = Vec::with_capacity(alerts.len());
        for alert in alerts {
            metrics::alert_raised(&alert);
            let named = alert.people.clone();
            if let Some(r) = records::alert(&self.shared.topics, alert) {
                let people = &self.shared.people;
                out.extend(copies(people, Entry::Alert, &named, &r.payload));
                out.push(r);
            }
        }
        out.extend(self.rectify(&known));
        out
    }

    /// Applies rectifications to the open alerts of this partition and to
    /// the closed ones it keeps until archived ([`Lifecycle`]).
    fn rectify(&mut self, rs: &[Arc<Rectification>]) -> Vec<OutRecord> {
        self.refresh_now();
        let mut out = Outputs {
            topics: &self.shared.topics,
            people: &self.shared.people,
            staging: &mut self.staging,
            now: &self.now.text,
        };
        self.lifecycle.apply(&mut self.engine, rs, &mut out)
    }

    /// The subjects changed since the last call, serialized: staged until
    /// the next cut (at-least-once), or returned to be sent now.
    fn stage(&mut self) -> Vec<OutRecord> {
        let changes = self.engine.take_changes();
        if changes.is_empty() {
            return Vec::new();
        }
        // Encoded from the engine's own state, nothing copied on the way.
        let (state, ledger) = (self.engine.state(), self.engine.ledger());
        let snapshots: Vec<Changed<'_>> = changes
            .iter()
            .map(|(subject, profile_changed)| Changed {
                subject,
                snapshot: levee_engine::ledger::snapshot_ref(state, &ledger, subject),
                profile_changed: *profile_changed,
            })
            .collect();
        health().put_profiles(
            &self.tp.topic,
            self.tp.partition,
            snapshots
                .iter()
                .filter(|c| c.profile_changed)
                .map(|c| (c.subject, c.snapshot.profile)),
        );
        self.staging.stage(snapshots)
    }

    /// The records of a cut: what changed since the last one (those not
    /// sent yet) and the partition record.
    fn changelog_records(&mut self) -> Vec<OutRecord> {
        let mut out = self.stage();
        let meta = Meta {
            next_offset: self.next_offset.unwrap_or(self.skip_below),
            watermark: self.engine.watermark(),
        };
        out.extend(self.staging.cut(meta, self.next_offset.is_some()));
        out
    }

    /// Rules are swapped only here, between messages; the state stays.
    fn refresh_rules(&mut self) {
        if self.shared.rules.generation() != self.generation {
            let (graph, generation, tables) = self.shared.rules.current_with_tables();
            self.engine.set_graph(graph);
            self.engine.set_tables(tables);
            self.generation = generation;
        }
    }

    /// Decodes, rejects an event stamped in the future or later than the
    /// allowed lateness (neither touches event time or state), evaluates.
    fn decode_checked(&mut self, m: &OwnedMessage) -> Result<EvalStats, Rejected> {
        let payload = m.payload().unwrap_or_default();
        if payload.len() > self.shared.max_event_bytes {
            // Not parsed at all: a record this size is a mistake or an attack.
            return Err(records::oversize(
                payload.len(),
                self.shared.max_event_bytes,
            ));
        }
        self.refresh_now();
        self.engine.decode(payload).map_err(Rejected::from)?;
        if m.topic() == self.shared.repartition {
            // Judged on its input partition already.
            return repartition::evaluate(&mut self.engine, m, &mut self.upstreams);
        }
        self.engine
            .check_future(self.now.secs, self.shared.future_skew)
            .map_err(Rejected::from)?;
        // Keyed by its subject, on its stream's topic: else its state
        // would be split over partitions.
        let (stream, subject) = self.engine.routing();
        let event_type = self.engine.envelope().event_type.as_str();
        if let Some(bad) =
            records::misrouted(m.topic(), m.key(), event_type, stream, subject.as_deref())
        {
            metrics::misrouted(m.topic(), event_type);
            if self.shared.misrouted_to_dlq {
                return Err(bad);
            }
        }
        let envelope = self.engine.envelope();
        if let Some(at) = envelope.occurred {
            let late = records::late(
                &envelope.occurred_at,
                at.timestamp(),
                self.engine.watermark(),
                self.shared.lateness.secs(),
                &self.shared.lateness,
            );
            if let Some(late) = late {
                return Err(late);
            }
        }
        Ok(self.engine.run())
    }

    /// One message's records: its alerts and verdict, or its dead letter.
    fn evaluate(&mut self, m: &OwnedMessage) -> Vec<OutRecord> {
        let payload = m.payload().unwrap_or_default();
        if let Some(known) =
            requests::from_http(m).and_then(|id| Some((id, self.answered.get(id)?)))
        {
            let (event_id, decision) = known;
            let topic = &self.shared.topics.decisions;
            return vec![OutRecord::keyed(topic, event_id, decision.to_vec())];
        }
        let started = Instant::now();
        let rejected = match self.decode_checked(m) {
            Ok(_) => {
                self.count_ok(m.topic());
                self.evaluate_seconds
                    .observe(started.elapsed().as_secs_f64());
                if let Some(sample) = self
                    .shared
                    .sample
                    .as_ref()
                    .filter(|_| !self.engine.is_copy())
                {
                    sample.offer(&self.engine, payload);
                }
                None
            }
            Err(bad) => {
                metrics::event_invalid(m.topic(), payload, self.engine.graph(), bad.kind);
                Some(bad)
            }
        };
        if let Some(bad) = rejected {
            debug!(topic = m.topic(), partition = m.partition(), offset = m.offset(), reason = %bad, "bad input to the DLQ");
            let mut out = vec![records::dead_letter(
                &self.shared.topics,
                m,
                &bad,
                self.shared.dlq_max_payload,
            )];
            // A request appended over HTTP: its handler waits for an answer.
            if let Some(event_id) = requests::from_http(m) {
                let version = &self.engine.graph().version;
                let topic = &self.shared.topics.decisions;
                out.extend(requests::refusal(topic, event_id, &bad, payload, version));
            }
            return out;
        }
        // The shadow rules see what the live rules accepted, after them;
        // then the event goes on to its re-keyed copies.
        let mut shadow = match self.shadow.as_mut() {
            Some(s) if !self.engine.is_copy() => s.event(&self.engine, m, &self.now.text),
            _ => Vec::new(),
        };
        shadow.extend(self.forward(m));
        let verdict = self.engine.verdict();
        if self.engine.hits().is_empty() && verdict.is_none() {
            return shadow;
        }
        self.refresh_now();
        let source = Source::Kafka {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
        };
        let alerts: Vec<_> = self
            .engine
            .hits()
            .iter()
            .map(|&hit| self.engine.alert(hit, &source, &self.now.text))
            .collect();
        let mut kept = Vec::new();
        let decision = match (&verdict, requests::from_http(m)) {
            (Some(v), Some(id)) => {
                let topic = &self.shared.topics.decisions;
                let d = requests::decision(topic, v, &alerts, payload, requests::DecidedBy::Stream);
                if let Some(d) = &d {
                    let forgotten = self.answered.insert(id, &d.payload);
                    kept = self.staging.answered(id, &d.payload, &forgotten);
                }
                d
            }
            _ => None,
        };
        let mut out = self.alert_records(alerts);
        out.append(&mut kept);
        match decision {
            Some(d) => out.push(d),
            None => out.extend(verdict.and_then(|v| records::verdict(&self.shared.topics, v))),
        }
        out.extend(shadow);
        out
    }

    /// The records forwarding the event just evaluated to the repartition
    /// topic, one per re-keyed copy (none for a copy itself).
    fn forward(&self, m: &OwnedMessage) -> Vec<OutRecord> {
        if self.engine.is_copy() {
            return Vec::new();
        }
        let payload = m.payload().unwrap_or_default();
        repartition::forward(&self.engine, &self.shared.repartition, &self.tp, payload)
    }

    fn count_ok(&mut self, topic: &str) {
        let event_type = self.engine.envelope().event_type.as_str();
        match self.ok_counters.get(event_type) {
            Some(c) => c.inc(),
            None => {
                let c = metrics::events_ok(topic, event_type);
                c.inc();
                self.ok_counters.insert(event_type.to_owned(), c);
            }
        }
    }

    /// Produces one record, counted against the deliveries since the last
    /// cut (an alert's with its event's timestamp, for the end-to-end latency).
    async fn send(&mut self, r: OutRecord) {
        let sink = self.shared.sink.as_ref();
        let pending = self.cuts.pending();
        match self
            .born_ms
            .filter(|_| self.shared.is_alert_topic(&r.topic))
        {
            Some(born) => produce(sink, &r, &PendingDeliveries::for_alert(pending, born)).await,
            None => produce(sink, &r, pending).await,
        }
    }
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
