//! The records an evaluated event writes besides state: its alerts, to
//! their tier's topic, keyed by subject; its verdict, to `decisions`, keyed
//! by event id; and input levee cannot use, as it came, to the DLQ, with
//! headers saying why and where from (`levee.error`, `levee.error.kind`,
//! `levee.source.topic`, `levee.source.partition`, `levee.source.offset`).
//! A dead letter larger than `dlq.max_payload_bytes` is written truncated to
//! it, with `levee.truncated`, `levee.original.size` and
//! `levee.original.sha256` saying what it was: a record that cannot be
//! written as it is costs a dead letter, never the stream. An alert a
//! rectification closes is recorded on `alerts.closed` with its result.

use std::fmt;

use chrono::SecondsFormat;
use levee_engine::{Alert, BadInput, Verdict};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::Message;
use tracing::error;

use super::out::{sha256_hex, truncated, OutRecord};
use crate::service::config::Topics;

/// Why a message goes to the DLQ: bad input (the engine's kinds, among
/// them `future`), or too late (`late`). The kind is also the
/// `levee_dlq_total` reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub kind: &'static str,
    pub reason: String,
    /// The key the record should have had (`misrouted`): the
    /// `levee.expected.key` header.
    pub expected_key: Option<String>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.kind)
    }
}

impl From<BadInput> for Rejected {
    fn from(bad: BadInput) -> Self {
        Rejected {
            kind: bad.kind.as_str(),
            reason: bad.reason,
            expected_key: None,
        }
    }
}

/// An event that occurred at `at` (epoch seconds; `occurred_at` as it
/// wrote it) is late if it is more than `lateness` seconds (the setting
/// `lateness_setting`) behind the partition's `watermark`.
pub fn late(
    occurred_at: &str,
    at: i64,
    watermark: i64,
    lateness: i64,
    lateness_setting: &dyn fmt::Display,
) -> Option<Rejected> {
    if at >= watermark.saturating_sub(lateness) {
        return None;
    }
    let mark = chrono::DateTime::from_timestamp(watermark, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default();
    Some(Rejected {
        expected_key: None,
        kind: "late",
        reason: format!(
            "late event: occurred_at {occurred_at} is more than state.allowed_lateness ({lateness_setting}) behind the partition's watermark {mark}"
        ),
    })
}

/// An alert's record.
pub fn alert(topics: &Topics, alert: Alert) -> Option<OutRecord> {
    match serde_json::to_vec(&alert) {
        Ok(payload) => Some(OutRecord::keyed(
            topics.tier(alert.tier),
            alert.subject,
            payload,
        )),
        Err(e) => {
            error!(error = %e, "an alert could not be serialized");
            None
        }
    }
}

/// A verdict's record.
pub fn verdict(topics: &Topics, verdict: Verdict) -> Option<OutRecord> {
    match serde_json::to_vec(&verdict) {
        Ok(payload) => Some(OutRecord::keyed(
            &topics.decisions,
            verdict.event_id,
            payload,
        )),
        Err(e) => {
            error!(error = %e, "a verdict could not be serialized");
            None
        }
    }
}

/// An input record larger than `input.max_event_bytes` (`size` bytes): set
/// aside unparsed.
pub fn oversize(size: usize, max: usize) -> Rejected {
    Rejected {
        kind: "oversize",
        reason: format!("the record is {size} bytes; input.max_event_bytes is {max}"),
        expected_key: None,
    }
}

/// An event of `event_type` read from `topic` whose Kafka key is `key`:
/// misrouted if its type belongs to another stream (`stream`), or if its
/// type keeps state per subject and the key is not the subject (`subject`).
pub fn misrouted(
    topic: &str,
    key: Option<&[u8]>,
    event_type: &str,
    stream: &str,
    subject: Option<&str>,
) -> Option<Rejected> {
    if !crate::service::metrics::topic_is_stream(topic, stream) {
        return Some(Rejected {
            kind: "misrouted",
            reason: format!("a `{event_type}` event belongs on {stream}, not on {topic}"),
            expected_key: subject.map(str::to_owned),
        });
    }
    let subject = subject?;
    if key == Some(subject.as_bytes()) {
        return None;
    }
    let shown = key.map_or("none".to_owned(), |k| {
        format!("{:?}", String::from_utf8_lossy(k))
    });
    Some(Rejected {
        kind: "misrouted",
        reason: format!(
            "a `{event_type}` event keeps state per subject and must be keyed by it ({subject:?}); its key is {shown}"
        ),
        expected_key: Some(subject.to_owned()),
    })
}

/// The DLQ record of a refused rectification: the rectification as JSON,
/// keyed by its alert id, with why (`levee.error`, `levee.error.kind`) and
/// where from (`levee.source.topic`: the rectification topic).
pub fn refused_rectification(
    topics: &Topics,
    r: &levee_engine::rectify::Rectification,
    refusal: &levee_engine::rectify::Refusal,
) -> OutRecord {
    let reason = refusal.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "levee.error",
            value: Some(reason.as_str()),
        })
        .insert(Header {
            key: "levee.error.kind",
            value: Some(refusal.kind()),
        })
        .insert(Header {
            key: "levee.source.topic",
            value: Some(topics.rectification.as_str()),
        });
    OutRecord {
        topic: topics.dlq.clone(),
        key: Some(r.alert_id.as_bytes().to_vec()),
        payload: serde_json::to_vec(r).unwrap_or_default(),
        headers: Some(headers),
        partition: None,
        tombstone: false,
    }
}

/// The `alerts.closed` record of an alert `r` closed at `closed_at` (levee's
/// clock): keyed by the alert's first id, what the stream knew of it
/// (every id of its escalation chain, its subject's profile key, tier,
/// people, whether it was acknowledged) and the rectification as it came
/// (its result: `finding`, `measures`, `penalty`, `by`, `role`, `at`).
pub fn closed_alert(
    topics: &Topics,
    closed: &levee_engine::rectify::Closed,
    r: &levee_engine::rectify::Rectification,
    closed_at: &str,
) -> OutRecord {
    let (key, record) = closed.record(r, closed_at);
    OutRecord::keyed(
        &topics.closed,
        key.into_bytes(),
        serde_json::to_vec(&record).unwrap_or_default(),
    )
}

/// The DLQ record of message `m`: its key and payload as they came, the
/// payload cut to `max_payload` bytes if it is longer.
pub fn dead_letter(
    topics: &Topics,
    m: &OwnedMessage,
    rejected: &Rejected,
    max_payload: usize,
) -> OutRecord {
    let partition = m.partition().to_string();
    let offset = m.offset().to_string();
    let reason = rejected.to_string();
    let payload = m.payload().unwrap_or_default();
    let mut headers = OwnedHeaders::new()
        .insert(Header {
            key: "levee.error",
            value: Some(reason.as_str()),
        })
        .insert(Header {
            key: "levee.error.kind",
            value: Some(rejected.kind),
        })
        .insert(Header {
            key: "levee.source.topic",
            value: Some(m.topic()),
        })
        .insert(Header {
            key: "levee.source.partition",
            value: Some(partition.as_str()),
        })
        .insert(Header {
            key: "levee.source.offset",
            value: Some(offset.as_str()),
        });
    if let Some(expected) = &rejected.expected_key {
        headers = headers.insert(Header {
            key: "levee.expected.key",
            value: Some(expected.as_str()),
        });
    }
    let kept = if payload.len() > max_payload {
        let size = payload.len().to_string();
        let digest = sha256_hex(payload);
        headers = truncated(headers, &size, &digest);
        &payload[..max_payload]
    } else {
        payload
    };
    OutRecord {
        topic: topics.dlq.clone(),
        key: m.key().map(<[u8]>::to_vec),
        payload: kept.to_vec(),
        headers: Some(headers),
        partition: None,
        tombstone: false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rdkafka::message::{Headers, Timestamp};

    use super::*;
    use crate::service::config::{load, Overrides};

    #[test]
    fn a_closed_alert_is_keyed_by_its_first_id_with_its_result() {
        use levee_engine::rectify::{Closed, Rectification};
        let topics = load(None, Vec::new(), &Overrides::default())
            .unwrap()
            .topics;
        let closed = Closed {
            alert_ids: vec!["a0".into(), "a1".into()],
            profile: "customer:G-1".into(),
            tier: 2,
            people: vec!["E1001".into()],
            acknowledged: true,
        };
        let r = Rectification {
            by: Some("E-0231".into()),
            role: Some("branch_leadership".into()),
            finding: Some("欠费属实".into()),
            measures: Some("已催缴".into()),
            penalty: Some("通报批评".into()),
            ..Rectification::new("a1", levee_engine::Status::Rectified)
        };
        let rec = closed_alert(&topics, &closed, &r, "2026-12-06T08:00:00.000Z");
        assert_eq!(rec.topic, "alerts.closed");
        assert_eq!(rec.key.as_deref(), Some(&b"a0"[..]));
        let v: serde_json::Value = serde_json::from_slice(&rec.payload).unwrap();
        assert_eq!(v["alert_id"], "a0");
        assert_eq!(v["alert_ids"], serde_json::json!(["a0", "a1"]));
        assert_eq!(v["status"], "rectified");
        assert_eq!(v["profile"], "customer:G-1");
        assert_eq!(v["tier"], 2);
        assert_eq!(v["people"], serde_json::json!(["E1001"]));
        assert_eq!(v["acknowledged"], true);
        assert_eq!(v["closed_at"], "2026-12-06T08:00:00.000Z");
        let result = &v["rectification"];
        assert_eq!(result["alert_id"], "a1");
        assert_eq!(result["finding"], "欠费属实");
        assert_eq!(result["measures"], "已催缴");
        assert_eq!(result["penalty"], "通报批评");
        assert_eq!(result["by"], "E-0231");
    }

    #[test]
    fn late_is_measured_from_the_watermark() {
        let day = 86_400;
        let watermark = 20 * day;
        assert_eq!(
            late("t", watermark - 7 * day, watermark, 7 * day, &"7d"),
            None
        );
        let r = late(
            "2026-11-01T00:00:00Z",
            watermark - 7 * day - 1,
            watermark,
            7 * day,
            &"7d",
        )
        .unwrap();
        assert_eq!(r.kind, "late");
        assert_eq!(
            r.to_string(),
            "late event: occurred_at 2026-11-01T00:00:00Z is more than state.allowed_lateness (7d) \
             behind the partition's watermark 1970-01-21T00:00:00Z (late)"
        );
    }

    #[test]
    fn a_dead_letter_says_why_and_where_from() {
        let topics = load(None, Vec::new(), &Overrides::default())
            .unwrap()
            .topics;
        let m = OwnedMessage::new(
            Some(b"{oops".to_vec()),
            Some(b"k1".to_vec()),
            "events.vehicle_fuel".into(),
            Timestamp::NotAvailable,
            2,
            17,
            None,
        );
        let rejected = Rejected {
            kind: "not_json",
            reason: "not JSON".into(),
            expected_key: None,
        };
        let r = dead_letter(&topics, &m, &rejected, 65_536);
        assert_eq!(r.topic, "events.dlq");
        assert_eq!(r.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(r.payload, b"{oops");
        let headers: Vec<(String, String)> = r
            .headers
            .unwrap()
            .iter()
            .map(|h| {
                let value = String::from_utf8(h.value.unwrap().to_vec()).unwrap();
                (h.key.to_owned(), value)
            })
            .collect();
        let want = [
            ("levee.error", "not JSON (not_json)"),
            ("levee.error.kind", "not_json"),
            ("levee.source.topic", "events.vehicle_fuel"),
            ("levee.source.partition", "2"),
            ("levee.source.offset", "17"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(headers, want);
    }

    #[test]
    fn a_stateful_event_must_be_keyed_by_its_subject_on_its_stream() {
        let check = |topic: &str, key: Option<&[u8]>, subject: Option<&str>| {
            misrouted(topic, key, "refuel", "events.vehicle_fuel", subject)
        };
        assert_eq!(check("events.vehicle_fuel", Some(b"V1"), Some("V1")), None);
        assert_eq!(
            check("t-1.events.vehicle_fuel", Some(b"V1"), Some("V1")),
            None
        );
        // A stateless type may be keyed anyhow.
        assert_eq!(check("events.vehicle_fuel", Some(b"e-17"), None), None);
        let keyed = check("events.vehicle_fuel", Some(b"e-17"), Some("V1")).unwrap();
        assert_eq!(keyed.kind, "misrouted");
        assert_eq!(keyed.expected_key.as_deref(), Some("V1"));
        assert!(keyed.reason.contains("\"e-17\""), "{}", keyed.reason);
        assert!(check("events.vehicle_fuel", None, Some("V1")).is_some());
        let stream = check("events.procurement", Some(b"V1"), None).unwrap();
        assert!(stream.reason.contains("belongs on events.vehicle_fuel"));
        assert!(check("xevents.vehicle_fuel", Some(b"V1"), None).is_some());
    }
}
