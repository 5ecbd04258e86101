//! One record to produce ([`OutRecord`]), and what can be done to a dead
//! letter the broker will not take at its size.

use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::Message;

/// One record to produce.
#[derive(Debug, Clone)]
pub struct OutRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Option<OwnedHeaders>,
    /// A given partition (the changelog's), else by key.
    pub partition: Option<i32>,
    /// A tombstone (no payload): a forgotten subject in the changelog.
    pub tombstone: bool,
}

impl OutRecord {
    /// A record with a key and a payload, partitioned by its key.
    pub fn keyed(topic: &str, key: impl Into<Vec<u8>>, payload: Vec<u8>) -> Self {
        OutRecord {
            topic: topic.to_owned(),
            key: Some(key.into()),
            payload,
            headers: None,
            partition: None,
            tombstone: false,
        }
    }

    /// The record a delivery failure hands back, to send it again.
    pub fn of_message(m: &BorrowedMessage<'_>) -> Self {
        OutRecord {
            topic: m.topic().to_owned(),
            key: m.key().map(<[u8]>::to_vec),
            tombstone: m.payload().is_none(),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers: m.headers().map(|h| h.detach()),
            partition: Some(m.partition()),
        }
    }
}

impl OutRecord {
    /// A dead letter is recognised by its `levee.error` header.
    pub fn is_dead_letter(&self) -> bool {
        self.headers
            .as_ref()
            .is_some_and(|h| h.iter().any(|h| h.key == "levee.error"))
    }

    /// This dead letter cut to `max` bytes, saying so in its headers (once).
    pub fn shrunk(&self, max: usize) -> OutRecord {
        let mut out = self.clone();
        if self.payload.len() <= max {
            return out;
        }
        let already = self
            .headers
            .as_ref()
            .is_some_and(|h| h.iter().any(|h| h.key == "levee.truncated"));
        if !already {
            let size = self.payload.len().to_string();
            let digest = sha256_hex(&self.payload);
            out.headers = out.headers.map(|h| truncated(h, &size, &digest));
        }
        out.payload.truncate(max);
        out
    }
}

/// The headers of a dead letter cut short: it was `size` bytes with SHA-256 `digest`.
pub fn truncated(headers: OwnedHeaders, size: &str, digest: &str) -> OwnedHeaders {
    headers
        .insert(Header {
            key: "levee.truncated",
            value: Some("true"),
        })
        .insert(Header {
            key: "levee.original.size",
            value: Some(size),
        })
        .insert(Header {
            key: "levee.original.sha256",
            value: Some(digest),
        })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
