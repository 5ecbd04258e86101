//! `levee run` against a broker that it reaches only through a SASL_SSL
//! listener (SCRAM-SHA-512, a CA made by the test kit): it consumes and
//! produces as over PLAINTEXT; with a wrong password, or trusting a CA that
//! did not sign the broker's certificate, it says what is wrong and which
//! setting to look at, `/readyz` answers 503, and SIGTERM stops it. The
//! test kit's own clients (topics, events in, alerts out) use the broker's
//! PLAINTEXT listener. One broker for this test binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/http.rs"]
mod http;
mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use http::http_address;
use levee_testkit::{BrokerOptions, KafkaBroker, SaslSslListener, SaslSslOptions};
use support::*;

const USER: &str = "levee";
const PASSWORD: &str = "levee-tls-secret-1";

/// The broker of this test binary, with its SASL_SSL listener; every
/// [`Setup`] uses it.
fn secure_broker() -> &'static KafkaBroker {
    static SECURE: OnceLock<KafkaBroker> = OnceLock::new();
    let broker = SECURE.get_or_init(|| {
        KafkaBroker::start_with(
            BrokerOptions::default().sasl_ssl(SaslSslOptions::default().user(USER, PASSWORD)),
        )
        .unwrap_or_else(|e| panic!("starting a broker with a SASL_SSL listener: {e:#}"))
    });
    support::use_broker(broker);
    broker
}

fn listener() -> &'static SaslSslListener {
    secure_broker().sasl_ssl().unwrap()
}

/// A settings file for `setup` whose only broker address is the SASL_SSL
/// listener, `properties` in both `[kafka.consumer]` and `[kafka.producer]`.
fn sasl_ssl_config(setup: &Setup, delivery: &str, properties: &[(&str, String)]) -> PathBuf {
    let props: String = properties
        .iter()
        .map(|(k, v)| format!("{:?} = {}\n", k, toml::Value::String(v.clone())))
        .collect();
    let kafka = format!(
        r#"commit_interval_ms = 200

[kafka.consumer]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 500
"fetch.wait.max.ms" = 100
"statistics.interval.ms" = 1000
{props}
[kafka.producer]
"linger.ms" = 5
{props}"#
    );
    let extra = format!("[clock]\noffset = \"{}s\"\n", clock_offset());
    let text = setup.topics.settings(
        &listener().bootstrap_servers(),
        delivery,
        &setup.group,
        &setup.rules,
        0,
        &kafka,
        &extra,
    );
    assert!(!text.contains(&secure_broker().bootstrap_servers()));
    static CONFIGS: AtomicUsize = AtomicUsize::new(0);
    let n = CONFIGS.fetch_add(1, Ordering::Relaxed);
    let path = setup.dir.path().join(format!("levee-tls-{n}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Done when: `levee run` consumes and produces through a SASL_SSL listener
/// with SCRAM; the alerts are `levee replay`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levee_run_consumes_and_produces_through_sasl_ssl_with_scram() {
    let listener = listener();
    let setup = Setup::new("tls_scram").await;
    let (mut events, _) = example_events();
    events.extend(generated_events("tls", 20));
    let expected = replay(&setup, &events);
    assert!(expected.len() >= 10, "{} expected alerts", expected.len());

    let config = sasl_ssl_config(
        &setup,
        "at_least_once",
        &listener.client_properties("SCRAM-SHA-512", USER, PASSWORD),
    );
    let mut levee = setup.spawn(&config, "a");
    let addr = http_address(&mut levee).await;
    levee.wait_assigned().await;
    http::wait_status(addr, "/readyz", WAIT, |s| s == 200);

    setup.produce_events(&events).await;
    let got = setup.wait_for_alerts(&expected).await;
    assert_eq!(
        alert_keys(&got).keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>(),
        "the alerts are exactly what levee replay gives"
    );
    assert_no_duplicates(&got);
    // The state changelog went through the listener too.
    let changelog = broker().consume_all(&setup.changelog, WAIT).await.unwrap();
    assert!(!changelog.is_empty(), "nothing in the changelog");

    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{status}:\n{log}");
    for refused in ["Authentication failed", "SSL handshake failed"] {
        assert!(!log.contains(refused), "{refused}:\n{log}");
    }
}

/// What an instance that the broker refuses shows: a log line with the
/// `problem` and each of `settings`, `/healthz` 200, `/readyz` 503 and
/// unassigned, the log not flooded, and SIGTERM stops it with exit 0.
async fn refused_clearly(mut levee: Levee, addr: SocketAddr, problem: &str, settings: &[&str]) {
    levee.wait_log(problem, 1).await;
    let deadline = Instant::now() + WAIT;
    let line = loop {
        let log = levee.log_text();
        let found = log
            .lines()
            .find(|l| l.contains(problem) && settings.iter().all(|s| l.contains(s)));
        if let Some(line) = found {
            break line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {problem:?} and {settings:?}:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Not ready, for as long as we look; alive; and not flooding the log.
    let lines_before = levee.log_text().lines().count();
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(5) {
        let r = http::get(addr, "/readyz").unwrap();
        let body = r.json();
        assert_eq!(r.status, 503, "{body}");
        assert_eq!(body["ready"], false, "{body}");
        assert_eq!(body["assigned"], false, "{body}");
        assert_eq!(body["rules"], true, "{body}");
        assert_eq!(http::get(addr, "/healthz").unwrap().status, 200);
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = levee.log_text();
    let new_lines = log.lines().count() - lines_before;
    // Five clients (two producers, the group consumer, the changelog probe,
    // the rectification reader) reconnect with back-off.
    assert!(
        new_lines <= 50,
        "{new_lines} log lines in 5 s: spinning?\n{log}"
    );
    assert!(levee.exited().is_none(), "levee exited:\n{log}");

    // Bounded, not prompt: the consumer thread checks for the stop between
    // calls, and the rectification reader's metadata call waits up to 30 s
    // for a broker it cannot reach.
    let stopping = Instant::now();
    levee.signal("TERM");
    let status = loop {
        if let Some(status) = levee.exited() {
            break status;
        }
        assert!(
            stopping.elapsed() < STOP_WITHIN,
            "levee did not exit within {STOP_WITHIN:?} of SIGTERM:\n{}",
            levee.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "refused with: {line}\nstopped {:.1?} after SIGTERM ({status})",
        stopping.elapsed()
    );
    assert!(status.success(), "{status}:\n{}", levee.log_text());
}

/// How long a refused instance may take to stop after SIGTERM (it took
/// about 25 s while the rectification reader blocked 30 s in a metadata call).
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// A wrong password: an authentication error naming SCRAM and the
/// settings to check, counted as `levee_kafka_errors_total{kind="auth"}`;
/// not ready; SIGTERM stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_clearly_and_is_not_ready() {
    let listener = listener();
    let setup = Setup::new("tls_wrong_password").await;
    let config = sasl_ssl_config(
        &setup,
        "at_least_once",
        &listener.client_properties("SCRAM-SHA-512", USER, "not-the-password"),
    );
    let mut levee = setup.spawn(&config, "a");
    let addr = http_address(&mut levee).await;
    levee.wait_log("Authentication failed", 1).await;
    let metrics = http::get(addr, "/metrics").unwrap().text();
    let auth_errors = metrics
        .lines()
        .find(|l| l.starts_with("levee_kafka_errors_total{kind=\"auth\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(auth_errors >= 1.0, "{metrics}");
    refused_clearly(
        levee,
        addr,
        "Authentication failed",
        &["SCRAM-SHA-512", "sasl.username", "sasl.password"],
    )
    .await;
}

/// A CA that did not sign the broker's certificate: a certificate error
/// naming `ssl.ca.location` (librdkafka's words and levee's hint); not
/// ready; SIGTERM stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_clearly_and_is_not_ready() {
    let listener = listener();
    let setup = Setup::new("tls_untrusted").await;
    let mut properties = listener.client_properties("SCRAM-SHA-512", USER, PASSWORD);
    for (key, value) in &mut properties {
        if *key == "ssl.ca.location" {
            *value = listener.untrusted_ca_file().display().to_string();
        }
    }
    let config = sasl_ssl_config(&setup, "at_least_once", &properties);
    let mut levee = setup.spawn(&config, "a");
    let addr = http_address(&mut levee).await;
    refused_clearly(
        levee,
        addr,
        "certificate verify failed",
        &["ssl.ca.location", "security.protocol"],
    )
    .await;
}
