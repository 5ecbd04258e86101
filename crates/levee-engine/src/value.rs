//! Run-time values in an evaluation buffer.

use std::fmt::Write as _;

use levee_rules::graph::Const;

/// One slot of an evaluation buffer.
///
/// `Missing` is SQL's NULL: an optional field the event lacks, and anything
/// computed from it. `Error` is an evaluation that evalexpr would reject at
/// run time (integer overflow, integer division by zero). Neither fires a
/// control point.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Val {
    #[default]
    Missing,
    Error,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Clone for Val {
    fn clone(&self) -> Self {
        match self {
            Val::Missing => Val::Missing,
            Val::Error => Val::Error,
            Val::Bool(b) => Val::Bool(*b),
            Val::Int(i) => Val::Int(*i),
            Val::Float(f) => Val::Float(*f),
            Val::Str(s) => Val::Str(s.clone()),
        }
    }

    // Re-uses a string slot's allocation.
    fn clone_from(&mut self, source: &Self) {
        match source {
            Val::Str(s) => self.set_str(s),
            v => *self = v.clone(),
        }
    }
}

impl Val {
    /// The value as evalexpr's `as_number` sees it.
    #[inline]
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn from_const(c: &Const) -> Val {
        match c {
            Const::Bool(b) => Val::Bool(*b),
            Const::Int(i) => Val::Int(*i),
            Const::Float(f) => Val::Float(*f),
            Const::Str(s) => Val::Str(s.to_string()),
        }
    }

    /// evalexpr's equality: values of different kinds are never equal.
    #[inline]
    pub fn same(&self, c: &Const) -> bool {
        match (self, c) {
            (Val::Bool(a), Const::Bool(b)) => a == b,
            (Val::Int(a), Const::Int(b)) => a == b,
            (Val::Float(a), Const::Float(b)) => a == b,
            (Val::Str(a), Const::Str(b)) => a.as_str() == &**b,
            _ => false,
        }
    }

    /// Sets a string value, re-using this slot's allocation.
    #[inline]
    pub fn set_str(&mut self, s: &str) {
        if let Val::Str(buf) = self {
            buf.clear();
            buf.push_str(s);
        } else {
            *self = Val::Str(s.to_owned());
        }
    }

    /// The value as JSON, for alert evidence (`null` when missing).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Val::Missing | Val::Error => serde_json::Value::Null,
            Val::Bool(b) => (*b).into(),
            Val::Int(i) => (*i).into(),
            Val::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Val::Str(s) => s.as_str().into(),
        }
    }

    /// The value as a message shows it: floats with at most two decimals.
    pub fn write_display(&self, out: &mut String) {
        match self {
            Val::Missing | Val::Error => out.push('?'),
            Val::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Val::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Val::Float(f) => {
                let s = format!("{f:.2}");
                let s = if s.contains('.') {
                    s.trim_end_matches('0').trim_end_matches('.')
                } else {
                    &s
                };
                out.push_str(s);
            }
            Val::Str(s) => out.push_str(s),
        }
    }
}
