//! A recorded sample in `levee run` over a real broker: with `[sample]` on,
//! the sample holds the whole history of about the configured share of the
//! subjects, no sensitive value in clear, within its bound; and `levee
//! diff` over it gives, per control point, what it gives over the original
//! events of the sampled subjects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/http.rs"]
mod http;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use http::http_address;
use serde_json::Value;
use support::*;

/// The environment variable the test's levee reads its key from.
const KEY_ENV: &str = "LEVEE_TEST_SAMPLE_KEY";
const MAX_BYTES: u64 = 4 << 20;

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

/// The shipped rules, VF-001 moved from 20 % to 15 % over standard and
/// FC-019 firing on an empty plate reading too.
fn changed_rules(dir: &Path) {
    copy_dir(&workspace().join("rules"), dir);
    for (file, from, to) in [
        (
            "vehicle_fuel/fuel_consumption.yaml",
            "when: fuel_used_l > standard_fuel_l * 1.2\n",
            "when: fuel_used_l > standard_fuel_l * 1.15\n",
        ),
        (
            "vehicle_fuel/fuel_card.yaml",
            "when: len(plate_seen) > 0 && plate_seen != vehicle_plate\n",
            "when: plate_seen != vehicle_plate\n",
        ),
    ] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let changed = text.replacen(from, to, 1);
        assert_ne!(text, changed, "{file}: {from:?} is not where it was");
        std::fs::write(path, changed).unwrap();
    }
}

/// 200 vehicles with 4 trips each (some 15-20 % over standard), 120 with
/// 3 refuels each (the plate camera reading the vehicle's plate, another
/// one, or nothing), dated days before the tests' now.
fn histories() -> Vec<String> {
    let day = test_now() - chrono::Duration::days(4);
    let mut out = Vec::new();
    for v in 0..200 {
        for t in 0..4 {
            let at = beijing(day + chrono::Duration::minutes(60 * t + v));
            let fuel = 10.5 + 0.4 * ((v + t) % 6) as f64; // standard 10 L
            out.push(format!(
                r#"{{"event_id":"trip-s-{v}-{t}","type":"trip","occurred_at":"{at}","branch":"wuhan","vehicle_id":"V-S-{v}","driver_id":"D-S-{v}","distance_km":100,"fuel_used_l":{fuel:.1},"standard_l_per_100km":10}}"#
            ));
        }
    }
    for v in 0..120_i64 {
        let plate = format!("鄂A{:05}", 10_000 + v);
        for r in 0..3 {
            let at = beijing(day + chrono::Duration::minutes(90 * r + v));
            let seen = match (v + r) % 4 {
                0 => format!("鄂B{:05}", 20_000 + v),
                1 => String::new(),
                _ => plate.clone(),
            };
            let liters: u32 = 30 + 5 * ((v + r) % 4) as u32;
            out.push(format!(
                r#"{{"event_id":"fuel-s-{v}-{r}","type":"refuel","occurred_at":"{at}","branch":"wuhan","vehicle_id":"V-R-{v}","fuel_card_id":"C-R-{v}","liters":{liters},"amount_cny":{amount},"price_per_l_cny":7.5,"station_id":"ST-WH-001","tank_capacity_l":60,"plate_seen":"{seen}","vehicle_plate":"{plate}"}}"#,
                amount = f64::from(liters) * 7.5
            ));
        }
    }
    out
}

/// The value of one series in a text exposition (0 if absent).
fn series(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The sample's lines, segments in order.
fn sample_lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `levee diff --format json` of `events` between the shipped rules and
/// `head`: per control point (id, status, base, head, added, removed, tier).
fn diff(
    setup: &Setup,
    head: &Path,
    events: &[String],
) -> (u64, BTreeSet<(String, String, [u64; 5])>) {
    let out = Command::new(LEVEE)
        .current_dir(workspace())
        .args(["diff", "--format", "json", "--now", &rfc3339(test_now())])
        .arg("--base")
        .arg(&setup.rules)
        .arg("--head")
        .arg(head)
        .args(events)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let count = |p: &Value, k: &str| p[k]["count"].as_u64().unwrap();
    let points = report["control_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["status"].as_str().unwrap().to_owned(),
                [
                    p["base_alerts"].as_u64().unwrap(),
                    p["head_alerts"].as_u64().unwrap(),
                    count(p, "added"),
                    count(p, "removed"),
                    count(p, "tier"),
                ],
            )
        })
        .collect();
    (report["events"].as_u64().unwrap(), points)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_holds_whole_hashed_histories_and_diffs_as_the_original() {
    let setup = Setup::new("sample").await;
    let sample_dir = setup.dir.path().join("sample");
    let mut events = histories();
    events.extend(generated_events("sample", 40));
    // Sampling is a keyed choice: the key from the environment, never the file.
    std::env::set_var(KEY_ENV, "a test key of at least 16 bytes");
    let config = setup.config_with(
        "at_least_once",
        0,
        &format!(
            "[sample]\nenabled = true\ndir = {:?}\nmax_bytes = {MAX_BYTES}\nsubjects_per_10000 = 3000\nkey_env = \"{KEY_ENV}\"\n",
            sample_dir.display().to_string()
        ),
    );
    let mut levee = setup.spawn(&config, "a");
    let addr = http_address(&mut levee).await;
    levee.wait_log("sampling on", 1).await;
    setup.produce_events(&events).await;
    setup.wait_for_alerts(&replay(&setup, &events)).await;

    // Everything consumed: the writer catches up, nothing dropped.
    let deadline = Instant::now() + WAIT;
    let (lines, text) = loop {
        let text = http::get(addr, "/metrics").unwrap().text();
        let written = series(&text, r#"levee_sample_events_total{outcome="written"}"#);
        let lines = sample_lines(&sample_dir);
        if (written > 0.0 && lines.len() as f64 == written) || Instant::now() > deadline {
            break (lines, text);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        series(&text, r#"levee_sample_events_total{outcome="dropped"}"#),
        0.0,
        "{text}"
    );
    let on_disk: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
    assert!(on_disk <= MAX_BYTES);
    assert_eq!(series(&text, "levee_sample_bytes"), on_disk as f64);

    // No sensitive value in clear: every plate is a hash, or empty.
    let joined = lines.join("\n");
    assert!(!joined.contains('鄂'), "a plate in clear in the sample");
    let sampled: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for e in sampled.iter().filter(|e| e["type"] == "refuel") {
        for f in ["plate_seen", "vehicle_plate"] {
            let v = e[f].as_str().unwrap();
            assert!(
                v.is_empty() || (v.starts_with("lvh:") && v.len() == 36),
                "{e}"
            );
        }
    }
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(sample_dir.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["sensitive"]["refuel"],
        serde_json::json!(["plate_seen", "vehicle_plate"])
    );
    assert!(!manifest.to_string().contains("a test key"));

    // Whole histories of about 30 % of the subjects of each type.
    let subject = |e: &Value| -> (String, String) {
        let ty = e["type"].as_str().unwrap().to_owned();
        let field = &setup.subject_field[&ty];
        (ty, e[field.as_str()].as_str().unwrap().to_owned())
    };
    let originals: Vec<Value> = events
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut history: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for e in &originals {
        history
            .entry(subject(e))
            .or_default()
            .insert(e["event_id"].as_str().unwrap().to_owned());
    }
    let mut in_sample: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for e in &sampled {
        in_sample
            .entry(subject(e))
            .or_default()
            .insert(e["event_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        sampled.len(),
        in_sample.values().map(BTreeSet::len).sum::<usize>(),
        "an event twice"
    );
    for (s, ids) in &in_sample {
        assert_eq!(Some(ids), history.get(s), "{s:?}: not its whole history");
    }
    for ty in ["trip", "refuel"] {
        let all = history.keys().filter(|(t, _)| t == ty).count() as f64;
        let got = in_sample.keys().filter(|(t, _)| t == ty).count() as f64;
        assert!((0.15..=0.45).contains(&(got / all)), "{ty}: {got} of {all}");
    }

    // levee diff over the sample, and over the same subjects' original
    // events: the same per control point.
    let head = setup.dir.path().join("rules-next");
    changed_rules(&head);
    let copy = setup.dir.path().join("sample-copy");
    copy_dir(&sample_dir, &copy);
    let original = setup.dir.path().join("sampled-originals.jsonl");
    let kept: Vec<&str> = events
        .iter()
        .zip(&originals)
        .filter(|(_, e)| in_sample.contains_key(&subject(e)))
        .map(|(l, _)| l.as_str())
        .collect();
    std::fs::write(&original, kept.join("\n") + "\n").unwrap();
    let over_sample = diff(&setup, &head, &[copy.display().to_string()]);
    let over_original = diff(&setup, &head, &[original.display().to_string()]);
    assert_eq!(over_sample, over_original);
    // The changes show in the sample: alerts added by both.
    for id in ["VF-001", "FC-019"] {
        let added = over_sample
            .1
            .iter()
            .find(|(p, _, _)| p == id)
            .map_or(0, |(_, _, counts)| counts[2]);
        assert!(added > 0, "{id}: {:?}", over_sample.1);
    }

    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}
