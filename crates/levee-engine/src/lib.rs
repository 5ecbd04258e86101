//! levee-engine: decoding events, evaluating the rule graph, building alerts.
//!
//! Pure and synchronous: no Kafka, no clock (the caller passes "now"), no
//! I/O. `levee replay`, `levee test`, the HTTP evaluate endpoint and the
//! Kafka service all evaluate through [`Engine`].
//!
//! # Layout
//! - [`body`]: an evaluate request's body → its events, or why it is refused.
//! - [`decode`]: bytes → typed fields in an evaluation buffer, or [`BadInput`].
//! - `hostile`: naming why a message is not JSON (too deep, NaN, …).
//! - `run`: deciding every control point of one event of one type.
//! - `rekey`: [`Engine::run`], an event through its type and its re-keyed
//!   copies; a copy chosen by name (the repartition topic's header).
//! - `escalate`: escalating open alerts whose period ran out.
//! - [`eval`]: the flat program interpreter (evalexpr's semantics, numbers
//!   compared as the decimals they are).
//! - [`exact`]: exact decisions of comparisons that floating point could
//!   round the wrong way.
//! - [`value`]: run-time values, with SQL-like `Missing`.
//! - [`alert`]: alerts, verdicts, deterministic alert ids.
//! - [`render`]: alerts as JSON lines, written straight into a byte buffer.
//! - [`rectify`]: rectification messages (`events.rectification`).
//! - [`closings`]: closed alerts kept until archived.
//! - [`state`]: per-subject state (windows, `for:`, suppression), kept
//!   under each definition's key.
//! - [`ledger`]: open alerts (escalation, rectification) and subject profiles.
//! - [`people`]: person profiles (一人一档) folded from alerts and rectifications.
//! - [`tables`]: the tables' rows, looked up as of the event's time.

pub mod alert;
pub mod body;
pub mod closings;
pub mod codec;
pub mod decode;
mod escalate;
pub mod eval;
pub mod exact;
mod hostile;
pub mod ledger;
pub mod people;
pub mod rectify;
mod rekey;
pub mod render;
mod run;
pub mod state;
pub mod tables;
pub mod value;

use std::cell::RefCell;
use std::sync::Arc;

use levee_rules::graph::MessagePart;
use levee_rules::model::Action;
use levee_rules::RuleGraph;

pub use alert::{alert_id, Alert, Source, Verdict};
pub use decode::{BadInput, BadKind, Envelope};
pub use ledger::{Escalation, Ledger, Profile, SnapshotRef, Status, SubjectSnapshot};
pub use state::{State, StateKeys};
pub use value::Val;

/// A control point that fired, at its tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Index into the graph's control points.
    pub control_point: u32,
    pub tier: u8,
}

/// What evaluating one event found besides hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalStats {
    /// Conditions that could not be decided because a field was missing.
    pub unknown: u32,
    /// Conditions whose evaluation failed (integer overflow, division by zero).
    pub errors: u32,
    /// Alerts held back by `suppress:`.
    pub suppressed: u32,
}

/// The clock on which an alert's rectification period runs: it starts when
/// the alert is raised to its recipients, and escalation reads the same clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    /// The event's own time: `levee replay` and `levee test`, where time is
    /// what the events say.
    #[default]
    EventTime,
    /// The wall clock (epoch seconds), as the service raises alerts; the
    /// caller keeps it current.
    Wall(i64),
}

/// What [`Engine::write_alert`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub tier: u8,
    /// The alert carries a `calendar` note (provisional or unknown).
    pub calendar: bool,
}

/// Everything one event produced.
#[derive(Debug, Clone, Default)]
pub struct Processed {
    pub alerts: Vec<Alert>,
    pub verdict: Option<Verdict>,
    pub stats: EvalStats,
}

/// Evaluates events against one rule graph, re-using its buffers.
///
/// The engine keeps the per-subject state of stateful control points (one
/// engine per partition), and a ledger of open alerts for escalation and the
/// subject profiles. With `record` off (what-if evaluation), state is read
/// but never changed.
#[derive(Debug)]
pub struct Engine {
    graph: Arc<RuleGraph>,
    buffers: Vec<Vec<Val>>,
    /// Per event type: the event each node was last evaluated for.
    stamps: Vec<Vec<u32>>,
    /// Per event type: the number of the current event.
    epochs: Vec<u32>,
    /// The control points to decide for the current event (scratch).
    candidates: Vec<u64>,
    order: Vec<u32>,
    intercepts: Vec<bool>,
    /// Alerts carry `message_zh` (`alerts.languages` has `zh`; the default).
    chinese: bool,
    env: Envelope,
    hits: Vec<Hit>,
    state: State,
    ledger: RefCell<Ledger>,
    record: bool,
    key: String,
    clock: Clock,
    /// Per control point: its evidence in the order an alert writes it
    /// (by name, as serde_json's map orders keys; the last of a repeated
    /// name).
    evidence_order: Vec<Vec<u32>>,
    /// The alert [`Engine::write_alert`] fills, its strings re-used.
    scratch: RefCell<Alert>,
    /// The tables' rows (shared: `levee run` changes them live).
    tables: Arc<tables::TableSet>,
    /// Re-keyed copies are evaluated elsewhere (`levee run` forwards them),
    /// not in turn after their type ([`Engine::set_forward_copies`]).
    forward_copies: bool,
}

impl Engine {
    pub fn new(graph: Arc<RuleGraph>) -> Self {
        let buffers = graph
            .event_types
            .iter()
            .map(|t| eval::new_buffer(&t.program))
            .collect();
        let stamps = graph
            .event_types
            .iter()
            .map(|t| vec![0; t.program.nodes.len()])
            .collect();
        let epochs = vec![0; graph.event_types.len()];
        let evidence_order = graph
            .control_points
            .iter()
            .map(|cp| {
                let mut order: Vec<u32> = (0..cp.evidence.len() as u32).collect();
                // Stable: a repeated name keeps its entries in order, and
                // the last is the one kept.
                order.sort_by(|&a, &b| cp.evidence[a as usize].0.cmp(&cp.evidence[b as usize].0));
                order.reverse();
                order.dedup_by(|a, b| cp.evidence[*a as usize].0 == cp.evidence[*b as usize].0);
                order.reverse();
                order
            })
            .collect();
        let intercepts = rekey::intercepts(&graph);
        Engine {
            buffers,
            stamps,
            epochs,
            candidates: Vec::new(),
            order: Vec::new(),
            intercepts,
            chinese: true,
            env: Envelope::default(),
            hits: Vec::new(),
            state: State::default(),
            ledger: RefCell::new(Ledger::default()),
            record: true,
            key: String::new(),
            clock: Clock::EventTime,
            evidence_order,
            scratch: RefCell::new(Alert::blank()),
            tables: Arc::new(tables::TableSet::from_graph(&graph)),
            forward_copies: false,
            graph,
        }
    }

    /// Replaces the rule graph (a reload), keeping the state: each window
    /// and each control point's `for:` and suppression state stay with
    /// their definition (state is keyed by it, not by position), and what
    /// belongs to a definition the new rules no longer have is dropped.
    pub fn set_graph(&mut self, graph: Arc<RuleGraph>) {
        let (old, new) = (StateKeys::of(&self.graph), StateKeys::of(&graph));
        if !old.within(&new) {
            self.state.retain_known(&new);
        }
        let state = std::mem::take(&mut self.state);
        let ledger = std::mem::take(&mut self.ledger);
        let (record, clock, forward) = (self.record, self.clock, self.forward_copies);
        *self = Engine::new(graph);
        self.state = state;
        self.ledger = ledger;
        self.record = record;
        self.clock = clock;
        self.forward_copies = forward;
    }

    /// Sets the clock that starts rectification periods (see [`Clock`]);
    /// the service calls it with the wall clock as it reads it.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// Whether evaluation changes state (default) or only reads it.
    pub fn set_record(&mut self, record: bool) {
        self.record = record;
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// Whether alerts carry the Chinese message (`message_zh`).
    pub fn set_chinese(&mut self, on: bool) {
        self.chinese = on;
    }

    /// Stops (or resumes) remembering changes for a changelog (off in replay, tests).
    pub fn set_tracking(&mut self, on: bool) {
        self.state.set_tracking(on);
        self.ledger.get_mut().set_tracking(on);
    }

    pub fn ledger(&self) -> std::cell::Ref<'_, Ledger> {
        self.ledger.borrow()
    }

    /// Replaces state and ledger (restoring a partition).
    pub fn restore(&mut self, state: State, ledger: Ledger) {
        self.state = state;
        self.ledger = RefCell::new(ledger);
    }

    /// The highest event time seen (seconds).
    pub fn watermark(&self) -> i64 {
        self.state.watermark
    }

    /// Subjects whose state, alerts or profile changed since the last call, sorted.
    pub fn take_dirty_subjects(&mut self) -> Vec<String> {
        self.take_changes().into_iter().map(|(s, _)| s).collect()
    }

    /// As [`Engine::take_dirty_subjects`], each with whether its open
    /// alerts or profile changed (not only its windows, holds or
    /// suppression).
    pub fn take_changes(&mut self) -> Vec<(String, bool)> {
        let mut dirty: std::collections::BTreeMap<String, bool> = self
            .state
            .take_dirty()
            .into_iter()
            .map(|s| (String::from(s), false))
            .collect();
        for s in self.ledger.get_mut().take_dirty() {
            dirty.insert(s, true);
        }
        dirty.into_iter().collect()
    }

    /// Everything kept about each of `subjects`, sorted by subject.
    pub fn snapshot(&self, subjects: Vec<String>) -> Vec<(String, SubjectSnapshot)> {
        ledger::snapshot(&self.state, &self.ledger.borrow(), subjects)
    }

    /// Puts subjects back from their snapshots and sets the watermark
    /// (restoring a partition into a fresh engine); changes nothing dirty.
    pub fn restore_subjects(
        &mut self,
        subjects: impl IntoIterator<Item = (String, SubjectSnapshot)>,
        watermark: i64,
    ) {
        let ledger = self.ledger.get_mut();
        // Written under another ruleset, maybe: what belongs to no
        // definition of this one is left out.
        let keys = StateKeys::of(&self.graph);
        for (subject, mut snap) in subjects {
            if let Some(s) = snap.state.as_mut() {
                s.retain_known(&keys);
            }
            ledger::restore_subject(&mut self.state, ledger, &subject, snap);
        }
        self.state.watermark = self.state.watermark.max(watermark);
    }

    /// Forgets subjects idle for `ttl` seconds of event time (they become
    /// dirty, so a changelog writes them as gone); their profile and open
    /// alerts stay. Returns how many were forgotten.
    pub fn expire(&mut self, ttl: i64) -> usize {
        self.state.expire(ttl)
    }

    /// A subject's profile.
    pub fn profile(&self, subject: &str) -> Option<Profile> {
        self.ledger.borrow().profile_of(subject).cloned()
    }

    /// Applies a rectification; false if the alert is not open here.
    pub fn rectify(&mut self, alert_id: &str, status: Status) -> bool {
        self.ledger.get_mut().rectify(alert_id, status)
    }

    pub fn graph(&self) -> &Arc<RuleGraph> {
        &self.graph
    }

    /// The envelope of the last event decoded.
    pub fn envelope(&self) -> &Envelope {
        &self.env
    }

    /// The hits of the last event evaluated.
    pub fn hits(&self) -> &[Hit] {
        &self.hits
    }

    /// Decodes and evaluates one event (hits in [`Engine::hits`]); no allocation once warm.
    pub fn evaluate(&mut self, bytes: &[u8]) -> Result<EvalStats, BadInput> {
        self.decode(bytes)?;
        Ok(self.run())
    }

    /// Refuses the last decoded event if it is stamped more than `max_skew`
    /// seconds after `now` (the processing clock): a stamp from the future
    /// would move the watermark, expire state and escalate alerts for good.
    /// Call it between [`Engine::decode`] and [`Engine::run`].
    pub fn check_future(&self, now: i64, max_skew: i64) -> Result<(), BadInput> {
        let Some(at) = self.env.occurred else {
            return Ok(());
        };
        if at.timestamp() <= now.saturating_add(max_skew) {
            return Ok(());
        }
        let clock = chrono::DateTime::from_timestamp(now, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        Err(BadInput::new(
            BadKind::Future,
            format!(
                "occurred_at {} is more than {} ahead of the clock ({clock})",
                self.env.occurred_at,
                levee_rules::format_duration(max_skew)
            ),
        ))
    }

    /// Where the last decoded event belongs: its type's stream, and, if its type
    /// keeps state per subject (windows, `for:`, suppression, escalation), the
    /// subject, which must be its Kafka key for the state to live in one partition.
    pub fn routing(&self) -> (&str, Option<String>) {
        let ti = self.env.type_index as usize;
        let et = &self.graph.event_types[ti];
        let stateful = !et.aggregates.is_empty()
            || et
                .control_points
                .iter()
                .any(|&c| self.graph.control_points[c as usize].is_stateful());
        let subject = stateful.then(|| {
            let mut key = String::new();
            self.buffers[ti][et.subject as usize].write_display(&mut key);
            key
        });
        (et.stream.as_str(), subject)
    }

    /// Takes the event `live` (an engine over other rules) has just
    /// decoded instead of decoding its bytes again, where this graph's
    /// event type of that name has the same fields in the same slots.
    /// Returns false, having changed nothing, where it has not.
    pub fn take_decoded(&mut self, live: &Engine) -> bool {
        let theirs = &live.graph.event_types[live.env.type_index as usize];
        let Some((ti, ours)) = self.graph.event_type(&theirs.name) else {
            return false;
        };
        if !same_fields(ours, theirs) {
            return false;
        }
        let n = ours.fields.len();
        let from = &live.buffers[live.env.type_index as usize][..n];
        self.buffers[ti as usize][..n].clone_from_slice(from);
        self.env.clone_from(&live.env);
        self.env.type_index = ti;
        true
    }

    /// Decodes one event into its type's buffer, without evaluating it.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<(), BadInput> {
        let buffers = &mut self.buffers;
        decode::decode(&self.graph, bytes, &mut self.env, |ti| {
            buffers[ti as usize].as_mut_slice()
        })
    }

    /// Builds the alert for a hit of the last event, entering it in the ledger (once per hit).
    pub fn alert(&self, hit: Hit, source: &Source, detected_at: &str) -> Alert {
        let mut alert = Alert::blank();
        let due = self.fill(hit, source, detected_at, &mut alert, true);
        if self.record {
            let kind = &self.graph.control_points[hit.control_point as usize].subject_kind;
            self.ledger.borrow_mut().raised(&alert, kind, due);
        }
        alert
    }

    /// [`Engine::alert`] written as JSON (no newline) at the end of `out`:
    /// byte for byte what serializing that alert writes, with no alert
    /// built on the way (strings re-used, evidence written from the
    /// evaluation buffer). Enters the alert in the ledger; call it once per
    /// hit, instead of [`Engine::alert`].
    pub fn write_alert(
        &self,
        hit: Hit,
        source: &Source,
        detected_at: &str,
        out: &mut Vec<u8>,
    ) -> Written {
        let mut alert = self.scratch.borrow_mut();
        let due = self.fill(hit, source, detected_at, &mut alert, false);
        let cp = &self.graph.control_points[hit.control_point as usize];
        let buf = &self.buffers[cp.event_type as usize];
        let order = &self.evidence_order[hit.control_point as usize];
        render::write_alert_with(
            &alert,
            |out| {
                for (i, &e) in order.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let (name, slot) = &cp.evidence[e as usize];
                    render::write_str(out, name);
                    out.push(b':');
                    render::write_val(out, &buf[*slot as usize]);
                }
            },
            out,
        );
        if self.record {
            self.ledger
                .borrow_mut()
                .raised(&alert, &cp.subject_kind, due);
        }
        Written {
            tier: alert.tier,
            calendar: alert.calendar.is_some(),
        }
    }

    /// Fills `alert` with the alert of `hit`, re-using its strings; returns
    /// when it escalates if it does. The evidence is filled if `evidence`
    /// or if the alert escalates (the ledger keeps a copy of an alert only
    /// to raise it again).
    fn fill(
        &self,
        hit: Hit,
        source: &Source,
        detected_at: &str,
        alert: &mut Alert,
        evidence: bool,
    ) -> Option<i64> {
        let g = &self.graph;
        let env = &self.env;
        let cp = &g.control_points[hit.control_point as usize];
        let buf = &self.buffers[cp.event_type as usize];
        let a = alert;
        a.alert_id.clear();
        alert::write_alert_id(&env.event_type, &env.event_id, &cp.id, &mut a.alert_id);
        set(&mut a.control_point, &cp.id);
        set(&mut a.domain, &cp.domain);
        set(&mut a.title, &cp.title);
        a.tier = hit.tier;
        let tier = cp.tiers.iter().find(|t| t.tier == hit.tier);
        let role = tier.map_or(levee_rules::default_notify(hit.tier), |t| Some(&*t.notify));
        set(&mut a.notify, role.unwrap_or(""));
        // What levee did: only a request can be blocked.
        let action = if self.intercepts[cp.event_type as usize] {
            cp.action
        } else {
            Action::Alert
        };
        set(&mut a.action, action.as_str());
        a.subject.clear();
        buf[cp.subject as usize].write_display(&mut a.subject);
        alert::set_people(&mut a.people, cp.people.iter().map(|&s| &buf[s as usize]));
        set(&mut a.branch, &env.branch);
        set(&mut a.event_id, &env.event_id);
        set(&mut a.event_type, &env.event_type);
        set(&mut a.occurred_at, &env.occurred_at);
        set(&mut a.detected_at, detected_at);
        a.source.set(source);
        set(&mut a.ruleset_version, &g.version);
        a.message.clear();
        for part in &cp.message {
            match part {
                MessagePart::Text(t) => a.message.push_str(t),
                MessagePart::Value(s) => buf[*s as usize].write_display(&mut a.message),
                MessagePart::Amount(s) => buf[*s as usize].write_amount(&mut a.message),
            }
        }
        match cp.message_zh.as_ref().filter(|_| self.chinese) {
            Some(parts) => {
                let m = a.message_zh.get_or_insert_with(String::new);
                m.clear();
                for part in parts {
                    match part {
                        MessagePart::Text(t) => m.push_str(t),
                        MessagePart::Value(s) => buf[*s as usize].write_display(m),
                        MessagePart::Amount(s) => buf[*s as usize].write_amount(m),
                    }
                }
            }
            None => a.message_zh = None,
        }
        let calendar = if cp.reads_calendar {
            env.calendar.label()
        } else {
            None
        };
        match (calendar, &mut a.calendar) {
            (Some(l), Some(c)) => set(c, l),
            (l, c) => *c = l.map(str::to_owned),
        }
        a.escalated_from = None;
        // The period starts when the alert is raised: on the wall clock in
        // the service, at the event's time in replay and tests.
        let raised = match self.clock {
            Clock::EventTime => env.occurred.map_or(0, |t| t.timestamp()),
            Clock::Wall(now) => now,
        };
        // Tier 3 is the last: it has no deadline to escalate at.
        let due = cp
            .escalate_after
            .filter(|_| hit.tier < 3)
            .map(|p| self.deadline(p, raised));
        a.evidence.clear();
        if evidence || due.is_some() {
            for (name, s) in &cp.evidence {
                a.evidence.insert(name.clone(), buf[*s as usize].to_json());
            }
        }
        let (at, by) = due.unzip();
        a.rectify_by = by;
        at
    }

    /// The verdict on the last event, if it is a request (its type says
    /// `request: true`) and its type has intercepting control points.
    /// A copy evaluated on its own has none: its type's event had it.
    pub fn verdict(&self) -> Option<Verdict> {
        if !self.intercepts[self.env.type_index as usize] || self.is_copy() {
            return None;
        }
        let blocking: Vec<String> = self
            .hits
            .iter()
            .map(|h| &self.graph.control_points[h.control_point as usize])
            .filter(|cp| cp.action == Action::Block)
            .map(|cp| cp.id.clone())
            .collect();
        Some(Verdict {
            event_id: self.env.event_id.clone(),
            verdict: if blocking.is_empty() {
                "allow"
            } else {
                "block"
            },
            control_points: blocking,
            ruleset_version: self.graph.version.clone(),
        })
    }

    /// Decodes, evaluates and builds every alert and the verdict of one event.
    pub fn process(
        &mut self,
        bytes: &[u8],
        source: &Source,
        detected_at: &str,
    ) -> Result<Processed, BadInput> {
        let stats = self.evaluate(bytes)?;
        Ok(self.processed(stats, source, detected_at))
    }

    /// [`Engine::process`] for a caller with a clock (`now`, seconds): an
    /// event stamped more than `max_skew` seconds after it is refused
    /// ([`BadKind::Future`]) before it touches event time or state.
    pub fn process_bounded(
        &mut self,
        bytes: &[u8],
        source: &Source,
        detected_at: &str,
        (now, max_skew): (i64, i64),
    ) -> Result<Processed, BadInput> {
        self.decode(bytes)?;
        self.check_future(now, max_skew)?;
        let stats = self.run();
        Ok(self.processed(stats, source, detected_at))
    }

    /// The alerts and verdict of the event just evaluated.
    fn processed(&self, stats: EvalStats, source: &Source, detected_at: &str) -> Processed {
        let alerts = self
            .hits
            .iter()
            .map(|h| self.alert(*h, source, detected_at))
            .collect();
        Processed {
            alerts,
            verdict: self.verdict(),
            stats,
        }
    }

    /// The value of a slot of an event type's buffer after the last
    /// evaluation of that type (tests, evidence).
    pub fn slot(&self, event_type: u32, slot: u32) -> &Val {
        &self.buffers[event_type as usize][slot as usize]
    }
}

/// Whether two event types decode alike: the same fields, types and
/// requirements, slot for slot.
fn same_fields(a: &levee_rules::graph::EventType, b: &levee_rules::graph::EventType) -> bool {
    a.fields.len() == b.fields.len()
        && a.fields.iter().zip(&b.fields).all(|(x, y)| {
            x.name == y.name && x.ty == y.ty && x.required == y.required && x.common == y.common
        })
}

/// Sets a string, re-using its allocation.
fn set(s: &mut String, v: &str) {
    s.clear();
    s.push_str(v);
}
