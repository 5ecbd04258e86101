//! What `levee test`'s passing cases cover: every control point, and every
//! tier each point declares. A tier is covered when a passing case expects
//! the point's alert at that tier (raised or reached by escalation); a
//! point whose top tier no case reaches has a threshold no test holds.

use std::collections::BTreeSet;

use levee_rules::model::TestCase;
use levee_rules::RuleGraph;

/// The control points and (point, tier) pairs passing cases expect.
#[derive(Debug, Default)]
pub struct Coverage {
    points: BTreeSet<String>,
    tiers: BTreeSet<(String, u8)>,
}

/// What is left uncovered, against a graph.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub points: (usize, usize),
    pub tiers: (usize, usize),
    /// Control points no passing case expects, in catalog order.
    pub uncovered_points: Vec<String>,
    /// Declared tiers no passing case expects, `ID tier N`, in catalog order.
    pub uncovered_tiers: Vec<String>,
}

impl Coverage {
    /// Records what a passing case expects.
    pub fn add(&mut self, case: &TestCase) {
        for e in &case.expect {
            self.points.insert(e.control_point.clone());
            self.tiers.insert((e.control_point.clone(), e.tier));
        }
    }

    /// What the recorded cases leave uncovered in `graph`.
    pub fn report(&self, graph: &RuleGraph) -> Report {
        let mut uncovered_points = Vec::new();
        let mut uncovered_tiers = Vec::new();
        let mut n_tiers = 0;
        for cp in &graph.control_points {
            if !self.points.contains(&cp.id) {
                uncovered_points.push(cp.id.clone());
            }
            // The graph keeps tiers highest first; report them lowest first.
            for t in cp.tiers.iter().rev() {
                n_tiers += 1;
                if !self.tiers.contains(&(cp.id.clone(), t.tier)) {
                    uncovered_tiers.push(format!("{} tier {}", cp.id, t.tier));
                }
            }
        }
        let n_points = graph.control_points.len();
        Report {
            points: (n_points - uncovered_points.len(), n_points),
            tiers: (n_tiers - uncovered_tiers.len(), n_tiers),
            uncovered_points,
            uncovered_tiers,
        }
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
control_points:
  - id: T-1
    domain: d
    title: t
    event_type: t
    when: "a > 10"
    tiers: [{ tier: 1, notify: r }, { tier: 2, when: "a > 20" }, { tier: 3, when: "a > 30" }]
    message: "{who}"
  - id: T-2
    domain: d
    title: t
    event_type: t
    when: "a < 0"
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
"#;

    fn case(yaml: &str) -> TestCase {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn every_declared_tier_needs_a_case_expecting_it() {
        let sources = levee_rules::RuleSources::from_texts([("t.yaml", RULES)]);
        let graph = levee_rules::compile(&sources).unwrap().graph;
        let mut c = Coverage::default();
        let r = c.report(&graph);
        assert_eq!((r.points, r.tiers), ((0, 2), (0, 4)));

        c.add(&case(
            "{name: a, events: [], expect: [{control_point: T-1, tier: 1}, {control_point: T-1, tier: 3}]}",
        ));
        let r = c.report(&graph);
        assert_eq!((r.points, r.tiers), ((1, 2), (2, 4)));
        assert_eq!(r.uncovered_points, ["T-2"]);
        assert_eq!(r.uncovered_tiers, ["T-1 tier 2", "T-2 tier 1"]);

        c.add(&case(
            "{name: b, events: [], expect: [{control_point: T-1, tier: 2}, {control_point: T-2, tier: 1}]}",
        ));
        let r = c.report(&graph);
        assert_eq!((r.points, r.tiers), ((2, 2), (4, 4)));
        assert!(r.uncovered_points.is_empty() && r.uncovered_tiers.is_empty());
    }
}
