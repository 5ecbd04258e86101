//! How deeply an expression may nest. Parsing and lowering an expression
//! recurse once per level of its tree, and a derived value is lowered
//! where it is read, so the levels of every derived value an expression
//! reads add up. An expression thousands of levels deep (`!!!…x`, or
//! `a + 1 + 1 + …`) would run a compiling thread out of stack, and a stack
//! overflow aborts the process: `levee run` reloads rules on a 2 MiB tokio
//! worker thread. So every expression is measured before it is lowered,
//! and one over [`MAX_NESTING`] levels is an error. The catalog's deepest
//! needs 20. The bound leaves room to spare on a 2 MiB stack in a debug
//! build, where a level of function calls (`max(max(…, 1), 1)`) takes up
//! to 16 KiB of stack; a release build needs far less.

use std::collections::BTreeMap;

/// The most levels an expression may nest, with the derived values it reads.
pub const MAX_NESTING: usize = 128;

/// An upper bound on the levels of an expression's own tree: one for each
/// operator (`==`, `!=`, `<=`, `>=`, `&&` and `||` count once, any other
/// operator character once each), parenthesis and comma outside string
/// literals, plus one.
pub fn own_nesting(src: &str) -> usize {
    let bytes = src.as_bytes();
    let mut n = 1;
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b"+-*/%^<>=!&|(,;".contains(&b) {
            n += 1;
            let pair = [b, bytes.get(i).copied().unwrap_or(0)];
            if matches!(&pair, b"==" | b"!=" | b"<=" | b">=" | b"&&" | b"||") {
                i += 1;
            }
        }
    }
    n
}

/// The identifiers an expression reads (outside string literals).
fn identifiers(src: &str) -> impl Iterator<Item = &str> {
    let bytes = src.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let b = bytes[i];
            if in_string {
                i += if b == b'\\' { 2 } else { 1 };
                in_string &= b != b'"';
                continue;
            }
            if b == b'"' {
                in_string = true;
                i += 1;
                continue;
            }
            if b.is_ascii_alphabetic() || b == b'_' {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || b"_:".contains(&bytes[i]))
                {
                    i += 1;
                }
                return src.get(start..i);
            }
            i += 1;
        }
        None
    })
}

/// The nesting of `src` with the derived values it reads, counted until it
/// passes [`MAX_NESTING`] (a cycle adds nothing: it is reported when the
/// derived values are lowered).
pub fn nesting(src: &str, derived: &BTreeMap<String, String>) -> usize {
    let mut memo: BTreeMap<&str, usize> = BTreeMap::new();
    let mut on_path: Vec<&str> = Vec::new();
    nesting_at(src, derived, &mut memo, &mut on_path, 0)
}

fn nesting_at<'a>(
    src: &'a str,
    derived: &'a BTreeMap<String, String>,
    memo: &mut BTreeMap<&'a str, usize>,
    on_path: &mut Vec<&'a str>,
    above: usize,
) -> usize {
    let own = own_nesting(src);
    // Each level adds at least one, so this recursion stops within
    // MAX_NESTING calls.
    if above + own > MAX_NESTING {
        return own;
    }
    let mut deepest = 0;
    for name in identifiers(src) {
        let Some((key, dsrc)) = derived.get_key_value(name) else {
            continue;
        };
        if on_path.contains(&key.as_str()) {
            continue;
        }
        let d = match memo.get(key.as_str()) {
            Some(&d) => d,
            None => {
                on_path.push(key);
                let d = nesting_at(dsrc, derived, memo, on_path, above + own);
                on_path.pop();
                memo.insert(key, d);
                d
            }
        };
        deepest = deepest.max(d);
        if above + own + deepest > MAX_NESTING {
            break;
        }
    }
    own + deepest
}

/// The error for an expression nested `n` levels deep.
pub(crate) fn too_deep(n: usize) -> String {
    let more = if n > MAX_NESTING + 1 {
        format!("more than {MAX_NESTING}")
    } else {
        format!("{n}")
    };
    format!(
        "nests {more} levels deep (operators and parentheses, with the derived values it reads); \
         at most {MAX_NESTING} are allowed: write it shorter (a list and `contains` instead of a long `||` chain)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn operators_and_parentheses_count_strings_do_not() {
        assert_eq!(own_nesting("x"), 1);
        assert_eq!(own_nesting("a > b * 1.2"), 3);
        assert_eq!(own_nesting("max(a, b) >= 2 && !c"), 6);
        assert_eq!(own_nesting(r#"kind == "a+b\"(c" || x"#), 3);
        assert_eq!(own_nesting(&"!".repeat(300)), 301);
        assert_eq!(own_nesting("a +-+-+- b"), 7);
        assert_eq!(own_nesting("a ==== b"), 3);
    }

    #[test]
    fn derived_values_read_add_their_levels() {
        let d = derived(&[("a", "x + 1"), ("b", "a * 2"), ("c", "\"b\" == s")]);
        assert_eq!(nesting("b > 0", &d), 2 + 2 + 2);
        assert_eq!(nesting("c", &d), 1 + 2);
        // A cycle is reported elsewhere; here it adds nothing more.
        let cycle = derived(&[("p", "q + 1"), ("q", "p + 1")]);
        assert_eq!(nesting("p", &cycle), 1 + 2 + 2);
    }

    #[test]
    fn a_long_chain_is_cut_short() {
        let chain: BTreeMap<String, String> = (1..100_000)
            .map(|i| (format!("d{i}"), format!("d{} + 1", i - 1)))
            .collect();
        assert!(nesting("d99999", &chain) > MAX_NESTING);
        assert!(nesting("d10", &chain) <= MAX_NESTING);
    }
}
