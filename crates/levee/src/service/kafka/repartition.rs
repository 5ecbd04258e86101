//! The repartition stage: state per any key (docs/design.md#re-keying).
//!
//! A control point kept per another key than its input's Kafka key
//! (`subject: approver_id` on purchases keyed by supplier) lives in a
//! re-keyed copy of its event type (`purchase@approver_id`). The partition
//! task that evaluated an event forwards it, as it came, to the internal
//! topic `<group id>-repartition`, keyed by each copy's key, with headers
//! naming the copy ([`COPY`]), the partition it came from ([`UPSTREAM`]),
//! that partition's watermark after it ([`WATERMARK`]); it is sent like the
//! event's alerts: in the same transaction exactly-once, counted with
//! their deliveries before the next commit at-least-once. The same group
//! consumes the topic; the task of a partition of it evaluates the copy the
//! header names, like any event: state, changelog and restore are the
//! partition's as for an input topic.
//!
//! Event time. A copy is never late: its event was judged on its input
//! partition, and one upstream partition behind the others must not make
//! its events late downstream. A repartition partition's event time (its
//! watermark, against which idle subjects expire) is the minimum of the
//! watermarks its upstream partitions have sent ([`Upstreams`]), so a
//! lagging upstream holds it back instead of having its subjects expired.

use std::collections::HashMap;
use std::time::Duration;

use levee_engine::{Engine, EvalStats};
use levee_rules::RuleGraph;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::Message;
use tracing::warn;

use super::clients;
use super::delivery::OutRecord;
use super::error::PipelineError;
use super::records::Rejected;
use super::TopicPartition;
use crate::service::config::Settings;
use crate::service::metrics::{self, KafkaErrorKind};

/// The header naming the re-keyed copy to evaluate (`purchase@approver_id`).
pub const COPY: &str = "levee.copy";
/// The header naming the input partition the event was evaluated on
/// (`events.procurement/3`).
pub const UPSTREAM: &str = "levee.upstream";
/// The header carrying that partition's watermark (epoch seconds) after it.
pub const WATERMARK: &str = "levee.watermark";

/// The repartition topic of a consumer group: `<group id>-repartition`.
pub fn topic(group_id: &str) -> String {
    format!("{group_id}-repartition")
}

/// At start-up: the repartition topic, if the rules have re-keyed copies
/// (levee then consumes it beside the input topics). levee creates no
/// topic: a missing one, or one with more partitions than the changelog
/// (whose partition `p` keeps the state of every partition `p`), is an
/// error saying what to create.
pub fn check_at_start(
    settings: &Settings,
    graph: &RuleGraph,
) -> Result<Option<String>, PipelineError> {
    let copies: Vec<&str> = graph
        .event_types
        .iter()
        .filter(|t| t.rekeyed.is_some())
        .map(|t| t.name.as_str())
        .collect();
    if copies.is_empty() {
        return Ok(None);
    }
    let topic = topic(&settings.kafka.group_id);
    let probe: BaseConsumer = clients::consumer_config(settings)
        .create()
        .map_err(|e| PipelineError::kafka("creating a client", KafkaErrorKind::Other, e))?;
    let timeout = Duration::from_secs(10);
    let counts = clients::partition_count(&probe, &topic, timeout).and_then(|n| {
        Ok((
            n,
            clients::partition_count(&probe, &settings.topics.changelog, timeout)?,
        ))
    });
    let (n, changelog) = match counts {
        Ok(counts) => counts,
        Err(PipelineError::Misconfigured(why)) if !why.contains(&settings.topics.changelog) => {
            return Err(PipelineError::Misconfigured(format!(
                "the repartition topic {topic} is missing: the rules keep state per other \
                 keys ({}), and levee creates no topic; create it with as many partitions as \
                 the input topics (deploy/docker/create-topics.sh, deploy/k8s/topics.yaml)",
                copies.join(", ")
            )))
        }
        Err(e @ PipelineError::Misconfigured(_)) => return Err(e),
        Err(e) => {
            // The broker is away (or slow): the consumer finds the topic
            // when it is back; levee waits for the broker as it does anyway.
            warn!(topic = %topic, error = %e, "could not check the repartition topic at start-up");
            return Ok(Some(topic));
        }
    };
    if n > changelog {
        return Err(PipelineError::Misconfigured(format!(
            "the repartition topic {topic} has {n} partitions, the changelog {} only \
             {changelog}: give the repartition topic as many partitions as the input topics",
            settings.topics.changelog
        )));
    }
    Ok(Some(topic))
}

/// Why a record of the repartition topic cannot be evaluated: it goes to
/// the DLQ like bad input, kind `unknown_type` (which copy is unknown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("no `{COPY}` header naming the re-keyed copy to evaluate")]
    NoCopy,
    #[error("header `{0}` is not what levee writes")]
    BadHeader(&'static str),
}

impl From<Unreadable> for Rejected {
    fn from(e: Unreadable) -> Self {
        Rejected {
            kind: "unknown_type",
            reason: e.to_string(),
            expected_key: None,
        }
    }
}

/// What a record of the repartition topic says besides its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded<'m> {
    pub copy: &'m str,
    pub upstream: &'m str,
    pub watermark: i64,
}

/// Reads a repartition record's headers.
pub fn read(m: &OwnedMessage) -> Result<Forwarded<'_>, Unreadable> {
    let (mut copy, mut upstream, mut watermark) = (None, None, None);
    for h in m.headers().into_iter().flat_map(|hs| hs.iter()) {
        let text = || h.value.and_then(|v| std::str::from_utf8(v).ok());
        match h.key {
            COPY => copy = Some(text().ok_or(Unreadable::BadHeader(COPY))?),
            UPSTREAM => upstream = Some(text().ok_or(Unreadable::BadHeader(UPSTREAM))?),
            WATERMARK => {
                let w = text().and_then(|t| t.parse::<i64>().ok());
                watermark = Some(w.ok_or(Unreadable::BadHeader(WATERMARK))?);
            }
            _ => {}
        }
    }
    Ok(Forwarded {
        copy: copy.ok_or(Unreadable::NoCopy)?,
        upstream: upstream.unwrap_or_default(),
        watermark: watermark.unwrap_or(i64::MIN),
    })
}

/// The records forwarding the event `engine` has just evaluated (from
/// `from`, its bytes `payload`) to `topic`: one per re-keyed copy of its
/// type whose key it has, keyed by that key.
pub fn forward(
    engine: &Engine,
    topic: &str,
    from: &TopicPartition,
    payload: &[u8],
) -> Vec<OutRecord> {
    let mut keys = Vec::new();
    engine.copy_keys(&mut keys);
    if keys.is_empty() {
        return Vec::new();
    }
    let upstream = format!("{}/{}", from.topic, from.partition);
    let watermark = engine.watermark().to_string();
    keys.into_iter()
        .map(|(copy, key)| {
            metrics::forwarded(copy);
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: COPY,
                    value: Some(copy),
                })
                .insert(Header {
                    key: UPSTREAM,
                    value: Some(upstream.as_str()),
                })
                .insert(Header {
                    key: WATERMARK,
                    value: Some(watermark.as_str()),
                });
            let mut r = OutRecord::keyed(topic, key, payload.to_vec());
            r.headers = Some(headers);
            r
        })
        .collect()
}

/// The watermarks a repartition partition's upstream partitions sent, and
/// so its event time: the lowest of them.
#[derive(Debug, Default)]
pub struct Upstreams {
    marks: HashMap<String, i64>,
}

impl Upstreams {
    /// Takes an upstream's watermark (an upstream's only moves forward);
    /// returns the lowest of all.
    pub fn observe(&mut self, upstream: &str, watermark: i64) -> i64 {
        match self.marks.get_mut(upstream) {
            Some(m) => *m = (*m).max(watermark),
            None => {
                self.marks.insert(upstream.to_owned(), watermark);
            }
        }
        self.marks.values().copied().min().unwrap_or(watermark)
    }
}

/// Evaluates a record of the repartition topic, its event decoded into
/// `engine` already: the copy its header names, alone, never late; event
/// time moves on to the lowest upstream watermark.
pub fn evaluate(
    engine: &mut Engine,
    m: &OwnedMessage,
    upstreams: &mut Upstreams,
) -> Result<EvalStats, Rejected> {
    let f = read(m)?;
    engine.select_copy(f.copy).map_err(Rejected::from)?;
    if let Some(ms) = m.timestamp().to_millis() {
        let now = crate::service::clock::now().timestamp_millis();
        metrics::copy_delay((now - ms) as f64 / 1000.0);
    }
    let stats = engine.run_selected();
    if f.watermark != i64::MIN {
        engine.advance_watermark(upstreams.observe(f.upstream, f.watermark));
    }
    Ok(stats)
}

#[cfg(test)]
mod tests;
