//! The offline commands on the shipped rules and examples, as a user runs them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn levee(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_levee"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run levee")
}

fn levee_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_levee"))
        .args(args)
        .current_dir(repo())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn alerts(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each stdout line is a JSON alert"))
        .collect()
}

#[test]
fn check_passes_on_the_shipped_rules_with_one_summary_line() {
    let out = levee(&["check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let re_ok = lines[0].ends_with(" event types")
        && lines[0].contains(" control points in ")
        && lines[0].contains(" domains, ");
    assert!(re_ok, "summary line: {}", lines[0]);
}

#[test]
fn rule_tests_pass_and_cover_every_control_point() {
    let out = levee(&["test", "-q"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let summary = stdout.lines().last().unwrap();
    let (covered, total) = summary
        .split("covered: ")
        .nth(1)
        .and_then(|s| s.split_once(" of "))
        .map(|(a, b)| (a.to_owned(), b.split(' ').next().unwrap().to_owned()))
        .unwrap();
    assert_eq!(covered, total, "{summary}");
}

#[test]
fn a_failing_rule_test_fails_the_run_and_says_what_it_got() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    copy_dir(&repo().join("rules"), &rules);
    std::fs::write(
        rules.join("tests/zz_wrong.yaml"),
        r#"cases:
  - name: expects the wrong tier
    events:
      - {event_id: t1, type: trip, occurred_at: "2026-11-02T09:00:00+08:00", branch: wuhan, vehicle_id: V1, driver_id: D1, distance_km: 100, fuel_used_l: 12.01, standard_l_per_100km: 10}
    expect:
      - {control_point: VF-001, tier: 2}
"#,
    )
    .unwrap();
    let out = levee(&["test", "-q", "--rules", rules.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(
        stdout.contains("expected VF-001 at tier 2; got tier 1 about V1 on event t1"),
        "{stdout}"
    );
    assert!(stdout.contains("1 failed"), "{stdout}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn trip(id: &str, distance: &str, fuel: &str, standard: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","type":"trip","occurred_at":"2026-11-02T09:00:00+08:00","branch":"wuhan","vehicle_id":"V-{id}","driver_id":"D1","distance_km":{distance},"fuel_used_l":{fuel},"standard_l_per_100km":{standard}}}"#
    )
}

fn arrears(id: &str, amount: &str, months: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","type":"arrears_snapshot","occurred_at":"2026-10-31T23:00:00Z","branch":"wuhan","group_customer_id":"G-{id}","customer_manager_id":"M-{id}","arrears_cny":{amount},"overdue_months":{months}}}"#
    )
}

fn fired(out: &Output, cp: &str) -> Vec<String> {
    alerts(out)
        .iter()
        .filter(|a| a["control_point"] == cp)
        .map(|a| a["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn vf_001_fires_above_20_percent_only_also_with_integer_json_numbers() {
    let input = [
        trip("over-float", "100.0", "12.01", "10.0"), // 20.1 % over
        trip("under-float", "100.0", "11.99", "10.0"), // 19.9 % over
        trip("over-int", "1000", "1201", "100"),      // 20.1 % over, integers only
        trip("under-int", "1000", "1199", "100"),     // 19.9 % over, integers only
        trip("int-div", "150", "17", "9"),            // 150 * 9 / 100 = 13.5, not 13
    ]
    .join("\n");
    let out = levee_stdin(&["replay", "-"], &input);
    assert!(out.status.success());
    assert_eq!(fired(&out, "VF-001"), ["over-float", "over-int", "int-div"]);
    let a = alerts(&out);
    let int_div = a.iter().find(|a| a["event_id"] == "int-div").unwrap();
    assert_eq!(int_div["evidence"]["standard_fuel_l"], 13.5);
    assert_eq!(int_div["tier"], 1);
    assert_eq!(int_div["notify"], "general_affairs_manager");
}

#[test]
fn ba_001_fires_at_80000_and_6_months_only() {
    let input = [
        arrears("at", "80000", "6"),
        arrears("cents-under", "79999.99", "6"),
        arrears("month-under", "80000", "5"),
        arrears("float-at", "80000.0", "6.0"),
    ]
    .join("\n");
    let out = levee_stdin(&["replay", "-"], &input);
    assert_eq!(fired(&out, "BA-001"), ["at", "float-at"]);
    let a = alerts(&out);
    assert_eq!(a[0]["notify"], "department_manager");
    assert_eq!(a[0]["subject"], "M-at");
}

#[test]
fn replay_reports_every_bad_line_and_dlq_holds_exactly_them() {
    let good = [trip("g1", "100", "13", "10"), arrears("g2", "90000", "7")];
    let bad = [
        "this is not json".to_owned(),
        "[1, 2, 3]".to_owned(),
        r#"{"event_id":"m1","type":"trip","occurred_at":"2026-11-02T09:00:00Z","branch":"wuhan","vehicle_id":"V","distance_km":1,"fuel_used_l":1,"standard_l_per_100km":1}"#.to_owned(),
        r#"{"event_id":"w1","type":"arrears_snapshot","occurred_at":"2026-11-02T09:00:00Z","branch":"wuhan","group_customer_id":"G","customer_manager_id":"M","arrears_cny":"lots","overdue_months":7}"#.to_owned(),
        r#"{"event_id":"u1","type":"levitation","occurred_at":"2026-11-02T09:00:00Z","branch":"wuhan"}"#.to_owned(),
        r#"{"event_id":"w2","type":"arrears_snapshot","occurred_at":"2026-11-02T09:00:00Z","branch":"wuhan","group_customer_id":"G","customer_manager_id":"M","arrears_cny":1,"overdue_months":6.5}"#.to_owned(),
    ];
    let lines = [
        good[0].clone(),
        bad[0].clone(),
        bad[1].clone(),
        bad[2].clone(),
        good[1].clone(),
        bad[3].clone(),
        bad[4].clone(),
        bad[5].clone(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let dlq = dir.path().join("dlq.jsonl");
    let out = levee(&[
        "replay",
        input.to_str().unwrap(),
        "--dlq",
        dlq.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "bad lines do not fail the run");
    let a = alerts(&out);
    let from_line = |cp: &str| {
        a.iter()
            .filter(|x| x["control_point"] == cp)
            .map(|x| x["source"]["line"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(from_line("VF-001"), [1]);
    assert_eq!(from_line("BA-001"), [5]);
    assert!(
        a.iter()
            .all(|x| [1, 5].contains(&x["source"]["line"].as_u64().unwrap())),
        "only the good lines raise alerts"
    );
    let stderr = text(&out.stderr);
    let name = input.to_str().unwrap();
    for (line, reason) in [
        (2, "not valid JSON"),
        (3, "an event must be a JSON object, found an array"),
        (4, "missing required field `driver_id`"),
        (6, "field `arrears_cny` must be a number, found a string"),
        (7, "unknown event type `levitation`"),
        (
            8,
            "field `overdue_months` must be a whole number, found 6.5",
        ),
    ] {
        let want = format!("{name}:{line}: bad input: {reason}");
        assert!(stderr.contains(&want), "missing {want:?} in\n{stderr}");
    }
    assert!(stderr.contains("6 bad lines"), "{stderr}");
    let dlq_text = std::fs::read_to_string(&dlq).unwrap();
    assert_eq!(dlq_text, bad.join("\n") + "\n");
}

#[test]
fn replay_with_fixed_now_matches_the_golden_file_byte_for_byte() {
    let out = levee(&["replay", "--now", "2026-11-26T00:00:00Z"]);
    assert!(out.status.success());
    // The ruleset version changes with every edit of the rules; the golden
    // file keeps everything else.
    let got: String = alerts(&out)
        .into_iter()
        .map(|mut a| {
            a["ruleset_version"] = "RULESET".into();
            format!("{a}\n")
        })
        .collect();
    let golden = repo().join("crates/levee/tests/golden/replay_examples.jsonl");
    if std::env::var_os("LEVEE_BLESS").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(got, want);
    // Every tier is represented in the examples.
    let tiers: std::collections::BTreeSet<i64> = alerts(&out)
        .iter()
        .map(|a| a["tier"].as_i64().unwrap())
        .collect();
    assert_eq!(tiers.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
    // Two runs agree: ids and output are deterministic.
    let again = levee(&["replay", "--now", "2026-11-26T00:00:00Z"]);
    assert_eq!(out.stdout, again.stdout);
}

#[test]
fn alerts_have_the_contract_fields() {
    let out = levee(&["replay", "--now", "2026-11-26T00:00:00Z"]);
    for a in alerts(&out) {
        for field in [
            "alert_id",
            "control_point",
            "domain",
            "title",
            "tier",
            "notify",
            "action",
            "subject",
            "branch",
            "event_id",
            "event_type",
            "occurred_at",
            "detected_at",
            "source",
            "ruleset_version",
            "message",
            "evidence",
        ] {
            assert!(a.get(field).is_some(), "{field} missing in {a}");
        }
        assert!(["alert", "block"].contains(&a["action"].as_str().unwrap()));
        assert_eq!(a["detected_at"], "2026-11-26T00:00:00.000Z");
        assert_eq!(a["alert_id"].as_str().unwrap().len(), 32);
    }
}

#[test]
fn graph_renders_fields_derived_values_control_points_and_tiers() {
    let out = levee(&["graph", "--format", "dot", "--event-type", "trip"]);
    assert!(out.status.success());
    let dot = text(&out.stdout);
    assert!(dot.starts_with("digraph levee {"));
    assert!(dot.contains("standard_fuel_l = "), "{dot}");
    assert!(dot.contains("VF-001: Trip fuel consumption"), "{dot}");
    assert!(dot.contains("tier 1 → general_affairs_manager"), "{dot}");
    assert!(!dot.contains("refuel"), "only the trip type: {dot}");
    let out = levee(&["graph", "--format", "mermaid"]);
    let mermaid = text(&out.stdout);
    assert!(mermaid.starts_with("flowchart LR"));
    assert!(mermaid.contains("cp_BA_001"));
}

#[test]
fn catalog_json_lists_every_control_point_with_its_tiers() {
    let out = levee(&["catalog", "--format", "json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cps = v.as_array().unwrap();
    let vf = cps.iter().find(|c| c["id"] == "VF-001").unwrap();
    assert_eq!(vf["domain"], "fuel_consumption");
    assert_eq!(vf["event_type"], "trip");
    assert_eq!(vf["title_zh"], "车辆实际使用油耗超过标准油耗20%");
    assert_eq!(vf["tiers"][0]["notify"], "general_affairs_manager");
    assert_eq!(vf["tiers"][2]["notify"], "discipline_inspection");
    let ids: std::collections::BTreeSet<&str> =
        cps.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), cps.len(), "ids are unique");
    let csv = text(&levee(&["catalog", "--format", "csv"]).stdout);
    assert_eq!(csv.lines().count(), cps.len() + 1);
}
