//! The demo producer: `levee gen` events routed by their schema.

use super::*;

/// type → (topic, key field), from the event types of every rule file.
fn schema_routes() -> BTreeMap<String, (String, String)> {
    let rules = repo().join("rules");
    let mut routes = BTreeMap::new();
    for file in rule_files(&rules) {
        let doc = yaml(&rules.join(&file));
        if let Some(types) = doc["event_types"].as_mapping() {
            for (name, def) in types {
                routes.insert(
                    str_of(name, "event type").to_owned(),
                    (
                        str_of(&def["stream"], "stream").to_owned(),
                        str_of(&def["subject"], "subject").to_owned(),
                    ),
                );
            }
        }
    }
    routes
}

/// Runs the demo producer with OUT_DIR: what it would send, by round and
/// topic, as (key, line) pairs.
type Sent = BTreeMap<usize, BTreeMap<String, Vec<(String, String)>>>;

fn run_demo_producer(tmp: &Path, env: &[(&str, &str)]) -> (String, Sent) {
    let out_dir = tmp.join("out");
    let out = Command::new("sh")
        .arg(deploy().join("docker/demo-producer.sh"))
        .env("OUT_DIR", &out_dir)
        .env("RULES", repo().join("rules"))
        .env("LEVEE", env!("CARGO_BIN_EXE_levee"))
        .env("INTERVAL", "0")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    success(&out, "demo-producer.sh");
    let mut sent = Sent::new();
    for round in fs::read_dir(&out_dir).unwrap() {
        let round = round.unwrap().path();
        let Some(n) = round
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .strip_prefix("round-")
        else {
            continue;
        };
        let n: usize = n.parse().unwrap();
        for file in fs::read_dir(&round).unwrap() {
            let file = file.unwrap().path();
            let topic = file.file_stem().unwrap().to_str().unwrap().to_owned();
            let lines = read(&file)
                .lines()
                .map(|l| {
                    let (k, v) = l.split_once('\t').expect("key<TAB>event");
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            sent.entry(n).or_default().insert(topic, lines);
        }
    }
    (read(&out_dir.join("routes.tsv")), sent)
}

/// Each line went to its type's topic keyed by its subject, or, without a
/// known type, to the fallback topic without a key.
fn assert_routed(sent: &BTreeMap<String, Vec<(String, String)>>) -> usize {
    let routes = schema_routes();
    let mut invalid = 0;
    for (topic, lines) in sent {
        for (key, line) in lines {
            let event: Option<serde_json::Value> = serde_json::from_str(line).ok();
            let route = event
                .as_ref()
                .and_then(|e| e["type"].as_str())
                .and_then(|t| routes.get(t));
            match (event, route) {
                (Some(event), Some((stream, subject))) => {
                    assert_eq!(topic, stream, "{line}");
                    assert_eq!(Some(key.as_str()), event[subject].as_str(), "{line}");
                }
                _ => {
                    invalid += 1;
                    assert_eq!(topic, "events.vehicle_fuel", "{line}");
                    assert_eq!(key, "", "{line}");
                }
            }
        }
    }
    invalid
}

#[test]
fn demo_producer_routes_levee_gen_events_by_their_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let (routes, sent) = run_demo_producer(tmp.path(), &[("ROUNDS", "2"), ("EVENTS", "300")]);

    // The routes it reads off the rule files are the schemas' own.
    let parsed: BTreeMap<String, (String, String)> = routes
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "{l:?}");
            (f[0].to_owned(), (f[1].to_owned(), f[2].to_owned()))
        })
        .collect();
    assert_eq!(parsed, schema_routes());

    assert_eq!(sent.keys().copied().collect::<Vec<_>>(), [0, 1]);
    for (round, topics) in &sent {
        let total: usize = topics.values().map(Vec::len).sum();
        assert!(total >= 302, "round {round}: {total} lines");
        assert_eq!(assert_routed(topics), 2, "round {round}: the two bad lines");
        for input in &TOPICS[..4] {
            assert!(
                topics.contains_key(*input),
                "round {round}: nothing on {input}"
            );
        }
        // Rounds after the first get fresh event ids.
        for (_, line) in topics.values().flatten() {
            if let Ok(e) = serde_json::from_str::<serde_json::Value>(line) {
                let id = e["event_id"].as_str().unwrap();
                assert_eq!(id.ends_with(&format!("-r{round}")), *round > 0, "{id}");
            }
        }
    }
}

#[test]
fn demo_producer_sends_the_example_file_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = repo().join("examples/events.jsonl");
    let (_, sent) = run_demo_producer(
        tmp.path(),
        &[("ROUNDS", "1"), ("SOURCE", examples.to_str().unwrap())],
    );
    let topics = &sent[&0];
    let mut lines: Vec<&str> = topics.values().flatten().map(|(_, l)| l.as_str()).collect();
    let mut expected: Vec<&str> = Vec::new();
    let text = read(&examples);
    expected.extend(text.lines().filter(|l| !l.trim().is_empty()));
    lines.sort_unstable();
    expected.sort_unstable();
    assert_eq!(lines, expected);
    let invalid = expected
        .iter()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|e| e["type"].as_str().map(|t| schema_routes().contains_key(t)))
                != Some(true)
        })
        .count();
    assert_eq!(assert_routed(topics), invalid);
}
