//! What every phase of the end-to-end bench shares: the binary, the
//! partition count, waits, and small helpers.

use std::path::{Path, PathBuf};

use levee_testkit::KafkaBroker;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) const LEVEE: &str = env!("CARGO_BIN_EXE_levee");
pub(crate) const PARTITIONS: i32 = 4;
pub(crate) const WAIT: Duration = Duration::from_secs(240);

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(crate) fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

pub(crate) fn percentile(sorted: &[i64], p: f64) -> i64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// What every phase over the broker shares.
pub(crate) struct Bench {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) broker: KafkaBroker,
    pub(crate) broker_pid: u32,
    pub(crate) dir: tempfile::TempDir,
    /// The input topics, produced once, read by every throughput run.
    pub(crate) inputs: Vec<String>,
    /// Events in the input.
    pub(crate) total: i64,
    pub(crate) input_mib: f64,
}

impl Bench {
    /// A bench for the latency phases alone, on `broker` (they make
    /// their own inputs).
    pub(crate) fn for_latency(
        rt: tokio::runtime::Runtime,
        broker: KafkaBroker,
        dir: tempfile::TempDir,
        total: i64,
    ) -> Bench {
        Bench {
            rt,
            broker_pid: broker.pid().unwrap(),
            broker,
            dir,
            inputs: Vec::new(),
            total,
            input_mib: 0.0,
        }
    }

    /// The same bench on a broker of its own, started now, for the
    /// latency phases.
    pub(crate) fn on_fresh_broker(self) -> Bench {
        let Bench {
            rt,
            broker,
            dir,
            total,
            ..
        } = self;
        drop(broker);
        Bench::for_latency(rt, KafkaBroker::start().unwrap(), dir, total)
    }
}
