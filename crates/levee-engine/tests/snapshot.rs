//! A partition's state written out subject by subject (what the changelog
//! holds) and read back into a fresh engine continues exactly where the
//! first engine was: same alerts, same escalations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use levee_engine::{Engine, Source, Status, SubjectSnapshot};

fn graph() -> Arc<levee_rules::RuleGraph> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    Arc::new(levee_rules::compile_dir(&dir).unwrap().graph)
}

fn refuel(id: &str, vehicle: &str, at: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","type":"refuel","occurred_at":"{at}","branch":"wuhan","vehicle_id":"{vehicle}","fuel_card_id":"C-{id}","liters":40,"amount_cny":300,"tank_capacity_l":60,"station_id":"ST"}}"#
    )
}

fn arrears(id: &str, customer: &str, at: &str, amount: u32) -> String {
    format!(
        r#"{{"event_id":"{id}","type":"arrears_snapshot","occurred_at":"{at}","branch":"wuhan","group_customer_id":"{customer}","customer_manager_id":"M","arrears_cny":{amount},"overdue_months":4,"credit_limit_cny":50000}}"#
    )
}

/// Alerts (id, tier) of one event, escalations by its event time included.
fn feed(engine: &mut Engine, line: &str) -> Vec<(String, u8)> {
    let source = Source::File {
        file: "t".into(),
        line: 0,
    };
    let mut out: Vec<_> = engine
        .process(line.as_bytes(), &source, "now")
        .unwrap()
        .alerts
        .into_iter()
        .map(|a| (a.alert_id, a.tier))
        .collect();
    let w = engine.watermark();
    out.extend(
        engine
            .tick(w, "now")
            .into_iter()
            .map(|a| (a.alert_id, a.tier)),
    );
    out
}

#[test]
fn snapshots_restore_windows_durations_and_open_alerts() {
    let first = [
        refuel("f1", "V1", "2026-05-01T08:00:00Z"),
        refuel("f2", "V1", "2026-05-01T12:00:00Z"),
        arrears("a1", "G1", "2026-05-01T00:00:00Z", 60000),
        arrears("a2", "G2", "2026-05-01T00:00:00Z", 45000),
    ];
    let second = [
        refuel("f3", "V1", "2026-05-01T16:00:00Z"),
        arrears("a3", "G1", "2026-07-01T00:00:00Z", 70000),
        arrears("a4", "G3", "2026-07-02T00:00:00Z", 10),
    ];

    let mut straight = Engine::new(graph());
    let mut expected = Vec::new();
    for l in first.iter().chain(&second) {
        expected.extend(feed(&mut straight, l));
    }

    let mut a = Engine::new(graph());
    let mut got = Vec::new();
    for l in &first {
        got.extend(feed(&mut a, l));
    }
    let dirty = a.take_dirty_subjects();
    assert!(dirty.contains(&"V1".to_owned()) && dirty.contains(&"G2".to_owned()));
    assert!(a.take_dirty_subjects().is_empty(), "taken");
    // Through JSON, as the changelog carries it.
    let records: Vec<(String, String)> = a
        .snapshot(dirty)
        .into_iter()
        .map(|(s, snap)| (s, serde_json::to_string(&snap).unwrap()))
        .collect();
    let mut b = Engine::new(graph());
    b.restore_subjects(
        records.iter().map(|(s, j)| {
            (
                s.clone(),
                serde_json::from_str::<SubjectSnapshot>(j).unwrap(),
            )
        }),
        a.watermark(),
    );
    assert!(
        b.take_dirty_subjects().is_empty(),
        "restoring dirties nothing"
    );
    for l in &second {
        got.extend(feed(&mut b, l));
    }
    assert_eq!(got, expected);
    assert!(
        got.iter().any(|(_, t)| *t == 2),
        "an escalation crossed the restore: {got:?}"
    );
    assert_eq!(b.profile("G2"), straight.profile("G2"));
}

#[test]
fn rectification_and_expiry_make_subjects_dirty() {
    let mut e = Engine::new(graph());
    let alerts = feed(&mut e, &arrears("a1", "G1", "2026-05-01T00:00:00Z", 45000));
    assert!(!alerts.is_empty());
    e.take_dirty_subjects();
    assert!(e.rectify(&alerts[0].0, Status::Rectified));
    assert_eq!(e.take_dirty_subjects(), ["G1"]);
    feed(&mut e, &arrears("a2", "G9", "2027-09-01T00:00:00Z", 10));
    e.take_dirty_subjects();
    assert_eq!(e.expire(400 * 86_400), 1);
    assert_eq!(e.take_dirty_subjects(), ["G1"]);
    let snap = e.snapshot(vec!["G1".into()]);
    assert!(snap[0].1.state.is_none() && snap[0].1.profile.is_some());
}
