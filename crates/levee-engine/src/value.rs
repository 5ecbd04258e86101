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
            Val::Float(f) => write_float(*f, out),
            Val::Str(s) => out.push_str(s),
        }
    }
}

impl Val {
    /// A number as an amount of money for people: thousands separators and
    /// two decimals (`1,234,567.00`); anything else as [`Val::write_display`].
    pub fn write_amount(&self, out: &mut String) {
        let x = match self {
            Val::Int(i) => *i as f64,
            Val::Float(f) if f.is_finite() => *f,
            _ => return self.write_display(out),
        };
        let cents = (x.abs() * 100.0).round();
        if cents >= 1e17 {
            return self.write_display(out);
        }
        let cents = cents as u64;
        if x < 0.0 && cents > 0 {
            out.push('-');
        }
        let whole = (cents / 100).to_string();
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        let _ = write!(out, ".{:02}", cents % 100);
    }
}

/// A float as a message shows it: rounded to two decimals, trailing zeros
/// (and a bare point) taken off; written in place.
fn write_float(f: f64, out: &mut String) {
    let start = out.len();
    // Most values have at most two decimals already: their shortest form
    // is what rounding to two decimals gives, and much cheaper to find.
    // (Below 1e12 a double is within 1e-4 of its shortest form, so that
    // form, two decimals or fewer, is also the rounded one.)
    if f.is_finite() && f.abs() < 1e12 {
        let _ = write!(out, "{f}");
        match out[start..].find('.') {
            Some(point) if out.len() - (start + point) <= 3 => return,
            None => return,
            Some(_) => out.truncate(start),
        }
    }
    let _ = write!(out, "{f:.2}");
    if out[start..].contains('.') {
        let kept = out[start..]
            .trim_end_matches('0')
            .trim_end_matches('.')
            .len();
        out.truncate(start + kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_for_people() {
        let amount = |v: Val| {
            let mut out = String::new();
            v.write_amount(&mut out);
            out
        };
        assert_eq!(amount(Val::Float(1_234_567.5)), "1,234,567.50");
        assert_eq!(amount(Val::Int(300)), "300.00");
        assert_eq!(amount(Val::Int(-45_000)), "-45,000.00");
        assert_eq!(amount(Val::Float(999.999)), "1,000.00");
        assert_eq!(amount(Val::Float(-0.001)), "0.00");
        assert_eq!(amount(Val::Missing), "?");
    }

    fn shown(v: &Val) -> String {
        let mut out = String::from("x=");
        v.write_display(&mut out);
        out
    }

    #[test]
    fn a_message_shows_floats_with_at_most_two_decimals() {
        for (f, s) in [
            (12.5, "x=12.5"),
            (12.0, "x=12"),
            (12.346, "x=12.35"),
            (0.004, "x=0"),
            (-1.10, "x=-1.1"),
            (1e21, "x=1000000000000000000000"),
            (f64::NAN, "x=NaN"),
            (f64::INFINITY, "x=inf"),
        ] {
            assert_eq!(shown(&Val::Float(f)), s, "{f}");
        }
        // Only the value's own zeros go: the text before it stays.
        let mut out = String::from("100");
        Val::Float(2.0).write_display(&mut out);
        assert_eq!(out, "1002");
    }

    #[test]
    fn the_short_path_for_floats_shows_what_rounding_shows() {
        let rounded = |f: f64| {
            let s = format!("{f:.2}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            } else {
                s
            }
        };
        // Decimals as events carry them, and the bits of doubles at random.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut values = vec![0.005, 0.015, 1.005, 2.675, -0.004, 999_999_999_999.99];
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push((x % 10_000_000) as f64 / 1000.0);
            values.push(-(((x >> 20) % 100_000) as f64) / 100.0);
            values.push(f64::from_bits(x));
        }
        for f in values {
            let mut out = String::new();
            write_float(f, &mut out);
            assert_eq!(out, rounded(f), "{f:e}");
        }
    }

    #[test]
    fn a_message_shows_other_values_as_they_are() {
        assert_eq!(shown(&Val::Missing), "x=?");
        assert_eq!(shown(&Val::Error), "x=?");
        assert_eq!(shown(&Val::Int(-7)), "x=-7");
        assert_eq!(shown(&Val::Bool(true)), "x=true");
        assert_eq!(shown(&Val::Str("鄂A".into())), "x=鄂A");
    }
}
