//! The Kafka pipeline of `levee run`.

pub mod changelog;
pub mod checkpoint;
pub mod clients;
pub mod delivery;
pub mod error;
pub mod partition;
pub mod pipeline;
pub mod records;
pub mod rectify;
pub mod restore;
pub mod state;
pub mod transaction;
pub mod work;

use std::fmt;

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
