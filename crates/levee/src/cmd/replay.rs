//! `levee replay`: evaluate JSON-lines events offline, alerts to stdout.
//!
//! Bad lines are reported on stderr with their line number and reason (and
//! copied byte for byte to `--dlq FILE`); the run goes on and exits 0.
//! `levee diff` replays through the same code: [`Clock`], [`engine`],
//! [`open`] and [`replay_one`] with its own [`Sink`].

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use levee_engine::closings::{Closing, Closings, Moved};
use levee_engine::rectify::Applied;
use levee_engine::{Alert, Engine, Source, Verdict};
use levee_rules::RuleGraph;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON-lines files of events (types may be mixed); `-` reads stdin;
    /// a sample directory (`levee run`'s `[sample]`) reads its segments.
    #[arg(default_value = "examples/events.jsonl")]
    files: Vec<String>,
    /// Fix the clock (RFC 3339): `detected_at`, and the bound on event
    /// time; makes the output reproducible. Default: the wall clock.
    #[arg(long)]
    now: Option<String>,
    /// Events stamped further than this ahead of the clock are bad input
    /// (`future`), as in `levee run` (`state.max_future_skew`).
    #[arg(long, default_value = "1h", value_parser = parse_skew)]
    max_future_skew: i64,
    /// Also write every bad line, byte for byte, to this file.
    #[arg(long)]
    dlq: Option<PathBuf>,
    /// Print verdicts of intercepting control points as well, as JSON lines
    /// with a `verdict` field.
    #[arg(long)]
    decisions: bool,
    /// After the alerts, print each subject's profile (keyed by
    /// `<kind>:<id>`), then each person's (一人一档, keyed by `person`), as
    /// JSON lines; `--now` is the time the risk scores decay to.
    #[arg(long)]
    profiles: bool,
    /// Print each alert a rectification closes as `alerts.closed` records
    /// it (a JSON line with `closed_at`, on the clock of `detected_at`).
    #[arg(long)]
    closed: bool,
    /// The half-life of a person's risk score: an alert this old weighs
    /// half as much.
    #[arg(long, default_value = "180d", value_parser = parse_skew)]
    half_life: i64,
    /// Table rows from this directory: `<table>.jsonl` (a row per line)
    /// or `<table>.yaml` (a list), replacing the rules' rows of that table.
    #[arg(long)]
    tables: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub struct Totals {
    pub events: u64,
    pub bad: u64,
    pub alerts: [u64; 4],
    pub unknown: u64,
    pub errors: u64,
    /// Alerts that read the working calendar on a day of a year whose
    /// notice is not in the rules.
    pub provisional: u64,
}

/// A replay's clock: `--now` (or the wall clock) for `detected_at`, and the
/// bound on event time, taken once when the replay starts.
#[derive(Debug, Clone)]
pub struct Clock {
    fixed_now: Option<String>,
    /// The clock when the replay started, and the skew allowed ahead of it.
    bound: (i64, i64),
}

impl Clock {
    /// `now`: `--now` as given; `max_future_skew` in seconds.
    pub fn new(now: Option<&str>, max_future_skew: i64) -> anyhow::Result<Clock> {
        let fixed = match now {
            Some(s) => Some(
                DateTime::parse_from_rfc3339(s)
                    .with_context(|| format!("--now {s:?} is not an RFC 3339 timestamp"))?
                    .with_timezone(&Utc),
            ),
            None => None,
        };
        Ok(Clock {
            fixed_now: fixed.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            bound: (fixed.unwrap_or_else(Utc::now).timestamp(), max_future_skew),
        })
    }
}

/// An engine as a replay runs it.
pub fn engine(graph: std::sync::Arc<RuleGraph>) -> Engine {
    let mut engine = Engine::new(graph);
    // Nothing writes a changelog in a replay.
    engine.set_tracking(false);
    engine
}

/// For each sample directory among `inputs` whose hashed fields are not
/// those `graph` marks sensitive, a warning.
pub fn sample_mismatches(inputs: &[String], graph: &RuleGraph) -> Vec<String> {
    inputs
        .iter()
        .filter(|n| Path::new(n).is_dir())
        .filter_map(|name| crate::sample::mismatch(Path::new(name), graph))
        .collect()
}

/// Opens an input file (`-`: stdin), and the name its bad lines are shown under.
pub fn open(name: &str) -> anyhow::Result<(Box<dyn BufRead>, &str)> {
    if name == "-" {
        Ok((
            Box::new(BufReader::with_capacity(1 << 16, io::stdin().lock())),
            "<stdin>",
        ))
    } else {
        let f = File::open(name).with_context(|| format!("cannot open {name}"))?;
        Ok((Box::new(BufReader::with_capacity(1 << 16, f)), name))
    }
}

/// Where a replay's alerts (escalations included) and verdicts go.
pub trait Sink {
    fn alert(&mut self, alert: &Alert) -> anyhow::Result<()>;
    fn verdict(&mut self, verdict: &Verdict) -> anyhow::Result<()>;

    /// A rectification read, applied to the engine already; `event_time`
    /// is the latest event time read.
    fn rectified(&mut self, _r: &levee_engine::rectify::Rectification, _event_time: i64) {}

    /// An alert a rectification closed: its `alerts.closed` record.
    fn closed(&mut self, _record: &serde_json::Value) -> anyhow::Result<()> {
        Ok(())
    }

    /// The alerts of the event just evaluated, one per hit, counted in
    /// `totals`.
    fn hits(
        &mut self,
        engine: &Engine,
        source: &Source,
        now: &str,
        totals: &mut Totals,
    ) -> anyhow::Result<()> {
        for &hit in engine.hits() {
            let alert = engine.alert(hit, source, now);
            totals.alerts[usize::from(hit.tier.min(3))] += 1;
            totals.provisional += u64::from(alert.calendar.is_some());
            self.alert(&alert)?;
        }
        Ok(())
    }
}

/// `levee replay`'s output: one JSON line each, written straight from the
/// engine (no alert built) into a reused buffer.
struct JsonLines<'a, W> {
    out: &'a mut W,
    json: Vec<u8>,
    /// `--closed`: closed alerts' records too.
    closed: bool,
}

impl<'a, W: Write> JsonLines<'a, W> {
    fn new(out: &'a mut W, closed: bool) -> Self {
        JsonLines {
            out,
            json: Vec::with_capacity(4096),
            closed,
        }
    }
}

impl<W: Write> Sink for JsonLines<'_, W> {
    fn alert(&mut self, alert: &Alert) -> anyhow::Result<()> {
        self.json.clear();
        levee_engine::render::write_alert(alert, &mut self.json);
        self.json.push(b'\n');
        self.out.write_all(&self.json)?;
        Ok(())
    }

    fn hits(
        &mut self,
        engine: &Engine,
        source: &Source,
        now: &str,
        totals: &mut Totals,
    ) -> anyhow::Result<()> {
        self.json.clear();
        for &hit in engine.hits() {
            let written = engine.write_alert(hit, source, now, &mut self.json);
            self.json.push(b'\n');
            totals.alerts[usize::from(written.tier.min(3))] += 1;
            totals.provisional += u64::from(written.calendar);
        }
        self.out.write_all(&self.json)?;
        Ok(())
    }

    fn verdict(&mut self, verdict: &Verdict) -> anyhow::Result<()> {
        serde_json::to_writer(&mut *self.out, verdict)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn closed(&mut self, record: &serde_json::Value) -> anyhow::Result<()> {
        if self.closed {
            serde_json::to_writer(&mut *self.out, record)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }
}

pub fn run(rules: &Path, mut args: Args) -> anyhow::Result<ExitCode> {
    let Some(graph) = crate::rules::load(rules) else {
        return Ok(ExitCode::FAILURE);
    };
    for w in sample_mismatches(&args.files, &graph) {
        eprintln!("levee: warning: {w}");
    }
    args.files = crate::sample::expand_inputs(&args.files)?;
    let clock = Clock::new(args.now.as_deref(), args.max_future_skew)?;
    let settings =
        levee_engine::people::Settings::new(args.half_life, levee_engine::people::Settings::LAST)
            .context("--half-life")?;
    let mut people = levee_engine::people::People::default();
    let mut engine = engine(graph.clone());
    if let Some(dir) = &args.tables {
        for (table, n) in crate::table_files::load_dir(dir, &graph, engine.tables())? {
            eprintln!("levee: table {table}: {n} rows from {}", dir.display());
        }
    }
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut dlq = match &args.dlq {
        Some(p) => {
            Some(BufWriter::new(File::create(p).with_context(|| {
                format!("cannot create --dlq file {}", p.display())
            })?))
        }
        None => None,
    };
    let mut totals = Totals::default();
    let mut closings = Closings::default();
    let stderr = io::stderr();
    let mut err = stderr.lock();

    // Room for the subjects up front: at most one per event, an event a
    // few hundred bytes long.
    let bytes: u64 = args
        .files
        .iter()
        .filter(|n| n.as_str() != "-")
        .filter_map(|n| std::fs::metadata(n).ok())
        .map(|m| m.len())
        .sum();
    engine
        .state_mut()
        .reserve(usize::try_from(bytes / 256).unwrap_or(0).min(1 << 24));
    for name in &args.files {
        let (reader, shown) = open(name)?;
        let lines = JsonLines::new(&mut out, args.closed);
        let (e, c, d) = (&mut engine, &clock, args.decisions);
        if args.profiles {
            let mut sink = super::profiles::Recording {
                inner: lines,
                people: &mut people,
                graph: &graph,
            };
            replay_one(
                reader,
                shown,
                e,
                c,
                d,
                &mut closings,
                &mut sink,
                &mut dlq,
                &mut err,
                &mut totals,
            )?;
        } else {
            let mut sink = lines;
            replay_one(
                reader,
                shown,
                e,
                c,
                d,
                &mut closings,
                &mut sink,
                &mut dlq,
                &mut err,
                &mut totals,
            )?;
        }
    }
    if args.profiles {
        let ledger = engine.ledger();
        let mut profiles: Vec<_> = ledger.profiles().map(|(_, p)| p).collect();
        profiles.sort_by(|a, b| a.subject.cmp(&b.subject));
        for p in profiles {
            serde_json::to_writer(&mut out, p)?;
            out.write_all(b"\n")?;
        }
        super::profiles::write(&mut out, &people, clock.bound.0, settings)?;
    }
    out.flush()?;
    if let Some(d) = &mut dlq {
        d.flush()?;
    }
    let t = &totals;
    writeln!(
        err,
        "replay: {} events, {} alerts (tier 1: {}, tier 2: {}, tier 3: {}), {} bad lines, {} conditions unknown (missing fields), {} evaluation errors, {} alerts on a provisional calendar",
        t.events,
        t.alerts[1] + t.alerts[2] + t.alerts[3],
        t.alerts[1],
        t.alerts[2],
        t.alerts[3],
        t.bad,
        t.unknown,
        t.errors,
        t.provisional
    )?;
    // The process ends here: freeing every subject and open alert one by
    // one would only make the exit slower (a sixth of an alert storm's
    // replay); the system takes the memory back whole.
    std::mem::forget(engine);
    Ok(ExitCode::SUCCESS)
}

/// Replays one input through `engine`: alerts and verdicts to `out`, bad
/// lines to `err` (and `dlq`), counts to `totals`.
#[allow(clippy::too_many_arguments)]
pub fn replay_one(
    mut reader: Box<dyn BufRead + '_>,
    name: &str,
    engine: &mut Engine,
    clock: &Clock,
    decisions: bool,
    closings: &mut Closings,
    out: &mut impl Sink,
    dlq: &mut Option<BufWriter<File>>,
    err: &mut impl Write,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    let mut line = Vec::with_capacity(4096);
    let mut number: u64 = 0;
    let (fixed_now, bound) = (clock.fixed_now.as_deref(), clock.bound);
    let mut now = String::new();
    // Re-used for every alert: its source (the line number changes) and
    // its JSON line.
    let mut source = Source::File {
        file: name.to_owned(),
        line: 0,
    };
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {name}"))?;
        if n == 0 {
            break;
        }
        number += 1;
        let mut body: &[u8] = &line;
        if let Some(b) = body.strip_suffix(b"\n") {
            body = b;
        }
        if let Some(b) = body.strip_suffix(b"\r") {
            body = b;
        }
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        // A rectification has no `type`: only a line that fails as an event
        // for that reason is tried as one, keeping the common path cheap.
        // An event stamped beyond the bound is refused before it touches
        // event time or state.
        let event = engine
            .decode(body)
            .and_then(|()| engine.check_future(bound.0, bound.1))
            .map(|()| engine.run());
        let no_type = matches!(&event, Err(b) if b.kind == levee_engine::BadKind::MissingField
            && b.reason.contains("`type`"));
        let rect = if no_type { rectification(body) } else { None };
        if let Some(r) = rect {
            stamp(fixed_now, &mut now);
            let at = now.clone();
            match r {
                // A closed alert kept until archived: archived (its record
                // again), the same status again, or moved backwards (refused).
                Ok(r) => match engine.apply(&r).and_then(|applied| {
                    if applied != Applied::NotHere {
                        return Ok(Rectified::Open(applied));
                    }
                    match closings.apply(&r, &at) {
                        Some(Ok(Moved::Archived(_, record))) => Ok(Rectified::Archived(record)),
                        Some(Ok(Moved::Again)) => Ok(Rectified::Open(Applied::Moved)),
                        Some(Err(refused)) => Err(refused),
                        None => Ok(Rectified::Open(Applied::NotHere)),
                    }
                }) {
                    Err(refused) => {
                        // As the stream would: to the DLQ, with why.
                        totals.bad += 1;
                        let kind = refused.kind();
                        writeln!(
                            err,
                            "{name}:{number}: rectification refused ({kind}): {refused}"
                        )?;
                        if let Some(d) = dlq {
                            d.write_all(body)?;
                            d.write_all(b"\n")?;
                        }
                    }
                    Ok(applied) => {
                        out.rectified(&r, engine.watermark());
                        match &applied {
                            Rectified::Open(Applied::Closed(c)) => {
                                let closing = Closing {
                                    closed: (**c).clone(),
                                    rectification: r.clone(),
                                    closed_at: at,
                                };
                                out.closed(&closing.record().1)?;
                                closings.insert(closing);
                            }
                            Rectified::Archived(record) => out.closed(record)?,
                            Rectified::Open(_) => {}
                        }
                        if applied == Rectified::Open(Applied::NotHere) {
                            writeln!(
                                err,
                                "{name}:{number}: rectification of alert {} that is not open",
                                r.alert_id
                            )?;
                        }
                    }
                },
                Err(reason) => {
                    totals.bad += 1;
                    writeln!(err, "{name}:{number}: bad input: {reason}")?;
                    if let Some(d) = dlq {
                        d.write_all(body)?;
                        d.write_all(b"\n")?;
                    }
                }
            }
            continue;
        }
        match event {
            Ok(stats) => {
                totals.events += 1;
                totals.unknown += u64::from(stats.unknown);
                totals.errors += u64::from(stats.errors);

                stamp(fixed_now, &mut now);
                if !engine.hits().is_empty() {
                    if let Source::File { line, .. } = &mut source {
                        *line = number;
                    }
                    out.hits(engine, &source, &now, totals)?;
                }
                if decisions {
                    if let Some(v) = engine.verdict() {
                        out.verdict(&v)?;
                    }
                }
                // Event time drives escalation of unrectified alerts.
                for alert in engine.tick(engine.watermark(), &now) {
                    totals.alerts[usize::from(alert.tier.min(3))] += 1;
                    out.alert(&alert)?;
                }
            }
            Err(bad) => {
                totals.bad += 1;
                writeln!(err, "{name}:{number}: bad input: {bad}")?;
                if let Some(d) = dlq {
                    d.write_all(body)?;
                    d.write_all(b"\n")?;
                }
            }
        }
    }
    Ok(())
}

/// Replay's clock now into `now`: `--now` if given, else the wall clock
/// (the clock of `detected_at`, and of closing and archiving).
fn stamp(fixed_now: Option<&str>, now: &mut String) {
    now.clear();
    match fixed_now {
        Some(f) => now.push_str(f),
        None => now.push_str(&Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
    }
}

/// What a rectification line did: to an open alert, or archiving a closed
/// one (its `alerts.closed` record).
#[derive(Debug, PartialEq)]
enum Rectified {
    Open(Applied),
    Archived(serde_json::Value),
}

/// A rectification (`{"alert_id", "status", "by", "at"}`, no `type`), if the
/// line is one.
fn rectification(body: &[u8]) -> Option<Result<levee_engine::rectify::Rectification, String>> {
    levee_engine::rectify::parse(body)
}

pub fn parse_skew(s: &str) -> Result<i64, String> {
    levee_rules::parse_duration(s)
}
