//! A partition task on a fake sink and a fixed restore: no broker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Mutex;

use rdkafka::message::Timestamp;
use tokio::task::JoinHandle;

use super::super::changelog::Meta;
use super::super::delivery::fake::FakeSink;
use super::super::restore::Restored;
use super::*;
use crate::service::config::{load, Overrides};

const CHANGELOG: &str = "levee.state-changelog";
const INPUT: &str = "events.vehicle_fuel";

/// A restore that returns what it was given (once; empty after).
struct FixedRestore(Mutex<Option<Result<Restored, PipelineError>>>);

impl Restore for FixedRestore {
    fn restore(&self, _: &TopicPartition) -> Result<Restored, PipelineError> {
        let mut r = self.0.lock().unwrap();
        match r.as_ref() {
            Some(Err(e)) => Err(e.clone()),
            _ => r.take().unwrap_or_else(|| Ok(Restored::default())),
        }
    }
}

struct Task {
    sink: Arc<FakeSink>,
    tx: mpsc::Sender<Work>,
    handle: JoinHandle<()>,
}

fn start(exactly_once: bool, restored: Result<Restored, PipelineError>) -> Task {
    let mut settings = load(None, Vec::new(), &Overrides::default()).unwrap();
    if exactly_once {
        settings.delivery = crate::service::config::Delivery::ExactlyOnce;
    }
    let rules = Rules::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules"))
        .unwrap_or_else(|d| panic!("the repository's rules: {d:?}"));
    let sink = Arc::new(FakeSink::default());
    let shared = Shared::new(
        &settings,
        Arc::new(rules),
        sink.clone(),
        Arc::new(FixedRestore(Mutex::new(Some(restored)))),
        Arc::new(Rectifications::new(10)),
    );
    let (tx, rx) = mpsc::channel(8);
    let task = PartitionTask::new(TopicPartition::new(INPUT, 0), Arc::new(shared));
    let handle = tokio::spawn(task.run(rx));
    Task { sink, tx, handle }
}

/// A trip of vehicle E-A1234: 15 L is its standard; more than 18 L alerts
/// (VF-001, tier 1).
fn trip(offset: i64, id: &str, fuel_l: f64, occurred_at: &str) -> OwnedMessage {
    let body = format!(
        r#"{{"event_id":"{id}","type":"trip","occurred_at":"{occurred_at}","branch":"wuhan","vehicle_id":"E-A1234","driver_id":"D-0101","distance_km":150,"fuel_used_l":{fuel_l},"standard_l_per_100km":10}}"#
    );
    OwnedMessage::new(
        Some(body.into_bytes()),
        Some(b"E-A1234".to_vec()),
        INPUT.into(),
        Timestamp::CreateTime(0),
        0,
        offset,
        None,
    )
}

fn quiet(offset: i64) -> OwnedMessage {
    trip(
        offset,
        &format!("q{offset}"),
        15.0,
        "2026-11-02T09:15:00+08:00",
    )
}

fn alerting(offset: i64) -> OwnedMessage {
    trip(
        offset,
        &format!("a{offset}"),
        18.5,
        "2026-11-02T14:40:00+08:00",
    )
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The partition records written to the changelog so far.
fn metas(sink: &FakeSink) -> Vec<Meta> {
    let key = format!("{INPUT}/0").into_bytes();
    sink.sent_to(CHANGELOG)
        .iter()
        .filter(|r| r.key.as_deref() == Some(key.as_slice()))
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect()
}

fn alerts(sink: &FakeSink) -> usize {
    sink.sent_to("alerts.tier1").len()
}

fn barrier(tx: &mpsc::Sender<Work>) -> oneshot::Receiver<BarrierReply> {
    let (reply, answer) = oneshot::channel();
    tx.try_send(Work::Barrier(reply)).unwrap();
    answer
}

#[tokio::test]
async fn a_checkpoint_waits_for_its_deliveries_then_writes_state() {
    let t = start(false, Ok(Restored::default()));
    t.tx.try_send(Work::Messages(vec![quiet(0), alerting(1)]))
        .unwrap();
    let mut answer = barrier(&t.tx);
    until("the alert", || alerts(&t.sink) == 1).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        metas(&t.sink).is_empty(),
        "state before its output is delivered"
    );
    assert!(answer.try_recv().is_err());

    t.sink.ack_where(|r| r.topic != CHANGELOG);
    until("the state", || !metas(&t.sink).is_empty()).await;
    assert!(
        answer.try_recv().is_err(),
        "answered before the state is delivered"
    );
    assert_eq!(metas(&t.sink).last().unwrap().next_offset, 2);

    t.sink.ack_all();
    let next = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next, Some(2));
    t.handle.abort();
}

#[tokio::test]
async fn a_barrier_covers_what_came_before_it_and_a_revoke_drops_the_rest() {
    let t = start(false, Ok(Restored::default()));
    t.tx.try_send(Work::Messages(vec![quiet(0), alerting(1)]))
        .unwrap();
    let first = barrier(&t.tx);
    t.tx.try_send(Work::Messages(vec![alerting(2)])).unwrap();
    let mut second = barrier(&t.tx);
    // Evaluation goes on while the first checkpoint waits.
    until("both alerts", || alerts(&t.sink) == 2).await;

    // The first alert's delivery (with its copies per person, the same
    // bytes) answers the first barrier only.
    let first_alert = t
        .sink
        .in_flight()
        .into_iter()
        .find(|r| r.topic == "alerts.tier1")
        .unwrap();
    let copies = t
        .sink
        .in_flight()
        .iter()
        .filter(|r| r.topic == "levee-people" && r.payload == first_alert.payload)
        .count();
    assert!(copies >= 1, "the alert is copied to its people's files");
    t.sink.ack_where(|r| r.payload == first_alert.payload);
    until("the first cut", || !metas(&t.sink).is_empty()).await;
    t.sink
        .ack_where(|r| r.topic == CHANGELOG || r.topic == "profiles");
    let next = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next, Some(2), "offset 2 came after the barrier");

    // Revoked now (as the coordinator stops a task): the second cut waits
    // for offset 2's alert and is dropped with the task.
    t.handle.abort();
    assert!(t.handle.await.unwrap_err().is_cancelled());
    t.sink.ack_all();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        metas(&t.sink).iter().all(|m| m.next_offset == 2),
        "no state written after the revoke: {:?}",
        metas(&t.sink)
    );
    assert!(
        second.try_recv().is_err(),
        "the second barrier is never answered"
    );
}

#[tokio::test]
async fn exactly_once_answers_at_once_with_the_state_sent() {
    let t = start(true, Ok(Restored::default()));
    t.tx.try_send(Work::Messages(vec![quiet(0), alerting(1)]))
        .unwrap();
    let answer = barrier(&t.tx);
    // Nothing acknowledged: the transaction commit waits for that.
    let next = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next, Some(2));
    assert_eq!(alerts(&t.sink), 1);
    assert_eq!(metas(&t.sink).last().unwrap().next_offset, 2);
    t.handle.abort();
}

#[tokio::test]
async fn restored_offsets_are_skipped_and_a_watermark_ahead_is_clamped() {
    let ten_years = clock::now_secs() + 10 * 365 * 86_400;
    let restored = Restored {
        meta: Some(Meta {
            next_offset: 1,
            watermark: ten_years,
        }),
        ..Restored::default()
    };
    let t = start(true, Ok(restored));
    t.tx.try_send(Work::Messages(vec![alerting(0), alerting(1)]))
        .unwrap();
    let answer = barrier(&t.tx);
    assert_eq!(answer.await.unwrap().unwrap(), Some(2));
    assert_eq!(
        alerts(&t.sink),
        0,
        "offset 0 is in the state; offset 1 is late"
    );
    let dlq = t.sink.sent_to("events.dlq");
    assert_eq!(dlq.len(), 1);
    // Clamped to now + state.max_future_skew (now: the service's clock,
    // which another test may move by 400 days for a moment).
    let bound = clock::now_secs() + 3600;
    let watermark = metas(&t.sink).last().unwrap().watermark;
    assert!(
        watermark >= bound - 60 && watermark < ten_years,
        "watermark {watermark}, bound {bound}"
    );
    t.handle.abort();
}

#[tokio::test]
async fn an_event_from_the_future_is_dead_lettered_and_moves_nothing() {
    let t = start(true, Ok(Restored::default()));
    let future = trip(0, "f0", 18.5, "2099-01-01T00:00:00Z");
    t.tx.try_send(Work::Messages(vec![future, alerting(1)]))
        .unwrap();
    let answer = barrier(&t.tx);
    assert_eq!(answer.await.unwrap().unwrap(), Some(2));
    let dlq = t.sink.sent_to("events.dlq");
    assert_eq!(dlq.len(), 1);
    let payload = String::from_utf8_lossy(&dlq[0].payload).into_owned();
    assert!(payload.contains("2099"), "the event as it came: {payload}");
    assert_eq!(alerts(&t.sink), 1, "the next event is not late");
    assert!(metas(&t.sink).last().unwrap().watermark < clock::now_secs());
    t.handle.abort();
}

#[tokio::test]
async fn a_partition_that_cannot_be_restored_fails_its_checkpoints() {
    let why = PipelineError::Misconfigured("too few partitions".into());
    let t = start(false, Err(why));
    t.tx.try_send(Work::Messages(vec![alerting(0)])).unwrap();
    let answer = barrier(&t.tx);
    let e = answer.await.unwrap().unwrap_err();
    assert_eq!(e.retry(), Retry::Fatal);
    assert_eq!(e.to_string(), "too few partitions");
    assert!(t.sink.log.lock().unwrap().is_empty(), "nothing evaluated");
    t.handle.abort();
}
