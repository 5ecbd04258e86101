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
    // Profiles are kept under the typed subject.
    assert!(straight.profile("G2").is_none());
    let g2 = straight.profile("group_customer:G2");
    assert!(g2.is_some());
    assert_eq!(b.profile("group_customer:G2"), g2);
}

#[test]
fn rectification_and_expiry_make_subjects_dirty() {
    let mut e = Engine::new(graph());
    let alerts = feed(&mut e, &arrears("a1", "G1", "2026-05-01T00:00:00Z", 45000));
    assert!(!alerts.is_empty());
    e.take_dirty_subjects();
    assert!(e.rectify(&alerts[0].0, Status::Rectified));
    // The profile is kept under the typed subject, the windows under the key.
    assert_eq!(e.take_dirty_subjects(), ["group_customer:G1"]);
    feed(&mut e, &arrears("a2", "G9", "2027-09-01T00:00:00Z", 10));
    e.take_dirty_subjects();
    assert_eq!(e.expire(400 * 86_400), 1);
    assert_eq!(e.take_dirty_subjects(), ["G1"]);
    let snap = e.snapshot(vec!["G1".into(), "group_customer:G1".into()]);
    assert!(snap[0].1.state.is_none() && snap[0].1.profile.is_none());
    assert!(snap[1].1.state.is_none() && snap[1].1.profile.is_some());
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// BENCHMARKS.md "State": memory per subject and the restore time of 1M
/// subjects from changelog records. Not a timed test; run it with
/// `LEVEE_SUBJECTS=1000000 cargo test --release -p levee-engine --test snapshot -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_state_memory_and_restore() {
    let n: usize = std::env::var("LEVEE_SUBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let graph = graph();
    let mut engine = Engine::new(Arc::clone(&graph));
    let base = rss_bytes();
    let started = std::time::Instant::now();
    let source = Source::File {
        file: "m".into(),
        line: 0,
    };
    // LEVEE_QUIET=1: two refuels a vehicle, no alert (state without ledger).
    let quiet = std::env::var("LEVEE_QUIET").is_ok_and(|v| v == "1");
    let hours: &[&str] = if quiet {
        &["08", "20"]
    } else {
        &["08", "12", "16"]
    };
    // Typical: three refuels of each vehicle within a day (FC-101's 24 h
    // windows, FC-102's 7-day distinct cards, the catalog's other refuel
    // windows), the third of which alerts.
    for i in 0..n {
        for (j, hour) in hours.iter().enumerate() {
            let line = format!(
                r#"{{"event_id":"f{i}-{j}","type":"refuel","occurred_at":"2026-05-01T{hour}:00:00Z","branch":"wuhan","vehicle_id":"V{i}","fuel_card_id":"C{i}-{j}","liters":40,"amount_cny":300,"tank_capacity_l":60,"station_id":"ST{i}"}}"#
            );
            engine.process(line.as_bytes(), &source, "now").unwrap();
        }
    }
    let fed = started.elapsed();
    let used = rss_bytes().saturating_sub(base);
    let windows: usize = engine
        .state()
        .subjects
        .values()
        .map(|s| s.windows.len())
        .sum();
    let open = engine.ledger().open_count();
    println!(
        "{n} subjects, {} window entries, {open} open alerts: fed in {fed:.1?}; RSS +{:.0} MiB = {:.0} bytes per subject (state, ledger, profiles)",
        windows,
        used as f64 / 1048576.0,
        used as f64 / n as f64
    );

    let started = std::time::Instant::now();
    let dirty = engine.take_dirty_subjects();
    let records: Vec<(String, Vec<u8>)> = engine
        .snapshot(dirty)
        .into_iter()
        .map(|(s, snap)| (s, serde_json::to_vec(&snap).unwrap()))
        .collect();
    let bytes: usize = records.iter().map(|(k, v)| k.len() + v.len()).sum();
    println!(
        "snapshot + serialize: {:.1?}, {} records, {:.0} MiB ({} bytes per record)",
        started.elapsed(),
        records.len(),
        bytes as f64 / 1048576.0,
        bytes / records.len().max(1)
    );
    drop(engine);

    let started = std::time::Instant::now();
    let mut subjects = std::collections::HashMap::with_capacity(records.len());
    for (k, v) in &records {
        subjects.insert(
            k.clone(),
            serde_json::from_slice::<SubjectSnapshot>(v).unwrap(),
        );
    }
    let parsed = started.elapsed();
    let mut restored = Engine::new(graph);
    restored.restore_subjects(subjects, 0);
    println!(
        "restore of {n} subjects: parse {parsed:.1?}, total {:.1?}",
        started.elapsed()
    );
    assert_eq!(restored.state().subjects.len(), n);
}
