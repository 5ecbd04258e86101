//! Decoding: bytes → an event of a known type, its fields in their slots.
//!
//! Every way an input can be bad is a [`BadInput`] naming the field and the
//! reason, never a panic.

use std::fmt;

use chrono::{DateTime, FixedOffset};
use levee_rules::calendar::Basis;
use levee_rules::graph::EventType;
use levee_rules::model::FieldType;
use levee_rules::{Calendar, RuleGraph};
use std::borrow::Cow;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::value::Val;

/// Why an input message is bad. The set is fixed: it labels metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadKind {
    NotJson,
    NotObject,
    UnknownType,
    MissingField,
    WrongType,
    /// Stamped further ahead of the processing clock than allowed
    /// (`state.max_future_skew`): it would move event time for good.
    Future,
    /// A field given twice: which value counts is ambiguous, and ambiguity
    /// is where fraud hides.
    DuplicateField,
    /// Arrays or objects nested deeper than the parser's limit (128).
    TooDeep,
    /// A number beyond what a double holds, or an integer field beyond a
    /// 64-bit integer.
    NumberRange,
    /// A byte-order mark before the JSON: the producer's encoder is wrong.
    Bom,
    /// A lone UTF-16 surrogate or an invalid code point in an escape.
    InvalidUnicode,
    /// `NaN` or `Infinity`, which JSON does not have.
    NonFinite,
}

impl BadKind {
    pub const ALL: [BadKind; 12] = [
        BadKind::NotJson,
        BadKind::NotObject,
        BadKind::UnknownType,
        BadKind::MissingField,
        BadKind::WrongType,
        BadKind::Future,
        BadKind::DuplicateField,
        BadKind::TooDeep,
        BadKind::NumberRange,
        BadKind::Bom,
        BadKind::InvalidUnicode,
        BadKind::NonFinite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BadKind::NotJson => "not_json",
            BadKind::NotObject => "not_object",
            BadKind::UnknownType => "unknown_type",
            BadKind::MissingField => "missing_field",
            BadKind::WrongType => "wrong_type",
            BadKind::Future => "future",
            BadKind::DuplicateField => "duplicate_field",
            BadKind::TooDeep => "too_deep",
            BadKind::NumberRange => "number_range",
            BadKind::Bom => "bom",
            BadKind::InvalidUnicode => "invalid_unicode",
            BadKind::NonFinite => "non_finite",
        }
    }
}

/// A bad input message: its class and a reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput {
    pub kind: BadKind,
    pub reason: String,
}

impl BadInput {
    pub(crate) fn new(kind: BadKind, reason: impl Into<String>) -> Self {
        BadInput {
            kind,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.kind.as_str())
    }
}

impl std::error::Error for BadInput {}

/// The envelope of a decoded event: what alerts copy from it.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub type_index: u32,
    pub event_type: String,
    pub event_id: String,
    /// As the event wrote it.
    pub occurred_at: String,
    pub occurred: Option<DateTime<FixedOffset>>,
    pub branch: String,
    /// What the working calendar of the event's day rests on.
    pub calendar: Basis,
}

/// One JSON value as the decoder needs it: scalars (strings borrowed where
/// the input has no escapes), containers only by their kind.
enum Json<'a> {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(Cow<'a, str>),
    Array,
    Object,
}

impl Json<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Num(_) => "a number",
            Json::Str(_) => "a string",
            Json::Array => "an array",
            Json::Object => "an object",
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Num(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Num(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json<'de>, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Num)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        while seq.next_element_seed(Skip(2))?.is_some() {}
        Ok(Json::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Skip(2))?;
        }
        Ok(Json::Object)
    }
}

/// How deep arrays and objects may nest in an event (the event itself is
/// level 1): deeper is `too_deep`, before the parser's own limit (128).
pub const MAX_DEPTH: usize = 32;

/// The message `too_deep` is recognised by.
pub(crate) const TOO_DEEP: &str = "nested deeper than";

/// Skips a value at nesting level `.0`, refusing one nested deeper than
/// [`MAX_DEPTH`].
struct Skip(usize);

impl<'de> de::DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(de::Error::custom(format!("{TOO_DEEP} {MAX_DEPTH} levels")));
        }
        while seq.next_element_seed(Skip(self.0 + 1))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(de::Error::custom(format!("{TOO_DEEP} {MAX_DEPTH} levels")));
        }
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Skip(self.0 + 1))?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// A whole message: an object's entries in order, or the kind of non-object.
enum Top<'a> {
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
    Other(&'static str),
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        // Room for a large event at once (serde_json gives no size hint).
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(48));
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            let v: Json<'de> = map.next_value()?;
            entries.push((k, v));
        }
        Ok(Top::Object(entries))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top<'de>, A::Error> {
        Skip(1).visit_seq(seq).map(|()| Top::Other("an array"))
    }
    fn visit_unit<E>(self) -> Result<Top<'de>, E> {
        Ok(Top::Other("null"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
        Ok(Top::Other("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
        Ok(Top::Other("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
        Ok(Top::Other("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
        Ok(Top::Other("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Top<'de>, E> {
        Ok(Top::Other("a string"))
    }
}

/// An object key, borrowed from the input unless it has escapes (serde's
/// own `Cow<str>` always copies).
struct Key<'a>(Cow<'a, str>);

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

fn get<'e, 'a>(entries: &'e [(Cow<'a, str>, Json<'a>)], name: &str) -> Option<&'e Json<'a>> {
    // The last occurrence wins, as in serde_json's own maps.
    entries
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Parses `bytes` as an event of one of `graph`'s types and writes its
/// fields into `slots` of that type's buffer (via `buffer_for`).
pub fn decode<'b>(
    graph: &RuleGraph,
    bytes: &[u8],
    env: &mut Envelope,
    buffer_for: impl FnOnce(u32) -> &'b mut [Val],
) -> Result<(), BadInput> {
    if bytes.starts_with(&[0xef, 0xbb, 0xbf]) {
        return Err(BadInput::new(
            BadKind::Bom,
            "a byte-order mark (EF BB BF) before the JSON: JSON text is sent without one",
        ));
    }
    // Valid UTF-8 checked once for the whole line (serde_json then reads
    // its strings without checking each again); invalid bytes get
    // serde_json's own error, which says where.
    let top: Result<Top, _> = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    };
    let top = top.map_err(|e| crate::hostile::not_json(bytes, &e))?;
    let entries = match top {
        Top::Object(e) => e,
        Top::Other(kind) => {
            return Err(BadInput::new(
                BadKind::NotObject,
                format!("an event must be a JSON object, found {kind}"),
            ))
        }
    };
    if entries.iter().filter(|(k, _)| k == "type").nth(1).is_some() {
        return Err(BadInput::new(
            BadKind::DuplicateField,
            "field `type` is given twice: which value counts is ambiguous",
        ));
    }
    let type_name = match get(&entries, "type") {
        Some(Json::Str(s)) => s.as_ref(),
        None | Some(Json::Null) => {
            return Err(BadInput::new(
                BadKind::MissingField,
                "missing required field `type`",
            ))
        }
        Some(v) => {
            return Err(BadInput::new(
                BadKind::WrongType,
                format!("field `type` must be a string, found {}", v.kind()),
            ))
        }
    };
    let Some((ti, et)) = graph.event_type(type_name) else {
        return Err(BadInput::new(
            BadKind::UnknownType,
            format!("unknown event type `{type_name}`"),
        ));
    };
    let slots = buffer_for(ti);
    fill(et, &graph.calendar, &entries, slots, env)?;
    env.type_index = ti;
    env.event_type.clear();
    env.event_type.push_str(type_name);
    Ok(())
}

/// Writes one field's JSON value into its slot, checking its type.
fn set_field(
    f: &levee_rules::graph::FieldSpec,
    v: &Json<'_>,
    slot: &mut Val,
) -> Result<(), BadInput> {
    if matches!(v, Json::Null) {
        *slot = Val::Missing;
        return Ok(());
    }
    let wrong = |want: &str| {
        BadInput::new(
            BadKind::WrongType,
            format!("field `{}` must be {want}, found {}", f.name, v.kind()),
        )
    };
    match (f.ty, v) {
        (FieldType::Number, Json::Num(n)) => match n.as_f64() {
            Some(x) => *slot = Val::Float(x),
            None => return Err(wrong("a number")),
        },
        (FieldType::Number, _) => return Err(wrong("a number")),
        (FieldType::Integer, Json::Num(n)) => {
            if let Some(i) = n.as_i64() {
                *slot = Val::Int(i);
            } else {
                let whole = n.as_f64().filter(|x| x.fract() == 0.0);
                match whole {
                    Some(x) if x.abs() < 9.0e15 => *slot = Val::Int(x as i64),
                    Some(_) => {
                        return Err(BadInput::new(
                            BadKind::NumberRange,
                            format!(
                                "field `{}` is {n}, beyond the range of a 64-bit integer",
                                f.name
                            ),
                        ))
                    }
                    None => {
                        return Err(BadInput::new(
                            BadKind::WrongType,
                            format!("field `{}` must be a whole number, found {n}", f.name),
                        ))
                    }
                }
            }
        }
        (FieldType::Integer, _) => return Err(wrong("a whole number")),
        (FieldType::String, Json::Str(s)) => slot.set_str(s),
        (FieldType::String, _) => return Err(wrong("a string")),
        (FieldType::Boolean, Json::Bool(b)) => *slot = Val::Bool(*b),
        (FieldType::Boolean, _) => return Err(wrong("true or false")),
        (FieldType::Timestamp, Json::Str(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => *slot = Val::Int(t.timestamp()),
            Err(_) => {
                return Err(BadInput::new(
                    BadKind::WrongType,
                    format!(
                        "field `{}` must be an RFC 3339 timestamp, found {s:?}",
                        f.name
                    ),
                ))
            }
        },
        (FieldType::Timestamp, _) => return Err(wrong("an RFC 3339 timestamp string")),
    }
    Ok(())
}

fn required_str<'e>(
    et: &EventType,
    entries: &'e [(Cow<'_, str>, Json<'_>)],
    name: &str,
) -> Result<&'e str, BadInput> {
    match get(entries, name) {
        Some(Json::Str(s)) => Ok(s),
        None | Some(Json::Null) => Err(BadInput::new(
            BadKind::MissingField,
            format!("missing required field `{name}` ({})", et.name),
        )),
        Some(v) => Err(BadInput::new(
            BadKind::WrongType,
            format!("field `{name}` must be a string, found {}", v.kind()),
        )),
    }
}

fn fill(
    et: &EventType,
    calendar: &Calendar,
    entries: &[(Cow<'_, str>, Json<'_>)],
    slots: &mut [Val],
    env: &mut Envelope,
) -> Result<(), BadInput> {
    let event_id = required_str(et, entries, "event_id")?;
    let branch = required_str(et, entries, "branch")?;
    let occurred_at = required_str(et, entries, "occurred_at")?;
    let occurred = DateTime::parse_from_rfc3339(occurred_at).map_err(|e| {
        BadInput::new(
            BadKind::WrongType,
            format!(
                "field `occurred_at` must be an RFC 3339 timestamp, found {occurred_at:?} ({e})"
            ),
        )
    })?;
    slots[0].set_str(event_id);
    slots[1].set_str(branch);
    let at = occurred.timestamp();
    // Hour, weekday and day in the business time zone, not the offset the
    // timestamp happens to carry.
    let local = calendar.local(at);
    slots[2] = Val::Int(at);
    slots[3] = Val::Int(i64::from(local.hour));
    slots[4] = Val::Int(i64::from(local.weekday));
    (slots[5], slots[6]) = match local.day {
        Some(d) => (Val::Bool(d.workday), Val::Bool(d.holiday)),
        None => (Val::Missing, Val::Missing),
    };
    env.calendar = local.basis();

    // One pass over the message's fields, each to its slot; then the
    // required ones that did not come are missing.
    let mut seen = [0u64; 8];
    let fits = et.fields.len() <= seen.len() * 64;
    for (name, v) in entries {
        let Some(&slot) = et.field_index.get(name.as_ref()) else {
            continue;
        };
        let i = slot as usize;
        let f = &et.fields[i];
        if fits {
            // A field given twice is refused, the common ones included.
            if seen[i / 64] & (1 << (i % 64)) != 0 {
                return Err(BadInput::new(
                    BadKind::DuplicateField,
                    format!(
                        "field `{}` is given twice: which value counts is ambiguous",
                        f.name
                    ),
                ));
            }
            seen[i / 64] |= 1 << (i % 64);
        }
        if f.common {
            continue;
        }
        set_field(f, v, &mut slots[i])?;
    }
    for (i, f) in et.fields.iter().enumerate() {
        if f.common {
            continue;
        }
        let present = if fits {
            seen[i / 64] & (1 << (i % 64)) != 0
        } else {
            get(entries, &f.name).is_some()
        };
        let null = matches!(slots[i], Val::Missing);
        if !present || null {
            if f.required {
                return Err(BadInput::new(
                    BadKind::MissingField,
                    format!("missing required field `{}` ({})", f.name, et.name),
                ));
            }
            slots[i] = Val::Missing;
        }
    }
    for (dst, src) in [
        (&mut env.event_id, event_id),
        (&mut env.occurred_at, occurred_at),
        (&mut env.branch, branch),
    ] {
        dst.clear();
        dst.push_str(src);
    }
    env.occurred = Some(occurred);
    Ok(())
}
