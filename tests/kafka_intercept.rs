//! Interception on the stream's own path, over a real broker with two
//! instances in one group: a request whose verdict depends on history,
//! sent to either instance over HTTP, is decided by the instance that owns
//! its subject's partition, with the history of every earlier event of the
//! subject (over HTTP or straight to Kafka), and the decision is on
//! `decisions` with `source: http`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/http.rs"]
mod http;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use http::http_address;
use levee_testkit::Record;
use serde_json::{json, Value};
use support::*;

/// Two instances of one group on `setup`, each assigned partitions.
async fn two_instances(setup: &Setup, delivery: &str) -> (Levee, Levee, [SocketAddr; 2]) {
    // Rule-test histories are dated months apart, subject by subject: no
    // event of them is late for its partition.
    let config = setup.config_with(delivery, 0, "[state]\nallowed_lateness = \"400d\"\n");
    let mut a = setup.spawn(&config, "a");
    let mut b = setup.spawn(&config, "b");
    let (at_a, at_b) = (http_address(&mut a).await, http_address(&mut b).await);
    a.wait_assigned().await;
    b.wait_assigned().await;
    for addr in [at_a, at_b] {
        http::wait_status(addr, "/readyz", WAIT, |s| s == 200);
    }
    (a, b, [at_a, at_b])
}

fn evaluate(addr: SocketAddr, event: &Value) -> Value {
    let r = http::request(
        addr,
        "POST",
        "/v1/evaluate",
        &[("Content-Type", "application/json")],
        &serde_json::to_vec(event).unwrap(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{event}: {}", r.text());
    r.json()
}

/// The committed decisions once those of `ids` are there (exactly-once,
/// HTTP may answer before the transaction holding the decision commits).
async fn decisions(setup: &Setup, ids: &[&str]) -> Vec<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got: Vec<Value> = broker()
            .consume_all(&setup.decisions, WAIT)
            .await
            .unwrap()
            .iter()
            .map(|m| serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap())
            .collect();
        let all = ids
            .iter()
            .all(|id| got.iter().any(|d| d["event_id"] == *id));
        if all || std::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

fn application(id: &str, at: &str, approver: &str) -> Value {
    json!({
        "event_id": id, "type": "campaign_application", "occurred_at": at, "branch": "wuhan",
        "campaign_id": "CMP-INT-1", "applicant_id": "EMP-21", "budget_cny": 300000,
        "subsidy_per_user_cny": 100, "expected_users": 3000, "partner_id": null,
        "approver_id": approver, "approver_limit_cny": 500000
    })
}

/// Done-when 1: the third application of one campaign, to a third approver
/// within 60 days, is blocked by MC-102 over HTTP, whichever instance gets
/// it; the second went straight to Kafka, as the platform's own feed would
/// send it, and counts all the same.
async fn third_application_is_blocked(delivery: &str) {
    let setup = Setup::new(&format!("intercept_{delivery}")).await;
    let (a, b, addr) = two_instances(&setup, delivery).await;
    let day = |d: i64| beijing(test_now() - chrono::Duration::days(d));

    let first = evaluate(addr[0], &application("int-1", &day(40), "APR-1"));
    assert_eq!(
        (first["verdict"].as_str(), first["decided_by"].as_str()),
        (Some("allow"), Some("stream")),
        "{first}"
    );
    let second = application("int-2", &day(20), "APR-2");
    setup.produce_events(&[second.to_string()]).await;
    let third = evaluate(addr[1], &application("int-3", &day(1), "APR-3"));
    assert_eq!(third["verdict"], "block", "{third}");
    assert_eq!(third["decided_by"], "stream", "{third}");
    assert_eq!(third["control_points"], json!(["MC-102"]), "{third}");
    let alert = &third["alerts"].as_array().unwrap()[0];
    assert_eq!(
        (&alert["control_point"], &alert["tier"]),
        (&json!("MC-102"), &json!(2)),
        "{alert}"
    );

    // Sent again (a retry), to the other instance: the same decision, and
    // the request counts once: the next one is the fourth submission.
    let again = evaluate(addr[0], &application("int-3", &day(1), "APR-3"));
    assert_eq!(again, third);
    let fourth = evaluate(addr[0], &application("int-4", &day(0), "APR-4"));
    let alert = &fourth["alerts"].as_array().unwrap()[0];
    assert_eq!(alert["evidence"]["submissions_60d"], 4, "{alert}");

    // What the stream decided is what HTTP answered, recorded once each.
    let recorded = decisions(&setup, &["int-1", "int-2", "int-3", "int-4"]).await;
    let of =
        |id: &str| -> Vec<&Value> { recorded.iter().filter(|d| d["event_id"] == id).collect() };
    assert_eq!(of("int-3").len(), 2, "answered twice, alike: {recorded:?}");
    assert_eq!(of("int-3")[0], of("int-3")[1]);
    let d = of("int-3")[0];
    assert_eq!(
        (&d["source"], &d["verdict"]),
        (&json!("http"), &json!("block")),
        "{d}"
    );
    assert_eq!(d["request"]["approver_id"], "APR-3");
    assert_eq!(of("int-2").len(), 1, "the Kafka one has its verdict too");
    assert!(of("int-2")[0].get("source").is_none(), "{:?}", of("int-2"));

    let alerts = setup.alerts().await;
    assert_no_duplicates(&alerts);
    let mc102: Vec<_> = alerts
        .iter()
        .filter(|a| a["control_point"] == "MC-102")
        .collect();
    let ids: Vec<&Value> = mc102.iter().map(|a| &a["event_id"]).collect();
    assert_eq!(ids, [&json!("int-3"), &json!("int-4")], "{mc102:?}");
    for levee in [a, b] {
        let (status, log) = levee.terminate().await;
        assert!(status.success(), "{log}");
    }

    // A retry after the partition has moved (here: a restart, its state
    // read back from the changelog) gets the first decision and still
    // counts once: the next request is the fifth submission.
    let (c, d, addr) = two_instances(&setup, delivery).await;
    let again = evaluate(addr[0], &application("int-4", &day(0), "APR-4"));
    assert_eq!(again, fourth, "answered as before the restart");
    let fifth = evaluate(addr[1], &application("int-5", &day(0), "APR-5"));
    let alert = &fifth["alerts"].as_array().unwrap()[0];
    assert_eq!(alert["evidence"]["submissions_60d"], 5, "{alert}");
    for levee in [c, d] {
        let (status, log) = levee.terminate().await;
        assert!(status.success(), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_third_application_is_blocked_exactly_once() {
    third_application_is_blocked("exactly_once").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_third_application_is_blocked_at_least_once() {
    third_application_is_blocked("at_least_once").await;
}

/// The `block` control points of request types that read history (their
/// own windows, `for:` or suppression, tagged `stateful` in the catalog).
fn stateful_blocking_points(graph: &levee_rules::RuleGraph) -> Vec<String> {
    graph
        .control_points
        .iter()
        .filter(|cp| {
            let et = &graph.event_types[cp.event_type as usize];
            cp.action == levee_rules::model::Action::Block
                && et.request
                && !et.aggregates.is_empty()
                && (cp.is_stateful() || cp.tags.iter().any(|t| t == "stateful"))
        })
        .map(|cp| cp.id.clone())
        .collect()
}

/// The rule tests' cases (`rules/tests/*.yaml`) as JSON.
fn rule_cases() -> Vec<Value> {
    let mut cases = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(workspace().join("rules/tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let doc: Value = serde_norway::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        cases.extend(doc["cases"].as_array().cloned().unwrap_or_default());
    }
    cases
}

/// Every stateful `block` point: its rule test's case that expects it to
/// block, its requests sent over HTTP to the two instances in turn (other
/// events straight to Kafka, as their feeds send them), blocks each
/// request the case says it blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stateful_block_point_blocks_over_http() {
    let setup = Setup::new("intercept_all").await;
    let graph = levee_rules::compile_dir(&setup.rules).unwrap().graph;
    let points = stateful_blocking_points(&graph);
    assert!(points.len() >= 7, "{points:?}");
    let (a, b, addr) = two_instances(&setup, "exactly_once").await;
    let cases = rule_cases();
    let mut sent = 0;
    for (n, point) in points.iter().enumerate() {
        let blocks = |e: &Value| e["control_point"] == point.as_str() && e["action"] == "block";
        let case = cases
            .iter()
            .find(|c| c["expect"].as_array().is_some_and(|x| x.iter().any(blocks)))
            .unwrap_or_else(|| panic!("no rule test expects {point} to block"));
        // A `block` point blocks wherever it fires.
        let blocked: BTreeMap<String, ()> = case["expect"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["control_point"] == point.as_str())
            .filter_map(|e| Some((e["event_id"].as_str()?.to_owned(), ())))
            .collect();
        for event in case["events"].as_array().unwrap() {
            // Subjects of their own: cases of several points may share ids.
            let mut event = event.clone();
            let ty = event["type"].as_str().unwrap().to_owned();
            let subject = &setup.subject_field[&ty];
            let id = event["event_id"].as_str().unwrap().to_owned();
            // Every field naming the subject, so that equalities hold.
            if let Some(s) = event[subject.as_str()].as_str().map(str::to_owned) {
                for v in event.as_object_mut().unwrap().values_mut() {
                    if v.as_str() == Some(s.as_str()) {
                        *v = json!(format!("{s}~{n}"));
                    }
                }
            }
            let et = graph.event_types.iter().find(|t| t.name == ty).unwrap();
            if !et.request {
                setup.produce_events(&[event.to_string()]).await;
                continue;
            }
            let answer = evaluate(addr[sent % 2], &event);
            sent += 1;
            assert_eq!(answer["decided_by"], "stream", "{point}: {answer}");
            let named = answer["control_points"].as_array().unwrap();
            if blocked.contains_key(&id) {
                assert_eq!(answer["verdict"], "block", "{point} {id}: {answer}");
                assert!(named.contains(&json!(point)), "{point} {id}: {answer}");
            } else {
                assert!(
                    !named.contains(&json!(point)),
                    "{point} {id} blocked early: {answer}"
                );
            }
        }
    }
    for levee in [a, b] {
        let (status, log) = levee.terminate().await;
        assert!(status.success(), "{log}");
    }
}

/// Produces `records` (key, value) to `topic` with the Java client's
/// console producer (its default partitioner: murmur2 of the key), the
/// way a Java upstream system writes.
fn java_produce(topic: &str, records: &[(String, String)]) {
    use std::io::Write;
    let classpath = levee_testkit::jars::broker_classpath().unwrap();
    let java = std::env::var("JAVA_HOME")
        .map(|h| format!("{h}/bin/java"))
        .unwrap_or_else(|_| "java".into());
    let mut child = std::process::Command::new(&java)
        .args(["-Xmx256m", "-cp", &classpath, "kafka.tools.ConsoleProducer"])
        .args([
            "--bootstrap-server",
            &broker().bootstrap_servers(),
            "--topic",
            topic,
        ])
        .args([
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=\t",
        ])
        .args(["--producer-property", "acks=all"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("`{java}` (Java 17) is needed for the Java producer: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    for (k, v) in records {
        writeln!(stdin, "{k}\t{v}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where the Java client and librdkafka put each key on a topic of three
/// partitions: (key, Java's partition, librdkafka's partition).
async fn partitions_of(setup: &Setup, keys: &[String]) -> Vec<(String, i32, i32)> {
    let (java, rdkafka) = (
        format!("{}.probe-java", setup.prefix),
        format!("{}.probe-rd", setup.prefix),
    );
    broker()
        .create_topics(&[(java.as_str(), 3), (rdkafka.as_str(), 3)])
        .await
        .unwrap();
    let records: Vec<(String, String)> =
        keys.iter().map(|k| (k.clone(), "{}".to_owned())).collect();
    java_produce(&java, &records);
    let placed = broker()
        .produce(
            &rdkafka,
            keys.iter()
                .map(|k| Record::new(b"{}".to_vec()).key(k.as_str())),
        )
        .await
        .unwrap();
    let got = broker().consume_all(&java, WAIT).await.unwrap();
    keys.iter()
        .zip(placed)
        .map(|(k, (p, _))| {
            let j = got
                .iter()
                .find(|m| m.key_str() == Some(k.as_str()))
                .unwrap()
                .partition;
            (k.clone(), j, p)
        })
        .collect()
}

/// The partitioner is a setting: upstream Java producers put a campaign's
/// applications where murmur2 says; levee set to `murmur2_random` appends
/// its requests there too, so the third application over HTTP sees the
/// two the Java producer wrote (librdkafka's default, `consistent_random`,
/// is checked against librdkafka's own producer in the tests above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_land_where_java_producers_put_their_subject() {
    let setup = Setup::new("intercept_murmur2").await;
    let keys: Vec<String> = (0..30).map(|i| format!("CMP-J{i}")).collect();
    let placed = partitions_of(&setup, &keys).await;
    // A campaign the two partitioners put apart, so the test can fail.
    let (campaign, _, _) = placed
        .iter()
        .find(|(_, j, r)| j != r)
        .unwrap_or_else(|| panic!("every key on the same partition: {placed:?}"));
    let config = setup.config_with("at_least_once", 0, "[state]\nallowed_lateness = \"400d\"\n");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "[kafka.producer]\n",
        "[kafka.producer]\npartitioner = \"murmur2_random\"\n",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let mut levee = setup.spawn(&config, "m");
    let addr = http_address(&mut levee).await;
    levee.wait_assigned().await;
    http::wait_status(addr, "/readyz", WAIT, |s| s == 200);

    let day = |d: i64| beijing(test_now() - chrono::Duration::days(d));
    let with = |id: &str, at: &str, approver: &str| {
        let mut a = application(id, at, approver);
        a["campaign_id"] = json!(campaign);
        a
    };
    let history: Vec<(String, String)> = [("j-1", 30, "APR-1"), ("j-2", 20, "APR-2")]
        .iter()
        .map(|(id, d, apr)| (campaign.clone(), with(id, &day(*d), apr).to_string()))
        .collect();
    // Written (acks=all) before the request is appended: in its partition,
    // the history comes first.
    java_produce(&setup.inputs["marketing"], &history);
    let third = evaluate(addr, &with("j-3", &day(1), "APR-3"));
    assert_eq!(third["verdict"], "block", "{third}");
    assert_eq!(third["control_points"], json!(["MC-102"]), "{third}");
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}
