//! `levee diff` as a rule author runs it: the shipped catalog against a copy
//! with one threshold moved, over a generated stream, checked against
//! replaying each ruleset on its own; a git revision as the base; errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Fixed clock: the generated events all lie before `UNTIL`.
const NOW: &str = "2026-11-26T00:00:00Z";
const UNTIL: &str = "2026-11-01T00:00:00+08:00";
const VF_001_WHEN: &str = "when: fuel_used_l > standard_fuel_l * 1.2\n";

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

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A seeded stream of `n` events in `dir`.
fn generate(dir: &Path, n: u32) -> PathBuf {
    let events = dir.join("events.jsonl");
    let truth = dir.join("truth.jsonl");
    let out = levee(&[
        "gen",
        "--events",
        &n.to_string(),
        "--seed",
        "18",
        "--until",
        UNTIL,
        "--out",
        s(&events),
        "--truth",
        s(&truth),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    events
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Rewrites VF-001's condition in the rules directory `rules`.
fn set_vf001(rules: &Path, when: &str) {
    let file = rules.join("vehicle_fuel/fuel_consumption.yaml");
    let yaml = fs::read_to_string(&file).unwrap();
    let at = yaml.find("id: VF-001").unwrap();
    let (head, tail) = yaml.split_at(at);
    let cond = tail.find(VF_001_WHEN).expect("VF-001's condition");
    assert!(
        tail[..cond].matches("- id:").count() == 0,
        "the condition found is VF-001's own"
    );
    let tail = tail.replacen(VF_001_WHEN, &format!("when: {when}\n"), 1);
    fs::write(&file, format!("{head}{tail}")).unwrap();
}

/// The shipped catalog copied to `dir/name`, VF-001 at 15 % over standard.
fn vf001_at_15(dir: &Path, name: &str) -> PathBuf {
    let rules = dir.join(name);
    copy_dir(&repo().join("rules"), &rules);
    set_vf001(&rules, "fuel_used_l > standard_fuel_l * 1.15");
    rules
}

/// `levee replay` of `events` against `rules` on its own: by (control
/// point, event id), the tiers raised in order (escalations included), and
/// the number of events replayed.
fn replay(rules: &Path, events: &Path) -> (BTreeMap<(String, String), Vec<u64>>, u64) {
    let out = levee(&["--rules", s(rules), "replay", s(events), "--now", NOW]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut raised: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for line in text(&out.stdout).lines() {
        let a: Value = serde_json::from_str(line).unwrap();
        let key = (
            a["control_point"].as_str().unwrap().to_owned(),
            a["event_id"].as_str().unwrap().to_owned(),
        );
        raised
            .entry(key)
            .or_default()
            .push(a["tier"].as_u64().unwrap());
    }
    let stderr = text(&out.stderr);
    let summary = stderr.lines().find(|l| l.starts_with("replay: ")).unwrap();
    let events = summary["replay: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (raised, events)
}

fn diff_json(args: &[&str]) -> Value {
    let out = levee(args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn event_ids(count: &Value) -> BTreeSet<String> {
    count["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn vf001_at_15_percent_adds_exactly_the_vf001_alerts_a_replay_of_each_shows() {
    let dir = tempfile::tempdir().unwrap();
    let events = generate(dir.path(), 20_000);
    let shipped = repo().join("rules");
    let changed = vf001_at_15(dir.path(), "rules-15");

    // The truth: each ruleset replayed on its own.
    let (base, n) = replay(&shipped, &events);
    let (head, n_head) = replay(&changed, &events);
    assert_eq!(n, n_head);
    let added: BTreeSet<&(String, String)> =
        head.keys().filter(|k| !base.contains_key(*k)).collect();
    let removed = base.keys().filter(|k| !head.contains_key(*k)).count();
    let retiered = base
        .iter()
        .filter(|(k, t)| head.get(*k).is_some_and(|h| h != *t))
        .count();
    assert!(
        added.len() > 10,
        "the stream has trips between 15 and 20 % over"
    );
    assert!(added.iter().all(|(p, _)| p == "VF-001"));
    assert_eq!((removed, retiered), (0, 0));
    eprintln!("{} VF-001 alerts added over {n} events", added.len());

    let j = diff_json(&[
        "diff",
        "--base",
        s(&shipped),
        "--head",
        s(&changed),
        s(&events),
        "--now",
        NOW,
        "--examples",
        "100000",
        "--format",
        "json",
    ]);
    assert_eq!(j["events"], n);
    assert_eq!(
        j["totals"],
        serde_json::json!({"added": added.len(), "removed": 0, "tier": 0})
    );
    let points = j["control_points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "only VF-001 differs: {points:?}");
    let p = &points[0];
    assert_eq!(
        (p["id"].as_str(), p["status"].as_str()),
        (Some("VF-001"), Some("changed"))
    );
    let vf_alerts = |m: &BTreeMap<(String, String), Vec<u64>>| -> usize {
        m.iter()
            .filter(|(k, _)| k.0 == "VF-001")
            .map(|(_, t)| t.len())
            .sum()
    };
    assert_eq!(p["base_alerts"], vf_alerts(&base));
    assert_eq!(p["head_alerts"], vf_alerts(&head));
    assert_eq!(p["added"]["count"], added.len());
    let want: BTreeSet<String> = added.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(event_ids(&p["added"]), want);
    for e in p["added"]["examples"].as_array().unwrap() {
        assert_eq!(
            e["head_tiers"],
            serde_json::json!([1]),
            "15–20 % over is tier 1"
        );
        assert_eq!(e["base_tiers"], serde_json::json!([]));
    }
    let rate = (added.len() as f64 * 10_000.0 / n as f64 * 100.0).round() / 100.0;
    assert_eq!(p["added"]["per_10k"].as_f64(), Some(rate));
    assert_eq!(
        (p["removed"]["count"].as_u64(), p["tier"]["count"].as_u64()),
        (Some(0), Some(0))
    );

    // CI gating: only the kinds asked for count.
    let gate = |kinds: &str| {
        levee(&[
            "diff",
            "--base",
            s(&shipped),
            "--head",
            s(&changed),
            s(&events),
            "--now",
            NOW,
            "--fail-on",
            kinds,
        ])
    };
    let out = gate("added");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(gate("removed,tier").status.code(), Some(0));
    assert_eq!(gate("tier,added").status.code(), Some(1));

    // The pull-request comment.
    let out = levee(&[
        "diff",
        "--base",
        s(&shipped),
        "--head",
        s(&changed),
        s(&events),
        "--now",
        NOW,
        "--format",
        "markdown",
    ]);
    assert!(out.status.success());
    let md = text(&out.stdout);
    assert!(md.starts_with("### levee diff\n"), "{md}");
    assert!(
        md.contains(&format!(
            "**{} alerts added, 0 removed, 0 changed in tier**",
            added.len()
        )),
        "{md}"
    );
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(rows.len(), 3, "heading, rule, VF-001: {md}");
    for r in &rows {
        assert_eq!(r.replace("\\|", "").matches('|').count(), 8, "{r}");
    }
    assert!(
        rows[2].starts_with("| **VF-001** Trip fuel consumption"),
        "{md}"
    );
    assert!(rows[2].contains(&format!("+{} (", added.len())), "{md}");
    // Three examples (the default), folded.
    assert_eq!(
        md.lines().filter(|l| l.starts_with("- `")).count(),
        3,
        "{md}"
    );
    assert!(md.contains("<details>") && md.trim_end().ends_with("</details>"));

    // The table, by default.
    let out = levee(&[
        "diff",
        "--base",
        s(&shipped),
        "--head",
        s(&changed),
        s(&events),
        "--now",
        NOW,
    ]);
    let table = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("VF-001 ") && l.contains("changed")),
        "{table}"
    );
    assert_eq!(
        table
            .lines()
            .filter(|l| l.starts_with("    added: "))
            .count(),
        3
    );
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=levee", "-c", "user.email=levee@localhost"])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

#[test]
fn a_git_revision_as_base_reads_the_rules_as_committed() {
    let dir = tempfile::tempdir().unwrap();
    let events = generate(dir.path(), 5_000);
    let work = dir.path().join("repo");
    fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    copy_dir(&repo().join("rules"), &work.join("rules"));
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "the shipped rules"]);
    let rules = work.join("rules");
    set_vf001(&rules, "fuel_used_l > standard_fuel_l * 1.15");

    let from_git = diff_json(&[
        "--rules",
        s(&rules),
        "diff",
        "--base",
        "HEAD",
        s(&events),
        "--now",
        NOW,
        "--format",
        "json",
        "--examples",
        "100000",
    ]);
    let from_dirs = diff_json(&[
        "diff",
        "--base",
        "rules",
        "--head",
        s(&rules),
        s(&events),
        "--now",
        NOW,
        "--format",
        "json",
        "--examples",
        "100000",
    ]);
    // The revision is the shipped catalog: the same ruleset, the same diff.
    assert_eq!(from_git["base"]["rules"], "HEAD");
    assert_eq!(
        from_git["base"]["ruleset_version"],
        from_dirs["base"]["ruleset_version"]
    );
    assert_eq!(
        from_git["head"]["ruleset_version"],
        from_dirs["head"]["ruleset_version"]
    );
    assert_eq!(from_git["control_points"], from_dirs["control_points"]);
    assert!(from_git["totals"]["added"].as_u64().unwrap() > 0);

    // Committed, the change is HEAD and HEAD~1 the catalog before it.
    git(&work, &["commit", "-qam", "VF-001 at 15 %"]);
    let same = levee(&[
        "--rules",
        s(&rules),
        "diff",
        "--base",
        "HEAD",
        s(&events),
        "--now",
        NOW,
        "--fail-on",
        "added,removed,tier",
    ]);
    assert!(same.status.success(), "{}", text(&same.stdout));
    assert!(text(&same.stdout).contains("(no control point differs)"));
    let revs = diff_json(&[
        "--rules",
        s(&rules),
        "diff",
        "--base",
        "HEAD~1",
        "--head",
        "HEAD",
        s(&events),
        "--now",
        NOW,
        "--format",
        "json",
        "--examples",
        "100000",
    ]);
    assert_eq!(revs["control_points"], from_dirs["control_points"]);

    // An unknown revision is named, with the repository.
    let out = levee(&[
        "--rules",
        s(&rules),
        "diff",
        "--base",
        "no-such-rev",
        s(&events),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "`no-such-rev` is neither a directory nor a revision of the git repository at"
        ),
        "{err}"
    );

    // Rules that do not compile at a revision: `levee check`'s errors,
    // each at its place in that revision.
    fs::write(
        rules.join("vehicle_fuel/fuel_consumption.yaml"),
        fs::read_to_string(rules.join("vehicle_fuel/fuel_consumption.yaml"))
            .unwrap()
            .replace(
                "fuel_used_l > standard_fuel_l * 1.15",
                "fuel_used_l > no_such_field",
            ),
    )
    .unwrap();
    git(&work, &["commit", "-qam", "broken"]);
    let out = levee(&["--rules", s(&rules), "diff", "--base", "HEAD", s(&events)]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("levee: --base HEAD:"), "{err}");
    assert!(
        err.lines().any(
            |l| l.starts_with("error: HEAD:rules/vehicle_fuel/fuel_consumption.yaml")
                && l.contains("VF-001")
                && l.contains("no_such_field")
        ),
        "{err}"
    );
    assert!(
        err.contains("levee: the rules do not compile: 1 error"),
        "{err}"
    );
}

#[test]
fn a_renamed_point_is_listed_as_renamed_with_its_alerts_kept() {
    let dir = tempfile::tempdir().unwrap();
    let events = generate(dir.path(), 5_000);
    let rules = dir.path().join("renamed");
    copy_dir(&repo().join("rules"), &rules);
    // VF-001 fires most often in the stream (4 times in these 5,000
    // events; BA-101, stateful, fired there before it was narrowed to the
    // band below BA-001, and no stateful point fires as often now).
    let file = rules.join("vehicle_fuel").join("fuel_consumption.yaml");
    let yaml = fs::read_to_string(&file).unwrap();
    assert!(yaml.contains("  - id: VF-001\n"));
    fs::write(
        &file,
        yaml.replacen("  - id: VF-001\n", "  - id: VF-901\n", 1),
    )
    .unwrap();
    let j = diff_json(&[
        "diff",
        "--base",
        "rules",
        "--head",
        s(&rules),
        s(&events),
        "--now",
        NOW,
        "--format",
        "json",
    ]);
    let points = j["control_points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{points:?}");
    let p = &points[0];
    assert_eq!(
        (p["id"].as_str(), p["status"].as_str()),
        (Some("VF-901"), Some("renamed"))
    );
    assert_eq!(p["from"], "VF-001");
    assert!(p["base_alerts"].as_u64().unwrap() >= 3, "{p}");
    assert_eq!(p["base_alerts"], p["head_alerts"]);
    assert_eq!(
        j["totals"],
        serde_json::json!({"added": 0, "removed": 0, "tier": 0})
    );
}
