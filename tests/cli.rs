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
    assert!(
        stdout.contains("unexpected alert: VF-001 at tier 1 about V1 on event t1"),
        "{stdout}"
    );
}

/// A declared tier no passing case expects fails a whole `levee test` run
/// (not one narrowed by `--filter`), and is named.
#[test]
fn a_declared_tier_without_a_case_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    copy_dir(&repo().join("rules"), &rules);
    // The only case reaching SO-101's tier 3, and its boundary.
    let tiers = rules.join("tests/tiers.yaml");
    let text_of = std::fs::read_to_string(&tiers).unwrap();
    let kept: Vec<&str> = text_of
        .split("\n  - name: ")
        .filter(|c| !c.starts_with("\"SO-101 tier 3"))
        .collect();
    std::fs::write(&tiers, kept.join("\n  - name: ")).unwrap();
    let out = levee(&["test", "-q", "--rules", rules.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("tiers no passing test expects (add a case at the tier): SO-101 tier 3\n"),
        "{stdout}"
    );
    assert!(stdout.contains(", 0 failed; covered: "), "{stdout}");
    assert!(stdout.contains(" of 1269 tiers"), "{stdout}");
    // Narrowed by --filter, the run judges only its cases.
    let out = levee(&[
        "test",
        "-q",
        "--filter",
        "VF-001",
        "--rules",
        rules.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

/// `levee test --mutate`: a survivor is reported with its file, line and
/// change; closing it with a boundary case kills it; `--min-score` is the bar.
#[test]
fn mutation_testing_reports_survivors_and_a_boundary_case_kills_them() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("tests")).unwrap();
    std::fs::write(
        rules.join("r.yaml"),
        r#"event_types:
  t:
    stream: s
    subject: who
    fields:
      who: { type: string, required: true }
      a: { type: number, required: true }
control_points:
  - id: T-1
    domain: d
    title: t
    event_type: t
    when: a >= 200
    tiers:
      - { tier: 1, notify: r }
    message: "{who}"
"#,
    )
    .unwrap();
    let event = |id: &str, a: &str| {
        format!(
            r#"{{event_id: {id}, type: t, occurred_at: "2026-11-02T09:00:00+08:00", branch: b, who: W, a: {a}}}"#
        )
    };
    let cases = format!(
        "cases:\n  - name: fires\n    events: [{}]\n    expect: [{{control_point: T-1, tier: 1}}]\n",
        event("e1", "500")
    );
    std::fs::write(rules.join("tests/t.yaml"), &cases).unwrap();
    let r = rules.to_str().unwrap();
    let out = levee(&["test", "--mutate", "--format", "json", "--rules", r]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // `>=` → `>`, 199, 201, 198, 202: only 201 and 202 fail at 500.
    assert_eq!(report["mutants"]["total"], 5, "{report}");
    assert_eq!(report["mutants"]["killed"], 0, "{report}");
    let survivor = &report["survivors"][0];
    assert_eq!(survivor["control_point"], "T-1");
    assert!(survivor["file"].as_str().unwrap().ends_with("r.yaml"));
    assert_eq!(survivor["line"], 13);
    assert_eq!(survivor["change"], "`>=` → `>`");
    let out = levee(&["test", "--mutate", "--min-score", "0.5", "--rules", r]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("below the bar of 50.0 %"));

    // At 200 and at 199.99 every mutant is told apart.
    let bounded = format!(
        "{cases}  - name: boundary\n    events: [{}, {}]\n    expect: [{{control_point: T-1, tier: 1, event_id: e2}}]\n",
        event("e2", "200"),
        event("e3", "199.99")
    );
    std::fs::write(rules.join("tests/t.yaml"), bounded).unwrap();
    let out = levee(&["test", "--mutate", "--min-score", "1", "--rules", r]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("5 mutants: 5 killed, 0 survived"),
        "{stdout}"
    );
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
fn a_misplaced_decimal_alerts_the_data_owner_not_discipline_inspection() {
    let input = [
        trip("decimal", "100", "120", "10"), // 12x the standard: 12.0 typed as 120
        trip("severe", "100", "29", "10"),   // 2.9x: VF-001 tier 3
    ]
    .join("\n");
    let out = levee_stdin(&["replay", "-", "--now", "2026-11-26T00:00:00Z"], &input);
    assert!(out.status.success());
    assert_eq!(fired(&out, "VF-001"), ["severe"]);
    assert_eq!(fired(&out, "DQ-trip-fuel_used_l"), ["decimal"]);
    let a = alerts(&out);
    let dq = a.iter().find(|a| a["event_id"] == "decimal").unwrap();
    assert_eq!(dq["tier"], 1);
    assert_eq!(dq["domain"], "data_quality");
    assert_eq!(dq["notify"], "fleet_data_steward");
    assert_eq!(dq["action"], "alert");
    assert!(dq.get("rectify_by").is_none(), "never escalates: {dq}");
    assert_eq!(dq["evidence"]["fuel_used_l"], 120.0);
    let zh = dq["message_zh"].as_str().unwrap();
    assert!(
        zh.starts_with("数据质量：V-decimal的trip事件fuel_used_l读数120"),
        "{zh}"
    );
    let severe = a.iter().find(|a| a["event_id"] == "severe").unwrap();
    assert_eq!(severe["tier"], 3);
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
    let golden = repo().join("tests/golden/replay_examples.jsonl");
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
            "people",
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

/// One event of each type a night, weekend or holiday control point reads,
/// at `at`, with ids ending in `n`.
fn off_hours_events(n: usize, at: &str) -> String {
    let common = format!(r#""occurred_at":"{at}","branch":"wuhan""#);
    [
        format!(
            r#"{{"event_id":"t-{n}","type":"trip",{common},"vehicle_id":"V-{n}","driver_id":"D1","distance_km":50,"fuel_used_l":5,"standard_l_per_100km":10,"approved_trip":false}}"#
        ),
        format!(
            r#"{{"event_id":"r-{n}","type":"refuel",{common},"vehicle_id":"V-{n}","fuel_card_id":"C-{n}","liters":30,"amount_cny":228,"tank_capacity_l":60,"station_id":"ST-WH-001","price_per_l_cny":7.6}}"#
        ),
        format!(
            r#"{{"event_id":"p-{n}","type":"payment",{common},"contract_id":"K1","supplier_id":"S1","amount_cny":900000,"contract_value_cny":1000000,"paid_to_date_cny":0,"approver_id":"F-{n}"}}"#
        ),
        format!(
            r#"{{"event_id":"c-{n}","type":"credit_limit_change",{common},"change_id":"C1","group_customer_id":"G1","customer_manager_id":"M1","applicant_id":"M1","approver_id":"A-{n}","old_limit_cny":0,"new_limit_cny":100000}}"#
        ),
        format!(
            r#"{{"event_id":"g-{n}","type":"points_adjustment",{common},"operator_id":"OP-{n}","account_id":"ACC1","points":5000,"reason_code":"goodwill","approver_id":"OP2","operator_limit_points":5000,"account_holder_is_staff":false,"case_reference_present":true,"account_status":"active","avg_monthly_earned_points":500}}"#
        ),
    ]
    .join("\n")
}

/// The same instants, written in Beijing time and in UTC.
const INSTANTS: [(&str, &str); 6] = [
    // Wednesday 23:30 (15:30Z): night.
    ("2026-11-04T23:30:00+08:00", "2026-11-04T15:30:00Z"),
    // Saturday 00:30, a Friday in UTC: night and weekend.
    ("2026-11-07T00:30:00+08:00", "2026-11-06T16:30:00Z"),
    // Monday 2026-10-05, National Day: a holiday.
    ("2026-10-05T10:00:00+08:00", "2026-10-05T02:00:00Z"),
    // Saturday 2026-02-14 at 07:30, a make-up working day (Friday in UTC).
    ("2026-02-14T07:30:00+08:00", "2026-02-13T23:30:00Z"),
    // Monday 07:30, Sunday night in UTC: a working morning.
    ("2026-11-09T07:30:00+08:00", "2026-11-08T23:30:00Z"),
    // Friday 2027-02-05, 除夕: a statutory holiday of a year with no notice.
    ("2027-02-05T10:00:00+08:00", "2027-02-05T02:00:00Z"),
];

/// Replays `input`: the alerts without `occurred_at` (written as given),
/// and stderr.
fn replay_instants(input: &str) -> (Vec<serde_json::Value>, String) {
    let out = levee_stdin(&["replay", "-", "--now", "2027-06-01T00:00:00Z"], input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let alerts = alerts(&out)
        .into_iter()
        .map(|mut a| {
            a.as_object_mut().unwrap().remove("occurred_at");
            a
        })
        .collect();
    (alerts, text(&out.stderr))
}

#[test]
fn night_weekend_and_holiday_points_give_the_same_alerts_in_any_offset() {
    let beijing: Vec<String> = (0..INSTANTS.len())
        .map(|n| off_hours_events(n, INSTANTS[n].0))
        .collect();
    let utc: Vec<String> = (0..INSTANTS.len())
        .map(|n| off_hours_events(n, INSTANTS[n].1))
        .collect();
    let (in_beijing, _) = replay_instants(&beijing.join("\n"));
    let (in_utc, _) = replay_instants(&utc.join("\n"));
    assert_eq!(in_beijing, in_utc);

    let fired: std::collections::BTreeSet<(String, String)> = in_beijing
        .iter()
        .map(|a| {
            (
                a["event_id"].as_str().unwrap().to_owned(),
                a["control_point"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let has = |id: &str, cp: &str| fired.contains(&(id.to_owned(), cp.to_owned()));
    // Night on a Wednesday: the night points, not the rest-day ones.
    assert!(has("t-0", "VU-006") && has("c-0", "CC-012"), "{fired:?}");
    assert!(!has("t-0", "VU-001") && !has("p-0", "PS-012"), "{fired:?}");
    // Saturday 00:30 in Beijing is night and a rest day.
    for (id, cp) in [
        ("t-1", "VU-001"),
        ("t-1", "VU-006"),
        ("r-1", "FC-004"),
        ("p-1", "PS-012"),
        ("c-1", "CC-012"),
        ("g-1", "PG-017"),
    ] {
        assert!(has(id, cp), "{cp} on {id}: {fired:?}");
    }
    // A holiday Monday is a rest day.
    for (id, cp) in [
        ("t-2", "VU-001"),
        ("p-2", "PS-012"),
        ("c-2", "CC-012"),
        ("g-2", "PG-017"),
    ] {
        assert!(has(id, cp), "{cp} on {id}: {fired:?}");
    }
    // A make-up Saturday and a Monday at 07:30 are working time.
    for n in [3, 4] {
        for cp in ["VU-001", "VU-006", "PS-012", "CC-012", "PG-017", "FC-004"] {
            assert!(
                !fired
                    .iter()
                    .any(|(id, c)| c == cp && id.ends_with(&format!("-{n}"))),
                "{cp} on instant {n}: {fired:?}"
            );
        }
    }
}

#[test]
fn an_alert_that_read_the_calendar_of_2027_says_it_is_provisional() {
    let input = [
        off_hours_events(5, INSTANTS[5].1),
        off_hours_events(2, INSTANTS[2].0),
    ]
    .join("\n");
    let (alerts, stderr) = replay_instants(&input);
    let calendar = |id: &str, cp: &str| {
        let a = alerts
            .iter()
            .find(|a| a["event_id"] == id && a["control_point"] == cp);
        assert!(a.is_some(), "{cp} on {id}: {alerts:?}");
        a.map(|a| a["calendar"].clone()).unwrap_or_default()
    };
    // 除夕 2027: VU-001 and PS-012 read the calendar, provisionally.
    assert_eq!(calendar("t-5", "VU-001"), "provisional");
    assert_eq!(calendar("p-5", "PS-012"), "provisional");
    // 2026 has its notice: no `calendar` field.
    assert!(calendar("t-2", "VU-001").is_null());
    // A point that reads no calendar says nothing of it, even in 2027.
    let on_2027_not_reading: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["event_id"].as_str().unwrap().ends_with("-5"))
        .filter(|a| {
            !["VU-001", "PS-012", "CC-012", "PG-017"]
                .contains(&a["control_point"].as_str().unwrap())
        })
        .collect();
    assert!(
        on_2027_not_reading.iter().all(|a| a["calendar"].is_null()),
        "{on_2027_not_reading:?}"
    );
    let provisional = alerts
        .iter()
        .filter(|a| a["calendar"] == "provisional")
        .count();
    assert_eq!(provisional, 4, "{alerts:?}");
    assert!(
        stderr.contains("4 alerts on a provisional calendar"),
        "{stderr}"
    );
}

/// A `block` point on an event type that is not a request blocks nothing:
/// `levee check` counts and lists it. The shipped catalog has none.
#[test]
fn check_lists_block_points_on_events_that_are_not_requests() {
    let shipped = levee(&["check"]);
    assert!(shipped.status.success());
    assert!(
        !text(&shipped.stderr).contains("not requests"),
        "{}",
        text(&shipped.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    copy_dir(&repo().join("rules"), &rules);
    // FC-005 on refuels, as it was before it became an alert.
    let card = rules.join("vehicle_fuel/fuel_card.yaml");
    let yaml = std::fs::read_to_string(&card).unwrap();
    let at = yaml.find("id: FC-005").unwrap();
    let (head, tail) = yaml.split_at(at);
    let tail = tail.replacen("action: alert", "action: block", 1);
    std::fs::write(&card, format!("{head}{tail}")).unwrap();
    let r = rules.to_str().unwrap();
    let out = levee(&["check", "--verbose", "--rules", r]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("levee: 1 `block` control points"),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.trim().starts_with("FC-005  refuel  ")),
        "{stderr}"
    );
}
