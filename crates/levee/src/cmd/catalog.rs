//! `levee catalog`: the control points as a table, the register as CSV
//! (what auditors keep: one row per control point with its risk grade,
//! measure, owner, basis and Chinese message), or everything as JSON.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use levee_rules::RuleGraph;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// With `--format csv`: start with a UTF-8 byte order mark, which
    /// Excel needs to read the Chinese columns.
    #[arg(long)]
    bom: bool,
}

/// The register's columns, in order (`--format csv`).
pub const CSV_HEADER: [&str; 12] = [
    "id",
    "domain",
    "title_zh",
    "title",
    "event_type",
    "risk_grade",
    "tiers",
    "action",
    "measure",
    "owner",
    "basis",
    "message_zh",
];

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

pub fn run(rules: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let Some(graph) = crate::rules::load(rules) else {
        return Ok(ExitCode::FAILURE);
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &to_json(&graph))?;
            writeln!(out)?;
        }
        Format::Csv => {
            if args.bom {
                write!(out, "{}", crate::csv::BOM)?;
            }
            crate::csv::record(&mut out, &CSV_HEADER)?;
            for row in register_rows(&graph) {
                crate::csv::record(&mut out, &row)?;
            }
        }
        Format::Table => {
            let header = [
                "ID",
                "DOMAIN",
                "TITLE",
                "TITLE_ZH",
                "EVENT TYPE",
                "TIERS",
                "ACTION",
            ];
            let rows = rows(&graph);
            let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(display_width(c));
                }
            }
            let line = |cells: Vec<&str>| {
                let mut s = String::new();
                for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                    s.push_str(c);
                    if i + 1 < cells.len() {
                        s.push_str(&" ".repeat(w - display_width(c) + 2));
                    }
                }
                s
            };
            writeln!(out, "{}", line(header.to_vec()))?;
            for r in &rows {
                writeln!(out, "{}", line(r.iter().map(|s| s.as_str()).collect()))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tiers_text(graph: &RuleGraph, i: usize) -> String {
    let cp = &graph.control_points[i];
    let mut t: Vec<String> = cp
        .tiers
        .iter()
        .map(|t| format!("{}:{}", t.tier, t.notify))
        .collect();
    t.reverse();
    t.join(" ")
}

fn rows(graph: &RuleGraph) -> Vec<Vec<String>> {
    graph
        .control_points
        .iter()
        .enumerate()
        .map(|(i, cp)| {
            vec![
                cp.id.clone(),
                cp.domain.clone(),
                cp.title.clone(),
                cp.title_zh.clone().unwrap_or_default(),
                graph.event_types[cp.event_type as usize]
                    .origin_name()
                    .to_owned(),
                tiers_text(graph, i),
                cp.action.as_str().to_owned(),
            ]
        })
        .collect()
}

/// One register row per control point, in [`CSV_HEADER`]'s order; the
/// risk grade as the register writes it (高/中/低).
fn register_rows(graph: &RuleGraph) -> Vec<Vec<String>> {
    graph
        .control_points
        .iter()
        .enumerate()
        .map(|(i, cp)| {
            let r = &cp.register;
            let text = |v: &Option<String>| v.clone().unwrap_or_default();
            vec![
                cp.id.clone(),
                cp.domain.clone(),
                text(&cp.title_zh),
                cp.title.clone(),
                graph.event_types[cp.event_type as usize]
                    .origin_name()
                    .to_owned(),
                r.risk_grade.map(|g| g.zh()).unwrap_or_default().to_owned(),
                tiers_text(graph, i),
                cp.action.as_str().to_owned(),
                text(&r.measure),
                text(&r.owner),
                text(&r.basis),
                text(&r.message_zh),
            ]
        })
        .collect()
}

fn to_json(graph: &RuleGraph) -> serde_json::Value {
    let cps: Vec<serde_json::Value> = graph
        .control_points
        .iter()
        .map(|cp| {
            let mut tiers: Vec<serde_json::Value> = cp
                .tiers
                .iter()
                .map(|t| json!({"tier": t.tier, "when": t.when_src, "notify": t.notify}))
                .collect();
            tiers.reverse();
            let et = &graph.event_types[cp.event_type as usize];
            let fail_closed: Vec<&str> = cp
                .fail_closed
                .iter()
                .map(|&s| et.fields[s as usize].name.as_str())
                .collect();
            let people: Vec<&str> = cp
                .people
                .iter()
                .map(|&s| et.fields[s as usize].name.as_str())
                .collect();
            json!({
                "id": cp.id,
                "domain": cp.domain,
                "title": cp.title,
                "title_zh": cp.title_zh,
                "description": cp.description,
                "event_type": graph.event_types[cp.event_type as usize].origin_name(),
                "when": cp.when_src,
                "fail_closed": fail_closed,
                "people": people,
                "tiers": tiers,
                "action": cp.action.as_str(),
                "tags": cp.tags,
                "message_zh": cp.register.message_zh,
                "risk_grade": cp.register.risk_grade.map(|g| g.as_str()),
                "measure": cp.register.measure,
                "owner": cp.register.owner,
                "basis": cp.register.basis,
                "file": cp.file,
            })
        })
        .collect();
    serde_json::Value::Array(cps)
}

/// Terminal columns: CJK characters take two.
fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| if (c as u32) >= 0x1100 { 2 } else { 1 })
        .sum()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;
    use levee_rules::RuleSources;

    const RULES: &str = r#"
event_types:
  e: {stream: s, subject: k, fields: {k: {type: string, required: true}, n: {type: number}}}
control_points:
  - id: A-1
    domain: d
    title: "Over, \"quoted\""
    title_zh: 超标
    event_type: e
    when: n > 1
    tiers: [{tier: 1, notify: r}, {tier: 3, when: n > 9}]
    action: block
    message: "{k} at {n}"
    message_zh: "{k}：{n}元，超标"
    risk_grade: medium
    measure: "核查, 整改"
    owner: 综合部
    basis: company rule
"#;

    #[test]
    fn a_register_row_follows_the_header_with_the_grade_in_chinese() {
        let graph = match levee_rules::compile(&RuleSources::from_texts([("r.yaml", RULES)])) {
            Ok(c) => c.graph,
            Err(d) => panic!("{d:?}"),
        };
        let rows = register_rows(&graph);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].len(), CSV_HEADER.len());
        let cell = |name: &str| {
            let i = CSV_HEADER.iter().position(|h| *h == name).unwrap_or(99);
            rows[0].get(i).cloned().unwrap_or_default()
        };
        assert_eq!(cell("id"), "A-1");
        assert_eq!(cell("title_zh"), "超标");
        assert_eq!(cell("risk_grade"), "中");
        assert_eq!(cell("tiers"), "1:r 3:discipline_inspection");
        assert_eq!(cell("action"), "block");
        assert_eq!(cell("measure"), "核查, 整改");
        assert_eq!(cell("basis"), "company rule");
        assert_eq!(cell("message_zh"), "{k}：{n}元，超标");
        let mut out = Vec::new();
        crate::csv::record(&mut out, &rows[0]).unwrap_or_default();
        let line = String::from_utf8(out).unwrap_or_default();
        assert!(
            line.starts_with("A-1,d,超标,\"Over, \"\"quoted\"\"\",e,中,"),
            "{line}"
        );
        assert!(line.contains(",\"核查, 整改\",综合部,"), "{line}");

        let json = to_json(&graph);
        assert_eq!(json[0]["risk_grade"], "medium");
        assert_eq!(json[0]["owner"], "综合部");
        assert_eq!(json[0]["message_zh"], "{k}：{n}元，超标");
    }
}
