//! Test kit for levee: a real Apache Kafka broker for integration tests, and client
//! helpers to set up topics and check what landed in them.
//!
//! The broker is a single node in KRaft mode (combined broker + controller) on
//! 127.0.0.1, run as a child `java` process from jars that Maven fetches once from
//! `deploy/kafka/pom.xml` (the version is pinned there). Requirements: `java` (17+) and
//! `mvn` on `PATH`, or `LEVEE_KAFKA_CLASSPATH` pointing at the broker jars.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use levee_testkit::{shared_broker, unique_topic_prefix, Record};
//!
//! let broker = shared_broker();
//! let topic = format!("{}.in", unique_topic_prefix("my_test"));
//! broker.create_topics(&[(&topic, 3)]).await?;
//! broker
//!     .produce(&topic, [Record::new("hello").key("k1").header("h", "v")])
//!     .await?;
//! let got = broker.consume(&topic, 1, Duration::from_secs(10)).await?;
//! assert_eq!(got[0].payload_str(), Some("hello"));
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`broker`]: [`KafkaBroker`], start/stop/kill/restart/pause of a broker process.
//! - [`clients`]: topic creation, producing [`Record`]s, reading back [`ReceivedMessage`]s.
//! - [`jars`]: fetching and caching the broker jars with Maven.
//! - [`levee`]: the topics, settings file and child process of a `levee run`.
//! - [`secure`]: a SASL_SSL listener (a test CA, SCRAM and PLAIN users) beside
//!   the PLAINTEXT one. Requires the `openssl` command.
//! - this file: [`shared_broker`] (one broker per test binary) and [`unique_topic_prefix`].
//!
//! # Environment
//!
//! - `LEVEE_KAFKA_CLASSPATH`: broker classpath to use instead of fetching with Maven.
//! - `LEVEE_KAFKA_CACHE_DIR`: jar cache (default `<workspace>/.kafka-cache`).
//! - `LEVEE_KAFKA_JVM_OPTS`: extra JVM options for the broker.
//! - `LEVEE_MVN`: the Maven executable (default `mvn`).
//! - `JAVA_HOME`: the Java installation (default: `java` on `PATH`).

pub mod broker;
pub mod clients;
pub mod jars;
pub mod levee;
pub mod secure;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use broker::{BrokerOptions, KafkaBroker};
pub use clients::{ReceivedMessage, Record, TopicSpec};
pub use levee::{LeveeProcess, LeveeTopics};
pub use secure::{SaslSslListener, SaslSslOptions};

/// The broker shared by all tests of this test binary, started on first use.
///
/// It is never dropped: a watchdog kills it and removes its directory when the test
/// process exits. Don't stop or pause it; tests that need that start their own
/// [`KafkaBroker`]. Use [`unique_topic_prefix`] so tests don't see each other's topics.
///
/// # Panics
///
/// If the broker cannot be started (every later call panics with the same message).
/// See [`try_shared_broker`] for a `Result`.
#[allow(clippy::panic)]
pub fn shared_broker() -> &'static KafkaBroker {
    match try_shared_broker() {
        Ok(broker) => broker,
        Err(err) => panic!("{err}"),
    }
}

/// Like [`shared_broker`], returning the start-up error instead of panicking.
pub fn try_shared_broker() -> Result<&'static KafkaBroker, String> {
    static SHARED: OnceLock<Result<KafkaBroker, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            KafkaBroker::start().map_err(|err| format!("starting the shared Kafka broker: {err:#}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A fresh topic name prefix for one test: `levee-test.<test_name>.<unique>`, with
/// characters Kafka does not allow in topic names replaced by `_`. Append your own
/// suffixes (`"{prefix}.input"`).
pub fn unique_topic_prefix(test_name: &str) -> String {
    let name: String = test_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    format!("levee-test.{name}.{}", unique_suffix())
}

/// `<pid>-<start time>-<counter>`: unique across processes and calls.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static START: OnceLock<u128> = OnceLock::new();
    let start = START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{start}-{n}", std::process::id())
}

/// The client helpers of [`clients`], bound to this broker.
impl KafkaBroker {
    /// A client configuration with `bootstrap.servers` set to this broker.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        clients::client_config(&self.bootstrap_servers())
    }

    /// See [`clients::create_topics`].
    pub async fn create_topics(&self, topics: &[(&str, i32)]) -> anyhow::Result<()> {
        clients::create_topics(&self.bootstrap_servers(), topics).await
    }

    /// See [`clients::create_topics_with_config`].
    pub async fn create_topics_with_config(
        &self,
        topics: &[clients::TopicSpec<'_>],
    ) -> anyhow::Result<()> {
        clients::create_topics_with_config(&self.bootstrap_servers(), topics).await
    }

    /// See [`clients::produce`].
    pub async fn produce<I, R>(&self, topic: &str, records: I) -> anyhow::Result<Vec<(i32, i64)>>
    where
        I: IntoIterator<Item = R>,
        R: Into<Record>,
    {
        clients::produce(&self.bootstrap_servers(), topic, records).await
    }

    /// See [`clients::consume`].
    pub async fn consume(
        &self,
        topic: &str,
        max: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedMessage>> {
        clients::consume(&self.bootstrap_servers(), topic, max, timeout).await
    }

    /// See [`clients::consume_all`].
    pub async fn consume_all(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedMessage>> {
        clients::consume_all(&self.bootstrap_servers(), topic, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_prefixes_are_unique_and_legal() {
        let a = unique_topic_prefix("mod::my test");
        let b = unique_topic_prefix("mod::my test");
        assert_ne!(a, b);
        assert!(a.starts_with("levee-test.mod__my_test."));
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    }
}
