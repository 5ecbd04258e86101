//! A recorded sample's directory as the offline commands read it, and the
//! start-up of a sampling `levee run` without its key. (What `levee run`
//! records is tests/kafka_sample.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn levee(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_levee"))
        .args(args)
        .current_dir(repo())
        .env_remove("LEVEE_SAMPLE_KEY")
        .output()
        .expect("run levee")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Refuels whose plates a sample would hold hashed: the camera reads the
/// vehicle's plate, another, or nothing.
fn refuels() -> Vec<String> {
    (0..12)
        .map(|i| {
            let plate = format!("鄂A{:05}", 100 + i % 4);
            let seen = match i % 3 {
                0 => format!("鄂B{:05}", 200 + i),
                1 => String::new(),
                _ => plate.clone(),
            };
            format!(
                r#"{{"event_id":"fc-{i}","type":"refuel","occurred_at":"2026-11-04T1{h}:00:00+08:00","branch":"wuhan","vehicle_id":"V{v}","fuel_card_id":"C{v}","liters":{l},"amount_cny":300,"price_per_l_cny":7.5,"station_id":"ST-WH-001","tank_capacity_l":60,"plate_seen":"{seen}","vehicle_plate":"{plate}"}}"#,
                h = i % 10,
                v = i % 4,
                l = 30 + i
            )
        })
        .collect()
}

/// A one-to-one stand-in for the keyed hash (`lvh:` and a number per
/// distinct value; empty stays empty): what a sample does to equalities.
fn hashed(line: &str, seen: &mut Vec<String>) -> String {
    let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
    for f in ["plate_seen", "vehicle_plate"] {
        let clear = v[f].as_str().unwrap().to_owned();
        if clear.is_empty() {
            continue;
        }
        let n = seen.iter().position(|s| *s == clear).unwrap_or_else(|| {
            seen.push(clear.clone());
            seen.len() - 1
        });
        v[f] = format!("lvh:{n:032x}").into();
    }
    v.to_string()
}

/// The sample directory `levee run` would leave: a manifest and segments.
fn sample_dir(dir: &Path, lines: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        r#"{"format":1,"hash":"hmac-sha256-128","prefix":"lvh:","key_fingerprint":"0011223344556677","subjects_per_10000":10000,"sensitive":{"partner_settlement":["payee_account"],"refuel":["plate_seen","vehicle_plate"],"subsidy_payout":["imei"],"terminal_return":["imei"]}}"#,
    )
    .unwrap();
    let (first, second) = lines.split_at(lines.len() / 2);
    for (seq, part) in [(2, second), (1, first)] {
        std::fs::write(
            dir.join(format!("sample-{seq:010}.jsonl")),
            part.join("\n") + "\n",
        )
        .unwrap();
    }
}

/// FC-019 firing on an empty plate reading too.
fn changed_rules(dir: &Path) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo().join("rules"))
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
    let file = dir.join("vehicle_fuel/fuel_card.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let changed = text.replacen(
        "when: len(plate_seen) > 0 && plate_seen != vehicle_plate\n",
        "when: plate_seen != vehicle_plate\n",
        1,
    );
    assert_ne!(text, changed);
    std::fs::write(file, changed).unwrap();
}

/// Per control point: id, and the diff's counts.
fn per_point(out: &Output) -> Vec<(String, [u64; 5])> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = |p: &serde_json::Value, k: &str| p[k]["count"].as_u64().unwrap();
    report["control_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                [
                    p["base_alerts"].as_u64().unwrap(),
                    p["head_alerts"].as_u64().unwrap(),
                    n(p, "added"),
                    n(p, "removed"),
                    n(p, "tier"),
                ],
            )
        })
        .collect()
}

#[test]
fn diff_over_a_sample_gives_what_the_clear_events_give() {
    let tmp = tempfile::tempdir().unwrap();
    let clear = refuels();
    let mut seen = Vec::new();
    let hashed: Vec<String> = clear.iter().map(|l| hashed(l, &mut seen)).collect();
    let dir = tmp.path().join("sample");
    sample_dir(&dir, &hashed);
    let original = tmp.path().join("events.jsonl");
    std::fs::write(&original, clear.join("\n") + "\n").unwrap();
    let head = tmp.path().join("rules-next");
    changed_rules(&head);
    let diff = |events: &Path| {
        levee(&[
            "diff",
            "--format",
            "json",
            "--now",
            "2026-11-26T00:00:00Z",
            "--base",
            "rules",
            "--head",
            head.to_str().unwrap(),
            events.to_str().unwrap(),
        ])
    };
    let over_sample = diff(&dir);
    assert!(
        !text(&over_sample.stderr).contains("warning"),
        "{}",
        text(&over_sample.stderr)
    );
    let got = per_point(&over_sample);
    assert_eq!(got, per_point(&diff(&original)));
    let fc019 = got.iter().find(|(id, _)| id == "FC-019").unwrap();
    // Head adds the 4 empty readings to the 4 of another plate.
    assert_eq!(fc019.1[2..], [4, 0, 0], "{got:?}");

    // replay reads the segments in order, as one file of them.
    let replayed = levee(&[
        "replay",
        "--now",
        "2026-11-26T00:00:00Z",
        dir.to_str().unwrap(),
    ]);
    assert!(replayed.status.success(), "{}", text(&replayed.stderr));
    let at = |out: &Output| -> Vec<String> {
        text(&out.stdout)
            .lines()
            .map(|l| {
                let a: serde_json::Value = serde_json::from_str(l).unwrap();
                format!("{} {}", a["control_point"], a["event_id"])
            })
            .collect()
    };
    let whole = tmp.path().join("hashed.jsonl");
    std::fs::write(&whole, hashed.join("\n") + "\n").unwrap();
    let in_one = levee(&[
        "replay",
        "--now",
        "2026-11-26T00:00:00Z",
        whole.to_str().unwrap(),
    ]);
    assert_eq!(at(&replayed), at(&in_one));
    assert!(!at(&replayed).is_empty());
}

#[test]
fn a_directory_without_a_manifest_is_no_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let out = levee(&["diff", "--base", "rules", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("is a directory but not a levee sample (it has no manifest.json)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_sample_hashed_under_other_sensitive_fields_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sample");
    sample_dir(&dir, &refuels());
    let manifest = dir.join("manifest.json");
    let text_of = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text_of.replace(r#""plate_seen","vehicle_plate""#, r#""vehicle_plate""#),
    )
    .unwrap();
    let out = levee(&[
        "replay",
        "--now",
        "2026-11-26T00:00:00Z",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: the sample") && err.contains("refuel.plate_seen"),
        "{err}"
    );
    // Both rulesets give it: said once.
    let out = levee(&["diff", "--base", "rules", dir.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(text(&out.stderr).matches("warning: the sample").count(), 1);
}

#[test]
fn sampling_without_its_key_does_not_start() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("levee.toml");
    std::fs::write(
        &config,
        format!(
            "[sample]\nenabled = true\ndir = {:?}\n",
            tmp.path().join("sample").display().to_string()
        ),
    )
    .unwrap();
    // Started, it would wait for a broker: give it 60 s to stop on its own.
    let mut child = Command::new(env!("CARGO_BIN_EXE_levee"))
        .args(["run", "--config", config.to_str().unwrap()])
        .current_dir(repo())
        .env_remove("LEVEE_SAMPLE_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("levee run started without its sample key");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("LEVEE_SAMPLE_KEY")
            && err.contains("is not set")
            && err.contains("refuel.plate_seen"),
        "{err}"
    );
    assert!(!tmp.path().join("sample").exists());
}
