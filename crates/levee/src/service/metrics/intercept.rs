//! The metrics of interception on the stream's path (`/v1/evaluate`):
//! how each request was decided and how long the stream took.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Registry};

use super::counter;

pub const INTERCEPTIONS_TOTAL: &str = "levee_interceptions_total";
pub const INTERCEPTION_SECONDS: &str = "levee_interception_seconds";

/// `path`: `stream` (appended, decided by the partition's owner) or
/// `local` (a type that keeps no state). `outcome`: `decided`, `rejected`
/// (the stream refused the request: late, say), `timeout` (no decision
/// within `http.decision_timeout`), `failed` (not appended), `not_ready`,
/// `unrecorded` (a local decision not written to `decisions`).
pub const OUTCOMES: &[(&str, &str)] = &[
    ("stream", "decided"),
    ("stream", "rejected"),
    ("stream", "timeout"),
    ("stream", "failed"),
    ("stream", "not_ready"),
    ("local", "decided"),
    ("local", "unrecorded"),
];

struct Intercept {
    total: IntCounterVec,
    seconds: HistogramVec,
}

static INTERCEPT: LazyLock<Intercept> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // fixed names and labels: checked by the tests
    let seconds = HistogramVec::new(
        HistogramOpts::new(
            INTERCEPTION_SECONDS,
            "Time from a request appended to its input topic to the stream's decision read back (path=stream), or to the local decision (path=local).",
        )
        .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        &["path"],
    )
    .expect("a valid metric definition");
    let total = counter(
        INTERCEPTIONS_TOTAL,
        "Requests to /v1/evaluate by how they were decided: path (stream, local) and outcome.",
        &["path", "outcome"],
    );
    for (path, outcome) in OUTCOMES {
        total.with_label_values(&[path, outcome]);
        seconds.with_label_values(&[path]);
    }
    Intercept { total, seconds }
});

/// Registers the families with levee's registry.
pub(super) fn register(registry: &Registry) {
    let i = &*INTERCEPT;
    #[allow(clippy::expect_used)] // distinct names: checked by the tests
    {
        registry
            .register(Box::new(i.total.clone()))
            .expect("metric names are unique");
        registry
            .register(Box::new(i.seconds.clone()))
            .expect("metric names are unique");
    }
}

/// One request decided (or not) on `path` with `outcome` (see [`OUTCOMES`]).
pub fn interception(path: &'static str, outcome: &'static str) {
    INTERCEPT.total.with_label_values(&[path, outcome]).inc();
}

/// How long a request's decision took on `path`.
pub fn interception_took(path: &'static str, took: Duration) {
    INTERCEPT
        .seconds
        .with_label_values(&[path])
        .observe(took.as_secs_f64());
}
