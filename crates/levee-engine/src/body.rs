//! The body of an evaluate request (`POST /v1/evaluate`): one event, or a
//! JSON array of events. Splitting it is pure (no HTTP, no engine), so the
//! service and the fuzzer share it: [`split`] gives the events' bytes, in
//! order, or why the body is refused. Each event is then decoded on its own
//! (a bad one is the engine's [`crate::BadInput`]).

use std::fmt;

use serde_json::value::RawValue;

/// The events of a body, each as its bytes within the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Events<'a> {
    /// A body that is not an array: the body itself is the event.
    One(&'a [u8]),
    /// A JSON array of at least one and at most `max_batch` events.
    Many(Vec<&'a [u8]>),
}

impl<'a> Events<'a> {
    /// The events, in order.
    pub fn as_slice(&self) -> &[&'a [u8]] {
        match self {
            Events::One(b) => std::slice::from_ref(b),
            Events::Many(v) => v,
        }
    }
}

/// Why a body is refused before any event in it is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// It starts with `[` but is not a JSON array (400).
    NotArray(String),
    /// An empty array (400).
    Empty,
    /// More events than `max_batch` (413).
    TooMany { count: usize, max_batch: usize },
}

impl BodyError {
    /// Whether the body is refused for its size (413) rather than as bad
    /// input (400).
    pub fn too_large(&self) -> bool {
        matches!(self, BodyError::TooMany { .. })
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::NotArray(e) => write!(f, "the body is not a JSON array of events: {e}"),
            BodyError::Empty => f.write_str("the array is empty: send at least one event"),
            BodyError::TooMany { count, max_batch } => write!(
                f,
                "{count} events in one request; http.max_batch is {max_batch}"
            ),
        }
    }
}

impl std::error::Error for BodyError {}

/// Splits a request body into its events: a body whose first non-blank
/// byte is `[` is an array of events (at least one, at most `max_batch`),
/// any other body is one event.
pub fn split(body: &[u8], max_batch: usize) -> Result<Events<'_>, BodyError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first != Some(b'[') {
        return Ok(Events::One(body));
    }
    let events = serde_json::from_slice::<Vec<&RawValue>>(body)
        .map_err(|e| BodyError::NotArray(e.to_string()))?;
    if events.is_empty() {
        return Err(BodyError::Empty);
    }
    if events.len() > max_batch {
        return Err(BodyError::TooMany {
            count: events.len(),
            max_batch,
        });
    }
    Ok(Events::Many(
        events.into_iter().map(|r| r.get().as_bytes()).collect(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_body_that_is_not_an_array_is_one_event() {
        for body in [&b"{\"a\":1}"[..], b"", b"  not json", b"\"[\""] {
            assert_eq!(split(body, 10), Ok(Events::One(body)));
        }
    }

    #[test]
    fn an_array_gives_each_event_as_written() {
        let body = b" \n[ {\"a\": 1} , {\"b\":[2, 3]},\"x\" ]";
        let events = split(body, 3).unwrap();
        assert_eq!(
            events.as_slice(),
            &[&b"{\"a\": 1}"[..], b"{\"b\":[2, 3]}", b"\"x\""]
        );
    }

    #[test]
    fn bad_arrays_are_refused_with_a_reason() {
        assert_eq!(split(b"[]", 3), Err(BodyError::Empty));
        assert_eq!(split(b"  [ ]", 3), Err(BodyError::Empty));
        let too_many = split(b"[1,2,3,4]", 3).unwrap_err();
        assert!(too_many.too_large());
        assert_eq!(
            too_many.to_string(),
            "4 events in one request; http.max_batch is 3"
        );
        for body in [&b"[1,"[..], b"[1] x", b"[{\"a\":NaN}]", b"["] {
            match split(body, 3) {
                Err(e @ BodyError::NotArray(_)) => {
                    assert!(!e.too_large());
                    assert!(e.to_string().starts_with("the body is not a JSON array"));
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }
}
