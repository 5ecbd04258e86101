//! The repartition stage on a fake sink: no broker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::Timestamp;
use tokio::sync::mpsc;

use super::*;
use crate::service::config::{load, Overrides};
use crate::service::kafka::delivery::fake::FakeSink;
use crate::service::kafka::partition::{PartitionTask, Shared};
use crate::service::kafka::rectify::Rectifications;
use crate::service::kafka::restore::{Restore, Restored};
use crate::service::kafka::work::Work;
use crate::service::reload::Rules;

const INPUT: &str = "events.procurement";
const REPARTITION: &str = "levee-repartition";

struct NothingToRestore;

impl Restore for NothingToRestore {
    fn restore(&self, _: &TopicPartition) -> Result<Restored, PipelineError> {
        Ok(Restored::default())
    }
}

fn message(
    topic: &str,
    offset: i64,
    key: &str,
    payload: &[u8],
    headers: Option<OwnedHeaders>,
) -> OwnedMessage {
    OwnedMessage::new(
        Some(payload.to_vec()),
        Some(key.as_bytes().to_vec()),
        topic.into(),
        Timestamp::CreateTime(crate::service::clock::now().timestamp_millis()),
        0,
        offset,
        headers,
    )
}

/// An untendered order just under the tender threshold, `days_ago`, signed
/// by `approver`, keyed by its supplier as producers key purchases.
fn purchase(offset: i64, days_ago: i64, supplier: &str, approver: &str) -> OwnedMessage {
    let at = crate::service::clock::now() - chrono::Duration::days(days_ago);
    let body = format!(
        r#"{{"event_id":"p{offset}","type":"purchase","occurred_at":"{}","branch":"wuhan","project_id":"P{offset}","category":"goods","supplier_id":"{supplier}","amount_cny":480000,"method":"inquiry","bidder_count":3,"requester_id":"E1","approver_id":"{approver}"}}"#,
        at.to_rfc3339()
    );
    message(INPUT, offset, supplier, body.as_bytes(), None)
}

fn task(tp: TopicPartition) -> (Arc<FakeSink>, mpsc::Sender<Work>) {
    let settings = load(None, Vec::new(), &Overrides::default()).unwrap();
    let rules = Rules::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules"))
        .unwrap_or_else(|d| panic!("the repository's rules: {d:?}"));
    let sink = Arc::new(FakeSink::default());
    let shared = Shared::new(
        &settings,
        Arc::new(rules),
        sink.clone(),
        Arc::new(NothingToRestore),
        Arc::new(Rectifications::new(10)),
    );
    assert_eq!(shared.repartition, REPARTITION, "named from the group id");
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(PartitionTask::new(tp, Arc::new(shared)).run(rx));
    (sink, tx)
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn header<'r>(r: &'r OutRecord, key: &str) -> &'r str {
    let hs = r.headers.as_ref().unwrap();
    let h = hs.iter().find(|h| h.key == key).unwrap();
    std::str::from_utf8(h.value.unwrap()).unwrap()
}

#[test]
fn the_topic_is_named_from_the_group_id() {
    assert_eq!(topic("levee"), "levee-repartition");
    assert_eq!(topic("levee-prod"), "levee-prod-repartition");
}

#[test]
fn headers_name_the_copy_and_the_upstream_or_the_record_is_refused() {
    let headers = |pairs: &[(&str, &str)]| {
        let mut h = OwnedHeaders::new();
        for (k, v) in pairs {
            h = h.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        Some(h)
    };
    let m = message(
        REPARTITION,
        0,
        "E1",
        b"{}",
        headers(&[
            (COPY, "purchase@approver_id"),
            (UPSTREAM, "events.procurement/3"),
            (WATERMARK, "100"),
        ]),
    );
    assert_eq!(
        read(&m).unwrap(),
        Forwarded {
            copy: "purchase@approver_id",
            upstream: "events.procurement/3",
            watermark: 100
        }
    );
    let m = message(REPARTITION, 0, "E1", b"{}", headers(&[(UPSTREAM, "x/0")]));
    assert_eq!(read(&m).unwrap_err(), Unreadable::NoCopy);
    let m = message(
        REPARTITION,
        0,
        "E1",
        b"{}",
        headers(&[(COPY, "purchase@approver_id"), (WATERMARK, "soon")]),
    );
    assert_eq!(read(&m).unwrap_err(), Unreadable::BadHeader(WATERMARK));
    let rejected = Rejected::from(Unreadable::NoCopy);
    assert_eq!(rejected.kind, "unknown_type");
}

#[test]
fn event_time_is_the_lowest_upstream_watermark() {
    let mut u = Upstreams::default();
    assert_eq!(u.observe("a/0", 100), 100);
    assert_eq!(u.observe("a/1", 50), 50);
    assert_eq!(
        u.observe("a/0", 200),
        50,
        "a lagging upstream holds it back"
    );
    assert_eq!(u.observe("a/1", 40), 50, "an upstream's only moves on");
    assert_eq!(u.observe("a/1", 300), 200);
}

/// What `levee run` does with SO-106 (one approver's orders just under the
/// tender threshold, for several suppliers): the supplier's partition
/// forwards each purchase keyed by its approver, and the approver's
/// partition, reading them, keeps the window per approver and alerts.
#[tokio::test]
async fn purchases_keyed_by_supplier_fire_a_window_per_approver_through_the_topic() {
    let (upstream, up) = task(TopicPartition::new(INPUT, 0));
    let orders = vec![
        purchase(0, 30, "S-1", "E61"),
        purchase(1, 20, "S-2", "E61"),
        purchase(2, 10, "S-3", "E61"),
        // Another approver's order of today: the upstream's watermark.
        purchase(3, 0, "S-9", "E99"),
    ];
    up.try_send(Work::Messages(orders)).unwrap();
    until("four forwarded", || {
        upstream.sent_to(REPARTITION).len() >= 8
    })
    .await;
    let mut forwarded: Vec<OutRecord> = upstream
        .sent_to(REPARTITION)
        .into_iter()
        .filter(|r| header(r, COPY) == "purchase@approver_id")
        .collect();
    assert_eq!(forwarded.len(), 4);
    for r in &forwarded[..3] {
        assert_eq!(r.key.as_deref(), Some(&b"E61"[..]), "keyed by the approver");
        assert_eq!(header(r, UPSTREAM), "events.procurement/0");
    }
    // Per supplier, nothing: one order each.
    assert!(upstream
        .sent_to("alerts.tier1")
        .iter()
        .all(|r| !String::from_utf8_lossy(&r.payload).contains("SO-106")));
    // By project and category too (SO-105): one project each, so nothing
    // fires there.
    let by_project = upstream
        .sent_to(REPARTITION)
        .iter()
        .filter(|r| header(r, COPY) == "purchase@project_id+category")
        .count();
    assert_eq!(by_project, 4);

    let (downstream, down) = task(TopicPartition::new(REPARTITION, 0));
    // Today's order first: the others are weeks behind it, and a copy is
    // never late (its event was judged upstream).
    forwarded.rotate_right(1);
    let records: Vec<OwnedMessage> = forwarded
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let key = std::str::from_utf8(r.key.as_deref().unwrap()).unwrap();
            message(REPARTITION, i as i64, key, &r.payload, r.headers.clone())
        })
        .collect();
    down.try_send(Work::Messages(records)).unwrap();
    until("SO-106 per approver", || {
        downstream
            .sent_to("alerts.tier1")
            .iter()
            .any(|r| String::from_utf8_lossy(&r.payload).contains("\"SO-106\""))
    })
    .await;
    let alerts = downstream.sent_to("alerts.tier1");
    let so106: Vec<serde_json::Value> = alerts
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .filter(|a: &serde_json::Value| a["control_point"] == "SO-106")
        .collect();
    assert_eq!(so106.len(), 1, "{so106:?}");
    assert_eq!(so106[0]["subject"], "E61");
    assert_eq!(so106[0]["event_type"], "purchase");
    // Nothing was dead-lettered (late, misrouted) and nothing forwarded again.
    assert!(downstream.sent_to("events.dlq").is_empty());
    assert!(downstream.sent_to(REPARTITION).is_empty());
    // A copy answers no request: no verdict of its own.
    assert!(downstream.sent_to("decisions").is_empty());
}
