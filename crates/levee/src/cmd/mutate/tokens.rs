//! A small tokenizer for condition text (evalexpr syntax), keeping each
//! token's place in the text so that a mutant is the text with one span
//! rewritten: what the author wrote, changed in one spot.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A number literal: `200`, `0.05`, `1e6`.
    Number,
    /// A string literal, quotes included.
    Str,
    /// A name: a field, derived value, aggregate, list, function or `true`.
    Name,
    /// An operator: `>=`, `&&`, `!`, `+`, …
    Op,
    Open,
    Close,
    Comma,
}

/// A token and where it stands in the text (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn text<'s>(&self, src: &'s str) -> &'s str {
        &src[self.start..self.end]
    }
}

const TWO_CHAR_OPS: [&str; 12] = [
    ">=", "<=", "==", "!=", "&&", "||", "+=", "-=", "*=", "/=", "%=", "^=",
];

/// The tokens of `src`, white space left out; `None` if some character
/// is none of evalexpr's (such a condition does not compile anyway).
pub fn tokenize(src: &str) -> Option<Vec<Token>> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c.is_ascii_digit()
            || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            i = number_end(bytes, i);
            Kind::Number
        } else if c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(bytes.len());
            Kind::Str
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric()
                    || bytes[i] == b'_'
                    || (bytes[i] == b':' && bytes.get(i + 1) == Some(&b':')))
            {
                i += if bytes[i] == b':' { 2 } else { 1 };
            }
            Kind::Name
        } else if c == b'(' {
            i += 1;
            Kind::Open
        } else if c == b')' {
            i += 1;
            Kind::Close
        } else if c == b',' {
            i += 1;
            Kind::Comma
        } else if TWO_CHAR_OPS.iter().any(|op| src[i..].starts_with(op)) {
            i += 2;
            Kind::Op
        } else if b"<>!+-*/%^=;".contains(&c) {
            i += 1;
            Kind::Op
        } else {
            return None;
        };
        out.push(Token {
            kind,
            start,
            end: i,
        });
    }
    Some(out)
}

/// The end of the number literal starting at `i`: digits, a fraction, an
/// exponent.
fn number_end(b: &[u8], mut i: usize) -> usize {
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    i = digits(i);
    if b.get(i) == Some(&b'.') {
        i = digits(i + 1);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            i = digits(j);
        }
    }
    i
}

/// The index of the token that closes the parenthesis opened at `open`.
pub fn closing(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, t) in tokens.iter().enumerate().skip(open) {
        match t.kind {
            Kind::Open => depth += 1,
            Kind::Close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn shown(src: &str) -> Vec<(Kind, &str)> {
        tokenize(src)
            .unwrap()
            .iter()
            .map(|t| (t.kind, t.text(src)))
            .collect()
    }

    #[test]
    fn conditions_split_into_tokens_with_their_text() {
        use Kind::*;
        assert_eq!(
            shown(r#"recipient_type == "client_official" && unit_value_cny >= 200"#),
            [
                (Name, "recipient_type"),
                (Op, "=="),
                (Str, "\"client_official\""),
                (Op, "&&"),
                (Name, "unit_value_cny"),
                (Op, ">="),
                (Number, "200"),
            ]
        );
        assert_eq!(
            shown("!contains(l, x) || a*1.5e3>-.5"),
            [
                (Op, "!"),
                (Name, "contains"),
                (Open, "("),
                (Name, "l"),
                (Comma, ","),
                (Name, "x"),
                (Close, ")"),
                (Op, "||"),
                (Name, "a"),
                (Op, "*"),
                (Number, "1.5e3"),
                (Op, ">"),
                (Op, "-"),
                (Number, ".5"),
            ]
        );
        assert_eq!(
            shown(r#"str::trim(s) != "a \"q\" b""#),
            [
                (Name, "str::trim"),
                (Open, "("),
                (Name, "s"),
                (Close, ")"),
                (Op, "!="),
                (Str, r#""a \"q\" b""#),
            ]
        );
        assert!(tokenize("a # b").is_none());
    }

    #[test]
    fn parentheses_are_matched() {
        let t = tokenize("(a && (b || c)) && d").unwrap();
        assert_eq!(closing(&t, 0), Some(8));
        assert_eq!(closing(&t, 3), Some(7));
        assert_eq!(closing(&tokenize("(a").unwrap(), 0), None);
    }
}
