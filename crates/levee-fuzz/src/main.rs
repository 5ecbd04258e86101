//! `levee-fuzz`: runs the fuzz targets and reports, per target, the inputs
//! run, their rate, the share that got deep, the crashes and the slowest
//! input. Exit status 1 when anything crashed, hung or outgrew the memory
//! bound (or the depth is under `--min-depth`). See `docs/fuzzing.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Prints a line to stdout; a closed pipe (`| head`) is not an error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
use levee_fuzz::corpus::{self, Corpus};
use levee_fuzz::runner::{self, Config, Report};

#[derive(Debug, Parser)]
#[command(
    name = "levee-fuzz",
    about = "Fuzz levee's decoder, rule compiler and HTTP body handling"
)]
struct Args {
    /// decode, compile, http or all.
    #[arg(long, default_value = "all")]
    target: String,
    /// Inputs per target (with --seconds, whichever comes first).
    #[arg(long)]
    inputs: Option<u64>,
    /// Seconds per target.
    #[arg(long)]
    seconds: Option<f64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The repository (its examples/ and rules/ are the seeds).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Where crashing inputs are written [default: ROOT/target/fuzz-crashes].
    #[arg(long)]
    crash_dir: Option<PathBuf>,
    /// A finding when the resident set grows past this many MiB.
    #[arg(long, default_value_t = 2048)]
    max_rss_mib: u64,
    /// Fail when a target's depth (share of inputs that got deep) is below.
    #[arg(long)]
    min_depth: Option<f64>,
    /// The stack of the thread that runs the targets, in MiB (2: a tokio
    /// worker's, where `levee run` compiles rules on reload).
    #[arg(long, default_value_t = 2)]
    stack_mib: usize,
    /// Only events of this type (decode and http).
    #[arg(long)]
    event_type: Option<String>,
    /// Stop a target at its first crash.
    #[arg(long)]
    stop_on_crash: bool,
    /// Run these input files through the target instead (one target).
    #[arg(long, num_args = 1..)]
    replay: Vec<PathBuf>,
    /// No progress lines.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stack = args.stack_mib.max(1) << 20;
    let worker = std::thread::Builder::new()
        .name("levee-fuzz".to_owned())
        .stack_size(stack)
        .spawn(move || fuzz(args));
    match worker.map(|w| w.join()) {
        Ok(Ok(code)) => code,
        _ => {
            eprintln!("levee-fuzz: the fuzzing thread failed");
            ExitCode::FAILURE
        }
    }
}

fn fuzz(args: Args) -> ExitCode {
    let root = args.root.clone().unwrap_or_else(corpus::default_root);
    let crash_dir = args
        .crash_dir
        .clone()
        .unwrap_or_else(|| root.join("target/fuzz-crashes"));
    let corpus = match Corpus::load(&root) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("levee-fuzz: {e}");
            return ExitCode::FAILURE;
        }
    };
    let names: Vec<&str> = if args.target == "all" {
        levee_fuzz::TARGETS.to_vec()
    } else {
        vec![args.target.as_str()]
    };
    if !args.replay.is_empty() {
        return replay(&args, &names, &corpus);
    }
    let config = Config {
        seed: args.seed,
        inputs: args.inputs.or((args.seconds.is_none()).then_some(100_000)),
        duration: args.seconds.map(Duration::from_secs_f64),
        crash_dir: crash_dir.clone(),
        max_rss_mib: args.max_rss_mib,
        progress: (!args.quiet).then_some(Duration::from_secs(10)),
        stop_on_crash: args.stop_on_crash,
    };
    let mut reports = Vec::new();
    for name in &names {
        let mut target = match levee_fuzz::target(name, &corpus, args.event_type.as_deref()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("levee-fuzz: {e}");
                return ExitCode::FAILURE;
            }
        };
        if !args.quiet {
            eprintln!("levee-fuzz: {name}: running (seed {})", args.seed);
        }
        let report = runner::run(target.as_mut(), &config);
        print_report(&report);
        reports.push(report);
    }
    print_summary(&reports, &crash_dir);
    let shallow = args
        .min_depth
        .is_some_and(|m| reports.iter().any(|r| r.depth() < m));
    if shallow {
        eprintln!(
            "levee-fuzz: a target's depth is under --min-depth {:?}",
            args.min_depth
        );
    }
    if reports.iter().all(Report::clean) && !shallow {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn replay(args: &Args, names: &[&str], corpus: &Corpus) -> ExitCode {
    let [name] = names else {
        eprintln!("levee-fuzz: --replay needs one --target");
        return ExitCode::FAILURE;
    };
    let mut target = match levee_fuzz::target(name, corpus, args.event_type.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("levee-fuzz: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for path in &args.replay {
        let input = match std::fs::read(path) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("levee-fuzz: cannot read {}: {e}", path.display());
                failed = true;
                continue;
            }
        };
        let started = std::time::Instant::now();
        match runner::run_one(target.as_mut(), &input) {
            Ok(o) => out!(
                "{}: {} ({}) in {:?}",
                path.display(),
                if o.deep { "deep" } else { "shallow" },
                o.class,
                started.elapsed()
            ),
            Err((location, message)) => {
                failed = true;
                out!("{}: PANIC at {location}: {message}", path.display());
                target.reset();
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_report(r: &Report) {
    let mut classes: Vec<(&&str, &u64)> = r.classes.iter().collect();
    classes.sort_by(|a, b| b.1.cmp(a.1));
    let shown: Vec<String> = classes
        .iter()
        .map(|(c, n)| format!("{c} {:.1}%", 100.0 * **n as f64 / r.inputs.max(1) as f64))
        .collect();
    out!(
        "{}: {} inputs in {:.1} s ({:.0}/s), depth {:.1}% ({} deep), {} crashes, slowest {:?} ({} bytes), {} signatures, peak RSS {} MiB",
        r.target,
        r.inputs,
        r.elapsed.as_secs_f64(),
        r.rate(),
        100.0 * r.depth(),
        r.deep,
        r.crashes.len(),
        r.slowest,
        r.slowest_len,
        r.signatures,
        r.peak_rss_kib / 1024
    );
    out!("  outcomes: {}", shown.join(", "));
    for c in &r.crashes {
        out!(
            "  CRASH x{} at {}: {} (input {}; {})",
            c.count,
            c.location,
            c.message.lines().next().unwrap_or(""),
            c.index,
            c.file
                .as_ref()
                .map_or_else(|| "not written".to_owned(), |p| p.display().to_string())
        );
    }
}

fn print_summary(reports: &[Report], crash_dir: &std::path::Path) {
    out!("");
    out!("| target | inputs | inputs/s | depth | crashes | slowest input |");
    out!("|---|---:|---:|---:|---:|---:|");
    for r in reports {
        out!(
            "| {} | {} | {:.0} | {:.1} % | {} | {:.1} ms |",
            r.target,
            r.inputs,
            r.rate(),
            100.0 * r.depth(),
            r.crashes.len(),
            r.slowest.as_secs_f64() * 1000.0
        );
    }
    let crashes: usize = reports.iter().map(|r| r.crashes.len()).sum();
    out!("");
    if crashes == 0 {
        out!("crashes: 0");
    } else {
        out!("crashes: {crashes} (inputs in {})", crash_dir.display());
    }
}
