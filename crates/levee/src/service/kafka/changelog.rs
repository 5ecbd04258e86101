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
#[cfg(test)]
pub fn request_key(topic: &str, partition: i32, event_id: &str) -> String {
    format!("{}{event_id}", request_prefix(topic, partition))
}

/// What every request key of a partition begins with.
pub fn request_prefix(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}#request/")
}

/// What the key of every closed alert a partition keeps until it is
/// archived begins with (`events.marketing/3#closed/<first id>`).
pub fn closing_prefix(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}#closed/")
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
    /// At-least-once: requests decided and alerts closed (and those
    /// forgotten) since the last cut.
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
        let prefix = request_prefix(&self.tp.topic, self.tp.partition);
        self.kept(&prefix, event_id, Some(decision), forgotten)
    }

    /// A closed alert kept until archived (`closing`: its record; `None`: a
    /// tombstone, archived), and those `forgotten`; as [`Staging::answered`].
    pub fn closing(
        &mut self,
        first: &str,
        closing: Option<&[u8]>,
        forgotten: &[String],
    ) -> Vec<OutRecord> {
        let prefix = closing_prefix(&self.tp.topic, self.tp.partition);
        self.kept(&prefix, first, closing, forgotten)
    }

    /// Records kept beside the subjects under `prefix`: `id`'s (`None`: a
    /// tombstone) and tombstones of `forgotten`.
    fn kept(
        &mut self,
        prefix: &str,
        id: &str,
        payload: Option<&[u8]>,
        forgotten: &[String],
    ) -> Vec<OutRecord> {
        let record = |id: &str, payload: Option<&[u8]>| OutRecord {
            partition: Some(self.tp.partition),
            tombstone: payload.is_none(),
            ..OutRecord::keyed(
                &self.changelog,
                format!("{prefix}{id}"),
                payload.unwrap_or_default().to_vec(),
            )
        };
        let mut out: Vec<OutRecord> = forgotten.iter().map(|id| record(id, None)).collect();
        out.push(record(id, payload));
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
#[path = "changelog_tests.rs"]
mod tests;
