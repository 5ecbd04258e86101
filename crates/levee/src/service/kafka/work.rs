//! What the consumer thread hands a partition task: [`Work`], in order, over
//! the task's bounded channel, so that a barrier comes after every message
//! polled before it.

use std::sync::Arc;

use levee_engine::rectify::Rectification;
use rdkafka::message::OwnedMessage;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::error::PipelineError;

/// One item of a partition task's channel.
#[derive(Debug)]
pub enum Work {
    /// Consecutive messages of the partition.
    Messages(Vec<OwnedMessage>),
    /// A checkpoint's barrier: answer once everything before is done.
    Barrier(oneshot::Sender<BarrierReply>),
    /// A rectification from `topics.rectification`.
    Rectify(Arc<Rectification>),
    /// Escalate what is due by now on the service's clock.
    Tick,
}

/// A task's answer to a barrier: the next offset to commit (`None`: no
/// message evaluated yet), or why its part of the checkpoint failed.
pub type BarrierReply = Result<Option<i64>, PipelineError>;

/// Sends `work` from outside the runtime (the consumer thread), waiting
/// while the channel is full; `Err` gives it back if the task has stopped.
pub fn send_blocking(tx: &mpsc::Sender<Work>, work: Work, runtime: &Handle) -> Result<(), Work> {
    match tx.try_send(work) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(work)) => {
            runtime.block_on(tx.send(work)).map_err(|e| e.0)
        }
        Err(mpsc::error::TrySendError::Closed(work)) => Err(work),
    }
}
