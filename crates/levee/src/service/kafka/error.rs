//! What goes wrong in the pipeline, and what to do about it.
//!
//! Every error that crosses a module or a channel is a [`PipelineError`],
//! and its [`Retry`] hint says what to do: try again, stop, or set the input
//! aside. Kafka errors are classified once, where the call returns them.
//!
//! An error *event* (a call that failed and is retried, a record the broker
//! did not take) goes through [`report`], the one place that counts
//! `levee_kafka_errors_total{kind}` and logs: a warning at most once per
//! [`QUIET`] per kind, naming how many were not logged since (the others at
//! debug), so a broker outage does not print one warning per record.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::error::KafkaError;
use tracing::{debug, warn};

use super::TopicPartition;
use crate::service::metrics::{self, KafkaErrorKind};

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again: the call, or the work since the last commit.
    Retriable,
    /// Stop the service: retrying cannot help (a fenced or broken
    /// transactional producer, a missing topic).
    Fatal,
    /// The input is unusable: set it aside (the DLQ) and go on.
    BadInput,
}

/// An error of the Kafka pipeline.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    /// A Kafka call failed.
    #[error("{doing}: {error}")]
    Kafka {
        /// What levee was doing ("committing the transaction").
        doing: String,
        kind: KafkaErrorKind,
        retry: Retry,
        error: KafkaError,
    },
    /// A topic levee needs is missing or has too few partitions: the
    /// operator's to fix.
    #[error("{0}")]
    Misconfigured(String),
    /// Something levee waits for is not there yet (the metadata of a topic
    /// just created).
    #[error("{0}")]
    NotYet(String),
    /// A partition task ended before it answered (stopped, or it panicked).
    #[error("the task of partition {0} has stopped")]
    TaskStopped(TopicPartition),
    /// A partition's part of a checkpoint failed.
    #[error("partition {partition}: {error}")]
    Partition {
        partition: TopicPartition,
        error: Box<PipelineError>,
    },
    /// Input levee cannot use.
    #[error("{0}")]
    BadInput(String),
}

impl PipelineError {
    /// A failed Kafka call: fatal if librdkafka says the client is no
    /// longer usable, else retriable.
    pub fn kafka(doing: impl Into<String>, kind: KafkaErrorKind, error: KafkaError) -> Self {
        let retry = match &error {
            KafkaError::Transaction(e) if e.is_fatal() => Retry::Fatal,
            _ => Retry::Retriable,
        };
        PipelineError::Kafka {
            doing: doing.into(),
            kind,
            retry,
            error,
        }
    }

    /// What to do about it.
    pub fn retry(&self) -> Retry {
        match self {
            PipelineError::Kafka { retry, .. } => *retry,
            PipelineError::Misconfigured(_) => Retry::Fatal,
            PipelineError::NotYet(_) | PipelineError::TaskStopped(_) => Retry::Retriable,
            PipelineError::Partition { error, .. } => error.retry(),
            PipelineError::BadInput(_) => Retry::BadInput,
        }
    }

    /// The `kind` label it counts under.
    pub fn kind(&self) -> KafkaErrorKind {
        match self {
            PipelineError::Kafka { kind, .. } => *kind,
            PipelineError::Partition { error, .. } => error.kind(),
            _ => KafkaErrorKind::Other,
        }
    }

    /// The same error, as the answer of `partition`.
    pub fn of_partition(self, partition: &TopicPartition) -> Self {
        PipelineError::Partition {
            partition: partition.clone(),
            error: Box::new(self),
        }
    }
}

/// The least time between two warnings of one kind.
pub const QUIET: Duration = Duration::from_secs(10);

/// Per kind: the second of its last warning, and the events since.
static LAST_WARNED: [AtomicU64; KafkaErrorKind::ALL.len()] =
    [const { AtomicU64::new(0) }; KafkaErrorKind::ALL.len()];
static UNLOGGED: [AtomicU64; KafkaErrorKind::ALL.len()] =
    [const { AtomicU64::new(0) }; KafkaErrorKind::ALL.len()];

/// One error event: counted, and logged as a warning unless one of the same
/// kind was logged less than [`QUIET`] ago (then at debug). `what` says what
/// failed and what happens next ("committing offsets failed; will retry").
pub fn report(kind: KafkaErrorKind, error: &dyn fmt::Display, what: &str) {
    metrics::kafka_error(kind);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    match admit(kind, now) {
        Some(unlogged) => {
            warn!(target: "levee::kafka", %error, kind = kind.as_str(), unlogged, "{what}");
        }
        None => debug!(target: "levee::kafka", %error, kind = kind.as_str(), "{what}"),
    }
}

/// Whether an event of `kind` at second `now` gets a warning; if so, how
/// many events of the kind were not warned about since the last warning.
fn admit(kind: KafkaErrorKind, now: u64) -> Option<u64> {
    let i = slot(kind);
    let last = LAST_WARNED[i].load(Ordering::Relaxed);
    let due = last == 0 || now.saturating_sub(last) >= QUIET.as_secs();
    if due
        && LAST_WARNED[i]
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        Some(UNLOGGED[i].swap(0, Ordering::Relaxed))
    } else {
        UNLOGGED[i].fetch_add(1, Ordering::Relaxed);
        None
    }
}

fn slot(kind: KafkaErrorKind) -> usize {
    KafkaErrorKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp() -> TopicPartition {
        TopicPartition::new("events.a", 3)
    }

    #[test]
    fn hints_follow_the_error() {
        let timeout = PipelineError::kafka(
            "committing offsets",
            KafkaErrorKind::Commit,
            KafkaError::Canceled,
        );
        assert_eq!(timeout.retry(), Retry::Retriable);
        assert_eq!(timeout.kind(), KafkaErrorKind::Commit);
        assert_eq!(
            PipelineError::Misconfigured("no topic".into()).retry(),
            Retry::Fatal
        );
        assert_eq!(
            PipelineError::BadInput("not json".into()).retry(),
            Retry::BadInput
        );
        let wrapped = PipelineError::Misconfigured("too few partitions".into()).of_partition(&tp());
        assert_eq!(wrapped.retry(), Retry::Fatal);
        assert_eq!(
            wrapped.to_string(),
            "partition events.a[3]: too few partitions"
        );
        assert_eq!(
            timeout.of_partition(&tp()).kind(),
            KafkaErrorKind::Commit,
            "the kind of what failed inside"
        );
    }

    #[test]
    fn a_storm_of_one_kind_warns_once_per_quiet_period() {
        // Other tests use the other kinds; this one owns Auth.
        let kind = KafkaErrorKind::Auth;
        let t0 = 1_000_000;
        assert_eq!(admit(kind, t0), Some(0));
        for s in 0..1000 {
            assert_eq!(admit(kind, t0 + s / 200), None, "event {s}");
        }
        // The next warning says how many were not warned about.
        assert_eq!(admit(kind, t0 + QUIET.as_secs()), Some(1000));
        assert_eq!(admit(kind, t0 + QUIET.as_secs() + 1), None);
        // Other kinds are not held back by it.
        assert!(admit(KafkaErrorKind::AllBrokersDown, t0 + 1).is_some());
    }
}
