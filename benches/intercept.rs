//! `POST /v1/evaluate` latency over the real broker, both ways a request is
//! decided (BENCHMARKS.md, "HTTP evaluate"):
//!
//! - **local**: a request of a type that keeps no state, answered from the
//!   rules in force and recorded on `decisions` (target: p99 < 1 ms);
//! - **stream**: a campaign application (its type keeps windows: MC-102),
//!   appended to its input topic, decided by the partition's owner, the
//!   decision read back from `decisions` (target: p99 < 20 ms), at-least-once
//!   and exactly-once.
//!
//! One `levee run` (release) per mode on the test kit's broker, one
//! keep-alive connection, requests back to back, each a new campaign (its
//! own subject, so every one is evaluated); then `GET /healthz` on the same
//! connection as the baseline.
//!
//! ```sh
//! cargo bench -p levee --bench intercept
//! LEVEE_BENCH_INTERCEPT_N=5000 cargo bench -p levee --bench intercept
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/http.rs"]
mod http;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use http::{http_address, Conn};
use serde_json::{json, Value};
use support::{Setup, WAIT};

/// Latency percentiles of `took` (sorted here).
fn report(what: &str, took: &mut [Duration]) {
    took.sort_unstable();
    let n = took.len();
    let q = |p: f64| took[((n as f64 * p) as usize).min(n - 1)];
    println!(
        "{what}: {n} requests: p50 {:?}, p90 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        took[n - 1]
    );
}

/// A request of a type without state that has a `block` point, from the
/// examples.
fn stateless_request(graph: &levee_rules::RuleGraph) -> Value {
    let local: Vec<&str> = graph
        .event_types
        .iter()
        .filter(|t| {
            t.request
                && t.aggregates.is_empty()
                && t.control_points
                    .iter()
                    .all(|&c| !graph.control_points[c as usize].is_stateful())
                && t.control_points.iter().any(|&c| {
                    graph.control_points[c as usize].action == levee_rules::model::Action::Block
                })
        })
        .map(|t| t.name.as_str())
        .collect();
    // The first event of one in the rule tests.
    let dir = support::workspace().join("rules/tests");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let doc: Value = serde_norway::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for case in doc["cases"].as_array().into_iter().flatten() {
            for e in case["events"].as_array().into_iter().flatten() {
                if local.contains(&e["type"].as_str().unwrap_or_default()) {
                    return e.clone();
                }
            }
        }
    }
    panic!("no rule test has an event of {local:?}")
}

fn application(i: usize, tag: &str) -> Value {
    json!({
        "event_id": format!("bench-{tag}-{i}"), "type": "campaign_application",
        "occurred_at": support::beijing(support::test_now() - chrono::Duration::hours(1)),
        "branch": "yichang", "campaign_id": format!("K-{tag}-{i}"), "applicant_id": "E1",
        "budget_cny": 301000, "subsidy_per_user_cny": 301, "expected_users": 1000,
        "partner_id": null, "approver_id": "APR-1"
    })
}

fn send(conn: &mut Conn, body: &[u8]) -> (Duration, Value) {
    let headers = [("Content-Type", "application/json")];
    let t = Instant::now();
    let r = conn.send("POST", "/v1/evaluate", &headers, body).unwrap();
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    (took, r.json())
}

async fn mode(delivery: &str, n: usize) {
    let setup = Setup::new(&format!("bench_intercept_{delivery}")).await;
    let config = setup.config(delivery, 0);
    let mut levee = setup.spawn(&config, delivery);
    let addr = http_address(&mut levee).await;
    levee.wait_assigned().await;
    http::wait_status(addr, "/readyz", WAIT, |s| s == 200);
    let graph = levee_rules::compile_dir(&setup.rules).unwrap().graph;
    let mut conn = Conn::open(addr).unwrap();

    // Stream: warm up, then one new campaign per request.
    for i in 0..200 {
        let (_, v) = send(
            &mut conn,
            &serde_json::to_vec(&application(i, "warm")).unwrap(),
        );
        assert_eq!(v["decided_by"], "stream", "{v}");
    }
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let (t, v) = send(
            &mut conn,
            &serde_json::to_vec(&application(i, "timed")).unwrap(),
        );
        assert_eq!(
            (v["verdict"].as_str(), v["decided_by"].as_str()),
            (Some("block"), Some("stream"))
        );
        took.push(t);
    }
    report(
        &format!("{delivery}, decided by the stream (campaign_application)"),
        &mut took,
    );

    // Local: the same request each time (it keeps no state).
    let local = serde_json::to_vec(&stateless_request(&graph)).unwrap();
    let mut took = Vec::with_capacity(n * 10);
    for i in 0..n * 11 {
        let (t, v) = send(&mut conn, &local);
        assert_eq!(v["decided_by"], "local", "{v}");
        if i >= n {
            took.push(t);
        }
    }
    let ty = serde_json::from_slice::<Value>(&local).unwrap()["type"].clone();
    report(
        &format!("{delivery}, decided locally ({ty}), recorded"),
        &mut took,
    );

    let mut base = Vec::with_capacity(n * 10);
    for _ in 0..n * 10 {
        let t = Instant::now();
        let r = conn.send("GET", "/healthz", &[], b"").unwrap();
        base.push(t.elapsed());
        assert_eq!(r.status, 200);
    }
    report("baseline GET /healthz, same connection", &mut base);
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}

fn main() {
    let n = std::env::var("LEVEE_BENCH_INTERCEPT_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        mode("at_least_once", n).await;
        mode("exactly_once", n).await;
    });
}
