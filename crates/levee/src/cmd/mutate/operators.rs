//! The mutation operators: each turns a condition's text into mutants, the
//! text with one small change a slip of the author's could have made.
//!
//! - a number moved by one unit of its written precision (`200` → `199`,
//!   `201`; `0.05` → `0.04`, `0.06`) and by 1 % (`200` → `198`, `202`);
//! - a comparison turned (`>` ↔ `>=`, `<` ↔ `<=`, `==` ↔ `!=`);
//! - a term of an `&&` or `||` dropped;
//! - a list name swapped for the list of the same kind sharing most items
//!   with it, or for an empty list ([`EMPTY_LIST`]).
//!
//! A tier's condition gets all of these, and one more that needs no text:
//! the condition dropped ([`Operator::TierDropped`], made by the caller).

use std::collections::{BTreeMap, BTreeSet};

use super::tokens::{closing, tokenize, Kind, Token};

/// The name of the empty list that the "list emptied" mutants name; the
/// caller adds it to the catalog.
pub const EMPTY_LIST: &str = "levee_mutant_empty_list";

/// A kind of mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// A number ± one unit of its written precision.
    Unit,
    /// A number ± 1 %.
    Percent,
    /// `>` ↔ `>=`, `<` ↔ `<=`, `==` ↔ `!=`.
    Comparison,
    /// A term of an `&&` or `||` dropped.
    Term,
    /// A list swapped for another of the same kind.
    ListSwapped,
    /// A list emptied.
    ListEmptied,
    /// A tier's condition dropped: the tier holds whenever the point fires.
    TierDropped,
}

impl Operator {
    pub const ALL: [Operator; 7] = [
        Operator::Unit,
        Operator::Percent,
        Operator::Comparison,
        Operator::Term,
        Operator::ListSwapped,
        Operator::ListEmptied,
        Operator::TierDropped,
    ];

    /// The operator's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Operator::Unit => "number ±1 unit",
            Operator::Percent => "number ±1 %",
            Operator::Comparison => "comparison",
            Operator::Term => "term dropped",
            Operator::ListSwapped => "list swapped",
            Operator::ListEmptied => "list emptied",
            Operator::TierDropped => "tier condition dropped",
        }
    }
}

/// One mutant of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutant {
    pub operator: Operator,
    /// The mutated condition.
    pub text: String,
    /// What changed, e.g. ``200` → `199``.
    pub change: String,
}

/// The catalog's named lists, as the list operators see them.
#[derive(Debug, Default)]
pub struct Lists {
    /// Name → (kind of the items, e.g. `string`; the items as text).
    by_name: BTreeMap<String, (String, BTreeSet<String>)>,
}

impl Lists {
    /// From (name, kind of its items, items as text).
    pub fn new(lists: impl IntoIterator<Item = (String, String, Vec<String>)>) -> Self {
        Lists {
            by_name: lists
                .into_iter()
                .map(|(n, k, items)| (n, (k, items.into_iter().collect())))
                .collect(),
        }
    }

    /// The list `name` is swapped for: of the same kind, sharing the most
    /// items with it (the first by name among equals).
    fn swap_for(&self, name: &str) -> Option<&str> {
        let (kind, items) = self.by_name.get(name)?;
        let mut best: Option<(&str, usize)> = None;
        for (other, (k, its)) in &self.by_name {
            if other == name || k != kind || kind.is_empty() {
                continue;
            }
            let shared = items.intersection(its).count();
            if best.is_none_or(|(_, b)| shared > b) {
                best = Some((other, shared));
            }
        }
        best.map(|(n, _)| n)
    }
}

/// Every mutant of condition `src`, each once, in the order of the text;
/// none if it does not tokenize.
pub fn mutants(src: &str, lists: &Lists) -> Vec<Mutant> {
    let Some(tokens) = tokenize(src) else {
        return Vec::new();
    };
    let mut out: Vec<Mutant> = Vec::new();
    let mut push = |operator, text: String, change: String| {
        if text != src && !out.iter().any(|m| m.text == text) {
            out.push(Mutant {
                operator,
                text,
                change,
            });
        }
    };
    let replace = |t: &Token, with: &str| format!("{}{with}{}", &src[..t.start], &src[t.end..]);
    for t in &tokens {
        let word = t.text(src);
        match t.kind {
            Kind::Number => {
                for (op, n) in numbers(word) {
                    push(op, replace(t, &n), format!("`{word}` → `{n}`"));
                }
            }
            Kind::Op => {
                let turned = match word {
                    ">" => ">=",
                    ">=" => ">",
                    "<" => "<=",
                    "<=" => "<",
                    "==" => "!=",
                    "!=" => "==",
                    _ => continue,
                };
                push(
                    Operator::Comparison,
                    replace(t, turned),
                    format!("`{word}` → `{turned}`"),
                );
            }
            Kind::Name if lists.by_name.contains_key(word) => {
                if let Some(other) = lists.swap_for(word) {
                    push(
                        Operator::ListSwapped,
                        replace(t, other),
                        format!("list `{word}` → `{other}`"),
                    );
                }
                push(
                    Operator::ListEmptied,
                    replace(t, EMPTY_LIST),
                    format!("list `{word}` emptied"),
                );
            }
            _ => {}
        }
    }
    for (text, change) in term_drops(src, &tokens) {
        push(Operator::Term, text, change);
    }
    out
}

/// The mutants of a number literal: ± one unit of its written precision,
/// then ± 1 % (an integer stays an integer, rounded away from it).
fn numbers(lit: &str) -> Vec<(Operator, String)> {
    let signed = |s: String, negative: bool| if negative { format!("({s})") } else { s };
    let mut out = Vec::new();
    if !lit.contains(['.', 'e', 'E']) {
        let Ok(v) = lit.parse::<i64>() else {
            return out;
        };
        for u in [v - 1, v + 1] {
            out.push((Operator::Unit, signed(u.to_string(), u < 0)));
        }
        let step = (v + 99) / 100;
        if step > 1 {
            for p in [v - step, v + step] {
                out.push((Operator::Percent, p.to_string()));
            }
        }
        return out;
    }
    let Ok(v) = lit.parse::<f64>() else {
        return out;
    };
    let decimals = match lit.split_once('.') {
        Some((_, frac)) if !lit.contains(['e', 'E']) => Some(frac.len()),
        _ => None,
    };
    let write = |x: f64, places: usize| {
        let s = format!("{x:.places$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').to_owned()
        } else {
            s
        };
        let s = if s.ends_with('.') { format!("{s}0") } else { s };
        signed(s, x < 0.0)
    };
    if let Some(d) = decimals {
        let unit = 10f64.powi(-(d as i32));
        for u in [v - unit, v + unit] {
            out.push((Operator::Unit, write(u, d)));
        }
    }
    if v != 0.0 {
        let places = decimals.map_or(12, |d| d + 2);
        for p in [v * 0.99, v * 1.01] {
            let p = write(p, places);
            if !out.iter().any(|(_, s)| *s == p) {
                out.push((Operator::Percent, p));
            }
        }
    }
    out
}

/// The mutants dropping one term of an `&&` or `||`, at any depth (inside
/// parentheses and function arguments too): (text, change).
fn term_drops(src: &str, tokens: &[Token]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    group(src, tokens, 0, tokens.len(), &mut out);
    out
}

/// Tokens `lo..hi`: arguments separated by commas, each an expression.
fn group(src: &str, t: &[Token], lo: usize, hi: usize, out: &mut Vec<(String, String)>) {
    for (a, b) in split(t, lo, hi, |x| x.kind == Kind::Comma) {
        let is = |op: &'static str| move |x: &Token| x.kind == Kind::Op && x.text(src) == op;
        let ors = split(t, a, b, is("||"));
        drop_each(src, t, &ors, out);
        for &(c, d) in &ors {
            let ands = split(t, c, d, is("&&"));
            drop_each(src, t, &ands, out);
            let mut k = c;
            while k < d {
                if t[k].kind == Kind::Open {
                    let close = closing(t, k).unwrap_or(d).min(d);
                    group(src, t, k + 1, close, out);
                    k = close;
                }
                k += 1;
            }
        }
    }
}

/// Tokens `lo..hi` split at the tokens (outside parentheses) `sep` accepts.
fn split(t: &[Token], lo: usize, hi: usize, sep: impl Fn(&Token) -> bool) -> Vec<(usize, usize)> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, lo);
    for (k, x) in t.iter().enumerate().take(hi).skip(lo) {
        match x.kind {
            Kind::Open => depth += 1,
            Kind::Close => depth = depth.saturating_sub(1),
            _ if depth == 0 && sep(x) => {
                parts.push((start, k));
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push((start, hi));
    parts
}

/// For parts (token ranges) joined by one operator: each part dropped,
/// with the operator joining it to a neighbour.
fn drop_each(src: &str, t: &[Token], parts: &[(usize, usize)], out: &mut Vec<(String, String)>) {
    if parts.len() < 2 || parts.iter().any(|(a, b)| a >= b) {
        return;
    }
    for (i, &(a, b)) in parts.iter().enumerate() {
        let (from, to) = match parts.get(i + 1) {
            Some(&(next, _)) => (t[a].start, t[next].start),
            None => (t[parts[i - 1].1 - 1].end, t[b - 1].end),
        };
        let term = &src[t[a].start..t[b - 1].end];
        out.push((
            format!("{}{}", &src[..from], &src[to..]),
            format!("dropped `{term}`"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists() -> Lists {
        let l = |n: &str, k: &str, items: &[&str]| {
            (
                n.to_owned(),
                k.to_owned(),
                items.iter().map(|s| (*s).to_owned()).collect(),
            )
        };
        Lists::new([
            l("models", "string", &["A", "B", "C"]),
            l("old_models", "string", &["B", "C"]),
            l("other", "string", &["X"]),
            l("codes", "integer", &["1", "2"]),
        ])
    }

    fn of(src: &str, op: Operator) -> Vec<String> {
        mutants(src, &lists())
            .into_iter()
            .filter(|m| m.operator == op)
            .map(|m| m.text)
            .collect()
    }

    #[test]
    fn numbers_move_by_a_unit_of_their_precision_and_by_one_percent() {
        assert_eq!(of("a >= 200", Operator::Unit), ["a >= 199", "a >= 201"]);
        assert_eq!(of("a >= 200", Operator::Percent), ["a >= 198", "a >= 202"]);
        assert_eq!(of("r < 0.05", Operator::Unit), ["r < 0.04", "r < 0.06"]);
        assert_eq!(
            of("r < 0.05", Operator::Percent),
            ["r < 0.0495", "r < 0.0505"]
        );
        assert_eq!(
            of("x > y * 1.5", Operator::Percent),
            ["x > y * 1.485", "x > y * 1.515"]
        );
        // 1 % of a small integer is a unit: no second, identical mutant.
        assert!(of("n >= 30", Operator::Percent).is_empty());
        assert_eq!(of("n >= 150", Operator::Percent), ["n >= 148", "n >= 152"]);
        // Below zero, a number keeps its sign to itself.
        assert_eq!(of("n > 0", Operator::Unit), ["n > (-1)", "n > 1"]);
        assert!(of("n > 0", Operator::Percent).is_empty());
        assert_eq!(
            of("a > 1e6", Operator::Percent),
            ["a > 990000.0", "a > 1010000.0"]
        );
        // Names holding digits and strings are no numbers.
        assert!(of(r#"a2 == "5""#, Operator::Unit).is_empty());
    }

    #[test]
    fn comparisons_turn_one_at_a_time() {
        assert_eq!(
            of("a > 1 && b <= 2 || c != \"x\"", Operator::Comparison),
            [
                "a >= 1 && b <= 2 || c != \"x\"",
                "a > 1 && b < 2 || c != \"x\"",
                "a > 1 && b <= 2 || c == \"x\""
            ]
        );
        assert!(of("a + b", Operator::Comparison).is_empty());
    }

    #[test]
    fn each_term_of_and_and_or_is_dropped() {
        assert_eq!(
            of("a > 1 && b || c", Operator::Term),
            ["c", "a > 1 && b", "b || c", "a > 1 || c"]
        );
        assert_eq!(
            of("x && (p || !q) && if(s && t, 1, 2) > 0", Operator::Term),
            [
                "(p || !q) && if(s && t, 1, 2) > 0",
                "x && if(s && t, 1, 2) > 0",
                "x && (p || !q)",
                "x && (!q) && if(s && t, 1, 2) > 0",
                "x && (p) && if(s && t, 1, 2) > 0",
                "x && (p || !q) && if(t, 1, 2) > 0",
                "x && (p || !q) && if(s, 1, 2) > 0",
            ]
        );
        assert!(of("a > 1", Operator::Term).is_empty());
        let m = mutants("a && b", &lists());
        assert_eq!(
            m.iter().map(|m| m.change.as_str()).collect::<Vec<_>>(),
            ["dropped `a`", "dropped `b`"]
        );
    }

    #[test]
    fn lists_are_swapped_for_the_nearest_of_their_kind_or_emptied() {
        assert_eq!(
            of("contains(models, m)", Operator::ListSwapped),
            ["contains(old_models, m)"]
        );
        assert_eq!(
            of("contains(models, m)", Operator::ListEmptied),
            [format!("contains({EMPTY_LIST}, m)")]
        );
        // No other list of integers: emptied only.
        assert!(of("contains(codes, n)", Operator::ListSwapped).is_empty());
        assert_eq!(of("contains(codes, n)", Operator::ListEmptied).len(), 1);
        // A field of another name is no list.
        assert!(of("modelsx == 1", Operator::ListEmptied).is_empty());
    }

    #[test]
    fn every_mutant_differs_from_the_condition_and_from_the_others() {
        let m = mutants("a >= 100 && a >= 100", &lists());
        let texts: BTreeSet<&str> = m.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts.len(), m.len());
        assert!(!texts.contains("a >= 100 && a >= 100"));
        assert!(mutants("a # b", &lists()).is_empty());
    }
}
