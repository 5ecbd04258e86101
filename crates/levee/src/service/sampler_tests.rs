//! Unit tests of [`super`]: the sampler over a small rules directory.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::*;
use crate::sample::segments;
use crate::service::size::Size;

const RULES: &str = r#"
event_types:
  refuel:
    stream: events.vehicle_fuel
    subject: card
    fields:
      card: { type: string, required: true }
      plate_seen: { type: string, sensitive: true }
      vehicle_plate: { type: string, sensitive: true }
      liters: { type: number }
"#;

const KEY: &str = "0123456789abcdef0123";

fn rules(dir: &Path, text: &str) -> Arc<Rules> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("types.yaml"), text).unwrap();
    Arc::new(Rules::load(dir.to_owned()).unwrap())
}

fn settings(dir: &Path, per_10000: u32, max_bytes: u64) -> SampleSettings {
    SampleSettings {
        enabled: true,
        dir: dir.to_owned(),
        max_bytes: Size::from_bytes(max_bytes),
        subjects_per_10000: per_10000,
        key_env: "TEST_SAMPLE_KEY".to_owned(),
    }
}

fn key_env(var: &str) -> Option<String> {
    (var == "TEST_SAMPLE_KEY").then(|| KEY.to_owned())
}

fn event(card: &str, i: usize) -> String {
    format!(
        r#"{{"event_id":"{card}-{i}","type":"refuel","occurred_at":"2026-11-04T10:00:00+08:00","branch":"wuhan","card":"{card}","plate_seen":"鄂A{i:05}","vehicle_plate":"鄂A{i:05}","liters":40}}"#
    )
}

/// The sample's events, in order.
fn sampled(dir: &Path) -> Vec<serde_json::Value> {
    segments::list(dir)
        .unwrap()
        .iter()
        .flat_map(|(_, p, _)| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn sampled_subjects_keep_their_whole_history_hashed() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules(&tmp.path().join("rules"), RULES);
    let dir = tmp.path().join("sample");
    let s = Sampler::start(&settings(&dir, 1000, 64 << 20), rules, key_env)
        .unwrap()
        .unwrap();
    for i in 0..20 {
        for c in 0..500 {
            let card = format!("C{c}");
            s.offer_event("refuel", &card, event(&card, i).as_bytes());
        }
    }
    s.finish();
    let events = sampled(&dir);
    let mut by_card: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &events {
        by_card
            .entry(e["card"].as_str().unwrap().to_owned())
            .or_default()
            .push(e["event_id"].as_str().unwrap().to_owned());
        assert!(!e["plate_seen"].as_str().unwrap().contains('鄂'), "{e}");
        assert_eq!(e["plate_seen"], e["vehicle_plate"]);
    }
    // About 10 % of the 500 cards, each with all of its 20 events in order.
    assert!((25..=80).contains(&by_card.len()), "{}", by_card.len());
    let chooser = Chooser::new(Some(&Key::new(KEY.as_bytes())), 1000);
    for c in 0..500 {
        let card = format!("C{c}");
        match by_card.get(&card) {
            Some(ids) => {
                let whole: Vec<String> = (0..20).map(|i| format!("{card}-{i}")).collect();
                assert_eq!(ids, &whole);
            }
            None => assert!(!chooser.chosen("refuel", &card)),
        }
    }
    let m = Manifest::read(&dir).unwrap().unwrap();
    assert_eq!(m.subjects_per_10000, 1000);
    assert_eq!(m.sensitive["refuel"], ["plate_seen", "vehicle_plate"]);
    assert_eq!(
        m.key_fingerprint.as_deref(),
        Some(Key::new(KEY.as_bytes()).fingerprint().as_str())
    );
}

#[test]
fn the_sample_stays_within_its_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules(&tmp.path().join("rules"), RULES);
    let dir = tmp.path().join("sample");
    let max = 256 << 10;
    let s = Sampler::start(&settings(&dir, 10_000, max), rules, key_env)
        .unwrap()
        .unwrap();
    for i in 0..3000 {
        s.offer_event("refuel", "C1", event("C1", i).as_bytes());
    }
    s.finish();
    let files = segments::list(&dir).unwrap();
    let bytes: u64 = files.iter().map(|f| f.2).sum();
    assert!(bytes <= max && files.len() > 1, "{bytes} in {files:?}");
    let events = sampled(&dir);
    assert_eq!(events.last().unwrap()["event_id"], "C1-2999");
    assert!(events.len() < 3000);
}

#[test]
fn without_the_key_sensitive_fields_stop_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let rules_dir = tmp.path().join("rules");
    let e = Sampler::start(
        &settings(&tmp.path().join("sample"), 100, 1 << 20),
        rules(&rules_dir, RULES),
        |_| None,
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("TEST_SAMPLE_KEY")
            && text.contains("refuel.plate_seen, refuel.vehicle_plate"),
        "{text}"
    );
    // Nothing sensitive: no key needed.
    let clear = RULES.replace(", sensitive: true", "");
    let s = Sampler::start(
        &settings(&tmp.path().join("clear"), 100, 1 << 20),
        rules(&tmp.path().join("clear-rules"), &clear),
        |_| None,
    )
    .unwrap();
    assert!(s.is_some());
    // Off: nothing starts, nothing is checked.
    let off = SampleSettings {
        enabled: false,
        ..settings(&tmp.path().join("off"), 100, 1 << 20)
    };
    assert!(Sampler::start(&off, rules(&rules_dir, RULES), |_| None)
        .unwrap()
        .is_none());
    assert!(!tmp.path().join("off").exists());
}

#[test]
fn a_sample_under_another_key_is_started_afresh() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules(&tmp.path().join("rules"), RULES);
    let dir = tmp.path().join("sample");
    let run = |key: &'static str, card: &str| {
        let s = Sampler::start(&settings(&dir, 10_000, 1 << 20), Arc::clone(&rules), |_| {
            Some(key.to_owned())
        })
        .unwrap()
        .unwrap();
        s.offer_event("refuel", card, event(card, 1).as_bytes());
        s.finish();
        sampled(&dir)
            .iter()
            .map(|e| e["card"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(run(KEY, "A"), BTreeSet::from(["A".to_owned()]));
    // The same key after a restart: the sample goes on.
    assert_eq!(
        run(KEY, "B"),
        BTreeSet::from(["A".to_owned(), "B".to_owned()])
    );
    // Another key: the old hashes would not match the new; begun afresh.
    assert_eq!(
        run("another key of 16 bytes", "C"),
        BTreeSet::from(["C".to_owned()])
    );
}

#[test]
fn a_reload_that_changes_the_sensitive_fields_begins_a_new_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let rules_dir = tmp.path().join("rules");
    let rules = rules(&rules_dir, RULES);
    let dir = tmp.path().join("sample");
    let s = Sampler::start(
        &settings(&dir, 10_000, 1 << 20),
        Arc::clone(&rules),
        key_env,
    )
    .unwrap()
    .unwrap();
    s.offer_event("refuel", "A", event("A", 1).as_bytes());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sampled(&dir).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first event never reached the file"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // vehicle_plate is no longer sensitive: A's sample held it hashed.
    std::fs::write(
        rules_dir.join("types.yaml"),
        RULES.replace(
            "vehicle_plate: { type: string, sensitive: true }",
            "vehicle_plate: { type: string }",
        ),
    )
    .unwrap();
    rules.reload("test");
    assert_ne!(rules.generation(), 0, "the changed rules did not load");
    s.offer_event("refuel", "B", event("B", 2).as_bytes());
    s.finish();
    let events = sampled(&dir);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["card"], "B");
    assert_eq!(events[0]["vehicle_plate"], "鄂A00002");
    assert_ne!(events[0]["plate_seen"], "鄂A00002");
    let m = Manifest::read(&dir).unwrap().unwrap();
    assert_eq!(m.sensitive["refuel"], ["plate_seen"]);
}
