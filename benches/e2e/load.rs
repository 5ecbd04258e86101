//! The bench's input: a `levee gen` stream, routed to its topic and keyed
//! by subject, and the producer that writes it.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use levee_testkit::levee::STREAMS;
use levee_testkit::KafkaBroker;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde_json::Value;

use crate::common::{root, LEVEE};

/// One generated event, routed and keyed.
pub(crate) struct Ev {
    pub(crate) stream: usize,
    pub(crate) key: String,
    pub(crate) id: String,
    pub(crate) payload: String,
}

/// event type → (stream index, subject field), from the compiled rules.
pub(crate) fn routing() -> HashMap<String, (usize, String)> {
    let compiled = levee_rules::compile_dir(&root().join("rules"))
        .unwrap_or_else(|d| panic!("rules do not compile: {d:?}"));
    compiled
        .graph
        .event_types
        .iter()
        .map(|t| {
            let stream = t.stream.trim_start_matches("events.");
            let idx = STREAMS
                .iter()
                .position(|s| *s == stream)
                .unwrap_or_else(|| panic!("unknown stream {}", t.stream));
            let subject = t.slot_name(t.subject).unwrap().to_owned();
            (t.name.clone(), (idx, subject))
        })
        .collect()
}

pub(crate) fn generate(n: u64, dir: &Path) -> Vec<Ev> {
    let file = dir.join("events.jsonl");
    let status = Command::new(LEVEE)
        .current_dir(root())
        .args(["gen", "--seed", "7", "--events", &n.to_string(), "--out"])
        .arg(&file)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let routes = routing();
    fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let (stream, subject) = &routes[v["type"].as_str().unwrap()];
            let key = match &v[subject.as_str()] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Ev {
                stream: *stream,
                key,
                id: v["event_id"].as_str().unwrap().to_owned(),
                payload: line.to_owned(),
            }
        })
        .collect()
}

pub(crate) fn load_producer(broker: &KafkaBroker, linger_ms: &str) -> FutureProducer {
    broker
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", linger_ms)
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap()
}

pub(crate) fn send(
    producer: &FutureProducer,
    topic: &str,
    ev: &Ev,
    timestamp: Option<i64>,
) -> DeliveryFuture {
    let mut record = FutureRecord::to(topic)
        .key(ev.key.as_bytes())
        .payload(ev.payload.as_bytes());
    if let Some(ts) = timestamp {
        record = record.timestamp(ts);
    }
    loop {
        match producer.send_result(record) {
            Ok(f) => return f,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, _)) => panic!("producing to {topic}: {e}"),
        }
    }
}
