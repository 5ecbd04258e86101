//! `levee test --mutate`: are a control point's tests enough to notice it
//! changed? Each control point's conditions are mutated ([`operators`]),
//! and the point's test cases run against each mutant; a mutant no case
//! fails on survives: a change to the rule the tests would let through.
//!
//! The catalog is parsed once; each mutant is the catalog's event types,
//! lists and calendar with the mutated control point alone
//! ([`levee_rules::variant::Catalog::compile_one`]), and only the cases
//! with an event of its event type run against it, checked for what they
//! say about that point ([`crate::cases::Scope::Only`]). Control points
//! are shared out over the machine's cores.

mod lines;
mod operators;
mod report;
mod suggest;
mod tokens;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use levee_rules::graph::Const;
use levee_rules::model::{ControlPointDef, TestCase, TestFile};
use levee_rules::variant::Catalog;
use levee_rules::SourceFile;

use self::operators::{mutants, Lists, Operator, EMPTY_LIST};
pub use self::report::Format;
use self::report::{Fate, Mutant, Point};
use crate::cases::{self, Scope};

/// What `levee test --mutate` was asked.
#[derive(Debug)]
pub struct Options {
    /// Only control points whose id or file contains this text.
    pub filter: Option<String>,
    /// The lowest score that passes.
    pub min_score: Option<f64>,
    pub format: Format,
    /// Where to write suggested cases for the survivors, if anywhere.
    pub suggest: Option<std::path::PathBuf>,
}

/// A test case with the event types of its events.
struct Case<'a> {
    /// The file relative to the rules directory (events' source).
    file: &'a str,
    /// The file as the user would type it (for messages).
    path: &'a str,
    case: &'a TestCase,
    types: BTreeSet<&'a str>,
}

pub fn run(rules: &Path, options: &Options) -> anyhow::Result<ExitCode> {
    let sources = match levee_rules::read_rules_dir(rules) {
        Ok(s) => s,
        Err(diags) => {
            crate::rules::print_failure(&diags);
            return Ok(ExitCode::FAILURE);
        }
    };
    let graph = match levee_rules::compile(&sources) {
        Ok(c) => c.graph,
        Err(diags) => {
            crate::rules::print_failure(&diags);
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut catalog = match Catalog::parse(&sources) {
        Ok(c) => c,
        Err(diags) => {
            crate::rules::print_failure(&diags);
            return Ok(ExitCode::FAILURE);
        }
    };
    catalog.add_lists(
        "(mutation testing)",
        BTreeMap::from([(EMPTY_LIST.to_owned(), Vec::new())]),
    );
    // Named lists only: `contains(("a", "b"), x)` makes a list too.
    let named = |name: &str| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let lists = Lists::new(graph.lists.iter().filter(|l| named(&l.name)).map(|l| {
        let kinds: BTreeSet<&str> = l.items.iter().map(|c| c.ty().name()).collect();
        let kind = kinds.into_iter().collect::<Vec<_>>().join("+");
        let items = l.items.iter().map(show_const).collect();
        (l.name.clone(), kind, items)
    }));

    let files = match levee_rules::read_test_files(rules) {
        Ok(f) => f,
        Err(diags) => {
            crate::rules::print_failure(&diags);
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut parsed: Vec<(&SourceFile, TestFile)> = Vec::new();
    for f in &files {
        match serde_norway::from_str(&f.text) {
            Ok(t) => parsed.push((f, t)),
            Err(e) => {
                eprintln!("levee: {}: the test file does not parse: {e}", f.path);
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    let all_cases: Vec<Case<'_>> = parsed
        .iter()
        .flat_map(|(f, t)| {
            t.cases.iter().map(|case| Case {
                file: &f.relative,
                path: &f.path,
                case,
                types: case
                    .events
                    .iter()
                    .filter_map(|e| e.get("type").and_then(|t| t.as_str()))
                    .collect(),
            })
        })
        .collect();

    let points: Vec<(&SourceFile, &ControlPointDef)> = catalog
        .control_points()
        .filter(|(f, cp)| {
            options
                .filter
                .as_deref()
                .is_none_or(|x| cp.id.contains(x) || f.path.contains(x))
        })
        .collect();
    if points.is_empty() {
        eprintln!("levee: no control point to mutate");
        return Ok(ExitCode::FAILURE);
    }
    let full = Arc::new(graph);
    let suggest = options.suggest.is_some().then_some(&full);
    let results = on_all_cores(points.len(), |k| {
        let (file, cp) = points[k];
        mutate_point(&catalog, file, cp, &all_cases, &lists, suggest)
    });
    if let Some(dir) = &options.suggest {
        write_suggestions(dir, &results)?;
    }
    let summary = report::Summary::new(&results);
    match options.format {
        Format::Text => report::print_text(&results, &summary, options.min_score),
        Format::Json => report::print_json(&results, &summary, options.min_score)?,
    }
    let below = options.min_score.is_some_and(|m| summary.score() < m);
    Ok(if below || summary.failing > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `f(0..n)` on as many threads as the machine has cores, in order.
fn on_all_cores<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |c| c.get())
        .min(n)
        .max(1);
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= n {
                return done;
            }
            done.push((k, f(k)));
        }
    };
    let mut all: Vec<(usize, T)> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in helpers {
            match h.join() {
                Ok(done) => all.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    all.sort_by_key(|(k, _)| *k);
    all.into_iter().map(|(_, t)| t).collect()
}

/// A variant of a control point: one of its conditions mutated.
struct Variant {
    operator: Operator,
    /// The condition mutated, as written.
    original: String,
    place: String,
    line: Option<usize>,
    change: String,
    text: String,
    def: ControlPointDef,
}

/// Every variant of `cp`: its `when` mutated, then each tier's.
fn variants(file: &SourceFile, cp: &ControlPointDef, lists: &Lists) -> Vec<Variant> {
    let at = lines::find(&file.text, &cp.id);
    let mut out = Vec::new();
    for m in mutants(&cp.when, lists) {
        let mut def = cp.clone();
        def.when.clone_from(&m.text);
        out.push(Variant {
            operator: m.operator,
            original: cp.when.clone(),
            place: "when".to_owned(),
            line: at.when.or(at.id),
            change: m.change,
            text: m.text,
            def,
        });
    }
    for (k, tier) in cp.tiers.iter().enumerate() {
        let Some(when) = &tier.when else {
            continue;
        };
        let n = u8::try_from(tier.tier).unwrap_or(0);
        let place = format!("tier {n} when");
        for m in mutants(when, lists) {
            let mut def = cp.clone();
            def.tiers[k].when = Some(m.text.clone());
            out.push(Variant {
                operator: m.operator,
                original: when.clone(),
                place: place.clone(),
                line: at.tier(n),
                change: m.change,
                text: m.text,
                def,
            });
        }
        let mut def = cp.clone();
        def.tiers[k].when = None;
        out.push(Variant {
            operator: Operator::TierDropped,
            original: when.clone(),
            place,
            line: at.tier(n),
            change: format!("dropped `{when}`: tier {n} whenever the point fires"),
            text: String::new(),
            def,
        });
    }
    out
}

/// Runs control point `cp`'s cases against each of its mutants.
fn mutate_point(
    catalog: &Catalog,
    file: &SourceFile,
    cp: &ControlPointDef,
    all_cases: &[Case<'_>],
    lists: &Lists,
    suggest: Option<&Arc<levee_rules::RuleGraph>>,
) -> Point {
    let mut point = Point {
        id: cp.id.clone(),
        file: file.path.clone(),
        cases: 0,
        failing: Vec::new(),
        mutants: Vec::new(),
        relative: file.relative.clone(),
        suggestions: Vec::new(),
    };
    let graph = match catalog.compile_one(file, cp) {
        Ok(c) => Arc::new(c.graph),
        Err(diags) => {
            let problems = diags.iter().map(|d| d.to_string()).collect();
            point
                .failing
                .push(("(compiling it alone)".to_owned(), problems));
            return point;
        }
    };
    let mut usable: Vec<&Case<'_>> = Vec::new();
    for c in all_cases
        .iter()
        .filter(|c| c.types.contains(cp.event_type.as_str()))
    {
        point.cases += 1;
        match cases::run(&graph, c.file, c.case, Scope::Only(&cp.id)) {
            Ok(()) => usable.push(c),
            Err(problems) => point
                .failing
                .push((format!("{}: {}", c.path, c.case.name), problems)),
        }
    }
    let mut survivors: Vec<(usize, String, Arc<levee_rules::RuleGraph>)> = Vec::new();
    for v in variants(file, cp, lists) {
        let fate = match catalog.compile_one(file, &v.def) {
            Err(_) => Fate::Invalid,
            Ok(c) => {
                let graph = Arc::new(c.graph);
                let fails = |c: &&Case<'_>| {
                    cases::run(&graph, c.file, c.case, Scope::Only(&cp.id)).is_err()
                };
                if usable.iter().any(fails) {
                    Fate::Killed
                } else {
                    survivors.push((point.mutants.len(), v.original.clone(), graph));
                    Fate::Survived
                }
            }
        };
        point.mutants.push(Mutant {
            operator: v.operator,
            place: v.place,
            line: v.line,
            change: v.change,
            text: v.text,
            fate,
        });
    }
    if let (Some(full), Some(event_type)) = (suggest, catalog.event_type(&cp.event_type)) {
        let p = suggest::Point {
            def: cp,
            event_type,
            full,
            alone: &graph,
        };
        point.suggestions = suggestions(&p, &point, &usable, survivors);
    }
    point
}

/// Suggested cases for a point's survivors, each telling apart as many of
/// them as it can.
fn suggestions(
    p: &suggest::Point<'_>,
    point: &Point,
    usable: &[&Case<'_>],
    mut open: Vec<(usize, String, Arc<levee_rules::RuleGraph>)>,
) -> Vec<String> {
    // Cases where the point fires first: they reach its tiers.
    let mut bases: Vec<suggest::Base<'_>> = usable
        .iter()
        .map(|c| suggest::Base {
            file: c.file,
            case: c.case,
        })
        .collect();
    bases.sort_by_key(|b| !b.case.expect.iter().any(|e| e.control_point == p.def.id));
    let mut out = Vec::new();
    while let Some((k, condition, graph)) = open.first().cloned() {
        let Some((case, what, base)) = suggest::find(p, &graph, &condition, &bases) else {
            open.remove(0);
            continue;
        };
        let file = bases[base].file;
        let (told, left): (Vec<_>, Vec<_>) = open
            .into_iter()
            .partition(|(j, _, g)| *j == k || suggest::kills(p, g, file, &case));
        open = left;
        let changes: Vec<String> = told
            .iter()
            .map(|(j, _, _)| {
                let m = &point.mutants[*j];
                format!("{} {}", m.place, m.change)
            })
            .collect();
        if let Some(s) = suggest::write(p, file, &case, &what, &changes) {
            out.push(s.yaml);
        }
    }
    out
}

/// Writes the suggested cases, one test file per rule file:
/// `DIR/boundaries_<rule file>.yaml`.
fn write_suggestions(dir: &Path, points: &[Point]) -> anyhow::Result<()> {
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for p in points.iter().filter(|p| !p.suggestions.is_empty()) {
        let stem = p
            .relative
            .trim_end_matches(".yaml")
            .replace(['/', '\\'], "_");
        let text = files
            .entry(format!("boundaries_{stem}.yaml"))
            .or_insert_with(|| {
                format!(
                    "# Boundary cases suggested by `levee test --mutate --suggest` for {}.\ncases:\n",
                    p.relative
                )
            });
        for s in &p.suggestions {
            text.push_str(s);
        }
    }
    std::fs::create_dir_all(dir)?;
    for (name, text) in files {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

/// A list item as text, to compare lists' items.
fn show_const(c: &Const) -> String {
    match c {
        Const::Str(s) => s.to_string(),
        Const::Int(i) => i.to_string(),
        Const::Float(f) => f.to_string(),
        Const::Bool(b) => b.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_is_mutated_and_each_tier_condition_dropped() {
        let text = "control_points:\n  - id: T-1\n    domain: d\n    title: t\n    event_type: t\n    when: a > 10\n    tiers:\n      - { tier: 1, notify: r }\n      - { tier: 2, when: a > 100 }\n    message: m\n";
        let rf: levee_rules::model::RuleFile = serde_norway::from_str(text).unwrap();
        let file = SourceFile {
            path: "rules/t.yaml".to_owned(),
            relative: "t.yaml".to_owned(),
            text: text.to_owned(),
        };
        let cp = &rf.control_points[0];
        let v = variants(&file, cp, &Lists::default());
        let show: Vec<(String, Option<usize>, String)> = v
            .iter()
            .map(|v| (v.place.clone(), v.line, v.change.clone()))
            .collect();
        // `a > 10`: `>=`, 9, 11; `a > 100`: `>=`, 99, 101, then dropped.
        assert_eq!(show.len(), 7, "{show:?}");
        assert_eq!(
            show[0],
            ("when".to_owned(), Some(6), "`>` → `>=`".to_owned())
        );
        assert_eq!(show[3].0, "tier 2 when");
        assert_eq!(show[3].1, Some(9));
        let dropped = &v[6];
        assert_eq!(dropped.operator, Operator::TierDropped);
        assert_eq!(dropped.def.tiers[1].when, None);
        assert_eq!(dropped.def.when, "a > 10");
        assert_eq!(v[1].def.when, "a > 9");
    }

    #[test]
    fn work_on_all_cores_comes_back_in_order() {
        assert_eq!(
            on_all_cores(50, |k| k * 2),
            (0..50).map(|k| k * 2).collect::<Vec<_>>()
        );
    }
}
