//! Expressions (evalexpr syntax, as `when:`, tier `when:`, derived values
//! and aggregate `where:` / `of:` write them): a tokenizer, and mutations
//! that mostly keep an expression meaningful (another operator of the same
//! kind, another field of the same type, another threshold) and sometimes
//! break it on purpose (unknown names, unbalanced parentheses, wrong
//! arity, huge constants, assignments).

use crate::rng::Rng;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ident,
    Num,
    Str,
    Op,
    Open,
    Close,
    Comma,
    Space,
    Other,
}

/// One token, with its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tok {
    pub kind: Kind,
    pub text: String,
}

impl Tok {
    fn new(kind: Kind, text: impl Into<String>) -> Tok {
        Tok {
            kind,
            text: text.into(),
        }
    }
}

const OPS2: [&str; 11] = [
    "==", "!=", "<=", ">=", "&&", "||", "+=", "-=", "*=", "/=", "^=",
];

/// Splits an expression into tokens; joining their texts gives it back.
pub fn tokenize(src: &str) -> Vec<Tok> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = if c.is_whitespace() {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            Kind::Space
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || ((chars[i] == '-' || chars[i] == '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            Kind::Num
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || chars[i] == '_'
                    || (chars[i] == ':' && chars.get(i + 1) == Some(&':'))
                    || (chars[i] == ':' && i > 0 && chars[i - 1] == ':'))
            {
                i += 1;
            }
            Kind::Ident
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            Kind::Str
        } else if c == '(' {
            i += 1;
            Kind::Open
        } else if c == ')' {
            i += 1;
            Kind::Close
        } else if c == ',' {
            i += 1;
            Kind::Comma
        } else if "+-*/%^<>=!&|;".contains(c) {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            i += if OPS2.contains(&two.as_str()) { 2 } else { 1 };
            Kind::Op
        } else {
            i += 1;
            Kind::Other
        };
        out.push(Tok::new(kind, chars[start..i].iter().collect::<String>()));
    }
    out
}

pub fn join(toks: &[Tok]) -> String {
    toks.iter().map(|t| t.text.as_str()).collect()
}

/// Names an expression may use, by type (from the event type's schema),
/// and the constants the catalog compares with.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub numbers: Vec<String>,
    pub strings: Vec<String>,
    pub bools: Vec<String>,
    pub times: Vec<String>,
    /// Derived values and aggregates (type unknown here).
    pub other: Vec<String>,
    pub lists: Vec<String>,
    /// Names of other event types' fields (valid elsewhere, unknown here).
    pub foreign: Vec<String>,
    pub number_literals: Vec<String>,
    pub string_literals: Vec<String>,
}

impl Names {
    /// The names of the same type as `name` (all known names if unknown).
    fn same_type(&self, name: &str) -> Vec<&String> {
        for group in [&self.numbers, &self.strings, &self.bools, &self.times] {
            if group.iter().any(|n| n == name) {
                return group.iter().collect();
            }
        }
        self.all()
    }

    /// Every name an expression of the type may read.
    pub fn all_names(&self) -> Vec<String> {
        self.all().into_iter().cloned().collect()
    }

    fn all(&self) -> Vec<&String> {
        self.numbers
            .iter()
            .chain(&self.strings)
            .chain(&self.bools)
            .chain(&self.times)
            .chain(&self.other)
            .collect()
    }
}

pub const FUNCTIONS: [&str; 16] = [
    "min",
    "max",
    "floor",
    "round",
    "ceil",
    "math::abs",
    "math::sqrt",
    "math::ln",
    "math::pow",
    "if",
    "contains",
    "len",
    "str::to_lowercase",
    "str::to_uppercase",
    "str::trim",
    "str::substring",
];

const INTERESTING_NUMBERS: [&str; 22] = [
    "0",
    "0.0",
    "-0.0",
    "1",
    "-1",
    "0.1",
    "2.5",
    "1e308",
    "1.7976931348623157e308",
    "5e-324",
    "1e999",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999",
    "9007199254740993",
    "0.30000000000000004",
    "1e-7",
    "4294967296",
    ".5",
    "1e",
];

const CMP: [&str; 6] = ["<", "<=", ">", ">=", "==", "!="];
const ARITH: [&str; 6] = ["+", "-", "*", "/", "%", "^"];
const LOGIC: [&str; 2] = ["&&", "||"];
const STRANGE: [&str; 16] = [
    "=", ";", "+=", "?", ".", "!", "()", "(,)", "true", "false", "\"\"", "\"\\\"", "é", "∞", "#",
    "$x",
];

/// Index of a random token of `kind`, if any.
fn any_of(rng: &mut Rng, toks: &[Tok], pred: impl Fn(&Tok) -> bool) -> Option<usize> {
    let idx: Vec<usize> = (0..toks.len()).filter(|&i| pred(&toks[i])).collect();
    rng.pick(&idx).copied()
}

fn pick_str<'a>(rng: &mut Rng, items: &'a [String], or: &'a str) -> &'a str {
    rng.pick(items).map_or(or, String::as_str)
}

/// Keeps an expression from growing without bound (the compiler is fed
/// it whole).
const MAX_LEN: usize = 16 * 1024;

/// Mutates an expression: mostly a change that keeps it meaningful,
/// sometimes (`break_percent` in 100) one that is likely to break it.
pub fn mutate(
    rng: &mut Rng,
    src: &str,
    names: &Names,
    others: &[String],
    break_percent: u32,
) -> String {
    let mut toks = tokenize(src);
    let gentle = !rng.percent(break_percent);
    if gentle {
        gentle_mutation(rng, &mut toks, names, others);
    } else {
        breaking_mutation(rng, &mut toks, names);
    }
    let mut out = join(&toks);
    truncate(&mut out, MAX_LEN);
    out
}

fn gentle_mutation(rng: &mut Rng, toks: &mut Vec<Tok>, names: &Names, others: &[String]) {
    let is = |set: &'static [&'static str]| {
        move |t: &Tok| t.kind == Kind::Op && set.contains(&t.text.as_str())
    };
    for _ in 0..4 {
        match rng.below(9) {
            0 => {
                if let Some(i) = any_of(rng, toks, is(&CMP)) {
                    toks[i].text = pick_static(rng, &CMP).to_owned();
                    return;
                }
            }
            1 => {
                if let Some(i) = any_of(rng, toks, is(&ARITH[..4])) {
                    toks[i].text = pick_static(rng, &ARITH[..4]).to_owned();
                    return;
                }
            }
            2 => {
                if let Some(i) = any_of(rng, toks, is(&LOGIC)) {
                    toks[i].text = pick_static(rng, &LOGIC).to_owned();
                    return;
                }
            }
            3 | 4 => {
                if let Some(i) = any_of(rng, toks, |t| t.kind == Kind::Num) {
                    toks[i].text = if rng.percent(60) {
                        let n = pick_str(rng, &names.number_literals, "1").to_owned();
                        nudge(rng, &n)
                    } else {
                        pick_static(rng, &INTERESTING_NUMBERS[..10]).to_owned()
                    };
                    return;
                }
            }
            5 => {
                let idx = any_of(rng, toks, |t| t.kind == Kind::Ident && !is_keyword(&t.text));
                if let Some(i) = idx {
                    let same = names.same_type(&toks[i].text);
                    if let Some(n) = rng.pick(&same) {
                        toks[i].text = (*n).clone();
                        return;
                    }
                }
            }
            6 => {
                if let Some(i) = any_of(rng, toks, |t| t.kind == Kind::Str) {
                    let s = pick_str(rng, &names.string_literals, "x");
                    toks[i].text = format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
                    return;
                }
            }
            7 => {
                // Combine with another condition of the file.
                if let Some(other) = rng.pick(others) {
                    let op = pick_static(rng, &LOGIC);
                    let whole = join(toks);
                    *toks = tokenize(&format!("({whole}) {op} ({other})"));
                    return;
                }
            }
            _ => {
                let whole = join(toks);
                let wrapped = match rng.below(3) {
                    0 => format!("!({whole})"),
                    1 => format!("({whole}) || false"),
                    _ => format!("if({whole}, true, false)"),
                };
                *toks = tokenize(&wrapped);
                return;
            }
        }
    }
}

fn is_keyword(s: &str) -> bool {
    matches!(s, "true" | "false") || FUNCTIONS.contains(&s)
}

fn pick_static<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    rng.pick(items).copied().unwrap_or("")
}

/// A number near `n` (a threshold ± a little, or the same as an integer
/// or a float).
fn nudge(rng: &mut Rng, n: &str) -> String {
    let Ok(x) = n.parse::<f64>() else {
        return n.to_owned();
    };
    match rng.below(5) {
        0 => n.to_owned(),
        1 => format!("{}", x + 1.0),
        2 => format!("{}", x - 0.01),
        3 => format!("{x:?}"),
        _ => format!("{}", (x as i64).saturating_mul(10)),
    }
}

fn breaking_mutation(rng: &mut Rng, toks: &mut Vec<Tok>, names: &Names) {
    let len = toks.len();
    match rng.below(11) {
        0 => {
            // A name of the wrong kind: unknown, foreign, a list, a function.
            if let Some(i) = any_of(rng, toks, |t| t.kind == Kind::Ident) {
                toks[i].text = match rng.below(5) {
                    0 => format!("{}_x", toks[i].text),
                    1 => pick_str(rng, &names.foreign, "nope").to_owned(),
                    2 => pick_str(rng, &names.lists, "nope").to_owned(),
                    3 => pick_static(rng, &FUNCTIONS).to_owned(),
                    _ => {
                        let all = names.all();
                        rng.pick(&all)
                            .map_or_else(|| "x".to_owned(), |s| (*s).clone())
                    }
                };
            }
        }
        1 => {
            let t = match rng.below(6) {
                0 => Tok::new(Kind::Op, pick_static(rng, &CMP)),
                1 => Tok::new(Kind::Op, pick_static(rng, &ARITH)),
                2 => Tok::new(Kind::Num, pick_static(rng, &INTERESTING_NUMBERS)),
                3 => Tok::new(Kind::Ident, pick_str(rng, &names.numbers, "x")),
                4 => Tok::new(Kind::Other, pick_static(rng, &STRANGE)),
                _ => Tok::new(Kind::Comma, ","),
            };
            toks.insert(rng.below(len + 1), t);
        }
        2 => {
            if len > 0 {
                let i = rng.below(len);
                let n = rng.small(3).min(len - i);
                toks.drain(i..i + n);
            }
        }
        3 => {
            let t = if rng.percent(50) {
                Tok::new(Kind::Open, "(")
            } else {
                Tok::new(Kind::Close, ")")
            };
            toks.insert(rng.below(len + 1), t);
        }
        4 => {
            // A function call, often with the wrong number of arguments.
            if let Some(i) = any_of(rng, toks, |t| matches!(t.kind, Kind::Ident | Kind::Num)) {
                let f = if rng.percent(85) {
                    pick_static(rng, &FUNCTIONS)
                } else {
                    "nosuch::fn"
                };
                let x = toks[i].text.clone();
                let list = pick_str(rng, &names.lists, "x").to_owned();
                let y = pick_str(rng, &names.numbers, "1").to_owned();
                let args = match rng.below(6) {
                    0 => String::new(),
                    1 => x,
                    2 => format!("{x}, {y}"),
                    3 => format!("{x}, {y}, {x}"),
                    4 => format!("{list}, {x}"),
                    _ => format!("{x}, \"a\", 1.5, true"),
                };
                toks[i] = Tok::new(Kind::Other, format!("{f}({args})"));
            }
        }
        5 => {
            if let Some(i) = any_of(rng, toks, |t| t.kind == Kind::Num) {
                toks[i].text = pick_static(rng, &INTERESTING_NUMBERS[10..]).to_owned();
            } else {
                toks.push(Tok::new(
                    Kind::Other,
                    format!(" + {}", pick_static(rng, &INTERESTING_NUMBERS)),
                ));
            }
        }
        6 => {
            // Grows it: a long chain or deep nesting.
            let n = *rng.pick(&[2usize, 8, 64, 300, 3000]).unwrap_or(&2);
            let whole = join(toks);
            let grown = match rng.below(4) {
                0 => vec![format!("({whole})"); n].join(" && "),
                1 => format!("{}{whole}{}", "(".repeat(n), ")".repeat(n)),
                2 => format!("{}({whole})", "!".repeat(n)),
                _ => {
                    let x = pick_str(rng, &names.numbers, "1");
                    format!("{whole} && {x}{} >= 0", format!(" + {x}").repeat(n))
                }
            };
            *toks = tokenize(&grown);
        }
        7 => {
            // Assignments and sequences: evalexpr has them, rules must not.
            let x = pick_str(rng, &names.numbers, "x").to_owned();
            let whole = join(toks);
            *toks = tokenize(&match rng.below(4) {
                0 => format!("{x} = 1; {whole}"),
                1 => format!("{whole}; {x}"),
                2 => format!("{x} += 1"),
                _ => format!("({whole}, {x})"),
            });
        }
        8 => {
            // A field of another type where this one stood.
            if let Some(i) = any_of(rng, toks, |t| t.kind == Kind::Ident) {
                let group = match rng.below(4) {
                    0 => &names.strings,
                    1 => &names.bools,
                    2 => &names.times,
                    _ => &names.numbers,
                };
                toks[i].text = pick_str(rng, group, "x").to_owned();
            }
        }
        9 => {
            // Cut short, or said twice.
            let whole = join(toks);
            if rng.percent(50) && len > 1 {
                toks.truncate(rng.below(len));
            } else {
                *toks = tokenize(&format!("{whole} {whole}"));
            }
        }
        _ => {
            if let Some(i) = any_of(rng, toks, |t| t.kind == Kind::Str) {
                toks[i].text = match rng.below(4) {
                    0 => "\"".to_owned(),
                    1 => format!("\"{}\"", "x".repeat(5000)),
                    2 => "\"\\u{0}\\n\\t\"".to_owned(),
                    _ => "\"é中文\"".to_owned(),
                };
            } else {
                let x = pick_str(rng, &names.strings, "x").to_owned();
                toks.push(Tok::new(Kind::Other, format!(" && {x} == 1")));
            }
        }
    }
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

/// Mutates a message template's `{name}` placeholders.
pub fn mutate_message(rng: &mut Rng, msg: &str, names: &Names) -> String {
    let all = names.all();
    let name = rng.pick(&all).map_or("x", |s| s.as_str());
    match rng.below(6) {
        0 => format!("{msg} {{{name}}}"),
        1 => msg.replacen('{', "{nosuch_", 1),
        2 => format!("{msg} {{"),
        3 => format!("{msg} {{}}"),
        4 => format!("{msg} {{{name} + 1}}"),
        _ => msg.replace('{', "{{"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_join_back_to_the_source() {
        for src in [
            "fuel_used_l > standard_fuel_l * 1.2",
            "math::abs(a - b) > b * 0.2 + 2 && !moving",
            "kind == \"dr\\\"op\" || x <= 1e-5",
            "contains(vf_lists, station_id) && é",
        ] {
            assert_eq!(join(&tokenize(src)), src);
        }
        let kinds: Vec<Kind> = tokenize("math::abs(x)>=1.5e+3")
            .iter()
            .map(|t| t.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                Kind::Ident,
                Kind::Open,
                Kind::Ident,
                Kind::Close,
                Kind::Op,
                Kind::Num
            ]
        );
    }

    #[test]
    fn mutations_change_and_stay_bounded() {
        let names = Names {
            numbers: vec!["a".into(), "b".into()],
            strings: vec!["s".into()],
            lists: vec!["l".into()],
            number_literals: vec!["10".into()],
            string_literals: vec!["drop".into()],
            ..Names::default()
        };
        let mut rng = Rng::new(3);
        let mut changed = 0;
        let mut src = "a > b * 1.2 && s == \"x\"".to_owned();
        for i in 0..2000 {
            let m = mutate(&mut rng, &src, &names, &[], 40);
            changed += usize::from(m != src);
            assert!(m.len() <= MAX_LEN);
            src = if i % 50 == 0 { "a > 1".to_owned() } else { m };
        }
        assert!(changed > 1500, "{changed}");
    }
}
