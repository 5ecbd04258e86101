//! Stateful control points over Kafka: escalation and rectification end to
//! end, and state that moves with its partition (a second instance joins,
//! one is killed, a restart) continuing exactly as an uninterrupted
//! `levee replay` of the same events. Real broker, real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use levee_testkit::Record;
use serde_json::Value;
use support::*;

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn arrears(id: &str, customer: &str, t: DateTime<Utc>, amount: u32, months: u32) -> String {
    format!(
        r#"{{"event_id":"{id}","type":"arrears_snapshot","occurred_at":"{}","branch":"wuhan","group_customer_id":"{customer}","customer_manager_id":"M-{customer}","arrears_cny":{amount},"overdue_months":{months},"credit_limit_cny":50000}}"#,
        ts(t)
    )
}

/// The event's subject: its type's key field, as the contract keys messages.
fn subject_of(line: &str) -> String {
    let v: Value = serde_json::from_str(line).unwrap();
    let field = match v["type"].as_str().unwrap() {
        "arrears_snapshot" => "group_customer_id",
        "purchase" => "supplier_id",
        "refuel" => "vehicle_id",
        other => panic!("no key for {other}"),
    };
    v[field].as_str().unwrap().to_owned()
}

/// Produces events keyed by subject (`partition`: all to that one).
async fn produce_keyed(setup: &Setup, lines: &[String], partition: Option<i32>) {
    let mut by_topic: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for line in lines {
        let mut r = Record::new(line.as_bytes().to_vec()).key(subject_of(line));
        if let Some(p) = partition {
            r = r.partition(p);
        }
        by_topic
            .entry(setup.topic_of(line.as_bytes()))
            .or_default()
            .push(r);
    }
    for (topic, records) in by_topic {
        broker().produce(&topic, records).await.unwrap();
    }
}

async fn rectify(setup: &Setup, alert_id: &str, status: &str) {
    let body = format!(
        r#"{{"alert_id":"{alert_id}","status":"{status}","by":"auditor-1","at":"{}"}}"#,
        rfc3339(test_now())
    );
    broker()
        .produce(&setup.rectification, [Record::new(body).key(alert_id)])
        .await
        .unwrap();
}

/// Waits for an alert matching `pred`.
async fn wait_alert(setup: &Setup, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(a) = setup.alerts().await.into_iter().find(|a| pred(a)) {
            return a;
        }
        assert!(Instant::now() < deadline, "no {what} after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the profiles topic shows `subject` with `field` >= `n`.
async fn wait_profile(setup: &Setup, subject: &str, field: &str, n: u64) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let profiles = broker().consume_all(&setup.profiles, WAIT).await.unwrap();
        let last = profiles
            .iter()
            .filter(|m| m.key_str() == Some(subject))
            .filter_map(|m| serde_json::from_slice::<Value>(m.payload.as_deref()?).ok())
            .next_back();
        if let Some(p) = last {
            if p[field].as_u64().unwrap_or(0) >= n {
                return p;
            }
        }
        assert!(
            Instant::now() < deadline,
            "profile of {subject} never had {field} >= {n}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn ba101(event_id: &str) -> String {
    levee_engine::alert_id("arrears_snapshot", event_id, "BA-101")
}

/// Whether `to` is 30 days after `from` (RFC 3339 times; deadlines are
/// whole seconds, `detected_at` has milliseconds).
fn thirty_days(from: &Value, to: &Value) -> bool {
    let t = |v: &Value| at(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")));
    let secs = (t(to) - t(from)).num_seconds();
    (30 * 86_400 - 1..=30 * 86_400).contains(&secs)
}

/// The rectification period runs on the clock that raised the alert: a
/// backlog event (90 days old) raises BA-101 at tier 1 with `rectify_by`
/// 30 days after detection, and nothing escalates while levee's clock is
/// short of that. Restarted with its clock 31 days on, the deadlines
/// survive the restore and the unrectified alerts escalate by the wall
/// clock, with no new event; rectified ones do not, also when the
/// rectification came before the alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrectified_alerts_escalate_on_the_clock_that_raised_them() {
    let setup = Setup::new("escalation").await;
    let config = setup.config_with("at_least_once", 0, "[state]\ntick_interval_ms = 200\n");
    let mut levee = setup.spawn(&config, "a");
    levee.wait_assigned().await;

    let now = test_now();
    // The backlog first: after the others on its partition it would be late.
    let events = [
        arrears(
            "e-backlog",
            "G-backlog",
            now - chrono::Duration::days(90),
            45_000,
            4,
        ),
        arrears(
            "e-open",
            "G-open",
            now - chrono::Duration::days(2),
            45_000,
            4,
        ),
        arrears(
            "e-rect",
            "G-rect",
            now - chrono::Duration::days(2),
            45_000,
            4,
        ),
    ];
    // Rectified before its alert exists.
    rectify(&setup, &ba101("e-early"), "dismissed").await;
    produce_keyed(&setup, &events, None).await;
    let mut raised = Vec::new();
    for id in ["e-open", "e-rect", "e-backlog"] {
        let want = ba101(id);
        raised.push(wait_alert(&setup, "BA-101 tier 1", |a| a["alert_id"] == want.as_str()).await);
    }
    for a in &raised {
        assert_eq!(a["tier"], 1, "{a}");
        assert!(
            thirty_days(&a["detected_at"], &a["rectify_by"]),
            "30 days from detection, not from the event: {a}"
        );
        assert!(a["rectify_by"].as_str().unwrap().ends_with("+08:00"), "{a}");
    }
    produce_keyed(
        &setup,
        &[arrears(
            "e-early",
            "G-early",
            now - chrono::Duration::days(1),
            45_000,
            4,
        )],
        None,
    )
    .await;
    let early = ba101("e-early");
    wait_alert(&setup, "BA-101 of e-early", |a| {
        a["alert_id"] == early.as_str()
    })
    .await;
    rectify(&setup, &ba101("e-rect"), "rectified").await;
    // Profiles are keyed by the typed subject (BA-101's: group_customer_id).
    wait_profile(&setup, "group_customer:G-rect", "rectified", 1).await;
    wait_profile(&setup, "group_customer:G-early", "dismissed", 1).await;

    // Several ticks on the clock that raised them: nothing is due yet, the
    // 90-day-old event included.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let escalated: Vec<_> = setup
        .alerts()
        .await
        .into_iter()
        .filter(|a| !a["escalated_from"].is_null())
        .collect();
    assert!(escalated.is_empty(), "escalated early: {escalated:?}");
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");

    // 31 days later: the restored deadlines are due on the wall clock.
    let later = setup.config_at(
        "at_least_once",
        0,
        "[state]\ntick_interval_ms = 200\n",
        31 * 86_400,
    );
    let mut levee = setup.spawn(&later, "a");
    levee.wait_log("partition state restored", 1).await;
    for id in ["e-open", "e-backlog"] {
        let from = ba101(id);
        let escalated = wait_alert(&setup, "escalation", |a| {
            a["escalated_from"] == from.as_str()
        })
        .await;
        assert_eq!(escalated["tier"], 2);
        assert_eq!(escalated["notify"], "branch_leadership");
        assert_eq!(escalated["control_point"], "BA-101");
        assert!(
            thirty_days(&escalated["detected_at"], &escalated["rectify_by"]),
            "the next period starts at the escalation: {escalated}"
        );
    }
    // Settle: nothing escalates from the rectified ones.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alerts = setup.alerts().await;
    for id in [ba101("e-rect"), ba101("e-early")] {
        assert!(
            alerts.iter().all(|a| a["escalated_from"] != id.as_str()),
            "{id} was rectified but escalated"
        );
    }
    let tier2: Vec<_> = alerts
        .iter()
        .filter(|a| a["tier"] == 2 && a["control_point"] == "BA-101")
        .collect();
    assert_eq!(tier2.len(), 2, "{tier2:?}");
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}

/// An event stamped in 2099 in the middle of a stream goes to the DLQ as
/// `future` and touches nothing: the events after it alert exactly as the
/// stream without it does, over the broker and in `levee replay`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_from_the_future_is_dead_lettered_and_changes_nothing() {
    let setup = Setup::new("future").await;
    let phases = stateful_events("fut", 2);
    let clean: Vec<String> = phases.concat();
    let expected = replay(&setup, &clean);
    // The 2099 snapshot of a customer whose windows are open, between the
    // two halves: taken into account, it would make every later event of
    // its partition late and expire the state.
    let subject = "G-fut-0";
    let from_2099 = arrears("f-2099", subject, at("2099-01-01T00:00:00Z"), 95_000, 9);
    let mut stream = phases[0].clone();
    stream.push(from_2099.clone());
    stream.extend(phases[1].iter().cloned());

    // Replay: the same alerts, the line reported as `future`.
    let out = replay_output(&setup, &stream);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(future)"), "{stderr}");
    let replayed: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_same(&replayed, &expected);

    // Over the broker: all on one partition, keyed by subject.
    let config = setup.config("at_least_once", 0);
    let levee = setup.spawn(&config, "a");
    produce_keyed(&setup, &stream, Some(0)).await;
    let got = wait_all(&setup, &expected).await;
    assert_same(&got, &expected);
    let dead = setup.wait_dlq(1).await;
    assert_eq!(dead.len(), 1, "only the 2099 event is dead-lettered");
    assert_eq!(dead[0].payload.as_deref(), Some(from_2099.as_bytes()));
    assert_eq!(dead[0].header("levee.error.kind"), Some(&b"future"[..]));
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}

/// Timestamped events of SO-101 (split purchases, 30-day windows), FC-101
/// (refuels within 24 hours) and CC-101 (arrears over the limit for 60
/// days), each subject's events spread over `phases` phases, every phase in
/// event-time order.
fn stateful_events(tag: &str, phases: usize) -> Vec<Vec<String>> {
    // Long enough ago for every window and duration to play out.
    let base = test_now() - chrono::Duration::days(150);
    let mut timed: Vec<(DateTime<Utc>, usize, String)> = Vec::new();
    let steps = 6;
    for s in 0..8 {
        for j in 0..steps {
            let phase = j * phases / steps;
            // SO-101: orders 6..10 days apart, each under 500,000.
            let t = base
                + chrono::Duration::days((j * (6 + s % 5)) as i64)
                + chrono::Duration::minutes(s as i64);
            timed.push((t, phase, format!(
                r#"{{"event_id":"p-{tag}-{s}-{j}","type":"purchase","occurred_at":"{}","branch":"wuhan","project_id":"P-{s}","supplier_id":"S-{tag}-{s}","amount_cny":{},"method":"inquiry","bidder_count":3,"requester_id":"E1","approver_id":"E2"}}"#,
                ts(t), 150_000 + 10_000 * (s % 3) + 1000 * j
            )));
            // FC-101: refuels 4..11 hours apart.
            let t = base
                + chrono::Duration::hours((j * (4 + s)) as i64)
                + chrono::Duration::minutes(s as i64);
            timed.push((t, phase, format!(
                r#"{{"event_id":"f-{tag}-{s}-{j}","type":"refuel","occurred_at":"{}","branch":"wuhan","vehicle_id":"V-{tag}-{s}","fuel_card_id":"C-{s}","liters":{},"amount_cny":300,"tank_capacity_l":60,"station_id":"ST-1"}}"#,
                ts(t), 30 + 5 * (s % 4)
            )));
            // CC-101: snapshots 20 days apart; odd customers dip under the
            // limit once, which restarts the duration.
            let t = base
                + chrono::Duration::days((j * 20) as i64)
                + chrono::Duration::minutes(s as i64);
            let amount = if s % 2 == 1 && j == 2 {
                40_000
            } else {
                60_000 + 30_000 * (s % 3) as u32
            };
            timed.push((
                t,
                phase,
                arrears(
                    &format!("a-{tag}-{s}-{j}"),
                    &format!("G-{tag}-{s}"),
                    t,
                    amount,
                    1,
                ),
            ));
        }
    }
    timed.sort_by_key(|a| a.0);
    let mut out = vec![Vec::new(); phases];
    for (_, phase, line) in timed {
        out[phase].push(line);
    }
    out
}

/// The alerts to compare: all but escalations (which depend on each
/// partition's watermark and the wall clock, tested above).
fn originals(alerts: &AlertSet) -> BTreeSet<(String, u64)> {
    alerts
        .iter()
        .filter(|(_, a)| a["escalated_from"].is_null())
        .map(|(k, _)| k.clone())
        .collect()
}

fn assert_same(got: &[Value], expected: &AlertSet) {
    assert_same_keys(&originals(&alert_keys(got)), &originals(expected));
}

fn control_points(expected: &AlertSet) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for a in expected.values() {
        *n.entry(a["control_point"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    n
}

async fn wait_all(setup: &Setup, expected: &AlertSet) -> Vec<Value> {
    let want: AlertSet = expected
        .iter()
        .filter(|(_, a)| a["escalated_from"].is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    setup.wait_for_alerts(&want).await
}

/// A second instance joins (partitions move to it, their state restored
/// from the changelog), then the first is killed mid-stream (its partitions
/// move back): the alerts are exactly an uninterrupted replay's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_partitions_continue_windows_and_durations_like_replay() {
    let setup = Setup::new("moved").await;
    let config = setup.config("at_least_once", 0);
    let phases = stateful_events("m", 3);
    let all: Vec<String> = phases.concat();
    let expected = replay(&setup, &all);
    let cps = control_points(&expected);
    for cp in ["SO-101", "FC-101", "CC-101"] {
        assert!(
            cps.get(cp).copied().unwrap_or(0) >= 4,
            "{cp} fires in the replay: {cps:?}"
        );
    }
    let started = Instant::now();

    let mut a = setup.spawn(&config, "a");
    a.wait_assigned().await;
    produce_keyed(&setup, &phases[0], None).await;
    wait_all(&setup, &replay(&setup, &phases[0])).await;

    let mut b = setup.spawn(&config, "b");
    b.wait_assigned().await;
    a.wait_log("partitions assigned", 2).await;
    b.wait_log("partition state restored", 1).await;
    produce_keyed(&setup, &phases[1], None).await;
    wait_all(&setup, &replay(&setup, &phases[0..2].concat())).await;

    // Killed mid-stream: half of the last phase is in when a dies.
    let (head, tail) = phases[2].split_at(phases[2].len() / 2);
    produce_keyed(&setup, head, None).await;
    a.kill9();
    produce_keyed(&setup, tail, None).await;
    let got = wait_all(&setup, &expected).await;
    assert_same(&got, &expected);
    let (status, log) = b.terminate().await;
    assert!(status.success(), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("partition state restored") && !l.contains("subjects=0")),
        "b took over partitions with state:\n{log}"
    );
    eprintln!(
        "moved: {} alerts ({cps:?}) in {:?}",
        expected.len(),
        started.elapsed()
    );
}

/// A restart (kill -9, exactly-once) restores the state the same way, and
/// commits no alert twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_state_like_replay_exactly_once() {
    let setup = Setup::new("restart").await;
    let config = setup.config("exactly_once", 0);
    let phases = stateful_events("r", 2);
    let all: Vec<String> = phases.concat();
    let expected = replay(&setup, &all);
    let started = Instant::now();

    let levee = setup.spawn(&config, "a");
    produce_keyed(&setup, &phases[0], None).await;
    wait_all(&setup, &replay(&setup, &phases[0])).await;
    let (head, tail) = phases[1].split_at(phases[1].len() / 3);
    produce_keyed(&setup, head, None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    levee.kill9();
    produce_keyed(&setup, tail, None).await;

    let mut levee = setup.spawn(&config, "a");
    levee.wait_log("partition state restored", 1).await;
    let got = wait_all(&setup, &expected).await;
    assert_same(&got, &expected);
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
    let committed: Vec<Value> = setup
        .alerts()
        .await
        .into_iter()
        .filter(|a| a["escalated_from"].is_null())
        .collect();
    assert_no_duplicates(&committed);
    eprintln!(
        "restart: {} alerts in {:?}",
        expected.len(),
        started.elapsed()
    );
}

/// A rolling upgrade from a version that wrote the changelog as JSON. The
/// old version's records are what `state.changelog_encoding = "json"`
/// writes (the same serialization). An instance writing JSON and one
/// writing binary share the group: partitions move from the JSON writer to
/// the binary one (which reads JSON) and on to another JSON writer (which
/// reads binary), and the alerts are an uninterrupted replay's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_mixes_json_and_binary_changelog_records() {
    let setup = Setup::new("upgrade").await;
    let json = setup.config_with(
        "at_least_once",
        0,
        "[state]\nchangelog_encoding = \"json\"\n",
    );
    let binary = setup.config("at_least_once", 0);
    let phases = stateful_events("u", 3);
    let expected = replay(&setup, &phases.concat());

    let mut old = setup.spawn(&json, "old");
    old.wait_assigned().await;
    produce_keyed(&setup, &phases[0], None).await;
    wait_all(&setup, &replay(&setup, &phases[0])).await;

    // The new version joins, then the old one leaves: its partitions'
    // JSON state moves to the new one.
    let mut new = setup.spawn(&binary, "new");
    new.wait_assigned().await;
    old.wait_log("partitions assigned", 2).await;
    let (status, log) = old.terminate().await;
    assert!(status.success(), "{log}");
    new.wait_log("partitions assigned", 2).await;
    produce_keyed(&setup, &phases[1], None).await;
    wait_all(&setup, &replay(&setup, &phases[0..2].concat())).await;

    // A JSON writer again takes partitions whose state is binary.
    let mut again = setup.spawn(&json, "again");
    again.wait_assigned().await;
    new.wait_log("partitions assigned", 3).await;
    again.wait_log("partition state restored", 1).await;
    produce_keyed(&setup, &phases[2], None).await;
    let got = wait_all(&setup, &expected).await;
    assert_same(&got, &expected);
    for levee in [new, again] {
        let (status, log) = levee.terminate().await;
        assert!(status.success(), "{log}");
    }

    // Both encodings were written and read: subjects' records (keys of
    // three parts) start with `{` (JSON) or 0xB1 (binary, version 1).
    let records = broker()
        .consume_all(&setup.topics.changelog, Duration::from_secs(10))
        .await
        .unwrap();
    let firsts: BTreeSet<u8> = records
        .iter()
        .filter(|m| {
            m.key
                .as_deref()
                .is_some_and(|k| k.split(|b| *b == b'/').count() >= 3)
        })
        .filter_map(|m| m.payload.as_deref()?.first().copied())
        .collect();
    assert!(
        firsts.contains(&b'{') && firsts.contains(&levee_engine::codec::BINARY_V1),
        "first bytes of subject records: {firsts:?}"
    );
}
