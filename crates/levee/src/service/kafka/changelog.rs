//! Where a partition's state is written: the changelog.
//!
//! Each input partition's engine keeps the state of its subjects (windows,
//! `for:`, suppression), its open alerts and its subjects' profiles. Its
//! task writes one record per subject that changed since the last write,
//! then the partition record, to the compacted `topics.changelog` topic, in
//! the partition of the same number as its input partition:
//!
//! | key | value |
//! |---|---|
//! | `<input topic>/<partition>/<subject>` | the subject's [`SubjectSnapshot`] in `state.changelog_encoding` ([`levee_engine::codec`]: binary by default); a tombstone once nothing is left |
//! | `<input topic>/<partition>` | [`Meta`]: the input offset the state has consumed up to, and the watermark |
//!
//! Only what a restore needs is written: a subject whose state, open
//! alerts or profile changed (an event that adds nothing to any window,
//! hold or suppression writes nothing); its profile goes to
//! `topics.profiles` only when the profile itself changed.
//!
//! [`Staging`] serializes subjects as they change and hands out the records
//! of a *cut*: the changed subjects, then the partition record, so the
//! changelog never holds state ahead of its partition record.
//!
//! At-least-once, [`Cuts`] writes a cut every 100 ms and at every barrier,
//! in a background task that first waits until the output produced before
//! the cut is acknowledged (and the cut before is written): the changelog
//! never holds the effect of an event whose output is not delivered. A
//! barrier's answer waits for its cut's records too. Exactly-once, the
//! records go at once into the open transaction, which commits them with
//! the output and the offsets.
//!
//! Operators create the changelog topic with `cleanup.policy=compact` and as
//! many partitions as the input topics have. `restore.rs` reads it back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use levee_engine::codec::{self, Encoding};
use levee_engine::SnapshotRef;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Semaphore};
use tokio::task::{AbortHandle, JoinHandle};
use tracing::debug;

use super::delivery::{produce, OutRecord, PendingDeliveries, Sink};
use super::error::PipelineError;
use super::work::BarrierReply;
use super::TopicPartition;
use crate::service::config::Topics;

/// At-least-once: how often a partition task writes its state between
/// checkpoints.
pub const CUT_INTERVAL: Duration = Duration::from_millis(100);
/// At-least-once: cuts of a partition task waiting for their
/// acknowledgements at most; a task with as many waits before it evaluates
/// more, so that evaluation does not run seconds ahead of the broker.
pub const CUTS_IN_FLIGHT: usize = 4;

/// The partition-level record of the changelog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The next input offset to evaluate: everything before is in the state.
    pub next_offset: i64,
    /// The partition's watermark (event time, seconds).
    pub watermark: i64,
}

/// The changelog key of a subject of an input partition.
pub fn subject_key(topic: &str, partition: i32, subject: &str) -> String {
    // Written by hand: one per changed subject, and `format!` is slow.
    let mut key = String::with_capacity(topic.len() + subject.len() + 8);
    key.push_str(topic);
    key.push('/');
    key.push_str(itoa(partition, &mut [0u8; 11]));
    key.push('/');
    key.push_str(subject);
    key
}

/// `n` in decimal, written into `buf`.
fn itoa(n: i32, buf: &mut [u8; 11]) -> &str {
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// The changelog key of an input partition's [`Meta`].
pub fn meta_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// The changelog key of a request decided over HTTP, by its `event_id`
/// (`events.marketing/3#request/r-1`): apart from every subject key (those
/// go on with `/`) and from the partition record's.
pub fn request_key(topic: &str, partition: i32, event_id: &str) -> String {
    format!("{}{event_id}", request_prefix(topic, partition))
}

/// What every request key of a partition begins with.
pub fn request_prefix(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}#request/")
}

/// One subject that changed, as the engine gives it (borrowed from it:
/// only the encoded record is kept).
#[derive(Debug)]
pub struct Changed<'a> {
    pub subject: &'a str,
    pub snapshot: SnapshotRef<'a>,
    /// Its open alerts or profile changed (not only its windows).
    pub profile_changed: bool,
}

/// The changelog (and profile) records of one input partition's changed
/// subjects, between two cuts.
#[derive(Debug)]
pub struct Staging {
    tp: TopicPartition,
    changelog: String,
    profiles: String,
    encoding: Encoding,
    /// Exactly-once: records are handed out as subjects change.
    send_now: bool,
    /// At-least-once: per subject, its record and its profile's, until the cut.
    staged: foldhash::HashMap<String, (OutRecord, Option<OutRecord>)>,
    /// At-least-once: requests decided (and forgotten) since the last cut.
    requests: Vec<OutRecord>,
    /// Subjects changed since the last cut.
    changed: bool,
    /// The partition record last written (or restored).
    written: Option<Meta>,
}

impl Staging {
    pub fn new(tp: TopicPartition, topics: &Topics, encoding: Encoding, send_now: bool) -> Self {
        Staging {
            tp,
            changelog: topics.changelog.clone(),
            profiles: topics.profiles.clone(),
            encoding,
            send_now,
            staged: foldhash::HashMap::default(),
            requests: Vec::new(),
            changed: false,
            written: None,
        }
    }

    /// The partition record read back at the restore.
    pub fn restored(&mut self, meta: Option<Meta>) {
        self.written = meta;
    }

    /// Serializes changed subjects: staged until the next cut, or
    /// (exactly-once) returned to be sent now.
    pub fn stage<'a>(&mut self, changes: impl IntoIterator<Item = Changed<'a>>) -> Vec<OutRecord> {
        let mut out = Vec::new();
        for Changed {
            subject,
            snapshot: snap,
            profile_changed,
        } in changes
        {
            self.changed = true;
            // A profile staged before and not written yet is written as it
            // is now.
            let profile_changed =
                profile_changed || self.staged.get(subject).is_some_and(|(_, p)| p.is_some());
            let profile = snap
                .profile
                .as_ref()
                .filter(|_| profile_changed)
                .and_then(|profile| {
                    let payload = serde_json::to_vec(profile).ok()?;
                    Some(OutRecord::keyed(
                        &self.profiles,
                        subject.to_owned(),
                        payload,
                    ))
                });
            let (payload, tombstone) = if snap.is_empty() {
                (Vec::new(), true)
            } else {
                let mut payload = Vec::with_capacity(64);
                codec::encode(&snap, self.encoding, &mut payload);
                (payload, false)
            };
            let key = subject_key(&self.tp.topic, self.tp.partition, subject);
            let record = OutRecord {
                partition: Some(self.tp.partition),
                tombstone,
                ..OutRecord::keyed(&self.changelog, key, payload)
            };
            if self.send_now {
                out.extend(profile);
                out.push(record);
            } else {
                match self.staged.get_mut(subject) {
                    Some(slot) => *slot = (record, profile),
                    None => {
                        self.staged.insert(subject.to_owned(), (record, profile));
                    }
                }
            }
        }
        out
    }

    /// A request decided over HTTP (its `event_id`, its decision's payload),
    /// and those `forgotten` (tombstones): kept with the state they counted
    /// in, staged until the next cut, or (exactly-once) returned to be sent
    /// now.
    pub fn answered(
        &mut self,
        event_id: &str,
        decision: &[u8],
        forgotten: &[String],
    ) -> Vec<OutRecord> {
        let (topic, partition) = (&self.tp.topic, self.tp.partition);
        let record = |id: &str, payload: Option<&[u8]>| OutRecord {
            partition: Some(partition),
            tombstone: payload.is_none(),
            ..OutRecord::keyed(
                &self.changelog,
                request_key(topic, partition, id),
                payload.unwrap_or_default().to_vec(),
            )
        };
        let mut out: Vec<OutRecord> = forgotten.iter().map(|id| record(id, None)).collect();
        out.push(record(event_id, Some(decision)));
        if self.send_now {
            return out;
        }
        self.changed = true;
        self.requests.extend(out);
        Vec::new()
    }

    /// A cut: the staged records (each profile before its subject) and the
    /// partition record `meta`, unless nothing changed since the last cut.
    /// `evaluated`: anything was evaluated since the restore (if not, and
    /// nothing changed, there is nothing to write, and exactly-once no
    /// transaction open to write in).
    pub fn cut(&mut self, meta: Meta, evaluated: bool) -> Vec<OutRecord> {
        if !self.changed && (!evaluated || self.written == Some(meta)) {
            return Vec::new();
        }
        self.changed = false;
        let mut out = Vec::with_capacity(2 * self.staged.len() + 1);
        for (_, (record, profile)) in self.staged.drain() {
            out.extend(profile);
            out.push(record);
        }
        out.append(&mut self.requests);
        if let Ok(payload) = serde_json::to_vec(&meta) {
            let key = meta_key(&self.tp.topic, self.tp.partition);
            out.push(OutRecord {
                partition: Some(self.tp.partition),
                ..OutRecord::keyed(&self.changelog, key, payload)
            });
        }
        self.written = Some(meta);
        out
    }
}

/// At-least-once: a partition task's cuts under way, and the deliveries of
/// what it produced since the last cut. Exactly-once, only the latter
/// (never waited for: the transaction commit does).
pub struct Cuts {
    tp: TopicPartition,
    sink: Arc<dyn Sink>,
    /// Deliveries of what was produced since the last cut.
    pending: Arc<PendingDeliveries>,
    /// The background task of the last cut, which the next one waits for.
    last: Option<JoinHandle<Result<(), PipelineError>>>,
    /// Every cut not yet finished: aborted when the task stops.
    unfinished: Vec<AbortHandle>,
    /// Permits for cuts under way (see [`CUTS_IN_FLIGHT`]).
    permits: Arc<Semaphore>,
    last_cut: Instant,
}

impl std::fmt::Debug for Cuts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cuts")
            .field("tp", &self.tp)
            .finish_non_exhaustive()
    }
}

impl Cuts {
    /// `resend`: at-least-once (what the broker does not take is sent again).
    pub fn new(tp: TopicPartition, sink: Arc<dyn Sink>, resend: bool) -> Self {
        Cuts {
            tp,
            sink,
            pending: PendingDeliveries::new(resend),
            last: None,
            unfinished: Vec::new(),
            permits: Arc::new(Semaphore::new(CUTS_IN_FLIGHT)),
            last_cut: Instant::now(),
        }
    }

    /// What the task produces now counts against.
    pub fn pending(&self) -> &Arc<PendingDeliveries> {
        &self.pending
    }

    /// [`CUT_INTERVAL`] has passed since the last cut.
    pub fn due(&self) -> bool {
        self.last_cut.elapsed() >= CUT_INTERVAL
    }

    /// Hands what was produced since the last cut, and `records` (a cut of
    /// the state at this point), to a background task that waits for the
    /// former (and for the cut before), only then writes the latter and
    /// waits for them, then answers `reply` (a barrier) with `next_offset`.
    /// Waits first while [`CUTS_IN_FLIGHT`] cuts are under way.
    pub async fn cut(
        &mut self,
        records: Vec<OutRecord>,
        next_offset: Option<i64>,
        reply: Option<oneshot::Sender<BarrierReply>>,
    ) {
        // Back-pressure: this task waits before evaluating more (and its
        // queue, then the consumer thread, wait in turn).
        let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
            return;
        };
        self.last_cut = Instant::now();
        if records.is_empty() && self.pending.is_empty() && reply.is_none() {
            return;
        }
        let pending = std::mem::replace(&mut self.pending, PendingDeliveries::new(true));
        let before = self.last.take();
        let sink = Arc::clone(&self.sink);
        let (tp, barrier) = (self.tp.clone(), reply.is_some());
        let handle = tokio::spawn(async move {
            let r = async {
                let t0 = Instant::now();
                if let Some(h) = before {
                    h.await
                        .map_err(|_| PipelineError::TaskStopped(tp.clone()))??;
                }
                let t1 = Instant::now();
                pending.wait_delivered(sink.as_ref()).await;
                let t2 = Instant::now();
                let written = PendingDeliveries::new(true);
                for r in &records {
                    produce(sink.as_ref(), r, &written).await;
                }
                let (count, t3) = (records.len(), Instant::now());
                drop(records);
                written.wait_delivered(sink.as_ref()).await;
                debug!(
                    topic = %tp.topic, partition = tp.partition, barrier, records = count,
                    wait_before_ms = ms(t1 - t0),
                    wait_outputs_ms = ms(t2 - t1),
                    produce_ms = ms(t3 - t2),
                    wait_written_ms = ms(t3.elapsed()),
                    "cut written"
                );
                Ok(())
            }
            .await;
            drop(permit);
            if let Some(reply) = reply {
                let _ = reply.send(r.clone().map(|()| next_offset));
            }
            r
        });
        self.unfinished.retain(|h| !h.is_finished());
        self.unfinished.push(handle.abort_handle());
        self.last = Some(handle);
    }
}

impl Drop for Cuts {
    /// A stopped task's cuts still under way are dropped with it: the
    /// partition is redone from its last commit (by this instance or the
    /// new owner), and a late write must not land after the new owner's.
    fn drop(&mut self) {
        for h in &self.unfinished {
            h.abort();
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use levee_engine::{Profile, SubjectSnapshot};

    use super::super::delivery::fake::FakeSink;
    use super::*;
    use crate::service::config::{load, Overrides};

    const CHANGELOG: &str = "levee.state-changelog";

    fn topics() -> Topics {
        load(None, Vec::new(), &Overrides::default())
            .unwrap()
            .topics
    }

    fn tp() -> TopicPartition {
        TopicPartition::new("events.a", 1)
    }

    fn with_profile() -> SubjectSnapshot {
        SubjectSnapshot {
            profile: Some(Profile::default()),
            ..SubjectSnapshot::default()
        }
    }

    /// A change as a test writes it: owned.
    struct Owned(String, SubjectSnapshot, bool);

    fn changed(subject: &str, snapshot: SubjectSnapshot, profile_changed: bool) -> Owned {
        Owned(subject.into(), snapshot, profile_changed)
    }

    /// A subject whose alerts and profile changed.
    fn alerted(subject: &str) -> Vec<Owned> {
        vec![changed(subject, with_profile(), true)]
    }

    impl Staging {
        fn stage_owned(&mut self, changes: Vec<Owned>) -> Vec<OutRecord> {
            self.stage(changes.iter().map(|Owned(subject, snap, p)| Changed {
                subject,
                snapshot: snap.borrowed(),
                profile_changed: *p,
            }))
        }
    }

    fn staging(send_now: bool) -> Staging {
        Staging::new(tp(), &topics(), Encoding::Binary, send_now)
    }

    fn keys(records: &[OutRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| {
                let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
                format!("{} {key}{}", r.topic, if r.tombstone { " †" } else { "" })
            })
            .collect()
    }

    #[test]
    fn a_subject_key_names_topic_partition_and_subject() {
        assert_eq!(subject_key("events.a", 0, "鄂A1"), "events.a/0/鄂A1");
        assert_eq!(subject_key("t", 1234, "s"), "t/1234/s");
        assert_eq!(subject_key("t", i32::MIN, "s"), format!("t/{}/s", i32::MIN));
    }

    #[test]
    fn a_cut_writes_the_changed_subjects_then_the_partition_record() {
        let mut s = staging(false);
        let staged = s.stage_owned(vec![
            changed("s1", with_profile(), true),
            changed("s2", SubjectSnapshot::default(), false),
        ]);
        assert!(staged.is_empty(), "at-least-once: held until the cut");
        // A subject changed twice before the cut is written once.
        assert!(s.stage_owned(alerted("s1")).is_empty());
        let meta = Meta {
            next_offset: 7,
            watermark: 100,
        };
        let mut cut = keys(&s.cut(meta, true));
        let last = cut.pop().unwrap();
        assert_eq!(last, format!("{CHANGELOG} events.a/1"));
        cut.sort();
        assert_eq!(
            cut,
            [
                format!("{CHANGELOG} events.a/1/s1"),
                format!("{CHANGELOG} events.a/1/s2 †"),
                "profiles s1".to_owned(),
            ]
        );
        // Every changelog record in the input partition's partition.
        let records = s.cut(
            Meta {
                next_offset: 8,
                watermark: 100,
            },
            true,
        );
        assert_eq!(records.len(), 1, "only the partition record moved");
        assert_eq!(records[0].partition, Some(1));
        let written: Meta = serde_json::from_slice(&records[0].payload).unwrap();
        assert_eq!(written.next_offset, 8);
    }

    #[test]
    fn a_profile_is_written_only_when_it_changed() {
        let mut s = staging(true);
        let windows_only = s.stage_owned(vec![changed("s1", with_profile(), false)]);
        assert_eq!(keys(&windows_only), [format!("{CHANGELOG} events.a/1/s1")]);
        // At-least-once: a profile staged earlier in the cut stays staged
        // when the subject changes again without it.
        let mut s = staging(false);
        s.stage_owned(alerted("s1"));
        s.stage_owned(vec![changed("s1", with_profile(), false)]);
        let cut = keys(&s.cut(Meta::default(), true));
        assert!(cut.contains(&"profiles s1".to_owned()), "{cut:?}");
    }

    #[test]
    fn records_are_in_the_configured_encoding() {
        for encoding in [Encoding::Binary, Encoding::Json] {
            let mut s = Staging::new(tp(), &topics(), encoding, true);
            let out = s.stage_owned(vec![changed("s1", with_profile(), false)]);
            let payload = &out[0].payload;
            assert_eq!(payload[0] == b'{', encoding == Encoding::Json);
            let back = codec::decode(payload).unwrap();
            assert_eq!(back.profile, Some(Profile::default()));
        }
    }

    #[test]
    fn nothing_changed_nothing_written() {
        let mut s = staging(false);
        let meta = Meta {
            next_offset: 3,
            watermark: 9,
        };
        assert!(
            s.cut(meta, false).is_empty(),
            "nothing evaluated since the restore"
        );
        s.restored(Some(meta));
        assert!(s.cut(meta, true).is_empty(), "the restored record stands");
        assert_eq!(
            s.cut(
                Meta {
                    next_offset: 4,
                    ..meta
                },
                true
            )
            .len(),
            1
        );
    }

    #[test]
    fn a_decided_request_is_kept_with_the_state_it_counted_in() {
        let mut s = staging(false);
        let forgotten = ["r0".to_owned()];
        assert!(s.answered("r1", b"{}", &forgotten).is_empty(), "staged");
        let cut = keys(&s.cut(Meta::default(), true));
        assert_eq!(
            cut,
            [
                format!("{CHANGELOG} events.a/1#request/r0 †"),
                format!("{CHANGELOG} events.a/1#request/r1"),
                format!("{CHANGELOG} events.a/1"),
            ],
            "in the cut, before the partition record"
        );
        assert!(!request_key("events.a", 1, "r1").starts_with("events.a/1/"));
        let mut eos = staging(true);
        let now = keys(&eos.answered("r1", b"{}", &[]));
        assert_eq!(now, [format!("{CHANGELOG} events.a/1#request/r1")]);
    }

    #[test]
    fn exactly_once_hands_records_out_as_they_change() {
        let mut s = staging(true);
        let now = keys(&s.stage_owned(alerted("s1")));
        assert_eq!(now, ["profiles s1", &format!("{CHANGELOG} events.a/1/s1")]);
        let cut = keys(&s.cut(Meta::default(), true));
        assert_eq!(cut, [format!("{CHANGELOG} events.a/1")]);
    }

    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_cut_writes_only_after_the_output_before_it_is_acknowledged() {
        let sink = Arc::new(FakeSink::default());
        let mut cuts = Cuts::new(tp(), sink.clone(), true);
        let alert = OutRecord::keyed("alerts.tier1", "s1", b"{}".to_vec());
        produce(sink.as_ref(), &alert, cuts.pending()).await;
        let mut s = staging(false);
        s.stage_owned(alerted("s1"));
        let records = s.cut(Meta::default(), true);
        let (reply, mut answer) = oneshot::channel();
        cuts.cut(records, Some(5), Some(reply)).await;
        settle().await;
        assert!(
            sink.sent_to(CHANGELOG).is_empty(),
            "the alert is not acknowledged"
        );
        assert!(answer.try_recv().is_err());

        assert_eq!(sink.ack_all().len(), 1, "the alert");
        settle().await;
        assert_eq!(sink.sent_to(CHANGELOG).len(), 2, "then the state");
        assert!(answer.try_recv().is_err(), "not acknowledged yet");
        sink.ack_all();
        settle().await;
        assert_eq!(answer.try_recv().unwrap().unwrap(), Some(5));
    }

    #[tokio::test]
    async fn a_cut_waits_for_the_cut_before() {
        let sink = Arc::new(FakeSink::default());
        let mut cuts = Cuts::new(tp(), sink.clone(), true);
        let out = |n: u8| OutRecord::keyed("alerts.tier1", vec![n], vec![n]);
        produce(sink.as_ref(), &out(1), cuts.pending()).await;
        cuts.cut(Vec::new(), Some(1), None).await;
        produce(sink.as_ref(), &out(2), cuts.pending()).await;
        let (reply, mut answer) = oneshot::channel();
        cuts.cut(Vec::new(), Some(2), Some(reply)).await;
        // The broker takes the second output only: the first cut sends the
        // first again and waits, and the second waits for the first.
        assert_eq!(sink.in_flight().len(), 2);
        sink.fail_first();
        sink.ack_all();
        settle().await;
        assert!(
            answer.try_recv().is_err(),
            "the first cut sends again first"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while sink.in_flight().is_empty() {
            assert!(Instant::now() < deadline, "never sent again");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sink.ack_all();
        settle().await;
        assert_eq!(answer.try_recv().unwrap().unwrap(), Some(2));
    }

    #[tokio::test]
    async fn a_stopped_task_drops_its_cuts_under_way() {
        let sink = Arc::new(FakeSink::default());
        let mut cuts = Cuts::new(tp(), sink.clone(), true);
        let alert = OutRecord::keyed("alerts.tier1", "s1", b"{}".to_vec());
        produce(sink.as_ref(), &alert, cuts.pending()).await;
        let mut s = staging(false);
        s.stage_owned(alerted("s1"));
        let (reply, answer) = oneshot::channel();
        cuts.cut(s.cut(Meta::default(), true), Some(1), Some(reply))
            .await;
        drop(cuts);
        sink.ack_all();
        settle().await;
        assert!(sink.sent_to(CHANGELOG).is_empty(), "no late write");
        assert!(answer.await.is_err(), "no answer: the checkpoint fails");
    }
}
