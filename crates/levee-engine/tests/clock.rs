//! The rectification period runs on the clock that raised the alert. With
//! the wall clock (the service), a backlog event raises its alert at tier 1
//! with a deadline counted from detection, whatever the event's date, and
//! the same scenario gives the same alerts on any day the clock reads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use levee_engine::{Alert, Clock, Engine, Source};

fn graph() -> Arc<levee_rules::RuleGraph> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    Arc::new(levee_rules::compile_dir(&dir).unwrap().graph)
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
