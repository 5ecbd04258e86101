//! Fail-closed fields on the path an approval platform calls (`POST
//! /v1/evaluate`, nothing recorded): a large campaign that does not show
//! its legal and finance reviews gets `block`; one that shows them, `allow`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use levee_engine::{Engine, Source};

mod common;

fn verdict(engine: &mut Engine, extra: &str) -> (String, Vec<String>) {
    let event = format!(
        r#"{{"event_id":"CA-fc","type":"campaign_application","occurred_at":"2026-11-03T10:00:00+08:00","branch":"yichang","campaign_id":"K-fc","applicant_id":"E1","budget_cny":600000,"subsidy_per_user_cny":100,"expected_users":3000{extra}}}"#
    );
    let p = engine
        .process(event.as_bytes(), &Source::Http { http: true }, "now")
        .unwrap();
    let v = p.verdict.expect("a campaign application is a request");
    (v.verdict.to_owned(), v.control_points)
}

#[test]
fn a_missing_review_blocks_and_shown_reviews_allow() {
    let graph = levee_rules::compile_dir(&common::shipped()).unwrap().graph;
    let mut e = Engine::new(Arc::new(graph));
    e.set_record(false);
    let block = ("block".to_owned(), vec!["MC-013".to_owned()]);
    assert_eq!(verdict(&mut e, ""), block);
    assert_eq!(verdict(&mut e, r#","legal_review_done":true"#), block);
    assert_eq!(
        verdict(
            &mut e,
            r#","legal_review_done":true,"finance_review_done":null"#
        ),
        block
    );
    assert_eq!(
        verdict(
            &mut e,
            r#","legal_review_done":true,"finance_review_done":false"#
        ),
        block
    );
    assert_eq!(
        verdict(
            &mut e,
            r#","legal_review_done":true,"finance_review_done":true"#
        ),
        ("allow".to_owned(), vec![])
    );
}
