//! The compile target: a small rule set (one control-point file, the
//! schema files its event types need, the calendar and the lists), one
//! file of it mutated, compiled with `levee_rules::compile`; if it
//! compiles, a few example events of its types evaluated against it.
//! Deep: compiled, and at least one event evaluated.
//!
//! An input is the whole rule set in one text: `#% file: PATH` lines
//! start each file, so a crash file replays on its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use levee_engine::{Engine, Source};
use levee_rules::model::{FieldType, RuleFile};
use levee_rules::render::GraphFormat;
use levee_rules::{RuleSources, Severity};
use serde_norway::Value;

use super::{check_promises, hit_signature};
use crate::corpus::Corpus;
use crate::event::Knowledge;
use crate::expr::Names;
use crate::rng::{fnv, Rng};
use crate::rulefile::{self, Scope};
use crate::runner::{Outcome, Target};

const FILE_MARK: &str = "#% file: ";

/// The share (in 100) of mutations meant to break what they touch.
const BREAK: u32 = 18;

/// One rule set to mutate: its files, and which is the control points'.
#[derive(Debug, Clone)]
struct Unit {
    /// (relative path, text, parsed YAML)
    files: Vec<(String, String, Option<Value>)>,
    /// Index of the control-point file in `files`.
    main: usize,
}

/// The shipped schemas and lists, as names for the expression mutator.
#[derive(Debug, Default)]
struct Catalog {
    types: BTreeMap<String, Names>,
}

impl Scope for Catalog {
    fn names(&self, event_type: &str) -> Names {
        self.types.get(event_type).cloned().unwrap_or_default()
    }
    fn event_types(&self) -> Vec<String> {
        self.types.keys().cloned().collect()
    }
}

#[derive(Debug)]
pub struct Compile {
    units: Vec<Unit>,
    /// Check-error fixtures: rule sets that are wrong on purpose.
    fixtures: Vec<Unit>,
    catalog: Catalog,
    knowledge: Arc<Knowledge>,
    /// Rule sets that compiled, kept for their new behaviour.
    pool: Vec<Vec<(String, String)>>,
    last: Option<Vec<(String, String)>>,
    last_deep: bool,
}

fn parse(text: &str) -> Option<Value> {
    serde_norway::from_str(text).ok()
}

/// Packs a rule set into one input.
pub fn pack(files: &[(String, String)], out: &mut Vec<u8>) {
    for (path, text) in files {
        out.extend_from_slice(FILE_MARK.as_bytes());
        out.extend_from_slice(path.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(text.as_bytes());
        if !text.ends_with('\n') {
            out.push(b'\n');
        }
    }
}

/// Unpacks an input into its files.
pub fn unpack(input: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(input);
    let mut files: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(path) = line.strip_prefix(FILE_MARK) {
            files.push((path.trim_end().to_owned(), String::new()));
        } else if let Some((_, t)) = files.last_mut() {
            t.push_str(line);
        } else {
            files.push(("rules.yaml".to_owned(), line.to_owned()));
        }
    }
    files
}

impl Compile {
    pub fn new(corpus: &Corpus) -> Result<Compile, String> {
        let graph = super::shipped_graph(corpus)?;
        let knowledge = Arc::new(Knowledge::new(&graph, corpus));
        let parsed: Vec<(String, String, Option<RuleFile>)> = corpus
            .rules
            .iter()
            .map(|(p, t)| (p.clone(), t.clone(), serde_norway::from_str(t).ok()))
            .collect();
        // Which schema file defines each event type.
        let mut schema_of: HashMap<String, usize> = HashMap::new();
        let mut catalog = Catalog::default();
        let mut all_fields: Vec<String> = Vec::new();
        let mut lists: Vec<String> = Vec::new();
        for (i, (_, _, rf)) in parsed.iter().enumerate() {
            let Some(rf) = rf else { continue };
            lists.extend(rf.lists.keys().cloned());
            for (name, def) in &rf.event_types {
                schema_of.insert(name.clone(), i);
                let mut n = Names::default();
                for (f, fd) in &def.fields {
                    all_fields.push(f.clone());
                    match fd.ty {
                        FieldType::Number | FieldType::Integer => n.numbers.push(f.clone()),
                        FieldType::String => n.strings.push(f.clone()),
                        FieldType::Boolean => n.bools.push(f.clone()),
                        FieldType::Timestamp => n.times.push(f.clone()),
                    }
                }
                n.numbers
                    .extend(["occurred_hour", "occurred_weekday"].map(str::to_owned));
                n.bools
                    .extend(["occurred_workday", "occurred_holiday"].map(str::to_owned));
                n.strings.extend(["event_id", "branch"].map(str::to_owned));
                n.times.push("occurred_at".to_owned());
                n.other.extend(def.derived.keys().cloned());
                catalog.types.insert(name.clone(), n);
            }
        }
        all_fields.sort();
        all_fields.dedup();
        for n in catalog.types.values_mut() {
            n.lists = lists.clone();
            n.number_literals = knowledge.numbers.clone();
            n.string_literals = knowledge.strings.clone();
            n.foreign = all_fields
                .iter()
                .filter(|f| !n.all_contains(f))
                .take(200)
                .cloned()
                .collect();
        }
        let shared: Vec<usize> = (0..parsed.len())
            .filter(|&i| {
                let path = &parsed[i].0;
                // The calendar, the lists and the tables (registers that
                // points look up) are shared by every control-point file.
                ["calendar/", "lists/", "tables/"]
                    .iter()
                    .any(|dir| path.starts_with(dir))
            })
            .collect();
        let mut units = Vec::new();
        for (i, (path, _, rf)) in parsed.iter().enumerate() {
            let Some(rf) = rf else { continue };
            if rf.control_points.is_empty() {
                continue;
            }
            let mut needed: Vec<usize> = rf
                .control_points
                .iter()
                .filter_map(|cp| schema_of.get(&cp.event_type).copied())
                .collect();
            needed.sort_unstable();
            needed.dedup();
            let mut members: Vec<usize> = needed;
            members.extend(&shared);
            members.push(i);
            let files = members
                .iter()
                .map(|&m| {
                    (
                        parsed[m].0.clone(),
                        parsed[m].1.clone(),
                        parse(&parsed[m].1),
                    )
                })
                .collect::<Vec<_>>();
            let main = files.iter().position(|(p, _, _)| p == path).unwrap_or(0);
            units.push(Unit { files, main });
        }
        if units.is_empty() {
            return Err("no control-point files among the rules".to_owned());
        }
        let fixtures = corpus
            .fixtures
            .iter()
            .map(|set| {
                let files: Vec<_> = set
                    .iter()
                    .map(|(p, t)| (p.clone(), t.clone(), parse(t)))
                    .collect();
                let main = files
                    .iter()
                    .position(|(p, _, _)| p.contains("points"))
                    .unwrap_or(0);
                Unit { files, main }
            })
            .collect();
        Ok(Compile {
            units,
            fixtures,
            catalog,
            knowledge,
            pool: Vec::new(),
            last: None,
            last_deep: false,
        })
    }

    /// One mutated rule set.
    fn mutated(&self, rng: &mut Rng) -> Vec<(String, String)> {
        if !self.pool.is_empty() && rng.percent(20) {
            // A kept rule set: mutate its control-point file's text again.
            let mut files = self.pool[rng.below(self.pool.len())].clone();
            let last = files.len() - 1;
            if let Some(mut v) = parse(&files[last].1) {
                self.mutate_points(rng, &mut v);
                files[last].1 = serde_norway::to_string(&v).unwrap_or_default();
            }
            return files;
        }
        let unit = if rng.percent(3) && !self.fixtures.is_empty() {
            &self.fixtures[rng.below(self.fixtures.len())]
        } else {
            &self.units[rng.below(self.units.len())]
        };
        let target = match rng.below(100) {
            0..=89 => unit.main,
            _ => rng.below(unit.files.len()),
        };
        let mut files: Vec<(String, String)> = Vec::new();
        for (i, (path, text, yaml)) in unit.files.iter().enumerate() {
            if i != target {
                files.push((path.clone(), text.clone()));
                continue;
            }
            let mut text = match yaml.clone() {
                Some(mut v) => {
                    if v.get("control_points").is_some() {
                        self.mutate_points(rng, &mut v);
                    } else if let Some(Value::Mapping(types)) = v.get_mut("event_types") {
                        let n = types.len();
                        if let Some((k, et)) = types.iter_mut().nth(rng.below(n)) {
                            let name = k.as_str().unwrap_or_default().to_owned();
                            rulefile::mutate_schema(rng, &name, et, &self.catalog, BREAK);
                        }
                    } else {
                        rulefile::mutate_other(rng, &mut v);
                    }
                    serde_norway::to_string(&v).unwrap_or_default()
                }
                None => text.clone(),
            };
            if rng.percent(4) {
                rulefile::damage_text(rng, &mut text);
            }
            files.push((path.clone(), text));
        }
        // The control-point file last: a kept set is mutated there.
        let main = files.remove(unit.main);
        files.push(main);
        files
    }

    /// Mutates the control points of a file: one (or a few) of them, and
    /// keeps a handful of the others beside it.
    fn mutate_points(&self, rng: &mut Rng, v: &mut Value) {
        let Some(Value::Sequence(cps)) = v.get_mut("control_points") else {
            return;
        };
        if cps.is_empty() {
            return;
        }
        let i = rng.below(cps.len());
        // Conditions to combine with: of the same event type, and reading
        // no aggregate of their own.
        let event_type = cps[i].get("event_type").cloned();
        let others: Vec<String> = cps
            .iter()
            .filter(|c| c.get("event_type") == event_type.as_ref() && c.get("aggregates").is_none())
            .filter_map(|c| c.get("when").and_then(Value::as_str).map(str::to_owned))
            .take(40)
            .collect();
        let keep = rng.range(0, 6);
        let mut picked = vec![i];
        for _ in 0..keep {
            let j = rng.below(cps.len());
            if !picked.contains(&j) {
                picked.push(j);
            }
        }
        let mut chosen: Vec<Value> = picked.iter().map(|&j| cps[j].clone()).collect();
        for _ in 0..rng.small(2) {
            rulefile::mutate_cp(rng, &mut chosen[0], &self.catalog, &others, BREAK);
        }
        if rng.percent(5) {
            // The same point twice (a duplicate id), or renamed.
            let mut copy = chosen[0].clone();
            if rng.percent(50) {
                if let Some(m) = copy.as_mapping_mut() {
                    let id = format!("FZ-{}", rng.below(1_000_000));
                    m.insert(Value::String("id".into()), Value::String(id));
                }
            }
            chosen.push(copy);
        }
        *cps = chosen;
    }
}

impl Target for Compile {
    fn name(&self) -> &'static str {
        "compile"
    }

    fn generate(&mut self, rng: &mut Rng, out: &mut Vec<u8>) {
        let files = self.mutated(rng);
        pack(&files, out);
        self.last = Some(files);
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let files = unpack(input);
        let sources = RuleSources::from_texts(files.iter().map(|(p, t)| (p.as_str(), t.as_str())));
        let compiled = match levee_rules::compile(&sources) {
            Ok(c) => c,
            Err(diags) => {
                self.last_deep = false;
                assert!(
                    diags.iter().any(|d| d.severity == Severity::Error),
                    "compilation failed without an error"
                );
                let mut sig = 0u64;
                for d in diags.iter().filter(|d| d.is_error()).take(2) {
                    let _ = d.to_string();
                    sig ^= fnv(shape(&d.message).as_bytes());
                }
                return Outcome::shallow("compile error", sig);
            }
        };
        let graph = Arc::new(compiled.graph);
        if graph.control_points.len() < 4 {
            let _ = levee_rules::render::render(&graph, GraphFormat::Mermaid, None);
        }
        let mut engine = Engine::new(graph.clone());
        let mut rng = Rng::new(fnv(input));
        let types: Vec<&str> = graph
            .event_types
            .iter()
            .filter(|t| !t.control_points.is_empty() && t.rekeyed.is_none())
            .map(|t| t.name.as_str())
            .collect();
        let source = Source::File {
            file: "fuzz".to_owned(),
            line: 1,
        };
        let mut outcome = Outcome::shallow("compiled, no event decoded", 1);
        for _ in 0..3 {
            let Some(name) = rng.pick(&types) else { break };
            let Some(ti) = self.knowledge.types.iter().position(|t| t.name == *name) else {
                continue;
            };
            let event = self.knowledge.seed_of(&mut rng, ti).to_bytes();
            let result = engine.process(&event, &source, "2026-12-05T00:00:00.000Z");
            check_promises(&event, &result, &engine);
            if let Ok(p) = &result {
                let sig = hit_signature(&engine, p) ^ outcome.signature.rotate_left(7);
                outcome = Outcome::deep(sig);
            }
        }
        self.last_deep = outcome.deep;
        outcome
    }

    fn keep(&mut self) {
        if let (true, Some(files)) = (self.last_deep, self.last.take()) {
            if self.pool.len() < 512 {
                self.pool.push(files);
            }
        }
    }

    fn reset(&mut self) {}

    fn max_input(&self) -> usize {
        4 << 20
    }

    fn hang_limit(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn persist_current(&self) -> bool {
        true
    }
}

/// A diagnostic's message with names and numbers taken out: the kind of
/// error it is.
fn shape(message: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in message.chars() {
        if c == '`' {
            quoted = !quoted;
            out.push('`');
        } else if !quoted && !c.is_ascii_digit() {
            out.push(c);
        }
    }
    out
}

trait AllContains {
    fn all_contains(&self, name: &str) -> bool;
}

impl AllContains for Names {
    fn all_contains(&self, name: &str) -> bool {
        [
            &self.numbers,
            &self.strings,
            &self.bools,
            &self.times,
            &self.other,
        ]
        .iter()
        .any(|g| g.iter().any(|n| n == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_set_packs_and_unpacks() {
        let files = vec![
            ("a.yaml".to_owned(), "x: 1\n".to_owned()),
            ("b/c.yaml".to_owned(), "y: [2]".to_owned()),
        ];
        let mut out = Vec::new();
        pack(&files, &mut out);
        let back = unpack(&out);
        assert_eq!(back[0], files[0]);
        assert_eq!(back[1], ("b/c.yaml".to_owned(), "y: [2]\n".to_owned()));
        assert_eq!(
            unpack(b"z: 3\n"),
            vec![("rules.yaml".to_owned(), "z: 3\n".to_owned())]
        );
    }

    #[test]
    fn shapes_drop_names_and_numbers() {
        assert_eq!(
            shape("VF-001: unknown name `foo` at 12"),
            "VF-: unknown name `` at "
        );
    }
}
