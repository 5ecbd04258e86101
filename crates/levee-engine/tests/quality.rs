//! Data-quality guards on the evaluation path an approval platform calls
//! (`POST /v1/evaluate`: nothing recorded): an implausible reading alerts
//! the data owner and decides no control point that reads it, so a request
//! with a negative amount is judged by no point reading the amount.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use levee_engine::{Engine, Processed, Source};

mod common;

fn process(engine: &mut Engine, event: &str) -> Processed {
    engine
        .process(event.as_bytes(), &Source::Http { http: true }, "now")
        .unwrap()
}

fn purchase(id: &str, amount: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","type":"purchase","occurred_at":"2026-11-05T10:00:00+08:00","branch":"wuhan","project_id":"P-{id}","supplier_id":"S-{id}","amount_cny":{amount},"method":"inquiry","bidder_count":1,"requester_id":"E1","approver_id":"E2"}}"#
    )
}

fn points(p: &Processed) -> Vec<&str> {
    p.alerts.iter().map(|a| a.control_point.as_str()).collect()
}

#[test]
fn an_implausible_amount_alerts_its_data_owner_and_blocks_nothing() {
    let graph = levee_rules::compile_dir(&common::shipped()).unwrap().graph;
    let mut e = Engine::new(Arc::new(graph));
    e.set_record(false);

    // A price inquiry with one quote: SO-015, whose tiers read the amount.
    let plausible = process(&mut e, &purchase("PO-1", "50000"));
    assert_eq!(points(&plausible), ["SO-015"]);

    let implausible = process(&mut e, &purchase("PO-2", "-50000"));
    assert_eq!(points(&implausible), ["DQ-purchase-amount_cny"]);
    let dq = &implausible.alerts[0];
    assert_eq!(
        (dq.tier, dq.notify.as_str()),
        (1, "procurement_data_steward")
    );
    assert_eq!(
        (dq.action.as_str(), dq.domain.as_str()),
        ("alert", "data_quality")
    );
    let v = implausible.verdict.expect("a purchase is a request");
    assert_eq!(v.verdict, "allow");
    // Nothing was recorded: the same event again gives the same answer.
    let again = process(&mut e, &purchase("PO-2", "-50000"));
    assert_eq!(points(&again), ["DQ-purchase-amount_cny"]);
}
