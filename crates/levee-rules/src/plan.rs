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

use crate::graph::{Aggregate, Arith, Cmp, Const, ControlPoint, MessagePart, Op, Program, Slot};

mod index;
pub use index::{near, Group, Index, Keys, NumValue, NEAR_ABS, NEAR_REL};

/// How one event type's control points are evaluated. Laid out flat (three
/// arrays in control point order) so that an event walks memory in one
/// direction.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Nodes every event evaluates, in order: the windowed aggregates (which
    /// record history whatever the conditions say) and what they read.
    pub always: Vec<u32>,
    /// The same nodes lowered for the evaluator: `always_code[j]`
    /// evaluates node `always[j]` (aggregates are [`Code::Node`]).
    pub always_code: Vec<Code>,
    /// One per control point of the type, in the order of
    /// [`crate::graph::EventType::control_points`].
    pub points: Vec<PointPlan>,
    /// Every control point's terms, one after the other.
    pub terms: Vec<Term>,
    /// Node lists of terms and of fired control points, one after the other.
    pub nodes: Vec<u32>,
    /// The same nodes lowered for the evaluator: `code[j]` evaluates node
    /// `nodes[j]`.
    pub code: Vec<Code>,
    /// The program's operations by node index, without the nodes' texts
    /// (denser in memory for evaluation).
    pub ops: Vec<Op>,
    /// Thresholds of the control points, to skip those whose threshold the
    /// event does not reach without looking at them.
    pub index: Index,
}

/// A node of [`Plan::nodes`] as the evaluator runs it: the commonest
/// operations on a slot and a constant, with the constant inline, or else
/// the node's [`Op`] (from [`Plan::ops`]).
///
/// The lowered forms are cheap and write only their own slot from slots
/// already computed for the event, so evaluating one again gives the same
/// value: they are not stamped. Semantics are those of the generic
/// operation (`Missing` and `Error` of `x` propagate; a constant is
/// neither).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Code {
    /// Node `.0`, evaluated from its [`Op`] once per event.
    Node(u32),
    /// `x cmp c`, an integer constant (compared as integers with an integer,
    /// as floats with a float, an error with anything else).
    CmpInt {
        node: u32,
        cmp: Cmp,
        x: Slot,
        c: i64,
    },
    /// `x cmp c`, a float constant (compared as floats with a number).
    CmpFloat {
        node: u32,
        cmp: Cmp,
        x: Slot,
        c: f64,
    },
    /// `x == c` (`x != c` when `neg`), an integer constant: false for
    /// values of other kinds.
    EqInt {
        node: u32,
        neg: bool,
        x: Slot,
        c: i64,
    },
    /// `x == c` (`x != c` when `neg`), a boolean constant.
    EqBool {
        node: u32,
        neg: bool,
        c: bool,
        x: Slot,
    },
    /// `x cmp y` (slots of any kind, constants included).
    Cmp {
        node: u32,
        cmp: Cmp,
        x: Slot,
        y: Slot,
    },
    /// `x a y` (slots of any kind, constants included).
    Arith {
        node: u32,
        a: Arith,
        x: Slot,
        y: Slot,
    },
    /// `x == y` (`x != y` when `neg`): exactly, values of different kinds
    /// unequal.
    Eq {
        node: u32,
        neg: bool,
        x: Slot,
        y: Slot,
    },
    /// `!x`.
    Not { node: u32, x: Slot },
    /// `x && y` (both evaluated: no short circuit, as evalexpr's graph).
    And { node: u32, x: Slot, y: Slot },
    /// `x || y`.
    Or { node: u32, x: Slot, y: Slot },
}

/// Lowers node `i` of `program`.
pub fn lower(program: &Program, i: u32) -> Code {
    let Some(node) = program.nodes.get(i as usize) else {
        return Code::Node(i);
    };
    let constant = |s: Slot| match program.node(s).map(|n| &n.op) {
        Some(Op::Const(c)) => Some(c),
        _ => None,
    };
    // (operand, constant) of an operation on one slot and one constant,
    // and whether the constant came first.
    let split = |a: Slot, b: Slot| match (constant(a), constant(b)) {
        (None, Some(c)) => Some((a, c, false)),
        (Some(c), None) => Some((b, c, true)),
        _ => None,
    };
    match &node.op {
        Op::Cmp(cmp, a, b) => match split(*a, *b) {
            Some((x, c, flipped)) => {
                let turned = if flipped {
                    match cmp {
                        Cmp::Lt => Cmp::Gt,
                        Cmp::Le => Cmp::Ge,
                        Cmp::Gt => Cmp::Lt,
                        Cmp::Ge => Cmp::Le,
                    }
                } else {
                    *cmp
                };
                match c {
                    Const::Int(c) => Code::CmpInt {
                        node: i,
                        cmp: turned,
                        x,
                        c: *c,
                    },
                    Const::Float(c) => Code::CmpFloat {
                        node: i,
                        cmp: turned,
                        x,
                        c: *c,
                    },
                    _ => Code::Cmp {
                        node: i,
                        cmp: *cmp,
                        x: *a,
                        y: *b,
                    },
                }
            }
            None => Code::Cmp {
                node: i,
                cmp: *cmp,
                x: *a,
                y: *b,
            },
        },
        Op::Arith(a, x, y) => Code::Arith {
            node: i,
            a: *a,
            x: *x,
            y: *y,
        },
        Op::Eq(a, b) | Op::Neq(a, b) => {
            let neg = matches!(node.op, Op::Neq(..));
            match split(*a, *b) {
                Some((x, Const::Int(c), _)) => Code::EqInt {
                    node: i,
                    neg,
                    x,
                    c: *c,
                },
                Some((x, Const::Bool(c), _)) => Code::EqBool {
                    node: i,
                    neg,
                    c: *c,
                    x,
                },
                _ => Code::Eq {
                    node: i,
                    neg,
                    x: *a,
                    y: *b,
                },
            }
        }
        Op::Not(x) if constant(*x).is_none() => Code::Not { node: i, x: *x },
        Op::And(x, y) if constant(*x).is_none() && constant(*y).is_none() => Code::And {
            node: i,
            x: *x,
            y: *y,
        },
        Op::Or(x, y) if constant(*x).is_none() && constant(*y).is_none() => Code::Or {
            node: i,
            x: *x,
            y: *y,
        },
        _ => Code::Node(i),
    }
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

    /// The lowered nodes of a range.
    #[inline]
    pub fn code(&self, range: (u32, u32)) -> &[Code] {
        &self.code[range.0 as usize..range.1 as usize]
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
    // (slot, comparison, integer constants?) → group number.
    let mut groups: std::collections::HashMap<(Slot, Cmp, bool), usize> =
        std::collections::HashMap::new();
    let mut unindexed: Vec<u32> = Vec::new();
    let push = |nodes: &mut Vec<u32>, list: Vec<u32>| {
        let start = nodes.len() as u32;
        nodes.extend(list);
        (start, nodes.len() as u32)
    };
    for (k, cp) in points.into_iter().enumerate() {
        let mut terms: Vec<(Slot, Vec<u32>)> = conjuncts(program, cp.when)
            .into_iter()
            .map(|slot| (slot, w.cone([slot])))
            .collect();
        // Cheapest first; equal costs keep the author's order.
        terms.sort_by_key(|(_, nodes)| nodes.len());
        // The index term: the cheapest comparison with a constant. A
        // control point with `for:` is evaluated on every event (a false
        // condition resets it).
        let indexed = if cp.hold_for.is_some() {
            None
        } else {
            terms.iter().find_map(|(slot, _)| threshold(program, *slot))
        };
        match indexed {
            Some((x, cmp, c)) => {
                let int = matches!(c, Const::Int(_));
                let g = *groups.entry((x, cmp, int)).or_insert_with(|| {
                    let nodes = push(&mut plan.nodes, w.cone([x]));
                    plan.index.groups.push(Group {
                        slot: x,
                        nodes,
                        cmp,
                        keys: if int {
                            Keys::Int(Vec::new())
                        } else {
                            Keys::Float(Vec::new())
                        },
                    });
                    plan.index.groups.len() - 1
                });
                match (&mut plan.index.groups[g].keys, c) {
                    (Keys::Int(keys), Const::Int(v)) => keys.push((v, k as u32)),
                    (Keys::Float(keys), Const::Float(v)) => keys.push((v, k as u32)),
                    _ => unindexed.push(k as u32),
                }
            }
            None => unindexed.push(k as u32),
        }
        let start = plan.terms.len() as u32;
        for (slot, nodes) in terms {
            let nodes = push(&mut plan.nodes, nodes);
            plan.terms.push(Term { slot, nodes });
        }
        let terms = (start, plan.terms.len() as u32);
        let reads = cp
            .tiers
            .iter()
            .flat_map(|t| t.when.into_iter().chain(t.recuse))
            .chain(cp.message.iter().filter_map(MessagePart::slot))
            .chain(cp.message_zh.iter().flatten().filter_map(MessagePart::slot))
            .chain(cp.evidence.iter().map(|(_, s)| *s))
            .chain(std::iter::once(cp.subject));
        let fired = push(&mut plan.nodes, w.cone(reads));
        plan.points.push(PointPlan { terms, fired });
    }
    plan.code = plan.nodes.iter().map(|&i| lower(program, i)).collect();
    plan.always_code = plan.always.iter().map(|&i| lower(program, i)).collect();
    for g in &mut plan.index.groups {
        match &mut g.keys {
            Keys::Int(keys) => keys.sort_by_key(|&(v, c)| (v, c)),
            Keys::Float(keys) => keys.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))),
        }
    }
    let n = plan.points.len();
    plan.index.unindexed = vec![0; n.div_ceil(64)];
    for k in unindexed {
        plan.index.unindexed[k as usize / 64] |= 1 << (k % 64);
    }
    plan
}

/// A term `x cmp constant` (or `constant cmp x`, turned around) with a
/// number constant that is not NaN: (x, cmp, constant).
fn threshold(program: &Program, term: Slot) -> Option<(Slot, Cmp, Const)> {
    let Op::Cmp(cmp, a, b) = &program.node(term)?.op else {
        return None;
    };
    let number = |s: Slot| match program.node(s).map(|n| &n.op) {
        Some(Op::Const(c @ Const::Int(_))) => Some(c.clone()),
        Some(Op::Const(c @ Const::Float(f))) if !f.is_nan() => Some(c.clone()),
        _ => None,
    };
    let is_const = |s: Slot| matches!(program.node(s).map(|n| &n.op), Some(Op::Const(_)));
    if let Some(c) = number(*b) {
        return (!is_const(*a)).then_some((*a, *cmp, c));
    }
    if let Some(c) = number(*a) {
        let flipped = match cmp {
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
        };
        return (!is_const(*b)).then_some((*b, flipped, c));
    }
    None
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
#[allow(clippy::unwrap_used, clippy::panic)]
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

    #[test]
    fn thresholds_group_by_value_and_comparison() {
        let rules = RULES.replace(
            "  - id: T-2",
            "  - id: T-1b\n    domain: d\n    title: t\n    event_type: t\n    when: \"a > 20 && b > 1\"\n    tiers: [{ tier: 1, notify: r }]\n    message: \"{who}\"\n  - id: T-1c\n    domain: d\n    title: t\n    event_type: t\n    when: \"30 < a\"\n    tiers: [{ tier: 1, notify: r }]\n    message: \"{who}\"\n  - id: T-2",
        );
        let graph = compile(&RuleSources::from_texts([("t.yaml", rules.as_str())]))
            .unwrap()
            .graph;
        let (_, et) = graph.event_type("t").unwrap();
        let index = &et.plan.index;
        // T-1, T-1b and T-1c (written the other way round) share `a > c`;
        // T-2's `total > 100` is a group of its own.
        let a_gt: Vec<_> = index
            .groups
            .iter()
            .filter(|g| g.cmp == crate::graph::Cmp::Gt && g.slot < et.program.n_fields)
            .collect();
        assert_eq!(a_gt.len(), 1);
        match &a_gt[0].keys {
            super::Keys::Int(keys) => assert_eq!(keys, &vec![(10, 0), (20, 1), (30, 2)]),
            k => panic!("{k:?}"),
        }
        assert_eq!(index.groups.len(), 2);
        assert_eq!(index.unindexed, vec![0]);
    }
}
