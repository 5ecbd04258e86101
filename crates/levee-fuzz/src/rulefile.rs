//! Rule files: mutations of their YAML structure (keys dropped, doubled,
//! of the wrong type; tiers, durations, actions, event types, subjects)
//! and, above all, of the expressions in them ([`crate::expr`]); then of
//! the text itself (lines, indentation, anchors).

use serde_norway::{Mapping, Value};

use crate::expr::{self, Names};
use crate::rng::Rng;

/// The names an expression of each event type may use.
pub trait Scope {
    /// The names of `event_type` (fields, derived values, lists, constants).
    fn names(&self, event_type: &str) -> Names;
    /// Every event type's name.
    fn event_types(&self) -> Vec<String>;
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

/// A value of another YAML type than `v`.
fn wrong(rng: &mut Rng, v: &Value) -> Value {
    let candidates = [
        Value::Null,
        Value::Bool(true),
        Value::Number(7.into()),
        Value::Number((-1).into()),
        s("x"),
        Value::Sequence(vec![s("a")]),
        Value::Mapping(Mapping::new()),
    ];
    let others: Vec<&Value> = candidates
        .iter()
        .filter(|c| std::mem::discriminant(*c) != std::mem::discriminant(v))
        .collect();
    rng.pick(&others).map_or(Value::Null, |v| (*v).clone())
}

/// Durations: the first eight are valid, the others not.
const DURATIONS: [&str; 18] = [
    "30d",
    "24h",
    "1h",
    "60d",
    "1s",
    "10wd",
    "2w",
    "90m",
    "0s",
    "0d",
    "-1d",
    "0wd",
    "1.5h",
    "d",
    "",
    "1y",
    "99999999999999999999d",
    "106751991167300d",
];

/// The expressions of a control point, as mutable strings.
fn expressions(cp: &mut Mapping) -> Vec<&mut Value> {
    let mut out = Vec::new();
    for (k, v) in cp.iter_mut() {
        match k.as_str() {
            Some("when") => out.push(v),
            Some("tiers") => {
                if let Value::Sequence(tiers) = v {
                    for t in tiers.iter_mut() {
                        if let Some(w) = t.as_mapping_mut().and_then(|m| m.get_mut("when")) {
                            out.push(w);
                        }
                    }
                }
            }
            Some("aggregates") => {
                if let Value::Mapping(aggs) = v {
                    for (_, a) in aggs.iter_mut() {
                        if let Some(m) = a.as_mapping_mut() {
                            for (ak, av) in m.iter_mut() {
                                if matches!(ak.as_str(), Some("where" | "of")) {
                                    out.push(av);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Mutates one control point (a mapping of a `control_points:` list).
/// `others`: other conditions of the file, to combine with.
pub fn mutate_cp(
    rng: &mut Rng,
    cp: &mut Value,
    scope: &dyn Scope,
    others: &[String],
    break_percent: u32,
) {
    let Some(m) = cp.as_mapping_mut() else {
        *cp = wrong(rng, cp);
        return;
    };
    let event_type = m
        .get("event_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut names = scope.names(&event_type);
    if let Some(Value::Mapping(aggs)) = m.get("aggregates") {
        names
            .other
            .extend(aggs.keys().filter_map(Value::as_str).map(str::to_owned));
    }
    // Expressions get most of the attention.
    if rng.percent(60) {
        let mut exprs = expressions(m);
        let n = exprs.len();
        if n > 0 {
            // The condition itself more often than a tier or filter.
            let i = if rng.percent(50) { 0 } else { rng.below(n) };
            if let Value::String(src) = &mut exprs[i] {
                *src = expr::mutate(rng, src, &names, others, break_percent);
                return;
            }
        }
    }
    let gentle = !rng.percent(break_percent);
    let keys: Vec<Value> = m.keys().cloned().collect();
    match (gentle, rng.below(8)) {
        (true, 0) => {
            let all = names.all_names();
            if let (Some(Value::String(msg)), Some(name)) = (m.get_mut("message"), rng.pick(&all)) {
                msg.push_str(&format!(" ({name}: {{{name}}})"));
            }
        }
        (true, 1) => {
            // Durations: for, suppress, escalate_after, an aggregate's window.
            let key = *rng
                .pick(&["for", "suppress", "escalate_after"])
                .unwrap_or(&"for");
            let d = rng.pick(&DURATIONS[..8]).copied().unwrap_or("1h");
            m.insert(s(key), s(d));
        }
        (true, 2) => {
            if let Some(Value::Sequence(tiers)) = m.get_mut("tiers") {
                match rng.below(3) {
                    0 if tiers.len() > 1 => {
                        tiers.pop();
                    }
                    1 => {
                        let len = tiers.len();
                        if len > 1 {
                            tiers.swap(0, len - 1);
                        }
                    }
                    _ if tiers.len() < 3 => {
                        let mut t = Mapping::new();
                        t.insert(s("tier"), Value::Number((tiers.len() as i64 + 1).into()));
                        t.insert(
                            s("when"),
                            s(names.bools.first().map_or("true", String::as_str)),
                        );
                        tiers.push(Value::Mapping(t));
                    }
                    _ => {}
                }
            }
        }
        (true, 3) => {
            let action = if rng.percent(50) { "block" } else { "alert" };
            m.insert(s("action"), s(action));
        }
        (true, 4) => {
            if rng.percent(50) {
                m.remove("subject");
            } else {
                // Fail-closed fields: a yes/no field, or one of another type,
                // unknown, or read by no condition.
                let pool: Vec<String> = names
                    .bools
                    .iter()
                    .chain(&names.numbers)
                    .chain(&names.foreign)
                    .cloned()
                    .chain(["fz_nowhere".to_owned()])
                    .collect();
                let picked: Vec<Value> = (0..rng.below(3) + 1)
                    .filter_map(|_| rng.pick(&pool).map(|n| s(n)))
                    .collect();
                m.insert(s("fail_closed"), Value::Sequence(picked));
            }
        }
        (true, 5) => {
            if let Some(Value::Mapping(aggs)) = m.get_mut("aggregates") {
                if let Some((_, a)) = aggs.iter_mut().next() {
                    if let Some(a) = a.as_mapping_mut() {
                        let f = if a.contains_key("of") {
                            *rng.pick(&["sum", "min", "max", "avg", "distinct"])
                                .unwrap_or(&"sum")
                        } else {
                            "count"
                        };
                        a.insert(s("fn"), s(f));
                        let over = rng.pick(&DURATIONS[..8]).copied().unwrap_or("1h");
                        a.insert(s("over"), s(over));
                    }
                }
            }
        }
        (true, _) => {
            // Tags, titles, descriptions: text that only needs to be text.
            let key = *rng
                .pick(&["title", "title_zh", "description", "domain"])
                .unwrap_or(&"title");
            let text = *rng
                .pick(&["", "é中文🚗", "x\ny", "{}", "&anchor", "*alias", "'"])
                .unwrap_or(&"");
            m.insert(s(key), s(text));
        }
        (false, 0) => {
            if let Some(k) = rng.pick(&keys) {
                m.remove(k);
            }
        }
        (false, 1) => {
            if let Some(k) = rng.pick(&keys) {
                let v = m.get(k).cloned().unwrap_or(Value::Null);
                m.insert(k.clone(), wrong(rng, &v));
            }
        }
        (false, 2) => {
            if rng.percent(50) {
                if let Some(Value::String(msg)) = m.get_mut("message") {
                    *msg = expr::mutate_message(rng, msg, &names);
                }
            } else {
                m.insert(s(&format!("unknown_{}", rng.below(3))), s("x"));
            }
        }
        (false, 3) => {
            let d = rng.pick(&DURATIONS[8..]).copied().unwrap_or("");
            let key = *rng
                .pick(&["for", "suppress", "escalate_after"])
                .unwrap_or(&"for");
            m.insert(s(key), s(d));
        }
        (false, 4) => {
            if let Some(Value::Sequence(tiers)) = m.get_mut("tiers") {
                let tier = *rng.pick(&[0i64, 4, -1, 1, 3, i64::MAX]).unwrap_or(&0);
                if let Some(t) = tiers.first_mut().and_then(Value::as_mapping_mut) {
                    t.insert(s("tier"), Value::Number(tier.into()));
                    if rng.percent(50) {
                        t.remove("notify");
                    }
                } else {
                    tiers.clear();
                }
            }
        }
        (false, 5) => {
            let types = scope.event_types();
            let t = rng
                .pick(&types)
                .cloned()
                .unwrap_or_else(|| "teleport".to_owned());
            m.insert(s("event_type"), s(&t));
        }
        (false, 6) => {
            let id = *rng
                .pick(&["", " ", "VF-001", "é", "a\"b", "x:y"])
                .unwrap_or(&"");
            m.insert(s("id"), s(id));
        }
        (false, _) => {
            let subject = match rng.below(2) {
                0 => rng.pick(&names.strings).cloned().unwrap_or_default(),
                _ => (*rng
                    .pick(&["nosuch", "", "occurred_at", "branch"])
                    .unwrap_or(&""))
                .to_owned(),
            };
            m.insert(s("subject"), s(&subject));
        }
    }
}

/// Mutates a schema file's event type: its derived values (expressions)
/// most often, else its fields.
pub fn mutate_schema(
    rng: &mut Rng,
    et_name: &str,
    et: &mut Value,
    scope: &dyn Scope,
    break_percent: u32,
) {
    let Some(m) = et.as_mapping_mut() else {
        return;
    };
    let names = scope.names(et_name);
    match rng.below(6) {
        0..=2 => {
            if let Some(Value::Mapping(derived)) = m.get_mut("derived") {
                let n = derived.len();
                if let Some((_, Value::String(src))) = derived.iter_mut().nth(rng.below(n)) {
                    *src = expr::mutate(rng, src, &names, &[], break_percent);
                }
            }
        }
        3 => {
            if let Some(Value::Mapping(fields)) = m.get_mut("fields") {
                let n = fields.len();
                if let Some((_, f)) = fields.iter_mut().nth(rng.below(n)) {
                    if let Some(f) = f.as_mapping_mut() {
                        match rng.below(4) {
                            3 => {
                                // Plausible readings: bounds in any order,
                                // a condition over the type's names.
                                let mut p = Mapping::new();
                                let bound = |rng: &mut Rng| -> Value {
                                    let v = *rng
                                        .pick(&[0.0, -1.0, 3.5, 1e300, f64::NAN, f64::INFINITY])
                                        .unwrap_or(&0.0);
                                    Value::Number(v.into())
                                };
                                if rng.percent(60) {
                                    p.insert(s("min"), bound(rng));
                                }
                                if rng.percent(60) {
                                    p.insert(s("max"), bound(rng));
                                }
                                if rng.percent(60) {
                                    let seed = names.bools.first().map_or("true", String::as_str);
                                    let h = expr::mutate(rng, seed, &names, &[], break_percent);
                                    p.insert(s("holds"), s(&h));
                                }
                                f.insert(s("plausible"), Value::Mapping(p));
                                if rng.percent(50) {
                                    m.remove("data_owner");
                                }
                            }
                            0 => {
                                let t = *rng
                                    .pick(&[
                                        "number",
                                        "integer",
                                        "string",
                                        "boolean",
                                        "timestamp",
                                        "float",
                                    ])
                                    .unwrap_or(&"string");
                                f.insert(s("type"), s(t));
                            }
                            1 => {
                                f.insert(s("required"), Value::Bool(rng.percent(50)));
                            }
                            _ => {
                                f.remove("type");
                            }
                        }
                    }
                }
            }
        }
        4 => {
            if let Some(Value::Mapping(derived)) = m.get_mut("derived") {
                // A cycle, a self reference, a name that shadows a field.
                let field = names
                    .numbers
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "x".to_owned());
                match rng.below(3) {
                    0 => {
                        derived.insert(s("fz_a"), s("fz_b + 1"));
                        derived.insert(s("fz_b"), s("fz_a * 2"));
                    }
                    1 => {
                        derived.insert(s("fz_self"), s("fz_self"));
                    }
                    _ => {
                        derived.insert(s(&field), s("1"));
                    }
                }
            }
        }
        _ => {
            let key = *rng
                .pick(&["subject", "stream", "fields", "derived"])
                .unwrap_or(&"subject");
            let v = m.get(key).cloned().unwrap_or(Value::Null);
            m.insert(s(key), wrong(rng, &v));
        }
    }
}

/// Mutates a list or calendar file.
pub fn mutate_other(rng: &mut Rng, file: &mut Value) {
    let Some(m) = file.as_mapping_mut() else {
        return;
    };
    if let Some(Value::Mapping(lists)) = m.get_mut("lists") {
        let n = lists.len();
        if let Some((_, items)) = lists.iter_mut().nth(rng.below(n)) {
            match rng.below(4) {
                0 => *items = Value::Sequence(Vec::new()),
                1 => {
                    if let Value::Sequence(v) = items {
                        v.push(Value::Number(1.5.into()));
                        v.push(Value::Number(7.into()));
                    }
                }
                2 => *items = wrong(rng, items),
                _ => {
                    if let Value::Sequence(v) = items {
                        v.push(Value::Sequence(vec![s("nested")]));
                    }
                }
            }
        }
        return;
    }
    if let Some(Value::Mapping(cal)) = m.get_mut("calendar") {
        match rng.below(4) {
            0 => {
                let z = *rng
                    .pick(&[
                        "UTC",
                        "Mars/Phobos",
                        "",
                        "+08:00",
                        "Asia/Kolkata",
                        "America/St_Johns",
                    ])
                    .unwrap_or(&"UTC");
                cal.insert(s("time_zone"), s(z));
            }
            1 => {
                let y = *rng.pick(&[0i64, -1, 2027, 1_000_000, 2025]).unwrap_or(&0);
                cal.insert(s("year"), Value::Number(y.into()));
            }
            2 => {
                if let Some(Value::Sequence(h)) = cal.get_mut("holidays") {
                    if let Some(first) = h.first_mut().and_then(Value::as_mapping_mut) {
                        let off = *rng
                            .pick(&[
                                "2026-02-30",
                                "2026-10-07..2026-10-01",
                                "2026-01-01..2027-12-31",
                                "10000-01-01",
                                "x",
                                "2025-12-31",
                            ])
                            .unwrap_or(&"x");
                        first.insert(s("off"), s(off));
                    }
                }
            }
            _ => {
                if let Some(Value::Sequence(h)) = cal.get_mut("holidays") {
                    if let Some(first) = h.first_mut().and_then(Value::as_mapping_mut) {
                        first.insert(
                            s("work"),
                            Value::Sequence(vec![
                                s("2026-01-05"),
                                s("2026-02-14"),
                                s("not a date"),
                            ]),
                        );
                    }
                }
            }
        }
    }
}

/// Damage to a rule file's text: lines dropped, doubled, swapped,
/// re-indented; tabs, anchors and aliases, bytes.
pub fn damage_text(rng: &mut Rng, text: &mut String) {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines.len();
    match rng.below(9) {
        0 if n > 0 => {
            lines.remove(rng.below(n));
        }
        1 if n > 0 => {
            let i = rng.below(n);
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        2 if n > 1 => lines.swap(rng.below(n), rng.below(n)),
        3 if n > 0 => {
            let i = rng.below(n);
            lines[i] = if rng.percent(50) {
                format!("  {}", lines[i])
            } else {
                lines[i].trim_start().to_owned()
            };
        }
        4 if n > 0 => {
            let i = rng.below(n);
            lines[i] = format!("\t{}", lines[i]);
        }
        5 => {
            // An alias bomb: each level doubles the one below.
            let levels = rng.range(4, 30);
            if rng.percent(50) {
                let mut bomb = vec!["x_bomb:".to_owned(), "  - &a0 [lol, lol]".to_owned()];
                for l in 1..levels {
                    bomb.push(format!("  - &a{l} [*a{}, *a{}]", l - 1, l - 1));
                }
                lines.extend(bomb);
            } else {
                // One list member holding every level: an untagged
                // member is buffered whole before its type is known.
                let mut item = "&a0 [lol, lol]".to_owned();
                for l in 1..levels {
                    item.push_str(&format!(", &a{l} [*a{}, *a{}]", l - 1, l - 1));
                }
                lines.push("lists:".to_owned());
                lines.push("  fz_bomb:".to_owned());
                lines.push(format!("    - [{item}]"));
            }
        }
        6 if n > 0 => {
            let i = rng.below(n);
            lines.insert(i, "<<: *nosuch".to_owned());
        }
        7 if n > 0 => {
            let i = rng.below(n);
            let mut bytes = lines[i].clone().into_bytes();
            if !bytes.is_empty() {
                let j = rng.below(bytes.len());
                bytes[j] = *rng.pick(b":-{}[]&*!|>'\"#%@`").unwrap_or(&b':');
            }
            lines[i] = String::from_utf8_lossy(&bytes).into_owned();
        }
        _ => {
            let keep = rng.below(text.len() + 1);
            expr::truncate(text, keep);
            return;
        }
    }
    *text = lines.join("\n");
    text.push('\n');
}
