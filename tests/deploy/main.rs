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
    "tables.fleet",
    "tables.designated_stations",
    "tables.supplier_blacklist",
    "tables.roles",
    "tables.credit_limits",
    "tables.declared_interests",
    "alerts.tier1",
    "alerts.tier2",
    "alerts.tier3",
    "decisions",
    "events.dlq",
    "alerts.shadow",
    "alerts.closed",
    "profiles",
    "levee.state-changelog",
    "levee-repartition",
    "levee-people",
    "profiles.people",
];
/// Keyed topics of which only the latest record per key matters.
const COMPACTED: &[&str] = &[
    "events.rectification",
    "tables.fleet",
    "tables.designated_stations",
    "tables.supplier_blacklist",
    "tables.roles",
    "tables.credit_limits",
    "tables.declared_interests",
    "alerts.closed",
    "profiles",
    "profiles.people",
    "levee.state-changelog",
];
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

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

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

fn kafka_topics() -> Vec<Value> {
    of_kind(&k8s_objects(), "KafkaTopic")
}

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

mod compose;
mod dashboard;
mod demo;
mod docker;
mod k8s;
mod readme;
mod systemd;
