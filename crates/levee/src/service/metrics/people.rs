//! The metrics of the people stage (people's files, docs/people.md): how
//! long a person copy took from being written (right after its alert) to
//! being folded into its file, the files written to `profiles.people`,
//! and the records of the people topic that could not be folded.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};

pub const PEOPLE_DELAY_SECONDS: &str = "levee_people_delay_seconds";
pub const PEOPLE_FILES_WRITTEN_TOTAL: &str = "levee_people_files_written_total";
pub const PEOPLE_COPIES_SKIPPED_TOTAL: &str = "levee_people_copies_skipped_total";
pub const PEOPLE_LAG: &str = "levee_people_lag";

struct People {
    delay: Histogram,
    written: IntCounter,
    skipped: IntCounter,
    lag: IntGauge,
}

static PEOPLE: LazyLock<People> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // fixed names: checked by the tests
    People {
        delay: Histogram::with_opts(
            HistogramOpts::new(
                PEOPLE_DELAY_SECONDS,
                "Time from a person copy written to the people topic (right after its alert) to its fold into the person's file.",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
        )
        .expect("a valid metric definition"),
        written: IntCounter::with_opts(Opts::new(
            PEOPLE_FILES_WRITTEN_TOTAL,
            "People's files written to profiles.people.",
        ))
        .expect("a valid metric definition"),
        skipped: IntCounter::with_opts(Opts::new(
            PEOPLE_COPIES_SKIPPED_TOTAL,
            "Records of the people topic that could not be folded into a file (not written by levee, or unreadable).",
        ))
        .expect("a valid metric definition"),
        lag: IntGauge::with_opts(Opts::new(
            PEOPLE_LAG,
            "Records of the people topic this instance's people stage has still to fold, over the partitions it is assigned (its group commits no offsets: this is its lag).",
        ))
        .expect("a valid metric definition"),
    }
});

/// Registers the families with levee's registry.
pub(super) fn register(registry: &Registry) {
    let p = &*PEOPLE;
    #[allow(clippy::expect_used)] // distinct names: checked by the tests
    {
        registry
            .register(Box::new(p.delay.clone()))
            .expect("metric names are unique");
        registry
            .register(Box::new(p.written.clone()))
            .expect("metric names are unique");
        registry
            .register(Box::new(p.skipped.clone()))
            .expect("metric names are unique");
        registry
            .register(Box::new(p.lag.clone()))
            .expect("metric names are unique");
    }
}

/// A copy folded `seconds` after it was written.
pub fn people_delay(seconds: f64) {
    PEOPLE.delay.observe(seconds.max(0.0));
}

/// A file written.
pub fn people_file_written() {
    PEOPLE.written.inc();
}

/// A record of the people topic skipped.
pub fn people_copy_skipped() {
    PEOPLE.skipped.inc();
}

/// Records the stage has still to fold.
pub fn people_lag(records: i64) {
    PEOPLE.lag.set(records.max(0));
}
