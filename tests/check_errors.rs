//! `levee check` on broken rule sets: every folder under
//! `tests/check_errors/` holds a `rules/` directory and the exact text
//! `levee check` must print (`expected.txt`). `LEVEE_BLESS=1` rewrites them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::process::Command;

#[test]
fn every_broken_rule_set_gives_its_expected_messages_and_exit_1() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/check_errors");
    let bless = std::env::var_os("LEVEE_BLESS").is_some();
    let mut cases: Vec<_> = fs::read_dir(&root)
        .expect("fixtures folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "fixtures missing: {cases:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let out = Command::new(env!("CARGO_BIN_EXE_levee"))
            .args(["check", "--rules", "rules"])
            .current_dir(case)
            .output()
            .expect("run levee");
        let name = case
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let expected_path = case.join("expected.txt");
        if bless {
            fs::write(&expected_path, &stderr).expect("write expected.txt");
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if out.status.code() != Some(1) {
            failures.push(format!("{name}: exit {:?}, want 1", out.status.code()));
        }
        if !out.stdout.is_empty() {
            failures.push(format!("{name}: printed a summary despite errors"));
        }
        if stderr != expected {
            failures.push(format!("{name}: got\n{stderr}\nwant\n{expected}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
