//! The results of `levee test --mutate` and their report: the score (killed / total), the
//! counts per operator, the surviving mutants by control point (file,
//! line, the change), as text or JSON.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;

use super::operators::Operator;

/// What became of a mutant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// A test case failed on it.
    Killed,
    /// Every test case passed.
    Survived,
    /// It does not compile (not counted in the score).
    Invalid,
}

/// One mutant of a control point, and its fate.
#[derive(Debug)]
pub struct Mutant {
    pub operator: Operator,
    /// `when` or `tier N when`.
    pub place: String,
    pub line: Option<usize>,
    pub change: String,
    /// The mutated condition (empty for a dropped tier condition).
    pub text: String,
    pub fate: Fate,
}

/// One control point's mutants.
#[derive(Debug)]
pub struct Point {
    pub id: String,
    pub file: String,
    /// The test cases that have an event of its type.
    pub cases: usize,
    /// Cases that fail against the point unmutated: (file: name, problems).
    pub failing: Vec<(String, Vec<String>)>,
    pub mutants: Vec<Mutant>,
    /// Its rule file, relative to the rules directory.
    pub relative: String,
    /// Suggested cases (YAML) telling survivors apart.
    pub suggestions: Vec<String>,
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Counts of mutants.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub killed: usize,
    pub survived: usize,
    /// Mutants that do not compile: not in the score.
    pub invalid: usize,
}

impl Counts {
    fn add(&mut self, fate: Fate) {
        match fate {
            Fate::Killed => self.killed += 1,
            Fate::Survived => self.survived += 1,
            Fate::Invalid => self.invalid += 1,
        }
    }

    /// Mutants in the score.
    pub fn total(&self) -> usize {
        self.killed + self.survived
    }

    /// Killed / total (1 when there are none).
    pub fn score(&self) -> f64 {
        if self.total() == 0 {
            1.0
        } else {
            self.killed as f64 / self.total() as f64
        }
    }
}

/// The totals of a run.
#[derive(Debug, Default)]
pub struct Summary {
    pub all: Counts,
    pub by_operator: BTreeMap<Operator, Counts>,
    /// Control points with no test case of their event type.
    pub untested: Vec<String>,
    /// Test cases failing against a control point unmutated.
    pub failing: usize,
}

impl Summary {
    pub fn new(points: &[Point]) -> Self {
        let mut s = Summary::default();
        for op in Operator::ALL {
            s.by_operator.insert(op, Counts::default());
        }
        for p in points {
            if p.cases == p.failing.len() {
                s.untested.push(p.id.clone());
            }
            s.failing += p.failing.len();
            for m in &p.mutants {
                s.all.add(m.fate);
                s.by_operator.entry(m.operator).or_default().add(m.fate);
            }
        }
        s
    }

    pub fn score(&self) -> f64 {
        self.all.score()
    }
}

fn percent(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// The report as text on stdout.
pub fn print_text(points: &[Point], s: &Summary, min_score: Option<f64>) {
    let mut out = String::new();
    let survivors: Vec<&Point> = points
        .iter()
        .filter(|p| p.mutants.iter().any(|m| m.fate == Fate::Survived))
        .collect();
    if !survivors.is_empty() {
        out.push_str("surviving mutants (no test case fails on them):\n");
    }
    for p in &survivors {
        out.push_str(&format!("{} ({})\n", p.id, p.file));
        for m in p.mutants.iter().filter(|m| m.fate == Fate::Survived) {
            let at = m.line.map_or(p.file.clone(), |l| format!("{}:{l}", p.file));
            out.push_str(&format!("  {at}: {}: {}", m.place, m.change));
            if !m.text.is_empty() {
                out.push_str(&format!(": {}", m.text));
            }
            out.push('\n');
        }
    }
    for p in points.iter().filter(|p| !p.failing.is_empty()) {
        for (case, problems) in &p.failing {
            out.push_str(&format!("FAIL  {case}: fails for {} unmutated\n", p.id));
            for problem in problems {
                out.push_str(&format!("      {problem}\n"));
            }
        }
    }
    if !s.untested.is_empty() {
        out.push_str(&format!(
            "no test case of their event type passes: {}\n",
            s.untested.join(", ")
        ));
    }
    out.push_str("mutants by operator: killed / total (did not compile)\n");
    for (op, c) in &s.by_operator {
        out.push_str(&format!(
            "  {:<24}{:>6} / {:<6}{:>8}  ({})\n",
            op.name(),
            c.killed,
            c.total(),
            percent(c.score()),
            c.invalid
        ));
    }
    out.push_str(&format!(
        "levee test --mutate: {} control points, {} mutants: {} killed, {} survived ({} did not compile); score {}",
        points.len(),
        s.all.total(),
        s.all.killed,
        s.all.survived,
        s.all.invalid,
        percent(s.score())
    ));
    if let Some(m) = min_score {
        let verdict = if s.score() < m {
            "below"
        } else {
            "at or above"
        };
        out.push_str(&format!(", {verdict} the bar of {}", percent(m)));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{out}");
}

/// The report as one JSON object on stdout.
pub fn print_json(points: &[Point], s: &Summary, min_score: Option<f64>) -> anyhow::Result<()> {
    let counts = |c: &Counts| {
        json!({
            "total": c.total(),
            "killed": c.killed,
            "survived": c.survived,
            "invalid": c.invalid,
            "score": c.score(),
        })
    };
    let survivors: Vec<serde_json::Value> = points
        .iter()
        .flat_map(|p| {
            p.mutants
                .iter()
                .filter(|m| m.fate == Fate::Survived)
                .map(move |m| {
                    json!({
                        "control_point": p.id,
                        "file": p.file,
                        "line": m.line,
                        "where": m.place,
                        "operator": m.operator.name(),
                        "change": m.change,
                        "mutant": m.text,
                    })
                })
        })
        .collect();
    let failing: Vec<serde_json::Value> = points
        .iter()
        .flat_map(|p| {
            p.failing.iter().map(move |(case, problems)| {
                json!({"control_point": p.id, "case": case, "problems": problems})
            })
        })
        .collect();
    let report = json!({
        "control_points": points.len(),
        "mutants": counts(&s.all),
        "score": s.score(),
        "min_score": min_score,
        "passed": min_score.is_none_or(|m| s.score() >= m) && s.failing == 0,
        "by_operator": s
            .by_operator
            .iter()
            .map(|(op, c)| {
                let mut v = counts(c);
                v["operator"] = json!(op.name());
                v
            })
            .collect::<Vec<_>>(),
        "survivors": survivors,
        "untested": s.untested,
        "failing": failing,
    });
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &report)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutant(operator: Operator, fate: Fate) -> Mutant {
        Mutant {
            operator,
            place: "when".to_owned(),
            line: Some(3),
            change: "`>` → `>=`".to_owned(),
            text: "a >= 1".to_owned(),
            fate,
        }
    }

    #[test]
    fn the_score_is_killed_over_compiled_mutants_per_operator_and_in_all() {
        let points = vec![
            Point {
                id: "A-1".to_owned(),
                file: "a.yaml".to_owned(),
                relative: "a.yaml".to_owned(),
                suggestions: vec![],
                cases: 2,
                failing: vec![],
                mutants: vec![
                    mutant(Operator::Comparison, Fate::Killed),
                    mutant(Operator::Comparison, Fate::Survived),
                    mutant(Operator::Unit, Fate::Killed),
                    mutant(Operator::Unit, Fate::Invalid),
                ],
            },
            Point {
                id: "A-2".to_owned(),
                file: "a.yaml".to_owned(),
                relative: "a.yaml".to_owned(),
                suggestions: vec![],
                cases: 0,
                failing: vec![],
                mutants: vec![mutant(Operator::Term, Fate::Survived)],
            },
        ];
        let s = Summary::new(&points);
        assert_eq!(
            s.all,
            Counts {
                killed: 2,
                survived: 2,
                invalid: 1
            }
        );
        assert_eq!(s.score(), 0.5);
        assert_eq!(s.by_operator[&Operator::Comparison].score(), 0.5);
        assert_eq!(s.by_operator[&Operator::Unit].total(), 1);
        assert_eq!(s.by_operator[&Operator::ListEmptied].score(), 1.0);
        assert_eq!(s.by_operator.len(), Operator::ALL.len());
        assert_eq!(s.untested, ["A-2"]);
    }
}
