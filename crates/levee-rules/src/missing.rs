//! Fail-closed fields: `fail_closed: [field, …]` on a control point.
//!
//! A condition over an optional field the event lacks is unknown and does
//! not fire (as SQL's `NULL`). For a yes/no field that attests a step the
//! control requires before a request goes through ("legal review done",
//! "acceptance passed"), unknown means the request does not show the step
//! done: the control fails closed. A point lists such fields; when its
//! condition is unknown only because some of them are missing (none of
//! its terms false, every other field it reads present), it fires, at the
//! highest tier whose condition holds. The engine decides this in
//! `Engine::run` from [`ControlPoint::fail_closed`] and
//! [`ControlPoint::fields_read`].

use crate::diag::Diagnostic;
use crate::graph::{Aggregate, ControlPoint, FieldSpec, Program, Slot};
use crate::load::SourceFile;
use crate::model::{ControlPointDef, FieldType};

/// A control point definition with its file and line.
pub(crate) type Source<'a> = (&'a SourceFile, &'a ControlPointDef, Option<usize>);

/// Resolves `fail_closed` of the control points `indices` of one event
/// type, whose definitions `defs` hold (by id). Each listed name must be
/// an optional boolean field the point's conditions read.
pub(crate) fn resolve(
    defs: &[Source<'_>],
    program: &Program,
    aggregates: &[Aggregate],
    fields: &[FieldSpec],
    indices: &[u32],
    control_points: &mut [ControlPoint],
    diags: &mut Vec<Diagnostic>,
) {
    for &c in indices {
        let Some(cp) = control_points.get(c as usize) else {
            continue;
        };
        let Some((f, def, line)) = defs.iter().find(|(_, d, _)| d.id == cp.id) else {
            continue;
        };
        if def.fail_closed.is_empty() {
            continue;
        }
        let read = crate::quality::slots_read(program, aggregates, cp);
        let mut closed = Vec::new();
        for name in &def.fail_closed {
            let error = |msg: String| {
                Diagnostic::error(&f.path, msg)
                    .at_line(*line)
                    .item(&def.id)
                    .expression(def.when.clone())
            };
            let Some(slot) = fields.iter().position(|s| &s.name == name) else {
                diags.push(error(format!(
                    "`fail_closed` names `{name}`, which is not a field of {}",
                    def.event_type
                )));
                continue;
            };
            let spec = &fields[slot];
            let slot = slot as Slot;
            if spec.ty != FieldType::Boolean || spec.required {
                diags.push(error(format!(
                    "`fail_closed` names `{name}`: only an optional boolean field can be missing and fail closed"
                )));
            } else if !read.contains(&slot) {
                diags.push(error(format!(
                    "`fail_closed` names `{name}`, which the point's conditions do not read"
                )));
            } else {
                closed.push(slot);
            }
        }
        let mut fields_read: Vec<Slot> =
            read.into_iter().filter(|&s| s < program.n_fields).collect();
        fields_read.sort_unstable();
        let cp = &mut control_points[c as usize];
        cp.fail_closed = closed;
        cp.fields_read = fields_read;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::load::RuleSources;

    const RULES: &str = r#"
event_types:
  campaign:
    stream: s
    subject: id
    request: true
    fields:
      id: { type: string, required: true }
      budget: { type: number, required: true }
      legal_review_done: { type: boolean }
      finance_review_done: { type: boolean }
      note: { type: string }
control_points:
  - id: T-1
    domain: d
    title: t
    event_type: campaign
    when: "budget >= 500000 && !(legal_review_done && finance_review_done)"
    fail_closed: [legal_review_done, finance_review_done]
    action: block
    tiers: [{ tier: 1, notify: r }]
    message: "{id}"
"#;

    #[test]
    fn listed_fields_resolve_to_their_slots_with_every_field_read() {
        let c = crate::compile(&RuleSources::from_texts([("t.yaml", RULES)])).unwrap();
        let et = &c.graph.event_types[0];
        let cp = &c.graph.control_points[0];
        let slot = |n: &str| et.field_index[n];
        assert_eq!(
            cp.fail_closed,
            [slot("legal_review_done"), slot("finance_review_done")]
        );
        let mut read = vec![
            slot("budget"),
            slot("legal_review_done"),
            slot("finance_review_done"),
        ];
        read.sort_unstable();
        assert_eq!(cp.fields_read, read);
    }

    fn errors(rules: &str) -> Vec<String> {
        match crate::compile(&RuleSources::from_texts([("t.yaml", rules)])) {
            Ok(_) => Vec::new(),
            Err(d) => d.into_iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn a_field_that_cannot_fail_closed_is_an_error_naming_point_and_expression() {
        for (list, says) in [
            ("[legal_reviewed]", "not a field of campaign"),
            ("[budget]", "only an optional boolean"),
            ("[note]", "only an optional boolean"),
        ] {
            let rules = RULES.replace("[legal_review_done, finance_review_done]", list);
            let e = errors(&rules);
            assert!(
                e.iter().any(|e| e.contains("t.yaml")
                    && e.contains("T-1")
                    && e.contains("budget >= 500000")
                    && e.contains(says)),
                "{list}: {e:?}"
            );
        }
        let unread = RULES
            .replace(
                "!(legal_review_done && finance_review_done)",
                "!legal_review_done",
            )
            .replace(
                "[legal_review_done, finance_review_done]",
                "[finance_review_done]",
            );
        let e = errors(&unread);
        assert!(e.iter().any(|e| e.contains("do not read")), "{e:?}");
    }
}
