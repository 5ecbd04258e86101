//! Loading the settings: layers, durations, renamed keys, errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_alone_are_valid() {
    let s = load(None, env(&[]), &Overrides::default()).unwrap();
    assert_eq!(s.delivery, Delivery::AtLeastOnce);
    assert_eq!(s.topics.inputs.len(), 4);
    assert_eq!(s.topics.tier(2), "alerts.tier2");
    assert_eq!(s.rules.dir, PathBuf::from("rules"));
}

#[test]
fn layers_file_then_env_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("levee.toml");
    std::fs::write(
        &path,
        r#"
delivery = "exactly_once"
[kafka]
brokers = "file:1"
group_id = "from-file"
[kafka.consumer]
"session.timeout.ms" = 6000
"sasl.password" = "hunter2"
[topics]
inputs = ["a", "b"]
"#,
    )
    .unwrap();
    let s = load(
        Some(&path),
        env(&[
            ("LEVEE__KAFKA__GROUP_ID", "from-env"),
            ("LEVEE__KAFKA__BROKERS", "env:1"),
            ("LEVEE__TOPICS__INPUTS", "x,y,z"),
            ("OTHER", "ignored"),
        ]),
        &Overrides {
            brokers: Some("flag:1".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(s.delivery, Delivery::ExactlyOnce);
    assert_eq!(s.kafka.group_id, "from-env");
    assert_eq!(s.kafka.brokers, "flag:1");
    assert_eq!(s.topics.inputs, ["x", "y", "z"]);
    assert_eq!(
        s.kafka
            .consumer
            .get("session.timeout.ms")
            .unwrap()
            .to_string(),
        "6000"
    );
    let shown = s.to_masked_toml().unwrap();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("********"), "{shown}");
    assert!(shown.contains("6000"), "{shown}");
}

#[test]
fn the_shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/levee.toml");
    let s = load(Some(&path), env(&[]), &Overrides::default()).unwrap();
    assert_eq!(s.topics.inputs.len(), 4);
    assert_eq!(s.log.format, LogFormat::Json);
}

#[test]
fn durations_load_once_and_print_back() {
    let s = load(None, env(&[]), &Overrides::default()).unwrap();
    assert_eq!(s.kafka.commit_interval, Span::from_secs(1));
    assert_eq!(s.state.ttl.secs(), 400 * 86_400);
    assert_eq!(s.state.allowed_lateness.secs(), 7 * 86_400);
    assert_eq!(s.state.max_future_skew.secs(), 3600);
    assert_eq!(s.state.tick_interval, Span::from_secs(1));
    assert_eq!(s.rules.reload_interval, Span::from_secs(5));
    assert_eq!(s.clock.offset.secs(), 0);
    let shown = s.to_masked_toml().unwrap();
    for line in [
        "commit_interval = \"1s\"",
        "ttl = \"400d\"",
        "tick_interval = \"1s\"",
        "reload_interval = \"5s\"",
        "offset = \"0s\"",
    ] {
        assert!(shown.contains(line), "{line} in\n{shown}");
    }

    let s = load(
        None,
        env(&[
            ("LEVEE__KAFKA__COMMIT_INTERVAL", "250ms"),
            ("LEVEE__STATE__TICK_INTERVAL", "0"),
            ("LEVEE__CLOCK__OFFSET", "-2h"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(s.kafka.commit_interval, Span::from_millis(250));
    assert!(s.state.tick_interval.is_zero());
    assert_eq!(s.clock.offset.secs(), -7200);
}

#[test]
fn the_old_names_of_durations_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("levee.toml");
    std::fs::write(
        &path,
        "[kafka]\ncommit_interval_ms = 200\n[state]\ntick_interval_ms = 0\n[rules]\nreload_interval_secs = 7\n",
    )
    .unwrap();
    let s = load(Some(&path), env(&[]), &Overrides::default()).unwrap();
    assert_eq!(s.kafka.commit_interval, Span::from_millis(200));
    assert!(s.state.tick_interval.is_zero());
    assert_eq!(s.rules.reload_interval, Span::from_secs(7));
    // Printed under the new names only.
    let shown = s.to_masked_toml().unwrap();
    assert!(shown.contains("commit_interval = \"200ms\""), "{shown}");
    assert!(!shown.contains("_ms"), "{shown}");

    let s = load(
        None,
        env(&[("LEVEE__KAFKA__COMMIT_INTERVAL_MS", "300")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(s.kafka.commit_interval, Span::from_millis(300));

    // Both names above the defaults: an error, not a guess.
    let err = load(
        Some(&path),
        env(&[("LEVEE__KAFKA__COMMIT_INTERVAL", "1s")]),
        &Overrides::default(),
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("kafka.commit_interval_ms"), "{msg}");
}

#[test]
fn bad_durations_are_errors_not_defaults() {
    for (var, value, says) in [
        ("LEVEE__STATE__TTL", "400days", "unknown unit"),
        ("LEVEE__STATE__TTL", "0s", "state.ttl"),
        (
            "LEVEE__STATE__ALLOWED_LATENESS",
            "1500ms",
            "whole number of seconds",
        ),
        ("LEVEE__KAFKA__COMMIT_INTERVAL", "0s", "at least 1ms"),
        ("LEVEE__KAFKA__COMMIT_INTERVAL", "200", "no unit"),
        ("LEVEE__CLOCK__OFFSET", "soon", "soon"),
    ] {
        let err = load(None, env(&[(var, value)]), &Overrides::default()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(says), "{var}={value}: {msg}");
    }
}

#[test]
fn unknown_keys_and_bad_values_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("levee.toml");
    std::fs::write(&path, "[kafka]\nbrokerz = \"x\"\n").unwrap();
    let err = load(Some(&path), env(&[]), &Overrides::default()).unwrap_err();
    assert!(format!("{err:#}").contains("brokerz"), "{err:#}");

    let err = load(
        None,
        env(&[("LEVEE__DELIVERY", "twice")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("twice"), "{err:#}");

    std::fs::write(&path, "[kafka.consumer]\n\"group.id\" = \"x\"\n").unwrap();
    let err = load(Some(&path), env(&[]), &Overrides::default()).unwrap_err();
    assert!(format!("{err:#}").contains("kafka.group_id"), "{err:#}");

    let err = load(
        Some(&dir.path().join("missing.toml")),
        env(&[]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
}

#[test]
fn debug_never_prints_a_secret() {
    let mut s = load(
        None,
        env(&[("LEVEE__HTTP__TOKEN", "tok-123")]),
        &Overrides::default(),
    )
    .unwrap();
    s.kafka
        .consumer
        .insert("sasl.password".into(), Property::Str("pw-456".into()));
    s.kafka
        .producer
        .insert("ssl.key.password".into(), Property::Str("pw-789".into()));
    s.kafka
        .producer
        .insert("linger.ms".into(), Property::Int(5));
    let shown = format!("{s:?}");
    for secret in ["tok-123", "pw-456", "pw-789"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(
        shown.contains("linger.ms") && shown.contains("sasl.password"),
        "{shown}"
    );
}

#[test]
fn alert_languages_default_to_both_and_english_stays() {
    let s = load(None, env(&[]), &Overrides::default()).unwrap();
    assert!(s.alerts.chinese());
    let s = load(
        None,
        env(&[("LEVEE__ALERTS__LANGUAGES", "en")]),
        &Overrides::default(),
    )
    .unwrap();
    assert!(!s.alerts.chinese());
    for (bad, says) in [
        ("zh", "must include \"en\""),
        ("en,fr", "unknown language `fr`"),
    ] {
        let e = load(
            None,
            env(&[("LEVEE__ALERTS__LANGUAGES", bad)]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains(says), "{bad}: {e:#}");
    }
}
