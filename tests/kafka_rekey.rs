//! State per another key over Kafka: purchases keyed by supplier, windows
//! kept per approver (SO-106) and per project and category (SO-105) through the
//! repartition topic, exactly-once, across a rebalance (a second instance
//! joins, then the first is killed with an event in flight): events
//! arriving as live traffic does, the alerts are exactly what `levee
//! replay` raises on the same events. Real broker, real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use support::*;

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Orders just under the tender threshold, untendered: each approver signs
/// one every few days, for suppliers and projects that change from order to
/// order; in time order, split into `phases`.
fn orders(tag: &str, phases: usize) -> Vec<Vec<String>> {
    let base = test_now() - chrono::Duration::days(120);
    let mut timed: Vec<(DateTime<Utc>, String)> = Vec::new();
    for approver in 0..4 {
        for n in 0..9 {
            let t = base
                + chrono::Duration::days((n * (5 + approver)) as i64)
                + chrono::Duration::minutes(approver as i64);
            let supplier = (n * 3 + approver) % 7;
            let project = (n + approver) % 3;
            timed.push((t, format!(
                r#"{{"event_id":"rk-{tag}-{approver}-{n}","type":"purchase","occurred_at":"{}","branch":"wuhan","project_id":"P-{tag}-{project}","category":"network_equipment","supplier_id":"S-{tag}-{supplier}","amount_cny":{},"method":"inquiry","bidder_count":3,"requester_id":"E1","approver_id":"A-{tag}-{approver}"}}"#,
                ts(t),
                476_000 + 1_000 * ((n + approver) % 20)
            )));
        }
    }
    timed.sort_by_key(|a| a.0);
    let per = timed.len().div_ceil(phases);
    timed
        .chunks(per)
        .map(|c| c.iter().map(|(_, l)| l.clone()).collect())
        .collect()
}

fn originals(alerts: &AlertSet) -> BTreeSet<(String, u64)> {
    alerts.keys().cloned().collect()
}

fn count(alerts: &AlertSet, cp: &str) -> usize {
    alerts.values().filter(|a| a["control_point"] == cp).count()
}

/// Produces `lines` one at a time, as live traffic comes: each once the one
/// before was evaluated on its input partition and forwarded (its two
/// copies, by approver and by project and category, committed on the
/// repartition topic). A backlog would reach the repartition topic from
/// several input partitions at once, interleaved, not in event time
/// (docs/contract.md, known gaps).
async fn live(setup: &Setup, lines: &[String], sent: &mut usize) {
    for line in lines {
        setup.produce_events(std::slice::from_ref(line)).await;
        *sent += 1;
        let deadline = Instant::now() + WAIT;
        loop {
            let forwarded = broker()
                .consume_all(&setup.repartition, WAIT)
                .await
                .unwrap();
            if forwarded.len() >= 2 * *sent {
                break;
            }
            assert!(Instant::now() < deadline, "event {sent} never forwarded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until every alert of `expected` is committed; then the committed
/// alerts.
async fn wait_all(setup: &Setup, expected: &AlertSet) -> Vec<Value> {
    setup.wait_for_alerts(expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_per_approver_over_purchases_keyed_by_supplier_fires_as_replay_says() {
    let setup = Setup::new("rekey").await;
    let config = setup.config("exactly_once", 0);
    let phases = orders("k", 3);
    let all: Vec<String> = phases.concat();
    let expected = replay(&setup, &all);
    // The replay keeps windows per approver and per project and category.
    assert!(count(&expected, "SO-106") >= 4, "{expected:?}");
    assert!(count(&expected, "SO-105") >= 4, "{expected:?}");
    for a in expected.values().filter(|a| a["control_point"] == "SO-106") {
        assert!(a["subject"].as_str().unwrap().starts_with("A-k-"), "{a}");
    }
    let started = Instant::now();

    let mut a = setup.spawn(&config, "a");
    a.wait_log("re-keyed copies: consuming the repartition topic", 1)
        .await;
    a.wait_assigned().await;
    let mut sent = 0;
    live(&setup, &phases[0], &mut sent).await;
    wait_all(&setup, &replay(&setup, &phases[0])).await;

    // A second instance joins: partitions of the inputs and of the
    // repartition topic move, with their state.
    let mut b = setup.spawn(&config, "b");
    b.wait_assigned().await;
    a.wait_log("partitions assigned", 2).await;
    b.wait_log("partition state restored", 1).await;
    live(&setup, &phases[1], &mut sent).await;
    wait_all(&setup, &replay(&setup, &phases[0..2].concat())).await;

    // The first is killed mid-stream: its transaction is aborted, its
    // partitions move back to b, which redoes the work.
    let (head, tail) = phases[2].split_at(phases[2].len() / 2);
    live(&setup, head, &mut sent).await;
    // One more in flight when a dies.
    let (in_flight, tail) = tail.split_first().unwrap();
    setup.produce_events(std::slice::from_ref(in_flight)).await;
    sent += 1;
    a.kill9();
    live(&setup, tail, &mut sent).await;
    let got = wait_all(&setup, &expected).await;
    assert_same_keys(&originals(&alert_keys(&got)), &originals(&expected));
    // Exactly once: no alert committed twice, across the kill.
    assert_no_duplicates(&got);
    // The same alerts, field for field where they do not depend on where
    // and when they were raised.
    let by_id: BTreeMap<&str, &Value> = got
        .iter()
        .map(|a| (a["alert_id"].as_str().unwrap(), a))
        .collect();
    for want in expected.values() {
        let got = by_id[want["alert_id"].as_str().unwrap()];
        for field in ["control_point", "tier", "subject", "event_id", "message_zh"] {
            assert_eq!(got[field], want[field], "{field} of {want}");
        }
    }
    // The re-keyed events went through the repartition topic, keyed by
    // approver or by project and category, never late.
    let forwarded = broker()
        .consume_all(&setup.repartition, WAIT)
        .await
        .unwrap();
    assert!(forwarded.len() >= 2 * all.len(), "{}", forwarded.len());
    assert!(forwarded.iter().all(|m| m
        .key_str()
        .is_some_and(|k| k.starts_with("A-k-") || k.starts_with("P-k-"))));
    assert!(setup.dlq().await.is_empty(), "nothing dead-lettered");
    let (status, log) = b.terminate().await;
    assert!(status.success(), "{log}");
    eprintln!(
        "rekey: {} alerts ({} SO-106, {} SO-105) in {:?}",
        expected.len(),
        count(&expected, "SO-106"),
        count(&expected, "SO-105"),
        started.elapsed()
    );
}

/// levee creates no topic: with rules that keep state per another key and
/// no repartition topic for its group, it stops at start-up naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_repartition_topic_stops_the_start_naming_it() {
    let setup = Setup::new("rekey_missing").await;
    let config = setup.config("at_least_once", 0);
    let group = format!("{}-elsewhere", setup.group);
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        &format!("group_id = \"{}\"", setup.group),
        &format!("group_id = \"{group}\""),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let mut levee = setup.spawn(&config, "a");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = levee.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running:\n{}",
            levee.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    let log = levee.log_text();
    assert!(
        log.contains(&format!(
            "the repartition topic {group}-repartition is missing: the rules keep state per \
             other keys (purchase@approver_id, purchase@project_id+category)"
        )),
        "{log}"
    );
}
