//! The harness: generates inputs, runs each under `catch_unwind` with a
//! time check and a watchdog for hangs, keeps inputs that show new
//! behaviour, writes every crash to a file, and counts what it saw.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use crate::rng::{fnv, Rng};

/// What one input did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// It got deep: decoded (or compiled) and reached evaluation.
    pub deep: bool,
    /// A coarse class for the report (`ok`, or why it stopped short).
    pub class: &'static str,
    /// A hash of the behaviour (what fired, which error): an input with a
    /// new one is kept for further mutation.
    pub signature: u64,
}

impl Outcome {
    pub fn deep(signature: u64) -> Outcome {
        Outcome {
            deep: true,
            class: "ok",
            signature,
        }
    }

    pub fn shallow(class: &'static str, signature: u64) -> Outcome {
        Outcome {
            deep: false,
            class,
            signature,
        }
    }
}

/// A fuzz target: a generator of inputs and the code under test.
pub trait Target {
    fn name(&self) -> &'static str;
    /// Writes the next input into `out` (empty on entry).
    fn generate(&mut self, rng: &mut Rng, out: &mut Vec<u8>);
    /// Runs one input. A panic is a finding.
    fn run(&mut self, input: &[u8]) -> Outcome;
    /// The input just run showed new behaviour: keep it to mutate.
    fn keep(&mut self) {}
    /// Rebuilds what a panic may have left broken (and bounds memory).
    fn reset(&mut self);
    /// Work the code under test does now and then rather than per input
    /// (letting time pass, checkpoints), run every 1024 inputs under
    /// `catch_unwind` but not timed as an input.
    fn housekeeping(&mut self) {}
    /// The largest input it is given (bytes).
    fn max_input(&self) -> usize {
        1 << 20
    }
    /// How long one input may take before it counts as a hang.
    fn hang_limit(&self) -> Duration {
        Duration::from_secs(2)
    }
    /// Whether each input is written to disk before it runs, so that one
    /// that kills the process (a stack overflow aborts) is kept: worth it
    /// only for slow targets.
    fn persist_current(&self) -> bool {
        false
    }
}

/// How long and how to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// Stop after this many inputs.
    pub inputs: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Where crashing inputs are written.
    pub crash_dir: PathBuf,
    /// Stop with a finding when the resident set grows past this (MiB).
    pub max_rss_mib: u64,
    /// Print a progress line this often.
    pub progress: Option<Duration>,
    /// Stop at the first crash.
    pub stop_on_crash: bool,
}

/// A distinct crash: where it panicked, the message, how often.
#[derive(Debug, Clone)]
pub struct Crash {
    pub location: String,
    pub message: String,
    /// The first input that hit it, as written to disk.
    pub file: Option<PathBuf>,
    pub input: Vec<u8>,
    /// Index of the first input (with the seed, it reproduces).
    pub index: u64,
    pub count: u64,
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub target: String,
    pub seed: u64,
    pub inputs: u64,
    pub elapsed: Duration,
    pub deep: u64,
    pub crashes: Vec<Crash>,
    /// Inputs over the target's time limit (each also in `crashes`).
    pub hangs: u64,
    pub slowest: Duration,
    pub slowest_len: usize,
    pub signatures: usize,
    /// Inputs by outcome class.
    pub classes: BTreeMap<&'static str, u64>,
    /// Peak resident set (KiB), from the kernel, for the whole process.
    pub peak_rss_kib: u64,
    /// Set when the memory bound was crossed.
    pub memory_exceeded: bool,
}

impl Report {
    pub fn depth(&self) -> f64 {
        if self.inputs == 0 {
            0.0
        } else {
            self.deep as f64 / self.inputs as f64
        }
    }

    pub fn rate(&self) -> f64 {
        self.inputs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Whether it found nothing wrong.
    pub fn clean(&self) -> bool {
        self.crashes.is_empty() && !self.memory_exceeded
    }
}

thread_local! {
    static IN_FUZZ: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// Routes panics of the code under test to the harness (quietly); other
/// panics still reach the previous hook.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_FUZZ.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                LAST_PANIC.with(|p| *p.borrow_mut() = Some((location, message)));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs one input under `catch_unwind`: the outcome, or the panic's
/// location and message.
pub fn run_one(target: &mut dyn Target, input: &[u8]) -> Result<Outcome, (String, String)> {
    install_hook();
    IN_FUZZ.with(|f| f.set(true));
    let r = panic::catch_unwind(AssertUnwindSafe(|| target.run(input)));
    IN_FUZZ.with(|f| f.set(false));
    r.map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| ("?".to_owned(), "a panic".to_owned()))
    })
}

/// The watchdog's view of the input in flight.
struct Watch {
    /// When the input started (ns since `base`), 0 between inputs.
    started: AtomicU64,
    input: Mutex<Vec<u8>>,
    done: AtomicBool,
    base: Instant,
}

/// Writes a finding's input and a note beside it; the file's path.
fn write_finding(
    dir: &Path,
    target: &str,
    what: &str,
    input: &[u8],
    note: &str,
) -> Option<PathBuf> {
    fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{target}-{what}-{:016x}.bin", fnv(input)));
    fs::write(&path, input).ok()?;
    fs::write(path.with_extension("txt"), note).ok()?;
    Some(path)
}

/// Starts the watchdog: an input that runs past `limit` is written to
/// the crash directory and the process exits (a hang cannot be unwound).
fn watchdog(watch: Arc<Watch>, limit: Duration, dir: PathBuf, target: &'static str, seed: u64) {
    std::thread::spawn(move || {
        while !watch.done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            let started = watch.started.load(Ordering::Relaxed);
            if started == 0 {
                continue;
            }
            let now = watch.base.elapsed().as_nanos() as u64;
            if now.saturating_sub(started) > limit.as_nanos() as u64 * 4 {
                let input = watch.input.lock().map(|i| i.clone()).unwrap_or_default();
                let note = format!(
                    "target {target}, seed {seed}: an input still running after {:?}\n",
                    limit * 4
                );
                let path = write_finding(&dir, target, "hang", &input, &note);
                eprintln!(
                    "levee-fuzz: {target}: HANG: an input still runs after {:?}; kept in {}",
                    limit * 4,
                    path.map_or_else(
                        || "(could not write)".to_owned(),
                        |p| p.display().to_string()
                    )
                );
                std::process::exit(3);
            }
        }
    });
}

/// The resident set and its peak (KiB), from /proc (0 where there is none).
pub fn rss_kib() -> (u64, u64) {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Runs a target as `config` says.
pub fn run(target: &mut dyn Target, config: &Config) -> Report {
    install_hook();
    let name = target.name();
    let mut rng = Rng::new(config.seed ^ fnv(name.as_bytes()));
    let mut report = Report {
        target: name.to_owned(),
        seed: config.seed,
        ..Report::default()
    };
    let current = config.crash_dir.join(format!("{name}.current"));
    if let Ok(left) = fs::read(&current) {
        // The previous run died on this input without unwinding.
        let note = format!("target {name}: the process died on this input in an earlier run (an abort: stack overflow?)\n");
        let file = write_finding(&config.crash_dir, name, "abort", &left, &note);
        let _ = fs::remove_file(&current);
        report.crashes.push(Crash {
            location: "process abort".to_owned(),
            message: "the process died on this input in an earlier run".to_owned(),
            file,
            input: left,
            index: 0,
            count: 1,
        });
    }
    let persist = target.persist_current();
    if persist {
        let _ = fs::create_dir_all(&config.crash_dir);
    }
    let limit = target.hang_limit();
    let watch = Arc::new(Watch {
        started: AtomicU64::new(0),
        input: Mutex::new(Vec::new()),
        done: AtomicBool::new(false),
        base: Instant::now(),
    });
    watchdog(
        watch.clone(),
        limit,
        config.crash_dir.clone(),
        name,
        config.seed,
    );
    let mut seen: HashSet<u64> = HashSet::new();
    let mut by_location: BTreeMap<String, usize> = BTreeMap::new();
    let mut buf = Vec::new();
    let start = Instant::now();
    let mut last_progress = start;
    let max_input = target.max_input();
    loop {
        if config.inputs.is_some_and(|n| report.inputs >= n)
            || config.duration.is_some_and(|d| start.elapsed() >= d)
            || (config.stop_on_crash && !report.crashes.is_empty())
        {
            break;
        }
        buf.clear();
        target.generate(&mut rng, &mut buf);
        buf.truncate(max_input);
        if let Ok(mut slot) = watch.input.lock() {
            slot.clear();
            slot.extend_from_slice(&buf);
        }
        if persist {
            let _ = fs::write(&current, &buf);
        }
        let t0 = Instant::now();
        watch.started.store(
            watch.base.elapsed().as_nanos().max(1) as u64,
            Ordering::Relaxed,
        );
        let result = run_one(target, &buf);
        watch.started.store(0, Ordering::Relaxed);
        let dt = t0.elapsed();
        let index = report.inputs;
        report.inputs += 1;
        if dt > report.slowest {
            report.slowest = dt;
            report.slowest_len = buf.len();
        }
        let mut finding = |location: String, message: String, what: &str, report: &mut Report| {
            if let Some(&i) = by_location.get(&location) {
                report.crashes[i].count += 1;
                return;
            }
            let note = format!(
                "target {name}, seed {}, input {index}\n{what} at {location}\n{message}\n",
                config.seed
            );
            let file = write_finding(&config.crash_dir, name, what, &buf, &note);
            by_location.insert(location.clone(), report.crashes.len());
            report.crashes.push(Crash {
                location,
                message,
                file,
                input: buf.clone(),
                index,
                count: 1,
            });
        };
        match result {
            Ok(outcome) => {
                if outcome.deep {
                    report.deep += 1;
                }
                *report.classes.entry(outcome.class).or_default() += 1;
                if seen.insert(outcome.signature) {
                    target.keep();
                }
                if dt > limit {
                    report.hangs += 1;
                    let message = format!("took {dt:?}, over the limit of {limit:?}");
                    finding(
                        format!("slow input ({})", outcome.class),
                        message,
                        "slow",
                        &mut report,
                    );
                }
            }
            Err((location, message)) => {
                *report.classes.entry("panic").or_default() += 1;
                finding(location, message, "crash", &mut report);
                target.reset();
            }
        }
        if report.inputs.is_multiple_of(1024) {
            // Watched as an input is: a hang here is kept with the input
            // before it.
            watch.started.store(
                watch.base.elapsed().as_nanos().max(1) as u64,
                Ordering::Relaxed,
            );
            IN_FUZZ.with(|f| f.set(true));
            let r = panic::catch_unwind(AssertUnwindSafe(|| target.housekeeping()));
            IN_FUZZ.with(|f| f.set(false));
            watch.started.store(0, Ordering::Relaxed);
            if r.is_err() {
                let (location, message) = LAST_PANIC
                    .with(|p| p.borrow_mut().take())
                    .unwrap_or_else(|| ("?".to_owned(), "a panic".to_owned()));
                let message = format!("in housekeeping after this input: {message}");
                finding(location, message, "crash", &mut report);
                target.reset();
            }
        }
        if report.inputs.is_multiple_of(4096) {
            let (rss, _) = rss_kib();
            if rss > config.max_rss_mib * 1024 {
                report.memory_exceeded = true;
                eprintln!(
                    "levee-fuzz: {name}: resident set {} MiB, over the bound of {} MiB",
                    rss / 1024,
                    config.max_rss_mib
                );
                break;
            }
            if let Some(every) = config.progress {
                if last_progress.elapsed() >= every {
                    last_progress = Instant::now();
                    eprintln!(
                        "levee-fuzz: {name}: {} inputs, {:.0}/s, depth {:.1}%, {} crashes, {} signatures",
                        report.inputs,
                        report.inputs as f64 / start.elapsed().as_secs_f64(),
                        100.0 * report.deep as f64 / report.inputs as f64,
                        report.crashes.len(),
                        seen.len()
                    );
                }
            }
        }
    }
    report.elapsed = start.elapsed();
    watch.done.store(true, Ordering::Relaxed);
    if persist {
        let _ = fs::remove_file(&current);
    }
    report.signatures = seen.len();
    report.peak_rss_kib = rss_kib().1;
    report
}
