//! Changelog staging and cuts on a fake sink: no broker.

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
