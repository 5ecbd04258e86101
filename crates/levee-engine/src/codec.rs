//! How a [`SubjectSnapshot`] is written to the changelog: a compact,
//! versioned binary encoding, and the JSON of earlier versions, read back
//! alike.
//!
//! A record's first byte says its encoding: `{` is JSON (what levee wrote
//! before the binary encoding, and what `state.changelog_encoding =
//! "json"` still writes during a rolling upgrade), `0xB1` is version 1 of
//! the binary encoding below. Any other first byte is refused with a clear
//! error (a record of a newer levee, or not levee's).
//!
//! Version 1, after the version byte (varints are LEB128, signed ones
//! zigzag):
//!
//! | part | bytes |
//! |---|---|
//! | flags | 1: bit 0 state, bit 1 profile, bit 2 open alerts |
//! | state: `last_seen` | signed varint |
//! | state: windows | varint run count; per run of entries of one window: key (8, little-endian), varint entry count, value kind (0: all zero, as `count` keeps; 1: 8 bytes each), then per entry its time as a signed varint delta from the previous entry's (the first from 0) and, kind 1, its value (8) |
//! | state: holds | varint count; per hold: control point key (8), since (signed varint) |
//! | state: suppression | varint count; per entry: key (8), tier (1), when (signed varint) |
//! | profile | varint length, the profile as JSON |
//! | open alerts | varint length, the open alerts as a JSON array |
//!
//! Window state, the bulk of the changelog, is binary: a subject with two
//! entries in one window takes about 30 bytes. Profiles and open alerts
//! exist only for subjects with alerts and keep their JSON form inside the
//! record, so their fields can grow without a new version.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ledger::{OpenAlert, Profile, SnapshotRef, SubjectSnapshot};
use crate::state::{Entry, SubjectState};

/// The first byte of a record in version 1 of the binary encoding.
pub const BINARY_V1: u8 = 0xB1;

const HAS_STATE: u8 = 1;
const HAS_PROFILE: u8 = 2;
const HAS_OPEN: u8 = 4;

/// How the changelog writes snapshots (`state.changelog_encoding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Version 1 of the binary encoding.
    #[default]
    Binary,
    /// JSON, as levee wrote before the binary encoding: for the first
    /// step of a rolling upgrade, while older instances may still read
    /// the changelog.
    Json,
}

/// A changelog record that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error("empty record")]
    Empty,
    #[error("unknown encoding (first byte 0x{0:02x}): written by a newer levee, or not by levee")]
    Unknown(u8),
    #[error("record ends early, at byte {0}")]
    Truncated(usize),
    #[error("{0} bytes left over after the record")]
    Trailing(usize),
    #[error("a varint longer than 64 bits at byte {0}")]
    Varint(usize),
    #[error("bad JSON: {0}")]
    Json(String),
}

/// Writes `snap` in `encoding` to `out` (cleared first).
pub fn encode(snap: &SnapshotRef<'_>, encoding: Encoding, out: &mut Vec<u8>) {
    out.clear();
    match encoding {
        // Serializing these types to JSON cannot fail: every map key is a
        // string and every number finite or written as null.
        Encoding::Json => serde_json::to_writer(&mut *out, snap).unwrap_or_default(),
        Encoding::Binary => encode_v1(snap, out),
    }
}

fn encode_v1(snap: &SnapshotRef<'_>, out: &mut Vec<u8>) {
    out.push(BINARY_V1);
    let mut flags = 0;
    if snap.state.is_some() {
        flags |= HAS_STATE;
    }
    if snap.profile.is_some() {
        flags |= HAS_PROFILE;
    }
    if !snap.open.is_empty() {
        flags |= HAS_OPEN;
    }
    out.push(flags);
    if let Some(s) = snap.state {
        put_signed(out, s.last_seen);
        // Runs of one window each, counted first: no vector of them.
        let runs = || s.windows.chunk_by(|a, b| a.window == b.window);
        out.reserve(8 + s.windows.len() * 4 + (s.holds.len() + s.last_alert.len()) * 12);
        put_varint(out, runs().count() as u64);
        for run in runs() {
            out.extend_from_slice(&run[0].window.to_le_bytes());
            put_varint(out, run.len() as u64);
            let fixed = run.iter().any(|e| e.value != 0);
            out.push(u8::from(fixed));
            let mut prev = 0i64;
            for e in run {
                put_signed(out, e.at.wrapping_sub(prev));
                prev = e.at;
                if fixed {
                    out.extend_from_slice(&e.value.to_le_bytes());
                }
            }
        }
        put_varint(out, s.holds.len() as u64);
        for (key, since) in &s.holds {
            out.extend_from_slice(&key.to_le_bytes());
            put_signed(out, *since);
        }
        put_varint(out, s.last_alert.len() as u64);
        for (key, tier, at) in &s.last_alert {
            out.extend_from_slice(&key.to_le_bytes());
            out.push(*tier);
            put_signed(out, *at);
        }
    }
    if let Some(p) = snap.profile {
        put_json(out, p);
    }
    if !snap.open.is_empty() {
        put_json(out, &snap.open);
    }
}

/// Reads a record in any encoding levee has written.
pub fn decode(bytes: &[u8]) -> Result<SubjectSnapshot, CodecError> {
    match bytes.first() {
        None => Err(CodecError::Empty),
        Some(&BINARY_V1) => {
            let mut r = Reader { bytes, at: 1 };
            let snap = r.snapshot()?;
            match bytes.len() - r.at {
                0 => Ok(snap),
                n => Err(CodecError::Trailing(n)),
            }
        }
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| CodecError::Json(e.to_string())),
        Some(&b) => Err(CodecError::Unknown(b)),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn snapshot(&mut self) -> Result<SubjectSnapshot, CodecError> {
        let flags = self.byte()?;
        let mut snap = SubjectSnapshot::default();
        if flags & HAS_STATE != 0 {
            snap.state = Some(self.state()?);
        }
        if flags & HAS_PROFILE != 0 {
            snap.profile = Some(self.json::<Profile>()?);
        }
        if flags & HAS_OPEN != 0 {
            snap.open = self.json::<Vec<OpenAlert>>()?;
        }
        Ok(snap)
    }

    fn state(&mut self) -> Result<SubjectState, CodecError> {
        let mut s = SubjectState {
            last_seen: self.signed()?,
            ..SubjectState::default()
        };
        for _ in 0..self.count()? {
            let window = self.u64()?;
            let n = self.count()?;
            let fixed = self.byte()? != 0;
            let mut at = 0i64;
            for _ in 0..n {
                at = at.wrapping_add(self.signed()?);
                let value = if fixed { self.u64()? } else { 0 };
                s.windows.push(Entry { window, at, value });
            }
        }
        for _ in 0..self.count()? {
            s.holds.push((self.u64()?, self.signed()?));
        }
        for _ in 0..self.count()? {
            s.last_alert
                .push((self.u64()?, self.byte()?, self.signed()?));
        }
        Ok(s)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(CodecError::Truncated(self.bytes.len()))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let start = self.at;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Varint(start))
    }

    /// A count of items still to read: never more than bytes are left, so
    /// a corrupt count cannot make a reader allocate or loop for long.
    fn count(&mut self) -> Result<usize, CodecError> {
        let n = self.varint()?;
        let left = (self.bytes.len() - self.at) as u64;
        if n > left {
            return Err(CodecError::Truncated(self.bytes.len()));
        }
        Ok(n as usize)
    }

    fn signed(&mut self) -> Result<i64, CodecError> {
        let z = self.varint()?;
        Ok((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    fn json<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T, CodecError> {
        let n = self.count()?;
        let b = self.take(n)?;
        serde_json::from_slice(b).map_err(|e| CodecError::Json(e.to_string()))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_json<T: Serialize>(out: &mut Vec<u8>, v: &T) {
    let json = serde_json::to_vec(v).unwrap_or_default();
    put_varint(out, json.len() as u64);
    out.extend_from_slice(&json);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]
    use super::*;
    use crate::ledger::Ledger;

    fn entry(window: u64, at: i64, value: u64) -> Entry {
        Entry { window, at, value }
    }

    /// A subject with every part: windows of counts and of values, a late
    /// entry, holds, suppression, a profile and an open alert.
    fn full() -> SubjectSnapshot {
        let state = SubjectState {
            last_seen: 1_780_000_000,
            windows: thin_vec::thin_vec![
                entry(7, 1_779_990_000, 0),
                entry(7, 1_779_999_000, 0),
                entry(u64::MAX, -5, 12.5f64.to_bits()),
                entry(u64::MAX, 1_780_000_000, (-0.1f64).to_bits()),
            ],
            holds: thin_vec::thin_vec![(100, 1_779_000_000)],
            last_alert: thin_vec::thin_vec![(100, 3, i64::MIN), (101, 1, i64::MAX)],
            ..SubjectState::default()
        };
        let mut ledger = Ledger::default();
        let alert = crate::Alert {
            subject: "G1".into(),
            tier: 1,
            alert_id: "a1".into(),
            ..test_alert()
        };
        ledger.raised(&alert, "", Some(1_782_592_000));
        let mut snaps = crate::ledger::snapshot(&Default::default(), &ledger, vec!["G1".into()]);
        let (_, mut snap) = snaps.pop().expect("one snapshot");
        snap.state = Some(state);
        snap
    }

    fn test_alert() -> crate::Alert {
        serde_json::from_value(serde_json::json!({
            "alert_id": "x", "control_point": "BA-101", "domain": "arrears",
            "title": "欠费", "tier": 1, "notify": "department_manager",
            "action": "alert", "subject": "G1", "branch": "wuhan",
            "event_id": "e1", "event_type": "arrears_snapshot",
            "occurred_at": "2026-01-01T00:00:00Z",
            "detected_at": "2026-01-01T00:00:00Z",
            "source": {"http": true}, "ruleset_version": "v",
            "message": "m", "evidence": {}
        }))
        .expect("an alert")
    }

    fn same(a: &SubjectSnapshot, b: &SubjectSnapshot) {
        assert_eq!(
            serde_json::to_value(a).expect("json"),
            serde_json::to_value(b).expect("json")
        );
    }

    #[test]
    fn both_encodings_read_back_what_was_written() {
        let snap = full();
        let mut buf = Vec::new();
        for enc in [Encoding::Binary, Encoding::Json] {
            encode(&snap.borrowed(), enc, &mut buf);
            same(&decode(&buf).expect("decodes"), &snap);
        }
        encode(&SnapshotRef::default(), Encoding::Binary, &mut buf);
        assert_eq!(buf, [BINARY_V1, 0]);
        assert!(decode(&buf).expect("decodes").is_empty());
    }

    #[test]
    fn json_written_by_earlier_versions_is_read() {
        // A record as levee wrote it before the binary encoding.
        let old = br#"{"state":{"last_seen":1780000000,"windows":[{"window":7,"at":1779990000,"value":0}],"holds":[],"last_alert":[[5,2,1779990000]]}}"#;
        let snap = decode(old).expect("old JSON reads");
        let s = snap.state.expect("state");
        assert_eq!(s.windows, vec![entry(7, 1_779_990_000, 0)]);
        assert_eq!(s.last_alert, vec![(5, 2, 1_779_990_000)]);
    }

    #[test]
    fn window_state_is_a_fraction_of_its_json() {
        let snap = SubjectSnapshot {
            state: Some(SubjectState {
                last_seen: 1_780_000_000,
                windows: thin_vec::thin_vec![
                    entry(7, 1_779_990_000, 0),
                    entry(7, 1_780_000_000, 0)
                ],
                ..SubjectState::default()
            }),
            ..SubjectSnapshot::default()
        };
        let (mut bin, mut json) = (Vec::new(), Vec::new());
        encode(&snap.borrowed(), Encoding::Binary, &mut bin);
        encode(&snap.borrowed(), Encoding::Json, &mut json);
        assert!(bin.len() <= 30, "{} bytes", bin.len());
        assert!(
            bin.len() * 4 < json.len(),
            "{} vs {}",
            bin.len(),
            json.len()
        );
    }

    #[test]
    fn damaged_records_are_refused_not_misread() {
        let mut buf = Vec::new();
        encode(&full().borrowed(), Encoding::Binary, &mut buf);
        for cut in 1..buf.len() {
            assert!(decode(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(decode(&longer).unwrap_err(), CodecError::Trailing(1));
        assert_eq!(decode(&[]).unwrap_err(), CodecError::Empty);
        assert_eq!(decode(&[0xB2, 0]).unwrap_err(), CodecError::Unknown(0xB2));
        // A count far beyond the record's length is refused at once.
        let huge = [BINARY_V1, HAS_STATE, 0, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(decode(&huge), Err(CodecError::Truncated(_))));
        let long_varint = [
            BINARY_V1, HAS_STATE, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
        ];
        assert!(matches!(decode(&long_varint), Err(CodecError::Varint(2))));
    }
}
