//! Tables read from their topics while `levee run` runs (issue 16, Done-when
//! 1): a row produced to a table topic changes the verdict of the next
//! event dated after its `valid_from`, and not of an event dated before it
//! that is processed later; no restart, no reload.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/http.rs"]
mod http;
mod support;

use std::time::{Duration, Instant};

use levee_testkit::{unique_topic_prefix, Record};
use serde_json::Value;
use support::*;

/// The workspace's rules, their table topics renamed under `prefix`.
fn rules_with_table_topics(dir: &std::path::Path, prefix: &str) -> std::path::PathBuf {
    let to = dir.join("rules");
    copy_dir(&workspace().join("rules"), &to);
    for f in std::fs::read_dir(to.join("tables")).unwrap() {
        let path = f.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("topic: tables.", &format!("topic: {prefix}.")),
        )
        .unwrap();
    }
    to
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn purchase(id: &str, supplier: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    serde_json::json!({
        "event_id": id, "type": "purchase", "occurred_at": beijing(at), "branch": "wuhan",
        "project_id": format!("P-{id}"), "supplier_id": supplier, "amount_cny": 1000,
        "method": "inquiry", "bidder_count": 3, "requester_id": "E1", "approver_id": "E2"
    })
    .to_string()
}

/// The SM-001 alerts so far, by event id.
async fn sm001(setup: &Setup) -> Vec<String> {
    setup
        .alerts()
        .await
        .iter()
        .filter(|a| a["control_point"] == "SM-001")
        .map(|a| a["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_produced_while_running_changes_the_next_verdict_as_of_event_time() {
    let tables = unique_topic_prefix("tables");
    let scratch = tempfile::tempdir().unwrap();
    let rules = rules_with_table_topics(scratch.path(), &tables);
    let setup = Setup::with("tables_live", Some(rules)).await;
    let blacklist = format!("{tables}.supplier_blacklist");
    let topics: Vec<String> = [
        "fleet",
        "designated_stations",
        "supplier_blacklist",
        "roles",
    ]
    .iter()
    .map(|t| format!("{tables}.{t}"))
    .collect();
    let specs: Vec<(&str, i32)> = topics.iter().map(|t| (t.as_str(), 2)).collect();
    broker().create_topics(&specs).await.unwrap();
    // Before levee starts: one supplier already on the list.
    let now = test_now();
    let row = |supplier: &str, from: chrono::DateTime<chrono::Utc>| {
        Record::new(
            serde_json::json!({"supplier_id": supplier, "reason": "test", "valid_from": rfc3339(from)})
                .to_string(),
        )
        .key(supplier.to_owned())
    };
    broker()
        .produce(
            &blacklist,
            [row("SUP-OLD", now - chrono::Duration::days(30))],
        )
        .await
        .unwrap();

    let mut levee = setup.spawn(&setup.config("at_least_once", 0), "a");
    levee
        .wait_log("tables read to the end of their topics", 1)
        .await;
    levee.wait_assigned().await;
    assert!(
        levee.log_text().contains("supplier_blacklist=1"),
        "the topic's rows replace the rules' rows:\n{}",
        levee.log_text()
    );

    // Read before anything was evaluated: the first event already sees it.
    setup
        .produce_events(&[purchase("e0", "SUP-OLD", now - chrono::Duration::hours(1))])
        .await;
    // Blacklisted from a day ago, while levee runs.
    let from = now - chrono::Duration::days(1);
    broker()
        .produce(&blacklist, [row("SUP-LIVE", from)])
        .await
        .unwrap();
    // The reader polls every 200 ms; the group consumer fetches
    // independently, so give the row its moment.
    tokio::time::sleep(Duration::from_secs(3)).await;
    setup
        .produce_events(&[
            // Dated after valid_from: blocked.
            purchase("e1", "SUP-LIVE", now - chrono::Duration::hours(2)),
            // Dated before valid_from, processed after: not.
            purchase("e2", "SUP-LIVE", from - chrono::Duration::hours(1)),
            // A marker after it on the same key (same partition, in order).
            purchase("e3", "SUP-LIVE", now - chrono::Duration::minutes(30)),
        ])
        .await;

    let deadline = Instant::now() + WAIT;
    let got = loop {
        let got = sm001(&setup).await;
        if ["e0", "e1", "e3"]
            .iter()
            .all(|e| got.iter().any(|g| g == e))
        {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "SM-001 alerts so far: {got:?}\n{}",
            levee.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(!got.iter().any(|g| g == "e2"), "{got:?}");

    // /v1/evaluate reads the same rows, as of the request's time.
    let addr = http::http_address(&mut levee).await;
    let verdict = |body: String| {
        let r = http::request(addr, "POST", "/v1/evaluate", &[], body.as_bytes()).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["verdict"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        verdict(purchase("h1", "SUP-LIVE", now - chrono::Duration::hours(1))),
        "block"
    );
    assert_eq!(
        verdict(purchase(
            "h2",
            "SUP-LIVE",
            from - chrono::Duration::hours(1)
        )),
        "allow"
    );

    // A tombstone deletes the row: the next event passes.
    broker()
        .produce(&blacklist, [Record::tombstone("SUP-LIVE")])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    setup
        .produce_events(&[
            purchase("e4", "SUP-LIVE", now - chrono::Duration::minutes(20)),
            // A marker on the same key: self-approved (SO-002).
            purchase("e5", "SUP-LIVE", now - chrono::Duration::minutes(10))
                .replace("\"E2\"", "\"E1\""),
        ])
        .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let all = setup.alerts().await;
        if all
            .iter()
            .any(|a| a["event_id"] == "e5" && a["control_point"] == "SO-002")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no SO-002 on e5: {all:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let got = sm001(&setup).await;
    assert!(!got.iter().any(|g| g == "e4" || g == "e5"), "{got:?}");
    let alert: Vec<Value> = setup.alerts().await;
    let e1 = alert
        .iter()
        .find(|a| a["event_id"] == "e1" && a["control_point"] == "SM-001")
        .unwrap();
    assert_eq!(
        e1["evidence"]["exists(\"supplier_blacklist\", supplier_id)"],
        true
    );
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}

/// Issue 16: a table a reload brings, with a `topic:`, is read from its
/// topic to the end before the reloaded rules evaluate anything, then
/// followed; the rules' rows do not decide meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_a_reload_brings_is_read_from_its_topic_and_followed() {
    let tables = unique_topic_prefix("tables");
    let scratch = tempfile::tempdir().unwrap();
    let rules = rules_with_table_topics(scratch.path(), &tables);
    let file = rules.join("tables/organisation.yaml");
    let with_topic = std::fs::read_to_string(&file).unwrap();
    let topic_line = format!("    topic: {tables}.declared_interests\n");
    assert!(with_topic.contains(&topic_line));
    // At start-up the table has no topic: the rules' rows.
    std::fs::write(&file, with_topic.replace(&topic_line, "")).unwrap();
    let setup = Setup::with("tables_reload", Some(rules)).await;
    let interests = format!("{tables}.declared_interests");
    broker()
        .create_topics(&[(interests.as_str(), 2)])
        .await
        .unwrap();
    let row = |employee: &str, supplier: &str| {
        Record::new(
            serde_json::json!({"employee_id": employee, "supplier_id": supplier, "relation": "test", "valid_from": "2025-01-01"})
                .to_string(),
        )
        .key(format!("{employee}|{supplier}"))
    };
    broker()
        .produce(&interests, [row("E-RL1", "SUP-RL1")])
        .await
        .unwrap();

    // No table topic of the rules in force exists: none is read.
    let mut levee = setup.spawn(&setup.config("at_least_once", 0), "a");
    levee.wait_assigned().await;
    let addr = http::http_address(&mut levee).await;
    let deadline = Instant::now() + WAIT;
    while http::request(addr, "GET", "/readyz", &[], b"")
        .unwrap()
        .status
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "never ready:\n{}",
            levee.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = test_now();
    let verdict = |id: &str, requester: &str, supplier: &str| {
        let body = purchase(id, supplier, now - chrono::Duration::hours(1))
            .replace("\"E1\"", &format!("\"{requester}\""));
        let r = http::request(addr, "POST", "/v1/evaluate", &[], body.as_bytes()).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["verdict"].as_str().unwrap().to_owned()
    };
    // The rules' rows: E-PR-WH07 declared SUP-3101; the topic's row unread.
    assert_eq!(verdict("r0", "E-PR-WH07", "SUP-3101"), "block");
    assert_eq!(verdict("r1", "E-RL1", "SUP-RL1"), "allow");

    // The reload brings the topic: read before the new rules decide.
    std::fs::write(&file, &with_topic).unwrap();
    levee.signal("HUP");
    levee
        .wait_log("tables a reload brought read to the end of their topics", 1)
        .await;
    levee.wait_log("rules reloaded", 1).await;
    assert_eq!(verdict("r2", "E-RL1", "SUP-RL1"), "block");
    // The topic's rows replaced the rules' rows.
    assert_eq!(verdict("r3", "E-PR-WH07", "SUP-3101"), "allow");

    // Followed from there: a row produced now is read.
    broker()
        .produce(&interests, [row("E-RL2", "SUP-RL2")])
        .await
        .unwrap();
    // A request of its own each time: a request decided by the stream is
    // answered again by its event id, with the decision it first got.
    let deadline = Instant::now() + WAIT;
    let mut attempt = 0;
    while verdict(&format!("r4-{attempt}"), "E-RL2", "SUP-RL2") != "block" {
        attempt += 1;
        assert!(
            Instant::now() < deadline,
            "the row produced after the reload is not read:\n{}",
            levee.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}
