//! Variants of one control point, compiled against a catalog parsed once.
//!
//! `levee test --mutate` compiles thousands of variants of single control
//! points. Parsing the catalog's YAML is most of what a compilation costs,
//! so [`Catalog`] parses it once and [`Catalog::compile_one`] compiles the
//! catalog's event types, lists and calendar with just one control point:
//! a graph in which only that point can fire.

use std::collections::BTreeMap;

use crate::compile::{build, parse_sources, Compiled};
use crate::diag::Diagnostic;
use crate::load::{RuleSources, SourceFile};
use crate::model::{ControlPointDef, EventTypeDef, ListItem, RuleFile};

/// A rules directory parsed once.
#[derive(Debug)]
pub struct Catalog {
    files: Vec<(SourceFile, RuleFile)>,
    version: String,
}

impl Catalog {
    /// Parses rule sources; every file must parse.
    pub fn parse(sources: &RuleSources) -> Result<Self, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let parsed = parse_sources(sources, &mut diags);
        if diags.iter().any(Diagnostic::is_error) {
            return Err(diags);
        }
        Ok(Catalog {
            files: parsed.into_iter().map(|(f, rf)| (f.clone(), rf)).collect(),
            version: sources.version(),
        })
    }

    /// Adds lists (under a file of their own named `path`) that variants
    /// may name, e.g. an empty one.
    pub fn add_lists(&mut self, path: &str, lists: BTreeMap<String, Vec<ListItem>>) {
        let file = SourceFile {
            path: path.to_owned(),
            relative: path.to_owned(),
            text: String::new(),
        };
        let rf = RuleFile {
            lists,
            ..RuleFile::default()
        };
        self.files.push((file, rf));
    }

    /// Every control point, with the file it is written in, in file order.
    pub fn control_points(&self) -> impl Iterator<Item = (&SourceFile, &ControlPointDef)> {
        self.files
            .iter()
            .flat_map(|(f, rf)| rf.control_points.iter().map(move |cp| (f, cp)))
    }

    /// The definition of event type `name`.
    pub fn event_type(&self, name: &str) -> Option<&EventTypeDef> {
        self.files
            .iter()
            .find_map(|(_, rf)| rf.event_types.get(name))
    }

    /// The catalog's event types, lists and calendar with one control point,
    /// `cp`, as if written in `file`.
    pub fn compile_one(
        &self,
        file: &SourceFile,
        cp: &ControlPointDef,
    ) -> Result<Compiled, Vec<Diagnostic>> {
        let files: Vec<(&SourceFile, &RuleFile)> =
            self.files.iter().map(|(f, rf)| (f, rf)).collect();
        let points = [(file, std::slice::from_ref(cp))];
        build(&files, &points, self.version.clone(), Vec::new())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RULES: &str = r#"
event_types:
  t:
    stream: s
    subject: who
    fields:
      who: { type: string, required: true }
      a: { type: number, required: true }
lists:
  names: [x, y]
control_points:
  - id: T-1
    domain: d
    title: t
    event_type: t
    when: "a > 10"
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
  - id: T-2
    domain: d
    title: t
    event_type: t
    when: "contains(names, who)"
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
"#;

    #[test]
    fn a_variant_compiles_alone_with_the_catalogs_types_and_lists() {
        let sources = RuleSources::from_texts([("t.yaml", RULES)]);
        let mut catalog = Catalog::parse(&sources).unwrap();
        let ids: Vec<&str> = catalog
            .control_points()
            .map(|(_, c)| c.id.as_str())
            .collect();
        assert_eq!(ids, ["T-1", "T-2"]);

        let (file, t1) = catalog.control_points().next().unwrap();
        let mut changed = t1.clone();
        changed.when = "a >= 10".to_owned();
        let graph = catalog.compile_one(file, &changed).unwrap().graph;
        assert_eq!(graph.control_points.len(), 1);
        assert_eq!(graph.control_points[0].when_src, "a >= 10");
        assert_eq!(graph.version, sources.version());
        assert!(graph.lists.iter().any(|l| l.name == "names"));
        assert!(catalog
            .event_type("t")
            .is_some_and(|t| t.fields.contains_key("a")));

        // A variant naming a list added for it.
        catalog.add_lists("extra.yaml", BTreeMap::from([("none".to_owned(), vec![])]));
        let (file, t2) = catalog.control_points().nth(1).unwrap();
        let mut emptied = t2.clone();
        emptied.when = "contains(none, who)".to_owned();
        assert!(catalog.compile_one(file, &emptied).is_ok());
        // A broken variant is an error, as in any compilation.
        emptied.when = "contains(nowhere, who)".to_owned();
        assert!(catalog.compile_one(file, &emptied).is_err());
    }
}
