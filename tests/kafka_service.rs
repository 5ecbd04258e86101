//! `levee run` against a real Apache Kafka broker (started by levee-testkit,
//! one per test binary), with the real binary as a child process so that
//! SIGTERM and kill -9 are real. Each test has its own topics and group.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use levee_testkit::Record;
use serde_json::Value;
use support::*;

/// Done-when 1: kcat produces the events, levee raises the alerts, kcat reads
/// them back from each tier topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_events_become_alerts_on_each_tier_topic() {
    let setup = Setup::new("kcat_e2e").await;
    let (mut events, _) = example_events();
    events.extend(generated_events("kcat", 30));
    let expected = replay(&setup, &events);
    for cp in ["VF-001", "BA-001"] {
        assert!(
            expected.values().any(|a| a["control_point"] == cp),
            "{cp} is not among the expected alerts"
        );
    }

    let levee = setup.spawn(&setup.config("at_least_once", 0), "a");

    // kcat produces, keyed by the event's subject, one topic at a time.
    let bootstrap = broker().bootstrap_servers();
    let mut by_topic: std::collections::BTreeMap<String, Vec<&String>> = Default::default();
    for e in &events {
        by_topic
            .entry(setup.topic_of(e.as_bytes()))
            .or_default()
            .push(e);
    }
    for (topic, lines) in by_topic {
        let mut kcat = Command::new("kcat")
            .args(["-P", "-b", &bootstrap, "-t", &topic, "-K", "\\t"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("kcat is installed (Debian package kcat)");
        {
            let stdin = kcat.stdin.as_mut().unwrap();
            for line in lines {
                writeln!(stdin, "{}\t{line}", setup.key_of(line.as_bytes())).unwrap();
            }
        }
        drop(kcat.stdin.take());
        assert!(kcat.wait().unwrap().success(), "kcat -P failed");
    }

    // kcat reads the tier topics until every expected alert is there.
    let deadline = Instant::now() + WAIT;
    let got = loop {
        let mut got = Vec::new();
        for (i, topic) in setup.tiers.iter().enumerate() {
            let out = Command::new("kcat")
                .args([
                    "-C",
                    "-b",
                    &bootstrap,
                    "-t",
                    topic,
                    "-o",
                    "beginning",
                    "-e",
                    "-q",
                ])
                .args(["-X", "isolation.level=read_committed", "-f", "%k\\t%s\\n"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            for line in String::from_utf8(out.stdout).unwrap().lines() {
                let (key, payload) = line.split_once('\t').unwrap();
                let alert: Value = serde_json::from_str(payload).unwrap();
                assert_eq!(
                    alert["tier"],
                    i + 1,
                    "tier {} alert on {topic}",
                    alert["tier"]
                );
                assert_eq!(alert["subject"], key, "the key is the subject");
                got.push(alert);
            }
        }
        let keys = alert_keys(&got);
        if expected.keys().all(|k| keys.contains_key(k)) {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "alerts missing: got {} of {}, e.g. {:?}",
            keys.len(),
            expected.len(),
            expected
                .iter()
                .filter(|(k, _)| !keys.contains_key(*k))
                .map(|(_, a)| format!("{} {} {}", a["control_point"], a["event_id"], a["tier"]))
                .take(5)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let keys = alert_keys(&got);
    assert_eq!(
        keys.keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>(),
        "the alerts are exactly what levee replay gives"
    );
    for (k, want) in &expected {
        let have = &keys[k];
        for field in [
            "control_point",
            "subject",
            "notify",
            "message",
            "evidence",
            "ruleset_version",
        ] {
            assert_eq!(have[field], want[field], "{field} of {k:?}");
        }
        assert!(have["source"]["topic"]
            .as_str()
            .unwrap()
            .starts_with(&setup.prefix));
    }
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
    assert_eq!(log.matches("levee started").count(), 1, "{log}");
}

/// Done-when 2: every class of bad input goes to the DLQ byte for byte, with
/// the reason and source headers; the stream goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_go_to_the_dlq_and_the_stream_goes_on() {
    let setup = Setup::new("dlq").await;
    let (good, mut bad) = example_events();
    assert_eq!(
        bad.len(),
        5,
        "examples/events.jsonl has one bad line per class"
    );
    let topic = setup.inputs["vehicle_fuel"].clone();
    // Not UTF-8 at all, and an empty message, are not JSON either.
    let mut payloads: Vec<Vec<u8>> = bad.drain(..).map(String::into_bytes).collect();
    payloads.push(vec![0xff, 0xfe, b'{', 0x00]);
    payloads.push(Vec::new());
    let trip = good
        .iter()
        .find(|l| l.contains("\"trip-0002\""))
        .unwrap()
        .clone();
    let mut records: Vec<Record> = payloads
        .iter()
        .map(|p| Record::new(p.clone()).key("k").partition(1))
        .collect();
    let key = setup.key_of(trip.as_bytes());
    records.push(Record::new(trip.clone()).key(key).partition(1));
    let positions = broker().produce(&topic, records).await.unwrap();

    let levee = setup.spawn(&setup.config("at_least_once", 0), "a");
    let expected = replay(&setup, &[trip]);
    assert!(!expected.is_empty());
    setup.wait_for_alerts(&expected).await;

    let dlq = setup.wait_dlq(payloads.len()).await;
    assert_eq!(dlq.len(), payloads.len());
    let mut kinds = BTreeSet::new();
    for (i, m) in dlq.iter().enumerate() {
        assert_eq!(
            m.payload.as_deref().unwrap_or_default(),
            payloads[i].as_slice(),
            "byte for byte"
        );
        let header = |n: &str| String::from_utf8(m.header(n).unwrap().to_vec()).unwrap();
        assert_eq!(header("levee.source.topic"), topic);
        assert_eq!(header("levee.source.partition"), "1");
        assert_eq!(header("levee.source.offset"), positions[i].1.to_string());
        let reason = header("levee.error");
        assert!(!reason.is_empty());
        kinds.insert(header("levee.error.kind"));
        assert_eq!(m.key_str(), Some("k"));
        if i == 2 {
            assert!(
                reason.contains("driver_id"),
                "the reason names the field: {reason}"
            );
        }
        if i == 3 {
            assert!(
                reason.contains("distance_km"),
                "the reason names the field: {reason}"
            );
        }
    }
    assert_eq!(
        kinds,
        BTreeSet::from(
            [
                "missing_field",
                "not_json",
                "not_object",
                "unknown_type",
                "wrong_type"
            ]
            .map(String::from)
        ),
    );
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}

/// Done-when 6: SIGTERM exits 0 with the offsets committed; a restart
/// re-delivers nothing already processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_and_a_restart_redelivers_nothing() {
    let setup = Setup::new("sigterm").await;
    let config = setup.config("at_least_once", 0);
    let first = generated_events("s1", 40);
    setup.produce_events(&first).await;
    let expected1 = replay(&setup, &first);

    let levee = setup.spawn(&config, "a");
    setup.wait_for_alerts(&expected1).await;
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "exit status {status}:\n{log}");
    assert!(log.contains("leaving the group"), "{log}");
    assert!(log.contains("levee stopped"), "{log}");

    let second = generated_events("s2", 20);
    setup.produce_events(&second).await;
    let expected2 = replay(&setup, &second);
    let mut levee = setup.spawn(&config, "a");
    levee.wait_assigned().await;
    let got = setup.wait_for_alerts(&expected2).await;
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
    // Every alert once: nothing of the first run was evaluated again.
    assert_eq!(got.len(), expected1.len() + expected2.len());
    assert_no_duplicates(&got);
}

/// Done-when 3, at-least-once: kill -9 mid-stream, restart: every expected
/// alert is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_then_restart_loses_nothing_at_least_once() {
    kill9_then_restart("at_least_once").await;
}

/// Done-when 3, exactly-once: and no alert twice among committed messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_then_restart_duplicates_nothing_exactly_once() {
    kill9_then_restart("exactly_once").await;
}

async fn kill9_then_restart(delivery: &str) {
    let setup = Setup::new(&format!("kill9_{delivery}")).await;
    let config = setup.config(delivery, 0);
    let first = generated_events("k1", 100);
    let second = generated_events("k2", 300);
    let mut all = first.clone();
    all.extend(second.iter().cloned());
    let expected = replay(&setup, &all);

    setup.produce_events(&first).await;
    let levee = setup.spawn(&config, "a");
    let deadline = Instant::now() + WAIT;
    while setup.alerts().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "no alerts:\n{}",
            levee.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Mid-stream: the second batch arrives in chunks while levee works, and
    // levee is killed halfway through it.
    let chunks: Vec<&[String]> = second.chunks(20).collect();
    let half = chunks.len() / 2;
    for chunk in &chunks[..half] {
        setup.produce_events(chunk).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    levee.kill9();
    let at_kill = setup.alerts().await.len();
    eprintln!(
        "{delivery}: {at_kill} alerts committed when killed, of {} expected",
        expected.len()
    );
    for chunk in &chunks[half..] {
        setup.produce_events(chunk).await;
    }

    let levee = setup.spawn(&config, "a");
    let got = setup.wait_for_alerts(&expected).await;
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
    let keys = alert_keys(&got);
    assert!(
        keys.keys().all(|k| expected.contains_key(k)),
        "no unexpected alerts"
    );
    let after = setup.alerts().await;
    eprintln!(
        "{delivery}: {} alerts read for {} expected",
        after.len(),
        expected.len()
    );
    if delivery == "exactly_once" {
        // Read once more after the clean stop: still no duplicate committed.
        let got = setup.alerts().await;
        assert_eq!(got.len(), expected.len());
        assert_no_duplicates(&got);
    }
}

/// Done-when 4: two instances in one group share the partitions; kill one,
/// the other takes over, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_partitions_and_one_takes_over() {
    let setup = Setup::new("group").await;
    let config = setup.config("at_least_once", 0);
    let mut a = setup.spawn(&config, "a");
    a.wait_assigned().await;
    let mut b = setup.spawn(&config, "b");
    b.wait_assigned().await;
    // After b joined, a's newest assignment is a part, not all 12 partitions.
    a.wait_log("partitions assigned", 2).await;

    let first = generated_events("g1", 60);
    setup.produce_events(&first).await;
    let mut expected = replay(&setup, &first);
    setup.wait_for_alerts(&expected).await;

    b.kill9();
    let second = generated_events("g2", 60);
    setup.produce_events(&second).await;
    expected.extend(replay(&setup, &second));
    let got = setup.wait_for_alerts(&expected).await;
    assert!(alert_keys(&got).keys().all(|k| expected.contains_key(k)));
    let (status, log) = a.terminate().await;
    assert!(status.success(), "{log}");
}

/// Done-when 5: broken rules keep the old rules running; a good reload
/// switches ruleset_version (by file change and by SIGHUP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_old_rules_on_error_and_switches_on_success() {
    let rules = tempfile::tempdir().unwrap();
    copy_dir(&workspace().join("rules"), rules.path());
    let setup = Setup::with("reload", Some(rules.path().to_path_buf())).await;
    let mut levee = setup.spawn(&setup.config("at_least_once", 1), "a");
    let trips = generated_events("r", 9)
        .into_iter()
        .filter(|l| l.contains("\"trip\""))
        .collect::<Vec<_>>();
    let v0 = replay(&setup, &trips[0..9]).values().next().unwrap()["ruleset_version"].clone();

    let version_of = |tag: &str, got: &[Value]| -> Vec<Value> {
        got.iter()
            .filter(|a| a["event_id"].as_str().unwrap().contains(tag))
            .map(|a| a["ruleset_version"].clone())
            .collect()
    };
    // Each batch its own trips and vehicles: keyed by subject, a vehicle's
    // state (suppression) would otherwise carry from one batch to the next,
    // which the replay of one batch cannot know.
    let batch = |tag: &str| -> Vec<String> {
        trips
            .iter()
            .map(|l| {
                l.replace("trip-r-", &format!("trip-{tag}-"))
                    .replace("V-r-", &format!("V-{tag}-"))
            })
            .collect()
    };

    let b1 = batch("b1");
    setup.produce_events(&b1).await;
    let got = setup.wait_for_alerts(&replay(&setup, &b1)).await;
    assert!(version_of("b1", &got).iter().all(|v| *v == v0));

    // Broken: a rule file that does not parse.
    let b2 = batch("b2");
    let expected_b2 = replay(&setup, &b2);
    let vf = a_rule_file(rules.path());
    let good_text = std::fs::read_to_string(&vf).unwrap();
    std::fs::write(&vf, format!("{good_text}\n  - this: [is not: valid\n")).unwrap();
    levee.wait_log("do not compile", 1).await;
    setup.produce_events(&b2).await;
    let got = setup.wait_for_alerts(&expected_b2).await;
    assert!(
        version_of("b2", &got).iter().all(|v| *v == v0),
        "old rules kept"
    );

    // Good again, with a change (a comment): a new version, by SIGHUP.
    std::fs::write(&vf, format!("{good_text}\n# reloaded\n")).unwrap();
    levee.signal("HUP");
    levee.wait_log("rules reloaded", 1).await;
    let v1 = replay(&setup, &trips).values().next().unwrap()["ruleset_version"].clone();
    assert_ne!(v0, v1);
    let b3 = batch("b3");
    setup.produce_events(&b3).await;
    let got = setup.wait_for_alerts(&replay(&setup, &b3)).await;
    let versions = version_of("b3", &got);
    assert!(!versions.is_empty());
    assert!(
        versions.iter().all(|v| *v == v1),
        "new alerts carry the new version"
    );
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
    assert!(
        log.contains(&format!(
            "{} -> {}",
            v0.as_str().unwrap(),
            v1.as_str().unwrap()
        )),
        "{log}"
    );
}

/// Some rule file (not a rule test) below `dir`.
fn a_rule_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in &entries {
        if path.extension().is_some_and(|e| e == "yaml") {
            return path.clone();
        }
    }
    for path in entries {
        if path.is_dir() && !path.ends_with("tests") {
            return a_rule_file(&path);
        }
    }
    panic!("no rule file below {}", dir.display());
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
