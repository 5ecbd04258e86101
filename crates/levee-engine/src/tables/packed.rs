//! A key's versions packed into one allocation: the key, each version's
//! validity and its values, strings inline.
//!
//! A 1,000,000-row table held as `Box<str>` keys, a `Box<[Option<Const>]>`
//! per version and a `Box<str>` per string value was five or six
//! allocations a row, and 355 MiB resident for the five-column `fleet`
//! table (BENCHMARKS.md, "Tables"); packed, a row is one allocation.
//!
//! Layout (integers little-endian, lengths and counts LEB128):
//!
//! ```text
//! key length | key | versions n | n × (from i64, to i64, start u32) | values…
//! ```
//!
//! The versions are sorted by `from`; version `i`'s values run from its
//! `start` to the next version's (the last: to the end). Each value is a
//! tag and what it needs: a number's 8 bytes, a string's length and bytes.
//! A value equal to the key (a one-column key is also a column) is a tag
//! alone, read back from the key.

use levee_rules::graph::Const;
use levee_rules::table::Row;

use crate::value::Val;

const NONE: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const STR: u8 = 5;
/// A string equal to the key.
const KEY_STR: u8 = 6;
/// An integer that the key reads as.
const KEY_INT: u8 = 7;

/// A version's `from`, `to` and `start`.
const ENTRY: usize = 8 + 8 + 4;

/// One key's versions, packed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Packed(Box<[u8]>);

fn push_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// The length at `at`, and where what follows it starts.
#[inline]
fn len_at(b: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let byte = *b.get(at)?;
        at += 1;
        n |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some((n, at));
        }
        shift += 7;
    }
}

#[inline]
fn word_at(b: &[u8], at: usize) -> Option<[u8; 8]> {
    b.get(at..at + 8)?.try_into().ok()
}

#[inline]
fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    word_at(b, at).map(i64::from_le_bytes)
}

#[inline]
fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let w: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(w) as usize)
}

fn push_value(out: &mut Vec<u8>, key: &str, v: &Option<Const>) {
    match v {
        None => out.push(NONE),
        Some(Const::Bool(false)) => out.push(FALSE),
        Some(Const::Bool(true)) => out.push(TRUE),
        Some(Const::Int(i)) if key.parse::<i64>() == Ok(*i) => out.push(KEY_INT),
        Some(Const::Int(i)) => {
            out.push(INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Some(Const::Float(f)) => {
            out.push(FLOAT);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Some(Const::Str(s)) if **s == *key => out.push(KEY_STR),
        Some(Const::Str(s)) => {
            out.push(STR);
            push_len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// A value as packed: borrowed from the blob, or the key's.
#[derive(Debug, PartialEq)]
enum Value<'a> {
    Missing,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a [u8]),
    KeyStr,
    KeyInt,
}

/// The value at `at` of `b`, and where the next starts.
#[inline]
fn value_at(b: &[u8], at: usize) -> Option<(Value<'_>, usize)> {
    let next = at + 1;
    Some(match *b.get(at)? {
        NONE => (Value::Missing, next),
        FALSE => (Value::Bool(false), next),
        TRUE => (Value::Bool(true), next),
        INT => (Value::Int(i64_at(b, next)?), next + 8),
        FLOAT => (
            Value::Float(f64::from_le_bytes(word_at(b, next)?)),
            next + 8,
        ),
        STR => {
            let (n, from) = len_at(b, next)?;
            (Value::Str(b.get(from..from + n)?), from + n)
        }
        KEY_STR => (Value::KeyStr, next),
        KEY_INT => (Value::KeyInt, next),
        _ => return None,
    })
}

impl Value<'_> {
    fn to_const(&self, key: &str) -> Option<Const> {
        Some(match self {
            Value::Missing => return None,
            Value::Bool(b) => Const::Bool(*b),
            Value::Int(i) => Const::Int(*i),
            Value::Float(f) => Const::Float(*f),
            Value::Str(s) => Const::Str(std::str::from_utf8(s).ok()?.into()),
            Value::KeyStr => Const::Str(key.into()),
            Value::KeyInt => Const::Int(key.parse().ok()?),
        })
    }
}

/// One version's values (a slice of the blob).
#[derive(Debug, Clone, Copy)]
pub(super) struct Values<'a>(&'a [u8]);

impl Values<'_> {
    /// Column `column`'s value into `out` (`key`: the key looked up, the
    /// packed one); missing where the version has no value.
    #[inline]
    pub(super) fn read(self, key: &str, column: u32, out: &mut Val) {
        let mut at = 0;
        for _ in 0..column {
            match value_at(self.0, at) {
                Some((_, next)) => at = next,
                None => return *out = Val::Missing,
            }
        }
        match value_at(self.0, at).map(|(v, _)| v) {
            Some(Value::Bool(b)) => *out = Val::Bool(b),
            Some(Value::Int(i)) => *out = Val::Int(i),
            Some(Value::Float(f)) => *out = Val::Float(f),
            Some(Value::Str(s)) => match std::str::from_utf8(s) {
                Ok(s) => out.set_str(s),
                Err(_) => *out = Val::Missing,
            },
            Some(Value::KeyStr) => out.set_str(key),
            Some(Value::KeyInt) => match key.parse() {
                Ok(i) => *out = Val::Int(i),
                Err(_) => *out = Val::Missing,
            },
            Some(Value::Missing) | None => *out = Val::Missing,
        }
    }

    fn consts(self, key: &str) -> Box<[Option<Const>]> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((v, next)) = value_at(self.0, at) {
            out.push(v.to_const(key));
            at = next;
        }
        out.into_boxed_slice()
    }
}

impl Packed {
    /// `key`'s versions (sorted here by `valid_from`, their keys not
    /// read: `key` is theirs); none for no versions (or, never from a
    /// Kafka record, over 4 GiB of them).
    pub(super) fn new(key: &str, mut rows: Vec<Row>) -> Option<Packed> {
        if rows.is_empty() {
            return None;
        }
        rows.sort_by_key(|r| r.valid_from);
        let mut values = Vec::new();
        let mut starts = Vec::with_capacity(rows.len());
        for r in &rows {
            starts.push(values.len());
            for v in r.values.iter() {
                push_value(&mut values, key, v);
            }
        }
        let mut out = Vec::with_capacity(key.len() + 2 + rows.len() * ENTRY + values.len() + 4);
        push_len(&mut out, key.len());
        out.extend_from_slice(key.as_bytes());
        push_len(&mut out, rows.len());
        let base = out.len() + rows.len() * ENTRY;
        for (r, start) in rows.iter().zip(starts) {
            out.extend_from_slice(&r.valid_from.to_le_bytes());
            out.extend_from_slice(&r.valid_to.to_le_bytes());
            let start = u32::try_from(base + start).ok()?;
            out.extend_from_slice(&start.to_le_bytes());
        }
        out.extend_from_slice(&values);
        Some(Packed(out.into_boxed_slice()))
    }

    /// The key's bytes.
    #[inline]
    pub(super) fn key(&self) -> &[u8] {
        match len_at(&self.0, 0) {
            Some((n, at)) => self.0.get(at..at + n).unwrap_or_default(),
            None => &[],
        }
    }

    /// The versions' count, and where their entries start.
    #[inline]
    fn directory(&self) -> (usize, usize) {
        len_at(&self.0, 0)
            .and_then(|(n, at)| len_at(&self.0, at + n))
            .unwrap_or((0, self.0.len()))
    }

    /// How many versions the key has.
    pub(super) fn versions(&self) -> usize {
        self.directory().0
    }

    /// Version `i`'s `from`, `to` and values.
    #[inline]
    fn version(&self, i: usize, n: usize, dir: usize) -> Option<(i64, i64, Values<'_>)> {
        let at = dir + i * ENTRY;
        let from = i64_at(&self.0, at)?;
        let to = i64_at(&self.0, at + 8)?;
        let start = u32_at(&self.0, at + 16)?;
        let end = if i + 1 < n {
            u32_at(&self.0, at + ENTRY + 16)?
        } else {
            self.0.len()
        };
        Some((from, to, Values(self.0.get(start..end)?)))
    }

    /// The values of the version valid at `at`: of those valid, the
    /// latest to start.
    #[inline]
    pub(super) fn at(&self, at: i64) -> Option<Values<'_>> {
        let (n, dir) = self.directory();
        (0..n)
            .rev()
            .filter_map(|i| self.version(i, n, dir))
            .find(|(from, to, _)| *from <= at && at < *to)
            .map(|(_, _, v)| v)
    }

    /// The versions as rows again (of key `key`, the packed one).
    pub(super) fn rows(&self, key: &str) -> Vec<Row> {
        let (n, dir) = self.directory();
        (0..n)
            .filter_map(|i| self.version(i, n, dir))
            .map(|(from, to, values)| Row {
                key: key.into(),
                valid_from: from,
                valid_to: to,
                values: values.consts(key),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(from: i64, to: i64, values: Vec<Option<Const>>) -> Row {
        Row {
            key: "K-1".into(),
            valid_from: from,
            valid_to: to,
            values: values.into(),
        }
    }

    fn read(v: Values<'_>, key: &str, column: u32) -> Val {
        let mut out = Val::Error;
        v.read(key, column, &mut out);
        out
    }

    #[test]
    fn every_kind_of_value_reads_back() {
        let long = "长".repeat(100);
        let values = vec![
            Some(Const::Str("K-1".into())),
            None,
            Some(Const::Bool(true)),
            Some(Const::Bool(false)),
            Some(Const::Int(-7)),
            Some(Const::Float(8.5)),
            Some(Const::Str("鄂A·G00001".into())),
            Some(Const::Str(long.as_str().into())),
            Some(Const::Str("".into())),
        ];
        let rows = vec![row(i64::MIN, i64::MAX, values.clone())];
        let p = Packed::new("K-1", rows.clone()).unwrap();
        assert_eq!(p.key(), b"K-1");
        assert_eq!(p.versions(), 1);
        assert_eq!(p.rows("K-1"), rows);
        let v = p.at(0).unwrap();
        assert_eq!(read(v, "K-1", 0), Val::Str("K-1".into()));
        assert_eq!(read(v, "K-1", 1), Val::Missing);
        assert_eq!(read(v, "K-1", 2), Val::Bool(true));
        assert_eq!(read(v, "K-1", 3), Val::Bool(false));
        assert_eq!(read(v, "K-1", 4), Val::Int(-7));
        assert_eq!(read(v, "K-1", 5), Val::Float(8.5));
        assert_eq!(read(v, "K-1", 6), Val::Str("鄂A·G00001".into()));
        assert_eq!(read(v, "K-1", 7), Val::Str(long.clone()));
        assert_eq!(read(v, "K-1", 8), Val::Str(String::new()));
        assert_eq!(read(v, "K-1", 9), Val::Missing, "past the columns");
    }

    #[test]
    fn an_integer_key_column_is_the_key() {
        let r = Row {
            key: "42".into(),
            valid_from: 0,
            valid_to: 10,
            values: vec![Some(Const::Int(42)), Some(Const::Int(43))].into(),
        };
        let p = Packed::new("42", vec![r.clone()]).unwrap();
        assert_eq!(p.rows("42"), [r]);
        assert_eq!(read(p.at(5).unwrap(), "42", 0), Val::Int(42));
        assert_eq!(read(p.at(5).unwrap(), "42", 1), Val::Int(43));
    }

    #[test]
    fn the_version_valid_at_a_time_is_read() {
        let a = row(0, 100, vec![Some(Const::Int(1))]);
        let b = row(100, i64::MAX, vec![Some(Const::Int(2)), None]);
        // Overlapping: the later start wins.
        let c = row(150, 200, vec![Some(Const::Int(3))]);
        let p = Packed::new("K-1", vec![c.clone(), a.clone(), b.clone()]).unwrap();
        assert_eq!(p.versions(), 3);
        assert_eq!(p.rows("K-1"), [a, b, c], "sorted by valid_from");
        assert!(p.at(-1).is_none());
        assert_eq!(read(p.at(99).unwrap(), "K-1", 0), Val::Int(1));
        assert_eq!(read(p.at(99).unwrap(), "K-1", 1), Val::Missing);
        assert_eq!(read(p.at(100).unwrap(), "K-1", 0), Val::Int(2));
        assert_eq!(read(p.at(150).unwrap(), "K-1", 0), Val::Int(3));
        assert_eq!(read(p.at(200).unwrap(), "K-1", 0), Val::Int(2));
        assert!(Packed::new("K-1", Vec::new()).is_none());
    }

    #[test]
    fn lengths_round_trip() {
        for n in [0, 1, 127, 128, 300, 16_384, usize::MAX >> 1] {
            let mut b = Vec::new();
            push_len(&mut b, n);
            assert_eq!(len_at(&b, 0), Some((n, b.len())));
        }
        assert_eq!(len_at(&[0x80], 0), None, "cut short");
    }
}
