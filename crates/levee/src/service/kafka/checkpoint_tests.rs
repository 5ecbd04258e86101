//! Checkpoints on plain channels, and commits on fakes: no broker.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use super::super::error::Retry;
use super::super::transaction::fake::{kafka_error, FakeProducer};
use super::*;

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("events.a", p)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A partition task that answers its next barrier with `answer`.
fn answering(
    rt: &tokio::runtime::Runtime,
    answer: BarrierReply,
) -> (mpsc::Sender<Work>, tokio::sync::oneshot::Sender<()>) {
    let (tx, mut rx) = mpsc::channel(8);
    let (go, ready) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(async move {
        let _ = ready.await;
        while let Some(work) = rx.recv().await {
            if let Work::Barrier(reply) = work {
                let _ = reply.send(answer);
                return;
            }
        }
    });
    (tx, go)
}

#[test]
fn a_checkpoint_is_done_when_every_partition_has_answered() {
    let rt = runtime();
    let (tx0, go0) = answering(&rt, Ok(Some(10)));
    let (tx1, go1) = answering(&rt, Ok(Some(20)));
    let mut c = Checkpoint::start(vec![(tp(0), tx0), (tp(1), tx1)], rt.handle());
    assert!(!c.collect(), "no one answered yet");
    go0.send(()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(!c.collect(), "partition 1 has not answered");
    go1.send(()).unwrap();
    c.wait(rt.handle());
    assert!(c.collect());
    let mut plan = c.plan(&Committed::default());
    plan.offsets.sort();
    assert_eq!(plan.offsets, [(tp(0), 10), (tp(1), 20)]);
    assert!(plan.failure.is_none());
}

#[test]
fn a_stopped_task_is_left_out_and_a_lost_answer_fails() {
    let rt = runtime();
    // Stopped before the barrier: not part of the checkpoint.
    let (gone, rx) = mpsc::channel::<Work>(1);
    drop(rx);
    // Stopped after taking the barrier: its answer is lost.
    let (dropping, mut rx) = mpsc::channel::<Work>(1);
    rt.spawn(async move {
        let _ = rx.recv().await;
    });
    let mut c = Checkpoint::start(vec![(tp(0), gone), (tp(1), dropping)], rt.handle());
    c.wait(rt.handle());
    let plan = c.plan(&Committed::default());
    assert!(plan.offsets.is_empty());
    let e = plan.failure.unwrap();
    assert_eq!(
        e.to_string(),
        "partition events.a[1]: the task of partition events.a[1] has stopped"
    );
}

#[test]
fn only_offsets_that_moved_are_committed() {
    let mut committed = Committed::default();
    committed.record(vec![(tp(0), 5)]);
    let c = Checkpoint {
        waiting: Vec::new(),
        answers: vec![
            (tp(0), Ok(Some(5))),
            (tp(1), Ok(Some(7))),
            (tp(2), Ok(None)),
            (
                tp(3),
                Err(PipelineError::Misconfigured("no changelog".into())),
            ),
        ],
    };
    let plan = c.plan(&committed);
    assert_eq!(plan.offsets, [(tp(1), 7)]);
    assert_eq!(
        plan.failure.unwrap().to_string(),
        "partition events.a[3]: no changelog"
    );
}

/// A group consumer that records commits.
#[derive(Default)]
struct FakeConsumer {
    commits: Mutex<Vec<usize>>,
    fail: Mutex<Option<KafkaError>>,
}

impl GroupConsumer for FakeConsumer {
    fn commit_offsets(&self, offsets: &TopicPartitionList) -> Result<(), KafkaError> {
        if let Some(e) = self.fail.lock().unwrap().take() {
            return Err(e);
        }
        self.commits.lock().unwrap().push(offsets.count());
        Ok(())
    }

    fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        None
    }
}

fn plan(offsets: &[(i32, i64)], failure: Option<PipelineError>) -> CommitPlan {
    CommitPlan {
        offsets: offsets.iter().map(|(p, o)| (tp(*p), *o)).collect(),
        failure,
    }
}

#[test]
fn at_least_once_the_consumer_commits() {
    let consumer = FakeConsumer::default();
    let out = commit(
        plan(&[(0, 3), (1, 4)], None),
        Committer::Consumer(&consumer),
    )
    .unwrap();
    assert!(matches!(out, Outcome::Committed(o) if o.len() == 2));
    assert_eq!(*consumer.commits.lock().unwrap(), [2]);

    // Nothing moved: no call.
    let out = commit(plan(&[], None), Committer::Consumer(&consumer)).unwrap();
    assert!(matches!(out, Outcome::Committed(o) if o.is_empty()));
    assert_eq!(consumer.commits.lock().unwrap().len(), 1);

    // A failed commit is retried at the next checkpoint: nothing recorded.
    *consumer.fail.lock().unwrap() = Some(KafkaError::Canceled);
    let out = commit(plan(&[(0, 9)], None), Committer::Consumer(&consumer)).unwrap();
    assert!(matches!(out, Outcome::Committed(o) if o.is_empty()));

    // A failed partition stops the service.
    let stopped = PipelineError::TaskStopped(tp(0));
    assert!(commit(
        plan(&[(1, 9)], Some(stopped)),
        Committer::Consumer(&consumer)
    )
    .is_err());
}

#[test]
fn exactly_once_the_transaction_commits_or_is_redone() {
    let consumer = FakeConsumer::default();
    let producer = FakeProducer::default();
    let mut transaction = Transaction::default();
    let with = |plan: CommitPlan, transaction: &mut Transaction| {
        commit(
            plan,
            Committer::Transaction {
                consumer: &consumer,
                transaction,
                producer: &producer,
            },
        )
    };
    // None open: nothing was handed out.
    let out = with(plan(&[(0, 3)], None), &mut transaction).unwrap();
    assert!(matches!(out, Outcome::Committed(o) if o.is_empty()));

    transaction.ensure_open(&producer).unwrap();
    let out = with(plan(&[(0, 3)], None), &mut transaction).unwrap();
    assert!(matches!(out, Outcome::Committed(o) if o == [(tp(0), 3)]));

    transaction.ensure_open(&producer).unwrap();
    *producer.commit_fails.lock().unwrap() = Some(kafka_error(Retry::Retriable));
    let out = with(plan(&[(0, 5)], None), &mut transaction).unwrap();
    assert!(matches!(out, Outcome::Redo));
    assert_eq!(
        producer.calls(),
        ["begin", "commit", "begin", "commit", "abort"]
    );
    assert!(
        consumer.commits.lock().unwrap().is_empty(),
        "never the consumer"
    );
}
