//! Unit tests of [`super`]: the diff of two hit sets, warming up, and a
//! shadow engine beside a live one, without a broker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use rdkafka::message::Timestamp;

use super::*;
use crate::service::reload::Origin;

#[test]
fn diff_names_added_removed_and_tier() {
    let live = [("VF-001", 1), ("VF-002", 2), ("VF-003", 1)];
    let shadow = [("VF-001", 1), ("VF-002", 3), ("VF-004", 1)];
    let mut d = diff(&live, &shadow);
    d.sort_by_key(|(id, _)| *id);
    assert_eq!(
        d,
        vec![
            ("VF-002", DiffKind::Tier),
            ("VF-003", DiffKind::Removed),
            ("VF-004", DiffKind::Added),
        ]
    );
    assert!(diff(&live, &live).is_empty());
    assert!(diff(&[], &[]).is_empty());
    assert_eq!(
        diff(&[], &[("VF-001", 1)]),
        vec![("VF-001", DiffKind::Added)]
    );
    assert_eq!(
        diff(&[("VF-001", 1)], &[]),
        vec![("VF-001", DiffKind::Removed)]
    );
}

#[test]
fn a_point_warms_up_until_its_longest_window_has_passed() {
    let mut w = Warming::default();
    w.add(vec![("T-WARM-1".to_owned(), 100)], 1_000);
    assert!(w.is_warming("T-WARM-1"));
    assert!(w.advance(1_099).is_empty());
    assert!(w.is_warming("T-WARM-1"));
    assert_eq!(w.advance(1_100), vec!["T-WARM-1".to_owned()]);
    assert!(!w.is_warming("T-WARM-1"));
}

#[test]
fn without_event_time_warming_is_dated_from_the_first_event() {
    let mut w = Warming::default();
    w.add(vec![("T-WARM-2".to_owned(), 50)], 0);
    // The first event, long after the epoch: the window starts there.
    assert!(w.advance(10_000).is_empty());
    assert!(w.is_warming("T-WARM-2"));
    assert!(w.advance(10_049).is_empty());
    assert_eq!(w.advance(10_050), vec!["T-WARM-2".to_owned()]);
}

#[test]
fn a_point_added_again_keeps_the_later_end() {
    let mut w = Warming::default();
    w.add(vec![("T-WARM-3".to_owned(), 100)], 1_000);
    w.add(vec![("T-WARM-3".to_owned(), 10)], 1_050);
    assert!(w.advance(1_099).is_empty());
    assert_eq!(w.advance(1_100), vec!["T-WARM-3".to_owned()]);
}

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")
}

fn graph(dir: &Path) -> Arc<RuleGraph> {
    Arc::new(levee_rules::compile_dir(dir).unwrap().graph)
}

#[test]
fn only_points_of_a_type_with_new_windows_start_cold() {
    let g = graph(&shipped());
    assert!(cold_points(&g, &StateKeys::of(&g)).is_empty());
    let cold = cold_points(&g, &StateKeys::default());
    // trip has windows of 30 days and more: VF-001 reads none, but waits
    // for the longest.
    let (_, trip) = g.event_type("trip").unwrap();
    let longest = trip.aggregates.iter().map(|a| a.over).max().unwrap();
    assert!(longest >= 30 * 86_400);
    let vf001 = cold.iter().find(|(id, _)| id == "VF-001").unwrap();
    assert_eq!(vf001.1, longest);
    assert!(
        cold.len() < g.control_points.len(),
        "stateless types start warm"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The shipped rules with VF-001 at 15 % over standard instead of 20 %.
fn vf001_at_15(dir: &Path) {
    copy_dir(&shipped(), dir);
    let file = dir.join("vehicle_fuel/fuel_consumption.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let changed = text.replacen(
        "when: fuel_used_l > standard_fuel_l * 1.2\n",
        "when: fuel_used_l > standard_fuel_l * 1.15\n",
        1,
    );
    assert_ne!(text, changed);
    std::fs::write(file, changed).unwrap();
}

fn trip(offset: i64, fuel_l: f64) -> OwnedMessage {
    let body = format!(
        r#"{{"event_id":"s{offset}","type":"trip","occurred_at":"2026-11-02T09:15:00+08:00","branch":"wuhan","vehicle_id":"E-A1234","driver_id":"D-0101","distance_km":100,"fuel_used_l":{fuel_l},"standard_l_per_100km":10}}"#
    );
    OwnedMessage::new(
        Some(body.into_bytes()),
        Some(b"E-A1234".to_vec()),
        "events.vehicle_fuel".into(),
        Timestamp::CreateTime(0),
        0,
        offset,
        None,
    )
}

#[test]
fn the_shadow_alerts_to_its_topic_only_and_leaves_the_live_engine_alone() {
    let tmp = tempfile::tempdir().unwrap();
    vf001_at_15(tmp.path());
    let rules = Arc::new(Rules::load_shadow(Origin::Dir(tmp.path().to_path_buf())).unwrap());
    let mut live = Engine::new(graph(&shipped()));
    let mut shadow = Shadow::start(rules, &live, "alerts.shadow", true);

    // 17 % over: the shadow's VF-001 alerts, the live one does not.
    let m = trip(1, 11.7);
    live.evaluate(m.payload().unwrap()).unwrap();
    assert!(live.hits().is_empty());
    let out = shadow.event(&live, &m, "2026-11-02T01:15:00.000Z");
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].topic, "alerts.shadow");
    let alert: serde_json::Value = serde_json::from_slice(&out[0].payload).unwrap();
    assert_eq!(alert["control_point"], "VF-001");
    assert_eq!(alert["event_id"], "s1");
    // The live ledger has no alert of it; the shadow's has.
    assert_eq!(live.ledger().open_ids().count(), 0);
    assert_eq!(shadow.engine().ledger().open_ids().count(), 1);

    // 25 % over: both alert at tier 1, the same alert id.
    let m = trip(2, 12.5);
    live.evaluate(m.payload().unwrap()).unwrap();
    let live_alert = live.alert(live.hits()[0], &Source::Http { http: true }, "x");
    let out = shadow.event(&live, &m, "2026-11-02T01:15:00.000Z");
    assert_eq!(out.len(), 1);
    let alert: serde_json::Value = serde_json::from_slice(&out[0].payload).unwrap();
    assert_eq!(alert["alert_id"], live_alert.alert_id.as_str());
    // Untracked: nothing for a changelog.
    assert!(shadow.engine.take_changes().is_empty());
}

/// The value of one series in the exposition (0 if absent).
fn series(name_and_labels: &str) -> f64 {
    metrics::render()
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn shadow_rules_reload_apart_from_the_rules_in_force() {
    metrics::init();
    let tmp = tempfile::tempdir().unwrap();
    vf001_at_15(tmp.path());
    let rules = Rules::load_shadow(Origin::Dir(tmp.path().to_path_buf())).unwrap();
    let (_, before) = rules.current();
    let shadow_failed = r#"levee_shadow_reloads_total{outcome="failed"}"#;
    let live_failed = r#"levee_ruleset_reloads_total{outcome="failed"}"#;
    let (shadow0, live0) = (series(shadow_failed), series(live_failed));
    let file = tmp.path().join("vehicle_fuel/fuel_consumption.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("fuel_used_l >", "no_such_field >", 1)).unwrap();
    rules.reload("test");
    assert_eq!(rules.current().1, before, "broken rules are not swapped in");
    assert_eq!(series(shadow_failed), shadow0 + 1.0);
    assert_eq!(series(live_failed), live0);
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=levee", "-c", "user.email=levee@localhost"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

#[test]
fn shadow_rules_may_be_a_git_revision() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    copy_dir(&shipped(), &rules);
    git(tmp.path(), &["init", "-q", "-b", "main"]);
    git(tmp.path(), &["add", "."]);
    git(tmp.path(), &["commit", "-q", "-m", "rules"]);
    git(tmp.path(), &["checkout", "-q", "-b", "next"]);
    let scratch = tempfile::tempdir().unwrap();
    vf001_at_15(scratch.path());
    std::fs::copy(
        scratch.path().join("vehicle_fuel/fuel_consumption.yaml"),
        rules.join("vehicle_fuel/fuel_consumption.yaml"),
    )
    .unwrap();
    git(tmp.path(), &["commit", "-q", "-am", "VF-001 at 15 %"]);
    git(tmp.path(), &["checkout", "-q", "main"]);

    let when = |r: &Rules| {
        let (g, _) = r.current();
        g.control_point("VF-001").unwrap().when_src.clone()
    };
    let next = Rules::load_shadow(Origin::DirOrRevision {
        arg: "next".to_owned(),
        rules: rules.clone(),
    })
    .unwrap();
    assert!(when(&next).contains("1.15"), "{}", when(&next));
    let main = Rules::load_shadow(Origin::DirOrRevision {
        arg: "main".to_owned(),
        rules: rules.clone(),
    })
    .unwrap();
    assert!(when(&main).contains("1.2"), "{}", when(&main));
    // Neither a directory nor a revision: refused, with the reason.
    let err = Rules::load_shadow(Origin::DirOrRevision {
        arg: "no-such-rev".to_owned(),
        rules,
    })
    .unwrap_err();
    assert!(err[0].to_string().contains("no-such-rev"), "{}", err[0]);
}

/// A trip of vehicle V-H on `day` (of November 2026), `fuel_l` against a
/// standard of 10 L.
fn trip_on(offset: i64, day: u32, fuel_l: f64) -> OwnedMessage {
    let body = format!(
        r#"{{"event_id":"h{offset}","type":"trip","occurred_at":"2026-11-{day:02}T09:15:00+08:00","branch":"wuhan","vehicle_id":"V-H","driver_id":"D-H","distance_km":100,"fuel_used_l":{fuel_l},"standard_l_per_100km":10}}"#
    );
    OwnedMessage::new(
        Some(body.into_bytes()),
        Some(b"V-H".to_vec()),
        "events.vehicle_fuel".into(),
        Timestamp::CreateTime(0),
        0,
        offset,
        None,
    )
}

fn hit_ids(e: &Engine) -> Vec<String> {
    e.hits()
        .iter()
        .map(|h| {
            e.graph().control_points[h.control_point as usize]
                .id
                .clone()
        })
        .collect()
}

#[test]
fn equal_windows_start_from_the_live_history() {
    let tmp = tempfile::tempdir().unwrap();
    vf001_at_15(tmp.path());
    let rules = Arc::new(Rules::load_shadow(Origin::Dir(tmp.path().to_path_buf())).unwrap());
    let mut live = Engine::new(graph(&shipped()));
    // Four trips 15 % over (VF-001 fires in neither ruleset): VF-101's
    // 30-day windows fill in the live engine.
    for i in 0..4 {
        live.evaluate(trip_on(i, 2 + i as u32, 11.5).payload().unwrap())
            .unwrap();
        assert!(live.hits().is_empty());
    }
    let mut shadow = Shadow::start(rules, &live, "alerts.shadow", true);
    assert!(!shadow.warming.is_warming("VF-101"));
    // The fifth: VF-101 fires in both, from the history the shadow copied.
    let m = trip_on(4, 6, 11.5);
    live.evaluate(m.payload().unwrap()).unwrap();
    assert_eq!(hit_ids(&live), ["VF-101"]);
    let out = shadow.event(&live, &m, "2026-11-06T01:15:00.000Z");
    assert_eq!(hit_ids(shadow.engine()), ["VF-101"]);
    assert_eq!(out.len(), 1);
}

#[test]
fn a_new_window_warms_up_for_its_length_in_event_time() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&shipped(), tmp.path());
    // VF-101's count over 20 days instead of 30: a window the live rules
    // lack.
    let file = tmp
        .path()
        .join("vehicle_fuel/fuel_consumption_stateful.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let changed = text.replacen(
        "trips_30d: { fn: count, over: 30d }",
        "trips_30d: { fn: count, over: 20d }",
        1,
    );
    assert_ne!(text, changed);
    std::fs::write(&file, changed).unwrap();
    let rules = Arc::new(Rules::load_shadow(Origin::Dir(tmp.path().to_path_buf())).unwrap());
    let mut live = Engine::new(graph(&shipped()));
    let m = trip_on(0, 1, 10.0);
    live.evaluate(m.payload().unwrap()).unwrap();
    let mut shadow = Shadow::start(rules, &live, "alerts.shadow", true);
    // Every point of trip waits for the new window; other types do not.
    assert!(shadow.warming.is_warming("VF-101"));
    assert!(shadow.warming.is_warming("VF-001"));
    assert!(!shadow.warming.is_warming("BA-001"));
    let gauge = r#"levee_shadow_warming_up{control_point="VF-101"}"#;
    assert!(series(gauge) >= 1.0);
    // 19 days of event time later: still warming; 20: warm.
    let m = trip_on(1, 20, 10.0);
    live.evaluate(m.payload().unwrap()).unwrap();
    shadow.event(&live, &m, "x");
    assert!(shadow.warming.is_warming("VF-101"));
    let m = trip_on(2, 21, 10.0);
    live.evaluate(m.payload().unwrap()).unwrap();
    shadow.event(&live, &m, "x");
    assert!(!shadow.warming.is_warming("VF-101"));
}

fn purchase(offset: i64, supplier: &str) -> OwnedMessage {
    let body = format!(
        r#"{{"event_id":"t{offset}","type":"purchase","occurred_at":"2026-11-05T10:00:00+08:00","branch":"wuhan","project_id":"P-T","supplier_id":"{supplier}","amount_cny":1000,"method":"inquiry","bidder_count":3,"requester_id":"E1","approver_id":"E2"}}"#
    );
    OwnedMessage::new(
        Some(body.into_bytes()),
        Some(supplier.as_bytes().to_vec()),
        "events.procurement".into(),
        Timestamp::CreateTime(0),
        0,
        offset,
        None,
    )
}

/// A row of the live engine's `supplier_blacklist`, as the tables' topic
/// would put it.
fn blacklist(live: &Engine, set: &TableSet, supplier: &str) {
    let t = set.index("supplier_blacklist").unwrap();
    let row = live.graph().tables[t]
        .row(
            &serde_json::json!({"supplier_id": supplier, "valid_from": "2026-01-01"}),
            &live.graph().calendar,
        )
        .unwrap();
    set.write(t).put(supplier, [row]);
}

#[test]
fn the_shadow_reads_the_live_tables_rows_and_its_own_for_its_own_tables() {
    let tmp = tempfile::tempdir().unwrap();
    vf001_at_15(tmp.path());
    // A table only the shadow rules declare, with a topic: its file rows.
    std::fs::write(
        tmp.path().join("tables/shadow_only.yaml"),
        "tables:\n  shadow_only:\n    key: supplier_id\n    topic: tables.shadow_only\n    columns:\n      supplier_id: { type: string }\n    rows:\n      - { supplier_id: S-A }\n      - { supplier_id: S-B }\n",
    )
    .unwrap();
    let rules = Arc::new(Rules::load_shadow(Origin::Dir(tmp.path().to_path_buf())).unwrap());
    let mut live = Engine::new(graph(&shipped()));
    let set = Arc::new(TableSet::from_graph(live.graph()));
    live.set_tables(Arc::clone(&set));
    let mut shadow = Shadow::start(rules, &live, "alerts.shadow", true);
    let own = shadow.engine().tables().index("shadow_only").unwrap();
    assert_eq!(shadow.engine().tables().read(own).len(), 2);

    // A supplier blacklisted by a topic record after the shadow started:
    // SM-001 blocks in both, no difference.
    blacklist(&live, &set, "SUP-LIVE-1");
    let m = purchase(1, "SUP-LIVE-1");
    live.evaluate(m.payload().unwrap()).unwrap();
    assert_eq!(hit_ids(&live), ["SM-001"]);
    let out = shadow.event(&live, &m, "x");
    assert_eq!(hit_ids(shadow.engine()), ["SM-001"]);
    assert_eq!(out.len(), 1);

    // The live engine gets another set (a reload carried the rows over):
    // the shadow reads that one from the next event.
    let next = Arc::new(TableSet::from_graph(live.graph()));
    blacklist(&live, &next, "SUP-LIVE-2");
    live.set_tables(Arc::clone(&next));
    let m = purchase(2, "SUP-LIVE-2");
    live.evaluate(m.payload().unwrap()).unwrap();
    shadow.event(&live, &m, "x");
    assert_eq!(hit_ids(shadow.engine()), ["SM-001"]);
    let m = purchase(3, "SUP-LIVE-1");
    live.evaluate(m.payload().unwrap()).unwrap();
    assert!(live.hits().is_empty());
    shadow.event(&live, &m, "x");
    assert!(hit_ids(shadow.engine()).is_empty());
}

#[test]
fn a_type_the_shadow_rules_do_not_change_is_not_evaluated_again() {
    let tmp = tempfile::tempdir().unwrap();
    vf001_at_15(tmp.path());
    let (live_g, shadow_g) = (graph(&shipped()), graph(tmp.path()));
    let same = same_types(&live_g, &shadow_g);
    let index = |name: &str| live_g.event_type(name).unwrap().0 as usize;
    assert!(!same[index("trip")], "VF-001 changed: trips are evaluated");
    assert!(same[index("refuel")] && same[index("arrears_snapshot")]);
    assert!(same_types(&live_g, &live_g).iter().all(|s| *s));

    // A refuel the live rules alert on: the shadow's alert is the live
    // one under the shadow's ruleset version, in the shadow's ledger.
    let rules = Arc::new(Rules::load_shadow(Origin::Dir(tmp.path().to_path_buf())).unwrap());
    let mut live = Engine::new(Arc::clone(&live_g));
    let mut shadow = Shadow::start(rules, &live, "alerts.shadow", true);
    let body = r#"{"event_id":"r1","type":"refuel","occurred_at":"2026-11-02T02:15:00+08:00","branch":"wuhan","vehicle_id":"V1","fuel_card_id":"C1","liters":150,"amount_cny":1200,"tank_capacity_l":60,"station_id":"ST-WH-001"}"#;
    let m = OwnedMessage::new(
        Some(body.as_bytes().to_vec()),
        Some(b"V1".to_vec()),
        "events.vehicle_fuel".into(),
        Timestamp::CreateTime(0),
        0,
        7,
        None,
    );
    live.evaluate(body.as_bytes()).unwrap();
    assert!(!live.hits().is_empty(), "the refuel alerts");
    let want: Vec<String> = live
        .hits()
        .iter()
        .map(|h| live_g.control_points[h.control_point as usize].id.clone())
        .collect();
    let out = shadow.event(&live, &m, "2026-11-02T01:15:00.000Z");
    let got: Vec<serde_json::Value> = out
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    let ids: Vec<&str> = got
        .iter()
        .map(|a| a["control_point"].as_str().unwrap())
        .collect();
    assert_eq!(ids, want);
    assert!(got
        .iter()
        .all(|a| a["ruleset_version"] == shadow_g.version.as_str()));
    assert_eq!(shadow.engine().ledger().open_ids().count(), want.len());
}
