//! The register's columns (风险台账): besides its rule, every control point
//! of a catalog states its message in Chinese (`message_zh`), its risk grade
//! (高/中/低), its control measure, its owning department and its basis
//! (制度依据). The engine runs a catalog without them; `levee check`
//! requires them ([`gaps`], collected in [`crate::Compiled::register`]).

use std::collections::BTreeSet;

use crate::diag::Diagnostic;
use crate::model::{ControlPointDef, RiskGrade};
use crate::template::placeholders;

/// The basis of a control point that rests on the operator's own rules
/// rather than on a law, regulation or standard named with certainty: left
/// for the operator to name. An invented citation is worse than none.
pub const COMPANY_RULE: &str = "company rule";

/// A compiled control point's register columns, as its rule file states them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Register {
    /// The Chinese message template as written (`message_zh`).
    pub message_zh: Option<String>,
    pub risk_grade: Option<RiskGrade>,
    /// The control measure (防控措施).
    pub measure: Option<String>,
    /// The owning department (责任部门).
    pub owner: Option<String>,
    /// The basis (制度依据): a named law, regulation or standard, or
    /// [`COMPANY_RULE`].
    pub basis: Option<String>,
}

impl Register {
    /// The columns of a control point's definition, trimmed.
    pub fn of(cp: &ControlPointDef) -> Self {
        let text = |v: &Option<String>| v.as_deref().map(|s| s.trim().to_owned());
        Register {
            message_zh: text(&cp.message_zh),
            risk_grade: cp.risk_grade,
            measure: text(&cp.measure),
            owner: text(&cp.owner),
            basis: text(&cp.basis),
        }
    }

    /// Whether the basis names a law, regulation or standard: stated, and
    /// not [`COMPANY_RULE`].
    pub fn names_basis(&self) -> bool {
        self.basis
            .as_deref()
            .is_some_and(|b| !b.is_empty() && b != COMPANY_RULE)
    }
}

/// What `levee check` requires of a control point beyond compiling, each
/// gap an error naming the file, line and point: `message_zh` with the same
/// placeholders as `message`, `risk_grade`, `measure`, `owner` and `basis`.
/// (A placeholder that names no field is the compiler's error.)
pub(crate) fn gaps(path: &str, cp: &ControlPointDef, line: Option<usize>) -> Vec<Diagnostic> {
    let error = |msg: &str| Diagnostic::error(path, msg).at_line(line).item(&cp.id);
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    let mut out = Vec::new();
    match &cp.message_zh {
        Some(zh) if !zh.trim().is_empty() => {
            if let (Ok(en), Ok(zh)) = (placeholders(&cp.message), placeholders(zh)) {
                let en: BTreeSet<String> = en.into_iter().collect();
                let zh: BTreeSet<String> = zh.into_iter().collect();
                let list = |names: Vec<&String>| {
                    names
                        .iter()
                        .map(|n| format!("{{{n}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let missing: Vec<&String> = en.difference(&zh).collect();
                let extra: Vec<&String> = zh.difference(&en).collect();
                let mut what = Vec::new();
                if !missing.is_empty() {
                    what.push(format!("it lacks {}", list(missing)));
                }
                if !extra.is_empty() {
                    what.push(format!("`message` has no {}", list(extra)));
                }
                if !what.is_empty() {
                    out.push(
                        error(&format!(
                            "`message_zh` must have the placeholders of `message`: {}",
                            what.join("; ")
                        ))
                        .expression(cp.message_zh.clone().unwrap_or_default()),
                    );
                }
            }
        }
        _ => out.push(error(
            "`message_zh` is missing: the message in Chinese, with the placeholders of `message`",
        )),
    }
    if cp.risk_grade.is_none() {
        out.push(error(
            "`risk_grade` is missing: high, medium or low (高/中/低)",
        ));
    }
    if blank(&cp.measure) {
        out.push(error(
            "`measure` is missing: the control measure (防控措施), in Chinese",
        ));
    }
    if blank(&cp.owner) {
        out.push(error(
            "`owner` is missing: the owning department (责任部门), in Chinese",
        ));
    }
    if blank(&cp.basis) {
        out.push(error(&format!(
            "`basis` is missing: a law, regulation or standard named with certainty, \
             or `{COMPANY_RULE}` for the operator to fill in"
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::model::RuleFile;

    fn point(extra: &str) -> ControlPointDef {
        let yaml = format!(
            "control_points:\n  - id: VF-001\n    domain: fuel_consumption\n    title: t\n    \
             event_type: trip\n    when: a > 1\n    tiers: [{{tier: 1, notify: r}}]\n    \
             message: \"Vehicle {{vehicle_id}} used {{fuel_used_l}} L\"\n{extra}"
        );
        let mut f: RuleFile = serde_norway::from_str(&yaml).expect("parses");
        f.control_points.remove(0)
    }

    const FULL: &str = "    message_zh: \"车辆{vehicle_id}用油{fuel_used_l}升\"\n    \
                        risk_grade: high\n    measure: \" 油耗超标预警 \"\n    \
                        owner: 综合部\n    basis: company rule\n";

    #[test]
    fn the_columns_parse_and_are_trimmed() {
        let cp = point(FULL);
        assert_eq!(
            cp.message_zh.as_deref(),
            Some("车辆{vehicle_id}用油{fuel_used_l}升")
        );
        let r = Register::of(&cp);
        assert_eq!(r.risk_grade, Some(RiskGrade::High));
        assert_eq!(r.risk_grade.map(RiskGrade::zh), Some("高"));
        assert_eq!(r.measure.as_deref(), Some("油耗超标预警"));
        assert_eq!(r.owner.as_deref(), Some("综合部"));
        assert!(!r.names_basis());
        assert!(gaps("p.yaml", &cp, Some(2)).is_empty());
    }

    #[test]
    fn a_named_law_is_a_basis_and_grades_are_closed() {
        let cp = point(&FULL.replace("company rule", "《中华人民共和国招标投标法》"));
        assert!(Register::of(&cp).names_basis());
        for (yaml, grade) in [("medium", RiskGrade::Medium), ("low", RiskGrade::Low)] {
            let cp = point(&FULL.replace("high", yaml));
            assert_eq!(cp.risk_grade, Some(grade));
            assert_eq!(grade.as_str(), yaml);
        }
        let bad = "control_points:\n  - {id: X, domain: d, title: t, event_type: e, when: w, \
                   tiers: [], message: m, risk_grade: 高}\n";
        assert!(serde_norway::from_str::<RuleFile>(bad).is_err());
    }

    #[test]
    fn every_missing_column_is_an_error_naming_file_line_and_point() {
        let cp = point("");
        let shown: Vec<String> = gaps("rules/a.yaml", &cp, Some(4))
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(shown.len(), 5, "{shown:#?}");
        assert!(shown
            .iter()
            .all(|s| s.starts_with("error: rules/a.yaml:4: VF-001: ")));
        for key in ["message_zh", "risk_grade", "measure", "owner", "basis"] {
            assert!(
                shown
                    .iter()
                    .any(|s| s.contains(&format!("`{key}` is missing"))),
                "{key}: {shown:#?}"
            );
        }
        let blank = point(&FULL.replace("综合部", "\"  \""));
        let g = gaps("rules/a.yaml", &blank, None);
        assert_eq!(g.len(), 1);
        assert!(g[0].message.contains("`owner` is missing"));
    }

    #[test]
    fn message_zh_must_have_the_placeholders_of_message() {
        let cp = point(&FULL.replace("用油{fuel_used_l}升", "油耗{fuel_excess_pct}%"));
        let g = gaps("rules/a.yaml", &cp, Some(4));
        assert_eq!(g.len(), 1, "{g:#?}");
        assert_eq!(
            g[0].message,
            "`message_zh` must have the placeholders of `message`: it lacks {fuel_used_l}; \
             `message` has no {fuel_excess_pct}"
        );
        // Order and repeats do not matter: the names do.
        let cp = point(&FULL.replace(
            "车辆{vehicle_id}用油{fuel_used_l}升",
            "用油{fuel_used_l}升（车辆{vehicle_id}，{vehicle_id}）",
        ));
        assert!(gaps("rules/a.yaml", &cp, None).is_empty());
    }
}
