//! The Kafka clients' configurations, and librdkafka's logs and errors as
//! tracing events.
//!
//! levee's own properties come first, then the `[kafka.consumer]` /
//! `[kafka.producer]` passthrough (which may not override those that
//! `config.rs` reserves). Every client has its own `client.id`:
//! `levee-<instance>` (the group consumer and the main producer),
//! `levee-<instance>-state` (at-least-once: the changelog producer),
//! `-probe`, `-restore` (changelog reads) and `-rectification`.

use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, ClientContext};
use tracing::{debug, info, warn};

use super::error::{report, PipelineError};
use crate::service::config::{Delivery, Settings};
use crate::service::metrics::KafkaErrorKind;

/// The producers' context: librdkafka's logs and errors as tracing
/// events; its delivery reports go to `delivery.rs`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientLog;

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(&error, reason);
    }

    /// Statistics are read from the group consumer (lag, broker state);
    /// other clients' are dropped, not logged once a second.
    fn stats(&self, _: rdkafka::Statistics) {}
}

impl ConsumerContext for ClientLog {}

/// A log line of librdkafka, at its level.
pub fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => warn!(target: "levee::kafka", facility = fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            info!(target: "levee::kafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Debug => debug!(target: "levee::kafka", facility = fac, "{message}"),
    }
}

/// An error librdkafka reports through a client callback. It retries by
/// itself (these repeat at every reconnect attempt while a broker is away).
/// Whether the stream is up is read from the group consumer's statistics
/// alone (see `Coordinator::stats`): librdkafka repeats "all brokers down"
/// for a while after a broker is back, which made `levee_stream_up` flap
/// against the statistics every second.
pub fn client_error(error: &KafkaError, reason: &str) {
    let kind = KafkaErrorKind::of_client_error(error);
    report(
        kind,
        error,
        &format!("kafka client error (retrying): {reason}{}", hint(error)),
    );
}

/// The settings to look at when the broker refuses the client.
fn hint(error: &KafkaError) -> &'static str {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
            "; check sasl.mechanisms, sasl.username and sasl.password in [kafka.consumer] and [kafka.producer]"
        }
        Some(RDKafkaErrorCode::SSL) => {
            "; check security.protocol and ssl.ca.location in [kafka.consumer] and [kafka.producer]"
        }
        _ => "",
    }
}

/// The producer configuration: levee's settings, then the passthrough.
pub fn producer_config(settings: &Settings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.kafka.brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // Batches of changelog records share key prefixes and layouts:
        // zstd writes them in a fraction of the bytes for little CPU.
        .set("compression.type", "zstd")
        .set("client.id", format!("levee-{}", settings.instance_id()));
    if settings.delivery == Delivery::ExactlyOnce {
        c.set("transactional.id", settings.transactional_id());
    }
    for (k, v) in &settings.kafka.producer {
        c.set(k, v.to_string());
    }
    c
}

/// Exactly-once: the second transactional producer (the two take turns,
/// `transaction::Alternating`): the producer settings with a transactional
/// id and a client id of its own, `<group id>-<instance>-alt`.
pub fn second_transactional_config(settings: &Settings) -> ClientConfig {
    let mut c = producer_config(settings);
    c.set(
        "transactional.id",
        format!("{}-alt", settings.transactional_id()),
    )
    .set("client.id", format!("levee-{}-alt", settings.instance_id()));
    c
}

/// At-least-once: the producer of the changelog and profiles, on a
/// connection of its own, lingering 50 ms. A cut's records are read back
/// only by a restore: zstd's fastest level (what the producer spends per byte counts
/// more than the last few per cent of size; 15-22 MiB of changelog for
/// 378 MiB of input in the e2e bench). `[kafka.producer]` overrides it.
pub fn state_producer_config(settings: &Settings) -> ClientConfig {
    let mut c = producer_config(settings);
    c.set(
        "client.id",
        format!("levee-{}-state", settings.instance_id()),
    );
    if !settings.kafka.producer.contains_key("compression.level") {
        c.set("compression.level", "1");
    }
    // Nobody waits for a changelog record but the next checkpoint: 50 ms
    // batches, about a tenth of the requests of 5 ms, which left the broker
    // fewer to serve before the stream's fetches (alert p99 at 58,000
    // events/s 66-95 ms against 100-171; BENCHMARKS.md, section 5).
    if !settings.kafka.producer.contains_key("linger.ms") {
        c.set("linger.ms", "50");
    }
    c
}

/// `/v1/evaluate`'s producer of requests and decisions: the producer
/// settings (its partitioner among them: the upstream producers'), never
/// transactional (a second producer with levee's transactional id would
/// fence the stream's), and no linger: a handler is waiting.
pub fn request_producer_config(settings: &Settings) -> ClientConfig {
    let mut c = producer_config(settings);
    c.remove("transactional.id");
    c.set("linger.ms", "0").set(
        "client.id",
        format!("levee-{}-requests", settings.instance_id()),
    );
    c
}

/// The group consumer's configuration: levee's settings, then the passthrough.
pub fn consumer_config(settings: &Settings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.kafka.brokers)
        .set("group.id", &settings.kafka.group_id)
        .set("client.id", format!("levee-{}", settings.instance_id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        // levee_consumer_lag and readiness come from librdkafka's statistics.
        .set("statistics.interval.ms", "5000");
    for (k, v) in &settings.kafka.consumer {
        c.set(k, v.to_string());
    }
    c
}

/// The changelog readers' configuration (`role`: `probe`, `restore`): the
/// consumer settings (they never join the group: librdkafka wants a
/// `group.id` to assign partitions all the same), and no waiting for more
/// data at the end.
pub fn changelog_reader_config(settings: &Settings, role: &str) -> ClientConfig {
    let mut config = consumer_config(settings);
    config
        .remove("statistics.interval.ms")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .set(
            "client.id",
            format!("levee-{}-{role}", settings.instance_id()),
        );
    config
}

/// The rectification reader's configuration: the consumer settings, all
/// partitions assigned (no group).
pub fn rectification_reader_config(settings: &Settings) -> ClientConfig {
    let mut config = consumer_config(settings);
    config.set("enable.partition.eof", "false").set(
        "client.id",
        format!("levee-{}-rectification", settings.instance_id()),
    );
    config
}

/// The decisions reader's configuration (all partitions, no group): the
/// consumer settings, uncommitted records included (a decision inside an
/// open transaction is the stream's answer already; an aborted one is
/// evaluated again in the same order). A decision ends the broker's wait
/// for the fetch the moment it is written (`fetch.min.bytes` 1), so
/// `fetch.wait.max.ms` bounds only fetches that find nothing: 100 ms. At
/// 5 ms they were 170 requests a second on the broker and as many wake-ups
/// in levee, and events reached the stream later (BENCHMARKS.md, section 5);
/// a request's answer took as long either way.
pub fn decisions_reader_config(settings: &Settings) -> ClientConfig {
    let mut config = consumer_config(settings);
    config
        .remove("statistics.interval.ms")
        .set("isolation.level", "read_uncommitted")
        .set("fetch.wait.max.ms", "100")
        .set(
            "client.id",
            format!("levee-{}-decisions", settings.instance_id()),
        );
    config
}

/// The people reader's configuration (people's files: the tier topics and
/// the rectifications, all partitions, no group): the consumer settings,
/// committed records only, fetched 64 KiB or 200 ms at a time: a file may
/// be 200 ms behind its alerts, and the reader no longer fetches for each
/// alert (150 requests a second at 30,000 events/s; BENCHMARKS.md, section 5).
pub fn people_reader_config(settings: &Settings) -> ClientConfig {
    let mut config = consumer_config(settings);
    config
        .remove("statistics.interval.ms")
        .set("fetch.min.bytes", "65536")
        .set("fetch.wait.max.ms", "200")
        .set(
            "client.id",
            format!("levee-{}-people", settings.instance_id()),
        );
    config
}

/// The people stage's consumer (`<group id>-people`, a group of its own so
/// that its rebalances never pause the stream): committed records only,
/// always from the beginning (it commits nothing: a file is the fold of
/// its whole partition), the end of a partition reported, partitions moved
/// incrementally (cooperative-sticky), fetched 64 KiB or 200 ms at a time
/// like the people reader.
pub fn people_stage_config(settings: &Settings) -> ClientConfig {
    let mut config = consumer_config(settings);
    config
        .remove("statistics.interval.ms")
        .remove("group.instance.id")
        .set("group.id", super::people::topic(&settings.kafka.group_id))
        .set("auto.offset.reset", "earliest")
        // A partition taken over is read whole: a rebalance moves only
        // those that change owner, not every one.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.partition.eof", "true")
        .set("fetch.min.bytes", "65536")
        .set("fetch.wait.max.ms", "200")
        .set(
            "client.id",
            format!("levee-{}-people-stage", settings.instance_id()),
        );
    config
}

/// The producer of people's files (`profiles.people`): the producer
/// settings, never transactional (a file written twice is the same file),
/// lingering 50 ms: nobody waits for one.
pub fn people_files_producer_config(settings: &Settings) -> ClientConfig {
    let mut c = producer_config(settings);
    c.remove("transactional.id");
    if !settings.kafka.producer.contains_key("linger.ms") {
        c.set("linger.ms", "50");
    }
    c.set(
        "client.id",
        format!("levee-{}-people-files", settings.instance_id()),
    );
    c
}

/// How many partitions `topic` has; a missing topic is the operator's to fix.
pub fn partition_count<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<i32, PipelineError> {
    let md = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| {
        PipelineError::kafka(
            format!("reading the metadata of {topic}"),
            KafkaErrorKind::Consume,
            e,
        )
    })?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| PipelineError::NotYet(format!("no metadata for {topic}")))?;
    if t.error().is_some() || t.partitions().is_empty() {
        return Err(PipelineError::Misconfigured(format!(
            "the topic {topic} does not exist: create it (the changelog and profiles with \
             cleanup.policy=compact, the changelog with as many partitions as the input topics)"
        )));
    }
    Ok(i32::try_from(t.partitions().len()).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::service::config::{load, Overrides, Property};

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let env = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        load(None, env, &Overrides::default()).unwrap()
    }

    #[test]
    fn the_people_stage_has_a_group_of_its_own_and_reads_from_the_start() {
        let mut s = settings(&[
            ("LEVEE__KAFKA__GROUP_ID", "g"),
            ("LEVEE__DELIVERY", "exactly_once"),
        ]);
        s.kafka.consumer.insert(
            "auto.offset.reset".to_owned(),
            crate::service::config::Property::Str("latest".to_owned()),
        );
        let c = people_stage_config(&s);
        assert_eq!(c.get("group.id"), Some("g-people"));
        assert_eq!(c.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
        assert_eq!(c.get("enable.partition.eof"), Some("true"));
        assert_eq!(
            c.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        let p = people_files_producer_config(&s);
        assert_eq!(
            p.get("transactional.id"),
            None,
            "the stream's id stays its own"
        );
    }

    #[test]
    fn transactions_only_exactly_once() {
        let s = settings(&[("LEVEE__KAFKA__INSTANCE_ID", "i1")]);
        assert_eq!(producer_config(&s).get("transactional.id"), None);
        let s = settings(&[
            ("LEVEE__KAFKA__INSTANCE_ID", "i1"),
            ("LEVEE__DELIVERY", "exactly_once"),
        ]);
        assert_eq!(
            producer_config(&s).get("transactional.id"),
            Some("levee-i1")
        );
    }

    #[test]
    fn the_passthrough_comes_last() {
        let mut s = settings(&[("LEVEE__KAFKA__INSTANCE_ID", "i1")]);
        s.kafka
            .producer
            .insert("linger.ms".into(), Property::Int(50));
        s.kafka
            .consumer
            .insert("statistics.interval.ms".into(), Property::Int(500));
        assert_eq!(producer_config(&s).get("linger.ms"), Some("50"));
        assert_eq!(producer_config(&s).get("acks"), Some("all"));
        let c = consumer_config(&s);
        assert_eq!(c.get("statistics.interval.ms"), Some("500"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
    }

    #[test]
    fn the_changelog_is_compressed_fast_unless_told_otherwise() {
        let mut s = settings(&[("LEVEE__KAFKA__INSTANCE_ID", "i1")]);
        assert_eq!(
            state_producer_config(&s).get("compression.level"),
            Some("1")
        );
        assert_eq!(producer_config(&s).get("compression.level"), None);
        s.kafka
            .producer
            .insert("compression.level".into(), Property::Int(6));
        assert_eq!(
            state_producer_config(&s).get("compression.level"),
            Some("6")
        );
    }

    #[test]
    fn the_changelog_waits_50_ms_for_a_batch_unless_told_otherwise() {
        let mut s = settings(&[("LEVEE__KAFKA__INSTANCE_ID", "i1")]);
        assert_eq!(state_producer_config(&s).get("linger.ms"), Some("50"));
        // Alerts and verdicts are waited for.
        assert_eq!(producer_config(&s).get("linger.ms"), Some("5"));
        assert_eq!(request_producer_config(&s).get("linger.ms"), Some("0"));
        s.kafka
            .producer
            .insert("linger.ms".into(), Property::Int(20));
        assert_eq!(state_producer_config(&s).get("linger.ms"), Some("20"));
    }

    #[test]
    fn people_files_are_read_in_batches_and_the_stream_is_not() {
        let s = settings(&[("LEVEE__KAFKA__INSTANCE_ID", "i1")]);
        let people = people_reader_config(&s);
        assert_eq!(people.get("fetch.min.bytes"), Some("65536"));
        assert_eq!(people.get("fetch.wait.max.ms"), Some("200"));
        // The stream's consumer and the decisions reader take each record
        // as soon as it is written.
        assert_eq!(consumer_config(&s).get("fetch.min.bytes"), None);
        assert_eq!(decisions_reader_config(&s).get("fetch.min.bytes"), None);
    }

    #[test]
    fn every_client_has_its_own_id() {
        let s = settings(&[("LEVEE__KAFKA__INSTANCE_ID", "i1")]);
        let ids: Vec<String> = [
            producer_config(&s),
            state_producer_config(&s),
            changelog_reader_config(&s, "probe"),
            changelog_reader_config(&s, "restore"),
            rectification_reader_config(&s),
            request_producer_config(&s),
            decisions_reader_config(&s),
            people_reader_config(&s),
            people_stage_config(&s),
            people_files_producer_config(&s),
            second_transactional_config(&s),
        ]
        .iter()
        .map(|c| c.get("client.id").unwrap().to_owned())
        .collect();
        assert_eq!(
            ids,
            [
                "levee-i1",
                "levee-i1-state",
                "levee-i1-probe",
                "levee-i1-restore",
                "levee-i1-rectification",
                "levee-i1-requests",
                "levee-i1-decisions",
                "levee-i1-people",
                "levee-i1-people-stage",
                "levee-i1-people-files",
                "levee-i1-alt"
            ]
        );
        let reader = changelog_reader_config(&s, "restore");
        assert_eq!(reader.get("statistics.interval.ms"), None);
        assert_eq!(reader.get("enable.partition.eof"), Some("true"));
    }
}
