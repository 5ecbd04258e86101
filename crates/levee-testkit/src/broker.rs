//! A real single-node Apache Kafka broker (KRaft, combined broker + controller) run as
//! a child `java` process on 127.0.0.1, in a temporary directory.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tempfile::TempDir;

use crate::jars;
use crate::secure::{SaslSslListener, SaslSslOptions};

/// Environment variable with extra JVM options for the broker, appended after the
/// defaults (e.g. `-Xmx1g`).
pub const JVM_OPTS_ENV: &str = "LEVEE_KAFKA_JVM_OPTS";

/// Default JVM options: small heap and few GC/compiler threads, since tests run on
/// small machines next to the code under test.
const DEFAULT_JVM_OPTS: &[&str] = &[
    "-Xms64m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
];

/// The Kafka log line that says the server finished starting.
const STARTED_MARKER: &str = "Kafka Server started";

/// How many broker log lines go into start-up error messages.
const LOG_TAIL_LINES: usize = 60;

/// How [`KafkaBroker::start_with`] sets up the broker.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Extra `server.properties` entries; they override the kit's defaults.
    pub server_properties: Vec<(String, String)>,
    /// How long to wait for the broker to answer before giving up.
    pub start_timeout: Duration,
    /// A SASL_SSL listener beside the PLAINTEXT one (see [`crate::secure`]).
    pub sasl_ssl: Option<SaslSslOptions>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            server_properties: Vec::new(),
            start_timeout: Duration::from_secs(90),
            sasl_ssl: None,
        }
    }
}

impl BrokerOptions {
    /// Adds (or overrides) one `server.properties` entry.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.server_properties.push((key.into(), value.into()));
        self
    }
}

/// The processes of a running broker.
#[derive(Debug)]
struct Running {
    java: Child,
    /// `sh` that kills `java` (and removes the directory) when this test process exits:
    /// it blocks reading `_watchdog_pipe`, whose only writer is this process.
    watchdog: Child,
    _watchdog_pipe: Option<ChildStdin>,
}

/// A single-node Kafka broker in KRaft mode on 127.0.0.1.
///
/// Started with [`KafkaBroker::start`]; dropping it kills the `java` process and removes
/// its directory. Should the test process die without dropping it (a `static`, a
/// `SIGKILL`), a watchdog process kills the broker and removes the directory anyway.
///
/// `auto.create.topics.enable` is `false`: create topics with
/// [`KafkaBroker::create_topics`].
#[derive(Debug)]
pub struct KafkaBroker {
    port: u16,
    controller_port: u16,
    classpath: String,
    dir: TempDir,
    /// The processes while the broker runs: behind a lock, so that a test
    /// holding the broker shared (`&'static`) can stop and start it.
    running: Mutex<Option<Running>>,
    start_timeout: Duration,
    /// Length of `broker.log` when the current run started.
    log_offset: AtomicU64,
    /// The SASL_SSL listener, if asked for.
    pub(crate) sasl_ssl: Option<SaslSslListener>,
}

impl KafkaBroker {
    /// Fetches the jars if needed (see [`crate::jars`]), formats a fresh KRaft log
    /// directory and starts a broker on free ports; returns once it accepts clients.
    pub fn start() -> Result<Self> {
        Self::start_with(BrokerOptions::default())
    }

    /// Like [`KafkaBroker::start`], with extra options.
    pub fn start_with(options: BrokerOptions) -> Result<Self> {
        let began = Instant::now();
        let classpath = jars::broker_classpath()?;
        let mut last_err = None;
        // Ports are picked by binding port 0 and released before java binds them; if
        // another process grabs one in between, try again with new ports.
        for _ in 0..3 {
            let ports = free_ports(if options.sasl_ssl.is_some() { 3 } else { 2 })?;
            let (port, controller_port) = (ports[0], ports[1]);
            let dir = tempfile::Builder::new()
                .prefix("levee-kafka-")
                .tempdir()
                .context("creating the broker's temporary directory")?;
            let sasl_ssl = match &options.sasl_ssl {
                Some(secure) => Some(SaslSslListener::prepare(dir.path(), secure, ports[2])?),
                None => None,
            };
            let broker = KafkaBroker {
                port,
                controller_port,
                classpath: classpath.clone(),
                dir,
                running: Mutex::new(None),
                start_timeout: options.start_timeout,
                log_offset: AtomicU64::new(0),
                sasl_ssl,
            };
            broker.write_config(&options)?;
            broker.format()?;
            match broker.start_again() {
                Ok(()) => {
                    eprintln!(
                        "levee-testkit: Kafka broker at {} ready in {:.1?} (dir {})",
                        broker.bootstrap_servers(),
                        began.elapsed(),
                        broker.dir().display()
                    );
                    return Ok(broker);
                }
                Err(err) => {
                    // Retry only when the kit picked the ports.
                    let user_ports = options
                        .server_properties
                        .iter()
                        .any(|(k, _)| k == "listeners" || k == "controller.quorum.voters");
                    let port_clash = broker.log_summary().contains("Address already in use");
                    if user_ports || !port_clash {
                        return Err(err);
                    }
                    last_err = Some(err);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("could not start the broker")))
    }

    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client (PLAINTEXT) port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The KRaft controller port.
    pub fn controller_port(&self) -> u16 {
        self.controller_port
    }

    /// The broker's directory: `server.properties`, `log4j.properties`, `broker.log`
    /// and the Kafka log directory `data/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file that receives the broker's output.
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    /// The last `lines` lines of the broker's log (empty if there is none yet).
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.log_file(), lines)
    }

    /// The error lines and the last lines that the latest run of the broker logged.
    pub fn log_summary(&self) -> String {
        let log = self.log_since(self.log_offset.load(Ordering::Acquire));
        let errors: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("] ERROR ") || l.contains("] FATAL ") || l.starts_with("Caused by:")
            })
            .take(20)
            .collect();
        let mut out = String::new();
        if !errors.is_empty() {
            let _ = writeln!(
                out,
                "errors in {}:\n{}",
                self.log_file().display(),
                errors.join("\n")
            );
        }
        let _ = write!(
            out,
            "last lines of {}:\n{}",
            self.log_file().display(),
            last_lines(&log, 40)
        );
        out
    }

    /// `broker.log` from byte `offset` on.
    fn log_since(&self, offset: u64) -> String {
        let mut buf = Vec::new();
        if let Ok(mut file) = File::open(self.log_file()) {
            if file.seek(SeekFrom::Start(offset)).is_ok() {
                let _ = file.read_to_end(&mut buf);
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pid of the `java` process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(|r| r.java.id())
    }

    /// Whether the `java` process is alive (a paused broker counts as alive).
    pub fn is_running(&self) -> bool {
        match self.lock().as_mut() {
            Some(running) => matches!(running.java.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the broker gracefully (SIGTERM, then SIGKILL after 30 s), keeping its
    /// directory and ports so that [`KafkaBroker::start_again`] can bring it back.
    pub fn stop(&self) -> Result<()> {
        self.shut_down(Some(Duration::from_secs(30)))
    }

    /// Kills the broker at once (SIGKILL), as a crash would; the directory is kept.
    pub fn kill(&self) -> Result<()> {
        self.shut_down(None)
    }

    /// Starts the broker again on the same directory and ports after
    /// [`KafkaBroker::stop`] or [`KafkaBroker::kill`]; returns once it accepts clients.
    /// Does nothing if it is running.
    pub fn start_again(&self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        // Reap a broker that died by itself, and its watchdog.
        self.shut_down(None)?;
        let dir = self.dir.path().to_path_buf();
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_file())
            .with_context(|| format!("opening {}", self.log_file().display()))?;
        let log_err = log.try_clone().context("duplicating the log file handle")?;
        self.log_offset.store(
            log.metadata().map(|m| m.len()).unwrap_or(0),
            Ordering::Release,
        );
        let mut cmd = Command::new(java_binary());
        cmd.args(DEFAULT_JVM_OPTS)
            .args(extra_jvm_opts())
            .arg(format!(
                "-Dlog4j.configuration=file:{}",
                dir.join("log4j.properties").display()
            ))
            .arg("-cp")
            .arg(&self.classpath)
            .arg("kafka.Kafka")
            .arg(dir.join("server.properties"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let java = cmd
            .spawn()
            .with_context(|| format!("starting `{}` for the Kafka broker", java_binary()))?;
        let java_pid = java.id();
        let watchdog = spawn_watchdog(java_pid, &dir);
        let (watchdog, pipe) = match watchdog {
            Ok(mut child) => {
                let pipe = child.stdin.take();
                (child, pipe)
            }
            Err(err) => {
                let mut java = java;
                let _ = java.kill();
                let _ = java.wait();
                return Err(err);
            }
        };
        *self.lock() = Some(Running {
            java,
            watchdog,
            _watchdog_pipe: pipe,
        });
        if let Err(err) = self.wait_until_ready() {
            let _ = self.kill();
            return Err(err.context(format!(
                "Kafka broker in {} did not start; {}",
                dir.display(),
                self.log_summary()
            )));
        }
        Ok(())
    }

    /// [`KafkaBroker::stop`] followed by [`KafkaBroker::start_again`].
    pub fn restart(&self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing answers, as
    /// with a hung or unreachable broker. Undo with [`KafkaBroker::resume`].
    pub fn pause(&self) -> Result<()> {
        self.signal("STOP")
    }

    /// Lets a [paused](KafkaBroker::pause) broker run again (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, name: &str) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("the broker is not running"))?;
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .with_context(|| format!("running `kill -{name} {pid}`"))?;
        if !status.success() {
            bail!("`kill -{name} {pid}` failed with {status}");
        }
        Ok(())
    }

    /// Ends the processes; `grace` = time allowed after SIGTERM, `None` = SIGKILL now.
    fn shut_down(&self, grace: Option<Duration>) -> Result<()> {
        let Some(mut running) = self.lock().take() else {
            return Ok(());
        };
        // The watchdog goes first, so that it never kills a pid that has been reused.
        let _ = running.watchdog.kill();
        let _ = running.watchdog.wait();
        let pid = running.java.id();
        if let Some(grace) = grace {
            if matches!(running.java.try_wait(), Ok(None)) {
                // A paused broker cannot handle SIGTERM.
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .arg(pid.to_string())
                    .status();
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
                let deadline = Instant::now() + grace;
                while Instant::now() < deadline {
                    if !matches!(running.java.try_wait(), Ok(None)) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        if matches!(running.java.try_wait(), Ok(None)) {
            running
                .java
                .kill()
                .with_context(|| format!("killing the broker (pid {pid})"))?;
        }
        running
            .java
            .wait()
            .with_context(|| format!("waiting for the broker (pid {pid})"))?;
        Ok(())
    }

    fn write_config(&self, options: &BrokerOptions) -> Result<()> {
        let dir = self.dir.path();
        let mut props: Vec<(String, String)> =
            server_properties(self.port, self.controller_port, &dir.join("data"));
        if let Some(secure) = &self.sasl_ssl {
            secure.apply(&mut props);
        }
        for (key, value) in &options.server_properties {
            props.retain(|(k, _)| k != key);
            props.push((key.clone(), value.clone()));
        }
        let mut text = String::from("# Generated by levee-testkit\n");
        for (key, value) in &props {
            let _ = writeln!(text, "{key}={value}");
        }
        std::fs::write(dir.join("server.properties"), text).context("writing server.properties")?;
        std::fs::write(dir.join("log4j.properties"), LOG4J_PROPERTIES)
            .context("writing log4j.properties")?;
        Ok(())
    }

    /// `kafka.tools.StorageTool format` with a random cluster id.
    fn format(&self) -> Result<()> {
        let dir = self.dir.path();
        let output = Command::new(java_binary())
            .args(DEFAULT_JVM_OPTS)
            .args(extra_jvm_opts())
            .arg(format!(
                "-Dlog4j.configuration=file:{}",
                dir.join("log4j.properties").display()
            ))
            .arg("-cp")
            .arg(&self.classpath)
            .arg("kafka.tools.StorageTool")
            .arg("format")
            .arg("--cluster-id")
            .arg(random_cluster_id()?)
            .arg("--config")
            .arg(dir.join("server.properties"))
            .args(self.sasl_ssl.iter().flat_map(SaslSslListener::format_args))
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running `{}` (kafka.tools.StorageTool)", java_binary()))?;
        let _ = std::fs::write(
            dir.join("format.log"),
            [&output.stdout[..], &output.stderr[..]].concat(),
        );
        if !output.status.success() {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            bail!(
                "formatting the KRaft log directory failed with {}:\n{}",
                output.status,
                last_lines(&text, LOG_TAIL_LINES)
            );
        }
        Ok(())
    }

    fn wait_until_ready(&self) -> Result<()> {
        let deadline = Instant::now() + self.start_timeout;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut logged_start = false;
        loop {
            let exited = {
                let mut running = self.lock();
                let running = running
                    .as_mut()
                    .ok_or_else(|| anyhow!("the broker is not running"))?;
                running
                    .java
                    .try_wait()
                    .context("polling the broker process")?
            };
            if let Some(status) = exited {
                bail!("the broker exited during start-up with {status}");
            }
            if !logged_start {
                logged_start = self
                    .log_since(self.log_offset.load(Ordering::Acquire))
                    .contains(STARTED_MARKER);
            }
            if logged_start && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the broker did not answer on {addr} within {:?}",
                    self.start_timeout
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        let _ = self.kill();
        // `self.dir` (a TempDir) removes the directory after this.
    }
}

/// The kit's `server.properties` for a single combined broker + controller node.
fn server_properties(port: u16, controller_port: u16, data: &Path) -> Vec<(String, String)> {
    let entries: Vec<(&str, String)> = vec![
        ("process.roles", "broker,controller".into()),
        ("node.id", "1".into()),
        (
            "controller.quorum.voters",
            format!("1@127.0.0.1:{controller_port}"),
        ),
        (
            "listeners",
            format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"),
        ),
        (
            "advertised.listeners",
            format!("PLAINTEXT://127.0.0.1:{port}"),
        ),
        ("controller.listener.names", "CONTROLLER".into()),
        ("inter.broker.listener.name", "PLAINTEXT".into()),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
        ),
        ("log.dirs", data.display().to_string()),
        ("num.partitions", "1".into()),
        ("default.replication.factor", "1".into()),
        ("auto.create.topics.enable", "false".into()),
        ("offsets.topic.replication.factor", "1".into()),
        ("offsets.topic.num.partitions", "1".into()),
        ("transaction.state.log.replication.factor", "1".into()),
        ("transaction.state.log.min.isr", "1".into()),
        ("transaction.state.log.num.partitions", "1".into()),
        ("group.initial.rebalance.delay.ms", "0".into()),
        // After a crash (kill), the restarted broker can register again only once the
        // old registration's session expired: keep that short.
        ("broker.session.timeout.ms", "3000".into()),
        ("broker.heartbeat.interval.ms", "300".into()),
        ("num.network.threads", "2".into()),
        ("num.io.threads", "2".into()),
        ("background.threads", "2".into()),
        ("num.recovery.threads.per.data.dir", "1".into()),
        ("log.cleaner.threads", "1".into()),
        ("log.cleaner.dedupe.buffer.size", "8388608".into()),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// Log4j 1 (reload4j) configuration: everything to stdout, which goes to `broker.log`.
const LOG4J_PROPERTIES: &str = "\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
";

/// Starts `sh`, which waits for EOF on its stdin and then kills `java_pid` and removes
/// `dir`. The write end of the pipe is held only by this process (Rust opens it
/// close-on-exec), so EOF arrives exactly when this process exits, however it exits.
/// [`KafkaBroker`] kills the watchdog itself before stopping the broker normally.
fn spawn_watchdog(java_pid: u32, dir: &Path) -> Result<Child> {
    const SCRIPT: &str = r#"read -r _ignored
kill -KILL "$1" 2>/dev/null
i=0
while kill -0 "$1" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
rm -rf -- "$2""#;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("levee-kafka-watchdog")
        .arg(java_pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the broker watchdog (sh)")
}

/// `n` distinct free ports on 127.0.0.1 (all held while picking, then released).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a free port"))
        .collect::<Result<Vec<_>>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// A random KRaft cluster id: 16 random bytes, base64url without padding.
fn random_cluster_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    // The storage tool's argument parser takes an id that starts with `-`
    // for an option (one id in 64 does): clear the top bits of the first
    // byte so the first character is a letter.
    bytes[0] &= 0x3f;
    Ok(base64url(&bytes))
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

/// `$JAVA_HOME/bin/java` if `JAVA_HOME` is set, else `java` from `PATH`.
fn java_binary() -> String {
    match std::env::var_os("JAVA_HOME") {
        Some(home) if !home.is_empty() => Path::new(&home).join("bin/java").display().to_string(),
        _ => "java".to_owned(),
    }
}

fn extra_jvm_opts() -> Vec<String> {
    std::env::var(JVM_OPTS_ENV)
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The last `lines` lines of a file, reading at most its last 256 KiB.
fn tail_of_file(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(256 * 1024);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    if file.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    last_lines(&String::from_utf8_lossy(&buf), lines)
}

fn last_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_known_values() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url(&[0u8; 16]).len(), 22);
        for _ in 0..500 {
            let id = random_cluster_id().unwrap();
            assert_eq!(id.len(), 22);
            assert!(id.starts_with(|c: char| c.is_ascii_alphabetic()), "{id}");
        }
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
    }
}
