//! `levee graph`: the compiled graph for people, as Graphviz dot or Mermaid.
//!
//! Per event type: its fields → derived values → predicates (condition roots,
//! and boolean nodes that several conditions share) → control points → tiers
//! with their notify roles. Unnamed intermediate nodes are folded into the
//! edges, so what is drawn is what a rule author named or shares.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use crate::graph::{Op, RuleGraph, Slot, Ty};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

enum Shape {
    Type,
    Field,
    Derived,
    Predicate,
    ControlPoint,
    Tier,
}

struct Out {
    format: GraphFormat,
    text: String,
}

impl Out {
    fn node(&mut self, id: &str, label: &str, shape: Shape) {
        let label = label.replace('"', "'");
        match self.format {
            GraphFormat::Dot => {
                let style = match shape {
                    Shape::Type => "shape=box, style=\"rounded,filled\", fillcolor=\"#dde6f7\"",
                    Shape::Field => "shape=ellipse",
                    Shape::Derived => "shape=ellipse, style=filled, fillcolor=\"#eef5e6\"",
                    Shape::Predicate => "shape=diamond",
                    Shape::ControlPoint => "shape=box, style=filled, fillcolor=\"#fbe9d0\"",
                    Shape::Tier => "shape=note",
                };
                let _ = writeln!(self.text, "  {id} [label=\"{label}\", {style}];");
            }
            GraphFormat::Mermaid => {
                let label = label.replace(['[', ']', '{', '}', '(', ')'], " ");
                let (open, close) = match shape {
                    Shape::Type => ("([", "])"),
                    Shape::Field => ("(", ")"),
                    Shape::Derived => ("([", "])"),
                    Shape::Predicate => ("{{", "}}"),
                    Shape::ControlPoint => ("[", "]"),
                    Shape::Tier => ("[/", "/]"),
                };
                let _ = writeln!(self.text, "  {id}{open}\"{label}\"{close}");
            }
        }
    }

    fn edge(&mut self, from: &str, to: &str) {
        match self.format {
            GraphFormat::Dot => {
                let _ = writeln!(self.text, "  {from} -> {to};");
            }
            GraphFormat::Mermaid => {
                let _ = writeln!(self.text, "  {from} --> {to}");
            }
        }
    }
}

fn ident(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Renders the graph, or only one event type's part of it.
pub fn render(graph: &RuleGraph, format: GraphFormat, only: Option<&str>) -> String {
    let mut out = Out {
        format,
        text: String::new(),
    };
    match format {
        GraphFormat::Dot => {
            out.text
                .push_str("digraph levee {\n  rankdir=LR;\n  node [fontname=\"sans-serif\"];\n");
        }
        GraphFormat::Mermaid => out.text.push_str("flowchart LR\n"),
    }
    for et in &graph.event_types {
        if only.is_some_and(|o| o != et.name) {
            continue;
        }
        let p = &et.program;
        let t = ident(&et.name);
        let sid = |s: Slot| format!("{t}_{s}");

        // Condition roots, and how many roots reach each node.
        let mut roots: Vec<Slot> = Vec::new();
        for &ci in &et.control_points {
            let cp = &graph.control_points[ci as usize];
            roots.push(cp.when);
            roots.extend(cp.tiers.iter().filter_map(|t| t.when));
        }
        let mut reach: HashMap<Slot, BTreeSet<usize>> = HashMap::new();
        for (ri, &r) in roots.iter().enumerate() {
            let mut stack = vec![r];
            while let Some(s) = stack.pop() {
                if reach.entry(s).or_default().insert(ri) {
                    if let Some(n) = p.node(s) {
                        stack.extend(n.op.operands());
                    }
                }
            }
        }
        let derived: HashMap<Slot, &str> =
            et.derived.iter().map(|(n, s)| (*s, n.as_str())).collect();
        let shown = |s: Slot| -> bool {
            if s < p.n_fields || derived.contains_key(&s) || roots.contains(&s) {
                return true;
            }
            p.node(s).is_some_and(|n| {
                n.ty == Ty::Bool
                    && !matches!(n.op, Op::Const(_))
                    && reach.get(&s).is_some_and(|r| r.len() > 1)
            })
        };

        out.node(&t, &format!("event type {}", et.name), Shape::Type);
        let mut drawn: BTreeSet<Slot> = BTreeSet::new();
        let mut order: Vec<Slot> = reach
            .keys()
            .copied()
            .chain(derived.keys().copied())
            .collect();
        order.sort_unstable();
        order.dedup();
        for s in order {
            if !shown(s) || !drawn.insert(s) {
                continue;
            }
            if s < p.n_fields {
                out.node(&sid(s), &et.fields[s as usize].name, Shape::Field);
                out.edge(&t, &sid(s));
                continue;
            }
            let Some(n) = p.node(s) else { continue };
            match derived.get(&s) {
                Some(name) => out.node(&sid(s), &format!("{name} = {}", n.text), Shape::Derived),
                None => out.node(&sid(s), &n.text, Shape::Predicate),
            }
            // Edges from the nearest shown nodes below this one.
            let mut deps: BTreeSet<Slot> = BTreeSet::new();
            let mut stack = n.op.operands();
            while let Some(d) = stack.pop() {
                if p.node(d).is_some_and(|x| matches!(x.op, Op::Const(_))) {
                    continue;
                }
                if shown(d) {
                    deps.insert(d);
                } else if let Some(x) = p.node(d) {
                    stack.extend(x.op.operands());
                }
            }
            for d in deps {
                out.edge(&sid(d), &sid(s));
            }
        }
        for &ci in &et.control_points {
            let cp = &graph.control_points[ci as usize];
            let c = format!("cp_{}", ident(&cp.id));
            let action = if cp.action == crate::model::Action::Block {
                " [block]"
            } else {
                ""
            };
            out.node(
                &c,
                &format!("{}{action}: {}", cp.id, cp.title),
                Shape::ControlPoint,
            );
            out.edge(&sid(cp.when), &c);
            for tier in cp.tiers.iter().rev() {
                let tid = format!("{c}_t{}", tier.tier);
                out.node(
                    &tid,
                    &format!("tier {} → {}", tier.tier, tier.notify),
                    Shape::Tier,
                );
                out.edge(&c, &tid);
                if let Some(w) = tier.when {
                    out.edge(&sid(w), &tid);
                }
            }
        }
    }
    if format == GraphFormat::Dot {
        out.text.push_str("}\n");
    }
    out.text
}
