//! Kafka client helpers for assertions: create topics, produce raw records, read
//! records back. They work against any bootstrap address; [`crate::KafkaBroker`] has
//! the same operations as methods.
//!
//! The helpers are `async` and expect a Tokio runtime (`#[tokio::test]`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// How long [`create_topics`] keeps retrying and waiting for the topics to have leaders.
const TOPIC_TIMEOUT: Duration = Duration::from_secs(30);

/// A record to produce. Build one with [`Record::new`] or from a `(key, payload)` pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The key; `None` produces a record without key.
    pub key: Option<Vec<u8>>,
    /// The payload; `None` produces a tombstone.
    pub payload: Option<Vec<u8>>,
    /// Headers, in order; a `None` value is a header without value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Target partition; `None` lets the producer's partitioner choose (by key).
    pub partition: Option<i32>,
    /// Record timestamp in ms since the epoch; `None` = time of sending.
    pub timestamp: Option<i64>,
}

impl Record {
    /// A record with this payload and no key.
    pub fn new(payload: impl Into<Vec<u8>>) -> Self {
        Self {
            payload: Some(payload.into()),
            ..Self::default()
        }
    }

    /// A tombstone (no payload) for this key.
    pub fn tombstone(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: Some(key.into()),
            ..Self::default()
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Appends a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), Some(value.into())));
        self
    }

    /// Sends the record to this partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the record timestamp (ms since the epoch).
    pub fn timestamp(mut self, millis: i64) -> Self {
        self.timestamp = Some(millis);
        self
    }
}

impl<K: Into<Vec<u8>>, V: Into<Vec<u8>>> From<(K, V)> for Record {
    fn from((key, payload): (K, V)) -> Self {
        Record::new(payload).key(key)
    }
}

/// A record read back by [`consume`] or [`consume_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Topic it was read from.
    pub topic: String,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (ms since the epoch), if it has one.
    pub timestamp: Option<i64>,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its payload (`None` for a tombstone).
    pub payload: Option<Vec<u8>>,
    /// Its headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ReceivedMessage {
    /// The key as UTF-8, if there is one and it is valid UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The payload as UTF-8, if there is one and it is valid UTF-8.
    pub fn payload_str(&self) -> Option<&str> {
        self.payload
            .as_deref()
            .and_then(|p| std::str::from_utf8(p).ok())
    }

    /// The value of the first header with this name (`None` if absent or valueless).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// A client configuration with `bootstrap.servers` set (and quiet logging).
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("log_level", "3");
    config
}

/// A topic for [`create_topics_with_config`]: name, partition count and topic configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec<'a> {
    /// Topic name.
    pub name: &'a str,
    /// Number of partitions.
    pub partitions: i32,
    /// Topic configs, e.g. `("cleanup.policy", "compact")`.
    pub config: &'a [(&'a str, &'a str)],
}

impl<'a> TopicSpec<'a> {
    /// A topic with default configs.
    pub fn new(name: &'a str, partitions: i32) -> Self {
        Self {
            name,
            partitions,
            config: &[],
        }
    }

    /// Sets the topic configs.
    pub fn config(mut self, config: &'a [(&'a str, &'a str)]) -> Self {
        self.config = config;
        self
    }
}

/// Creates topics (replication factor 1) with the given partition counts and waits
/// until every partition has a leader. A topic that already exists with the same
/// partition count is accepted.
pub async fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) -> Result<()> {
    let specs: Vec<TopicSpec<'_>> = topics
        .iter()
        .map(|&(name, partitions)| TopicSpec::new(name, partitions))
        .collect();
    create_topics_with_config(bootstrap, &specs).await
}

/// Like [`create_topics`], with topic configs.
pub async fn create_topics_with_config(bootstrap: &str, topics: &[TopicSpec<'_>]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap)
        .create()
        .context("creating a Kafka admin client")?;
    let admin = Arc::new(admin);
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(15)));
    let deadline = Instant::now() + TOPIC_TIMEOUT;
    let mut pending: Vec<TopicSpec<'_>> = topics.to_vec();
    loop {
        let new_topics: Vec<NewTopic<'_>> = pending
            .iter()
            .map(|spec| {
                spec.config.iter().fold(
                    NewTopic::new(spec.name, spec.partitions, TopicReplication::Fixed(1)),
                    |topic, &(k, v)| topic.set(k, v),
                )
            })
            .collect();
        let mut failures = Vec::new();
        match admin.create_topics(&new_topics, &options).await {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((name, code)) => failures.push((name, code.to_string())),
                    }
                }
            }
            Err(err) => failures.extend(
                pending
                    .iter()
                    .map(|spec| (spec.name.to_owned(), err.to_string())),
            ),
        }
        if failures.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            bail!("creating topics failed: {failures:?}");
        }
        // The broker may still be registering itself with the controller: retry.
        let failed: HashSet<String> = failures.into_iter().map(|(name, _)| name).collect();
        pending.retain(|spec| failed.contains(spec.name));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for spec in topics {
        wait_for_topic(&admin, spec.name, spec.partitions, deadline).await?;
    }
    Ok(())
}

/// Waits until the metadata shows `topic` with `partitions` partitions, all led.
async fn wait_for_topic(
    admin: &Arc<AdminClient<DefaultClientContext>>,
    topic: &str,
    partitions: i32,
    deadline: Instant,
) -> Result<()> {
    loop {
        let admin = Arc::clone(admin);
        let name = topic.to_owned();
        let state = tokio::task::spawn_blocking(move || -> Result<Option<usize>> {
            let metadata = admin
                .inner()
                .fetch_metadata(Some(&name), Duration::from_secs(5))?;
            Ok(metadata
                .topics()
                .iter()
                .find(|t| t.name() == name)
                .and_then(|t| {
                    let ready = t.error().is_none()
                        && t.partitions()
                            .iter()
                            .all(|p| p.error().is_none() && p.leader() >= 0);
                    ready.then_some(t.partitions().len())
                }))
        })
        .await
        .context("metadata task")?;
        match state {
            Ok(Some(n)) if n == usize::try_from(partitions).unwrap_or(0) => return Ok(()),
            Ok(Some(n)) => bail!("topic {topic} exists with {n} partitions, not {partitions}"),
            Ok(None) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(None) => bail!("topic {topic} has no leaders after {TOPIC_TIMEOUT:?}"),
            Err(err) => return Err(err.context(format!("fetching metadata of {topic}"))),
        }
    }
}

/// A producer with `acks=all` and idempotence, so records land once and in order.
pub fn producer(bootstrap: &str) -> Result<FutureProducer> {
    client_config(bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .context("creating a Kafka producer")
}

/// Produces the records to `topic`, in order, and waits until all are acknowledged.
/// Returns the `(partition, offset)` of each record.
pub async fn produce<I, R>(bootstrap: &str, topic: &str, records: I) -> Result<Vec<(i32, i64)>>
where
    I: IntoIterator<Item = R>,
    R: Into<Record>,
{
    let producer = producer(bootstrap)?;
    let records: Vec<Record> = records.into_iter().map(Into::into).collect();
    let mut deliveries = Vec::with_capacity(records.len());
    for record in &records {
        let mut future_record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if let Some(key) = &record.key {
            future_record = future_record.key(key.as_slice());
        }
        if let Some(payload) = &record.payload {
            future_record = future_record.payload(payload.as_slice());
        }
        if let Some(partition) = record.partition {
            future_record = future_record.partition(partition);
        }
        if let Some(timestamp) = record.timestamp {
            future_record = future_record.timestamp(timestamp);
        }
        if !record.headers.is_empty() {
            let headers =
                record
                    .headers
                    .iter()
                    .fold(OwnedHeaders::new(), |headers, (name, value)| {
                        headers.insert(Header {
                            key: name,
                            value: value.as_deref(),
                        })
                    });
            future_record = future_record.headers(headers);
        }
        loop {
            match producer.send_result(future_record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    future_record = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((err, _)) => return Err(err).context(format!("producing to {topic}")),
            }
        }
    }
    let mut positions = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let delivery = delivery
            .await
            .map_err(|_| anyhow!("producer dropped a delivery report"))?
            .map_err(|(err, _)| err)
            .with_context(|| format!("delivering a record to {topic}"))?;
        positions.push((delivery.partition, delivery.offset));
    }
    Ok(positions)
}

/// Reads `topic` from the beginning of every partition (committed records only) until
/// `max` records have arrived or `timeout` has passed; returns what arrived, in arrival
/// order (ordered within each partition). Not reaching `max` is not an error: assert
/// on the length.
pub async fn consume(
    bootstrap: &str,
    topic: &str,
    max: usize,
    timeout: Duration,
) -> Result<Vec<ReceivedMessage>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let consumer = assigned_consumer(bootstrap, topic, false, deadline).await?;
    let mut out = Vec::new();
    while out.len() < max {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => break,
            Ok(Ok(message)) => out.push(to_received(&message)),
            Ok(Err(err)) if passing(&err) => {}
            Ok(Err(err)) => return Err(err).context(format!("consuming {topic}")),
        }
    }
    Ok(out)
}

/// A connection error librdkafka reports and recovers from by itself (it
/// reconnects): the deadline decides, not the first such report.
fn passing(err: &KafkaError) -> bool {
    matches!(
        err,
        KafkaError::MessageConsumption(
            RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure
        )
    )
}

/// Reads everything that is in `topic` now (committed records only): from the
/// beginning of each partition up to its end. Fails if that takes longer than `timeout`.
pub async fn consume_all(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<ReceivedMessage>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let consumer = assigned_consumer(bootstrap, topic, true, deadline).await?;
    let partitions = consumer
        .assignment()
        .context("reading the assignment")?
        .count();
    let mut out = Vec::new();
    let mut at_end = HashSet::new();
    while at_end.len() < partitions {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => bail!(
                "consuming {topic}: only {} of {partitions} partitions read to the end within {timeout:?} ({} records so far)",
                at_end.len(),
                out.len()
            ),
            Ok(Ok(message)) => out.push(to_received(&message)),
            Ok(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Ok(Err(err)) if passing(&err) => {}
            Ok(Err(err)) => return Err(err).context(format!("consuming {topic}")),
        }
    }
    Ok(out)
}

/// A consumer assigned to every partition of `topic` from the beginning; fails if the
/// topic's metadata cannot be had before `deadline`.
async fn assigned_consumer(
    bootstrap: &str,
    topic: &str,
    eof: bool,
    deadline: tokio::time::Instant,
) -> Result<StreamConsumer> {
    let consumer: StreamConsumer = client_config(bootstrap)
        .set(
            "group.id",
            format!("levee-testkit-reader-{}", crate::unique_suffix()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", if eof { "true" } else { "false" })
        .set("fetch.wait.max.ms", "100")
        .create()
        .context("creating a Kafka consumer")?;
    let consumer = Arc::new(consumer);
    let reader = Arc::clone(&consumer);
    let name = topic.to_owned();
    let wait = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .max(Duration::from_millis(100));
    let partitions = tokio::task::spawn_blocking(move || -> Result<Vec<i32>> {
        let metadata = reader
            .fetch_metadata(Some(&name), wait)
            .with_context(|| format!("fetching metadata of {name}"))?;
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| anyhow!("no metadata for topic {name}"))?;
        if let Some(err) = t.error() {
            bail!("topic {name}: {err:?}");
        }
        Ok(t.partitions().iter().map(|p| p.id()).collect())
    })
    .await
    .context("metadata task")??;
    if partitions.is_empty() {
        bail!("topic {topic} has no partitions");
    }
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .context("building the assignment")?;
    }
    consumer
        .assign(&assignment)
        .context("assigning partitions")?;
    Arc::try_unwrap(consumer).map_err(|_| anyhow!("consumer still shared"))
}

fn to_received(message: &impl Message) -> ReceivedMessage {
    ReceivedMessage {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        headers: message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_connection_is_waited_out_and_a_real_error_is_not() {
        let down = KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown);
        let transport = KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(passing(&down) && passing(&transport));
        let unknown = KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition);
        assert!(!passing(&unknown));
        assert!(!passing(&KafkaError::PartitionEOF(0)));
    }
}
