//! The evaluation plan of an event type: what every event evaluates, and for
//! each control point its condition split into `&&` terms, evaluated one at
//! a time until one is false.
//!
//! Most events breach nothing, and most conditions are conjunctions whose
//! first cheap term (`amount_cny >= 50000`) is already false; evaluating the
//! rest of such a condition would be wasted. A control point fires exactly
//! when every term is true, so stopping at a false term never changes what
//! fires. Nodes shared by several control points are evaluated once per
//! event (the engine stamps each node with the event it was evaluated for).

use crate::graph::{Aggregate, ControlPoint, MessagePart, Op, Program, Slot};

/// How one event type's control points are evaluated. Laid out flat (three
/// arrays in control point order) so that an event walks memory in one
/// direction.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Nodes every event evaluates, in order: the windowed aggregates (which
    /// record history whatever the conditions say) and what they read.
    pub always: Vec<u32>,
    /// One per control point of the type, in the order of
    /// [`crate::graph::EventType::control_points`].
    pub points: Vec<PointPlan>,
    /// Every control point's terms, one after the other.
    pub terms: Vec<Term>,
    /// Node lists of terms and of fired control points, one after the other.
    pub nodes: Vec<u32>,
    /// The program's operations by node index, without the nodes' texts
    /// (denser in memory for evaluation).
    pub ops: Vec<Op>,
}

/// One control point's part of a [`Plan`]: ranges of its arrays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PointPlan {
    /// Its `&&` terms (in [`Plan::terms`]), the cheapest first.
    pub terms: (u32, u32),
    /// The nodes (in [`Plan::nodes`]) its tiers, message, evidence and
    /// subject read, evaluated when it fires.
    pub fired: (u32, u32),
}

/// One `&&` term of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// The slot holding the term's value.
    pub slot: Slot,
    /// The nodes (in [`Plan::nodes`]) to evaluate for it, in order
    /// (constants and [`Plan::always`] nodes left out).
    pub nodes: (u32, u32),
}

impl Plan {
    /// The terms of a control point.
    #[inline]
    pub fn terms(&self, p: &PointPlan) -> &[Term] {
        &self.terms[p.terms.0 as usize..p.terms.1 as usize]
    }

    /// The nodes of a range.
    #[inline]
    pub fn nodes(&self, range: (u32, u32)) -> &[u32] {
        &self.nodes[range.0 as usize..range.1 as usize]
    }
}

/// Marks nodes while walking a program, without allocating per walk.
struct Walker<'a> {
    program: &'a Program,
    aggregates: &'a [Aggregate],
    /// Generation at which each node was last reached.
    mark: Vec<u32>,
    generation: u32,
    /// Nodes left out of every walk (the `always` ones).
    skip: Vec<bool>,
    stack: Vec<Slot>,
}

impl<'a> Walker<'a> {
    fn new(program: &'a Program, aggregates: &'a [Aggregate]) -> Self {
        let n = program.nodes.len();
        Walker {
            program,
            aggregates,
            mark: vec![0; n],
            generation: 0,
            skip: vec![false; n],
            stack: Vec::new(),
        }
    }

    /// The non-constant nodes the roots depend on (themselves included),
    /// minus the skipped ones, in evaluation order.
    fn cone(&mut self, roots: impl IntoIterator<Item = Slot>) -> Vec<u32> {
        self.generation += 1;
        let g = self.generation;
        let n_fields = self.program.n_fields;
        let mut out = Vec::new();
        self.stack.extend(roots);
        while let Some(s) = self.stack.pop() {
            let Some(i) = s.checked_sub(n_fields) else {
                continue;
            };
            let iu = i as usize;
            if iu >= self.mark.len() || self.mark[iu] == g || self.skip[iu] {
                continue;
            }
            self.mark[iu] = g;
            let op = &self.program.nodes[iu].op;
            match op {
                Op::Const(_) => continue,
                Op::Aggregate(a) => {
                    if let Some(spec) = self.aggregates.get(*a as usize) {
                        self.stack.extend(spec.of);
                        self.stack.extend(spec.filter);
                    }
                }
                op => self.stack.extend(op.operands()),
            }
            out.push(i);
        }
        // Operands always come before the nodes that read them.
        out.sort_unstable();
        out
    }
}

/// Builds the plan of one event type whose control points are `points`.
pub fn plan<'c>(
    program: &Program,
    aggregates: &[Aggregate],
    points: impl IntoIterator<Item = &'c ControlPoint>,
) -> Plan {
    let mut w = Walker::new(program, aggregates);
    let n_fields = program.n_fields;
    let aggregate_slots: Vec<Slot> = program
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.op, Op::Aggregate(_)))
        .map(|(i, _)| n_fields + i as u32)
        .collect();
    let always = w.cone(aggregate_slots);
    for &i in &always {
        w.skip[i as usize] = true;
    }
    let mut plan = Plan {
        always,
        ops: program.nodes.iter().map(|n| n.op.clone()).collect(),
        ..Plan::default()
    };
    let push = |nodes: &mut Vec<u32>, list: Vec<u32>| {
        let start = nodes.len() as u32;
        nodes.extend(list);
        (start, nodes.len() as u32)
    };
    for cp in points {
        let mut terms: Vec<(Slot, Vec<u32>)> = conjuncts(program, cp.when)
            .into_iter()
            .map(|slot| (slot, w.cone([slot])))
            .collect();
        // Cheapest first; equal costs keep the author's order.
        terms.sort_by_key(|(_, nodes)| nodes.len());
        let start = plan.terms.len() as u32;
        for (slot, nodes) in terms {
            let nodes = push(&mut plan.nodes, nodes);
            plan.terms.push(Term { slot, nodes });
        }
        let terms = (start, plan.terms.len() as u32);
        let reads = cp
            .tiers
            .iter()
            .filter_map(|t| t.when)
            .chain(cp.message.iter().filter_map(|m| match m {
                MessagePart::Value(s) => Some(*s),
                MessagePart::Text(_) => None,
            }))
            .chain(cp.evidence.iter().map(|(_, s)| *s))
            .chain(std::iter::once(cp.subject));
        let fired = push(&mut plan.nodes, w.cone(reads));
        plan.points.push(PointPlan { terms, fired });
    }
    plan
}

/// The terms of a condition: its operands through nested `&&`, each once,
/// in the order written.
fn conjuncts(program: &Program, when: Slot) -> Vec<Slot> {
    let mut out = Vec::new();
    let mut stack = vec![when];
    while let Some(s) = stack.pop() {
        match program.node(s).map(|n| &n.op) {
            Some(Op::And(a, b)) => {
                stack.push(*b);
                stack.push(*a);
            }
            _ => {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::{compile, RuleSources};

    const RULES: &str = r#"
event_types:
  t:
    stream: s
    subject: who
    fields:
      who: { type: string, required: true }
      a: { type: number, required: true }
      b: { type: number }
      n: { type: integer, required: true }
    derived:
      ratio: "a / (b + 1)"
control_points:
  - id: T-1
    domain: d
    title: t
    event_type: t
    when: "ratio > 2 && a > 10 && (b > 1 || a > 100) && a > 10"
    tiers:
      - { tier: 1, notify: r }
      - { tier: 2, when: "n > 5" }
    message: "{who} {a}"
  - id: T-2
    domain: d
    title: t
    event_type: t
    aggregates:
      total: { fn: sum, of: a, where: "a > 0", over: 1d }
    when: "total > 100"
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
"#;

    #[test]
    fn terms_split_conditions_and_skip_what_always_runs() {
        let graph = compile(&RuleSources::from_texts([("t.yaml", RULES)]))
            .unwrap()
            .graph;
        let (_, et) = graph.event_type("t").unwrap();
        let p = &et.program;
        let plan = &et.plan;
        assert_eq!(plan.points.len(), 2);
        let text = |s: u32| {
            p.node(s)
                .map_or_else(|| format!("field {s}"), |n| n.text.clone())
        };

        // T-1: three distinct terms (the repeated one once), cheapest first.
        let terms = |k: usize| plan.terms(&plan.points[k]);
        let t1: Vec<String> = terms(0).iter().map(|t| text(t.slot)).collect();
        assert_eq!(t1.len(), 3, "{t1:?}");
        assert!(t1[0].contains("a > 10"), "{t1:?}");
        let sizes: Vec<usize> = terms(0).iter().map(|t| plan.nodes(t.nodes).len()).collect();
        assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
        // Each term's nodes end with the term itself, in evaluation order,
        // and hold no constants.
        for t in terms(0) {
            let nodes = plan.nodes(t.nodes);
            assert_eq!(Some(&(t.slot - p.n_fields)), nodes.last());
            assert!(nodes.windows(2).all(|w| w[0] < w[1]));
            assert!(nodes
                .iter()
                .all(|&i| !matches!(p.nodes[i as usize].op, crate::graph::Op::Const(_))));
        }
        // Tier 2's condition is evaluated only when T-1 fires.
        let tier2 = graph.control_points[et.control_points[0] as usize].tiers[0]
            .when
            .unwrap();
        assert!(plan
            .nodes(plan.points[0].fired)
            .contains(&(tier2 - p.n_fields)));

        // The aggregate and its filter run for every event and belong to no
        // term: T-2's term is just the comparison.
        assert!(plan
            .always
            .iter()
            .any(|&i| matches!(p.nodes[i as usize].op, crate::graph::Op::Aggregate(_))));
        assert_eq!(terms(1).len(), 1);
        assert_eq!(plan.nodes(terms(1)[0].nodes).len(), 1);
    }
}
