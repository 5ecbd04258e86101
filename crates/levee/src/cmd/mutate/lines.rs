//! Where a control point's conditions are written in its rule file: the
//! line of its `when:` and of each tier's, for the report of survivors.

use std::collections::BTreeMap;

/// The lines (1-based) of a control point's conditions.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Lines {
    /// Its `id:`.
    pub id: Option<usize>,
    /// Its `when:`.
    pub when: Option<usize>,
    /// Each tier's `when:` (or the tier's own line), by tier.
    pub tiers: BTreeMap<u8, usize>,
}

impl Lines {
    /// The line of tier `tier`'s condition, or else of the point.
    pub fn tier(&self, tier: u8) -> Option<usize> {
        self.tiers.get(&tier).copied().or(self.when).or(self.id)
    }
}

/// Finds control point `id` in rule file `text`.
pub fn find(text: &str, id: &str) -> Lines {
    let lines: Vec<&str> = text.lines().collect();
    let is_id = |l: &str| {
        let l = l.trim_start().trim_start_matches("- ").trim_start();
        l.strip_prefix("id:")
            .is_some_and(|v| v.trim().trim_matches(['"', '\'']) == id)
    };
    let Some(start) = lines.iter().position(|l| is_id(l)) else {
        return Lines::default();
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    // The point's keys are indented as its `id` (after the `- `).
    let key_indent = {
        let l = lines[start];
        indent(l)
            + if l.trim_start().starts_with("- ") {
                2
            } else {
                0
            }
    };
    // The point ends where a line is indented less than its keys, or the
    // next point's `- ` begins.
    let end = lines
        .iter()
        .enumerate()
        .skip(start + 1)
        .find(|(_, l)| {
            !l.trim().is_empty() && !l.trim_start().starts_with('#') && indent(l) < key_indent
        })
        .map_or(lines.len(), |(i, _)| i);
    let mut out = Lines {
        id: Some(start + 1),
        ..Lines::default()
    };
    let mut tier: Option<u8> = None;
    for (i, l) in lines.iter().enumerate().take(end).skip(start + 1) {
        let t = l.trim_start();
        if indent(l) == key_indent {
            tier = None;
            if t.starts_with("when:") {
                out.when = Some(i + 1);
            }
            continue;
        }
        if let Some(n) = tier_number(t) {
            tier = Some(n);
            out.tiers.insert(n, i + 1);
        }
        if let Some(n) = tier {
            if t.contains("when:") {
                out.tiers.insert(n, i + 1);
            }
        }
    }
    out
}

/// The number of a tier opened on this line (`- tier: 2`, `- { tier: 2 …`).
fn tier_number(t: &str) -> Option<u8> {
    let at = t.find("tier:")?;
    let before = t[..at].trim_end_matches([' ', '{']).trim_end();
    if !(before.is_empty() || before == "-" || before.ends_with(',')) {
        return None;
    }
    let digits: String = t[at + 5..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "control_points:
  - id: A-1
    domain: d
    when: a > 1
    tiers:
      - tier: 1
        notify: r
      - tier: 2
        when: a > 10
      - { tier: 3, when: a > 100 }
    message: m

  - id: A-2
    # a comment
    when: b > 1
    tiers:
      - tier: 1
";

    #[test]
    fn conditions_are_found_on_their_lines() {
        let a1 = find(FILE, "A-1");
        assert_eq!(a1.id, Some(2));
        assert_eq!(a1.when, Some(4));
        assert_eq!(a1.tiers, BTreeMap::from([(1, 6), (2, 9), (3, 10)]));
        let a2 = find(FILE, "A-2");
        assert_eq!((a2.id, a2.when), (Some(13), Some(15)));
        assert_eq!(a2.tier(1), Some(17));
        assert_eq!(a2.tier(3), Some(15));
        assert_eq!(find(FILE, "A-3"), Lines::default());
    }
}
