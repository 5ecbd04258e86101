//! State follows its control point: windows are kept under a digest of
//! their definition and `for:` / suppression state under the point's id, so
//! a reload or a restore under a changed catalog keeps each point's history
//! with that point, and drops what belongs to no point any more.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use levee_engine::{Engine, Source};

mod common;

/// A point counting refuels in 24 hours, and one whose condition must
/// hold for an hour.
const COUNT_AND_HOLD: &str = r#"
  - id: T-100
    domain: fuel_card
    title: Three refuels in a day
    title_zh: 一天加油三次
    description: A test point with a window.
    event_type: refuel
    aggregates:
      refuels_24h: { fn: count, over: 24h }
    when: refuels_24h >= 3
    tiers: [{ tier: 1, notify: general_affairs_manager }]
    message: "{vehicle_id}"
  - id: T-101
    domain: fuel_card
    title: Large refuels for an hour
    title_zh: 连续一小时大额加油
    description: A test point with a duration.
    event_type: refuel
    when: liters > 50
    for: 1h
    tiers: [{ tier: 1, notify: general_affairs_manager }]
    message: "{vehicle_id}"
"#;

/// Inserted before them: a point with a window of its own.
const INSERTED: &str = r#"
  - id: T-099
    domain: fuel_card
    title: Many litres in a week
    title_zh: 一周加油量大
    description: A test point inserted before the others.
    event_type: refuel
    aggregates:
      litres_7d: { fn: sum, of: liters, over: 7d }
    when: litres_7d > 100000
    for: 1h
    tiers: [{ tier: 1, notify: general_affairs_manager }]
    message: "{vehicle_id}"
"#;

fn refuel(id: &str, at: &str, liters: u32) -> String {
    format!(
        r#"{{"event_id":"{id}","type":"refuel","occurred_at":"{at}","branch":"wuhan","vehicle_id":"V1","fuel_card_id":"C1","liters":{liters},"amount_cny":300,"tank_capacity_l":80,"station_id":"ST-1"}}"#
    )
}

/// The control points an event raised.
fn fired(engine: &mut Engine, line: &str) -> Vec<String> {
    let source = Source::Http { http: true };
    let mut ids: Vec<String> = engine
        .process(line.as_bytes(), &source, "now")
        .unwrap()
        .alerts
        .into_iter()
        .map(|a| a.control_point)
        .collect();
    ids.sort();
    ids
}

/// Two refuels of over 50 litres under the first rules (08:00, 08:30);
/// the third, two
/// hours after the first, under the second: the count of three and the
/// hour held are each point's own history.
fn third_refuel_after(engine: &mut Engine, swap: impl FnOnce(&mut Engine)) -> Vec<String> {
    assert!(fired(engine, &refuel("r1", "2026-06-01T08:00:00Z", 60)).is_empty());
    assert!(fired(engine, &refuel("r2", "2026-06-01T08:30:00Z", 60)).is_empty());
    swap(engine);
    fired(engine, &refuel("r3", "2026-06-01T10:00:00Z", 60))
}

#[test]
fn a_point_inserted_before_stateful_ones_leaves_their_history_with_them() {
    let (_a, before) = common::rules_with(COUNT_AND_HOLD);
    let (_b, after) = common::rules_with(&format!("{INSERTED}{COUNT_AND_HOLD}"));
    let mut engine = Engine::new(before);
    let got = third_refuel_after(&mut engine, |e| e.set_graph(after));
    assert_eq!(got, ["T-100", "T-101"]);
}

#[test]
fn a_restore_under_a_changed_catalog_keeps_each_points_history() {
    let (_a, before) = common::rules_with(COUNT_AND_HOLD);
    let (_b, after) = common::rules_with(&format!("{INSERTED}{COUNT_AND_HOLD}"));
    let mut engine = Engine::new(before);
    let got = third_refuel_after(&mut engine, |e| {
        // What a changelog holds, restored into an engine of the new rules.
        let subjects = e.take_dirty_subjects();
        let snapshots = e.snapshot(subjects);
        let watermark = e.watermark();
        let mut fresh = Engine::new(Arc::clone(&after));
        fresh.restore_subjects(snapshots, watermark);
        *e = fresh;
    });
    assert_eq!(got, ["T-100", "T-101"]);
}

#[test]
fn state_of_a_removed_or_changed_definition_is_dropped() {
    let (_a, before) = common::rules_with(COUNT_AND_HOLD);
    // T-100 gone; T-101's condition the same.
    let (_b, without) =
        common::rules_with(&COUNT_AND_HOLD[COUNT_AND_HOLD.find("  - id: T-101").unwrap()..]);
    let mut engine = Engine::new(Arc::clone(&before));
    let _ = third_refuel_after(&mut engine, |e| e.set_graph(without));
    let kept = &engine.state().subjects["V1"];
    assert!(kept.windows.is_empty(), "T-100's window is gone: {kept:?}");
    assert_eq!(kept.holds.len(), 1, "T-101 still holds: {kept:?}");

    // A window whose definition changes (24h → 48h) starts afresh.
    let changed = COUNT_AND_HOLD.replace("over: 24h", "over: 48h");
    let (_c, changed) = common::rules_with(&changed);
    let mut engine = Engine::new(before);
    let got = third_refuel_after(&mut engine, |e| e.set_graph(changed));
    assert_eq!(got, ["T-101"], "a new window has no history");
}
