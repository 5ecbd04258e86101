//! `levee gen`: seeded event streams for demos, load tests and benchmarks,
//! with the ground truth beside them.
//!
//! The generator knows nothing of the domains beyond what the rule files and
//! their tests say:
//! - **Clean events** are drawn from the rule tests' quiet events (cases that
//!   expect no alert) that raise no alert on their own. Each copy gets a new
//!   `event_id`, a subject from its template's own pool (so subjects recur,
//!   as real ones do), and is moved back by a whole number of weeks, so its
//!   time of day and weekday stay what its author wrote; every timestamp
//!   field moves with it. Every event lands before `--until` (a fixed
//!   default, so a seed always gives the same file): the stream is in the
//!   past, as a replay or a backlog is.
//! - **The kind of day stays.** A week's move can take a Monday onto a
//!   public holiday, or a Saturday onto a make-up working day: an event of a
//!   type whose control points read the working calendar (`occurred_workday`,
//!   `occurred_holiday`) is moved only to a day the calendar calls the same
//!   (working day or not, holiday or not); the move drawn is replaced by
//!   the nearest one that keeps it.
//! - **Recurrence stays clean.** A quiet event is quiet once; repeated on one
//!   subject it may be a breach: a second final settlement of one campaign,
//!   the same invoice number twice, a second write-off within the year, the
//!   same quiet "away from the depot" position a week later (the stateful
//!   point then sees the condition held all week, since the stream has no
//!   event of the return in between). Those alerts would be right, and
//!   missing from the truth. So a template's subjects recur only if two
//!   copies of it on one subject raise nothing, at any gap the stream can put
//!   between them; any other template gives each copy a subject of its own.
//!   And templates never share subjects: the tests reuse names (`G1`, `K1`,
//!   `S1`) for unrelated entities, which merged would make histories nobody
//!   wrote. (A subject that gets three or more copies, likely only with a
//!   small `--subjects`, can still trip a count in a window, as busy real
//!   subjects do.)
//! - **Breaches** are the rule tests' firing cases, injected whole (their
//!   history included) at the configured rate, with fresh subjects and moved
//!   in time together. The ground truth is what each case expects: which
//!   event raises which control point at which tier.
//!
//! Output is sorted by event time. The truth file has one line per expected
//! alert: `{"event_id", "control_point", "tier"}`; clean events have ids
//! starting with `c`, breach events with `b`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Duration, FixedOffset};
use levee_engine::{Engine, Source};
use levee_rules::model::{FieldType, TestFile};
use levee_rules::RuleGraph;
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many events to write (breach cases are never cut short, so a few
    /// more may be written).
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Seed of the pseudo-random choices: the same seed gives the same stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of events that belong to injected breaches.
    #[arg(long, default_value_t = 0.02)]
    breach_rate: f64,
    /// How many distinct subjects clean events of one template are spread
    /// over. Subjects that recur three times or more can trip stateful
    /// control points (counts in a window), as busy real subjects do;
    /// templates of which two copies on one subject raise an alert give
    /// every copy a subject of its own.
    #[arg(long, default_value_t = 1_000_000)]
    subjects: usize,
    /// How many weeks the stream spans.
    #[arg(long, default_value_t = 52)]
    weeks: i64,
    /// Every event happens before this time (RFC 3339).
    #[arg(long, default_value = "2026-11-01T00:00:00+08:00", value_parser = parse_until)]
    until: DateTime<FixedOffset>,
    /// Where the events go (`-` for stdout).
    #[arg(long, short, default_value = "-")]
    out: String,
    /// Where the ground truth goes.
    #[arg(long)]
    truth: Option<PathBuf>,
}

/// splitmix64: small, fast, and plenty for choosing templates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// A firing case: its events, and the alerts expected per event index.
struct Breach {
    events: Vec<Value>,
    truth: Vec<(usize, String, u8)>,
    /// Its events are of types that read tables: checked where it lands.
    reads_tables: bool,
}

/// A quiet event, and whether copies of it may share a subject.
struct Clean {
    event: Value,
    recurs: bool,
}

struct Templates {
    clean: Vec<Clean>,
    breaches: Vec<Breach>,
}

pub fn run(rules: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let Some(graph) = crate::rules::load(rules) else {
        return Ok(ExitCode::FAILURE);
    };
    let t = templates(&graph, rules, args.weeks.max(1))?;
    anyhow::ensure!(
        !t.clean.is_empty(),
        "no clean templates: the rule tests have no quiet events that raise no alert"
    );
    let mut rng = Rng(args.seed);
    // Chance that the next draw is a whole breach case, so that breach events
    // make up `breach_rate` of the stream.
    let avg_len = t.breaches.iter().map(|b| b.events.len()).sum::<usize>() as f64
        / t.breaches.len().max(1) as f64;
    let rate = args.breach_rate.clamp(0.0, 1.0);
    let p_case = rate / (avg_len * (1.0 - rate) + rate);
    let mut events: Vec<(i64, Value)> = Vec::with_capacity(args.events + 64);
    let mut truth: Vec<(String, String, u8)> = Vec::new();
    let (mut n_clean, mut n_breach, mut injected) = (0usize, 0usize, 0usize);
    let until = args.until.timestamp();
    let span = args.weeks.max(1);
    let days = DayKinds::new(&graph);
    while events.len() < args.events {
        let wanted = rng.below(span as usize) as i64;
        if !t.breaches.is_empty() && rng.chance(p_case) {
            let b = &t.breaches[rng.below(t.breaches.len())];
            let base = weeks_before(&b.events, until);
            // A case no move back keeps whole (a holiday weekday and a
            // make-up Sunday in one case) is not drawn.
            let Some(weeks) = days.nearest_keeping(&b.events, base, wanted, span) else {
                continue;
            };
            let weeks = Duration::weeks(weeks);
            let n = injected + 1;
            let moved: Vec<(i64, Value)> = b
                .events
                .iter()
                .enumerate()
                .map(|(i, ev)| {
                    rewrite(
                        &graph,
                        ev,
                        &format!("b{n}-{}", i + 1),
                        &format!("-b{n}"),
                        weeks,
                    )
                })
                .collect();
            // A case that reads a register may mean another thing on
            // another day (a row not valid yet): drawn only where it raises
            // what its truth says.
            if b.reads_tables && !raises_its_truth(&graph, &moved, &b.truth) {
                continue;
            }
            injected = n;
            let mut ids = Vec::new();
            for (i, (at, ev)) in moved.into_iter().enumerate() {
                n_breach += 1;
                ids.push(format!("b{injected}-{}", i + 1));
                events.push((at, ev));
            }
            for (i, cp, tier) in &b.truth {
                truth.push((ids[*i].clone(), cp.clone(), *tier));
            }
        } else {
            let ti = rng.below(t.clean.len());
            let c = &t.clean[ti];
            let one = std::slice::from_ref(&c.event);
            let base = weeks_before(one, until);
            let Some(weeks) = days.nearest_keeping(one, base, wanted, span) else {
                continue;
            };
            let weeks = Duration::weeks(weeks);
            n_clean += 1;
            let id = format!("c{n_clean}");
            let pooled = rng.below(args.subjects);
            let suffix = if c.recurs {
                format!("-t{ti}s{pooled}")
            } else {
                format!("-c{n_clean}")
            };
            let (at, ev) = rewrite(&graph, &c.event, &id, &suffix, weeks);
            events.push((at, ev));
        }
    }
    events.sort_by_key(|(at, _)| *at);

    let mut out: Box<dyn Write> = if args.out == "-" {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        Box::new(BufWriter::new(
            File::create(&args.out).with_context(|| format!("cannot create {}", args.out))?,
        ))
    };
    for (_, ev) in &events {
        serde_json::to_writer(&mut out, ev)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if let Some(p) = &args.truth {
        let mut w = BufWriter::new(
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        );
        for (id, cp, tier) in &truth {
            serde_json::to_writer(
                &mut w,
                &serde_json::json!({"event_id": id, "control_point": cp, "tier": tier}),
            )?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    eprintln!(
        "gen: {} events ({} clean from {} templates ({} on subjects of their own), {} in {} injected breaches from {} cases), {} expected alerts",
        events.len(),
        n_clean,
        t.clean.len(),
        t.clean.iter().filter(|c| !c.recurs).count(),
        n_breach,
        injected,
        t.breaches.len(),
        truth.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// How many whole weeks back put the latest of a template's events before
/// `until` (0 if they all are already).
fn weeks_before(events: &[Value], until: i64) -> i64 {
    const WEEK: i64 = 7 * 86_400;
    let latest = events
        .iter()
        .filter_map(|e| e.get("occurred_at")?.as_str())
        .filter_map(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp())
        .max()
        .unwrap_or(until);
    let over = latest - until;
    if over < 0 {
        0
    } else {
        over / WEEK + 1
    }
}

fn parse_until(s: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(s).map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

/// Gives an event its new id and subject and moves its timestamps.
fn rewrite(graph: &RuleGraph, ev: &Value, id: &str, suffix: &str, by: Duration) -> (i64, Value) {
    let mut ev = ev.clone();
    let mut at = 0;
    let Some(obj) = ev.as_object_mut() else {
        return (at, ev);
    };
    obj.insert("event_id".into(), id.into());
    let et = obj
        .get("type")
        .and_then(|t| t.as_str())
        .and_then(|t| graph.event_type(t))
        .map(|(_, et)| et);
    if let Some(et) = et {
        // The subject gets a new identity. Every other string field that
        // names the same entity is renamed with it, so equalities between
        // fields hold as the author wrote them; values on a constant list
        // or keys of a table's rows keep their identity, so membership and
        // lookups hold too.
        // So do the keys its re-keyed copies keep state per (an approver,
        // a project): an injected breach has windows of its own there too.
        let keys = et
            .copies
            .iter()
            .filter_map(|&c| graph.event_types[c as usize].rekeyed.as_ref());
        let slots = std::iter::once(et.subject).chain(keys.flat_map(|r| r.key.iter().copied()));
        let olds: Vec<String> = slots
            .filter_map(|s| {
                obj.get(&et.fields[s as usize].name)?
                    .as_str()
                    .map(str::to_owned)
            })
            .filter(|o| !on_a_list(graph, o))
            .collect();
        for old in olds {
            let renamed = format!("{old}{suffix}");
            for v in obj.values_mut() {
                if v.as_str() == Some(old.as_str()) {
                    *v = Value::String(renamed.clone());
                }
            }
        }
        for f in &et.fields {
            if f.ty != FieldType::Timestamp {
                continue;
            }
            if let Some(Value::String(s)) = obj.get_mut(&f.name) {
                if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                    let moved: DateTime<FixedOffset> = t + by;
                    if f.name == "occurred_at" {
                        at = moved.timestamp();
                    }
                    *s = moved.to_rfc3339();
                }
            }
        }
    }
    (at, ev)
}

fn on_a_list(graph: &RuleGraph, value: &str) -> bool {
    graph.lists.iter().any(|l| {
        l.items
            .iter()
            .any(|c| matches!(c, levee_rules::graph::Const::Str(s) if &**s == value))
    }) || graph.tables.iter().any(|t| {
        t.rows.iter().any(|r| {
            r.key
                .split(levee_rules::table::KEY_SEPARATOR)
                .any(|part| part == value)
        })
    })
}

/// Clean templates and breach cases from the rule tests.
fn templates(graph: &Arc<RuleGraph>, rules: &Path, weeks: i64) -> anyhow::Result<Templates> {
    let files = levee_rules::read_test_files(rules).map_err(|d| {
        anyhow::anyhow!(d
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n"))
    })?;
    let mut clean = Vec::new();
    let mut breaches = Vec::new();
    let mut seen: HashMap<String, ()> = HashMap::new();
    for f in files {
        let Ok(tf) = serde_norway::from_str::<TestFile>(&f.text) else {
            continue;
        };
        for case in tf.cases {
            let steps = case
                .events
                .iter()
                .any(|e| e.get("rectify").is_some() || e.get("tick").is_some());
            // Steps, a clock of the case's own (events it refuses), or
            // table rows of its own (the stream has the rules' rows) are
            // not a stream to copy.
            if steps || case.now.is_some() || !case.tables.is_empty() {
                continue;
            }
            if case.expect.is_empty() {
                for ev in &case.events {
                    // A quiet event about a register's row would keep its
                    // identity, and its copies pile up on one subject.
                    if quiet(graph, ev)
                        && !names_a_row(graph, ev)
                        && seen.insert(ev.to_string(), ()).is_none()
                    {
                        clean.push(Clean {
                            event: ev.clone(),
                            recurs: recurs_quietly(graph, ev, weeks),
                        });
                    }
                }
                continue;
            }
            // Expected alerts need their event: by id, or the case's last event.
            let index: BTreeMap<&str, usize> = case
                .events
                .iter()
                .enumerate()
                .filter_map(|(i, e)| e.get("event_id").and_then(|v| v.as_str()).map(|id| (id, i)))
                .collect();
            let mut truth = Vec::new();
            for e in &case.expect {
                if e.escalated == Some(true) {
                    continue;
                }
                let i = match &e.event_id {
                    Some(id) => index.get(id.as_str()).copied(),
                    None => firing_event(graph, &case.events, &e.control_point, e.tier),
                };
                if let Some(i) = i {
                    truth.push((i, e.control_point.clone(), e.tier));
                }
            }
            if !truth.is_empty() {
                breaches.push(Breach {
                    reads_tables: case.events.iter().any(|e| reads_tables(graph, e)),
                    events: case.events.clone(),
                    truth,
                });
            }
        }
    }
    Ok(Templates { clean, breaches })
}

/// Whether an event raises no alert on its own.
fn quiet(graph: &Arc<RuleGraph>, ev: &Value) -> bool {
    let mut engine = Engine::new(graph.clone());
    let bytes = serde_json::to_vec(ev).unwrap_or_default();
    engine
        .evaluate(&bytes)
        .is_ok_and(|_| engine.hits().is_empty())
}

/// Whether two copies of a quiet event on one subject raise nothing, at each
/// gap (0 to `weeks - 1` weeks) the stream can put between them; each pair
/// has a subject of its own, so one engine tries them all. Where the kind
/// of day matters, a pair is placed where the stream can put it: both
/// copies on days of the template's kind (a gap no such pair has never
/// occurs).
fn recurs_quietly(graph: &Arc<RuleGraph>, ev: &Value, weeks: i64) -> bool {
    let days = DayKinds::new(graph);
    let one = std::slice::from_ref(ev);
    let keeps: Vec<bool> = (0..weeks).map(|w| days.keeps(one, w)).collect();
    let mut copies: Vec<(i64, Value)> = Vec::new();
    for gap in 0..weeks {
        let Some(first) =
            (0..weeks - gap).find(|&a| keeps[a as usize] && keeps[(a + gap) as usize])
        else {
            continue;
        };
        let suffix = format!("-r{gap}");
        for w in [first, first + gap] {
            copies.push(rewrite(graph, ev, "r", &suffix, Duration::weeks(w)));
        }
    }
    copies.sort_by_key(|(at, _)| *at);
    let mut engine = Engine::new(graph.clone());
    copies.iter().all(|(_, ev)| {
        let bytes = serde_json::to_vec(ev).unwrap_or_default();
        engine
            .evaluate(&bytes)
            .is_ok_and(|_| engine.hits().is_empty())
    })
}

/// Whether a case's events raise exactly its truth (escalations aside).
fn raises_its_truth(
    graph: &Arc<RuleGraph>,
    events: &[(i64, Value)],
    truth: &[(usize, String, u8)],
) -> bool {
    let mut engine = Engine::new(graph.clone());
    let source = Source::Http { http: false };
    let mut raised: Vec<(usize, String, u8)> = Vec::new();
    // In the stream's order: by event time (a stable sort, as the output's).
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events[i].0);
    for i in order {
        let ev = &events[i].1;
        let bytes = serde_json::to_vec(ev).unwrap_or_default();
        if let Ok(p) = engine.process(&bytes, &source, "") {
            raised.extend(p.alerts.into_iter().map(|a| (i, a.control_point, a.tier)));
        }
    }
    let mut want = truth.to_vec();
    raised.sort();
    want.sort();
    raised == want
}

/// Whether an event's subject is the key of a row of a declared table (not
/// a list): its copies would keep that identity.
fn names_a_row(graph: &RuleGraph, ev: &Value) -> bool {
    let subject = ev
        .get("type")
        .and_then(Value::as_str)
        .and_then(|t| graph.event_type(t))
        .and_then(|(_, et)| ev.get(&et.fields[et.subject as usize].name))
        .and_then(Value::as_str);
    subject.is_some_and(|v| {
        graph.tables.iter().filter(|t| !t.file.is_empty()).any(|t| {
            t.rows.iter().any(|r| {
                r.key
                    .split(levee_rules::table::KEY_SEPARATOR)
                    .any(|part| part == v)
            })
        })
    })
}

/// Whether an event's type reads a table (a lookup in its program).
fn reads_tables(graph: &RuleGraph, ev: &Value) -> bool {
    ev.get("type")
        .and_then(Value::as_str)
        .and_then(|t| graph.event_type(t))
        .is_some_and(|(_, et)| {
            et.program
                .nodes
                .iter()
                .any(|n| matches!(n.op, levee_rules::graph::Op::Lookup(..)))
        })
}

/// Which event of a case raises `cp` at `tier`, replaying the case.
fn firing_event(graph: &Arc<RuleGraph>, events: &[Value], cp: &str, tier: u8) -> Option<usize> {
    let mut engine = Engine::new(graph.clone());
    let source = Source::Http { http: false };
    for (i, ev) in events.iter().enumerate() {
        let bytes = serde_json::to_vec(ev).unwrap_or_default();
        if let Ok(p) = engine.process(&bytes, &source, "") {
            if p.alerts
                .iter()
                .any(|a| a.control_point == cp && a.tier == tier)
            {
                return Some(i);
            }
        }
    }
    None
}

/// The working calendar as the generator needs it: which event types read
/// it, and what kind of day an event falls on.
struct DayKinds<'g> {
    graph: &'g RuleGraph,
    /// Per event type: whether one of its control points reads the calendar.
    reads: Vec<bool>,
}

impl<'g> DayKinds<'g> {
    fn new(graph: &'g RuleGraph) -> Self {
        let reads = graph
            .event_types
            .iter()
            .map(|et| {
                et.control_points
                    .iter()
                    .any(|&c| graph.control_points[c as usize].reads_calendar)
            })
            .collect();
        DayKinds { graph, reads }
    }

    /// (working day, holiday) of an event's day as its type's control points
    /// read it, `None` for an event whose type reads no calendar (or whose
    /// time does not parse), after a move of `weeks`.
    fn kind(&self, ev: &Value, weeks: i64) -> Option<Option<(bool, bool)>> {
        let ti = ev
            .get("type")?
            .as_str()
            .and_then(|t| self.graph.event_type(t))?
            .0;
        if !self.reads[ti as usize] {
            return None;
        }
        let at = DateTime::parse_from_rfc3339(ev.get("occurred_at")?.as_str()?).ok()?;
        let day = self
            .graph
            .calendar
            .local(at.timestamp() + weeks * 604_800)
            .day;
        Some(day.map(|d| (d.workday, d.holiday)))
    }

    /// Whether a move of `weeks` keeps the kind of day of every event.
    fn keeps(&self, events: &[Value], weeks: i64) -> bool {
        weeks == 0
            || events
                .iter()
                .all(|ev| self.kind(ev, weeks) == self.kind(ev, 0))
    }

    /// The move back (in weeks: `-(base + w)`, `w` within `0..span`, the
    /// nearest to `wanted` first, then further back) that keeps every
    /// event's kind of day. `base` weeks back put the events before
    /// `--until`. `None` if no move within ten years keeps them all.
    fn nearest_keeping(&self, events: &[Value], base: i64, wanted: i64, span: i64) -> Option<i64> {
        let within = (0..span)
            .flat_map(|d| [wanted - d, wanted + d])
            .filter(|w| (0..span).contains(w));
        within
            .chain(span..span + 520)
            .map(|w| -(base + w))
            .find(|&m| self.keeps(events, m))
    }
}
