//! A JSON tree that can say what `serde_json::Value` cannot: keys in their
//! order and given twice, numbers as raw tokens (`1e999`, `-0`, `NaN`),
//! strings as raw escaped text (lone surrogates), and any raw bytes. The
//! mutators edit it; [`J::write`] prints it back.

/// One JSON value as the fuzzer sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    /// A number token as written (it may be no valid number at all).
    Num(String),
    /// The text between the quotes, escapes as written.
    Str(String),
    Arr(Vec<J>),
    /// Entries in order; a key may repeat. Keys are escaped text as well.
    Obj(Vec<(String, J)>),
    /// Printed as it is.
    Raw(String),
}

/// How [`J::write`] lays out its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// No blanks (as producers send it).
    #[default]
    Compact,
    /// A blank after `:` and `,`.
    Spaced,
    /// Newlines and indentation.
    Pretty,
}

/// A string's JSON escaping, without the quotes.
pub fn escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .to_owned()
}

impl J {
    /// A string value (escaped here).
    pub fn str(s: &str) -> J {
        J::Str(escape(s))
    }

    /// A number value from a token.
    pub fn num(token: impl Into<String>) -> J {
        J::Num(token.into())
    }

    /// The fuzzer's tree of a parsed value (keys in the order serde_json
    /// keeps them).
    pub fn from_value(v: &serde_json::Value) -> J {
        use serde_json::Value;
        match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Num(n.to_string()),
            Value::String(s) => J::str(s),
            Value::Array(a) => J::Arr(a.iter().map(J::from_value).collect()),
            Value::Object(o) => J::Obj(
                o.iter()
                    .map(|(k, v)| (escape(k), J::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// Parses JSON text into the tree (`None` if it is not JSON).
    pub fn parse(bytes: &[u8]) -> Option<J> {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .map(|v| J::from_value(&v))
    }

    /// The entries of an object.
    pub fn entries_mut(&mut self) -> Option<&mut Vec<(String, J)>> {
        match self {
            J::Obj(e) => Some(e),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(String, J)] {
        match self {
            J::Obj(e) => e,
            _ => &[],
        }
    }

    /// The last value of an object's key (escaped key text).
    pub fn get(&self, key: &str) -> Option<&J> {
        self.entries()
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Sets the key (its last occurrence), adding it if it is absent.
    pub fn set(&mut self, key: &str, value: J) {
        if let Some(e) = self.entries_mut() {
            match e.iter_mut().rev().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => e.push((key.to_owned(), value)),
            }
        }
    }

    /// The string a `Str` holds, unescaped (`None` for other values or
    /// escapes that are not valid JSON).
    pub fn as_str(&self) -> Option<String> {
        match self {
            J::Str(s) => serde_json::from_str::<String>(&format!("\"{s}\"")).ok(),
            _ => None,
        }
    }

    /// How many values the tree holds (a bound on the work it makes).
    pub fn size(&self) -> usize {
        match self {
            J::Arr(a) => 1 + a.iter().map(J::size).sum::<usize>(),
            J::Obj(e) => 1 + e.iter().map(|(_, v)| v.size()).sum::<usize>(),
            _ => 1,
        }
    }

    /// Prints the tree as JSON text (or what passes for it).
    pub fn write(&self, layout: Layout, out: &mut Vec<u8>) {
        self.write_at(layout, 0, out);
    }

    fn write_at(&self, layout: Layout, depth: usize, out: &mut Vec<u8>) {
        let newline = |out: &mut Vec<u8>, depth: usize| {
            if layout == Layout::Pretty {
                out.push(b'\n');
                out.extend(std::iter::repeat_n(b' ', 2 * depth.min(64)));
            }
        };
        let sep: &[u8] = if layout == Layout::Compact {
            b","
        } else {
            b", "
        };
        let colon: &[u8] = if layout == Layout::Compact {
            b":"
        } else {
            b": "
        };
        match self {
            J::Null => out.extend_from_slice(b"null"),
            J::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            J::Num(n) => out.extend_from_slice(n.as_bytes()),
            J::Raw(r) => out.extend_from_slice(r.as_bytes()),
            J::Str(s) => {
                out.push(b'"');
                out.extend_from_slice(s.as_bytes());
                out.push(b'"');
            }
            J::Arr(a) => {
                out.push(b'[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(sep.trim_ascii_end());
                    }
                    newline(out, depth + 1);
                    v.write_at(layout, depth + 1, out);
                }
                if !a.is_empty() {
                    newline(out, depth);
                }
                out.push(b']');
            }
            J::Obj(e) => {
                out.push(b'{');
                for (i, (k, v)) in e.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(if layout == Layout::Pretty { b"," } else { sep });
                    }
                    newline(out, depth + 1);
                    out.push(b'"');
                    out.extend_from_slice(k.as_bytes());
                    out.push(b'"');
                    out.extend_from_slice(colon);
                    v.write_at(layout, depth + 1, out);
                }
                if !e.is_empty() {
                    newline(out, depth);
                }
                out.push(b'}');
            }
        }
    }

    /// The printed text, compact.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(Layout::Compact, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn prints_what_it_parsed() {
        let text = br#"{"a":[1,2.5,{"b":null}],"c":"x\"y\u00e9","d":true}"#;
        let j = J::parse(text).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&j.to_bytes()).unwrap();
        assert_eq!(
            back,
            serde_json::from_slice::<serde_json::Value>(text).unwrap()
        );
        for layout in [Layout::Spaced, Layout::Pretty] {
            let mut out = Vec::new();
            j.write(layout, &mut out);
            let again: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(again, back);
        }
    }

    #[test]
    fn says_what_serde_json_cannot() {
        let j = J::Obj(vec![
            ("a".into(), J::num("1e999")),
            ("a".into(), J::Str("\\ud800".into())),
            ("n".into(), J::Raw("NaN".into())),
        ]);
        assert_eq!(j.to_bytes(), br#"{"a":1e999,"a":"\ud800","n":NaN}"#);
        assert_eq!(j.get("a"), Some(&J::Str("\\ud800".into())));
        assert_eq!(J::str("é\n").as_str().as_deref(), Some("é\n"));
    }
}
