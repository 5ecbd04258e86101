//! An engine over other rules (the shadow rules of `levee run`) takes the
//! event the live engine has just decoded instead of parsing it again,
//! where both schemas read it alike, and decides exactly as if it had
//! decoded the bytes itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use levee_engine::{Engine, Source};

mod common;

fn point(id: &str, litres: u32) -> String {
    format!(
        r#"
  - id: {id}
    domain: fuel_card
    title: A large refuel
    title_zh: 大额加油
    description: A test point.
    event_type: refuel
    when: liters > {litres}
    tiers: [{{ tier: 1, notify: general_affairs_manager }}]
    message: "{{vehicle_id}} {{liters}} {{station_id}}"
"#
    )
}

fn refuel(id: &str, liters: u32, station: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","type":"refuel","occurred_at":"2026-03-02T10:00:00+08:00","branch":"wuhan","vehicle_id":"V1","fuel_card_id":"C1","liters":{liters},"amount_cny":300,"tank_capacity_l":80,"station_id":"{station}"}}"#
    )
}

/// The alerts of the event last decoded into `engine`, as JSON.
fn alerts_of(engine: &mut Engine) -> Vec<String> {
    engine.run();
    let source = Source::Http { http: true };
    engine
        .hits()
        .to_vec()
        .into_iter()
        .map(|h| serde_json::to_string(&engine.alert(h, &source, "now")).unwrap())
        .collect()
}

#[test]
fn the_live_decoded_event_decides_as_its_bytes_would() {
    let (_l, live_rules) = common::rules_with(&point("T-200", 50));
    let (_s, shadow_rules) = common::rules_with(&point("T-201", 40));
    let mut live = Engine::new(live_rules);
    let mut taken = Engine::new(Arc::clone(&shadow_rules));
    let mut parsed = Engine::new(shadow_rules);
    // Strings of different lengths in turn: the re-used slots must hold
    // this event's values, not the last one's.
    for (i, (litres, station)) in [(45, "ST-LONG-NAME-1"), (30, "S2"), (60, "ST-3")]
        .into_iter()
        .enumerate()
    {
        let line = refuel(&format!("E{i}"), litres, station);
        live.decode(line.as_bytes()).unwrap();
        live.run();
        assert!(taken.take_decoded(&live), "same schema: taken");
        parsed.decode(line.as_bytes()).unwrap();
        let (a, b) = (alerts_of(&mut taken), alerts_of(&mut parsed));
        assert_eq!(a, b, "event {i}");
        assert_eq!(a.len(), usize::from(litres > 40), "event {i}: {a:?}");
        if let Some(alert) = a.first() {
            assert!(alert.contains(station), "{alert}");
        }
    }
}

#[test]
fn a_changed_schema_is_decoded_from_the_bytes() {
    let (_l, live_rules) = common::rules_with(&point("T-200", 50));
    let (dir, _) = common::rules_with(&point("T-201", 40));
    let schema = dir.path().join("schemas/vehicle_fuel.yaml");
    let text = std::fs::read_to_string(&schema).unwrap();
    let at = text.find("  refuel:").unwrap();
    let fields = at + text[at..].find("    fields:\n").unwrap() + "    fields:\n".len();
    let changed = format!(
        "{}      pump_id: {{ type: string }}\n{}",
        &text[..fields],
        &text[fields..]
    );
    std::fs::write(&schema, changed).unwrap();
    let shadow_rules = Arc::new(levee_rules::compile_dir(dir.path()).unwrap().graph);
    let mut live = Engine::new(live_rules);
    let mut shadow = Engine::new(shadow_rules);
    live.decode(refuel("E1", 45, "ST-1").as_bytes()).unwrap();
    assert!(!shadow.take_decoded(&live), "another field: not taken");
}
