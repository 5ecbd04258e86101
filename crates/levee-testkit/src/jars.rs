//! Locating the Kafka broker jars: fetched once with Maven from `deploy/kafka/pom.xml`
//! and cached in `<workspace>/.kafka-cache/libs-<pom hash>/`.
//!
//! The cache directory name is the first 16 hex digits of the SHA-256 of the pom, the
//! same name `deploy/kafka/kafka-local.sh` uses, so the script and the test kit share
//! one cache. Changing the pom (e.g. bumping the Kafka version) picks a new directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Environment variable that, when set, is used verbatim as the broker's Java
/// classpath; Maven is then not run at all.
pub const CLASSPATH_ENV: &str = "LEVEE_KAFKA_CLASSPATH";

/// Environment variable that overrides the jar cache directory
/// (default: `<workspace>/.kafka-cache`).
pub const CACHE_DIR_ENV: &str = "LEVEE_KAFKA_CACHE_DIR";

/// Environment variable that overrides the `mvn` executable.
pub const MVN_ENV: &str = "LEVEE_MVN";

/// Marker written into a jar directory once Maven has finished copying into it.
const COMPLETE_MARKER: &str = ".complete";

/// Serialises fetches inside one process (several tests may start brokers at once).
static FETCH_LOCK: Mutex<()> = Mutex::new(());

/// The workspace root, i.e. two levels above this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Path of the pom that lists the broker jars.
pub fn pom_path() -> PathBuf {
    workspace_root().join("deploy/kafka/pom.xml")
}

/// Root of the jar cache (see [`CACHE_DIR_ENV`]).
pub fn cache_root() -> PathBuf {
    match std::env::var_os(CACHE_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join(".kafka-cache"),
    }
}

/// The Java classpath of the broker: [`CLASSPATH_ENV`] if set, otherwise the cached
/// jar directory (fetched with Maven on first use) as a `dir/*` wildcard.
pub fn broker_classpath() -> Result<String> {
    if let Some(cp) = std::env::var_os(CLASSPATH_ENV) {
        if !cp.is_empty() {
            return cp
                .into_string()
                .map_err(|cp| anyhow::anyhow!("{CLASSPATH_ENV} is not valid UTF-8: {cp:?}"));
        }
    }
    let dir = ensure_jars()?;
    Ok(format!("{}/*", dir.display()))
}

/// Makes sure the broker jars are in the cache and returns their directory.
pub fn ensure_jars() -> Result<PathBuf> {
    let pom = pom_path();
    let pom_bytes =
        std::fs::read(&pom).with_context(|| format!("reading the broker pom {}", pom.display()))?;
    let hash = Sha256::digest(&pom_bytes);
    let short: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let root = cache_root();
    let dir = root.join(format!("libs-{short}"));
    if dir.join(COMPLETE_MARKER).is_file() {
        return Ok(dir);
    }

    let _guard = FETCH_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if dir.join(COMPLETE_MARKER).is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&root)
        .with_context(|| format!("creating the jar cache {}", root.display()))?;
    // Fetch into a private directory and rename it into place, so that concurrent
    // fetches (other test binaries, the script) never see a half-filled directory.
    let staging = root.join(format!("libs-{short}.tmp-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing stale {}", staging.display()))?;
    }
    let result = fetch_into(&pom, &staging).and_then(|()| {
        std::fs::write(staging.join(COMPLETE_MARKER), b"")
            .with_context(|| format!("writing marker in {}", staging.display()))
    });
    if let Err(err) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(err);
    }
    if let Err(err) = std::fs::rename(&staging, &dir) {
        let _ = std::fs::remove_dir_all(&staging);
        // Someone else finished first: fine, use theirs.
        if !dir.join(COMPLETE_MARKER).is_file() {
            return Err(err).with_context(|| format!("moving jars into {}", dir.display()));
        }
    }
    Ok(dir)
}

/// Runs `mvn dependency:copy-dependencies` for `pom` into `out`.
fn fetch_into(pom: &Path, out: &Path) -> Result<()> {
    let mvn = std::env::var(MVN_ENV).unwrap_or_else(|_| "mvn".to_owned());
    let output = Command::new(&mvn)
        .arg("-q")
        .arg("-B")
        .arg("-f")
        .arg(pom)
        .arg("dependency:copy-dependencies")
        .arg(format!("-DoutputDirectory={}", out.display()))
        .arg("-DincludeScope=runtime")
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!("running `{mvn}` to fetch the Kafka broker jars (is Maven installed? set {CLASSPATH_ENV} to skip it)")
        })?;
    if !output.status.success() {
        bail!(
            "`{mvn} -f {} dependency:copy-dependencies` failed with {}:\n{}{}",
            pom.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let has_broker = std::fs::read_dir(out)
        .with_context(|| format!("listing {}", out.display()))?
        .filter_map(|entry| entry.ok())
        .any(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("kafka_2.13-")
        });
    if !has_broker {
        bail!(
            "Maven finished but {} holds no kafka_2.13 jar",
            out.display()
        );
    }
    Ok(())
}
