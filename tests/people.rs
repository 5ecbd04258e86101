//! `levee replay --profiles` on the shipped rules and examples: person
//! profiles (一人一档) built from the alerts the same replay prints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const NOW: &str = "2026-12-01T00:00:00Z";

/// The replay's stdout: alerts, subject profiles and person profiles.
struct Replay {
    alerts: Vec<Value>,
    subjects: Vec<Value>,
    people: BTreeMap<String, Value>,
    /// Person profile ids in the order printed.
    order: Vec<String>,
}

fn replay(args: &[&str]) -> Replay {
    let mut r = Replay {
        alerts: Vec::new(),
        subjects: Vec::new(),
        people: BTreeMap::new(),
        order: Vec::new(),
    };
    for v in lines(args) {
        if v.get("alert_id").is_some() {
            r.alerts.push(v);
        } else if let Some(p) = v.get("person") {
            let p = p.as_str().unwrap().to_owned();
            r.order.push(p.clone());
            r.people.insert(p, v);
        } else {
            assert!(v.get("subject").is_some(), "{v}");
            r.subjects.push(v);
        }
    }
    r
}

/// For each person the alerts name, the first ids of their alerts: an
/// escalation belongs to the alert it escalates.
fn expected(alerts: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut first: BTreeMap<String, String> = BTreeMap::new();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in alerts {
        let id = a["alert_id"].as_str().unwrap().to_owned();
        let root = match a.get("escalated_from").and_then(Value::as_str) {
            Some(from) => first.get(from).cloned().unwrap_or_else(|| from.to_owned()),
            None => id.clone(),
        };
        first.insert(id, root.clone());
        for p in a["people"].as_array().expect("people: an array") {
            out.entry(p.as_str().unwrap().to_owned())
                .or_default()
                .insert(root.clone());
        }
    }
    out
}

fn last_ids(profile: &Value) -> BTreeSet<String> {
    profile["last_alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn person_profiles_hold_the_alerts_that_name_each_person() {
    let r = replay(&["--now", NOW, "--profiles"]);
    let want = expected(&r.alerts);
    assert!(!want.is_empty(), "the examples name people");
    assert_eq!(
        r.people.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    let mut sorted = r.order.clone();
    sorted.sort();
    assert_eq!(r.order, sorted, "one line per person, by employee number");
    for (person, ids) in &want {
        let p = &r.people[person];
        assert_eq!(p["alerts"], ids.len(), "{person}: {p}");
        let last = last_ids(p);
        assert_eq!(last.len(), ids.len().min(5), "{person}: {p}");
        assert!(last.is_subset(ids), "{person}: {p}");
        assert_eq!(p["open"], ids.len(), "nothing rectified: {p}");
    }
    // The customer manager of the examples' worst arrears (BA-001 tier 3).
    let ids = &want["CM-052"];
    assert_eq!(&last_ids(&r.people["CM-052"]), ids);
    assert!(r
        .alerts
        .iter()
        .any(|a| a["control_point"] == "BA-001" && a["people"][0] == "CM-052"));
    // Subject profiles are keyed by the typed subject.
    for s in &r.subjects {
        let key = s["subject"].as_str().unwrap();
        let (kind, id) = key.split_once(':').expect("<kind>:<id>");
        assert!(
            r.alerts.iter().any(|a| a["subject"] == id),
            "{key} is no alert's subject"
        );
        assert!(!kind.is_empty() && !kind.ends_with("_id"), "{key}");
    }
}

#[test]
fn a_rectification_in_the_input_counts_and_the_score_decays() {
    let r = replay(&["--now", NOW, "--profiles"]);
    let before = &r.people["CM-052"];
    let target = r
        .alerts
        .iter()
        .find(|a| a["people"][0] == "CM-052" && a.get("escalated_from").is_none())
        .expect("an alert about CM-052");
    let id = target["alert_id"].as_str().unwrap();
    let raised = chrono::DateTime::parse_from_rfc3339(target["occurred_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let mut text = std::fs::read_to_string(repo().join("examples/events.jsonl")).unwrap();
    text.push_str(&format!(
        "{{\"alert_id\":\"{id}\",\"status\":\"rectified\",\"by\":\"E-0231\",\"role\":\"discipline_inspection\",\"at\":\"{}\"}}\n",
        chrono::DateTime::from_timestamp(raised + 3 * 86_400, 0)
            .unwrap()
            .to_rfc3339()
    ));
    std::fs::write(&input, text).unwrap();
    let path = input.to_str().unwrap();
    let after = &replay(&["--now", NOW, "--profiles", path]).people["CM-052"];
    assert_eq!(after["rectified"], 1, "{after}");
    assert_eq!(after["open"], before["open"].as_u64().unwrap() - 1);
    assert_eq!(after["time_to_rectify"]["count"], 1);
    assert_eq!(after["time_to_rectify"]["mean_s"], 3 * 86_400);
    assert!(after["risk_score"].as_f64().unwrap() < before["risk_score"].as_f64().unwrap());

    // One half-life later, every score is half (to the rounding).
    let later = "2026-12-31T00:00:00Z";
    let a = replay(&["--now", NOW, "--profiles", "--half-life", "30d"]);
    let b = replay(&["--now", later, "--profiles", "--half-life", "30d"]);
    for (person, p) in &a.people {
        let (x, y) = (
            p["risk_score"].as_f64().unwrap(),
            b.people[person]["risk_score"].as_f64().unwrap(),
        );
        assert!(
            x > 0.0 && (x / 2.0 - y).abs() <= 0.01,
            "{person}: {x} then {y}"
        );
    }
}

/// The JSON lines `levee replay ARGS` prints.
fn lines(args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_levee"))
        .arg("replay")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run levee");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn a_closed_alert_is_printed_as_alerts_closed_records_it() {
    let alerts = lines(&["--now", NOW]);
    let target = alerts
        .iter()
        .find(|a| a["people"][0] == "CM-052" && a.get("escalated_from").is_none())
        .expect("an alert about CM-052");
    let id = target["alert_id"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let mut text = std::fs::read_to_string(repo().join("examples/events.jsonl")).unwrap();
    text.push_str(&format!(
        "{{\"alert_id\":\"{id}\",\"status\":\"dismissed\",\"by\":\"E-0231\",\"role\":\"discipline_inspection\",\"finding\":\"系统计费错误\"}}\n"
    ));
    std::fs::write(&input, text).unwrap();
    let path = input.to_str().unwrap();
    let is_closed = |v: &&Value| v.get("closed_at").is_some();
    let printed = lines(&["--now", NOW, "--closed", path]);
    let closed: Vec<&Value> = printed.iter().filter(is_closed).collect();
    assert_eq!(closed.len(), 1, "{closed:?}");
    let c = closed[0];
    assert_eq!(c["alert_id"], id);
    assert_eq!(c["alert_ids"][0], id);
    assert_eq!(c["status"], "dismissed");
    assert_eq!(c["people"], target["people"]);
    assert_eq!(
        c["closed_at"], target["detected_at"],
        "on the clock of detected_at"
    );
    assert_eq!(c["rectification"]["finding"], "系统计费错误");
    assert!(c["profile"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":{}", target["subject"].as_str().unwrap())));
    // Without --closed, the output is the alerts alone.
    assert!(!lines(&["--now", NOW, path]).iter().any(|v| is_closed(&v)));

    // Acknowledged afterwards: backwards, refused as the stream refuses
    // it; then archived: its record again, archived, the result kept.
    let mut more = std::fs::read_to_string(&input).unwrap();
    more.push_str(&format!(
        "{{\"alert_id\":\"{id}\",\"status\":\"acknowledged\",\"by\":\"E-0231\"}}\n"
    ));
    more.push_str(&format!(
        "{{\"alert_id\":\"{id}\",\"status\":\"archived\",\"by\":\"E-0007\"}}\n"
    ));
    std::fs::write(&input, more).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_levee"))
        .args(["replay", "--now", NOW, "--closed", path])
        .current_dir(repo())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rectification refused (rectification_backwards)"),
        "{stderr}"
    );
    let closed: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("closed_at").is_some())
        .collect();
    assert_eq!(closed.len(), 2, "{closed:?}");
    let archived = &closed[1];
    assert_eq!(archived["alert_id"], id);
    assert_eq!(archived["status"], "archived");
    assert_eq!(archived["archive"]["by"], "E-0007");
    assert_eq!(archived["rectification"]["status"], "dismissed");
    assert_eq!(archived["archived_at"], target["detected_at"]);
}
