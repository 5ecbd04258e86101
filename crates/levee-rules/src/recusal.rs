//! Recusal (回避): an alert must not go to someone it is about. A control
//! point lists the fields naming the people accountable for its event
//! (`people: [requester_id, approver_id]`, written out: the default list
//! of every person field does not recuse); for each tier, the role it
//! notifies is looked up in the `roles` table (key `role`, scoped by
//! branch, column `holder`) as of the event's time, and where one of those
//! people holds it, the alert goes one tier up instead.

use crate::graph::{Slot, Ty};
use crate::lower::Builder;
use crate::model::ControlPointDef;

/// The table recusal reads, and its columns.
pub(crate) const ROLES: &str = "roles";

/// The condition "the holder of `notify` is accountable" for one tier of
/// `cp`, lowered (shared with any identical one); `None` if the point names
/// no accountable people.
pub(crate) fn condition(
    cp: &ControlPointDef,
    notify: &str,
    b: &mut Builder<'_>,
) -> Result<Option<Slot>, String> {
    let Some(people) = cp.people.as_ref().filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    if !b.tables.iter().any(|t| t.name == ROLES) {
        return Err(format!(
            "recusal reads a `{ROLES}` table (key `role`, `scope: branch`, a string column `holder`), and none is declared"
        ));
    }
    // Each must be a person field, a string: `crate::people` says so when
    // one is not, once for the point.
    if !people
        .iter()
        .all(|f| matches!(b.resolve(f), Some((_, Ty::Str))))
    {
        return Ok(None);
    }
    let role = serde_json::to_string(notify).map_err(|e| e.to_string())?;
    let holder = format!("lookup(\"{ROLES}\", {role}, \"holder\")");
    let src = people
        .iter()
        .map(|f| format!("{holder} == {f}"))
        .collect::<Vec<_>>()
        .join(" || ");
    match b.expression(&src)? {
        (slot, Ty::Bool) => Ok(Some(slot)),
        (_, t) => Err(format!("`{src}` is {}, not a condition", t.name())),
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
      amount_cny: { type: number, required: true }
control_points:
  - id: SO-902
    domain: d
    title: t
    event_type: purchase
    when: amount_cny > 10
    people: [ACC]
    tiers: [{ tier: 1, notify: procurement_manager }, { tier: 2, when: amount_cny > 100 }]
    message: "{supplier_id}"
"#;
    const ROLES: &str = r#"
tables:
  roles:
    key: role
    scope: branch
    columns: { role: { type: string }, holder: { type: string } }
"#;

    #[test]
    fn each_tier_gets_its_roles_holder_condition() {
        let rules = RULES.replace("ACC", "requester_id");
        let c = compile(&RuleSources::from_texts([
            ("r.yaml", rules.as_str()),
            ("t.yaml", ROLES),
        ]))
        .unwrap();
        let cp = &c.graph.control_points[0];
        assert!(cp.tiers.iter().all(|t| t.recuse.is_some()));
        assert!(
            cp.evidence
                .iter()
                .any(|(n, _)| n == "lookup(\"roles\", \"procurement_manager\", \"holder\")"),
            "{:?}",
            cp.evidence
        );
    }

    #[test]
    fn recusal_needs_the_roles_table_and_string_fields() {
        let rules = RULES.replace("ACC", "requester_id");
        let e = compile(&RuleSources::from_texts([("r.yaml", rules.as_str())])).unwrap_err();
        assert!(
            e.iter().any(|d| d
                .message
                .contains("`people`: recusal reads a `roles` table")),
            "{e:?}"
        );
        let rules = RULES.replace("ACC", "amount_cny");
        let e = compile(&RuleSources::from_texts([
            ("r.yaml", rules.as_str()),
            ("t.yaml", ROLES),
        ]))
        .unwrap_err();
        assert!(
            e.iter()
                .any(|d| d.message.contains("`amount_cny` is not a person field")),
            "{e:?}"
        );
        let rules = RULES.replace("ACC", "requestor_id");
        let e = compile(&RuleSources::from_texts([
            ("r.yaml", rules.as_str()),
            ("t.yaml", ROLES),
        ]))
        .unwrap_err();
        assert!(
            e.iter()
                .any(|d| d.message.contains("`requestor_id` is not a field")),
            "{e:?}"
        );
    }
}
