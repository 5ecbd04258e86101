//! A broker with a SASL_SSL listener: librdkafka (as levee builds it) speaks
//! TLS and every SASL mechanism the listener offers; a wrong password and an
//! untrusted CA are refused with errors that say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use levee_testkit::secure::MECHANISMS;
use levee_testkit::{unique_topic_prefix, BrokerOptions, KafkaBroker, SaslSslOptions};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, ClientContext};

const USER: &str = "levee";
const PASSWORD: &str = "levee-secret-1";

/// The client errors librdkafka reported.
#[derive(Debug, Default)]
struct Errors(Mutex<Vec<String>>);

impl ClientContext for Errors {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.lock().unwrap().push(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Errors {}

impl Errors {
    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

#[test]
fn librdkafka_is_built_with_tls_and_sasl() {
    let features = ClientConfig::new()
        .create_native_config()
        .unwrap()
        .get("builtin.features")
        .unwrap();
    let features: Vec<&str> = features.split(',').collect();
    for f in ["ssl", "sasl_plain", "sasl_scram"] {
        assert!(features.contains(&f), "no {f} in {features:?}");
    }
}

/// Polls `consumer` (which serves its error callbacks) until it reported
/// an error containing `needle`; fails after `wait`.
fn wait_for_error(consumer: &BaseConsumer<Errors>, needle: &str, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    loop {
        let _ = consumer.poll(Duration::from_millis(100));
        let text = consumer.context().text();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no error with {needle:?} within {wait:?}; errors so far:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_listener_takes_scram_and_plain_and_refuses_strangers() {
    let broker = KafkaBroker::start_with(
        BrokerOptions::default().sasl_ssl(SaslSslOptions::default().user(USER, PASSWORD)),
    )
    .unwrap();
    let listener = broker.sasl_ssl().unwrap();
    assert_ne!(listener.port(), broker.port());
    let topic = format!("{}.in", unique_topic_prefix("sasl_ssl"));
    broker.create_topics(&[(&topic, 1)]).await.unwrap();

    // Every mechanism produces through the SASL_SSL listener.
    for mechanism in MECHANISMS {
        let producer: FutureProducer = listener
            .client_config(mechanism, USER, PASSWORD)
            .set("message.timeout.ms", "30000")
            .create()
            .unwrap();
        let record = FutureRecord::to(&topic).key(mechanism).payload(mechanism);
        producer
            .send(record, Duration::from_secs(30))
            .await
            .unwrap_or_else(|(e, _)| panic!("{mechanism}: {e}"));
    }
    // and the records are there, read over PLAINTEXT.
    let got = broker
        .consume_all(&topic, Duration::from_secs(30))
        .await
        .unwrap();
    let keys: Vec<&str> = got.iter().filter_map(|m| m.key_str()).collect();
    assert_eq!(keys, MECHANISMS);

    // A wrong password: the metadata request fails, and the client says why.
    let consumer: BaseConsumer<Errors> = listener
        .client_config("SCRAM-SHA-512", USER, "not-the-password")
        .create_with_context(Errors::default())
        .unwrap();
    assert!(consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(5))
        .is_err());
    let text = wait_for_error(&consumer, "Authentication failed", Duration::from_secs(30));
    assert!(text.contains("SCRAM-SHA-512"), "{text}");
    drop(consumer);

    // A CA that did not sign the broker's certificate: the handshake fails.
    let consumer: BaseConsumer<Errors> = listener
        .client_config("SCRAM-SHA-512", USER, PASSWORD)
        .set(
            "ssl.ca.location",
            listener.untrusted_ca_file().display().to_string(),
        )
        .create_with_context(Errors::default())
        .unwrap();
    assert!(consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(5))
        .is_err());
    let text = wait_for_error(
        &consumer,
        "certificate verify failed",
        Duration::from_secs(30),
    );
    assert!(text.contains("ssl.ca.location"), "{text}");
}
