//! The deploy kit (`deploy/`), checked without Docker or a cluster: the
//! compose file and the Kubernetes manifests parse and hang together, the
//! Dockerfile's stages copy files that exist, the settings files they ship
//! are accepted by `levee run --print-config`, the rules ConfigMap loads the
//! way the kubelet mounts it, the demo scripts route and create what levee
//! expects, and the systemd unit passes `systemd-analyze verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_norway::Value;

/// The topics levee reads and writes (the four event streams first).
const TOPICS: &[&str] = &[
    "events.vehicle_fuel",
    "events.billing_arrears",
    "events.procurement",
    "events.marketing",
    "events.rectification",
    "alerts.tier1",
    "alerts.tier2",
    "alerts.tier3",
    "decisions",
    "events.dlq",
    "profiles",
    "levee.state-changelog",
];
/// Keyed topics of which only the latest record per key matters.
const COMPACTED: &[&str] = &["events.rectification", "profiles", "levee.state-changelog"];
const CHANGELOG: &str = "levee.state-changelog";
/// The HTTP listener's port and the address it must bind in containers.
const HTTP_PORT: u64 = 9464;
const CONTAINER_LISTEN: &str = "0.0.0.0:9464";
/// Where the image and the manifests keep the settings and the rules.
const CONFIG_PATH: &str = "/etc/levee/levee.toml";
const RULES_PATH: &str = "/etc/levee/rules";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every document of a YAML file (comment-only documents left out).
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml(path: &Path) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{}: one YAML document", path.display());
    docs.remove(0)
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v:?}"))
}

fn seq<'a>(v: &'a Value, what: &str) -> &'a [Value] {
    v.as_sequence()
        .unwrap_or_else(|| panic!("{what} is not a list: {v:?}"))
}

/// An image reference names a tag, and not `latest`.
fn assert_pinned(image: &str, what: &str) {
    let name_and_tag = image.rsplit('/').next().unwrap();
    let tag = name_and_tag.split_once(':').map(|(_, t)| t);
    match tag {
        Some(t) if !t.is_empty() && t != "latest" => {}
        _ if image.contains("@sha256:") => {}
        _ => panic!("{what}: image {image:?} is not pinned to a tag or digest"),
    }
}

fn levee() -> Command {
    Command::new(env!("CARGO_BIN_EXE_levee"))
}

fn success(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `levee run --print-config` over `config` and `env`, as a TOML table; the
/// environment is cleared of other `LEVEE…` variables first.
fn effective_settings(config: Option<&Path>, env: &BTreeMap<String, String>) -> toml::Table {
    let mut cmd = levee();
    cmd.arg("run").arg("--print-config");
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    for (k, _) in std::env::vars() {
        if k.starts_with("LEVEE") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env);
    let out = cmd.output().unwrap();
    let what = format!("levee run --print-config --config {config:?} with {env:?}");
    success(&out, &what).parse().unwrap()
}

/// The HTTP listener's address in `settings`, if levee has such a setting.
/// The deploy kit sets `http.listen` (LEVEE__HTTP__LISTEN); once levee has
/// an `[http]` section, it must have that key.
fn http_listen(settings: &toml::Table) -> Option<String> {
    let http = settings.get("http")?;
    let listen = http.get("listen").unwrap_or_else(|| {
        panic!("levee's [http] settings have no `listen` key, which the deploy kit sets: {http}")
    });
    Some(listen.as_str().unwrap().to_owned())
}

/// Adds LEVEE__HTTP__LISTEN to `env`, checking levee knows the setting.
fn with_http_listen(env: &mut BTreeMap<String, String>, value: &str) {
    assert!(
        http_listen(&effective_settings(None, &BTreeMap::new())).is_some(),
        "levee's settings have no http.listen"
    );
    env.insert("LEVEE__HTTP__LISTEN".into(), value.into());
}

fn rules_dir_of(settings: &toml::Table) -> String {
    settings["rules"]["dir"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------- compose

fn compose() -> Value {
    yaml(&deploy().join("docker-compose.yml"))
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let s = &compose["services"][name];
    assert!(s.is_mapping(), "docker-compose.yml has no service {name:?}");
    s
}

/// A service's environment as a map (mapping or list form).
fn environment(service: &Value) -> BTreeMap<String, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("environment value {other:?}"),
    };
    match &service["environment"] {
        Value::Null => BTreeMap::new(),
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| (str_of(k, "variable").to_owned(), scalar(v)))
            .collect(),
        Value::Sequence(s) => s
            .iter()
            .map(|e| {
                let (k, v) = str_of(e, "variable").split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        other => panic!("environment {other:?}"),
    }
}

/// A service's bind mounts: (host path resolved against deploy/, target).
fn bind_mounts(service: &Value) -> Vec<(PathBuf, String)> {
    let Some(volumes) = service["volumes"].as_sequence() else {
        return Vec::new();
    };
    volumes
        .iter()
        .filter_map(|v| {
            let spec = str_of(v, "volume");
            let mut parts = spec.split(':');
            let source = parts.next().unwrap();
            let target = parts.next().expect("volume target");
            (source.starts_with('.') || source.starts_with('/'))
                .then(|| (deploy().join(source), target.to_owned()))
        })
        .collect()
}

fn depends_on_completed(service: &Value, on: &str) -> bool {
    service["depends_on"][on]["condition"].as_str() == Some("service_completed_successfully")
}

#[test]
fn compose_has_every_service_with_pinned_images() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    for name in [
        "kafka",
        "topics",
        "levee",
        "prometheus",
        "grafana",
        "producer",
    ] {
        service(&compose, name);
    }
    for (name, s) in services {
        let name = str_of(name, "service name");
        let image = str_of(&s["image"], &format!("services.{name}.image"));
        assert_pinned(image, &format!("services.{name}"));
        if let Some(build) = s["build"].as_mapping() {
            let context = deploy().join(str_of(&build[&Value::from("context")], "context"));
            let dockerfile = context.join(str_of(
                &build[&Value::from("dockerfile")],
                "build.dockerfile",
            ));
            assert!(dockerfile.is_file(), "{name}: no {}", dockerfile.display());
            if let Some(target) = build.get(Value::from("target")) {
                let stages = dockerfile_stages(&dockerfile);
                assert!(
                    stages.iter().any(|s| s.name.as_deref() == target.as_str()),
                    "{name}: build target {target:?} is not a stage of the Dockerfile"
                );
            }
        }
    }
    assert_eq!(
        str_of(&service(&compose, "kafka")["image"], "kafka image"),
        "apache/kafka:3.9.1"
    );
    assert_eq!(
        str_of(&service(&compose, "topics")["image"], "topics image"),
        "apache/kafka:3.9.1"
    );
}

#[test]
fn compose_kafka_runs_in_kraft_mode() {
    let compose = compose();
    let env = environment(service(&compose, "kafka"));
    let roles: BTreeSet<&str> = env["KAFKA_PROCESS_ROLES"].split(',').collect();
    assert_eq!(roles, BTreeSet::from(["broker", "controller"]));
    assert!(env.contains_key("KAFKA_CONTROLLER_QUORUM_VOTERS"));
    assert!(env.contains_key("KAFKA_CONTROLLER_LISTENER_NAMES"));
    assert!(
        !env.keys().any(|k| k.contains("ZOOKEEPER")),
        "no ZooKeeper in KRaft mode"
    );
    assert_eq!(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"], "false");
    // What the other containers use as bootstrap is what Kafka advertises.
    let advertised = &env["KAFKA_ADVERTISED_LISTENERS"];
    for (name, var) in [
        ("levee", "LEVEE__KAFKA__BROKERS"),
        ("producer", "BROKERS"),
        ("topics", "BOOTSTRAP"),
    ] {
        let bootstrap = &environment(service(&compose, name))[var];
        assert!(
            advertised.contains(&format!("//{bootstrap}")),
            "{name}'s {var}={bootstrap} is not among Kafka's advertised listeners {advertised}"
        );
    }
}

#[test]
fn compose_mounts_files_that_exist() {
    let compose = compose();
    let mut mounts = 0;
    for (name, s) in compose["services"].as_mapping().unwrap() {
        for (source, target) in bind_mounts(s) {
            mounts += 1;
            assert!(
                source.exists(),
                "services.{}: {} (mounted at {target}) does not exist",
                name.as_str().unwrap(),
                source.display()
            );
            // A mount of one file must not find a directory, and back.
            let looks_like_file = Path::new(&target).extension().is_some();
            assert_eq!(
                source.is_file(),
                looks_like_file,
                "{} mounted at {target}",
                source.display()
            );
        }
    }
    assert!(mounts >= 8, "only {mounts} bind mounts");
}

#[test]
fn compose_levee_listens_for_prometheus_and_grafana_shows_it() {
    let compose = compose();
    let levee_service = service(&compose, "levee");
    let env = environment(levee_service);
    assert_eq!(env["LEVEE__HTTP__LISTEN"], CONTAINER_LISTEN);
    let ports: Vec<&str> = seq(&levee_service["ports"], "ports")
        .iter()
        .map(|p| str_of(p, "port"))
        .collect();
    assert!(ports.contains(&"9464:9464"), "levee ports {ports:?}");
    let health = format!("{:?}", levee_service["healthcheck"]["test"]);
    assert!(
        health.contains("/readyz") && health.contains("9464"),
        "{health}"
    );
    assert!(depends_on_completed(levee_service, "topics"));
    assert!(depends_on_completed(
        service(&compose, "producer"),
        "topics"
    ));
    assert_eq!(
        service(&compose, "topics")["depends_on"]["kafka"]["condition"].as_str(),
        Some("service_healthy")
    );
    assert!(
        bind_mounts(levee_service)
            .iter()
            .any(|(s, t)| *s == deploy().join("../rules") && t == RULES_PATH),
        "levee mounts ../rules at {RULES_PATH}"
    );

    // Prometheus scrapes levee and loads the mounted alerting rules.
    let prometheus = service(&compose, "prometheus");
    let mounts = bind_mounts(prometheus);
    let config_flag = seq(&prometheus["command"], "prometheus command")
        .iter()
        .find_map(|c| c.as_str().unwrap().strip_prefix("--config.file="))
        .expect("--config.file");
    let (config, _) = mounts
        .iter()
        .find(|(_, t)| t == config_flag)
        .expect("the Prometheus config is mounted");
    let config = yaml(config);
    let targets: Vec<&str> = seq(&config["scrape_configs"], "scrape_configs")
        .iter()
        .filter(|j| j["job_name"].as_str() == Some("levee"))
        .flat_map(|j| seq(&j["static_configs"], "static_configs"))
        .flat_map(|s| seq(&s["targets"], "targets"))
        .map(|t| str_of(t, "target"))
        .collect();
    assert_eq!(targets, [format!("levee:{HTTP_PORT}")]);
    let (rules_source, rules_target) = mounts
        .iter()
        .find(|(s, _)| s.ends_with("prometheus/levee-rules.yml"))
        .expect("deploy/prometheus/levee-rules.yml is mounted");
    let rule_files: Vec<&str> = seq(&config["rule_files"], "rule_files")
        .iter()
        .map(|r| str_of(r, "rule file"))
        .collect();
    let rules_dir = Path::new(rules_target).parent().unwrap();
    assert!(
        rule_files.iter().any(|g| {
            Path::new(g).parent() == Some(rules_dir) && (g.ends_with("*.yml") || g == rules_target)
        }),
        "rule_files {rule_files:?} do not load {rules_target} ({})",
        rules_source.display()
    );

    // Grafana's provisioning points at the mounted dashboard and at the
    // Prometheus service.
    let grafana = service(&compose, "grafana");
    let mounts = bind_mounts(grafana);
    let provisioning = |kind: &str| {
        let (source, _) = mounts
            .iter()
            .find(|(_, t)| t == &format!("/etc/grafana/provisioning/{kind}"))
            .unwrap_or_else(|| panic!("grafana mounts provisioning/{kind}"));
        fs::read_dir(source)
            .unwrap()
            .map(|e| yaml(&e.unwrap().path()))
            .collect::<Vec<_>>()
    };
    let (_, dashboard_target) = mounts
        .iter()
        .find(|(s, _)| s.ends_with("grafana/levee.json"))
        .expect("deploy/grafana/levee.json is mounted");
    let dashboard_dir = Path::new(dashboard_target).parent().unwrap();
    let providers: Vec<Value> = provisioning("dashboards")
        .iter()
        .flat_map(|f| seq(&f["providers"], "providers").to_vec())
        .collect();
    assert!(
        providers
            .iter()
            .any(|p| p["options"]["path"].as_str().map(Path::new) == Some(dashboard_dir)),
        "no dashboard provider reads {}",
        dashboard_dir.display()
    );
    let datasources: Vec<Value> = provisioning("datasources")
        .iter()
        .flat_map(|f| seq(&f["datasources"], "datasources").to_vec())
        .collect();
    let url = format!(
        "http://prometheus:{}",
        ports_of(prometheus)
            .first()
            .expect("prometheus publishes its port")
    );
    assert!(
        datasources
            .iter()
            .any(|d| d["type"].as_str() == Some("prometheus") && d["url"].as_str() == Some(&url)),
        "no datasource at {url}"
    );

    // The dashboard finds its data: every datasource it names is Grafana's
    // own, a provisioned uid, or a datasource variable of Prometheus type
    // (which picks the default datasource, provisioned above).
    let (dashboard, _) = mounts
        .iter()
        .find(|(s, _)| s.ends_with("grafana/levee.json"))
        .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&read(dashboard)).unwrap();
    let variables: BTreeSet<String> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "datasource" && v["query"] == "prometheus")
        .map(|v| format!("${{{}}}", v["name"].as_str().unwrap()))
        .collect();
    let uids: BTreeSet<&str> = datasources
        .iter()
        .filter_map(|d| d["uid"].as_str())
        .collect();
    assert!(
        datasources
            .iter()
            .any(|d| d["isDefault"].as_bool() == Some(true)),
        "a default datasource"
    );
    let mut named = Vec::new();
    collect_datasources(&dashboard, &mut named);
    assert!(!named.is_empty(), "the dashboard names no datasource");
    for ds in named {
        let uid = ds["uid"].as_str().unwrap_or_default();
        assert!(
            uid == "-- Grafana --" || uids.contains(uid) || variables.contains(uid),
            "the dashboard's datasource {ds} is neither provisioned nor a Prometheus variable"
        );
    }
}

#[test]
fn compose_prometheus_config_passes_promtool() {
    let promtool = which("promtool")
        .expect("promtool is not installed: apt-get install prometheus (.ci/run does)");
    // promtool resolves rule_files on this machine: point them at the files
    // compose mounts there.
    let compose = compose();
    let mounts = bind_mounts(service(&compose, "prometheus"));
    let (config, _) = mounts
        .iter()
        .find(|(s, _)| s.ends_with("docker/prometheus.yml"))
        .expect("the Prometheus config is mounted");
    let mut config = yaml(config);
    let rule_files: Vec<Value> = mounts
        .iter()
        .filter(|(_, t)| t.starts_with("/etc/prometheus/rules/"))
        .map(|(s, _)| Value::from(s.to_str().unwrap()))
        .collect();
    assert!(!rule_files.is_empty());
    config["rule_files"] = Value::Sequence(rule_files);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("prometheus.yml");
    fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
    let out = Command::new(promtool)
        .args(["check", "config"])
        .arg(&path)
        .output()
        .unwrap();
    success(&out, "promtool check config");
}

fn collect_datasources(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(ds) = m.get("datasource") {
                if ds.is_object() {
                    out.push(ds.clone());
                }
            }
            m.values().for_each(|v| collect_datasources(v, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_datasources(v, out)),
        _ => {}
    }
}

/// Container ports a service publishes.
fn ports_of(service: &Value) -> Vec<String> {
    service["ports"]
        .as_sequence()
        .map(|ports| {
            ports
                .iter()
                .map(|p| str_of(p, "port").rsplit(':').next().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_topics_job_creates_every_topic_levee_uses() {
    use std::os::unix::fs::PermissionsExt;
    // kafka-topics.sh stands in as a script that writes down its arguments.
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("calls");
    let fake = tmp.path().join("kafka-topics.sh");
    fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display()),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("sh")
        .arg(deploy().join("docker/create-topics.sh"))
        .env("KAFKA_TOPICS", &fake)
        .env("BOOTSTRAP", "kafka:9092")
        .output()
        .unwrap();
    success(&out, "create-topics.sh");
    let mut created: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for call in read(&log).lines() {
        let args: Vec<&str> = call.split_whitespace().collect();
        assert!(args.contains(&"--create") && args.contains(&"--if-not-exists"));
        let after = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
        assert_eq!(after("--bootstrap-server"), "kafka:9092");
        let configs = args
            .windows(2)
            .filter(|w| w[0] == "--config")
            .map(|w| {
                let (k, v) = w[1].split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect();
        assert!(
            created
                .insert(after("--topic").to_owned(), configs)
                .is_none(),
            "created twice: {call}"
        );
    }
    assert_eq!(
        created.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        TOPICS.iter().copied().collect()
    );
    for (topic, configs) in &created {
        assert_eq!(
            configs.get("cleanup.policy").map(String::as_str),
            COMPACTED.contains(&topic.as_str()).then_some("compact"),
            "{topic}"
        );
    }
    // Every topic levee's settings name is among them.
    let settings = effective_settings(None, &BTreeMap::new());
    for topic in settings_topics(&settings) {
        assert!(created.contains_key(&topic), "{topic} is not created");
    }
    // The same topic configs as the Strimzi topics.
    let strimzi: BTreeMap<String, BTreeMap<String, String>> = kafka_topics()
        .iter()
        .map(|t| {
            let configs = t["spec"]["config"]
                .as_mapping()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| k.as_str() != Some("min.insync.replicas"))
                        .map(|(k, v)| {
                            let v = match v {
                                Value::Number(n) => n.to_string(),
                                other => str_of(other, "config").to_owned(),
                            };
                            (str_of(k, "config").to_owned(), v)
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                str_of(&t["spec"]["topicName"], "topicName").to_owned(),
                configs,
            )
        })
        .collect();
    assert_eq!(created, strimzi);
}

/// Every topic levee's settings name (`[topics]`: names and lists of names).
fn settings_topics(settings: &toml::Table) -> Vec<String> {
    let topics = settings["topics"].as_table().unwrap();
    let mut all = Vec::new();
    for value in topics.values() {
        match value {
            toml::Value::String(t) => all.push(t.clone()),
            toml::Value::Array(ts) => all.extend(ts.iter().map(|t| t.as_str().unwrap().to_owned())),
            other => panic!("[topics] holds {other}"),
        }
    }
    assert!(all.len() >= 9, "{all:?}");
    all
}

// ---------------------------------------------------------------- demo producer

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

/// The rule files levee loads from `dir`, relative: every *.yaml / *.yml
/// except under the top-level tests/ folder.
fn rule_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                if rel != Path::new("tests") {
                    walk(root, &path, out);
                }
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
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

// ---------------------------------------------------------------- Dockerfile

#[derive(Debug)]
struct Stage {
    image: String,
    name: Option<String>,
    /// (instruction, arguments), continuation lines joined.
    instructions: Vec<(String, String)>,
}

fn dockerfile() -> PathBuf {
    deploy().join("docker/Dockerfile")
}

fn dockerfile_stages(path: &Path) -> Vec<Stage> {
    let text = read(path);
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            logical.push(std::mem::take(&mut current));
        }
    }
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (instruction, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let instruction = instruction.to_ascii_uppercase();
        let rest = rest.trim().to_owned();
        if instruction == "ARG" && stages.is_empty() {
            if let Some((k, v)) = rest.split_once('=') {
                args.insert(k.to_owned(), v.to_owned());
            }
        } else if instruction == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let mut image = words[0].to_owned();
            for (k, v) in &args {
                image = image.replace(&format!("${{{k}}}"), v);
            }
            let name = (words.len() == 3 && words[1].eq_ignore_ascii_case("AS"))
                .then(|| words[2].to_owned());
            stages.push(Stage {
                image,
                name,
                instructions: Vec::new(),
            });
        } else {
            stages
                .last_mut()
                .expect("an instruction before FROM")
                .instructions
                .push((instruction, rest));
        }
    }
    stages
}

impl Stage {
    fn all(&self, instruction: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|(i, _)| i == instruction)
            .map(|(_, r)| r.as_str())
            .collect()
    }

    fn last(&self, instruction: &str) -> Option<&str> {
        self.all(instruction).last().copied()
    }

    /// COPY instructions as (--from stage, sources, destination).
    fn copies(&self) -> Vec<(Option<String>, Vec<String>, String)> {
        self.all("COPY")
            .into_iter()
            .map(|rest| {
                let mut from = None;
                let mut words: Vec<String> = Vec::new();
                for w in rest.split_whitespace() {
                    if let Some(f) = w.strip_prefix("--from=") {
                        from = Some(f.to_owned());
                    } else if !w.starts_with("--") {
                        words.push(w.to_owned());
                    }
                }
                let dest = words.pop().expect("COPY destination");
                (from, words, dest)
            })
            .collect()
    }

    fn env(&self) -> BTreeMap<String, String> {
        self.all("ENV")
            .into_iter()
            .map(|e| {
                let (k, v) = e.split_once('=').expect("ENV key=value");
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }
}

fn json_words(rest: &str) -> Vec<String> {
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("exec form {rest}: {e}"))
}

/// Whether a user (USER's argument) is root.
fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap();
    name == "0" || name == "root"
}

#[test]
fn dockerfile_is_multi_stage_and_runs_levee_as_non_root() {
    let stages = dockerfile_stages(&dockerfile());
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    for s in &stages {
        assert_pinned(&s.image, &format!("FROM {}", s.image));
    }
    let builder = &stages[0];
    assert!(
        builder.image.starts_with("rust:"),
        "a Rust build stage: {}",
        builder.image
    );
    // rdkafka builds librdkafka from source.
    let packages = builder.all("RUN").join(" ");
    for p in ["build-essential", "make", "zlib1g-dev"] {
        assert!(packages.contains(p), "the builder installs {p}");
    }
    assert!(packages.contains("cargo build --release --locked"));
    // The Rust image is at least the workspace's rust-version.
    let workspace: toml::Table = read(&repo().join("Cargo.toml")).parse().unwrap();
    let msrv = workspace["workspace"]["package"]["rust-version"]
        .as_str()
        .unwrap();
    let version = |v: &str| -> Vec<u64> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    let image_version = builder.image["rust:".len()..].split('-').next().unwrap();
    assert!(
        version(image_version)[..2] >= version(msrv)[..2],
        "{} is older than rust-version {msrv}",
        builder.image
    );

    // The last stage is the default target: levee itself.
    let runtime = stages.last().unwrap();
    assert_eq!(runtime.name.as_deref(), Some("runtime"));
    let user = runtime.last("USER").expect("the runtime stage sets USER");
    assert!(!is_root(user), "USER {user}");
    assert!(
        user.split(':').all(|p| p.parse::<u32>().is_ok()),
        "USER {user} is numeric, for runAsNonRoot"
    );
    for s in &stages[1..] {
        if let Some(u) = s.last("USER") {
            assert!(!is_root(u), "{:?} runs as {u}", s.name);
        } else {
            panic!("stage {:?} runs as root", s.name);
        }
    }
    let mut command = json_words(runtime.last("ENTRYPOINT").unwrap());
    command.extend(json_words(runtime.last("CMD").unwrap()));
    assert_eq!(
        command,
        ["/usr/local/bin/levee", "run", "--config", CONFIG_PATH]
    );
    assert_eq!(runtime.last("EXPOSE"), Some("9464"));
    assert_eq!(runtime.env()["LEVEE__HTTP__LISTEN"], CONTAINER_LISTEN);
    let health = runtime.last("HEALTHCHECK").expect("a HEALTHCHECK");
    assert!(
        health.contains("/healthz") && health.contains("9464"),
        "{health}"
    );
    let copies = runtime.copies();
    let dest_of = |source: &str| {
        copies
            .iter()
            .find(|(from, s, _)| from.is_none() && s.iter().any(|s| s == source))
            .map(|(_, _, d)| d.as_str())
    };
    assert_eq!(dest_of("rules"), Some(RULES_PATH));
    assert_eq!(dest_of("deploy/docker/levee.toml"), Some(CONFIG_PATH));
    assert!(copies
        .iter()
        .any(|(from, s, d)| from.as_deref() == Some("builder")
            && s == &["/usr/local/bin/levee"]
            && d == "/usr/local/bin/levee"));
}

#[test]
fn dockerfile_copies_files_that_exist_and_are_in_the_build_context() {
    let stages = dockerfile_stages(&dockerfile());
    let ignore = read(&deploy().join("docker/Dockerfile.dockerignore"));
    let included: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|p| p.trim_end_matches('/'))
        .collect();
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        "the dockerignore starts from nothing"
    );
    let mut checked = 0;
    for (i, stage) in stages.iter().enumerate() {
        for (from, sources, _) in stage.copies() {
            if let Some(from) = from {
                assert!(
                    stages[..i].iter().any(|s| s.name.as_deref() == Some(&from)),
                    "COPY --from={from}: not an earlier stage"
                );
                continue;
            }
            for source in sources {
                checked += 1;
                assert!(
                    repo().join(&source).exists(),
                    "COPY {source}: not in the repository"
                );
                assert!(
                    Path::new(&source)
                        .ancestors()
                        .any(|a| included.contains(&a.to_str().unwrap())),
                    "COPY {source}: excluded by Dockerfile.dockerignore"
                );
            }
        }
    }
    assert!(checked >= 6, "only {checked} COPY sources");
}

/// The packages `apt-get install` adds in a stage's RUN instructions.
fn apt_installs(stage: &Stage) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for run in stage.all("RUN") {
        for command in run.split("&&") {
            let words: Vec<&str> = command.split_whitespace().collect();
            if let Some(at) = words.windows(2).position(|w| w == ["apt-get", "install"]) {
                out.extend(
                    words[at + 2..]
                        .iter()
                        .filter(|w| !w.starts_with('-'))
                        .map(|w| (*w).to_owned()),
                );
            }
        }
    }
    out
}

/// The Debian package of a shared library levee may link, and whether
/// debian:bookworm-slim has it already. A library not listed fails the
/// test: add it here and its package to the Dockerfile.
fn package_of(soname: &str) -> Option<(&'static str, bool)> {
    Some(match soname {
        "libc.so.6" | "libm.so.6" | "libpthread.so.0" | "libdl.so.2" | "librt.so.1" => {
            ("libc6", true)
        }
        s if s.starts_with("ld-linux") => ("libc6", true),
        "libgcc_s.so.1" => ("libgcc-s1", true),
        "libz.so.1" => ("zlib1g", true),
        "libssl.so.3" | "libcrypto.so.3" => ("libssl3", false),
        "libsasl2.so.2" => ("libsasl2-2", false),
        "libcurl.so.4" => ("libcurl4", false),
        "libzstd.so.1" => ("libzstd1", true),
        "liblz4.so.1" => ("liblz4-1", true),
        _ => return None,
    })
}

#[test]
fn dockerfile_installs_what_the_tls_build_needs() {
    // levee is built with TLS and SASL (SCRAM, PLAIN): rdkafka's `ssl`.
    let workspace: toml::Table = read(&repo().join("Cargo.toml")).parse().unwrap();
    let features = workspace["workspace"]["dependencies"]["rdkafka"]["features"]
        .as_array()
        .unwrap();
    assert!(
        features.iter().any(|f| f.as_str() == Some("ssl")),
        "rdkafka features: {features:?}"
    );

    let stages = dockerfile_stages(&dockerfile());
    let builder = &stages[0];
    let build_deps = apt_installs(builder);
    for p in ["libssl-dev", "pkg-config"] {
        assert!(
            build_deps.contains(p),
            "the builder installs {p}: {build_deps:?}"
        );
    }

    // What the binary links, as this build made it.
    let out = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_levee"))
        .output()
        .expect("ldd (glibc's libc-bin) is not installed");
    let linked = success(&out, "ldd levee");
    let mut needed = BTreeSet::new();
    for line in linked.lines() {
        let Some(first) = line.split_whitespace().next() else {
            continue;
        };
        let soname = first.rsplit('/').next().unwrap();
        if soname.starts_with("linux-vdso") || soname.starts_with("linux-gate") {
            continue;
        }
        let (package, in_base) = package_of(soname).unwrap_or_else(|| {
            panic!("levee links {soname}: add its Debian package to package_of and the Dockerfile")
        });
        if !in_base {
            needed.insert(package);
        }
    }
    assert!(needed.contains("libssl3"), "levee links OpenSSL: {linked}");

    // Every stage that runs levee installs them.
    let mut checked = 0;
    for stage in &stages[1..] {
        let runs_levee = stage.copies().iter().any(|(from, s, _)| {
            from.as_deref() == Some("builder") && s == &["/usr/local/bin/levee"]
        });
        if !runs_levee {
            continue;
        }
        checked += 1;
        let installed = apt_installs(stage);
        for p in &needed {
            assert!(
                installed.contains(*p),
                "stage {:?} runs levee, which needs {p}: it installs {installed:?}",
                stage.name
            );
        }
    }
    assert!(checked >= 2, "the runtime and demo stages copy levee");
    // A broker whose certificate a public CA signed is verified without
    // ssl.ca.location.
    let runtime = stages.last().unwrap();
    assert!(apt_installs(runtime).contains("ca-certificates"));
}

#[test]
fn image_settings_are_accepted_by_levee() {
    let stages = dockerfile_stages(&dockerfile());
    let runtime = stages.last().unwrap();
    let mut env: BTreeMap<String, String> = runtime
        .env()
        .into_iter()
        .filter(|(k, _)| k != "LEVEE__HTTP__LISTEN")
        .collect();
    with_http_listen(&mut env, CONTAINER_LISTEN);
    let config = deploy().join("docker/levee.toml");
    let settings = effective_settings(Some(&config), &env);
    assert_eq!(rules_dir_of(&settings), RULES_PATH);
    assert_eq!(http_listen(&settings).unwrap(), CONTAINER_LISTEN);
    // And as compose runs it.
    let compose = compose();
    let env: BTreeMap<String, String> = environment(service(&compose, "levee"));
    let settings = effective_settings(Some(&config), &env);
    assert_eq!(settings["kafka"]["brokers"].as_str(), Some("kafka:9092"));
}

// ---------------------------------------------------------------- Kubernetes

fn k8s() -> PathBuf {
    deploy().join("k8s")
}

/// Every document of the resources the kustomization lists.
fn k8s_objects() -> Vec<Value> {
    let kustomization = yaml(&k8s().join("kustomization.yaml"));
    seq(&kustomization["resources"], "resources")
        .iter()
        .flat_map(|r| {
            let path = k8s().join(str_of(r, "resource"));
            assert!(path.is_file(), "{} does not exist", path.display());
            yaml_docs(&path)
        })
        .collect()
}

fn of_kind(objects: &[Value], kind: &str) -> Vec<Value> {
    objects
        .iter()
        .filter(|o| o["kind"].as_str() == Some(kind))
        .cloned()
        .collect()
}

fn one_of_kind(objects: &[Value], kind: &str) -> Value {
    let mut all = of_kind(objects, kind);
    assert_eq!(all.len(), 1, "one {kind}");
    all.remove(0)
}

fn kafka_topics() -> Vec<Value> {
    of_kind(&k8s_objects(), "KafkaTopic")
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (str_of(k, "label").to_owned(), str_of(v, "label").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A selector's matchLabels (or a Service's plain selector) all match.
fn selects(selector: &Value, pod_labels: &BTreeMap<String, String>) -> bool {
    let wanted = labels(if selector["matchLabels"].is_mapping() {
        &selector["matchLabels"]
    } else {
        selector
    });
    !wanted.is_empty() && wanted.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
}

#[test]
fn k8s_manifests_have_the_expected_kinds() {
    let objects = k8s_objects();
    let kinds: BTreeMap<&str, &str> = objects
        .iter()
        .map(|o| {
            (
                str_of(&o["kind"], "kind"),
                str_of(&o["apiVersion"], "apiVersion"),
            )
        })
        .collect();
    let expected = [
        ("Deployment", "apps/v1"),
        ("Service", "v1"),
        ("PodMonitor", "monitoring.coreos.com/v1"),
        ("PodDisruptionBudget", "policy/v1"),
        ("ConfigMap", "v1"),
        ("KafkaTopic", "kafka.strimzi.io/v1beta2"),
        ("ServiceAccount", "v1"),
    ];
    for (kind, api) in expected {
        assert_eq!(kinds.get(kind), Some(&api), "{kind}");
    }
    for o in &objects {
        let name = str_of(&o["metadata"]["name"], "metadata.name");
        assert!(
            o["metadata"]["namespace"].is_null(),
            "{name}: the manifests are namespace-free"
        );
    }
    // Every manifest in the folder is part of the kustomization.
    let listed: BTreeSet<String> = seq(
        &yaml(&k8s().join("kustomization.yaml"))["resources"],
        "resources",
    )
    .iter()
    .map(|r| str_of(r, "resource").to_owned())
    .collect();
    for entry in fs::read_dir(k8s()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            assert!(
                listed.contains(&name),
                "{name} is not in kustomization.yaml"
            );
        }
    }
}

#[test]
fn k8s_deployment_probes_resources_and_security() {
    let objects = k8s_objects();
    let deployment = one_of_kind(&objects, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let pod_labels = labels(&deployment["spec"]["template"]["metadata"]["labels"]);
    assert!(selects(&deployment["spec"]["selector"], &pod_labels));
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace >= 45,
        "levee may flush for 30 s after SIGTERM: grace {grace}"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert!(pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0);
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));

    let containers = seq(&pod["containers"], "containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_pinned(str_of(&c["image"], "image"), "the levee container");
    let args: Vec<&str> = seq(&c["args"], "args")
        .iter()
        .map(|a| str_of(a, "arg"))
        .collect();
    assert_eq!(args, ["run", "--config", CONFIG_PATH]);
    let ports: BTreeMap<&str, u64> = seq(&c["ports"], "ports")
        .iter()
        .map(|p| {
            (
                str_of(&p["name"], "port name"),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    let port_of = |probe: &Value| match &probe["httpGet"]["port"] {
        Value::String(name) => ports[name.as_str()],
        Value::Number(n) => n.as_u64().unwrap(),
        other => panic!("probe port {other:?}"),
    };
    for (probe, path) in [
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ] {
        assert_eq!(c[probe]["httpGet"]["path"].as_str(), Some(path), "{probe}");
        assert_eq!(port_of(&c[probe]), HTTP_PORT, "{probe}");
    }
    let env: BTreeMap<&str, &Value> = seq(&c["env"], "env")
        .iter()
        .map(|e| (str_of(&e["name"], "env name"), e))
        .collect();
    assert_eq!(
        env["LEVEE__HTTP__LISTEN"]["value"].as_str(),
        Some(CONTAINER_LISTEN)
    );
    for (kind, what) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "memory"),
    ] {
        assert!(
            !c["resources"][kind][what].is_null(),
            "resources.{kind}.{what}"
        );
    }
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(
        seq(&sc["capabilities"]["drop"], "drop")[0].as_str(),
        Some("ALL")
    );

    // The rules and the settings come from ConfigMaps, mounted where the
    // image keeps its own.
    let mounts: BTreeMap<&str, &Value> = seq(&c["volumeMounts"], "volumeMounts")
        .iter()
        .map(|m| (str_of(&m["mountPath"], "mountPath"), m))
        .collect();
    let volume = |mount_path: &str| -> String {
        let name = str_of(&mounts[mount_path]["name"], "volume name");
        let v = seq(&pod["volumes"], "volumes")
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap();
        str_of(&v["configMap"]["name"], "configMap name").to_owned()
    };
    assert_eq!(volume(RULES_PATH), "levee-rules");
    assert_eq!(volume(CONFIG_PATH), "levee-config");
    let config_key = str_of(&mounts[CONFIG_PATH]["subPath"], "subPath");
    let config_map = of_kind(&objects, "ConfigMap")
        .into_iter()
        .find(|m| m["metadata"]["name"].as_str() == Some("levee-config"))
        .expect("ConfigMap levee-config");
    assert!(config_map["data"][config_key].is_string());

    // Service, PodMonitor and PodDisruptionBudget select these pods.
    let service = one_of_kind(&objects, "Service");
    assert!(selects(&service["spec"]["selector"], &pod_labels));
    let service_port = &seq(&service["spec"]["ports"], "ports")[0];
    assert_eq!(service_port["port"].as_u64(), Some(HTTP_PORT));
    assert_eq!(
        ports[str_of(&service_port["targetPort"], "targetPort")],
        HTTP_PORT
    );
    let monitor = one_of_kind(&objects, "PodMonitor");
    assert!(selects(&monitor["spec"]["selector"], &pod_labels));
    let endpoint = &seq(&monitor["spec"]["podMetricsEndpoints"], "endpoints")[0];
    assert_eq!(ports[str_of(&endpoint["port"], "port")], HTTP_PORT);
    assert_eq!(endpoint["path"].as_str(), Some("/metrics"));
    let job_label = str_of(&monitor["spec"]["jobLabel"], "jobLabel");
    assert_eq!(pod_labels[job_label], "levee", "the job is \"levee\"");
    let pdb = one_of_kind(&objects, "PodDisruptionBudget");
    assert!(selects(&pdb["spec"]["selector"], &pod_labels));
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
    assert!(
        replicas >= 2,
        "a PodDisruptionBudget needs more than one replica"
    );
}

#[test]
fn k8s_topics_are_the_ones_levee_expects() {
    let topics = kafka_topics();
    let names: BTreeSet<&str> = topics
        .iter()
        .map(|t| str_of(&t["spec"]["topicName"], "topicName"))
        .collect();
    assert_eq!(names, TOPICS.iter().copied().collect());
    let settings = effective_settings(None, &BTreeMap::new());
    for topic in settings_topics(&settings) {
        assert!(names.contains(topic.as_str()), "{topic}");
    }
    // The cluster the topics belong to is the one levee's settings reach.
    let config = k8s_levee_toml();
    let brokers = config["kafka"]["brokers"].as_str().unwrap();
    for t in &topics {
        let cluster = &labels(&t["metadata"]["labels"])["strimzi.io/cluster"];
        assert!(
            brokers.starts_with(&format!("{cluster}-kafka-bootstrap:")),
            "{brokers} is not the bootstrap of Strimzi cluster {cluster}"
        );
        let name = str_of(&t["spec"]["topicName"], "topicName");
        let compact = t["spec"]["config"]["cleanup.policy"].as_str() == Some("compact");
        assert_eq!(compact, COMPACTED.contains(&name), "{name}");
    }
    // Partition p of every input keeps its state in partition p of the
    // changelog: one partition count for all of them.
    let partitions = |name: &str| {
        topics
            .iter()
            .find(|t| t["spec"]["topicName"].as_str() == Some(name))
            .and_then(|t| t["spec"]["partitions"].as_u64())
            .unwrap()
    };
    let inputs = settings["topics"]["inputs"].as_array().unwrap();
    for input in inputs {
        assert_eq!(
            partitions(input.as_str().unwrap()),
            partitions(CHANGELOG),
            "{input} and {CHANGELOG}"
        );
    }
}

fn k8s_levee_toml() -> toml::Table {
    let objects = k8s_objects();
    let config_map = of_kind(&objects, "ConfigMap")
        .into_iter()
        .find(|m| m["metadata"]["name"].as_str() == Some("levee-config"))
        .unwrap();
    str_of(&config_map["data"]["levee.toml"], "levee.toml")
        .parse()
        .unwrap()
}

#[test]
fn k8s_settings_are_accepted_by_levee() {
    let objects = k8s_objects();
    let deployment = one_of_kind(&objects, "Deployment");
    let c = &seq(&deployment["spec"]["template"]["spec"]["containers"], "c")[0];
    let mut env = BTreeMap::new();
    for e in seq(&c["env"], "env") {
        let name = str_of(&e["name"], "env name");
        if name == "LEVEE__HTTP__LISTEN" {
            continue;
        }
        // A value from the downward API stands for a pod name here.
        let value = e["value"].as_str().unwrap_or("levee-6d5f8c7b9-x2x7q");
        env.insert(name.to_owned(), value.to_owned());
    }
    with_http_listen(&mut env, CONTAINER_LISTEN);
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("levee.toml");
    fs::write(&config, toml::to_string(&k8s_levee_toml()).unwrap()).unwrap();
    let settings = effective_settings(Some(&config), &env);
    assert!(rules_dir_of(&settings).starts_with(RULES_PATH));
    assert_eq!(
        settings["kafka"]["instance_id"].as_str(),
        Some("levee-6d5f8c7b9-x2x7q")
    );
    assert_eq!(http_listen(&settings).unwrap(), CONTAINER_LISTEN);
}

/// Lays out a ConfigMap volume as the kubelet does: the files in a hidden,
/// timestamped folder, a `..data` link to it, and a link per key.
fn kubelet_volume(root: &Path, data: &BTreeMap<String, String>) {
    use std::os::unix::fs::symlink;
    let hidden = "..2026_11_26_10_00_00.123456789";
    fs::create_dir_all(root.join(hidden)).unwrap();
    for (key, text) in data {
        fs::write(root.join(hidden).join(key), text).unwrap();
        symlink(format!("..data/{key}"), root.join(key)).unwrap();
    }
    symlink(hidden, root.join("..data")).unwrap();
}

fn check_summary(rules: &Path) -> String {
    let out = levee()
        .arg("--rules")
        .arg(rules)
        .arg("check")
        .output()
        .unwrap();
    let stdout = success(&out, &format!("levee check --rules {}", rules.display()));
    stdout.lines().last().expect("a summary line").to_owned()
}

#[test]
fn k8s_rules_configmap_holds_every_rule_file_and_loads_as_mounted() {
    let rules = repo().join("rules");
    let out = Command::new("sh")
        .arg(k8s().join("rules-configmap.sh"))
        .arg(&rules)
        .output()
        .unwrap();
    let manifest = success(&out, "rules-configmap.sh");
    let config_map: Value = serde_norway::from_str(&manifest).unwrap();
    assert_eq!(config_map["kind"].as_str(), Some("ConfigMap"));
    assert_eq!(config_map["metadata"]["name"].as_str(), Some("levee-rules"));
    let data: BTreeMap<String, String> = config_map["data"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (str_of(k, "key").to_owned(), str_of(v, "value").to_owned()))
        .collect();
    // Byte for byte, every file levee loads and nothing else.
    let files = rule_files(&rules);
    assert_eq!(data.len(), files.len());
    for file in &files {
        let key = file.to_str().unwrap().replace('/', "__");
        assert_eq!(
            data.get(&key),
            Some(&read(&rules.join(file))),
            "{}",
            file.display()
        );
    }
    assert!(
        manifest.len() < 1024 * 1024,
        "a ConfigMap holds at most 1 MiB"
    );

    // Mounted, at the rules.dir the k8s settings name, it compiles to what
    // the rules directory compiles to.
    let dir = rules_dir_of(&k8s_levee_toml());
    let below = Path::new(&dir).strip_prefix(RULES_PATH).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let volume = tmp.path().join("rules");
    kubelet_volume(&volume, &data);
    assert_eq!(check_summary(&volume.join(below)), check_summary(&rules));
}

// ---------------------------------------------------------------- systemd

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

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

// ---------------------------------------------------------------- README

#[test]
fn deploy_readme_walks_through_each_way_and_names_the_topics() {
    let readme = read(&deploy().join("README.md"));
    assert!(readme.contains("# Deploying"));
    for section in ["Docker", "Compose", "Kubernetes", "systemd"] {
        assert!(
            readme
                .lines()
                .any(|l| l.starts_with("## ") && l.contains(section)),
            "README has no \"## …{section}…\" section"
        );
    }
    for topic in TOPICS {
        assert!(readme.contains(&format!("`{topic}`")), "{topic}");
    }
    assert!(readme.contains("LEVEE__HTTP__LISTEN=0.0.0.0:9464"));
}
