//! The people accountable for a control point's events (一人一档): event
//! schemas mark the fields holding an HR employee number `person: true`
//! (one namespace across every type); a point names its own with
//! `people: [approver_id, requester_id]`, by default every person field
//! of its event type. Alerts carry the values of these fields, and person
//! profiles are built on them. `accountable:`, the key's former name, is
//! refused with a pointer to `people:`.

use crate::diag::{did_you_mean, Diagnostic};
use crate::graph::{ControlPoint, FieldSpec, Slot};
use crate::missing::Source;

/// Resolves `people` of the control points `indices` of one event type
/// (definitions in `defs`, by id) against its `fields`: each name must be
/// a field marked `person: true`.
pub(crate) fn resolve(
    defs: &[Source<'_>],
    fields: &[FieldSpec],
    indices: &[u32],
    control_points: &mut [ControlPoint],
    diags: &mut Vec<Diagnostic>,
) {
    // Every definition, compiled or not: a point that failed to compile
    // for another reason still hears what is wrong with its people.
    for (f, def, line) in defs {
        let error = |msg: String| Diagnostic::error(&f.path, msg).at_line(*line).item(&def.id);
        if def.accountable.is_some() {
            diags.push(error(
                "unknown key `accountable`: did you mean `people`? (the accountable people's \
                 fields, renamed; docs/people.md)"
                    .to_owned(),
            ));
        }
        let compiled = indices
            .iter()
            .filter_map(|&c| usize::try_from(c).ok())
            .find(|&c| control_points.get(c).is_some_and(|cp| cp.id == def.id));
        match people(def.people.as_deref(), fields, &def.event_type) {
            Ok(slots) => {
                if let Some(cp) = compiled.and_then(|c| control_points.get_mut(c)) {
                    cp.people = slots;
                }
            }
            Err(errors) => diags.extend(errors.into_iter().map(error)),
        }
    }
}

/// The slots of `listed` (or, when absent, of every person field), in
/// order and without repeats; or what is wrong with each name.
fn people(
    listed: Option<&[String]>,
    fields: &[FieldSpec],
    event_type: &str,
) -> Result<Vec<Slot>, Vec<String>> {
    let persons = || fields.iter().filter(|s| s.person).map(|s| s.name.as_str());
    let Some(listed) = listed else {
        return Ok(fields
            .iter()
            .enumerate()
            .filter(|(_, s)| s.person)
            .map(|(i, _)| i as Slot)
            .collect());
    };
    let mut slots = Vec::new();
    let mut errors = Vec::new();
    for name in listed {
        match fields.iter().position(|s| &s.name == name) {
            Some(i) if fields[i].person => {
                if !slots.contains(&(i as Slot)) {
                    slots.push(i as Slot);
                }
            }
            found => {
                let mut msg = if found.is_some() {
                    format!(
                        "`people`: `{name}` is not a person field of {event_type} (one with `person: true`)"
                    )
                } else {
                    format!("`people`: `{name}` is not a field of {event_type}")
                };
                match did_you_mean(name, persons()) {
                    Some(s) => msg.push_str(&format!("; did you mean `{s}`?")),
                    None => {
                        let all: Vec<String> = persons().map(|p| format!("`{p}`")).collect();
                        if all.is_empty() {
                            msg.push_str(&format!("; {event_type} has none"));
                        } else {
                            msg.push_str(&format!("; its person fields: {}", all.join(", ")));
                        }
                    }
                }
                errors.push(msg);
            }
        }
    }
    if errors.is_empty() {
        Ok(slots)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::{compile, RuleSources};

    const RULES: &str = r#"
event_types:
  purchase:
    stream: s
    subject: supplier_id
    fields:
      supplier_id: { type: string, required: true }
      requester_id: { type: string, required: true, person: true }
      approver_id: { type: string, person: true }
      amount_cny: { type: number, required: true }
control_points:
  - id: SO-903
    domain: d
    title: t
    event_type: purchase
    when: amount_cny > 10
    PEOPLE
    tiers: [{ tier: 1, notify: procurement_manager }]
    message: "{supplier_id}"
"#;

    /// Written out, `people` also drives recusal, which reads this table.
    const ROLES: &str = r#"
tables:
  roles:
    key: role
    scope: branch
    columns: { role: { type: string }, holder: { type: string } }
"#;

    fn point(people: &str) -> Result<Vec<String>, Vec<String>> {
        let rules = RULES.replace("PEOPLE", people);
        match compile(&RuleSources::from_texts([
            ("r.yaml", rules.as_str()),
            ("t.yaml", ROLES),
        ])) {
            Ok(c) => {
                let cp = &c.graph.control_points[0];
                let et = &c.graph.event_types[cp.event_type as usize];
                Ok(cp
                    .people
                    .iter()
                    .map(|&s| et.slot_name(s).unwrap().to_owned())
                    .collect())
            }
            Err(e) => Err(e.iter().map(|d| d.to_string()).collect()),
        }
    }

    #[test]
    fn people_default_to_every_person_field_of_the_type() {
        assert_eq!(point("tags: []").unwrap(), ["approver_id", "requester_id"]);
        assert_eq!(point("people: []").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn people_as_written_keep_their_order_once_each() {
        assert_eq!(
            point("people: [requester_id, approver_id, requester_id]").unwrap(),
            ["requester_id", "approver_id"]
        );
    }

    #[test]
    fn a_name_that_is_not_a_person_field_is_an_error_naming_file_point_and_field() {
        let e = point("people: [aprover_id]").unwrap_err();
        assert!(
            e.iter().any(|m| m.contains("r.yaml")
                && m.contains("SO-903")
                && m.contains("`people`: `aprover_id` is not a field of purchase")
                && m.contains("did you mean `approver_id`?")),
            "{e:?}"
        );
        let e = point("people: [amount_cny]").unwrap_err();
        assert!(
            e.iter().any(
                |m| m.contains("`amount_cny` is not a person field of purchase")
                    && m.contains("its person fields: `approver_id`, `requester_id`")
            ),
            "{e:?}"
        );
    }

    #[test]
    fn the_former_key_is_refused_with_the_new_one() {
        let e = point("accountable: [requester_id]").unwrap_err();
        assert!(
            e.iter().any(|m| m.contains("SO-903")
                && m.contains("unknown key `accountable`: did you mean `people`?")),
            "{e:?}"
        );
    }

    #[test]
    fn person_marks_only_a_string_field() {
        let rules = RULES.replace("PEOPLE", "tags: []").replace(
            "amount_cny: { type: number, required: true }",
            "amount_cny: { type: number, required: true, person: true }",
        );
        let e = compile(&RuleSources::from_texts([("r.yaml", rules.as_str())])).unwrap_err();
        assert!(
            e.iter().any(|d| {
                let m = d.to_string();
                m.contains("r.yaml")
                    && m.contains("field `amount_cny` says `person: true`: an employee number is a string, not number")
            }),
            "{e:?}"
        );
    }
}
