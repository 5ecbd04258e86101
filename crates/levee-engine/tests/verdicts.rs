//! Verdicts go where someone waits for them: requests (event types with
//! `request: true`) get `allow` or `block`; an event that reports what
//! already happened gets no verdict, and a `block` point on it raises its
//! alert as an alert.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use levee_engine::{Engine, Processed, Source};

mod common;

fn engine() -> Engine {
    let graph = levee_rules::compile_dir(&common::shipped()).unwrap().graph;
    Engine::new(Arc::new(graph))
}

fn process(engine: &mut Engine, event: &str) -> Processed {
    engine
        .process(event.as_bytes(), &Source::Http { http: true }, "now")
        .unwrap()
}

fn campaign(id: &str, subsidy: u32) -> String {
    format!(
        r#"{{"event_id":"{id}","type":"campaign_application","occurred_at":"2026-11-07T15:00:00+08:00","branch":"yichang","campaign_id":"K-{id}","applicant_id":"E1","budget_cny":{},"subsidy_per_user_cny":{subsidy},"expected_users":1000}}"#,
        subsidy * 1000
    )
}

#[test]
fn a_request_gets_a_verdict_and_its_blocking_points_block() {
    let mut e = engine();
    let blocked = process(&mut e, &campaign("CA-1", 301));
    let v = blocked.verdict.expect("a request gets a verdict");
    assert_eq!(v.verdict, "block");
    assert!(v.control_points.iter().any(|c| c == "MC-001"), "{v:?}");
    let mc001 = blocked
        .alerts
        .iter()
        .find(|a| a.control_point == "MC-001")
        .expect("MC-001 alerts");
    assert_eq!(mc001.action, "block");

    let allowed = process(&mut e, &campaign("CA-2", 200));
    let v = allowed.verdict.expect("every request gets a verdict");
    assert_eq!(v.verdict, "allow");
    assert!(v.control_points.is_empty());
}

#[test]
fn an_event_that_already_happened_alerts_and_gets_no_verdict() {
    // A `block` point on refuels (the shipped catalog has none left): the
    // fuel is in the tank, nothing can be blocked.
    let (_dir, graph) = common::rules_with(
        r#"  - id: FC-905
    domain: fuel_card
    title: Card used for another vehicle
    event_type: refuel
    subject: fuel_card_id
    when: card_vehicle_id != vehicle_id
    action: block
    tiers:
      - tier: 1
        notify: general_affairs_manager
    message: "Card {fuel_card_id} refuelled {vehicle_id}"
"#,
    );
    let mut e = Engine::new(graph);
    let refuel = r#"{"event_id":"fc1","type":"refuel","occurred_at":"2026-11-04T10:00:00+08:00","branch":"wuhan","vehicle_id":"V1","fuel_card_id":"C1","liters":40,"amount_cny":300,"tank_capacity_l":60,"station_id":"ST-WH-001","price_per_l_cny":7.5,"card_vehicle_id":"V9"}"#;
    let p = process(&mut e, refuel);
    assert!(p.verdict.is_none(), "{:?}", p.verdict);
    let alert = p
        .alerts
        .iter()
        .find(|a| a.control_point == "FC-905")
        .expect("the point still alerts");
    assert_eq!(alert.action, "alert", "nothing was blocked");
}

#[test]
fn the_shipped_schemas_mark_requests() {
    let graph = levee_rules::compile_dir(&common::shipped()).unwrap().graph;
    let request = |name: &str| {
        graph
            .event_types
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no type {name}"))
            .request
    };
    for t in ["campaign_application", "payment", "credit_limit_change"] {
        assert!(request(t), "{t} is a request");
    }
    for t in ["refuel", "bill_adjustment", "trip"] {
        assert!(!request(t), "{t} reports what happened");
    }
}
