//! Runs a real Kafka broker: produce to a 3-partition topic and read everything back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use levee_testkit::{
    shared_broker, unique_topic_prefix, BrokerOptions, KafkaBroker, Record, TopicSpec,
};

#[tokio::test]
async fn produces_and_consumes_100_messages_on_3_partitions() {
    let broker = shared_broker();
    let topic = format!("{}.in", unique_topic_prefix("produce_consume"));
    broker.create_topics(&[(&topic, 3)]).await.unwrap();

    let records: Vec<Record> = (0..100)
        .map(|i| {
            Record::new(format!("payload-{i}"))
                .key(format!("key-{}", i % 10))
                .header("seq", i.to_string())
        })
        .collect();
    let positions = broker.produce(&topic, records).await.unwrap();
    assert_eq!(positions.len(), 100);
    let partitions: BTreeSet<i32> = positions.iter().map(|p| p.0).collect();
    assert!(
        partitions.len() > 1,
        "keys spread over partitions: {partitions:?}"
    );

    let got = broker
        .consume(&topic, 100, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(got.len(), 100);
    let mut seen = BTreeSet::new();
    for message in &got {
        assert_eq!(message.topic, topic);
        let seq: usize = std::str::from_utf8(message.header("seq").unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            message.payload_str(),
            Some(format!("payload-{seq}").as_str())
        );
        assert_eq!(
            message.key_str(),
            Some(format!("key-{}", seq % 10).as_str())
        );
        assert!(seen.insert(seq), "duplicate {seq}");
    }
    assert_eq!(seen, (0..100).collect());
    // Within a partition, records keep the order they were produced in.
    for partition in partitions {
        let seqs: Vec<usize> = got
            .iter()
            .filter(|m| m.partition == partition)
            .map(|m| {
                std::str::from_utf8(m.header("seq").unwrap())
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }

    // Nothing more is there.
    let all = broker
        .consume_all(&topic, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(all.len(), 100);
}

#[tokio::test]
async fn tuples_tombstones_and_explicit_partitions() {
    let broker = shared_broker();
    let topic = format!("{}.t", unique_topic_prefix("tuples"));
    broker.create_topics(&[(&topic, 2)]).await.unwrap();
    // Creating again is accepted.
    broker.create_topics(&[(&topic, 2)]).await.unwrap();

    broker
        .produce(&topic, [("a", "1"), ("b", "2")])
        .await
        .unwrap();
    broker
        .produce(
            &topic,
            [Record::tombstone("a").partition(1).timestamp(1_000)],
        )
        .await
        .unwrap();
    let got = broker
        .consume_all(&topic, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(got.len(), 3);
    let tombstone = got.iter().find(|m| m.payload.is_none()).unwrap();
    assert_eq!(tombstone.partition, 1);
    assert_eq!(tombstone.timestamp, Some(1_000));
    assert_eq!(tombstone.key_str(), Some("a"));
}

#[tokio::test]
async fn consume_stops_at_timeout_with_what_arrived() {
    let broker = shared_broker();
    let topic = format!("{}.empty", unique_topic_prefix("timeout"));
    broker.create_topics(&[(&topic, 1)]).await.unwrap();
    let started = Instant::now();
    let got = broker
        .consume(&topic, 1, Duration::from_millis(1500))
        .await
        .unwrap();
    assert!(got.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(broker
        .consume_all(&topic, Duration::from_secs(20))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn own_broker_survives_restart_kill_and_pause() {
    let broker = KafkaBroker::start().unwrap();
    let bootstrap = broker.bootstrap_servers();
    let dir = broker.dir().to_path_buf();
    let topic = format!("{}.durable", unique_topic_prefix("restart"));
    broker.create_topics(&[(&topic, 1)]).await.unwrap();
    broker.produce(&topic, [("k", "before")]).await.unwrap();

    let t = Instant::now();
    broker.restart().unwrap();
    eprintln!("graceful restart took {:?}", t.elapsed());
    assert_eq!(broker.bootstrap_servers(), bootstrap);
    broker
        .produce(&topic, [("k", "after-restart")])
        .await
        .unwrap();

    broker.kill().unwrap();
    assert!(!broker.is_running());
    assert!(broker
        .consume_all(&topic, Duration::from_secs(3))
        .await
        .is_err());
    let t = Instant::now();
    broker.start_again().unwrap();
    eprintln!("start after kill took {:?}", t.elapsed());

    broker.pause().unwrap();
    assert!(broker.is_running());
    assert!(broker
        .consume_all(&topic, Duration::from_secs(3))
        .await
        .is_err());
    broker.resume().unwrap();

    let got = broker
        .consume_all(&topic, Duration::from_secs(30))
        .await
        .unwrap();
    let payloads: Vec<&str> = got.iter().filter_map(|m| m.payload_str()).collect();
    assert_eq!(payloads, ["before", "after-restart"]);

    let pid = broker.pid().unwrap();
    drop(broker);
    assert!(!dir.exists(), "directory removed on drop");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "java gone"
    );
}

#[tokio::test]
async fn topics_with_config() {
    let broker = shared_broker();
    let topic = format!("{}.state", unique_topic_prefix("config"));
    broker
        .create_topics_with_config(&[
            TopicSpec::new(&topic, 2).config(&[("cleanup.policy", "compact")])
        ])
        .await
        .unwrap();
    broker.produce(&topic, [("k", "v")]).await.unwrap();
    assert_eq!(
        broker
            .consume_all(&topic, Duration::from_secs(30))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn bad_config_fails_with_kafkas_message() {
    let err =
        KafkaBroker::start_with(BrokerOptions::default().property("num.network.threads", "0"))
            .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("num.network.threads"), "{text}");
}

#[test]
fn start_failure_reports_the_broker_log() {
    // The client port is taken: the broker formats its directory but cannot bind.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let controller = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let controller_port = controller.local_addr().unwrap().port();
    drop(controller);
    let options = BrokerOptions::default()
        .property(
            "listeners",
            format!("PLAINTEXT://127.0.0.1:{busy_port},CONTROLLER://127.0.0.1:{controller_port}"),
        )
        .property(
            "controller.quorum.voters",
            format!("1@127.0.0.1:{controller_port}"),
        );
    let started = Instant::now();
    let err = KafkaBroker::start_with(options).unwrap_err();
    let text = format!("{err:#}");
    eprintln!("failed after {:?}:\n{text}", started.elapsed());
    assert!(text.contains("did not start"), "{text}");
    assert!(text.contains("Address already in use"), "{text}");
}
