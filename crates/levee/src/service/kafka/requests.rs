//! Requests that came through `POST /v1/evaluate`, on their way through the
//! stream, and the decisions written for them.
//!
//! `/v1/evaluate` appends a request whose verdict depends on history to the
//! request's own input topic, keyed by its subject, with two headers:
//! [`ORIGIN`] = `http` and [`EVENT_ID`] = its `event_id`. The partition task
//! that owns the subject evaluates it in order, like any event, and writes
//! its decision to `decisions` with `"source": "http"`, the request as it
//! came and the alerts it raised ([`decision`]); the instance that appended
//! it reads `decisions` and hands the decision to the waiting handler. A
//! request the stream refuses (late, say) gets a decision saying so
//! ([`refusal`]) besides its dead letter, so nobody waits in vain. A
//! request answered without the stream is recorded the same way.

use std::collections::{HashMap, VecDeque};

use levee_engine::{Alert, Verdict};
use rdkafka::message::{Headers, OwnedHeaders, OwnedMessage};
use rdkafka::Message;
use serde::Serialize;
use serde_json::value::RawValue;
use tracing::error;

use super::delivery::OutRecord;
use super::records::Rejected;

/// The header naming where a request came from.
pub const ORIGIN: &str = "levee.origin";
/// [`ORIGIN`]'s value for `/v1/evaluate`.
pub const HTTP: &str = "http";
/// The header carrying the request's `event_id` (so that even a request
/// the stream cannot read is answered).
pub const EVENT_ID: &str = "levee.event_id";

/// The headers `/v1/evaluate` puts on a request it appends.
pub fn headers(event_id: &str) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(rdkafka::message::Header {
            key: ORIGIN,
            value: Some(HTTP),
        })
        .insert(rdkafka::message::Header {
            key: EVENT_ID,
            value: Some(event_id),
        })
}

/// The `event_id` of a request `/v1/evaluate` appended; `None` for any
/// other record (the usual case: one look at the headers).
pub fn from_http(m: &OwnedMessage) -> Option<&str> {
    let headers = m.headers()?;
    let mut origin = false;
    let mut event_id = None;
    for h in headers.iter() {
        match h.key {
            ORIGIN => origin = h.value == Some(HTTP.as_bytes()),
            EVENT_ID => event_id = h.value.and_then(|v| std::str::from_utf8(v).ok()),
            _ => {}
        }
    }
    event_id.filter(|_| origin)
}

/// A decision on `decisions` for a request that came over HTTP.
#[derive(Debug, Serialize)]
struct Decision<'a> {
    event_id: &'a str,
    verdict: &'a str,
    control_points: &'a [String],
    ruleset_version: &'a str,
    source: &'static str,
    /// `stream` (decided in the partition's order, with its history) or
    /// `local` (a request whose type keeps no state: decided at once).
    decided_by: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<Refused<'a>>,
    alerts: &'a [Alert],
    /// The request as it came (absent if it was not JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<&'a RawValue>,
}

#[derive(Debug, Serialize)]
struct Refused<'a> {
    kind: &'a str,
    reason: &'a str,
}

/// How a request was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    Stream,
    Local,
}

/// The decision record of a request: its verdict, the alerts it raised and
/// the request itself, keyed by `event_id`.
pub fn decision(
    decisions: &str,
    verdict: &Verdict,
    alerts: &[Alert],
    request: &[u8],
    by: DecidedBy,
) -> Option<OutRecord> {
    let record = Decision {
        event_id: &verdict.event_id,
        verdict: verdict.verdict,
        control_points: &verdict.control_points,
        ruleset_version: &verdict.ruleset_version,
        source: HTTP,
        decided_by: match by {
            DecidedBy::Stream => "stream",
            DecidedBy::Local => "local",
        },
        rejected: None,
        alerts,
        request: raw(request),
    };
    write(decisions, &verdict.event_id, &record)
}

/// The decision record of a request the stream refused (`rejected`).
pub fn refusal(
    decisions: &str,
    event_id: &str,
    rejected: &Rejected,
    request: &[u8],
    ruleset_version: &str,
) -> Option<OutRecord> {
    let record = Decision {
        event_id,
        verdict: "rejected",
        control_points: &[],
        ruleset_version,
        source: HTTP,
        decided_by: "stream",
        rejected: Some(Refused {
            kind: rejected.kind,
            reason: &rejected.reason,
        }),
        alerts: &[],
        request: raw(request),
    };
    write(decisions, event_id, &record)
}

fn raw(request: &[u8]) -> Option<&RawValue> {
    std::str::from_utf8(request)
        .ok()
        .and_then(|s| serde_json::from_str::<&RawValue>(s).ok())
}

fn write(topic: &str, event_id: &str, record: &Decision<'_>) -> Option<OutRecord> {
    match serde_json::to_vec(record) {
        Ok(payload) => Some(OutRecord::keyed(topic, event_id.to_owned(), payload)),
        Err(e) => {
            error!(error = %e, "a decision could not be serialized");
            None
        }
    }
}

/// The decisions one partition task made on requests from HTTP, by
/// `event_id`: a request appended again (a retry after a 503, the same
/// `event_id` sent twice) gets the same decision and is not evaluated, nor
/// counted in its subject's history, again. The [`Answered::MAX`] latest,
/// kept in the changelog with the state they counted in (so a new owner of
/// the partition answers a retry as the old one would).
#[derive(Debug, Default)]
pub struct Answered {
    by_id: HashMap<String, Vec<u8>>,
    order: VecDeque<String>,
}

impl Answered {
    /// How many a partition remembers.
    pub const MAX: usize = 10_000;

    /// The decision record's payload for `event_id`, if it was decided.
    pub fn get(&self, event_id: &str) -> Option<&[u8]> {
        self.by_id.get(event_id).map(Vec::as_slice)
    }

    /// Remembers a decision, forgetting the oldest past [`Answered::MAX`];
    /// the ids forgotten.
    pub fn insert(&mut self, event_id: &str, payload: &[u8]) -> Vec<String> {
        if self
            .by_id
            .insert(event_id.to_owned(), payload.to_vec())
            .is_none()
        {
            self.order.push_back(event_id.to_owned());
        }
        let mut forgotten = Vec::new();
        while self.order.len() > Self::MAX {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
                forgotten.push(old);
            }
        }
        forgotten
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rdkafka::message::Timestamp;
    use serde_json::Value;

    use super::*;

    fn message(headers: Option<OwnedHeaders>) -> OwnedMessage {
        OwnedMessage::new(
            Some(br#"{"event_id":"r1"}"#.to_vec()),
            Some(b"C-1".to_vec()),
            "events.marketing".into(),
            Timestamp::NotAvailable,
            0,
            7,
            headers,
        )
    }

    #[test]
    fn only_a_request_appended_over_http_is_one() {
        assert_eq!(from_http(&message(Some(headers("r1")))), Some("r1"));
        assert_eq!(from_http(&message(None)), None);
        let other = OwnedHeaders::new().insert(rdkafka::message::Header {
            key: ORIGIN,
            value: Some("kcat"),
        });
        assert_eq!(from_http(&message(Some(other))), None);
        let no_id = OwnedHeaders::new().insert(rdkafka::message::Header {
            key: ORIGIN,
            value: Some(HTTP),
        });
        assert_eq!(from_http(&message(Some(no_id))), None);
    }

    #[test]
    fn a_partition_remembers_its_latest_decisions() {
        let mut answered = Answered::default();
        answered.insert("r1", b"one");
        answered.insert("r1", b"one again");
        assert_eq!(answered.get("r1"), Some(&b"one again"[..]));
        let mut forgotten = Vec::new();
        for i in 0..Answered::MAX {
            forgotten.extend(answered.insert(&format!("x{i}"), b"x"));
        }
        assert_eq!(answered.get("r1"), None, "the oldest is forgotten");
        assert_eq!(forgotten, ["r1"], "and said so, for its tombstone");
        assert_eq!(answered.get("x0"), Some(&b"x"[..]));
        assert_eq!(answered.order.len(), Answered::MAX);
    }

    #[test]
    fn a_decision_carries_the_request_and_says_who_decided() {
        let verdict = Verdict {
            event_id: "r1".into(),
            verdict: "block",
            control_points: vec!["MC-102".into()],
            ruleset_version: "v1".into(),
        };
        let request = br#"{"event_id":"r1","type":"campaign_application"}"#;
        let r = decision("decisions", &verdict, &[], request, DecidedBy::Stream).unwrap();
        assert_eq!(
            (r.topic.as_str(), r.key.as_deref()),
            ("decisions", Some(&b"r1"[..]))
        );
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(v["verdict"], "block");
        assert_eq!(v["source"], "http");
        assert_eq!(v["decided_by"], "stream");
        assert_eq!(v["control_points"][0], "MC-102");
        assert_eq!(v["request"]["type"], "campaign_application");
        assert!(v.get("rejected").is_none());

        let late = Rejected {
            kind: "late",
            reason: "late event".into(),
            expected_key: None,
        };
        let r = refusal("decisions", "r2", &late, b"not json", "v1").unwrap();
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(v["verdict"], "rejected");
        assert_eq!(v["rejected"]["kind"], "late");
        assert!(v.get("request").is_none(), "not JSON: left out");
    }
}
