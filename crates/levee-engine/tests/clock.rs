//! The rectification period runs on the clock that raised the alert. With
//! the wall clock (the service), a backlog event raises its alert at tier 1
//! with a deadline counted from detection, whatever the event's date, and
//! the same scenario gives the same alerts on any day the clock reads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use levee_engine::{Alert, Clock, Engine, Source};

mod common;

fn graph() -> Arc<levee_rules::RuleGraph> {
    Arc::new(levee_rules::compile_dir(&common::shipped()).unwrap().graph)
}

fn arrears(id: &str, customer: &str, at: DateTime<Utc>) -> String {
    format!(
        r#"{{"event_id":"{id}","type":"arrears_snapshot","occurred_at":"{}","branch":"wuhan","group_customer_id":"{customer}","customer_manager_id":"M","arrears_cny":45000,"overdue_months":4,"credit_limit_cny":50000}}"#,
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What the service does on a day `today`: a 90-day-old event and a fresh
/// one raised now, then the clock ticking a day at a time for 61 days.
/// Returns every alert with its tick (days after today).
fn a_service_day(today: DateTime<Utc>) -> Vec<(i64, Alert)> {
    let mut engine = Engine::new(graph());
    engine.set_clock(Clock::Wall(today.timestamp()));
    let source = Source::Http { http: true };
    let mut out = Vec::new();
    for line in [
        arrears("backlog", "G1", today - Duration::days(90)),
        arrears("fresh", "G2", today - Duration::hours(1)),
    ] {
        let p = engine
            .process(line.as_bytes(), &source, &rfc3339(today))
            .unwrap();
        out.extend(p.alerts.into_iter().map(|a| (0, a)));
    }
    for day in 1..=61 {
        let now = today + Duration::days(day);
        out.extend(
            engine
                .tick(now.timestamp(), &rfc3339(now))
                .into_iter()
                .map(|a| (day, a)),
        );
    }
    out
}

/// BA-101's alerts as (day, event, tier), in that order.
fn ba101(alerts: &[(i64, Alert)]) -> Vec<(i64, String, u8)> {
    let mut v: Vec<_> = alerts
        .iter()
        .filter(|(_, a)| a.control_point == "BA-101")
        .map(|(d, a)| (*d, a.event_id.clone(), a.tier))
        .collect();
    v.sort();
    v
}

#[test]
fn a_backlog_alert_starts_at_tier_1_and_escalates_30_days_after_detection() {
    let today = Utc::now();
    let alerts = a_service_day(today);
    assert_eq!(
        ba101(&alerts),
        [
            (0, "backlog".to_owned(), 1),
            (0, "fresh".to_owned(), 1),
            // Not on day 0: the period starts at detection, not at the event.
            (30, "backlog".to_owned(), 2),
            (30, "fresh".to_owned(), 2),
            (60, "backlog".to_owned(), 3),
            (60, "fresh".to_owned(), 3),
        ]
    );
    for (day, a) in alerts.iter().filter(|(_, a)| a.control_point == "BA-101") {
        let detected = DateTime::parse_from_rfc3339(&a.detected_at).unwrap();
        match &a.rectify_by {
            Some(by) => {
                let by = DateTime::parse_from_rfc3339(by).unwrap();
                // Deadlines are whole seconds; detected_at has milliseconds.
                let secs = (by - detected).num_seconds();
                assert!((30 * 86_400 - 1..=30 * 86_400).contains(&secs), "{a:?}");
                assert_eq!(
                    by.offset().local_minus_utc(),
                    8 * 3600,
                    "business time zone"
                );
            }
            None => assert_eq!((*day, a.tier), (60, 3), "only tier 3 has no deadline"),
        }
    }
}

#[test]
fn the_same_scenario_gives_the_same_alerts_400_days_on() {
    let today = Utc::now();
    let strip = |alerts: Vec<(i64, Alert)>| -> Vec<(i64, String, String, u8)> {
        alerts
            .into_iter()
            .map(|(d, a)| (d, a.alert_id, a.control_point, a.tier))
            .collect()
    };
    let now = strip(a_service_day(today));
    let later = strip(a_service_day(today + Duration::days(400)));
    assert!(!now.is_empty());
    assert_eq!(now, later);
}

/// The shipped schemas, lists and calendar with one control point whose
/// period is ten working days.
fn working_days_rules() -> (tempfile::TempDir, Arc<levee_rules::RuleGraph>) {
    common::rules_with(
        r#"  - id: WD-001
    domain: arrears
    title: Arrears not rectified within ten working days
    title_zh: 欠费10个工作日内未整改
    description: A test of working-day periods.
    event_type: arrears_snapshot
    when: arrears_cny >= 30000
    escalate_after: 10wd
    tiers:
      - tier: 1
        notify: department_manager
    message: "{group_customer_id} owes {arrears_cny} CNY"
"#,
    )
}

fn beijing(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn ten_working_days_across_the_2026_spring_festival_end_on_march_4() {
    let (_dir, graph) = working_days_rules();
    // Raised on Thursday 2026-02-12: 02-13 (Fri), 02-14 (make-up Saturday),
    // the holiday 02-15..02-23, 02-24..02-27, 02-28 (make-up Saturday),
    // 03-02, 03-03 and 03-04 are its ten working days.
    let raised = beijing("2026-02-12T10:00:00+08:00");
    for clock in [Clock::Wall(raised.timestamp()), Clock::EventTime] {
        let mut engine = Engine::new(Arc::clone(&graph));
        engine.set_clock(clock);
        let line = arrears("a1", "G1", raised);
        let p = engine
            .process(
                line.as_bytes(),
                &Source::Http { http: true },
                &rfc3339(raised),
            )
            .unwrap();
        assert_eq!(p.alerts.len(), 1, "{clock:?}");
        assert_eq!(
            p.alerts[0].rectify_by.as_deref(),
            Some("2026-03-04T23:59:59+08:00"),
            "{clock:?}"
        );
        let last = beijing("2026-03-04T23:59:59+08:00");
        assert!(engine.tick(last.timestamp(), "t").is_empty(), "{clock:?}");
        let next = beijing("2026-03-05T00:00:00+08:00");
        let escalated = engine.tick(next.timestamp(), "t");
        assert_eq!(escalated.len(), 1, "{clock:?}");
        assert_eq!(escalated[0].tier, 2);
        // The next period starts at the escalation, on March 5: the ten
        // working days after it end on Thursday March 19.
        assert_eq!(
            escalated[0].rectify_by.as_deref(),
            Some("2026-03-19T23:59:59+08:00")
        );
    }
}
