//! The consumer thread: subscribe, then poll, hand the messages to their
//! partitions' tasks, pass on rectifications and the escalation tick, and
//! take checkpoints; on stop, a last checkpoint, then leave the group.
//!
//! At-least-once, nothing waits for a checkpoint but its commit: the thread
//! keeps polling and dispatching while the answers come (one checkpoint
//! under way at a time). Exactly-once, it waits (the transaction must hold
//! exactly the output before the barriers).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use tracing::{debug, info, warn};

use super::coordinator::{Coordinator, LeveeConsumer};
use super::error::{report, PipelineError, Retry};
use super::rectify::RectificationReader;
use super::work::Work;
use crate::service::metrics::KafkaErrorKind;
use crate::service::since_start;

/// Messages the consumer thread takes from one poll round before handing
/// them to their tasks (one channel send and wake-up per partition batch).
/// Spread over 16 partitions, 256 made batches of about 16 messages: a
/// task's queue of 8 batches then held about 128, the consumer thread
/// waited on one full queue half of the time while other tasks ran dry,
/// and levee ran at 0.7x a passthrough with a fifth of the CPU idle. With
/// 2048, about 128 per batch (measured in BENCHMARKS.md, section 5).
const POLL_BATCH: usize = 2048;
/// Rectifications taken per round at most.
const RECTIFICATIONS_PER_ROUND: usize = 256;

/// Runs the consumer thread until `stop` (or a fatal error); commits every
/// `interval`. Returns once the consumer is closed.
pub fn consume(
    consumer: LeveeConsumer,
    interval: Duration,
    stop: &AtomicBool,
) -> Result<(), PipelineError> {
    let coordinator = Arc::clone(consumer.context());
    let settings = coordinator.settings();
    let topics: Vec<&str> = settings.topics.inputs.iter().map(String::as_str).collect();
    // Rectifications first: a starting instance knows those already made
    // before it evaluates (and escalates) anything.
    let mut rectifications = RectificationReader::new(settings)?;
    let known =
        rectifications.catch_up(coordinator.rectifications(), Duration::from_secs(30), stop);
    info!(
        rectifications = known,
        since_start_ms = since_start(),
        "rectifications read"
    );
    let tick_every = settings.state.tick_interval.as_duration();
    let mut last_tick = Instant::now();
    consumer.subscribe(&topics).map_err(|e| {
        PipelineError::kafka(
            "subscribing to the input topics",
            KafkaErrorKind::Consume,
            e,
        )
    })?;
    debug!(since_start_ms = since_start(), "start-up: subscribed");
    let mut first_message = true;
    let mut last_checkpoint = Instant::now();
    let result = loop {
        if stop.load(Ordering::Acquire) {
            break Ok(());
        }
        if let Some(e) = coordinator
            .take_fatal()
            .or_else(super::delivery::take_broken)
        {
            break Err(e);
        }
        if let Err(e) = poll_round(&consumer, &coordinator, &mut first_message) {
            break Err(e);
        }
        if let Err(e) = pass_rectifications(&mut rectifications, &coordinator) {
            break Err(e);
        }
        if !tick_every.is_zero() && last_tick.elapsed() >= tick_every {
            last_tick = Instant::now();
            if let Err(e) = coordinator.broadcast(|| Work::Tick) {
                break Err(e);
            }
        }
        let due = last_checkpoint.elapsed() >= interval;
        if coordinator.exactly_once() {
            if due {
                if let Err(e) = coordinator.checkpoint(&consumer, None) {
                    break Err(e);
                }
                last_checkpoint = Instant::now();
            }
        } else {
            match coordinator.checkpoint_step(&consumer, due) {
                Ok(true) => last_checkpoint = Instant::now(),
                Ok(false) => {}
                Err(e) => break Err(e),
            }
        }
    };
    if result.is_ok() {
        coordinator.checkpoint(&consumer, None)?;
        info!("in-flight work delivered and committed; leaving the group");
    }
    // Closing the consumer revokes the partitions (one more checkpoint,
    // nothing left to do) and leaves the group.
    drop(consumer);
    result?;
    match coordinator.take_fatal() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One poll, and what else is fetched already, handed over in one go.
fn poll_round(
    consumer: &LeveeConsumer,
    coordinator: &Coordinator,
    first_message: &mut bool,
) -> Result<(), PipelineError> {
    // A checkpoint under way is looked at after every poll.
    let wait = if coordinator.checkpoint_under_way() {
        Duration::from_millis(5)
    } else {
        Duration::from_millis(100)
    };
    match consumer.poll(wait) {
        None => Ok(()),
        Some(Ok(m)) => {
            if *first_message {
                *first_message = false;
                debug!(
                    since_start_ms = since_start(),
                    "start-up: first message polled"
                );
            }
            coordinator.hold(m.detach());
            for _ in 1..POLL_BATCH {
                match consumer.poll(Duration::ZERO) {
                    Some(Ok(m)) => coordinator.hold(m.detach()),
                    Some(Err(e)) => {
                        report(KafkaErrorKind::Consume, &e, "consuming failed; retrying");
                        break;
                    }
                    None => break,
                }
            }
            coordinator.flush()
        }
        Some(Err(e)) => {
            // librdkafka reconnects by itself.
            report(KafkaErrorKind::Consume, &e, "consuming failed; retrying");
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        }
    }
}

/// Hands the rectifications read since the last round to every task.
fn pass_rectifications(
    reader: &mut RectificationReader,
    coordinator: &Coordinator,
) -> Result<(), PipelineError> {
    for _ in 0..RECTIFICATIONS_PER_ROUND {
        match reader.poll(Duration::ZERO) {
            None => break,
            Some(Ok(r)) => coordinator.rectification(r)?,
            Some(Err(e)) if e.retry() == Retry::BadInput => {
                warn!("bad rectification skipped: {e}");
            }
            Some(Err(e)) => return Err(e),
        }
    }
    Ok(())
}
