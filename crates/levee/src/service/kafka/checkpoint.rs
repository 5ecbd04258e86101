//! Checkpoints, and [`commit`]: the one place input offsets are committed.
//!
//! A checkpoint sends a barrier down each partition task's channel
//! ([`Checkpoint::start`]); a task answers once everything before the
//! barrier is evaluated and (at-least-once) its output and state are
//! acknowledged, with the next offset to commit. The consumer thread
//! gathers the answers between polls ([`Checkpoint::collect`], at-least-once:
//! the tasks and the consumer go on meanwhile) or waits for them
//! ([`Checkpoint::wait`]: exactly-once, before a revoke, at shutdown). Then
//! [`commit`] commits what they name: at-least-once with the group
//! consumer, exactly-once by sending the offsets to the open transaction and
//! committing it. So a committed offset never runs ahead of its output.

use std::collections::HashMap;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata,
};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::error::{report, PipelineError};
use super::transaction::{Ended, Transaction, Transactional};
use super::work::{send_blocking, BarrierReply, Work};
use super::TopicPartition;
use crate::service::metrics::KafkaErrorKind;

/// A checkpoint under way: each partition's answer to its barrier.
#[derive(Debug, Default)]
pub struct Checkpoint {
    waiting: Vec<(TopicPartition, oneshot::Receiver<BarrierReply>)>,
    answers: Vec<(TopicPartition, BarrierReply)>,
}

impl Checkpoint {
    /// Sends a barrier down each channel (from the consumer thread,
    /// waiting while a channel is full). A task that has stopped has
    /// nothing to commit and is left out.
    pub fn start(channels: Vec<(TopicPartition, mpsc::Sender<Work>)>, runtime: &Handle) -> Self {
        let mut checkpoint = Checkpoint::default();
        for (tp, tx) in channels {
            let (reply, answer) = oneshot::channel();
            if send_blocking(&tx, Work::Barrier(reply), runtime).is_ok() {
                checkpoint.waiting.push((tp, answer));
            }
        }
        checkpoint
    }

    /// Takes the answers there are; whether every partition has answered.
    pub fn collect(&mut self) -> bool {
        let mut still = Vec::new();
        for (tp, mut answer) in std::mem::take(&mut self.waiting) {
            match answer.try_recv() {
                Ok(r) => self.answers.push((tp, r)),
                Err(oneshot::error::TryRecvError::Empty) => still.push((tp, answer)),
                Err(oneshot::error::TryRecvError::Closed) => {
                    let stopped = Err(PipelineError::TaskStopped(tp.clone()));
                    self.answers.push((tp, stopped));
                }
            }
        }
        self.waiting = still;
        self.waiting.is_empty()
    }

    /// Waits for every answer (from the consumer thread).
    pub fn wait(&mut self, runtime: &Handle) {
        let waiting = std::mem::take(&mut self.waiting);
        let answers = runtime.block_on(async {
            let mut answers = Vec::with_capacity(waiting.len());
            for (tp, answer) in waiting {
                let r = answer
                    .await
                    .unwrap_or_else(|_| Err(PipelineError::TaskStopped(tp.clone())));
                answers.push((tp, r));
            }
            answers
        });
        self.answers.extend(answers);
    }

    /// What the answers ask to commit: the offsets that moved since
    /// `committed`, and the first failure.
    pub fn plan(self, committed: &Committed) -> CommitPlan {
        let mut plan = CommitPlan::default();
        for (tp, answer) in self.answers {
            match answer {
                Ok(Some(next)) if committed.0.get(&tp) != Some(&next) => {
                    plan.offsets.push((tp, next));
                }
                Ok(_) => {}
                Err(e) => {
                    plan.failure.get_or_insert(e.of_partition(&tp));
                }
            }
        }
        plan
    }
}

/// The offsets to commit after a checkpoint, or why not.
#[derive(Debug, Default)]
pub struct CommitPlan {
    pub offsets: Vec<(TopicPartition, i64)>,
    pub failure: Option<PipelineError>,
}

impl CommitPlan {
    fn list(&self) -> Result<TopicPartitionList, PipelineError> {
        let mut list = TopicPartitionList::new();
        for (tp, next) in &self.offsets {
            list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next))
                .map_err(|e| PipelineError::kafka("listing offsets", KafkaErrorKind::Other, e))?;
        }
        Ok(list)
    }
}

/// The offsets this instance committed (or sent to a committed
/// transaction), by partition.
#[derive(Debug, Default)]
pub struct Committed(HashMap<TopicPartition, i64>);

impl Committed {
    pub fn record(&mut self, offsets: Vec<(TopicPartition, i64)>) {
        self.0.extend(offsets);
    }

    pub fn forget(&mut self, tp: &TopicPartition) {
        self.0.remove(tp);
    }
}

/// The group consumer's part in a commit: the consumer in the service, a
/// fake in tests.
pub trait GroupConsumer {
    fn commit_offsets(&self, offsets: &TopicPartitionList) -> Result<(), KafkaError>;
    fn group_metadata(&self) -> Option<ConsumerGroupMetadata>;
}

impl<C: ConsumerContext> GroupConsumer for BaseConsumer<C> {
    fn commit_offsets(&self, offsets: &TopicPartitionList) -> Result<(), KafkaError> {
        self.commit(offsets, CommitMode::Sync)
    }

    fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        Consumer::group_metadata(self)
    }
}

/// Who commits.
pub enum Committer<'a> {
    /// At-least-once: the group consumer.
    Consumer(&'a dyn GroupConsumer),
    /// Exactly-once: the open transaction, with the consumer's group metadata.
    Transaction {
        consumer: &'a dyn GroupConsumer,
        transaction: &'a mut Transaction,
        producer: &'a dyn Transactional,
    },
}

/// What a commit did.
#[derive(Debug)]
pub enum Outcome {
    /// These offsets are committed now (perhaps none).
    Committed(Vec<(TopicPartition, i64)>),
    /// The transaction was aborted: redo every partition from its last commit.
    Redo,
}

/// Commits `plan`. `Err` stops the service: at-least-once, a partition
/// that failed (its task retries deliveries itself: a bug, or a partition
/// that cannot be restored); exactly-once, a fatal error. A failed
/// offset commit at-least-once is not fatal: the output is delivered, the
/// offsets get committed next time (or the messages are redelivered).
pub fn commit(plan: CommitPlan, committer: Committer<'_>) -> Result<Outcome, PipelineError> {
    let list = plan.list()?;
    match committer {
        Committer::Consumer(consumer) => {
            if let Some(e) = plan.failure {
                return Err(e);
            }
            if plan.offsets.is_empty() {
                return Ok(Outcome::Committed(Vec::new()));
            }
            match consumer.commit_offsets(&list) {
                Ok(()) => Ok(Outcome::Committed(plan.offsets)),
                Err(e) => {
                    report(
                        KafkaErrorKind::Commit,
                        &e,
                        "committing offsets failed; will retry",
                    );
                    Ok(Outcome::Committed(Vec::new()))
                }
            }
        }
        Committer::Transaction {
            consumer,
            transaction,
            producer,
        } => {
            let group = (list.count() > 0)
                .then(|| consumer.group_metadata())
                .flatten();
            match transaction.finish(producer, &list, group.as_ref(), plan.failure)? {
                Ended::NoneOpen => Ok(Outcome::Committed(Vec::new())),
                Ended::Committed => Ok(Outcome::Committed(plan.offsets)),
                Ended::Aborted(e) => {
                    report(
                        KafkaErrorKind::Transaction,
                        &e,
                        "transaction failed; aborting and re-reading from the last commit",
                    );
                    Ok(Outcome::Redo)
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
