//! The settings' lengths of time, parsed once when the settings load.
//!
//! - [`Span`]: a whole number and a unit, `ms`, `s`, `m`, `h`, `d` or `w`
//!   (`500ms`, `5s`, `400d`); `0` needs no unit. Written back (by
//!   `--print-config`) in the largest unit up to days that holds it exactly.
//! - [`Offset`]: a [`Span`] in whole seconds with an optional sign
//!   (`-2h`, `+400d`): `clock.offset`.
//!
//! Both deserialize from strings (and `0`); anything else is an error that
//! names the value, never a silent default.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A length of time in a setting: see the module doc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(Duration);

/// The units, longest first, with their length in milliseconds.
const UNITS: &[(&str, u64)] = &[
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

impl Span {
    pub const ZERO: Span = Span(Duration::ZERO);

    pub const fn from_millis(ms: u64) -> Span {
        Span(Duration::from_millis(ms))
    }

    pub const fn from_secs(secs: u64) -> Span {
        Span(Duration::from_secs(secs))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Whole seconds (what event-time settings are counted in).
    pub fn secs(self) -> i64 {
        i64::try_from(self.0.as_secs()).unwrap_or(i64::MAX)
    }

    /// Whether it is a whole number of seconds.
    pub fn is_whole_secs(self) -> bool {
        self.0.subsec_nanos() == 0
    }
}

impl From<Span> for Duration {
    fn from(s: Span) -> Duration {
        s.0
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Span, String> {
        let t = s.trim();
        let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!(
                "{s:?} is not a duration: a whole number and a unit (ms, s, m, h, d or w), such as \"500ms\" or \"400d\""
            ));
        }
        let (number, unit) = t.split_at(digits);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{s:?} is not a duration: the number is too large"))?;
        let per = match UNITS.iter().find(|(u, _)| *u == unit) {
            Some((_, per)) => *per,
            None if unit.is_empty() && n == 0 => 0,
            None if unit.is_empty() => {
                return Err(format!(
                "{s:?} is not a duration: it needs a unit (ms, s, m, h, d or w), such as \"{n}s\""
            ))
            }
            None => {
                return Err(format!(
                    "{s:?} is not a duration: unknown unit {unit:?} (use ms, s, m, h, d or w)"
                ))
            }
        };
        n.checked_mul(per)
            .map(Span::from_millis)
            .ok_or_else(|| format!("{s:?} is not a duration: too long"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return f.write_str("0s");
        }
        // Weeks are left out: "7d" reads back as written.
        for (unit, per) in UNITS.iter().skip(1) {
            if ms % per == 0 {
                return write!(f, "{}{unit}", ms / per);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        d.deserialize_any(TextVisitor(
            "a duration such as \"500ms\", \"5s\" or \"400d\"",
        ))
        .and_then(|text| text.parse().map_err(de::Error::custom))
    }
}

/// `clock.offset`: signed whole seconds, written like a [`Span`] with an
/// optional sign (`0s`, `400d`, `-2h`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offset(i64);

impl Offset {
    pub fn secs(self) -> i64 {
        self.0
    }
}

impl FromStr for Offset {
    type Err = String;

    fn from_str(s: &str) -> Result<Offset, String> {
        let t = s.trim();
        let (sign, body) = match t.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, t.strip_prefix('+').unwrap_or(t)),
        };
        let span: Span = body.parse()?;
        if !span.is_whole_secs() {
            return Err(format!("{s:?}: an offset is a whole number of seconds"));
        }
        Ok(Offset(sign * span.secs()))
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let span = Span::from_secs(self.0.unsigned_abs());
        if self.0 < 0 {
            write!(f, "-{span}")
        } else {
            write!(f, "{span}")
        }
    }
}

impl Serialize for Offset {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Offset, D::Error> {
        d.deserialize_any(TextVisitor("an offset such as \"0s\", \"400d\" or \"-2h\""))
            .and_then(|text| text.parse().map_err(de::Error::custom))
    }
}

/// Takes a string, or a number that only `0` makes sense as (an environment
/// variable `…=0` arrives as a number).
struct TextVisitor(&'static str);

impl Visitor<'_> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        if v == 0 {
            Ok("0".to_owned())
        } else {
            Err(E::custom(format!(
                "{v} has no unit: write {:?} or {:?}",
                format!("{v}ms"),
                format!("{v}s")
            )))
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!("{v} has no unit"))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn spans_parse_every_unit() {
        let ms = |s: &str| s.parse::<Span>().map(|d| d.as_duration().as_millis());
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("5s"), Ok(5000));
        assert_eq!(ms("2m"), Ok(120_000));
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert_eq!(ms("400d"), Ok(400 * 86_400_000));
        assert_eq!(ms("2w"), Ok(14 * 86_400_000));
        assert_eq!(ms("0"), Ok(0));
        assert_eq!(ms(" 0s "), Ok(0));
    }

    #[test]
    fn bad_spans_say_why() {
        for (text, why) in [
            ("", "a whole number and a unit"),
            ("soon", "a whole number and a unit"),
            ("5", "needs a unit"),
            ("5 s", "unknown unit"),
            ("5y", "unknown unit"),
            ("-5s", "a whole number"),
            ("99999999999999999999s", "too large"),
            ("999999999999999w", "too long"),
        ] {
            let e = text.parse::<Span>().unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn spans_print_as_they_read() {
        for text in [
            "500ms", "1500ms", "5s", "90s", "2m", "1h", "7d", "400d", "0s",
        ] {
            assert_eq!(text.parse::<Span>().unwrap().to_string(), text);
        }
        assert_eq!("2w".parse::<Span>().unwrap().to_string(), "14d");
        assert_eq!("60s".parse::<Span>().unwrap().to_string(), "1m");
        assert_eq!("0".parse::<Span>().unwrap().to_string(), "0s");
    }

    #[test]
    fn offsets_take_a_sign_and_whole_seconds() {
        let secs = |s: &str| s.parse::<Offset>().map(Offset::secs);
        assert_eq!(secs("0s"), Ok(0));
        assert_eq!(secs("0"), Ok(0));
        assert_eq!(secs("400d"), Ok(400 * 86_400));
        assert_eq!(secs("+1h"), Ok(3600));
        assert_eq!(secs("-2h"), Ok(-7200));
        assert!(secs("soon").is_err());
        assert!(secs("").is_err());
        assert!(secs("500ms").is_err());
        assert_eq!("-2h".parse::<Offset>().unwrap().to_string(), "-2h");
    }

    #[derive(Debug, Deserialize, Serialize)]
    struct Both {
        span: Span,
        offset: Offset,
    }

    #[test]
    fn serde_reads_strings_and_zero_and_writes_strings() {
        let b: Both = toml::from_str("span = \"250ms\"\noffset = \"-1d\"").unwrap();
        assert_eq!(b.span, Span::from_millis(250));
        assert_eq!(b.offset.secs(), -86_400);
        assert_eq!(
            toml::to_string(&b).unwrap(),
            "span = \"250ms\"\noffset = \"-1d\"\n"
        );
        let b: Both = toml::from_str("span = 0\noffset = 0").unwrap();
        assert!(b.span.is_zero());
        let e = toml::from_str::<Both>("span = 200\noffset = 0").unwrap_err();
        assert!(e.to_string().contains("\"200ms\""), "{e}");
        let e = toml::from_str::<Both>("span = \"5x\"\noffset = 0").unwrap_err();
        assert!(e.to_string().contains("unknown unit"), "{e}");
    }
}
