#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;

use levee_rules::{compile, RuleSources};

use crate::{BadKind, Engine, Source};

/// Purchases keyed by supplier; one window per approver, one per
/// project and category, one per supplier.
const RULES: &str = r#"
event_types:
  purchase:
    stream: events.procurement
    subject: supplier_id
    request: true
    fields:
      supplier_id: { type: string, required: true }
      approver_id: { type: string, required: true, person: true }
      project_id: { type: string, required: true }
      category: { type: string }
      amount_cny: { type: number, required: true }
control_points:
  - id: SO-931
    domain: sourcing
    title: One approver signs three orders within 30 days
    event_type: purchase
    subject: approver_id
    aggregates:
      signed_30d: { fn: count, over: 30d }
      suppliers_30d: { fn: distinct, of: supplier_id, over: 30d }
    when: signed_30d >= 3 && suppliers_30d >= 2
    tiers: [{ tier: 1, notify: procurement_manager }]
    message: "{approver_id} signed {signed_30d} orders to {suppliers_30d} suppliers"
  - id: SO-932
    domain: sourcing
    title: One project's category bought in pieces
    event_type: purchase
    subject: [project_id, category]
    aggregates:
      total_30d: { fn: sum, of: amount_cny, over: 30d }
    when: total_30d >= 1000
    tiers: [{ tier: 1, notify: procurement_manager }]
    message: "{project_id} {category} {total_30d}"
  - id: SO-933
    domain: sourcing
    title: Three orders to one supplier
    event_type: purchase
    aggregates:
      orders_30d: { fn: count, over: 30d }
    when: orders_30d >= 3
    tiers: [{ tier: 1, notify: procurement_manager }]
    message: "{supplier_id}"
"#;

fn graph() -> Arc<levee_rules::RuleGraph> {
    Arc::new(
        compile(&RuleSources::from_texts([("rules.yaml", RULES)]))
            .unwrap()
            .graph,
    )
}

/// Purchase `n` (a day apart) by `approver` from `supplier`.
fn purchase(n: u32, supplier: &str, approver: &str, category: Option<&str>, amount: u32) -> String {
    let category = category.map_or(String::new(), |c| format!(r#","category":"{c}""#));
    format!(
        r#"{{"event_id":"p-{n}","type":"purchase","occurred_at":"2026-03-{:02}T10:00:00+08:00","branch":"wuhan","supplier_id":"{supplier}","approver_id":"{approver}","project_id":"P-1"{category},"amount_cny":{amount}}}"#,
        n + 1
    )
}

fn stream() -> Vec<String> {
    vec![
        purchase(1, "S-1", "E1001", Some("goods"), 400),
        purchase(2, "S-2", "E1001", Some("goods"), 400),
        purchase(3, "S-3", "E2002", None, 400),
        purchase(4, "S-3", "E1001", Some("goods"), 400),
        purchase(5, "S-3", "E1001", Some("works"), 400),
    ]
}

/// (event, control point, subject) of every alert.
type Fired = BTreeSet<(String, String, String)>;

#[test]
fn replay_keeps_a_window_per_approver_over_purchases_keyed_by_supplier() {
    let mut e = Engine::new(graph());
    let mut fired = Fired::new();
    for ev in stream() {
        let p = e
            .process(ev.as_bytes(), &Source::Http { http: true }, "now")
            .unwrap();
        for a in p.alerts {
            assert_eq!(a.event_type, "purchase");
            fired.insert((a.event_id, a.control_point, a.subject));
        }
    }
    let want: Fired = [
        // E1001's third and fourth orders, to three suppliers.
        ("p-4", "SO-931", "E1001"),
        ("p-5", "SO-931", "E1001"),
        // P-1's goods reach 1,000 with the third order of goods; p-3 has
        // no category, so no key: it is in no window of a project.
        ("p-4", "SO-932", "P-1|goods"),
        // S-3's third order.
        ("p-5", "SO-933", "S-3"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    .collect();
    assert_eq!(fired, want);
    // Profiles are kept per kind of subject.
    assert!(e.profile("approver:E1001").is_some());
    assert!(e.profile("project+category:P-1|goods").is_some());
}

#[test]
fn a_request_gets_its_own_keys_verdict_and_a_copy_alone_answers_nothing() {
    // `levee check` refuses a `block` point of a request kept per another
    // key (levee-rules' rekey tests): a request's verdict is its own key's.
    let mut e = Engine::new(graph());
    let mut last = None;
    for ev in stream().iter().take(4) {
        last = Some(
            e.process(ev.as_bytes(), &Source::Http { http: true }, "now")
                .unwrap(),
        );
    }
    let p = last.unwrap();
    assert!(p.alerts.iter().any(|a| a.control_point == "SO-932"));
    // SO-932 alerted in its copy; nothing blocks the request.
    assert!(
        !matches!(&p.verdict, Some(v) if v.verdict == "block"),
        "{:?}",
        p.verdict
    );
    // A copy evaluated alone (the repartition partition's task) writes no
    // verdict: the request was answered on its own key's partition.
    let mut e = Engine::new(graph());
    e.set_forward_copies(true);
    for ev in stream().iter().take(4) {
        e.decode(ev.as_bytes()).unwrap();
        // An order without a category is in no window of this key.
        if e.select_copy("purchase@project_id+category").is_ok() {
            e.run_selected();
        }
    }
    assert!(e.is_copy());
    assert!(!e.hits().is_empty());
    assert_eq!(e.verdict(), None);
}

/// What `levee run` does: the task of the supplier's partition evaluates
/// the type and forwards the event keyed by each copy's key; the task of
/// that key's partition evaluates the copy alone. Together, with each
/// key's events in order, they raise what one engine raises.
#[test]
fn forwarding_copies_to_the_engines_of_their_keys_raises_what_replay_raises() {
    let g = graph();
    let partitions = 3;
    let engine = || {
        let mut e = Engine::new(g.clone());
        e.set_forward_copies(true);
        e
    };
    let mut sources: Vec<Engine> = (0..partitions).map(|_| engine()).collect();
    let mut copies: Vec<Engine> = (0..partitions).map(|_| engine()).collect();
    let part = |key: &str| key.bytes().map(usize::from).sum::<usize>() % partitions;
    let mut forwarded: Vec<(String, String, String)> = Vec::new();
    let mut fired = Fired::new();
    let source = Source::Http { http: true };
    for ev in stream() {
        let supplier = ev.split("supplier_id\":\"").nth(1).unwrap()[..3].to_owned();
        let e = &mut sources[part(&supplier)];
        let p = e.process(ev.as_bytes(), &source, "now").unwrap();
        for a in p.alerts {
            fired.insert((a.event_id, a.control_point, a.subject));
        }
        let mut keys = Vec::new();
        e.copy_keys(&mut keys);
        for (copy, key) in keys {
            forwarded.push((copy.to_owned(), key, ev.clone()));
        }
    }
    assert_eq!(
        forwarded
            .iter()
            .filter(|f| f.0 == "purchase@approver_id")
            .count(),
        5
    );
    // p-3 has no category: not forwarded to the project's copy.
    assert_eq!(forwarded.len(), 9);
    for (copy, key, ev) in forwarded {
        let e = &mut copies[part(&key)];
        e.decode(ev.as_bytes()).unwrap();
        e.select_copy(&copy).unwrap();
        e.run_selected();
        for &h in e.hits() {
            let a = e.alert(h, &source, "now");
            assert_eq!(a.subject, key);
            fired.insert((a.event_id, a.control_point, a.subject));
        }
    }
    let mut replay = Engine::new(g);
    let mut want = Fired::new();
    for ev in stream() {
        for a in replay
            .process(ev.as_bytes(), &source, "now")
            .unwrap()
            .alerts
        {
            want.insert((a.event_id, a.control_point, a.subject));
        }
    }
    assert_eq!(fired, want);
}

#[test]
fn a_copy_the_rules_lack_or_whose_key_is_missing_is_refused() {
    let mut e = Engine::new(graph());
    e.decode(stream()[2].as_bytes()).unwrap();
    let err = e.select_copy("purchase@buyer_id").unwrap_err();
    assert_eq!(err.kind, BadKind::UnknownType);
    assert!(
        err.to_string()
            .contains("re-keyed copy `purchase@buyer_id` of `purchase`"),
        "{err}"
    );
    let err = e.select_copy("purchase@project_id+category").unwrap_err();
    assert!(err.to_string().contains("lacks its key"), "{err}");
    assert!(!e.is_copy());
    // An event cannot name a copy as its type.
    let named = stream()[0].replace(r#""type":"purchase""#, r#""type":"purchase@approver_id""#);
    assert_eq!(
        e.decode(named.as_bytes()).unwrap_err().kind,
        BadKind::UnknownType
    );
}
