//! Why a message is not JSON, for the shapes built to hurt a parser or to
//! smuggle a value past a check: each gets a kind of its own (and so a
//! `levee.error.kind` on the DLQ and a metric label), the rest is
//! `not_json`. The parser (serde_json) has already refused the message;
//! this only names why, so the common path pays nothing.

use crate::decode::{BadInput, BadKind};

/// The [`BadInput`] for a message serde_json refused with `e`.
pub(crate) fn not_json(bytes: &[u8], e: &serde_json::Error) -> BadInput {
    let text = e.to_string();
    let kind = if text.starts_with(crate::decode::TOO_DEEP)
        || text.starts_with("recursion limit exceeded")
    {
        BadKind::TooDeep
    } else if text.starts_with("number out of range") {
        BadKind::NumberRange
    } else if text.contains("surrogate")
        || text.starts_with("invalid unicode code point")
        || text.starts_with("unexpected end of hex escape")
    {
        BadKind::InvalidUnicode
    } else if non_finite_at(bytes, e.line(), e.column()) {
        BadKind::NonFinite
    } else {
        BadKind::NotJson
    };
    let reason = match kind {
        BadKind::TooDeep => format!("arrays or objects {e}"),
        BadKind::NumberRange => format!("a number beyond a double's range: {e}"),
        BadKind::InvalidUnicode => format!("a string with an invalid Unicode escape: {e}"),
        BadKind::NonFinite => format!("NaN or Infinity, which JSON does not have: {e}"),
        _ => format!("not valid JSON: {e}"),
    };
    BadInput::new(kind, reason)
}

/// Whether the token where parsing stopped (1-based line and column, the
/// column at or just past its first byte) is `NaN`, `Infinity` or
/// `-Infinity`.
fn non_finite_at(bytes: &[u8], line: usize, column: usize) -> bool {
    let Some(text) = bytes.split(|&b| b == b'\n').nth(line.saturating_sub(1)) else {
        return false;
    };
    let from = column.saturating_sub(2).min(text.len());
    let rest = &text[from..];
    let rest = rest
        .iter()
        .position(|b| !matches!(b, b' ' | b':' | b',' | b'[' | b'\t' | b'\r'))
        .map_or(&rest[rest.len()..], |i| &rest[i..]);
    let rest = rest.strip_prefix(b"-").unwrap_or(rest);
    rest.starts_with(b"NaN") || rest.starts_with(b"Infinity")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kind of a text serde_json refuses (`None` if it parses).
    fn kind(text: &[u8]) -> Option<BadKind> {
        serde_json::from_slice::<serde_json::Value>(text)
            .err()
            .map(|e| not_json(text, &e).kind)
    }

    #[test]
    fn hostile_shapes_are_named() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(kind(deep.as_bytes()), Some(BadKind::TooDeep));
        assert_eq!(
            kind(br#"{"amount_cny": 1e400}"#),
            Some(BadKind::NumberRange)
        );
        assert_eq!(kind(br#"{"a": "\ud800"}"#), Some(BadKind::InvalidUnicode));
        assert_eq!(kind(br#"{"a": "\udc00x"}"#), Some(BadKind::InvalidUnicode));
        assert_eq!(kind(br#"{"liters": NaN}"#), Some(BadKind::NonFinite));
        assert_eq!(kind(br#"{"liters": Infinity}"#), Some(BadKind::NonFinite));
        assert_eq!(kind(br#"{"liters":-Infinity}"#), Some(BadKind::NonFinite));
        assert_eq!(
            kind(b"{\"a\": 1,\n \"liters\": NaN}"),
            Some(BadKind::NonFinite)
        );
        assert_eq!(kind(br#"[1, NaN]"#), Some(BadKind::NonFinite));
    }

    #[test]
    fn other_broken_json_stays_not_json() {
        assert_eq!(kind(b"{not json"), Some(BadKind::NotJson));
        assert_eq!(kind(br#"{"a": Nope}"#), Some(BadKind::NotJson));
        assert_eq!(kind(b""), Some(BadKind::NotJson));
        assert_eq!(kind(br#"{"a": "NaN" x}"#), Some(BadKind::NotJson));
    }
}
