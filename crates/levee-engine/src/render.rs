//! Alerts as JSON lines, written straight into a byte buffer.
//!
//! The bytes are exactly what `serde_json::to_writer(&alert)` writes (the
//! consumers' contract, `docs/contract.md`): fields in [`Alert`]'s order,
//! optional ones left out, evidence keys sorted (serde_json's map is
//! ordered by key), strings escaped as serde_json escapes them, numbers
//! formatted by serde_json's own formatter. Nothing here allocates once the
//! buffer has grown to the size of a line.

use std::io;

use serde_json::ser::{CompactFormatter, Formatter};

use crate::alert::{Alert, Source};
use crate::value::Val;

/// Writes `alert` as one JSON object (no newline) at the end of `out`.
pub fn write_alert(alert: &Alert, out: &mut Vec<u8>) {
    write_alert_with(
        alert,
        |out| {
            for (i, (name, value)) in alert.evidence.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, name);
                out.push(b':');
                write_json_value(out, value);
            }
        },
        out,
    );
}

/// [`write_alert`] with the evidence object's members written by
/// `evidence` (between the braces, without them) instead of from
/// `alert.evidence`.
pub(crate) fn write_alert_with(
    alert: &Alert,
    evidence: impl FnOnce(&mut Vec<u8>),
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"{\"alert_id\":");
    write_str(out, &alert.alert_id);
    out.extend_from_slice(b",\"control_point\":");
    write_str(out, &alert.control_point);
    out.extend_from_slice(b",\"domain\":");
    write_str(out, &alert.domain);
    out.extend_from_slice(b",\"title\":");
    write_str(out, &alert.title);
    out.extend_from_slice(b",\"tier\":");
    done(CompactFormatter.write_u8(out, alert.tier));
    out.extend_from_slice(b",\"notify\":");
    write_str(out, &alert.notify);
    out.extend_from_slice(b",\"action\":");
    write_str(out, &alert.action);
    out.extend_from_slice(b",\"subject\":");
    write_str(out, &alert.subject);
    out.extend_from_slice(b",\"people\":[");
    for (i, p) in alert.people.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, p);
    }
    out.push(b']');
    out.extend_from_slice(b",\"branch\":");
    write_str(out, &alert.branch);
    out.extend_from_slice(b",\"event_id\":");
    write_str(out, &alert.event_id);
    out.extend_from_slice(b",\"event_type\":");
    write_str(out, &alert.event_type);
    out.extend_from_slice(b",\"occurred_at\":");
    write_str(out, &alert.occurred_at);
    out.extend_from_slice(b",\"detected_at\":");
    write_str(out, &alert.detected_at);
    out.extend_from_slice(b",\"source\":");
    write_source(out, &alert.source);
    out.extend_from_slice(b",\"ruleset_version\":");
    write_str(out, &alert.ruleset_version);
    out.extend_from_slice(b",\"message\":");
    write_str(out, &alert.message);
    if let Some(m) = &alert.message_zh {
        out.extend_from_slice(b",\"message_zh\":");
        write_str(out, m);
    }
    out.extend_from_slice(b",\"evidence\":{");
    evidence(out);
    out.push(b'}');
    for (name, value) in [
        (&b",\"calendar\":"[..], &alert.calendar),
        (b",\"escalated_from\":", &alert.escalated_from),
        (b",\"rectify_by\":", &alert.rectify_by),
    ] {
        if let Some(v) = value {
            out.extend_from_slice(name);
            write_str(out, v);
        }
    }
    out.push(b'}');
}

fn write_source(out: &mut Vec<u8>, source: &Source) {
    match source {
        Source::Kafka {
            topic,
            partition,
            offset,
        } => {
            out.extend_from_slice(b"{\"topic\":");
            write_str(out, topic);
            out.extend_from_slice(b",\"partition\":");
            done(CompactFormatter.write_i32(out, *partition));
            out.extend_from_slice(b",\"offset\":");
            done(CompactFormatter.write_i64(out, *offset));
        }
        Source::File { file, line } => {
            out.extend_from_slice(b"{\"file\":");
            write_str(out, file);
            out.extend_from_slice(b",\"line\":");
            done(CompactFormatter.write_u64(out, *line));
        }
        Source::Http { http } => {
            out.extend_from_slice(if *http {
                b"{\"http\":true"
            } else {
                b"{\"http\":false"
            });
        }
    }
    out.push(b'}');
}

/// A run-time value as alert evidence shows it: what
/// [`Val::to_json`] serializes to (`null` when missing or an error, and
/// for a float that is not finite).
pub fn write_val(out: &mut Vec<u8>, v: &Val) {
    match v {
        Val::Missing | Val::Error => out.extend_from_slice(b"null"),
        Val::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Val::Int(i) => done(CompactFormatter.write_i64(out, *i)),
        Val::Float(f) if f.is_finite() => done(CompactFormatter.write_f64(out, *f)),
        Val::Float(_) => out.extend_from_slice(b"null"),
        Val::Str(s) => write_str(out, s),
    }
}

/// Any JSON value, as serde_json writes it (evidence kept in an alert).
fn write_json_value(out: &mut Vec<u8>, v: &serde_json::Value) {
    match v {
        serde_json::Value::String(s) => write_str(out, s),
        // Evidence holds scalars; anything else goes through serde_json.
        other => done(serde_json::to_writer(&mut *out, other).map_err(io::Error::from)),
    }
}

/// A JSON string with serde_json's escapes: `"` and `\`, the short forms
/// `\b \f \n \r \t`, `\u00XX` (lower-case hex) for the other control
/// characters; everything else as its UTF-8 bytes.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most strings need no escape: eight bytes at a time up to the first
    // that may.
    let clean = clean_prefix(bytes);
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0x00..=0x1f => b'u',
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        if short == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.push(b'\\');
            out.push(short);
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The length of the longest prefix of whole 8-byte words with no byte to
/// escape (a control character, `"` or `\`).
fn clean_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `w` is zero: (w - 1) borrows into its high bit, which `w`
    // itself did not have set.
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let mut n = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_ne_bytes(word);
        // Bytes below 0x20: those with none of the bits 0x60 (0x80 and
        // up are not, and they never make a false zero below).
        let control = zero(w & u64::from_ne_bytes([0x60; 8]) | w & HIGHS);
        let quote = zero(w ^ u64::from_ne_bytes([b'"'; 8]));
        let backslash = zero(w ^ u64::from_ne_bytes([b'\\'; 8]));
        if control | quote | backslash != 0 {
            break;
        }
        n += 8;
    }
    n
}

/// Writing into a `Vec<u8>` cannot fail.
#[inline]
fn done(r: io::Result<()>) {
    debug_assert!(r.is_ok());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn alert() -> Alert {
        let mut evidence = serde_json::Map::new();
        evidence.insert("z_last".into(), 1.5.into());
        evidence.insert("amount".into(), 12_000.into());
        evidence.insert("name".into(), "a \"q\" \\ \n\t\u{1}\u{7f} 中文".into());
        evidence.insert("none".into(), serde_json::Value::Null);
        evidence.insert("flag".into(), true.into());
        Alert {
            alert_id: "0123456789abcdef0123456789abcdef".into(),
            control_point: "VF-001".into(),
            domain: "vehicle_fuel".into(),
            title: "Fuel \u{8}over\u{c} standard".into(),
            tier: 2,
            notify: "branch_audit".into(),
            action: "alert".into(),
            subject: "鄂A12345".into(),
            people: Vec::new(),
            branch: "wuhan".into(),
            event_id: "e-1".into(),
            event_type: "refuel".into(),
            occurred_at: "2026-11-01T08:00:00+08:00".into(),
            detected_at: "2026-11-26T00:00:00.000Z".into(),
            source: Source::File {
                file: "events.jsonl".into(),
                line: 42,
            },
            ruleset_version: "abc".into(),
            message: "used 12.5 L\r\n".into(),
            message_zh: Some("用油12.5升".into()),
            evidence,
            calendar: None,
            escalated_from: None,
            rectify_by: None,
        }
    }

    fn same_as_serde(a: &Alert) {
        let mut out = Vec::new();
        write_alert(a, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(a).unwrap()
        );
    }

    #[test]
    fn an_alert_is_written_as_serde_json_writes_it() {
        same_as_serde(&alert());
    }

    #[test]
    fn optional_fields_and_every_source_are_written_as_serde_json_writes_them() {
        let mut a = alert();
        a.calendar = Some("provisional".into());
        a.escalated_from = Some("ff".into());
        a.rectify_by = Some("2026-12-01T23:59:59+08:00".into());
        a.evidence.clear();
        for source in [
            Source::Kafka {
                topic: "events.fuel".into(),
                partition: 3,
                offset: -1,
            },
            Source::Http { http: true },
            Source::Http { http: false },
            Source::File {
                file: String::new(),
                line: u64::MAX,
            },
        ] {
            a.source = source;
            same_as_serde(&a);
        }
        a.rectify_by = None;
        same_as_serde(&a);
    }

    #[test]
    fn evidence_values_are_written_as_their_json() {
        for v in [
            Val::Missing,
            Val::Error,
            Val::Bool(false),
            Val::Int(i64::MIN),
            Val::Float(0.1 + 0.2),
            Val::Float(-0.0),
            Val::Float(1e300),
            Val::Float(12_000.0),
            Val::Float(f64::NAN),
            Val::Float(f64::INFINITY),
            Val::Str("\u{0}\u{1f} é".into()),
        ] {
            let mut out = Vec::new();
            write_val(&mut out, &v);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&v.to_json()).unwrap(),
                "{v:?}"
            );
        }
    }

    #[test]
    fn a_character_to_escape_is_found_wherever_it_stands() {
        for special in ["\u{0}", "\u{1f}", "\"", "\\", "\u{7f}", " ", "é", "中"] {
            for at in 0..20 {
                for len in [at, at + 9, 24] {
                    let s = format!("{}{special}{}", "a".repeat(at), "b".repeat(len - at));
                    let mut out = Vec::new();
                    write_str(&mut out, &s);
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        serde_json::to_string(&s).unwrap()
                    );
                }
            }
        }
    }

    #[test]
    fn every_character_is_escaped_as_serde_json_escapes_it() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        for s in [all.as_str(), "", "plain", "\"", "end\\"] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }
}
