//! `levee diff`'s output: a plain-text table, JSON, or markdown for a
//! pull-request comment, all from one [`Report`].
//!
//! A tier path is written `1` (an alert at tier 1), `1↑2` (escalated to
//! tier 2 later) or `–` (no alert).

use std::fmt::Write as _;

use serde::Serialize;

use super::compare::{Count, Diff, Example, Kind, PointDiff};

/// One ruleset as replayed.
#[derive(Debug, Clone, Serialize)]
pub struct SideInfo {
    /// `--base` / `--head` as given (a directory or a revision).
    pub rules: String,
    pub ruleset_version: String,
    /// Lines evaluated as events.
    pub events: u64,
    pub bad_lines: u64,
    /// Alerts raised, escalations included.
    pub alerts: u64,
}

/// Everything `levee diff` reports.
#[derive(Debug, Clone)]
pub struct Report {
    pub base: SideInfo,
    pub head: SideInfo,
    pub diff: Diff,
}

const KINDS: [(Kind, &str); 3] = [
    (Kind::Added, "added"),
    (Kind::Removed, "removed"),
    (Kind::Tier, "tier changed"),
];

/// `--format json`'s object, its fields in this order.
#[derive(Debug, Serialize)]
struct Json<'a> {
    base: &'a SideInfo,
    head: &'a SideInfo,
    /// Lines evaluated as events (the larger count, should the two
    /// rulesets' schemas accept different lines).
    events: u64,
    totals: Totals,
    control_points: &'a [PointDiff],
}

#[derive(Debug, Serialize)]
struct Totals {
    added: u64,
    removed: u64,
    tier: u64,
}

/// `--format json`: one object, pretty-printed.
pub fn json(r: &Report) -> String {
    let j = Json {
        base: &r.base,
        head: &r.head,
        events: r.diff.events,
        totals: Totals {
            added: r.diff.total(Kind::Added),
            removed: r.diff.total(Kind::Removed),
            tier: r.diff.total(Kind::Tier),
        },
        control_points: &r.diff.points,
    };
    // Plain data: serializing it cannot fail.
    let mut out = serde_json::to_string_pretty(&j).unwrap_or_default();
    out.push('\n');
    out
}

/// `--format table`: aligned columns, examples indented under their point.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    for (name, s) in [("base", &r.base), ("head", &r.head)] {
        let _ = writeln!(
            out,
            "{name}  {} (ruleset {}): {} events, {} bad lines, {} alerts",
            s.rules, s.ruleset_version, s.events, s.bad_lines, s.alerts
        );
    }
    out.push('\n');
    let mut rows = vec![[
        "control point",
        "status",
        "base",
        "head",
        "added",
        "per 10k",
        "removed",
        "per 10k",
        "tier changed",
        "per 10k",
    ]
    .map(str::to_owned)];
    for p in &r.diff.points {
        let mut row = vec![
            p.id.clone(),
            p.status.label(),
            p.base_alerts.to_string(),
            p.head_alerts.to_string(),
        ];
        for (kind, _) in KINDS {
            let c = p.count(kind);
            row.push(c.count.to_string());
            row.push(format!("{:.1}", c.per_10k));
        }
        rows.push(row.try_into().unwrap_or_default());
    }
    let widths: Vec<usize> = (0..10)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for (n, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i < 2 {
                let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(line, "{}{cell}  ", " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
        if n > 0 {
            let p = &r.diff.points[n - 1];
            for (kind, name) in KINDS {
                for e in &p.count(kind).examples {
                    let _ = writeln!(out, "    {name}: {}", example(e));
                }
            }
        }
    }
    if r.diff.points.is_empty() {
        out.push_str("(no control point differs)\n");
    }
    let _ = writeln!(out, "\n{}", totals(r));
    out
}

/// `--format markdown`: a heading, the totals, one table row per point that
/// differs, and the examples folded away.
pub fn markdown(r: &Report) -> String {
    let mut out = String::from("### levee diff\n\n");
    let _ = writeln!(
        out,
        "Base `{}` (ruleset `{}`) → head `{}` (ruleset `{}`), over {} events.\n",
        r.base.rules,
        r.base.ruleset_version,
        r.head.rules,
        r.head.ruleset_version,
        thousands(r.diff.events)
    );
    let _ = writeln!(out, "**{}**\n", totals(r));
    if r.base.bad_lines + r.head.bad_lines > 0 {
        let _ = writeln!(
            out,
            "Bad lines: {} with the base rules, {} with the head rules.\n",
            r.base.bad_lines, r.head.bad_lines
        );
    }
    if r.diff.points.is_empty() {
        out.push_str("No control point differs.\n");
        return out;
    }
    out.push_str(
        "| control point | status | base alerts | head alerts | added | removed | tier changed |\n",
    );
    out.push_str("|---|---|--:|--:|--:|--:|--:|\n");
    for p in &r.diff.points {
        let _ = writeln!(
            out,
            "| **{}** {} | {} | {} | {} | {} | {} | {} |",
            cell(&p.id),
            cell(&p.title),
            cell(&p.status.label()),
            p.base_alerts,
            p.head_alerts,
            md_count(&p.added, "+"),
            md_count(&p.removed, "−"),
            md_count(&p.tier, ""),
        );
    }
    let with_examples: Vec<&PointDiff> = r
        .diff
        .points
        .iter()
        .filter(|p| KINDS.iter().any(|(k, _)| !p.count(*k).examples.is_empty()))
        .collect();
    if !with_examples.is_empty() {
        out.push_str("\n<details><summary>Example events</summary>\n\n");
        for p in with_examples {
            for (kind, name) in KINDS {
                let examples = &p.count(kind).examples;
                if examples.is_empty() {
                    continue;
                }
                let _ = writeln!(out, "**{}** {name}:\n", cell(&p.id));
                for e in examples {
                    let _ = writeln!(
                        out,
                        "- `{}` ({}): tier {} → {}, `{}`",
                        e.event_id,
                        cell(&e.subject),
                        tiers(&e.base_tiers),
                        tiers(&e.head_tiers),
                        e.at
                    );
                }
                out.push('\n');
            }
        }
        out.push_str("</details>\n");
    }
    out
}

fn totals(r: &Report) -> String {
    format!(
        "{} alerts added, {} removed, {} changed in tier",
        r.diff.total(Kind::Added),
        r.diff.total(Kind::Removed),
        r.diff.total(Kind::Tier)
    )
}

fn example(e: &Example) -> String {
    format!(
        "{} ({}) tier {} → {} at {}",
        e.event_id,
        e.subject,
        tiers(&e.base_tiers),
        tiers(&e.head_tiers),
        e.at
    )
}

fn md_count(c: &Count, sign: &str) -> String {
    if c.count == 0 {
        "0".to_owned()
    } else {
        format!("{sign}{} ({:.1} per 10k)", c.count, c.per_10k)
    }
}

/// A tier path: `1`, `1↑2`, or `–` for no alert.
pub fn tiers(t: &[u8]) -> String {
    if t.is_empty() {
        return "–".to_owned();
    }
    t.iter().map(u8::to_string).collect::<Vec<_>>().join("↑")
}

/// Text safe in a markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::compare::Status;
    use super::*;

    fn report(points: Vec<PointDiff>) -> Report {
        let side = |rules: &str, alerts| SideInfo {
            rules: rules.into(),
            ruleset_version: format!("v-{rules}"),
            events: 12_345,
            bad_lines: 0,
            alerts,
        };
        Report {
            base: side("HEAD", 10),
            head: side("rules", 12),
            diff: Diff {
                events: 12_345,
                points,
            },
        }
    }

    fn point() -> PointDiff {
        let e = Example {
            event_id: "t-7".into(),
            subject: "V|1".into(),
            at: "ev.jsonl:7".into(),
            base_tiers: vec![],
            head_tiers: vec![1, 2],
        };
        PointDiff {
            id: "VF-001".into(),
            title: "Fuel | over".into(),
            status: Status::Changed,
            base_alerts: 10,
            head_alerts: 12,
            added: Count {
                count: 2,
                per_10k: 1.62,
                examples: vec![e],
            },
            removed: Count::default(),
            tier: Count::default(),
        }
    }

    #[test]
    fn markdown_rows_keep_their_columns_and_fold_the_examples() {
        let md = markdown(&report(vec![point()]));
        let row = md
            .lines()
            .find(|l| l.starts_with("| **VF-001**"))
            .unwrap_or_default();
        // A `|` in a title or subject must not open a column.
        assert_eq!(row.matches(" | ").count(), 6, "{row}");
        assert!(row.contains("+2 (1.6 per 10k)"), "{row}");
        assert!(md.contains("over 12,345 events"), "{md}");
        assert!(
            md.contains("**2 alerts added, 0 removed, 0 changed in tier**"),
            "{md}"
        );
        assert!(
            md.contains("- `t-7` (V\\|1): tier – → 1↑2, `ev.jsonl:7`"),
            "{md}"
        );
        let open = md.find("<details>").unwrap_or(usize::MAX);
        assert!(open < md.find("`t-7`").unwrap_or(0) && md.trim_end().ends_with("</details>"));
    }

    #[test]
    fn no_difference_says_so_in_every_format() {
        let r = report(vec![]);
        assert!(markdown(&r).contains("No control point differs."));
        assert!(table(&r).contains("(no control point differs)"));
        let j: serde_json::Value = serde_json::from_str(&json(&r)).unwrap_or_default();
        assert_eq!(j["control_points"], serde_json::json!([]));
        assert_eq!(j["totals"]["added"], 0);
    }

    #[test]
    fn the_table_aligns_its_columns_and_lists_examples_under_their_point() {
        let t = table(&report(vec![point()]));
        let lines: Vec<&str> = t.lines().collect();
        let header = lines
            .iter()
            .position(|l| l.starts_with("control point"))
            .unwrap_or(0);
        let (h, row) = (lines[header], lines[header + 1]);
        assert!(row.starts_with("VF-001         changed"), "{t}");
        // Numbers are right-aligned under their heading: base 10, head 12,
        // added 2.
        for (heading, value) in [("base", "10"), ("head", "12"), ("added", "2")] {
            let end = h.find(heading).map(|i| i + heading.len()).unwrap_or(0);
            assert_eq!(row.get(end - value.len()..end), Some(value), "{t}");
        }
        assert_eq!(
            lines[header + 2],
            "    added: t-7 (V|1) tier – → 1↑2 at ev.jsonl:7"
        );
        assert!(
            t.ends_with("2 alerts added, 0 removed, 0 changed in tier\n"),
            "{t}"
        );
    }

    #[test]
    fn json_names_the_sides_totals_and_points() {
        let j: serde_json::Value =
            serde_json::from_str(&json(&report(vec![point()]))).unwrap_or_default();
        assert_eq!(j["base"]["rules"], "HEAD");
        assert_eq!(j["head"]["alerts"], 12);
        assert_eq!(j["events"], 12_345);
        assert_eq!(j["totals"]["added"], 2);
        let p = &j["control_points"][0];
        assert_eq!(p["id"], "VF-001");
        assert_eq!(p["status"], "changed");
        assert_eq!(
            p["added"]["examples"][0]["head_tiers"],
            serde_json::json!([1, 2])
        );
    }

    #[test]
    fn large_numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
