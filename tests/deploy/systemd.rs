//! The systemd unit, verified and scored by systemd-analyze.

use super::*;

#[test]
fn systemd_unit_runs_levee_hardened() {
    let unit_path = deploy().join("systemd/levee.service");
    let unit = read(&unit_path);
    let directives: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect();
    let value = |key: &str| {
        directives
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("levee.service has no {key}="))
    };
    assert_eq!(
        value("ExecStart"),
        format!("/usr/local/bin/levee run --config {CONFIG_PATH}")
    );
    assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(value("Restart"), "on-failure");
    assert_eq!(value("KillSignal"), "SIGTERM");
    assert!(value("TimeoutStopSec").parse::<u64>().unwrap() >= 45);
    assert_eq!(value("ProtectSystem"), "strict");
    assert_eq!(value("DynamicUser"), "yes");
    assert_eq!(value("NoNewPrivileges"), "yes");

    let analyze = which("systemd-analyze")
        .expect("systemd-analyze is not installed: apt-get install systemd (.ci/run does)");
    // `verify` fails on an ExecStart binary that does not exist, and
    // /usr/local/bin/levee is not installed here: verify a copy that starts
    // the levee just built instead, the rest of the unit unchanged.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("levee.service");
    let replaced = unit.replace(
        "ExecStart=/usr/local/bin/levee ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_levee")),
    );
    assert_ne!(replaced, unit);
    fs::write(&copy, replaced).unwrap();
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    success(&out, "systemd-analyze verify");
    // Unknown or misplaced keys are only warnings to verify: they must not
    // be there either.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("levee.service"))
        .collect();
    assert!(complaints.is_empty(), "{}", complaints.join("\n"));

    // The hardening, as systemd scores it (0 best, 100 worst): at most 2.0.
    let out = Command::new(&analyze)
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("unrecognized option"),
        "this systemd-analyze has no offline security analysis: systemd 252 or later is needed"
    );
    success(
        &out,
        "systemd-analyze security --offline=yes --threshold=20",
    );
}
