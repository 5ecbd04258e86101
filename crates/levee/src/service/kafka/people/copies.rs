//! Person copies: what a partition task writes to the people topic
//! (`<group id>-people`) so that one owner folds each person's file.
//!
//! For every alert it raises or escalates, and for every alert it closes,
//! the partition task that holds the alert writes one copy per person the
//! alert names, keyed by the person's employee number: the alert as its
//! tier topic has it, or the `alerts.closed` record. A header says which
//! ([`ENTRY`]). The copies go out with the alert: in the same transaction
//! exactly-once, counted with its deliveries at-least-once. Since one
//! partition task writes all copies of an alert, in order, to the
//! partition of each person, a person's partition holds an alert before
//! its closing.

use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::Message;

use crate::service::kafka::out::OutRecord;

/// The header saying what a copy holds: [`Entry::Alert`] or
/// [`Entry::Closed`].
pub const ENTRY: &str = "levee.entry";

/// The people topic of a consumer group: `<group id>-people`.
pub fn topic(group_id: &str) -> String {
    format!("{group_id}-people")
}

/// What a copy holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// An alert raised or escalated, as its tier topic holds it.
    Alert,
    /// An alert closed, as `alerts.closed` holds it.
    Closed,
}

impl Entry {
    fn name(self) -> &'static str {
        match self {
            Entry::Alert => "alert",
            Entry::Closed => "closed",
        }
    }

    /// The entry a copy's header names; `None` for a record levee did not
    /// write.
    pub fn of(m: &impl Message) -> Option<Entry> {
        let h = m.headers()?.iter().find(|h| h.key == ENTRY)?;
        match h.value? {
            b"alert" => Some(Entry::Alert),
            b"closed" => Some(Entry::Closed),
            _ => None,
        }
    }
}

/// The copies of one record (`payload`, an alert or a closed alert) to
/// `topic`: one per person of `people`, keyed by the person.
pub fn copies(topic: &str, entry: Entry, people: &[String], payload: &[u8]) -> Vec<OutRecord> {
    let mut seen: Vec<&str> = Vec::with_capacity(people.len());
    let mut out = Vec::with_capacity(people.len());
    for person in people {
        if person.is_empty() || seen.contains(&person.as_str()) {
            continue;
        }
        seen.push(person);
        let mut r = OutRecord::keyed(topic, person.as_bytes(), payload.to_vec());
        r.headers = Some(OwnedHeaders::new().insert(Header {
            key: ENTRY,
            value: Some(entry.name()),
        }));
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rdkafka::message::OwnedMessage;
    use rdkafka::Timestamp;

    use super::*;

    fn message(r: &OutRecord) -> OwnedMessage {
        OwnedMessage::new(
            Some(r.payload.clone()),
            r.key.clone(),
            r.topic.clone(),
            Timestamp::NotAvailable,
            0,
            0,
            r.headers.clone(),
        )
    }

    #[test]
    fn one_copy_per_person_keyed_by_the_person() {
        let people = ["E1".to_owned(), "E2".to_owned(), "E1".to_owned()];
        let out = copies("g-people", Entry::Closed, &people, b"{}");
        let keys: Vec<&[u8]> = out.iter().map(|r| r.key.as_deref().unwrap()).collect();
        assert_eq!(keys, [&b"E1"[..], b"E2"], "each person once");
        for r in &out {
            assert_eq!(r.topic, "g-people");
            assert_eq!(r.payload, b"{}");
            assert_eq!(Entry::of(&message(r)), Some(Entry::Closed));
        }
        assert!(copies("g-people", Entry::Alert, &[], b"{}").is_empty());
    }

    #[test]
    fn a_record_without_levees_header_is_no_entry() {
        let mut r = copies("t", Entry::Alert, &["E1".to_owned()], b"{}").remove(0);
        assert_eq!(Entry::of(&message(&r)), Some(Entry::Alert));
        r.headers = None;
        assert_eq!(Entry::of(&message(&r)), None);
        r.headers = Some(OwnedHeaders::new().insert(Header {
            key: ENTRY,
            value: Some("other"),
        }));
        assert_eq!(Entry::of(&message(&r)), None);
    }

    #[test]
    fn the_topic_is_named_from_the_group() {
        assert_eq!(topic("levee"), "levee-people");
    }
}
