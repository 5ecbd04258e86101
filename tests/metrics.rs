//! The SRE view of `levee run`: a real Prometheus server scrapes it and
//! its counters match what was produced; `promtool` accepts the exposition
//! and the shipped alerting rules; `/readyz` follows the broker.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/http.rs"]
mod http;
mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{http_address, http_config};
use levee_testkit::{KafkaBroker, LeveeProcess, LeveeTopics, Record};
use serde_json::Value;
use support::{broker, generated_events, replay, Levee, Setup, LEVEE, WAIT};

struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Debian's `prometheus` scraping `target` every second.
    fn start(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: levee\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let port = http::free_port();
        let addr = http::loopback(port);
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        http::wait_status(addr, "/-/ready", WAIT, |s| s == 200);
        p
    }

    /// An instant query; the samples as (labels, value).
    fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let r = http::get(
            self.addr,
            &format!("/api/v1/query?query={}", http::encode(promql)),
        )
        .unwrap();
        let v = r.json();
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect();
                let value = s["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// Waits until `promql` gives exactly `want` (a single number).
    fn wait_value(&self, promql: &str, want: f64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let got: Vec<f64> = self.query(promql).into_iter().map(|(_, v)| v).collect();
            if got == [want] {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{promql}: {got:?}, expected {want}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `promtool` with `args` and `stdin`: whether it succeeded, and its
/// output. Fails the test if promtool is not installed.
fn promtool(args: &[&str], stdin: &[u8]) -> (bool, String) {
    assert!(
        http::have("promtool"),
        "promtool is not installed: apt-get install prometheus (.ci/run does)"
    );
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(support::workspace())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_reads_back_what_was_produced() {
    assert!(
        http::have("prometheus"),
        "the Prometheus server is not installed: apt-get install prometheus (.ci/run does)"
    );
    let setup = Setup::new("prometheus").await;
    let config = http_config(&setup, "");
    let mut levee = setup.spawn(&config, "prom");
    let addr = http_address(&mut levee).await;
    http::wait_status(addr, "/readyz", WAIT, |s| s == 200);
    let prometheus = Prometheus::start(addr);

    let events = generated_events("prom", 40);
    let expected = replay(&setup, &events);
    assert!(!expected.is_empty());
    setup.produce_events(&events).await;
    let fuel = &setup.inputs["vehicle_fuel"];
    let bad = vec![
        Record::new(b"not json".to_vec()).key("x"),
        Record::new(br#"{"event_id":"b1","type":"no_such_type","occurred_at":"2026-11-02T09:15:00+08:00","branch":"wuhan"}"#.to_vec()).key("x"),
        Record::new(br#"{"event_id":"b2","type":"trip","occurred_at":"2026-11-02T09:15:00+08:00","branch":"wuhan","vehicle_id":"V1"}"#.to_vec()).key("x"),
    ];
    broker().produce(fuel, bad).await.unwrap();
    setup.wait_for_alerts(&expected).await;

    // Counted events per topic and type, as produced.
    let mut per_type: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in &events {
        let v: Value = serde_json::from_str(e).unwrap();
        let ty = v["type"].as_str().unwrap().to_owned();
        *per_type
            .entry((setup.topic_of(e.as_bytes()), ty))
            .or_default() += 1;
    }
    let prefix = &setup.prefix;
    prometheus.wait_value(
        &format!("sum(levee_events_total{{topic=~\"{prefix}.*\",outcome=\"ok\"}})"),
        events.len() as f64,
    );
    for ((topic, ty), n) in &per_type {
        prometheus.wait_value(
            &format!("sum(levee_events_total{{topic=\"{topic}\",type=\"{ty}\",outcome=\"ok\"}})"),
            *n as f64,
        );
    }
    // The bad trip names its type; the others are `unknown`.
    prometheus.wait_value(
        &format!("sum(levee_events_total{{topic=\"{fuel}\",outcome=\"invalid\",type=\"trip\"}})"),
        1.0,
    );
    prometheus.wait_value(
        &format!(
            "sum(levee_events_total{{topic=\"{fuel}\",outcome=\"invalid\",type=\"unknown\"}})"
        ),
        2.0,
    );
    for reason in ["not_json", "unknown_type", "missing_field"] {
        prometheus.wait_value(&format!("sum(levee_dlq_total{{reason=\"{reason}\"}})"), 1.0);
    }

    // Alerts by tier, domain and control point, as replay says.
    prometheus.wait_value("sum(levee_alerts_total)", expected.len() as f64);
    let mut by_tier: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_cp: BTreeMap<String, usize> = BTreeMap::new();
    for a in expected.values() {
        *by_tier.entry(a["tier"].to_string()).or_default() += 1;
        *by_cp
            .entry(a["control_point"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for (tier, n) in &by_tier {
        prometheus.wait_value(
            &format!("sum(levee_alerts_total{{tier=\"{tier}\"}})"),
            *n as f64,
        );
    }
    for (cp, n) in &by_cp {
        prometheus.wait_value(
            &format!("sum(levee_control_point_hits_total{{control_point=\"{cp}\"}})"),
            *n as f64,
        );
    }
    prometheus.wait_value("sum(levee_evaluate_seconds_count)", events.len() as f64);
    prometheus.wait_value("levee_ready", 1.0);
    prometheus.wait_value("count(levee_ruleset_info)", 1.0);
    let end_to_end = prometheus.query("sum(levee_end_to_end_seconds_count)");
    assert_eq!(end_to_end[0].1, expected.len() as f64, "{end_to_end:?}");
    let lag = prometheus.query(&format!("levee_consumer_lag{{topic=~\"{prefix}.*\"}}"));
    assert!(!lag.is_empty(), "no consumer lag series");
    assert!(
        prometheus
            .query("process_resident_memory_bytes")
            .iter()
            .all(|(_, v)| *v > 0.0),
        "no process metrics"
    );

    // The subjects' profiles are served by the instance holding them,
    // under the typed subject (`<kind>:<id>`, the kind from the point).
    let graph = levee_rules::compile_dir(&setup.rules).unwrap().graph;
    let mut per_subject: BTreeMap<String, u64> = BTreeMap::new();
    for a in expected.values() {
        let cp = graph
            .control_point(a["control_point"].as_str().unwrap())
            .unwrap();
        *per_subject
            .entry(format!(
                "{}:{}",
                cp.subject_kind,
                a["subject"].as_str().unwrap()
            ))
            .or_default() += 1;
    }
    let (subject, n) = per_subject.iter().max_by_key(|(_, n)| **n).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let r = http::get(addr, &format!("/v1/subjects/{subject}")).unwrap();
        if r.status == 200 && r.json()["alerts"] == *n {
            let p = r.json();
            assert_eq!(p["subject"], subject.as_str(), "{p}");
            assert_eq!(p["open"], *n, "{p}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "profile of {subject}: {} {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // promtool accepts the exposition as scraped.
    let text = http::get(addr, "/metrics").unwrap();
    assert_eq!(text.status, 200);
    assert!(text
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let (ok, out) = promtool(&["check", "metrics"], &text.body);
    assert!(ok, "promtool check metrics:\n{out}\n{}", text.text());
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}

#[test]
fn promtool_accepts_the_alerting_rules_and_their_tests() {
    let (ok, out) = promtool(
        &["check", "rules", "deploy/prometheus/levee-rules.yml"],
        b"",
    );
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = promtool(
        &["test", "rules", "deploy/prometheus/levee-rules.test.yml"],
        b"",
    );
    assert!(ok, "promtool test rules:\n{out}");
}

/// The alerting rules query only metrics levee has.
#[test]
fn the_alerting_rules_use_levee_metrics() {
    let path = support::workspace().join("deploy/prometheus/levee-rules.yml");
    let rules: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exposition = exposition_names();
    let mut alerts = Vec::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            alerts.push(rule["alert"].as_str().unwrap().to_owned());
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("levee_") {
                    let family = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s))
                        .unwrap_or(name);
                    assert!(
                        exposition.contains(&format!("levee_{family}")),
                        "rule {} uses {word}, which levee does not expose",
                        rule["alert"]
                    );
                }
            }
        }
    }
    for needed in [
        "LeveeNotReady",
        "LeveeConsumerLagGrowing",
        "LeveeDeadLetterRateHigh",
        "LeveeNoEvents",
        "LeveeRulesReloadFailed",
        "LeveeEndToEndLatencyHigh",
        "LeveeShadowDiverges",
        "LeveeShadowRulesReloadFailed",
        "LeveeSampleDropping",
    ] {
        assert!(alerts.iter().any(|a| a == needed), "no {needed} rule");
    }
}

/// The metric families of metrics.rs's table (README and the module doc).
fn exposition_names() -> Vec<String> {
    // metrics.rs and its submodules (src/service/metrics/*.rs).
    let service = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/service");
    let mut src = std::fs::read_to_string(service.join("metrics.rs")).unwrap();
    for e in std::fs::read_dir(service.join("metrics")).unwrap() {
        src.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    src.lines()
        .filter_map(|l| l.strip_prefix("pub const "))
        .filter_map(|l| l.split_once("&str = \"levee_"))
        .map(|(_, rest)| format!("levee_{}", rest.trim_end_matches("\";")))
        .collect()
}

/// Settings for a levee on its own broker (`[http]` on port 0, statistics
/// every second, short session timeout).
fn own_broker_config(
    dir: &Path,
    broker: &KafkaBroker,
    prefix: &str,
    topics: &LeveeTopics,
) -> PathBuf {
    let text = topics.settings(
        &broker.bootstrap_servers(),
        "at_least_once",
        &format!("{prefix}.group"),
        &support::workspace().join("rules"),
        0,
        r#"commit_interval_ms = 200

[kafka.consumer]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 500
"statistics.interval.ms" = 500
"reconnect.backoff.max.ms" = 1000

[kafka.producer]
"reconnect.backoff.max.ms" = 1000"#,
        "",
    );
    let path = dir.join("levee.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn readyz(addr: SocketAddr) -> (u16, Value) {
    let r = http::get(addr, "/readyz").unwrap();
    (r.status, r.json())
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_assignment_and_broker() {
    let broker = KafkaBroker::start().unwrap();
    let prefix = levee_testkit::unique_topic_prefix("readyz");
    let topics = LeveeTopics::named(&prefix);
    topics.create(&broker, 2, true, &[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = own_broker_config(dir.path(), &broker, &prefix, &topics);

    // Before the assignment: the broker is down, levee is alive but not ready.
    broker.stop().unwrap();
    let log = dir.path().join("levee.log");
    let mut levee = Levee(
        LeveeProcess::spawn(
            Path::new(LEVEE),
            &support::workspace(),
            &config,
            "readyz",
            log,
            None,
        )
        .unwrap(),
    );
    let addr = http_address(&mut levee).await;
    http::wait_status(addr, "/healthz", WAIT, |s| s == 200);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let (status, body) = readyz(addr);
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["ready"], false);
        assert_eq!(body["rules"], true, "{body}");
        assert_eq!(body["assigned"], false, "{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = http::request(addr, "POST", "/v1/evaluate", &[], b"{}").unwrap();
    assert_eq!(r.status, 503, "{}", r.text());

    // The broker comes: assigned, ready.
    broker.start_again().unwrap();
    levee.wait_assigned().await;
    http::wait_status(addr, "/readyz", WAIT, |s| s == 200);
    let (_, body) = readyz(addr);
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["assigned"], true, "{body}");

    // The broker goes: not ready, still alive.
    broker.stop().unwrap();
    http::wait_status(addr, "/readyz", Duration::from_secs(30), |s| s == 503);
    let (_, body) = readyz(addr);
    assert_eq!(body["broker"], false, "{body}");
    assert_eq!(http::get(addr, "/healthz").unwrap().status, 200);
    let metrics = http::get(addr, "/metrics").unwrap().text();
    assert!(metrics.contains("\nlevee_ready 0\n"), "{metrics}");

    // And back.
    broker.start_again().unwrap();
    http::wait_status(addr, "/readyz", WAIT, |s| s == 200);
    let metrics = http::get(addr, "/metrics").unwrap().text();
    assert!(metrics.contains("\nlevee_ready 1\n"), "{metrics}");
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}
