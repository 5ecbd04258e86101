//! The metrics of the repartition stage (re-keyed copies, docs/design.md):
//! events forwarded to the repartition topic, and how long a copy took
//! from its forwarded record (written right after its event was evaluated
//! on the input partition) to its evaluation: the stage's lag, in time.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Registry};

use super::counter;

pub const REPARTITION_FORWARDED_TOTAL: &str = "levee_repartition_forwarded_total";
pub const REPARTITION_DELAY_SECONDS: &str = "levee_repartition_delay_seconds";

struct Repartition {
    forwarded: IntCounterVec,
    delay: Histogram,
}

static REPARTITION: LazyLock<Repartition> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // fixed names and labels: checked by the tests
    let delay = Histogram::with_opts(
        HistogramOpts::new(
            REPARTITION_DELAY_SECONDS,
            "Time from an event forwarded to the repartition topic (right after its evaluation on its input partition) to the evaluation of its re-keyed copy.",
        )
        .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
    )
    .expect("a valid metric definition");
    let forwarded = counter(
        REPARTITION_FORWARDED_TOTAL,
        "Events forwarded to the repartition topic, by re-keyed copy (`purchase@approver_id`).",
        &["copy"],
    );
    Repartition { forwarded, delay }
});

/// Registers the families with levee's registry.
pub(super) fn register(registry: &Registry) {
    let r = &*REPARTITION;
    #[allow(clippy::expect_used)] // distinct names: checked by the tests
    {
        registry
            .register(Box::new(r.forwarded.clone()))
            .expect("metric names are unique");
        registry
            .register(Box::new(r.delay.clone()))
            .expect("metric names are unique");
    }
}

/// Starts the series of every copy of the rules at zero.
pub fn init_copies(graph: &levee_rules::RuleGraph) {
    for t in graph.event_types.iter().filter(|t| t.rekeyed.is_some()) {
        REPARTITION.forwarded.with_label_values(&[t.name.as_str()]);
    }
}

/// One event forwarded for the copy `copy`.
pub fn forwarded(copy: &str) {
    REPARTITION.forwarded.with_label_values(&[copy]).inc();
}

/// A copy evaluated `seconds` after its event's record was written.
pub fn copy_delay(seconds: f64) {
    REPARTITION.delay.observe(seconds.max(0.0));
}
