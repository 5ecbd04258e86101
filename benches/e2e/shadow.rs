//! The shadow switch of the throughput runs: `LEVEE_BENCH_E2E_SHADOW=1`
//! adds, in every round, an at-least-once run with shadow rules (the shipped
//! rules with VF-001 moved from 20 % to 15 % over standard, one changed
//! point, as a rule change on trial is), right after the one without;
//! `LEVEE_BENCH_E2E_SHADOW=DIR` takes the shadow rules from DIR. The cost is
//! levee's CPU seconds in the run with shadow over those of the run without,
//! in the same round (target ≤ 1.3×).

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::root;

/// The shadow rules directory the switch asks for (made under `dir`), or
/// `None` when it is off.
pub(crate) fn shadow_rules(dir: &Path) -> Option<PathBuf> {
    let value = std::env::var("LEVEE_BENCH_E2E_SHADOW").ok()?;
    match value.trim() {
        "" | "0" => None,
        "1" => {
            let rules = dir.join("shadow-rules");
            if !rules.exists() {
                copy_dir(&root().join("rules"), &rules);
                let file = rules.join("vehicle_fuel/fuel_consumption.yaml");
                let text = fs::read_to_string(&file).unwrap();
                let changed = text.replacen(
                    "when: fuel_used_l > standard_fuel_l * 1.2\n",
                    "when: fuel_used_l > standard_fuel_l * 1.15\n",
                    1,
                );
                assert_ne!(text, changed, "VF-001's threshold moved in rules/");
                fs::write(file, changed).unwrap();
            }
            Some(rules)
        }
        other => Some(PathBuf::from(other)),
    }
}

/// Appends `[shadow] rules_dir` to a settings file.
pub(crate) fn with_shadow(config: &Path, rules: &Path) {
    let mut text = fs::read_to_string(config).unwrap();
    text.push_str(&format!(
        "\n[shadow]\nrules_dir = {:?}\n",
        rules.display().to_string()
    ));
    fs::write(config, text).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}
