//! `levee diff`: what a rule change does to traffic. Two rulesets (each a
//! directory or a git revision) replay the same events through `levee
//! replay`'s own code, and the report lists, per control point, the alerts
//! added, removed and changed in tier.
//!
//! Exit 0, or 1 when `--fail-on` names a kind of difference found; 2 when
//! the diff cannot be made (an unknown revision, rules that do not compile,
//! an unreadable event file).
//!
//! - `source`: reading a ruleset from a directory or a revision;
//! - `compare`: the diffing, pure;
//! - `report`: table, JSON and markdown.

mod compare;
mod report;
pub(crate) mod source;

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use levee_engine::{Alert, Source, Verdict};
use levee_rules::{RuleGraph, RuleSources};

use crate::cmd::replay;
use compare::{Definition, Kind, Point, Raised, Side};
use report::{Report, SideInfo};
use source::SourceError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ruleset to compare against: a directory, or else a git revision
    /// (`main`, `HEAD~1`, a commit) of the repository the rules directory
    /// is in, read at the rules directory's path.
    #[arg(long, value_name = "REV|DIR")]
    base: String,
    /// The ruleset to compare, the same way. Default: the rules directory
    /// (`--rules`) as it is on disk.
    #[arg(long, value_name = "REV|DIR")]
    head: Option<String>,
    /// JSON-lines files of events (and rectifications); `-` reads stdin; a
    /// sample directory (`levee run`'s `[sample]`) reads its segments.
    #[arg(default_value = "examples/events.jsonl", value_name = "EVENTS")]
    files: Vec<String>,
    /// Fix the clock (RFC 3339), as in `levee replay`.
    #[arg(long)]
    now: Option<String>,
    /// Events stamped further than this ahead of the clock are bad input.
    #[arg(long, default_value = "1h", value_parser = replay::parse_skew)]
    max_future_skew: i64,
    /// Example events shown per control point and kind of difference.
    #[arg(long, default_value_t = 3, value_name = "N")]
    examples: usize,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Exit 1 if any alert differs in one of these ways
    /// (comma-separated: added,removed,tier).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KINDS")]
    fail_on: Vec<Kind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Json,
    Markdown,
}

/// The exit code when the diff cannot be made.
const CANNOT: u8 = 2;

pub fn run(rules: &Path, mut args: Args) -> anyhow::Result<ExitCode> {
    let head_label = args
        .head
        .clone()
        .unwrap_or_else(|| rules.display().to_string());
    let base = load("--base", &args.base, |r| source::read(r, rules));
    let head = load("--head", &head_label, |r| match &args.head {
        Some(_) => source::read(r, rules),
        None => levee_rules::read_rules_dir(rules).map_err(SourceError::Rules),
    });
    // Both sides' errors are reported before giving up.
    let (base, head) = match (base, head) {
        (Err(b), Err(h)) => {
            eprintln!("levee: {h:#}");
            return Err(b);
        }
        (b, h) => (b?, h?),
    };
    let (Some(base_graph), Some(head_graph)) = (base, head) else {
        return Ok(ExitCode::from(CANNOT));
    };
    // Once each, though both rulesets may give it.
    let mut warnings = replay::sample_mismatches(&args.files, &base_graph);
    for w in replay::sample_mismatches(&args.files, &head_graph) {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    for w in warnings {
        eprintln!("levee: warning: {w}");
    }
    args.files = crate::sample::expand_inputs(&args.files)?;
    let clock = replay::Clock::new(args.now.as_deref(), args.max_future_skew)?;
    let stdin = if args.files.iter().any(|f| f == "-") {
        let mut buf = Vec::new();
        io::stdin().read_to_end(&mut buf).context("reading stdin")?;
        Some(buf)
    } else {
        None
    };
    let base_run = replay_side(base_graph, &args.files, stdin.as_deref(), &clock)?;
    let head_run = replay_side(head_graph, &args.files, stdin.as_deref(), &clock)?;
    io::stderr()
        .lock()
        .write_all(bad_lines(&base_run.err, &head_run.err).as_bytes())?;

    let events = base_run.totals.events.max(head_run.totals.events);
    let diff = compare::diff(&base_run.side, &head_run.side, events, args.examples);
    let info = |label: &str, r: &Replayed| SideInfo {
        rules: label.to_owned(),
        ruleset_version: r.version.clone(),
        events: r.totals.events,
        bad_lines: r.totals.bad,
        alerts: r.alerts,
    };
    let report = Report {
        base: info(&args.base, &base_run),
        head: info(&head_label, &head_run),
        diff,
    };
    let text = match args.format {
        Format::Table => report::table(&report),
        Format::Markdown => report::markdown(&report),
        Format::Json => report::json(&report),
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    let failed = args.fail_on.iter().any(|&k| report.diff.total(k) > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads and compiles one side; its errors on stderr in `levee check`'s
/// format, under the option that named it. `Err` only for what is not a
/// rule error (git failing, an unknown revision).
fn load(
    option: &str,
    label: &str,
    read: impl FnOnce(&str) -> Result<RuleSources, SourceError>,
) -> anyhow::Result<Option<Arc<RuleGraph>>> {
    let diags = match read(label) {
        Ok(sources) => match levee_rules::compile(&sources) {
            Ok(c) => return Ok(Some(Arc::new(c.graph))),
            Err(diags) => diags,
        },
        Err(SourceError::Rules(diags)) => diags,
        Err(e) => return Err(anyhow::Error::new(e).context(format!("{option} {label}"))),
    };
    eprintln!("levee: {option} {label}:");
    crate::rules::print_failure(&diags);
    Ok(None)
}

/// One side's replay.
struct Replayed {
    version: String,
    side: Side,
    totals: replay::Totals,
    alerts: u64,
    /// What the replay said on stderr (bad lines).
    err: Vec<u8>,
}

fn replay_side(
    graph: Arc<RuleGraph>,
    files: &[String],
    stdin: Option<&[u8]>,
    clock: &replay::Clock,
) -> anyhow::Result<Replayed> {
    let points = points(&graph);
    let version = graph.version.clone();
    let mut engine = replay::engine(graph);
    let mut sink = Collect::default();
    let mut totals = replay::Totals::default();
    let mut closings = levee_engine::closings::Closings::default();
    let mut err = Vec::new();
    for name in files {
        let (reader, shown): (Box<dyn BufRead + '_>, &str) = match (name.as_str(), stdin) {
            ("-", Some(buf)) => (Box::new(buf), "<stdin>"),
            _ => replay::open(name)?,
        };
        replay::replay_one(
            reader,
            shown,
            &mut engine,
            clock,
            false,
            &mut closings,
            &mut sink,
            &mut None,
            &mut err,
            &mut totals,
        )?;
    }
    Ok(Replayed {
        version,
        side: Side {
            points,
            raised: sink.raised,
        },
        totals,
        alerts: sink.alerts,
        err,
    })
}

/// The control points of a graph, as the diff compares them.
fn points(graph: &RuleGraph) -> Vec<Point> {
    graph
        .control_points
        .iter()
        .map(|cp| {
            let mut tiers: Vec<(u8, Option<String>)> = cp
                .tiers
                .iter()
                .map(|t| (t.tier, t.when_src.as_deref().map(Definition::normalize)))
                .collect();
            tiers.sort();
            Point {
                id: cp.id.clone(),
                title: cp.title.clone(),
                definition: Definition {
                    event_type: graph
                        .event_types
                        .get(cp.event_type as usize)
                        .map(|t| t.origin_name().to_owned())
                        .unwrap_or_default(),
                    when: Definition::normalize(&cp.when_src),
                    tiers,
                    hold_for: cp.hold_for,
                    suppress: cp.suppress,
                    escalate_after: cp.escalate_after.map(|p| format!("{p:?}")),
                    action: format!("{:?}", cp.action),
                },
            }
        })
        .collect()
}

/// A replay's alerts, by (control point, event): the [`replay::Sink`] of a diff.
#[derive(Debug, Default)]
struct Collect {
    raised: BTreeMap<(String, String), Raised>,
    alerts: u64,
}

impl replay::Sink for Collect {
    fn alert(&mut self, alert: &Alert) -> anyhow::Result<()> {
        self.alerts += 1;
        let seq = self.alerts;
        let at = match &alert.source {
            Source::File { file, line } => format!("{file}:{line}"),
            _ => String::new(),
        };
        self.raised
            .entry((alert.control_point.clone(), alert.event_id.clone()))
            .or_insert_with(|| Raised {
                tiers: Vec::new(),
                subject: alert.subject.clone(),
                at,
                seq,
            })
            .tiers
            .push(alert.tier);
        Ok(())
    }

    fn verdict(&mut self, _: &Verdict) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Bad lines for stderr: once where both rulesets refused them alike, with
/// `base: ` or `head: ` before those only one of them refused (a schema
/// change).
fn bad_lines(base: &[u8], head: &[u8]) -> String {
    let (b, h) = (String::from_utf8_lossy(base), String::from_utf8_lossy(head));
    let in_base: HashSet<&str> = b.lines().collect();
    let in_head: HashSet<&str> = h.lines().collect();
    let mut out = String::new();
    for line in b.lines() {
        let side = if in_head.contains(line) { "" } else { "base: " };
        out.push_str(&format!("{side}{line}\n"));
    }
    for line in h.lines().filter(|l| !in_base.contains(l)) {
        out.push_str(&format!("head: {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use compare::{Kind, Status};

    const RULES: &str = r#"
event_types:
  t:
    stream: s
    subject: who
    fields:
      who: { type: string, required: true }
      a: { type: number, required: true }
control_points:
  - id: T-1
    domain: d
    title: over a threshold
    event_type: t
    when: "a > THRESHOLD"
    tiers: [{ tier: 1, notify: r }, { tier: 2, when: "a > 100" }]
    message: "{who}"
  - id: T-2
    domain: d
    title: unrectified
    event_type: t
    when: "a > 50"
    ESCALATE
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
"#;

    fn graph(threshold: &str, escalate: &str) -> Arc<RuleGraph> {
        let text = RULES
            .replace("THRESHOLD", threshold)
            .replace("ESCALATE", escalate);
        let sources = RuleSources::from_texts([("t.yaml", text.as_str())]);
        Arc::new(levee_rules::compile(&sources).unwrap().graph)
    }

    fn event(id: &str, day: u32, who: &str, a: u32) -> String {
        format!(
            r#"{{"event_id":"{id}","type":"t","occurred_at":"2026-11-{day:02}T09:00:00+08:00","branch":"x","who":"{who}","a":{a}}}"#
        )
    }

    #[test]
    fn both_rulesets_replay_the_same_events_escalations_included() {
        let events = [
            event("e1", 1, "w1", 7),
            event("e2", 1, "w2", 60),
            "not json".to_owned(),
            // Two days on: base escalates e2's T-2 alert, head has no
            // escalation.
            event("e3", 3, "w3", 8),
        ]
        .join("\n");
        let clock = replay::Clock::new(Some("2026-11-26T00:00:00Z"), 3600).unwrap();
        let files = ["-".to_owned()];
        let run = |g| replay_side(g, &files, Some(events.as_bytes()), &clock).unwrap();
        let base = run(graph("10", "escalate_after: 1d"));
        let head = run(graph("5", ""));
        assert_eq!((base.totals.events, head.totals.events), (3, 3));
        assert_eq!((base.alerts, head.alerts), (3, 4));
        let escalated = &base.side.raised[&("T-2".to_owned(), "e2".to_owned())];
        assert_eq!(escalated.tiers, [1, 2]);
        assert_eq!(escalated.at, "<stdin>:2");

        let d = compare::diff(&base.side, &head.side, 3, 10);
        let t1 = &d.points[0];
        assert_eq!((t1.id.as_str(), &t1.status), ("T-1", &Status::Changed));
        let added: Vec<&str> = t1
            .added
            .examples
            .iter()
            .map(|e| e.event_id.as_str())
            .collect();
        assert_eq!(added, ["e1", "e3"]);
        let t2 = &d.points[1];
        assert_eq!((t2.id.as_str(), &t2.status), ("T-2", &Status::Changed));
        assert_eq!((t2.tier.count, t2.added.count, t2.removed.count), (1, 0, 0));
        assert_eq!(t2.tier.examples[0].head_tiers, [1]);
        assert_eq!(d.total(Kind::Tier), 1);
        // The bad line is the same for both: said once.
        assert_eq!(
            bad_lines(&base.err, &head.err).lines().count(),
            1,
            "{}",
            String::from_utf8_lossy(&base.err)
        );
    }

    #[test]
    fn definitions_ignore_whitespace_but_not_escalation() {
        let a = points(&graph("10", "escalate_after: 1d"));
        let b = points(&graph("  10 ", "escalate_after: 1d"));
        assert_eq!(a[0].definition, b[0].definition);
        assert_eq!(a[0].definition.event_type, "t");
        assert_eq!(
            a[0].definition.tiers,
            [(1, None), (2, Some("a > 100".into()))]
        );
        let c = points(&graph("10", ""));
        assert_ne!(a[1].definition, c[1].definition, "escalation is part of it");
    }

    #[test]
    fn bad_lines_of_one_side_only_are_marked() {
        let base = b"f:1: bad input: x\nf:2: bad input: y\n";
        let head = b"f:1: bad input: x\nf:3: bad input: z\n";
        assert_eq!(
            bad_lines(base, head),
            "f:1: bad input: x\nbase: f:2: bad input: y\nhead: f:3: bad input: z\n"
        );
    }
}
