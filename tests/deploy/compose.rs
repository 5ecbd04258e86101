//! The Compose demo: services, images, mounts, topics, Prometheus and Grafana.

use super::*;

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
