//! Per-subject state of stateful control points, in event time.
//!
//! - windows of windowed aggregates (`aggregates:`),
//! - since when a `for:` condition has held,
//! - when each tier last alerted (`suppress:`),
//! - the alert ledger: open alerts awaiting rectification or escalation
//!   (`escalate_after:`), and the subject profiles (一人一档).
//!
//! Everything is keyed by the subject's value as a string; the caller keeps
//! one `State` per Kafka partition, so a partition's subjects move with it.

use std::collections::{BTreeMap, HashMap, HashSet};

use levee_rules::graph::{Aggregate, EventType};
use levee_rules::model::AggregateFn;
use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::exact::Windows;
use crate::value::Val;

/// One subject's event-time state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SubjectState {
    /// Event time of the subject's latest event.
    pub last_seen: i64,
    /// Entries of every window of the subject, in one vector: grouped by
    /// window, in event-time order within each (see [`Entry`]).
    pub windows: Vec<Entry>,
    /// (control point) → since when its condition has held.
    pub holds: Vec<(u32, i64)>,
    /// (control point, tier) → when it last alerted.
    pub last_alert: Vec<(u32, u8, i64)>,
}

/// One event in one window, 24 bytes: which window (event type << 16 |
/// aggregate), when, and the value it counts with — the number's bits for
/// `sum`/`min`/`max`/`avg`, a 64-bit digest of the value for `distinct`,
/// nothing for `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub window: u32,
    pub at: i64,
    pub value: u64,
}

/// Whether an aggregate folds numbers (`sum`, `min`, `max`, `avg`).
#[inline]
pub fn numeric(func: AggregateFn) -> bool {
    matches!(
        func,
        AggregateFn::Sum | AggregateFn::Min | AggregateFn::Max | AggregateFn::Avg
    )
}

/// The value an aggregate keeps of an event.
fn encode(func: AggregateFn, v: &Val) -> Option<u64> {
    match func {
        AggregateFn::Count => Some(0),
        AggregateFn::Distinct => Some(digest(v)),
        _ => v.as_number().map(f64::to_bits),
    }
}

/// FNV-1a over the value's kind and bytes: stable across runs and versions,
/// so digests in a changelog stay comparable after a restart.
fn digest(v: &Val) -> u64 {
    fn feed(h: u64, bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
    }
    let h = 0xcbf2_9ce4_8422_2325;
    match v {
        Val::Str(s) => feed(feed(h, &[1]), s.as_bytes()),
        Val::Int(i) => feed(feed(h, &[2]), &i.to_le_bytes()),
        Val::Float(f) => feed(feed(h, &[3]), &f.to_bits().to_le_bytes()),
        Val::Bool(b) => feed(feed(h, &[4]), &[u8::from(*b)]),
        Val::Missing | Val::Error => feed(h, &[0]),
    }
}

/// All per-subject state of one partition (or of one replay).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// hashbrown's map for its `entry_ref`: one hash per lookup, and a key
    /// allocated only for a new subject.
    pub subjects: hashbrown::HashMap<String, SubjectState, foldhash::fast::RandomState>,
    /// The highest event time seen.
    pub watermark: i64,
    /// Subjects changed since the last [`State::take_dirty`] (changelog).
    #[serde(skip)]
    dirty: HashSet<Box<str>>,
    /// Whether changed subjects are remembered for a changelog; off where
    /// nothing ever takes them (replay), so they do not pile up.
    #[serde(skip)]
    untracked: bool,
}

impl State {
    /// Stops (or resumes) remembering changed subjects for a changelog.
    pub fn set_tracking(&mut self, on: bool) {
        self.untracked = !on;
        if !on {
            self.dirty = HashSet::new();
        }
    }

    pub fn subject_mut(&mut self, key: &str, at: i64) -> &mut SubjectState {
        if !self.untracked && !self.dirty.contains(key) {
            self.dirty.insert(key.into());
        }
        let s = self.subjects.entry_ref(key).or_default();
        s.last_seen = s.last_seen.max(at);
        s
    }

    /// Runs `f` on a subject's state. Without `record`, a subject not seen
    /// before is not added: `f` gets an empty state that is then dropped.
    pub fn with_subject<R>(
        &mut self,
        key: &str,
        at: i64,
        record: bool,
        f: impl FnOnce(&mut SubjectState) -> R,
    ) -> R {
        if record {
            return f(self.subject_mut(key, at));
        }
        match self.subjects.get_mut(key) {
            Some(s) => f(s),
            None => f(&mut SubjectState::default()),
        }
    }

    /// Forgets subjects not seen for `ttl` seconds of event time.
    pub fn expire(&mut self, ttl: i64) -> usize {
        let cutoff = self.watermark.saturating_sub(ttl);
        let before = self.subjects.len();
        let dirty = &mut self.dirty;
        let untracked = self.untracked;
        self.subjects.retain(|k, s| {
            let keep = s.last_seen >= cutoff;
            if !keep && !untracked && !dirty.contains(k.as_str()) {
                dirty.insert(k.as_str().into());
            }
            keep
        });
        before - self.subjects.len()
    }

    /// The subjects changed (or expired) since the last call.
    pub fn take_dirty(&mut self) -> HashSet<Box<str>> {
        std::mem::take(&mut self.dirty)
    }
}

impl SubjectState {
    /// Adds the current event to aggregate `key`'s window (when it counts)
    /// and returns the aggregate over the window ending at `at`.
    pub fn aggregate(
        &mut self,
        key: u32,
        spec: &Aggregate,
        at: i64,
        value: Option<&Val>,
        record: bool,
    ) -> Val {
        let current = value.and_then(|v| encode(spec.func, v));
        if record {
            if let Some(v) = current {
                // Keep the window's entries together and in event-time
                // order, late events included; vectors grow one at a time.
                let idx = self
                    .windows
                    .iter()
                    .rposition(|e| e.window == key && e.at <= at)
                    .map(|i| i + 1)
                    .or_else(|| self.windows.iter().position(|e| e.window == key))
                    .unwrap_or(self.windows.len());
                self.windows.reserve_exact(1);
                self.windows.insert(
                    idx,
                    Entry {
                        window: key,
                        at,
                        value: v,
                    },
                );
            }
            let newest = self
                .windows
                .iter()
                .filter(|e| e.window == key)
                .map(|e| e.at)
                .max()
                .unwrap_or(at);
            self.windows
                .retain(|e| e.window != key || e.at > newest - spec.over);
            if self.windows.capacity() > self.windows.len() * 2 {
                self.windows.shrink_to_fit();
            }
        }
        let extra = if record { None } else { current };
        fold(
            spec.func,
            self.windows
                .iter()
                .filter(|e| in_window(e, key, spec, at))
                .map(|e| e.value),
            extra,
        )
    }

    /// `for:`: whether the condition has held long enough, updating when it
    /// started to hold.
    pub fn held_for(&mut self, cp: u32, holds: bool, at: i64, needed: i64, record: bool) -> bool {
        let pos = self.holds.iter().position(|(c, _)| *c == cp);
        if !holds {
            if record {
                if let Some(p) = pos {
                    self.holds.swap_remove(p);
                }
            }
            return false;
        }
        let since = match pos {
            Some(p) => self.holds[p].1.min(at),
            None => at,
        };
        if record {
            match pos {
                Some(p) => self.holds[p].1 = since,
                None => self.holds.push((cp, since)),
            }
        }
        at - since >= needed
    }

    /// `suppress:`: whether an alert of this tier is due, recording it if so.
    pub fn due(&mut self, cp: u32, tier: u8, at: i64, period: i64, record: bool) -> bool {
        let pos = self
            .last_alert
            .iter()
            .position(|(c, t, _)| *c == cp && *t == tier);
        if let Some(p) = pos {
            let last = self.last_alert[p].2;
            if at >= last && at - last < period {
                return false;
            }
        }
        if record {
            match pos {
                Some(p) => self.last_alert[p].2 = at,
                None => self.last_alert.push((cp, tier, at)),
            }
        }
        true
    }
}

/// Whether an entry is in aggregate `key`'s window ending at `at`.
#[inline]
fn in_window(e: &Entry, key: u32, spec: &Aggregate, at: i64) -> bool {
    e.window == key && e.at > at - spec.over && e.at <= at
}

/// Where the current event's windows are: built once per event.
#[derive(Debug, Clone, Copy)]
pub struct EventWindows<'a> {
    /// The event's type and its index (windows are keyed by it).
    pub et: &'a EventType,
    pub type_index: u32,
    /// The event's time, and whether it was recorded (else its own value
    /// is not in the window but folded besides).
    pub at: i64,
    pub record: bool,
}

/// The current event's windows in the state that holds them, as an exact
/// decision reads them ([`crate::exact`]): the values each aggregate folded
/// for the event, as [`SubjectState::aggregate`] found them.
#[derive(Debug, Clone, Copy)]
pub struct StateWindows<'a> {
    pub event: &'a EventWindows<'a>,
    pub state: &'a State,
}

impl Windows for StateWindows<'_> {
    fn entries(&self, a: u32, buf: &[Val], f: &mut dyn FnMut(f64)) -> Option<AggregateFn> {
        let ev = self.event;
        let et = ev.et;
        let spec = et.aggregates.get(a as usize)?;
        if !matches!(spec.func, AggregateFn::Sum | AggregateFn::Avg) {
            return Some(spec.func);
        }
        let mut text = crate::exact::StackText::default();
        // The subject's key, as `Engine::run` writes it.
        let key: &str = match buf.get(et.subject as usize)? {
            Val::Str(s) => s,
            Val::Int(i) => {
                std::fmt::Write::write_fmt(&mut text, format_args!("{i}")).ok()?;
                text.as_str()?
            }
            _ => return None,
        };
        let window = ev.type_index << 16 | a;
        if let Some(s) = self.state.subjects.get(key) {
            s.windows
                .iter()
                .filter(|e| in_window(e, window, spec, ev.at))
                .for_each(|e| f(f64::from_bits(e.value)));
        }
        if !ev.record {
            // The event's own value, as `Engine::run` gave it.
            let counts = spec
                .filter
                .is_none_or(|s| matches!(buf.get(s as usize), Some(Val::Bool(true))));
            let of = spec.of.filter(|_| counts);
            match of.and_then(|s| Some((s, buf.get(s as usize)?))) {
                Some((s, Val::Float(x))) => f(crate::exact::window_value(
                    &et.plan.ops,
                    et.program.n_fields,
                    buf,
                    s,
                    *x,
                )),
                Some((_, v)) => v.as_number().into_iter().for_each(&mut *f),
                None => {}
            }
        }
        Some(spec.func)
    }
}

fn fold(func: AggregateFn, stored: impl Iterator<Item = u64> + Clone, extra: Option<u64>) -> Val {
    let values = stored.clone().chain(extra);
    match func {
        AggregateFn::Count => Val::Int(values.count() as i64),
        AggregateFn::Distinct => {
            // Windows are small: count each digest at its first occurrence
            // (no allocation on the hot path).
            let n = values
                .clone()
                .enumerate()
                .filter(|(i, d)| !values.clone().take(*i).any(|e| e == *d))
                .count();
            Val::Int(n as i64)
        }
        _ => {
            let (mut n, mut sum, mut min, mut max) =
                (0usize, 0.0, f64::INFINITY, f64::NEG_INFINITY);
            for bits in values {
                let x = f64::from_bits(bits);
                n += 1;
                sum += x;
                min = min.min(x);
                max = max.max(x);
            }
            match func {
                AggregateFn::Sum => Val::Float(sum),
                _ if n == 0 => Val::Missing,
                AggregateFn::Min => Val::Float(min),
                AggregateFn::Max => Val::Float(max),
                _ => Val::Float(sum / n as f64),
            }
        }
    }
}

/// What happened to an alert, from `events.rectification`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Acknowledged,
    Rectified,
    Dismissed,
}

/// One open alert in the ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenAlert {
    pub subject: String,
    pub tier: u8,
    /// The alert as last raised, kept only where it may escalate.
    pub alert: Option<Alert>,
    /// Every id in its escalation chain, the first one first.
    pub chain: Vec<String>,
    /// When (seconds, on the clock that raised it: the wall clock in the
    /// service, event time in replay and tests) it escalates, if it does.
    pub escalate_at: Option<i64>,
    pub acknowledged: bool,
}

/// A subject's alert history (一人一档).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub subject: String,
    /// Alerts raised, escalations included.
    pub alerts: u64,
    pub open: u64,
    pub rectified: u64,
    pub dismissed: u64,
    pub escalated: u64,
    /// Open alerts by their current tier (1, 2, 3).
    pub open_by_tier: [u64; 3],
    /// Alerts raised by tier (1, 2, 3).
    pub by_tier: [u64; 3],
    pub by_control_point: BTreeMap<String, u64>,
    pub last_alert_at: Option<String>,
    /// `1 × open tier-1 + 3 × open tier-2 + 9 × open tier-3 + 0.1 × alerts raised`.
    pub risk_score: f64,
}

impl Profile {
    fn rescore(&mut self) {
        let [a, b, c] = self.open_by_tier;
        self.risk_score = (a + 3 * b + 9 * c) as f64 + 0.1 * self.alerts as f64;
        self.risk_score = (self.risk_score * 10.0).round() / 10.0;
    }
}

/// Where an escalated alert goes and by when it must be rectified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Escalation {
    /// The role the new tier notifies.
    pub notify: String,
    /// When it escalates again (seconds), if it does.
    pub deadline: Option<i64>,
    /// The deadline as people read it (RFC 3339, business time zone).
    pub rectify_by: Option<String>,
}

/// Open alerts and profiles.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ledger {
    pub open: BTreeMap<String, OpenAlert>,
    pub profiles: HashMap<String, Profile>,
    /// (escalation time, open alert key), earliest first.
    pub due: std::collections::BTreeSet<(i64, String)>,
    /// Subjects whose open alerts or profile changed since the last
    /// [`Ledger::take_dirty`] (changelog).
    #[serde(skip)]
    dirty: HashSet<String>,
}

fn tier_index(t: u8) -> usize {
    usize::from(t.clamp(1, 3) - 1)
}

impl Ledger {
    /// Records a newly raised alert.
    pub fn raised(&mut self, alert: &Alert, escalate_at: Option<i64>) {
        self.dirty.insert(alert.subject.clone());
        let p = self.profile(&alert.subject);
        p.alerts += 1;
        p.open += 1;
        p.open_by_tier[tier_index(alert.tier)] += 1;
        p.by_tier[tier_index(alert.tier)] += 1;
        *p.by_control_point
            .entry(alert.control_point.clone())
            .or_default() += 1;
        p.last_alert_at = Some(alert.detected_at.clone());
        p.rescore();
        if let Some(t) = escalate_at {
            self.due.insert((t, alert.alert_id.clone()));
        }
        self.open.insert(
            alert.alert_id.clone(),
            OpenAlert {
                subject: alert.subject.clone(),
                tier: alert.tier,
                alert: escalate_at.map(|_| alert.clone()),
                chain: vec![alert.alert_id.clone()],
                escalate_at,
                acknowledged: false,
            },
        );
    }

    fn profile(&mut self, subject: &str) -> &mut Profile {
        self.profiles
            .entry(subject.to_owned())
            .or_insert_with(|| Profile {
                subject: subject.to_owned(),
                ..Profile::default()
            })
    }

    /// Applies a rectification; returns false for an alert not open.
    pub fn rectify(&mut self, alert_id: &str, status: Status) -> bool {
        // Most rectifications name an alert that has not escalated: its key.
        let key = if self.open.contains_key(alert_id) {
            Some(alert_id.to_owned())
        } else {
            self.open
                .iter()
                .find(|(_, o)| o.chain.iter().any(|c| c == alert_id))
                .map(|(k, _)| k.clone())
        };
        let Some(key) = key else { return false };
        if status == Status::Acknowledged {
            if let Some(o) = self.open.get_mut(&key) {
                o.acknowledged = true;
                self.dirty.insert(o.subject.clone());
            }
            return true;
        }
        let Some(o) = self.open.remove(&key) else {
            return false;
        };
        if let Some(t) = o.escalate_at {
            self.due.remove(&(t, key.clone()));
        }
        self.dirty.insert(o.subject.clone());
        let p = self.profile(&o.subject);
        p.open = p.open.saturating_sub(1);
        let t = tier_index(o.tier);
        p.open_by_tier[t] = p.open_by_tier[t].saturating_sub(1);
        match status {
            Status::Rectified => p.rectified += 1,
            _ => p.dismissed += 1,
        }
        p.rescore();
        true
    }

    /// Escalates every open alert due by `now`: raised again one tier up,
    /// with `escalated_from` naming the alert it replaces. `next` gives the
    /// new tier's role and, if it may escalate again, its deadline counted
    /// from `now` (the new alert is raised now).
    pub fn escalate(
        &mut self,
        now: i64,
        detected_at: &str,
        next: impl Fn(&Alert, u8) -> Escalation,
    ) -> Vec<Alert> {
        let mut due = Vec::new();
        while let Some(first) = self.due.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, key)) = self.due.pop_first() {
                due.push(key);
            }
        }
        let mut out = Vec::new();
        for key in due {
            let Some(mut o) = self.open.remove(&key) else {
                continue;
            };
            let Some(old) = o.alert.clone().filter(|a| a.tier < 3) else {
                self.open.insert(key, o);
                continue;
            };
            let tier = old.tier + 1;
            let Escalation {
                notify,
                deadline,
                rectify_by,
            } = next(&old, tier);
            let deadline = deadline.filter(|_| tier < 3);
            let mut next = old.clone();
            next.tier = tier;
            next.notify = notify;
            next.rectify_by = rectify_by.filter(|_| deadline.is_some());
            next.alert_id = crate::alert::alert_id(&old.alert_id, "escalated", &tier.to_string());
            next.escalated_from = Some(old.alert_id.clone());
            next.detected_at = detected_at.to_owned();
            self.dirty.insert(old.subject.clone());
            let p = self.profile(&old.subject);
            p.alerts += 1;
            p.escalated += 1;
            p.open_by_tier[tier_index(old.tier)] =
                p.open_by_tier[tier_index(old.tier)].saturating_sub(1);
            p.open_by_tier[tier_index(tier)] += 1;
            p.by_tier[tier_index(tier)] += 1;
            p.last_alert_at = Some(detected_at.to_owned());
            p.rescore();
            o.chain.push(next.alert_id.clone());
            o.escalate_at = deadline;
            o.alert = Some(next.clone());
            o.tier = tier;
            if let Some(t) = o.escalate_at {
                self.due.insert((t, next.alert_id.clone()));
            }
            self.open.insert(next.alert_id.clone(), o);
            out.push(next);
        }
        out
    }
}

impl Ledger {
    /// The subjects changed since the last call.
    pub fn take_dirty(&mut self) -> HashSet<String> {
        std::mem::take(&mut self.dirty)
    }

    /// Every alert id of every open alert (escalation chains included).
    pub fn open_ids(&self) -> impl Iterator<Item = &str> {
        self.open
            .values()
            .flat_map(|o| o.chain.iter().map(String::as_str))
    }
}

/// Everything levee keeps about one subject of one partition: what a
/// changelog record holds. Empty (all parts absent) means forgotten.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SubjectSnapshot {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SubjectState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// Its open alerts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open: Vec<OpenAlert>,
}

impl SubjectSnapshot {
    pub fn is_empty(&self) -> bool {
        self.state.is_none() && self.profile.is_none() && self.open.is_empty()
    }
}

/// Snapshots of `subjects` (one pass over the open alerts).
pub fn snapshot(
    state: &State,
    ledger: &Ledger,
    subjects: impl IntoIterator<Item = String>,
) -> Vec<(String, SubjectSnapshot)> {
    let mut out: HashMap<String, SubjectSnapshot> = subjects
        .into_iter()
        .map(|s| {
            let snap = SubjectSnapshot {
                state: state.subjects.get(s.as_str()).cloned(),
                profile: ledger.profiles.get(&s).cloned(),
                open: Vec::new(),
            };
            (s, snap)
        })
        .collect();
    if !out.is_empty() {
        for o in ledger.open.values() {
            if let Some(snap) = out.get_mut(&o.subject) {
                snap.open.push(o.clone());
            }
        }
    }
    let mut v: Vec<_> = out.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Puts one subject's snapshot back (restoring a partition), into a ledger
/// that holds no open alerts of the subject yet: sets its state and
/// profile, adds its open alerts.
pub fn restore_subject(
    state: &mut State,
    ledger: &mut Ledger,
    subject: &str,
    snap: SubjectSnapshot,
) {
    match snap.state {
        Some(s) => {
            state.subjects.insert(subject.into(), s);
        }
        None => {
            state.subjects.remove(subject);
        }
    }
    match snap.profile {
        Some(p) => {
            ledger.profiles.insert(subject.to_owned(), p);
        }
        None => {
            ledger.profiles.remove(subject);
        }
    }
    for o in snap.open {
        let Some(key) = o.chain.last().cloned() else {
            continue;
        };
        if let Some(t) = o.escalate_at {
            ledger.due.insert((t, key.clone()));
        }
        ledger.open.insert(key, o);
    }
}
