//! People's files (一人一档) over a real broker: alerts copied per person
//! are folded by the person's owner into one file on `profiles.people`;
//! `GET /v1/people/{id}` answers that file from either of two instances,
//! equal to what `levee replay --profiles` gives for the same events and
//! rectification as of the file's `as_of`, and again after one instance is
//! killed (-9) and the groups rebalance; the route has a token of its own
//! and wants to know who reads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/http.rs"]
mod http;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::http_address;
use levee_testkit::clients::Record;
use serde_json::{json, Value};
use support::*;

const PEOPLE_TOKEN: &str = "people-s3cret";

/// Arrears snapshots of customers of four customer managers, all at one
/// time (so that replay, escalating on event time, escalates none).
fn snapshots(n: usize) -> Vec<String> {
    generated_events("ppl", n)
        .into_iter()
        .filter(|l| l.contains("\"arrears_snapshot\""))
        .collect()
}

/// `levee replay --profiles` of `lines`: the person profiles by id.
fn replay_people(
    setup: &Setup,
    lines: &[String],
    now: &str,
) -> std::collections::BTreeMap<String, Value> {
    let file = setup.dir.path().join(format!("people-{now}.jsonl"));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = std::process::Command::new(LEVEE)
        .arg("--rules")
        .arg(&setup.rules)
        .args(["replay", "--profiles", "--now", now])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|v| Some((v.get("person")?.as_str()?.to_owned(), v)))
        .collect()
}

fn get(addr: SocketAddr, person: &str, token: &str, reader: Option<&str>) -> http::Response {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    if let Some(r) = reader {
        headers.push(("X-Levee-Reader", r));
    }
    http::request(addr, "GET", &format!("/v1/people/{person}"), &headers, b"").unwrap()
}

/// Waits until `addr` gives a file of `person` with `want`'s alert counts,
/// then checks it equals what `levee replay --profiles` gives for `lines`
/// as of the file's `as_of` (the instant its risk score decays to); the
/// file as answered.
async fn same_file(
    setup: &Setup,
    addr: SocketAddr,
    person: &str,
    want: &Value,
    lines: &[String],
) -> Value {
    let deadline = Instant::now() + WAIT;
    let got = loop {
        let r = get(addr, person, PEOPLE_TOKEN, Some("纪检监察室-测试"));
        if r.status == 200 {
            let v = r.json();
            let counts = ["alerts", "rectified", "dismissed"];
            if counts.iter().all(|c| v[c] == want[c]) {
                break v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: no file like {want} yet: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let as_of = got["as_of"]
        .as_str()
        .expect("a file says as of when")
        .to_owned();
    let mut replayed = replay_people(setup, lines, &as_of)[person].clone();
    replayed["as_of"] = json!(as_of);
    assert_eq!(got, replayed, "{addr}");
    got
}

/// Produces a rectification (a JSON line) to the rectification topic,
/// keyed by its alert id, as the operator's system does.
async fn rectify(setup: &Setup, line: &str) {
    let v: Value = serde_json::from_str(line).unwrap();
    let key = v["alert_id"].as_str().unwrap();
    broker()
        .produce(
            &setup.rectification,
            vec![Record::new(line.as_bytes().to_vec()).key(key)],
        )
        .await
        .unwrap();
}

/// A metric's value (a family without labels) from `addr`'s `/metrics`.
fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = http::request(addr, "GET", "/metrics", &[], b"")
        .unwrap()
        .text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

/// The latest file of `person` on `profiles.people`.
async fn written_file(setup: &Setup, person: &str) -> Value {
    let records = broker()
        .consume_all(&setup.people_files, WAIT)
        .await
        .unwrap();
    let latest = records
        .iter()
        .rev()
        .find(|r| r.key.as_deref() == Some(person.as_bytes()))
        .expect("the person's file is on profiles.people");
    serde_json::from_slice(latest.payload.as_deref().unwrap()).unwrap()
}

async fn started(setup: &Setup, config: &std::path::Path, name: &str) -> (Levee, SocketAddr) {
    let mut levee = setup.spawn(config, name);
    let addr = http_address(&mut levee).await;
    (levee, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_file_is_the_same_from_any_instance_and_after_a_crash() {
    let setup = Setup::new("people_files").await;
    let config = http::http_config(&setup, &format!("people_token = \"{PEOPLE_TOKEN}\""));
    let lines = snapshots(40);
    let now = rfc3339(test_now());
    let before = replay_people(&setup, &lines, &now);
    // The customer manager with the most alerts: several customers, so
    // alerts from several partitions.
    let (person, _) = before
        .iter()
        .max_by_key(|(_, p)| p["alerts"].as_u64().unwrap())
        .unwrap();
    let person = person.clone();
    assert!(
        before[&person]["alerts"].as_u64().unwrap() >= 3,
        "{before:?}"
    );

    let (a, addr_a) = started(&setup, &config, "a").await;
    let (mut b, addr_b) = started(&setup, &config, "b").await;
    setup.produce_events(&lines).await;
    setup.wait_for_alerts(&replay(&setup, &lines)).await;

    // One of the person's alerts rectified, on the rectification topic.
    let alerts = setup.alerts().await;
    let theirs = alerts
        .iter()
        .find(|a| a["people"].as_array().unwrap().contains(&json!(person)))
        .unwrap();
    let at = beijing(test_now() - chrono::Duration::days(1));
    let rectification = json!({"alert_id": theirs["alert_id"], "status": "rectified",
        "by": "E-0231", "at": at, "finding": "欠费属实", "measures": "已催缴，分期付清",
        "penalty": "通报批评"})
    .to_string();
    rectify(&setup, &rectification).await;
    // Another of their alerts, "rectified" by the person themselves:
    // refused (回避), to the DLQ, and their file does not change.
    let other = alerts
        .iter()
        .find(|a| {
            a["people"].as_array().unwrap().contains(&json!(person))
                && a["alert_id"] != theirs["alert_id"]
        })
        .unwrap();
    let own = json!({"alert_id": other["alert_id"], "status": "rectified", "by": person, "at": at})
        .to_string();
    rectify(&setup, &own).await;
    let dlq = setup.wait_dlq(1).await;
    assert_eq!(dlq.len(), 1, "refused once, by the alert's owner alone");
    let kind = dlq[0]
        .headers
        .iter()
        .find(|(k, _)| k == "levee.error.kind")
        .and_then(|(_, v)| v.clone());
    assert_eq!(
        kind.as_deref(),
        Some(&b"rectification_conflict"[..]),
        "{:?}",
        dlq[0].headers
    );
    // The closed alert, with its result, on alerts.closed (once: the
    // refused rectification closes nothing).
    broker().consume(&setup.closed, 1, WAIT).await.unwrap();
    let closed = broker().consume_all(&setup.closed, WAIT).await.unwrap();
    assert_eq!(closed.len(), 1, "{closed:?}");
    let record: Value = serde_json::from_slice(closed[0].payload.as_deref().unwrap()).unwrap();
    assert_eq!(record["alert_id"], theirs["alert_id"], "{record}");
    assert_eq!(
        closed[0].key.as_deref(),
        theirs["alert_id"].as_str().map(str::as_bytes)
    );
    assert_eq!(record["status"], "rectified");
    assert_eq!(record["people"], theirs["people"]);
    let profile = record["profile"].as_str().unwrap();
    let subject = theirs["subject"].as_str().unwrap();
    assert!(profile.ends_with(&format!(":{subject}")), "{record}");
    let result = &record["rectification"];
    assert_eq!(result["finding"], "欠费属实", "{record}");
    assert_eq!(result["measures"], "已催缴，分期付清");
    assert_eq!(result["penalty"], "通报批评");
    assert_eq!(result["by"], "E-0231");

    // To the end of its lifecycle: acknowledging the closed alert moves it
    // backwards (refused, to the DLQ); archiving it records it archived on
    // alerts.closed, its result kept.
    let theirs_id = theirs["alert_id"].as_str().unwrap();
    let backwards =
        json!({"alert_id": theirs_id, "status": "acknowledged", "by": "E-0231"}).to_string();
    let archive = json!({"alert_id": theirs_id, "status": "archived", "by": "E-0007",
        "role": "discipline_inspection", "at": at})
    .to_string();
    for line in [&backwards, &archive] {
        rectify(&setup, line).await;
        if line == &backwards {
            let dlq = setup.wait_dlq(2).await;
            let kinds: Vec<Option<Vec<u8>>> = dlq
                .iter()
                .map(|m| {
                    m.headers
                        .iter()
                        .find(|(k, _)| k == "levee.error.kind")
                        .and_then(|(_, v)| v.clone())
                })
                .collect();
            assert_eq!(
                kinds.last().cloned().flatten().as_deref(),
                Some(&b"rectification_backwards"[..]),
                "{kinds:?}"
            );
        }
    }
    let deadline = Instant::now() + WAIT;
    let archived = loop {
        let records = broker().consume_all(&setup.closed, WAIT).await.unwrap();
        let last: Value =
            serde_json::from_slice(records.last().unwrap().payload.as_deref().unwrap()).unwrap();
        if last["status"] == "archived" {
            assert_eq!(records.len(), 2, "closed, then archived: {records:?}");
            assert_eq!(
                records[1].key, records[0].key,
                "one key: the topic keeps the last"
            );
            break last;
        }
        assert!(Instant::now() < deadline, "not archived: {last}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(archived["archive"]["by"], "E-0007", "{archived}");
    assert!(archived["archived_at"].is_string(), "{archived}");
    assert_eq!(
        archived["rectification"]["status"], "rectified",
        "the result stays"
    );
    assert_eq!(archived["rectification"]["finding"], "欠费属实");

    let mut all: Vec<String> = lines.clone();
    all.push(rectification);
    all.push(own);
    all.push(backwards);
    all.push(archive);
    let want = replay_people(&setup, &all, &now)[&person].clone();
    assert_eq!(want["rectified"], 1, "{want}");
    let from_a = same_file(&setup, addr_a, &person, &want, &all).await;
    let from_b = same_file(&setup, addr_b, &person, &want, &all).await;
    assert_eq!(
        from_a, from_b,
        "the same file, as of the same instant, from either"
    );
    assert_eq!(
        written_file(&setup, &person).await,
        from_a,
        "as profiles.people has it"
    );
    // The stage's metrics: files written by whichever instance owns the
    // person.
    let written: f64 = [addr_a, addr_b]
        .iter()
        .map(|a| metric(*a, "levee_people_files_written_total"))
        .sum();
    assert!(written >= 1.0, "files written: {written}");

    // Personal data: its own token, and who reads is said.
    assert_eq!(
        get(addr_a, &person, "the-evaluate-token", Some("x")).status,
        401
    );
    assert_eq!(get(addr_a, &person, PEOPLE_TOKEN, None).status, 400);
    assert_eq!(get(addr_a, "E-NOBODY", PEOPLE_TOKEN, Some("x")).status, 404);
    b.wait_log("person file read", 1).await;
    assert!(
        b.log_text().contains("纪检监察室-测试"),
        "the read is logged with its reader"
    );

    // A kill -9 and a rebalance: the survivor takes every partition of the
    // people topic over, and a closing after it reaches the file, the same
    // from the survivor and from a new instance.
    let assigned = b.log_text().matches("people partitions assigned").count();
    a.kill9();
    b.wait_log("people partitions assigned", assigned + 1).await;
    let dismissal = json!({"alert_id": other["alert_id"], "status": "dismissed",
        "by": "E-0231", "role": "discipline_inspection", "at": at,
        "finding": "经核查，欠费系系统计费错误"})
    .to_string();
    rectify(&setup, &dismissal).await;
    all.push(dismissal);
    let want = replay_people(&setup, &all, &now)[&person].clone();
    assert_eq!(want["dismissed"], 1, "{want}");
    same_file(&setup, addr_b, &person, &want, &all).await;
    let (c, addr_c) = started(&setup, &config, "c").await;
    same_file(&setup, addr_c, &person, &want, &all).await;
    for levee in [b, c] {
        let (status, log) = levee.terminate().await;
        assert!(status.success(), "{log}");
    }
}
