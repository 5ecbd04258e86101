//! The Kubernetes manifests: kinds, probes, resources, topics, settings, rules.

use super::*;

fn one_of_kind(objects: &[Value], kind: &str) -> Value {
    let mut all = of_kind(objects, kind);
    assert_eq!(all.len(), 1, "one {kind}");
    all.remove(0)
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
    // And the repartition topic (`<group_id>-repartition`), an input too.
    assert_eq!(partitions("levee-repartition"), partitions(CHANGELOG));
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
