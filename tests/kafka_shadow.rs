//! Shadow rules in `levee run` over a real broker: a ruleset with one
//! changed control point evaluated beside the rules in force. The tier
//! topics hold what the live rules give, `alerts.shadow` what the shadow
//! rules give, and `/metrics` counts the difference.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/http.rs"]
mod http;
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use http::http_address;
use serde_json::Value;
use support::*;

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

/// The shipped rules, VF-001 moved from 20 % to 15 % over standard.
fn shadow_rules(dir: &Path) {
    copy_dir(&workspace().join("rules"), dir);
    let file = dir.join("vehicle_fuel/fuel_consumption.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let changed = text.replacen(
        "when: fuel_used_l > standard_fuel_l * 1.2\n",
        "when: fuel_used_l > standard_fuel_l * 1.15\n",
        1,
    );
    assert_ne!(text, changed, "VF-001's threshold is where it was");
    std::fs::write(file, changed).unwrap();
}

/// Trips 15-20 % over standard on vehicles of their own: VF-001 at 15 %
/// alerts on each, at 20 % on none. Dated days before the tests' now.
fn trips_between_15_and_20(n: usize) -> Vec<String> {
    let at = beijing(test_now() - chrono::Duration::days(2));
    (0..n)
        .map(|i| {
            let fuel = 11.6 + 0.1 * (i % 4) as f64; // standard 10 L
            format!(
                r#"{{"event_id":"trip-sh15-{i}","type":"trip","occurred_at":"{at}","branch":"wuhan","vehicle_id":"V-SH-{i}","driver_id":"D-SH-{i}","distance_km":100,"fuel_used_l":{fuel:.1},"standard_l_per_100km":10}}"#
            )
        })
        .collect()
}

/// The value of one series in a text exposition (0 if absent).
fn series(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Done-when 2: a shadow ruleset with one changed point changes nothing on
/// the tier topics; `alerts.shadow` holds the shadow rules' alerts, among
/// them the changed point's new ones; the diff metric counts those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_ruleset_alerts_to_its_topic_and_counts_the_difference() {
    shadow_ruleset("exactly_once").await;
}

/// The same at-least-once: shadow records go with the live output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_ruleset_at_least_once() {
    shadow_ruleset("at_least_once").await;
}

async fn shadow_ruleset(delivery: &str) {
    let setup = Setup::new(&format!("shadow_{delivery}")).await;
    let shadow_dir = setup.dir.path().join("shadow-rules");
    shadow_rules(&shadow_dir);

    let (mut events, _) = example_events();
    events.extend(generated_events("shadow", 30));
    events.extend(trips_between_15_and_20(12));
    let live = replay(&setup, &events);
    let shadow = replay_with(&setup, &shadow_dir, &events);
    // What the change adds: VF-001 alerts of the shadow rules only.
    let added: BTreeSet<&str> = shadow
        .values()
        .filter(|a| a["control_point"] == "VF-001")
        .map(|a| a["event_id"].as_str().unwrap())
        .filter(|id| {
            !live
                .values()
                .any(|l| l["control_point"] == "VF-001" && l["event_id"] == *id)
        })
        .collect();
    for i in 0..12 {
        assert!(added.contains(format!("trip-sh15-{i}").as_str()));
    }
    // Only VF-001 differs: the rest of the shadow set is the live set.
    let others = |set: &AlertSet| -> BTreeSet<(String, u64)> {
        set.iter()
            .filter(|(_, a)| a["control_point"] != "VF-001")
            .map(|(k, _)| k.clone())
            .collect()
    };
    assert_eq!(others(&live), others(&shadow));

    let config = setup.config_with(
        delivery,
        0,
        &format!(
            "[shadow]\nrules_dir = {:?}\n",
            shadow_dir.display().to_string()
        ),
    );
    let mut levee = setup.spawn(&config, "a");
    let addr = http_address(&mut levee).await;
    levee.wait_log("shadow rules on", 1).await;
    setup.produce_events(&events).await;

    // The tier topics: exactly what replay gives with the shipped rules.
    setup.wait_for_alerts(&live).await;
    let deadline = Instant::now() + WAIT;
    let got_shadow = loop {
        let got: Vec<Value> = broker()
            .consume_all(&setup.shadow, WAIT)
            .await
            .unwrap()
            .iter()
            .map(|m| serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap())
            .collect();
        let keys = alert_keys(&got);
        if shadow.keys().all(|k| keys.contains_key(k)) || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let tiers = setup.alerts().await;
    assert_eq!(
        alert_keys(&tiers).keys().collect::<BTreeSet<_>>(),
        live.keys().collect::<BTreeSet<_>>(),
        "the tier topics hold exactly what levee replay gives with the live rules"
    );
    assert!(
        tiers
            .iter()
            .all(|a| !added.contains(a["event_id"].as_str().unwrap())
                || a["control_point"] != "VF-001"),
        "a shadow alert reached a tier topic"
    );

    // alerts.shadow: exactly what the shadow rules give, keyed by subject.
    assert_no_duplicates(&got_shadow);
    assert_eq!(
        alert_keys(&got_shadow).keys().collect::<BTreeSet<_>>(),
        shadow.keys().collect::<BTreeSet<_>>(),
        "alerts.shadow holds what levee replay gives with the shadow rules"
    );
    let shadow_vf001: BTreeSet<&str> = got_shadow
        .iter()
        .filter(|a| a["control_point"] == "VF-001")
        .map(|a| a["event_id"].as_str().unwrap())
        .collect();
    assert!(added.iter().all(|id| shadow_vf001.contains(id)));

    // The metric counts the added alerts, and nothing else differs.
    let text = http::get(addr, "/metrics").unwrap().text();
    assert_eq!(
        series(
            &text,
            r#"levee_shadow_diff_total{control_point="VF-001",kind="added"}"#
        ),
        added.len() as f64,
        "{text}"
    );
    let diffs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("levee_shadow_diff_total{"))
        .collect();
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    // VF-001's windows are the live ones: it was never warming up.
    assert_eq!(
        series(&text, r#"levee_shadow_warming_up{control_point="VF-001"}"#),
        0.0
    );

    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}
