//! The seeds: real inputs from the repository, read once at start.
//!
//! - events: `examples/events.jsonl` (good and bad lines) and every event
//!   of the rule tests (`rules/tests/*.yaml`, each case's `events`);
//! - hostile messages: the shapes the DLQ has a kind for (as the replay
//!   test of hostile JSON sends them);
//! - rule files: the shipped `rules/**/*.yaml` (not the tests), and each
//!   check-error fixture (`tests/check_errors/*/rules/**`) as
//!   a rule set of its own.

use std::fs;
use std::path::{Path, PathBuf};

use levee_rules::model::TestFile;

/// The repository's inputs.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    pub root: PathBuf,
    /// Event messages, one per entry, as JSON text (or not: bad lines too).
    pub events: Vec<Vec<u8>>,
    /// Messages built to hurt a parser (one per DLQ kind).
    pub hostile: Vec<Vec<u8>>,
    /// Rule files, by path relative to `rules/`.
    pub rules: Vec<(String, String)>,
    /// The check-error fixtures: each a rule set, by relative path.
    pub fixtures: Vec<Vec<(String, String)>>,
}

/// The repository root this crate was built in.
pub fn default_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A trip as the hostile replay test writes it, with `extra` fields.
fn trip(extra: &str) -> String {
    format!(
        r#"{{"event_id":"t1","type":"trip","occurred_at":"2026-11-02T09:00:00+08:00","branch":"wuhan","vehicle_id":"V1","driver_id":"D1","distance_km":200,"fuel_used_l":30,"standard_l_per_100km":10{extra}}}"#
    )
}

/// One message of each hostile kind, and a few neighbours of each.
pub fn hostile() -> Vec<Vec<u8>> {
    let base = trip("");
    let mut out = vec![
        trip(r#","fuel_used_l":12"#),
        trip(r#","type":"refuel""#),
        trip(r#","event_id":"t2""#),
        format!(r#"{{"a":{}1{}}}"#, "[".repeat(300), "]".repeat(300)),
        trip(&format!(r#","x":{}1{}"#, "[".repeat(31), "]".repeat(31))),
        trip(&format!(r#","x":{}1{}"#, "[".repeat(32), "]".repeat(32))),
        trip(r#","odometer_start_km":1e999"#),
        trip(r#","cargo_kg":-1e400"#),
        format!("\u{feff}{base}"),
        trip(r#","trip_purpose":"\ud800""#),
        trip(r#","trip_purpose":"\udc00x""#),
        trip(r#","trip_purpose":"\ud83d\ude00""#),
        base.replace(r#""fuel_used_l":30"#, r#""fuel_used_l":NaN"#),
        base.replace(r#""fuel_used_l":30"#, r#""fuel_used_l":-Infinity"#),
        base.replace(r#""distance_km":200"#, r#""distance_km":Infinity"#),
        trip(r#","approved_trip":null"#),
        base.replace("+08:00", "+14:00"),
        base.replace(
            "2026-11-02T09:00:00+08:00",
            "2026-11-02t09:00:00.123456789z",
        ),
        String::new(),
        "null".to_owned(),
        "[]".to_owned(),
        "{}".to_owned(),
        r#"{"type":null}"#.to_owned(),
        r#"{"type":7}"#.to_owned(),
    ];
    out.push(format!("[{base},{base}]"));
    out.push(base.replace("\"V1\"", &format!("\"{}\"", "V".repeat(70_000))));
    out.into_iter().map(String::into_bytes).collect()
}

/// The events of the rule test files, as JSON text (tick and rectify
/// steps left out).
fn test_events(text: &str) -> Vec<Vec<u8>> {
    let Ok(file) = serde_norway::from_str::<TestFile>(text) else {
        return Vec::new();
    };
    file.cases
        .iter()
        .flat_map(|c| c.events.iter())
        .filter(|e| e.get("tick").is_none() && e.get("rectify").is_none())
        .filter_map(|e| serde_json::to_vec(e).ok())
        .collect()
}

/// Every `*.yaml` below `dir`, by path relative to it, sorted.
fn yaml_files(dir: &Path, skip_tests: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(dir)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            if path.is_dir() {
                if !(skip_tests && rel == "tests") {
                    stack.push(path);
                }
            } else if rel.ends_with(".yaml") || rel.ends_with(".yml") {
                if let Ok(text) = fs::read_to_string(&path) {
                    out.push((rel, text));
                }
            }
        }
    }
    out.sort();
    out
}

impl Corpus {
    /// Reads the seeds under the repository `root`; an error names what
    /// is missing.
    pub fn load(root: &Path) -> Result<Corpus, String> {
        let examples = root.join("examples/events.jsonl");
        let text =
            fs::read(&examples).map_err(|e| format!("cannot read {}: {e}", examples.display()))?;
        let mut events: Vec<Vec<u8>> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        let rules_dir = root.join("rules");
        for (_, text) in yaml_files(&rules_dir.join("tests"), false) {
            events.extend(test_events(&text));
        }
        let rules = yaml_files(&rules_dir, true);
        if rules.is_empty() {
            return Err(format!("no rule files under {}", rules_dir.display()));
        }
        let mut fixtures = Vec::new();
        let fixture_dir = root.join("tests/check_errors");
        if let Ok(entries) = fs::read_dir(&fixture_dir) {
            let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            dirs.sort();
            for d in dirs {
                let files = yaml_files(&d.join("rules"), false);
                if !files.is_empty() {
                    fixtures.push(files);
                }
            }
        }
        Ok(Corpus {
            root: root.to_path_buf(),
            events,
            hostile: hostile(),
            rules,
            fixtures,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_repository_gives_seeds_of_every_kind() {
        let c = Corpus::load(&default_root()).unwrap();
        assert!(c.events.len() > 500, "{} events", c.events.len());
        assert!(c.events.iter().any(|e| e == b"not json at all"));
        assert!(c
            .rules
            .iter()
            .any(|(p, _)| p == "schemas/vehicle_fuel.yaml"));
        assert!(!c.rules.iter().any(|(p, _)| p.starts_with("tests/")));
        assert!(c.fixtures.len() >= 10);
        assert!(c.hostile.len() > 20);
    }
}
