//! JSON built to hurt a parser or to smuggle a value past a check: each
//! shape is bad input of a kind of its own, reported with its line, kept
//! byte for byte in `--dlq`, and the stream goes on (`levee replay`; the
//! service sends the same kinds to its DLQ).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn trip(extra: &str) -> String {
    format!(
        r#"{{"event_id":"t1","type":"trip","occurred_at":"2026-11-02T09:00:00+08:00","branch":"wuhan","vehicle_id":"V1","driver_id":"D1","distance_km":200,"fuel_used_l":30,"standard_l_per_100km":10{extra}}}"#
    )
}

#[test]
fn each_hostile_shape_has_its_own_kind_and_the_stream_goes_on() {
    let deep = format!(r#"{{"a":{}1{}}}"#, "[".repeat(300), "]".repeat(300));
    let cases: Vec<(String, &str)> = vec![
        (trip(r#","fuel_used_l":12"#), "duplicate_field"),
        (trip(r#","type":"refuel""#), "duplicate_field"),
        (trip(r#","event_id":"t2""#), "duplicate_field"),
        (deep, "too_deep"),
        (trip(r#","odometer_start_km":1e999"#), "number_range"),
        // Nesting: the event is level 1; 31 arrays in a field reach level
        // 32, the most allowed; one more is too deep.
        (
            trip(&format!(r#","x":{}1{}"#, "[".repeat(31), "]".repeat(31))),
            "ok",
        ),
        (
            trip(&format!(r#","x":{}1{}"#, "[".repeat(32), "]".repeat(32))),
            "too_deep",
        ),
        (format!("\u{feff}{}", trip("")), "bom"),
        (trip(r#","trip_purpose":"\ud800""#), "invalid_unicode"),
        (
            trip("").replace(r#""fuel_used_l":30"#, r#""fuel_used_l":NaN"#),
            "non_finite",
        ),
        (
            trip("").replace(r#""fuel_used_l":30"#, r#""fuel_used_l":-Infinity"#),
            "non_finite",
        ),
    ];
    let mut input = String::new();
    for (line, _) in &cases {
        input.push_str(line);
        input.push('\n');
    }
    // After them all, an ordinary trip 50% over standard still alerts.
    input.push_str(&trip("").replace("\"t1\"", "\"after\""));
    input.push('\n');
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dlq.jsonl");
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, &input).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_levee"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .args(["replay", "--now", "2026-11-26T00:00:00Z", "--dlq"])
        .arg(&dlq)
        .arg(&events)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut bad = Vec::new();
    for (i, (line, kind)) in cases.iter().enumerate() {
        let at = format!("{}:{}: bad input:", events.display(), i + 1);
        let reported = stderr.lines().find(|l| l.starts_with(&at));
        if *kind == "ok" {
            assert!(reported.is_none(), "line {} is good: {reported:?}", i + 1);
            continue;
        }
        let reported = reported.unwrap_or_else(|| panic!("line {} not reported:\n{stderr}", i + 1));
        assert!(
            reported.ends_with(&format!("({kind})")),
            "line {}: want {kind}: {reported}",
            i + 1
        );
        bad.push(line.as_str());
    }
    let kept = std::fs::read_to_string(&dlq).unwrap();
    assert_eq!(
        kept,
        bad.join("\n") + "\n",
        "the DLQ keeps them byte for byte"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(r#""event_id":"after""#) && l.contains("VF-001")),
        "the stream goes on:\n{stdout}"
    );
}
