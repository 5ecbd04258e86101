//! The Dockerfile: stages, user, build context, the image's settings.

use super::*;

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
