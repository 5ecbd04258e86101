//! The Kafka pipeline of `levee run`: one consumer thread, one tokio task
//! per assigned partition, one shared producer (at-least-once: a second one
//! for the changelog and profiles).
//!
//! The consumer thread polls the group consumer and hands each poll round's
//! messages, batched per partition, to its partition's task over a bounded
//! channel, so a partition's events are evaluated in order while partitions
//! run concurrently. Every `kafka.commit_interval`, and before partitions
//! are revoked or the service stops, it takes a *checkpoint*: a barrier
//! down every partition channel, answered once everything before it is
//! evaluated and (at-least-once) delivered; only then are the offsets
//! committed (at-least-once), or sent to the transaction that is then
//! committed (exactly-once). So a committed offset never runs ahead of its
//! output, and the changelog never holds the effect of an event whose
//! output is not delivered.
//!
//! | module | its one job |
//! |---|---|
//! | [`consume`] | the consumer thread's loop: poll, dispatch, rectifications, tick, checkpoints, shutdown |
//! | [`coordinator`] | the partition tasks of the assignment; rebalances; abandoning and rewinding |
//! | [`checkpoint`] | barriers and their answers; **where offsets are committed** |
//! | [`transaction`] | exactly-once: **where a transaction begins, commits or aborts** |
//! | [`people`] | people's files (一人一档): alerts copied per person, folded by the person's owner, read whole for `/v1/people` |
//! | [`pacing`] | a partition task's clock reads and scans for idle subjects |
//! | [`partition`] | one partition's task: restore, evaluate, answer barriers |
//! | [`records`] | the records of an event: alerts, verdicts, dead letters (the DLQ); closed alerts (`alerts.closed`) |
//! | [`repartition`] | re-keyed copies: forwarded to `<group>-repartition`, evaluated from it |
//! | [`intercept`] | `/v1/evaluate` through the stream: a request appended, its decision awaited |
//! | [`requests`] | requests appended by `/v1/evaluate`: their headers and decision records |
//! | [`shadow`] | shadow rules beside a partition's live ones: their alerts, the diff, warming up |
//! | [`changelog`] | **where state is written**: changelog keys, records, cuts after delivery |
//! | [`restore`] | reading a partition's state back on assignment |
//! | [`rectify`] | the rectification table and its reader |
//! | [`lifecycle`] | a partition's alerts from raised to archived: rectifications applied, closed alerts kept until archived |
//! | [`tables`] | the table topics, read to their end before evaluating, then followed |
//! | [`delivery`] | producing, counting deliveries; **where a record is resent** |
//! | [`clients`] | client configurations; librdkafka logs and client errors |
//! | [`work`] | what the consumer thread sends a partition task |
//! | [`error`] | [`error::PipelineError`] with its retry hint; [`error::report`], the one way errors are logged and counted |
//!
//! Words used throughout:
//! - *barrier*: a checkpoint's marker in a partition channel; its *answer*
//!   is the next offset to commit.
//! - *cut*: at-least-once, the changelog records of a partition's state at
//!   one point, written once the output before that point is acknowledged.
//! - *pending deliveries*: records produced and not yet acknowledged.
//! - *redo*: drop the uncommitted work (abort the transaction, stop the
//!   tasks, rewind to the last commit).

pub mod changelog;
pub mod checkpoint;
pub mod clients;
pub mod consume;
pub mod coordinator;
pub mod delivery;
pub mod error;
pub mod intercept;
pub mod lifecycle;
pub mod out;
pub mod pacing;
pub mod partition;
pub mod people;
pub mod records;
pub mod rectify;
pub mod repartition;
pub mod requests;
pub mod restore;
pub mod shadow;
pub mod tables;
pub mod transaction;
pub mod work;

use std::fmt;

pub use self::consume::consume;
pub use self::coordinator::{Coordinator, LeveeConsumer};

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// Whether it is `topic[partition]` (without building one).
    pub fn is(&self, topic: &str, partition: i32) -> bool {
        self.partition == partition && self.topic == topic
    }
}

impl fmt::Display for TopicPartition {
    /// `topic[partition]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}
