//! Decoding: bytes → an event of a known type, its fields in their slots.
//!
//! Every way an input can be bad is a [`BadInput`] naming the field and the
//! reason, never a panic.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, Timelike};
use levee_rules::graph::EventType;
use levee_rules::model::FieldType;
use levee_rules::RuleGraph;
use serde_json::{Map, Value};

use crate::value::Val;

/// Why an input message is bad. The set is fixed: it labels metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadKind {
    NotJson,
    NotObject,
    UnknownType,
    MissingField,
    WrongType,
}

impl BadKind {
    pub const ALL: [BadKind; 5] = [
        BadKind::NotJson,
        BadKind::NotObject,
        BadKind::UnknownType,
        BadKind::MissingField,
        BadKind::WrongType,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BadKind::NotJson => "not_json",
            BadKind::NotObject => "not_object",
            BadKind::UnknownType => "unknown_type",
            BadKind::MissingField => "missing_field",
            BadKind::WrongType => "wrong_type",
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
    fn new(kind: BadKind, reason: impl Into<String>) -> Self {
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
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses `bytes` as an event of one of `graph`'s types and writes its
/// fields into `slots` of that type's buffer (via `buffer_for`).
pub fn decode<'b>(
    graph: &RuleGraph,
    bytes: &[u8],
    env: &mut Envelope,
    buffer_for: impl FnOnce(u32) -> &'b mut [Val],
) -> Result<(), BadInput> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| BadInput::new(BadKind::NotJson, format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(BadInput::new(
            BadKind::NotObject,
            format!("an event must be a JSON object, found {}", kind_of(&value)),
        ));
    };
    let type_name = match obj.get("type") {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) => {
            return Err(BadInput::new(
                BadKind::MissingField,
                "missing required field `type`",
            ))
        }
        Some(v) => {
            return Err(BadInput::new(
                BadKind::WrongType,
                format!("field `type` must be a string, found {}", kind_of(v)),
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
    fill(et, &obj, slots, env)?;
    env.type_index = ti;
    env.event_type.clear();
    env.event_type.push_str(type_name);
    Ok(())
}

fn required_str<'a>(
    et: &EventType,
    obj: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, BadInput> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(BadInput::new(
            BadKind::MissingField,
            format!("missing required field `{name}` ({})", et.name),
        )),
        Some(v) => Err(BadInput::new(
            BadKind::WrongType,
            format!("field `{name}` must be a string, found {}", kind_of(v)),
        )),
    }
}

fn fill(
    et: &EventType,
    obj: &Map<String, Value>,
    slots: &mut [Val],
    env: &mut Envelope,
) -> Result<(), BadInput> {
    let event_id = required_str(et, obj, "event_id")?;
    let branch = required_str(et, obj, "branch")?;
    let occurred_at = required_str(et, obj, "occurred_at")?;
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
    slots[2] = Val::Int(occurred.timestamp());
    slots[3] = Val::Int(occurred.hour() as i64);
    slots[4] = Val::Int(occurred.weekday().number_from_monday() as i64);

    for (i, f) in et.fields.iter().enumerate() {
        if f.common {
            continue;
        }
        let slot = &mut slots[i];
        let v = match obj.get(&f.name) {
            None | Some(Value::Null) => {
                if f.required {
                    return Err(BadInput::new(
                        BadKind::MissingField,
                        format!("missing required field `{}` ({})", f.name, et.name),
                    ));
                }
                *slot = Val::Missing;
                continue;
            }
            Some(v) => v,
        };
        let wrong = |want: &str| {
            BadInput::new(
                BadKind::WrongType,
                format!("field `{}` must be {want}, found {}", f.name, kind_of(v)),
            )
        };
        match f.ty {
            FieldType::Number => match v.as_f64() {
                Some(n) => *slot = Val::Float(n),
                None => return Err(wrong("a number")),
            },
            FieldType::Integer => match v {
                Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        *slot = Val::Int(i);
                    } else {
                        let whole = n.as_f64().filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15);
                        match whole {
                            Some(x) => *slot = Val::Int(x as i64),
                            None => {
                                return Err(BadInput::new(
                                    BadKind::WrongType,
                                    format!("field `{}` must be a whole number, found {n}", f.name),
                                ))
                            }
                        }
                    }
                }
                _ => return Err(wrong("a whole number")),
            },
            FieldType::String => match v {
                Value::String(s) => slot.set_str(s),
                _ => return Err(wrong("a string")),
            },
            FieldType::Boolean => match v {
                Value::Bool(b) => *slot = Val::Bool(*b),
                _ => return Err(wrong("true or false")),
            },
            FieldType::Timestamp => match v {
                Value::String(s) => match DateTime::parse_from_rfc3339(s) {
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
                _ => return Err(wrong("an RFC 3339 timestamp string")),
            },
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
