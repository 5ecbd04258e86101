//! Data-quality guards: plausible readings declared in the schema.
//!
//! A field may declare `plausible: {min, max, holds}`. For each such field
//! the compiler adds a control point `DQ-<event type>-<field>` of domain
//! `data_quality`: tier 1 only, notifying the event type's `data_owner`,
//! never escalating, firing when a reading lies outside what is plausible
//! (below `min`, above `max`, or `holds` false). The same event then does
//! not decide any control point whose conditions read that field: a
//! misplaced decimal is the data owner's to correct, not discipline
//! inspection's to investigate. The engine decides an event type's
//! data-quality points first (they come first in its control points) and
//! skips the points they guard ([`crate::ControlPoint::guarded_by`]).
//!
//! A guard over a field the event lacks is unknown and does not fire, as
//! any condition: a missing reading is not an implausible one.

use std::collections::HashSet;

use crate::diag::Diagnostic;
use crate::graph::{Aggregate, ControlPoint, FastMap, Op, Program, Slot};
use crate::load::SourceFile;
use crate::model::{ControlPointDef, FieldType, PlausibleDef, RiskGrade, RuleFile, TierDef};

/// The domain of every data-quality point.
pub const DOMAIN: &str = "data_quality";

/// The id of the data-quality point guarding `field` of `event_type`.
pub fn id(event_type: &str, field: &str) -> String {
    format!("DQ-{event_type}-{field}")
}

/// The field a data-quality point guards, from its id and event type;
/// `None` for any other control point.
pub fn guarded_field<'a>(control_point: &'a str, event_type: &str) -> Option<&'a str> {
    control_point
        .strip_prefix("DQ-")?
        .strip_prefix(event_type)?
        .strip_prefix('-')
}

/// One generated data-quality point, with the schema file and line of
/// the field it guards.
#[derive(Debug)]
pub(crate) struct Guard<'a> {
    pub file: &'a SourceFile,
    pub line: Option<usize>,
    pub field: String,
    pub def: ControlPointDef,
}

/// The data-quality points the schemas of `files` declare, in file and
/// field order; errors in the declarations go to `diags`.
pub(crate) fn guards<'a>(
    files: &[(&'a SourceFile, &RuleFile)],
    diags: &mut Vec<Diagnostic>,
) -> Vec<Guard<'a>> {
    let mut out = Vec::new();
    for (f, rf) in files {
        for (ty, def) in &rf.event_types {
            let declared: Vec<_> = def
                .fields
                .iter()
                .filter_map(|(name, fd)| fd.plausible.as_ref().map(|p| (name, fd.ty, p)))
                .collect();
            if declared.is_empty() {
                continue;
            }
            let item = format!("event type {ty}");
            let Some(owner) = &def.data_owner else {
                diags.push(
                    Diagnostic::error(
                        &f.path,
                        "fields declare `plausible` but the event type names no `data_owner` \
                         (`{notify: ROLE, owner: 部门}`) to send data-quality alerts to",
                    )
                    .at_line(key_line(&f.text, ty, 0))
                    .item(&item),
                );
                continue;
            };
            let type_line = key_line(&f.text, ty, 0).unwrap_or(1);
            for (field, fty, p) in declared {
                let line = key_line(&f.text, field, type_line);
                let err = |msg: String| {
                    Diagnostic::error(&f.path, msg)
                        .at_line(line)
                        .item(format!("event type {ty}, field `{field}`"))
                };
                if p.min.is_none() && p.max.is_none() && p.holds.is_none() {
                    diags.push(err("`plausible` needs `min`, `max` or `holds`".into()));
                    continue;
                }
                if (p.min.is_some() || p.max.is_some())
                    && !matches!(fty, FieldType::Number | FieldType::Integer)
                {
                    diags.push(err(
                        "`plausible` `min` and `max` need a number or integer field".into(),
                    ));
                    continue;
                }
                if let (Some(lo), Some(hi)) = (p.min, p.max) {
                    if lo > hi {
                        diags.push(err(format!(
                            "`plausible` `min` ({lo}) is above `max` ({hi})"
                        )));
                        continue;
                    }
                }
                if p.min.is_some_and(|v| !v.is_finite()) || p.max.is_some_and(|v| !v.is_finite()) {
                    diags.push(err("`plausible` bounds must be finite numbers".into()));
                    continue;
                }
                out.push(Guard {
                    file: f,
                    line,
                    field: field.clone(),
                    def: point(ty, &def.subject, field, p, &owner.notify, &owner.owner),
                });
            }
        }
    }
    out
}

/// The control point guarding `field` of event type `ty`.
fn point(
    ty: &str,
    subject: &str,
    field: &str,
    p: &PlausibleDef,
    notify: &str,
    owner: &str,
) -> ControlPointDef {
    let mut terms = Vec::new();
    let mut plain = Vec::new();
    let mut zh = Vec::new();
    if let Some(lo) = p.min {
        terms.push(format!("{field} < {lo}"));
        plain.push(format!("at least {lo}"));
        zh.push(format!("不小于{lo}"));
    }
    if let Some(hi) = p.max {
        terms.push(format!("{field} > {hi}"));
        plain.push(format!("at most {hi}"));
        zh.push(format!("不大于{hi}"));
    }
    if let Some(h) = &p.holds {
        terms.push(format!("!({h})"));
        // Braces would read as placeholders in the message.
        let h: String = h.chars().filter(|c| !matches!(c, '{' | '}')).collect();
        plain.push(h.clone());
        zh.push(format!("满足 {h}"));
    }
    ControlPointDef {
        id: id(ty, field),
        domain: DOMAIN.to_owned(),
        title: format!("Implausible {field} on {ty}"),
        title_zh: Some(format!("{ty}事件的{field}读数不合理")),
        description: Some(format!(
            "Data-quality guard declared in the schema of {ty}: a reading of {field} \
             outside what is plausible is sent to the data owner, and no control \
             point reading {field} decides the event."
        )),
        event_type: ty.to_owned(),
        when: terms.join(" || "),
        subject: None,
        tiers: vec![TierDef {
            tier: 1,
            when: None,
            notify: Some(notify.to_owned()),
        }],
        action: crate::model::Action::Alert,
        message: format!(
            "Implausible {field} {{{field}}} on {ty} of {{{subject}}} (plausible: {}); \
             not judged as an integrity risk until corrected",
            plain.join(", ")
        ),
        message_zh: Some(format!(
            "数据质量：{{{subject}}}的{ty}事件{field}读数{{{field}}}不合理（合理读数：{}），\
             请核实并更正数据源；更正前不作廉洁风险判定",
            zh.join("，")
        )),
        risk_grade: Some(RiskGrade::Low),
        measure: Some("核实数据源并更正读数，更正前不作廉洁风险判定".to_owned()),
        owner: Some(owner.to_owned()),
        basis: Some(crate::register::COMPANY_RULE.to_owned()),
        tags: vec![DOMAIN.to_owned()],
        aggregates: Default::default(),
        for_: None,
        suppress: None,
        escalate_after: None,
        fail_closed: Vec::new(),
        // A wrong reading is the data owner's, not a breach by anyone.
        people: Some(Vec::new()),
        accountable: None,
    }
}

/// The first line (1-based) at or after line `from` whose key is `key`.
fn key_line(text: &str, key: &str, from: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find_map(|(i, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            let rest = t.strip_prefix(key)?;
            rest.trim_start().starts_with(':').then_some(i + 1)
        })
}

/// Marks the data-quality points among the control points `indices` of
/// one event type (`guards` by id), and gives every other point of the
/// type the data-quality points guarding a field its conditions read.
pub(crate) fn mark(
    guards: &[Guard<'_>],
    program: &Program,
    aggregates: &[Aggregate],
    field_index: &FastMap<String, Slot>,
    indices: &[u32],
    control_points: &mut [ControlPoint],
) {
    let by_id: FastMap<&str, &str> = guards
        .iter()
        .map(|g| (g.def.id.as_str(), g.field.as_str()))
        .collect();
    let mut dq: Vec<(u32, Slot)> = Vec::new();
    for &c in indices {
        let Some(cp) = control_points.get_mut(c as usize) else {
            continue;
        };
        if let Some(&field) = by_id.get(cp.id.as_str()) {
            cp.guards = Some(field.to_owned());
            if let Some(&slot) = field_index.get(field) {
                dq.push((c, slot));
            }
        }
    }
    if dq.is_empty() {
        return;
    }
    for &c in indices {
        let Some(cp) = control_points.get(c as usize) else {
            continue;
        };
        if cp.guards.is_some() {
            continue;
        }
        let read = slots_read(program, aggregates, cp);
        let by: Vec<u32> = dq
            .iter()
            .filter(|(_, slot)| read.contains(slot))
            .map(|&(d, _)| d)
            .collect();
        control_points[c as usize].guarded_by = by;
    }
}

/// Every slot a control point's conditions read: its `when` and tiers,
/// through derived values and the `of` and `where` of its aggregates.
pub(crate) fn slots_read(
    program: &Program,
    aggregates: &[Aggregate],
    cp: &ControlPoint,
) -> HashSet<Slot> {
    let roots: Vec<Slot> = std::iter::once(cp.when)
        .chain(cp.tiers.iter().filter_map(|t| t.when))
        .collect();
    let mut read: HashSet<Slot> = roots.iter().copied().collect();
    for i in program.cone(roots, aggregates, &HashSet::new()) {
        let Some(node) = program.nodes.get(i as usize) else {
            continue;
        };
        read.extend(node.op.operands());
        if let Op::Aggregate(a) = node.op {
            if let Some(spec) = aggregates.get(a as usize) {
                read.extend(spec.of);
                read.extend(spec.filter);
            }
        }
    }
    read
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::load::RuleSources;

    const RULES: &str = r#"
event_types:
  trip:
    stream: s
    subject: vehicle_id
    data_owner: { notify: fleet_data_steward, owner: 综合部 }
    fields:
      vehicle_id: { type: string, required: true }
      fuel_used_l: { type: number, required: true, plausible: { min: 0, holds: "fuel_used_l <= standard_l * 3" } }
      standard_l: { type: number, required: true }
      note: { type: string }
control_points:
  - id: T-1
    domain: d
    title: t
    event_type: trip
    when: "fuel_used_l > standard_l * 1.2"
    tiers: [{ tier: 1, notify: r }]
    message: "{vehicle_id}"
  - id: T-2
    domain: d
    title: t
    event_type: trip
    when: "note == \"x\""
    tiers: [{ tier: 1, notify: r }]
    message: "{vehicle_id}"
"#;

    #[test]
    fn a_plausible_field_gets_its_point_first_and_guards_its_readers() {
        let c = crate::compile(&RuleSources::from_texts([("t.yaml", RULES)])).unwrap();
        let g = &c.graph;
        let ids: Vec<&str> = g.control_points.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["DQ-trip-fuel_used_l", "T-1", "T-2"]);
        let dq = &g.control_points[0];
        assert_eq!(dq.guards.as_deref(), Some("fuel_used_l"));
        assert_eq!(dq.domain, DOMAIN);
        assert_eq!(
            dq.when_src,
            "fuel_used_l < 0 || !(fuel_used_l <= standard_l * 3)"
        );
        assert_eq!(dq.tiers.len(), 1);
        assert_eq!(dq.tiers[0].notify, "fleet_data_steward");
        assert!(dq.escalate_after.is_none());
        assert_eq!(g.control_points[1].guarded_by, [0]);
        assert!(g.control_points[2].guarded_by.is_empty());
        // The generated point states the register's columns itself.
        assert!(
            !c.register
                .iter()
                .any(|d| d.item.as_deref() == Some(dq.id.as_str())),
            "{:?}",
            c.register
        );
        assert!(!c.register.is_empty(), "T-1 and T-2 state none");
        assert_eq!(guarded_field(&dq.id, "trip"), Some("fuel_used_l"));
        assert_eq!(guarded_field("T-1", "trip"), None);
        assert_eq!(guarded_field(&dq.id, "refuel"), None);
    }

    fn errors(rules: &str) -> Vec<String> {
        match crate::compile(&RuleSources::from_texts([("t.yaml", rules)])) {
            Ok(_) => Vec::new(),
            Err(d) => d.into_iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn bad_declarations_are_errors_naming_file_field_and_expression() {
        let no_owner = RULES.replace(
            "    data_owner: { notify: fleet_data_steward, owner: 综合部 }\n",
            "",
        );
        let e = errors(&no_owner);
        assert!(
            e.iter()
                .any(|e| e.contains("t.yaml") && e.contains("data_owner")),
            "{e:?}"
        );

        let empty = RULES.replace(
            "plausible: { min: 0, holds: \"fuel_used_l <= standard_l * 3\" }",
            "plausible: {}",
        );
        let e = errors(&empty);
        assert!(
            e.iter()
                .any(|e| e.contains("fuel_used_l") && e.contains("needs")),
            "{e:?}"
        );

        let inverted = RULES.replace("min: 0, holds", "min: 5, max: 1, holds");
        let e = errors(&inverted);
        assert!(e.iter().any(|e| e.contains("above `max`")), "{e:?}");

        let on_string = RULES.replace(
            "note: { type: string }",
            "note: { type: string, plausible: { min: 1 } }",
        );
        let e = errors(&on_string);
        assert!(e.iter().any(|e| e.contains("`note`")), "{e:?}");

        let unknown = RULES.replace("standard_l * 3", "standrd_l * 3");
        let e = errors(&unknown);
        assert!(
            e.iter()
                .any(|e| e.contains("DQ-trip-fuel_used_l") && e.contains("standrd_l")),
            "{e:?}"
        );
    }
}
