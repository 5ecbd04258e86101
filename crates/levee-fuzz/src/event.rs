//! Events: what the catalog says they look like ([`Knowledge`]), a
//! generator of well-formed events of any type, and mutations, most of
//! which keep an event decodable (another value of the field's type, a
//! threshold, an odd but valid timestamp) and some of which are built to
//! hurt (wrong types, huge numbers, lone surrogates, duplicate keys, deep
//! nesting, NaN).

use std::collections::HashMap;

use levee_rules::graph::Const;
use levee_rules::model::FieldType;
use levee_rules::RuleGraph;

use crate::corpus::Corpus;
use crate::expr::{self, Kind};
use crate::json::{escape, Layout, J};
use crate::rng::Rng;

/// A field of an event type (the common ones left out).
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    pub required: bool,
}

/// An event type as the decoder checks it.
#[derive(Debug, Clone)]
pub struct Type {
    pub name: String,
    pub subject: String,
    pub fields: Vec<Field>,
}

/// What the fuzzer knows of the catalog: its event types, the values the
/// seeds give each field, and the constants its expressions compare with.
#[derive(Debug, Clone, Default)]
pub struct Knowledge {
    pub types: Vec<Type>,
    index: HashMap<String, usize>,
    /// Values seen per field name in the seed events.
    values: HashMap<String, Vec<J>>,
    /// String constants of the rules (list members, literals).
    pub strings: Vec<String>,
    /// Number constants of the rules (thresholds).
    pub numbers: Vec<String>,
    /// Seed events that are JSON objects, by event type (index into
    /// `types`; unknown types at `types.len()`).
    pub seeds: Vec<Vec<J>>,
    /// Seed messages that are not objects (or not JSON), as bytes.
    pub raw: Vec<Vec<u8>>,
}

impl Knowledge {
    pub fn new(graph: &RuleGraph, corpus: &Corpus) -> Knowledge {
        let mut k = Knowledge::default();
        // Events name their type, never a re-keyed copy of it.
        for et in graph.event_types.iter().filter(|t| t.rekeyed.is_none()) {
            let fields = et
                .fields
                .iter()
                .filter(|f| !f.common)
                .map(|f| Field {
                    name: f.name.clone(),
                    ty: f.ty,
                    required: f.required,
                })
                .collect();
            let subject = et
                .fields
                .get(et.subject as usize)
                .map(|f| f.name.clone())
                .unwrap_or_default();
            k.index.insert(et.name.clone(), k.types.len());
            k.types.push(Type {
                name: et.name.clone(),
                subject,
                fields,
            });
        }
        k.seeds = vec![Vec::new(); k.types.len() + 1];
        for bytes in corpus.events.iter().chain(&corpus.hostile) {
            match J::parse(bytes) {
                Some(j @ J::Obj(_)) => {
                    for (key, v) in j.entries() {
                        let vals = k.values.entry(key.clone()).or_default();
                        if vals.len() < 64 && !vals.contains(v) {
                            vals.push(v.clone());
                        }
                    }
                    let ti = j
                        .get("type")
                        .and_then(J::as_str)
                        .and_then(|t| k.index.get(&t).copied())
                        .unwrap_or(k.types.len());
                    k.seeds[ti].push(j);
                }
                _ => k.raw.push(bytes.clone()),
            }
        }
        for list in &graph.lists {
            for item in &list.items {
                match item {
                    Const::Str(s) => k.strings.push(s.to_string()),
                    Const::Int(i) => k.numbers.push(i.to_string()),
                    Const::Float(f) => k.numbers.push(format!("{f:?}")),
                    Const::Bool(_) => {}
                }
            }
        }
        for (_, text) in &corpus.rules {
            for line in text.lines() {
                let Some((_, rhs)) = line.split_once(": ") else {
                    continue;
                };
                for t in expr::tokenize(rhs) {
                    match t.kind {
                        Kind::Num if k.numbers.len() < 4096 => k.numbers.push(t.text),
                        Kind::Str if k.strings.len() < 4096 => {
                            k.strings.push(t.text.trim_matches('"').to_owned());
                        }
                        _ => {}
                    }
                }
            }
        }
        for v in [&mut k.numbers, &mut k.strings] {
            v.sort();
            v.dedup();
        }
        k
    }

    pub fn type_of(&self, name: &str) -> Option<&Type> {
        self.index.get(name).map(|&i| &self.types[i])
    }

    /// A seed event of type `ti`, or a generated one if there is none.
    pub fn seed_of(&self, rng: &mut Rng, ti: usize) -> J {
        match self.seeds.get(ti).and_then(|s| rng.pick(s)) {
            Some(j) if rng.percent(75) => j.clone(),
            _ => self.generate(rng, ti),
        }
    }

    /// A well-formed event of any type.
    pub fn generate_any(&self, rng: &mut Rng) -> J {
        let ti = rng.below(self.types.len());
        self.generate(rng, ti)
    }

    /// A well-formed event of type `ti`: the common fields, every
    /// required field, about half of the optional ones.
    pub fn generate(&self, rng: &mut Rng, ti: usize) -> J {
        let Some(t) = self.types.get(ti) else {
            return J::Obj(Vec::new());
        };
        let mut e = vec![
            ("event_id".to_owned(), self.string_for(rng, "event_id")),
            ("type".to_owned(), J::str(&t.name)),
            ("occurred_at".to_owned(), J::str(&timestamp(rng))),
            ("branch".to_owned(), self.string_for(rng, "branch")),
        ];
        for f in &t.fields {
            if f.required || rng.percent(50) {
                e.push((escape(&f.name), self.value(rng, &f.name, f.ty)));
            }
        }
        J::Obj(e)
    }

    /// A value the field accepts: one the seeds gave it, a threshold of
    /// the rules, or an edge of its type.
    pub fn value(&self, rng: &mut Rng, name: &str, ty: FieldType) -> J {
        if let Some(v) = self.values.get(name).and_then(|v| rng.pick(v)) {
            if rng.percent(40) && !matches!(v, J::Null) {
                return v.clone();
            }
        }
        match ty {
            FieldType::Number => J::num(self.number(rng, false)),
            FieldType::Integer => J::num(self.number(rng, true)),
            FieldType::Boolean => J::Bool(rng.percent(50)),
            FieldType::Timestamp => J::str(&timestamp(rng)),
            FieldType::String => self.string_for(rng, name),
        }
    }

    fn number(&self, rng: &mut Rng, integer: bool) -> String {
        // The first five fit an integer field (whole, within 64 bits).
        const EDGES: [&str; 12] = [
            "0",
            "9007199254740993",
            "9223372036854775807",
            "-9223372036854775808",
            "1e3",
            "-0",
            "-1",
            "100",
            "1e308",
            "-1e308",
            "1000000000",
            "1",
        ];
        const FLOATS: [&str; 7] = [
            "0.5",
            "-0.0",
            "0.30000000000000004",
            "5e-324",
            "1.7976931348623157e308",
            "2.2250738585072014e-308",
            "79999.99",
        ];
        match rng.below(10) {
            0..=4 => {
                let n = rng.pick(&self.numbers).map_or("10", String::as_str);
                let x: f64 = n.parse().unwrap_or(10.0);
                let y = match rng.below(4) {
                    0 => x,
                    1 => x + 1.0,
                    2 => x * 2.0,
                    _ => x - 1.0,
                };
                if integer || y.fract() == 0.0 {
                    format!("{}", y.round() as i64)
                } else {
                    format!("{y}")
                }
            }
            5..=7 => rng.range(0, 5000).to_string(),
            8 | 9 if integer => rng.pick(&EDGES[..5]).copied().unwrap_or("0").to_owned(),
            8 => rng.pick(&EDGES).copied().unwrap_or("0").to_owned(),
            _ => rng.pick(&FLOATS).copied().unwrap_or("0.5").to_owned(),
        }
    }

    fn string_for(&self, rng: &mut Rng, name: &str) -> J {
        if let Some(v) = self.values.get(name).and_then(|v| rng.pick(v)) {
            if rng.percent(60) && matches!(v, J::Str(_)) {
                return v.clone();
            }
        }
        match rng.below(10) {
            0..=3 => J::str(rng.pick(&self.strings).map_or("x", String::as_str)),
            4..=6 => J::str(&format!("{}-{}", &name[..name.len().min(2)], rng.below(50))),
            7 => J::str(["", " ", "é", "武汉", "🚗", "a\"b", "a\\b", "\u{0}"][rng.below(8)]),
            8 => J::Str(
                ["\\u00e9", "\\n\\t", "\\ud83d\\ude97", "\\/", "\\u0000"][rng.below(5)].to_owned(),
            ),
            _ => {
                let n = if rng.percent(5) {
                    70_000
                } else {
                    *rng.pick(&[64usize, 1024]).unwrap_or(&64)
                };
                J::str(&"x".repeat(n))
            }
        }
    }
}

/// An RFC 3339 timestamp, mostly in the catalog's years, with odd offsets
/// and fractions; sometimes one the decoder must refuse.
pub fn timestamp(rng: &mut Rng) -> String {
    const OFFSETS: [&str; 10] = [
        "+08:00", "Z", "z", "+00:00", "-00:00", "+14:00", "-12:00", "+05:45", "+23:59", "-09:30",
    ];
    const ODD: [&str; 10] = [
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59+14:00",
        "2026-12-31T23:59:60Z",
        "2026-02-29T10:00:00+08:00",
        "2026-11-02 09:15:00+08:00",
        "2026-11-02T09:15:00",
        "2026-11-02",
        "2026-13-01T00:00:00Z",
        "1970-01-01T00:00:00.000000001Z",
        "2026-11-02T09:15:00+24:00",
    ];
    if rng.percent(4) {
        return rng.pick(&ODD).copied().unwrap_or("").to_owned();
    }
    let year = if rng.percent(90) {
        rng.range(2025, 2026)
    } else {
        rng.range(1970, 2100)
    };
    let frac = match rng.below(8) {
        0 => ".5".to_owned(),
        1 => format!(".{:09}", rng.below(1_000_000_000)),
        _ => String::new(),
    };
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{}",
        rng.range(1, 12),
        rng.range(1, 28),
        rng.range(0, 23),
        rng.range(0, 59),
        rng.range(0, 59),
        rng.pick(&OFFSETS).copied().unwrap_or("Z")
    )
}

/// Mutations of an event, by weight: the first ones keep it decodable.
const WEIGHTS: [u32; 19] = [
    44, // 0 set a field of its type to a value it accepts
    8,  // 1 drop an optional field
    4,  // 2 null an optional field
    8,  // 3 another timestamp
    5,  // 4 an unknown extra field
    4,  // 5 keys in another order
    6,  // 6 subject, id, branch: long, empty, unicode
    3,  // 7 another type, its required fields filled
    6,  // 8 a value of the wrong type
    5,  // 9 a number beyond its field
    2,  // 10 NaN, Infinity
    4,  // 11 a bad unicode escape
    4,  // 12 a key given twice
    3,  // 13 deep nesting
    4,  // 14 a key renamed
    3,  // 15 a required field dropped
    2,  // 16 `type` broken
    1,  // 17 not an object
    2,  // 18 a bare type swap
];

/// Applies one mutation to an event (usually an object).
pub fn mutate(k: &Knowledge, rng: &mut Rng, e: &mut J) {
    if !matches!(e, J::Obj(_)) {
        *e = J::Arr(vec![std::mem::replace(e, J::Null)]);
        return;
    }
    let tname = e.get("type").and_then(J::as_str).unwrap_or_default();
    let ty = k.type_of(&tname);
    let op = rng.weighted(&WEIGHTS);
    let keys: Vec<String> = e.entries().iter().map(|(k, _)| k.clone()).collect();
    let field = ty.and_then(|t| rng.pick(&t.fields));
    match op {
        0 => match field {
            Some(f) => e.set(&escape(&f.name), k.value(rng, &f.name, f.ty)),
            None => e.set("x", J::num("1")),
        },
        1 | 2 => {
            let optional: Vec<&Field> = ty
                .map(|t| t.fields.iter().filter(|f| !f.required).collect())
                .unwrap_or_default();
            if let Some(f) = rng.pick(&optional) {
                if op == 1 {
                    remove(e, &escape(&f.name));
                } else {
                    e.set(&escape(&f.name), J::Null);
                }
            }
        }
        3 => {
            let times: Vec<&Field> = ty
                .map(|t| {
                    t.fields
                        .iter()
                        .filter(|f| f.ty == FieldType::Timestamp)
                        .collect()
                })
                .unwrap_or_default();
            let key = match rng.pick(&times) {
                Some(f) if rng.percent(40) => escape(&f.name),
                _ => "occurred_at".to_owned(),
            };
            e.set(&key, J::str(&timestamp(rng)));
        }
        4 => {
            let v = extra_value(rng, 3);
            e.set(&format!("x_{}", rng.below(20)), v);
        }
        5 => {
            if let Some(entries) = e.entries_mut() {
                let n = entries.len();
                for i in (1..n).rev() {
                    entries.swap(i, rng.below(i + 1));
                }
            }
        }
        6 => {
            let subject = ty.map_or("event_id", |t| t.subject.as_str());
            let key = *rng
                .pick(&[subject, "event_id", "branch"])
                .unwrap_or(&"branch");
            let v = k.string_for(rng, "");
            e.set(&escape(key), v);
        }
        7 | 18 => {
            let ti = rng.below(k.types.len());
            if let Some(t) = k.types.get(ti) {
                e.set("type", J::str(&t.name));
                if op == 7 {
                    for f in t.fields.iter().filter(|f| f.required) {
                        e.set(&escape(&f.name), k.value(rng, &f.name, f.ty));
                    }
                }
            }
        }
        8 => {
            if let Some(key) = rng.pick(&keys) {
                let v = wrong_value(rng, e.get(key));
                e.set(key, v);
            }
        }
        9 | 10 => {
            let nums: Vec<&Field> = ty
                .map(|t| {
                    t.fields
                        .iter()
                        .filter(|f| matches!(f.ty, FieldType::Number | FieldType::Integer))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(f) = rng.pick(&nums) {
                const BIG: [&str; 10] = [
                    "1e999",
                    "-1e400",
                    "9223372036854775808",
                    "-9223372036854775809",
                    "18446744073709551616",
                    "1.5",
                    "9e15",
                    "1E+2",
                    "01",
                    "-",
                ];
                const NONFINITE: [&str; 4] = ["NaN", "Infinity", "-Infinity", "nan"];
                let token = if op == 9 {
                    rng.pick(&BIG)
                } else {
                    rng.pick(&NONFINITE)
                };
                e.set(
                    &escape(&f.name),
                    J::Raw((*token.unwrap_or(&"1e999")).to_owned()),
                );
            }
        }
        11 => {
            let strings: Vec<String> = e
                .entries()
                .iter()
                .filter(|(_, v)| matches!(v, J::Str(_)))
                .map(|(k, _)| k.clone())
                .collect();
            if let Some(key) = rng.pick(&strings) {
                const BAD: [&str; 8] = [
                    "\\ud800",
                    "\\udfff",
                    "\\ud800\\ud800",
                    "\\udc00\\ud800",
                    "\\uDBFF",
                    "\\u12",
                    "\\x41",
                    "\\ud83d\\u0041",
                ];
                let bad = rng.pick(&BAD).copied().unwrap_or("\\ud800");
                if let Some(J::Str(s)) = e.get(key) {
                    let at = if rng.percent(50) { 0 } else { s.len() };
                    let mut s = s.clone();
                    s.insert_str(at, bad);
                    e.set(key, J::Str(s));
                }
            }
        }
        12 => {
            if let Some(i) = (!keys.is_empty()).then(|| rng.below(keys.len())) {
                if let Some(entries) = e.entries_mut() {
                    let (key, v) = entries[i].clone();
                    let v = if rng.percent(50) {
                        v
                    } else {
                        wrong_value(rng, Some(&v))
                    };
                    let at = rng.below(entries.len() + 1);
                    entries.insert(at, (key, v));
                }
            }
        }
        13 => {
            if let Some(key) = rng.pick(&keys) {
                let depth = *rng
                    .pick(&[2usize, 20, 31, 32, 33, 127, 128, 129, 300])
                    .unwrap_or(&2);
                let mut v = e.get(key).cloned().unwrap_or(J::Null);
                for d in 0..depth {
                    v = if d % 2 == 0 {
                        J::Arr(vec![v])
                    } else {
                        J::Obj(vec![("a".into(), v)])
                    };
                }
                e.set(key, v);
            }
        }
        14 => {
            if let (Some(i), Some(entries)) = (
                (!keys.is_empty()).then(|| rng.below(keys.len())),
                e.entries_mut(),
            ) {
                let name = &mut entries[i].0;
                *name = match rng.below(4) {
                    0 => field.map_or_else(|| "x".to_owned(), |f| escape(&f.name)),
                    1 => name.to_uppercase(),
                    2 => format!("{name} "),
                    _ => format!("{name}\\u0000"),
                };
            }
        }
        15 => {
            let mut required: Vec<String> = ["event_id", "occurred_at", "branch", "type"]
                .map(str::to_owned)
                .to_vec();
            if let Some(t) = ty {
                required.extend(
                    t.fields
                        .iter()
                        .filter(|f| f.required)
                        .map(|f| escape(&f.name)),
                );
            }
            if let Some(key) = rng.pick(&required) {
                remove(e, key);
            }
        }
        16 => {
            let v = match rng.below(5) {
                0 => J::str("teleport"),
                1 => J::num("7"),
                2 => J::Null,
                3 => J::str(&tname.to_uppercase()),
                _ => J::Arr(vec![J::str(&tname)]),
            };
            e.set("type", v);
        }
        _ => {
            *e = match rng.below(3) {
                0 => J::Arr(vec![e.clone()]),
                1 => J::Str(escape(&String::from_utf8_lossy(&e.to_bytes()))),
                _ => J::num("42"),
            };
        }
    }
}

fn remove(e: &mut J, key: &str) {
    if let Some(entries) = e.entries_mut() {
        entries.retain(|(k, _)| k != key);
    }
}

/// A value of another JSON type than `v`.
fn wrong_value(rng: &mut Rng, v: Option<&J>) -> J {
    loop {
        let w = match rng.below(6) {
            0 => J::str("100"),
            1 => J::num("1"),
            2 => J::Bool(true),
            3 => J::Null,
            4 => J::Arr(vec![J::num("1")]),
            _ => J::Obj(vec![("a".into(), J::num("1"))]),
        };
        if std::mem::discriminant(&w)
            != v.map_or(
                std::mem::discriminant(&J::Raw(String::new())),
                std::mem::discriminant,
            )
        {
            return w;
        }
    }
}

/// Some value for a field the schema does not know (bounded in size).
fn extra_value(rng: &mut Rng, depth: usize) -> J {
    match rng.below(if depth == 0 { 4 } else { 6 }) {
        0 => J::num(rng.below(1000).to_string()),
        1 => J::str("extra"),
        2 => J::Bool(false),
        3 => J::Null,
        4 => J::Arr(
            (0..rng.below(4))
                .map(|_| extra_value(rng, depth - 1))
                .collect(),
        ),
        _ => J::Obj(
            (0..rng.below(4))
                .map(|i| (format!("k{i}"), extra_value(rng, depth - 1)))
                .collect(),
        ),
    }
}

/// Byte-level damage to a printed message: flips, inserts, cuts, splices.
pub fn damage(rng: &mut Rng, bytes: &mut Vec<u8>, other: &[u8]) {
    const TOKENS: [&[u8]; 12] = [
        b"\"",
        b"\\",
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\\u",
        b"\xff",
        b"\0",
        b"\xef\xbb\xbf",
    ];
    let len = bytes.len();
    match rng.below(7) {
        0 if len > 0 => {
            let i = rng.below(len);
            bytes[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            bytes[i] = rng.below(256) as u8;
        }
        2 => {
            let t = rng.pick(&TOKENS).copied().unwrap_or(b"\"");
            let at = rng.below(len + 1);
            bytes.splice(at..at, t.iter().copied());
        }
        3 if len > 0 => {
            let i = rng.below(len);
            let n = rng.range(1, 16).min(len - i);
            bytes.drain(i..i + n);
        }
        4 if len > 0 => {
            let i = rng.below(len);
            let n = rng.range(1, 32).min(len - i);
            let piece = bytes[i..i + n].to_vec();
            let at = rng.below(len + 1);
            bytes.splice(at..at, piece);
        }
        5 if !other.is_empty() => {
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            bytes.truncate(cut);
            bytes.extend_from_slice(&other[from..]);
        }
        _ => bytes.truncate(rng.below(len + 1)),
    }
}

/// The layout of a printed event: mostly compact, as producers send it.
pub fn layout(rng: &mut Rng) -> Layout {
    match rng.below(20) {
        0 => Layout::Pretty,
        1 | 2 => Layout::Spaced,
        _ => Layout::Compact,
    }
}
