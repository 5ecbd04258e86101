#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::{compile, RuleSources};

const TYPES: &str = r#"
event_types:
  purchase:
    stream: events.procurement
    subject: supplier_id
    fields:
      supplier_id: { type: string, required: true }
      approver_id: { type: string, required: true, person: true }
      project_id: { type: string, required: true }
      category: { type: string }
      amount_cny: { type: number, required: true }
      bidder_count: { type: integer }
"#;

fn point(id: &str, subject: &str, stateful: bool) -> String {
    let aggregates = if stateful {
        "    aggregates:\n      orders_30d: { fn: count, over: 30d }\n"
    } else {
        ""
    };
    let when = if stateful {
        "orders_30d >= 3"
    } else {
        "amount_cny > 10"
    };
    format!(
        "  - id: {id}\n    domain: sourcing\n    title: t\n    event_type: purchase\n    \
         subject: {subject}\n{aggregates}    when: {when}\n    \
         tiers: [{{ tier: 1, notify: procurement_manager }}]\n    message: x\n"
    )
}

/// The errors `levee check` shows for `text` as `r.yaml`, which must not compile.
fn errors(text: &str) -> Vec<String> {
    let e = compile(&RuleSources::from_texts([("r.yaml", text)])).unwrap_err();
    e.iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect()
}

fn rules(points: &[String]) -> String {
    format!("{TYPES}control_points:\n{}", points.concat())
}

#[test]
fn each_key_of_a_type_gets_one_copy_with_only_its_points() {
    let text = rules(&[
        point("SO-901", "approver_id", true),
        point("SO-902", "[project_id, category]", true),
        point("SO-903", "approver_id", true),
        point("SO-904", "supplier_id", true),
        point("SO-905", "approver_id", false),
    ]);
    let c = compile(&RuleSources::from_texts([("r.yaml", text.as_str())])).unwrap();
    let g = &c.graph;
    let names: Vec<&str> = g.event_types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "purchase",
            "purchase@approver_id",
            "purchase@project_id+category"
        ]
    );
    let ids = |t: usize| -> Vec<&str> {
        g.event_types[t]
            .control_points
            .iter()
            .map(|&c| g.control_points[c as usize].id.as_str())
            .collect()
    };
    // A point kept per the type's own key, and one keeping no state, stay.
    assert_eq!(ids(0), ["SO-904", "SO-905"]);
    assert_eq!(ids(1), ["SO-901", "SO-903"]);
    assert_eq!(ids(2), ["SO-902"]);
    let purchase = &g.event_types[0];
    assert_eq!(purchase.copies, [1, 2]);
    assert_eq!(purchase.rekeyed, None);
    // Events only ever name their type; a copy is reached through it.
    assert!(g.event_type("purchase@approver_id").is_none());
    assert_eq!(g.event_type("purchase").map(|(i, _)| i), Some(0));

    let by_approver = &g.event_types[1];
    let approver = purchase.field_index["approver_id"];
    assert_eq!(by_approver.subject, approver);
    let rekeyed = by_approver.rekeyed.as_ref().unwrap();
    assert_eq!((rekeyed.of, rekeyed.key.as_slice()), (0, &[approver][..]));
    assert_eq!(by_approver.origin_name(), "purchase");
    // The same fields in the same slots: the copy takes the decoded event.
    assert_eq!(by_approver.fields.len(), purchase.fields.len());
    assert_eq!(by_approver.stream, purchase.stream);

    // A composite key's value has a slot of its own, the copy's subject.
    let by_project = &g.event_types[2];
    assert_eq!(by_project.fields.len(), purchase.fields.len() + 1);
    assert_eq!(by_project.subject as usize, purchase.fields.len());
    let key = &by_project.rekeyed.as_ref().unwrap().key;
    assert_eq!(
        key,
        &[
            purchase.field_index["project_id"],
            purchase.field_index["category"]
        ]
    );
    let so902 = g.control_point("SO-902").unwrap();
    assert_eq!(so902.subject, by_project.subject);
    assert_eq!(so902.subject_kind, "project+category");
    assert_eq!(g.control_point("SO-901").unwrap().subject_kind, "approver");
    // Every aggregate of a copy is kept per the copy's subject.
    assert!(by_approver
        .aggregates
        .iter()
        .all(|a| a.subject == by_approver.subject));
}

#[test]
fn a_window_per_approver_is_not_the_window_per_supplier() {
    // The same definition kept per two keys: two windows, two state keys.
    let text = rules(&[
        point("SO-901", "approver_id", true),
        point("SO-904", "supplier_id", true),
    ]);
    let c = compile(&RuleSources::from_texts([("r.yaml", text.as_str())])).unwrap();
    let g = &c.graph;
    let key = |t: usize| g.event_types[t].aggregates[0].key;
    assert_ne!(key(0), key(1));
}

#[test]
fn a_bad_key_is_an_error_naming_file_point_and_key() {
    let text = rules(&[
        point("SO-911", "aprover_id", true),
        point("SO-912", "[project_id, amount_cny]", true),
        point("SO-913", "[project_id, project_id]", true),
        point("SO-914", "[project_id, category]", false),
        point("SO-915", "[]", true),
    ]);
    let shown = errors(&text);
    let has = |s: &str| shown.iter().any(|d| d.contains(s));
    assert!(
        has("r.yaml:14: SO-911: `aprover_id`: `subject`: `aprover_id` is not a field of `purchase`; did you mean `approver_id`?"),
        "{shown:#?}"
    );
    assert!(
        has("SO-912: `[project_id, amount_cny]`: `subject`: `amount_cny` is a float field: state is kept per a string or integer field"),
        "{shown:#?}"
    );
    assert!(has(
        "SO-913: `[project_id, project_id]`: `subject`: `project_id` is listed twice"
    ));
    assert!(has("SO-914: `[project_id, category]`: `subject`: a composite subject is a key to keep state per"));
    assert!(has("SO-915: `[]`: `subject`: an empty list names no field"));
    assert_eq!(shown.len(), 5, "{shown:#?}");
}

#[test]
fn an_integer_or_common_field_is_a_key_too() {
    let text = rules(&[
        point("SO-921", "bidder_count", true),
        point("SO-922", "branch", true),
    ]);
    let c = compile(&RuleSources::from_texts([("r.yaml", text.as_str())])).unwrap();
    let names: Vec<&str> = c
        .graph
        .event_types
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["purchase", "purchase@bidder_count", "purchase@branch"]
    );
}

#[test]
fn a_rule_set_without_other_keys_has_no_copies() {
    let text = rules(&[point("SO-904", "supplier_id", true)]);
    let c = compile(&RuleSources::from_texts([("r.yaml", text.as_str())])).unwrap();
    assert_eq!(c.graph.event_types.len(), 1);
    assert!(c.graph.event_types[0].copies.is_empty());
}

#[test]
fn a_block_point_of_a_request_is_kept_per_the_requests_own_key() {
    // A request type: its verdict is decided on the partition of its key.
    let request = TYPES.replace(
        "    subject: supplier_id\n",
        "    subject: supplier_id\n    request: true\n",
    );
    let block = |id: &str, subject: &str| {
        point(id, subject, true).replace("    message: x\n", "    message: x\n    action: block\n")
    };
    let text = format!(
        "{request}control_points:\n{}{}",
        block("SO-931", "approver_id"),
        block("SO-932", "supplier_id")
    );
    let shown = errors(&text);
    assert_eq!(shown.len(), 1, "{shown:#?}");
    assert!(
        shown[0].contains("r.yaml:15: SO-931: `action: block` on `purchase`, a request")
            && shown[0].contains("keep its state per `supplier_id`"),
        "{shown:#?}"
    );

    // The same point on a type that is no request raises its alert, and
    // there is no verdict to disagree with: it is re-keyed as any other.
    let text = format!("{TYPES}control_points:\n{}", block("SO-931", "approver_id"));
    let c = compile(&RuleSources::from_texts([("r.yaml", text.as_str())])).unwrap();
    assert!(c
        .graph
        .event_types
        .iter()
        .any(|t| t.name == "purchase@approver_id"));
}
