//! The baseline: a bare consume → produce passthrough with levee's client
//! settings, committing after delivery.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use levee_testkit::KafkaBroker;

use crate::common::{Bench, PARTITIONS};
use crate::observe::{cpu_ticks, topic_bytes, Monitor, Throughput};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// The baseline: consume → produce unchanged, commit after delivery.
pub(crate) fn passthrough(
    broker: &KafkaBroker,
    group: &str,
    inputs: &[String],
    output: &str,
    stop: &AtomicBool,
) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", group)
        .set("client.id", "passthrough")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("statistics.interval.ms", "5000")
        .create()
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "zstd")
        .set("client.id", "passthrough")
        .create()
        .unwrap();
    let topics: Vec<&str> = inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut pending: Vec<DeliveryFuture> = Vec::new();
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::Acquire) {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(output);
            if let Some(k) = m.key() {
                record = record.key(k);
            }
            if let Some(p) = m.payload() {
                record = record.payload(p);
            }
            loop {
                match producer.send_result(record) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => panic!("passthrough produce: {e}"),
                }
            }
            next.insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
        }
        if last_commit.elapsed() >= Duration::from_millis(1000) {
            rt.block_on(async {
                for f in pending.drain(..) {
                    f.await.unwrap().unwrap();
                }
            });
            if !next.is_empty() {
                let mut tpl = TopicPartitionList::new();
                for ((t, p), o) in &next {
                    tpl.add_partition_offset(t, *p, Offset::Offset(*o)).unwrap();
                }
                consumer.commit(&tpl, CommitMode::Sync).unwrap();
            }
            last_commit = Instant::now();
        }
    }
}

/// One passthrough run over the bench's input into a fresh output topic and
/// group (`bench.NAME`): its throughput, CPU and bytes written, printed.
pub(crate) fn measure(b: &Bench, name: &str) -> Throughput {
    let (rt, broker, inputs) = (&b.rt, &b.broker, &b.inputs);
    let (total, broker_pid, input_mib) = (b.total, b.broker_pid, b.input_mib);
    let out = format!("bench.{name}.out");
    let group = format!("bench.{name}");
    rt.block_on(broker.create_topics(&[(out.as_str(), PARTITIONS)]))
        .unwrap();
    let monitor = Monitor::new(broker, &group, inputs);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let cpu0 = (cpu_ticks(std::process::id()), cpu_ticks(broker_pid));
    let pass = std::thread::scope(|s| {
        let stop2 = Arc::clone(&stop);
        let (b, i, o, g) = (&broker, &inputs, &out, &group);
        s.spawn(move || passthrough(b, g, i, o, &stop2));
        let r = monitor.watch(total, start, || {});
        stop.store(true, Ordering::Release);
        r
    });
    println!(
        "{name}: {:.0} events/s steady, {:.2} s start to all committed ({} commits, the first {} ms after start)",
        pass.steady,
        pass.wall.as_secs_f64(),
        pass.commits,
        pass.first.as_millis()
    );
    println!(
        "  CPU: passthrough (the bench process) {:.1} s, broker {:.1} s",
        (cpu_ticks(std::process::id()) - cpu0.0) as f64 / 100.0,
        (cpu_ticks(broker_pid) - cpu0.1) as f64 / 100.0
    );
    println!(
        "  written: {:.1} MiB (input {input_mib:.1} MiB)",
        topic_bytes(broker, &out) as f64 / 1_048_576.0
    );
    pass
}
