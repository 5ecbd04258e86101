//! Per-subject state of stateful control points, in event time.
//!
//! - windows of windowed aggregates (`aggregates:`),
//! - since when a `for:` condition has held,
//! - when each tier last alerted (`suppress:`).
//!
//! Windows are kept under their aggregate's key, `for:` and suppression
//! under their control point's ([`StateKeys`]): a reload or a restore
//! under another catalog keeps each point's history with that point.
//! The alert ledger is [`crate::ledger`]. Everything is keyed by the subject's value as a string; the caller keeps
//! one `State` per Kafka partition, so a partition's subjects move with it.

use std::collections::HashSet;

use levee_rules::graph::{Aggregate, EventType};
use levee_rules::model::AggregateFn;
use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

use crate::exact::Windows;
use crate::value::Val;

/// One subject's event-time state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SubjectState {
    /// Event time of the subject's latest event.
    pub last_seen: i64,
    /// Entries of every window of the subject, in one vector: grouped by
    /// window, in event-time order within each (see [`Entry`]).
    /// `ThinVec`s, one word each (no allocation while empty): a partition
    /// keeps a map entry per subject, and most subjects have no holds and
    /// no suppression.
    pub windows: ThinVec<Entry>,
    /// (control point key) → since when its condition has held.
    pub holds: ThinVec<(u64, i64)>,
    /// (control point key, tier) → when it last alerted.
    pub last_alert: ThinVec<(u64, u8, i64)>,
    /// What changed during the current event (see [`State::settle`]).
    #[serde(skip)]
    pub(crate) changed: Changed,
}

/// What an event changed in a subject's state: whether the changelog must
/// write it again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Changed {
    /// Windows, holds or suppression.
    content: bool,
    /// `last_seen` moved to a later day ([`SEEN_GRAIN`]).
    seen: bool,
}

/// `last_seen` is written to the changelog when it moves to a later day of
/// event time, not at every event: a restored subject's `last_seen` is at
/// most this much behind, and idle subjects are forgotten (`state.ttl`,
/// 400 days by default) no more than that much early after a restore.
pub const SEEN_GRAIN: i64 = 86_400;

/// The keys state is kept under in one ruleset: its aggregates' and its
/// control points' (see `Aggregate::key`, `ControlPoint::key`). State under
/// any other key belongs to a definition that no longer exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateKeys {
    windows: HashSet<u64>,
    points: HashSet<u64>,
}

impl StateKeys {
    pub fn of(graph: &levee_rules::RuleGraph) -> StateKeys {
        StateKeys {
            windows: graph
                .event_types
                .iter()
                .flat_map(|t| t.aggregates.iter().map(|a| a.key))
                .collect(),
            points: graph.control_points.iter().map(|c| c.key).collect(),
        }
    }

    /// Whether every key of `self` is also one of `other`'s.
    pub fn within(&self, other: &StateKeys) -> bool {
        self.windows.is_subset(&other.windows) && self.points.is_subset(&other.points)
    }

    /// Whether state is kept under this aggregate key (`Aggregate::key`).
    pub fn has_window(&self, key: u64) -> bool {
        self.windows.contains(&key)
    }

    /// Whether state is kept under this control point key (`ControlPoint::key`).
    pub fn has_point(&self, key: u64) -> bool {
        self.points.contains(&key)
    }
}

impl SubjectState {
    /// Nothing kept: no window entry, no hold, no suppression.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.holds.is_empty() && self.last_alert.is_empty()
    }

    /// Drops the windows and control-point state of definitions not in
    /// `keys`; whether anything was dropped.
    pub fn retain_known(&mut self, keys: &StateKeys) -> bool {
        let before = (self.windows.len(), self.holds.len(), self.last_alert.len());
        self.windows.retain(|e| keys.windows.contains(&e.window));
        self.holds.retain(|(k, _)| keys.points.contains(k));
        self.last_alert.retain(|(k, _, _)| keys.points.contains(k));
        let dropped = before != (self.windows.len(), self.holds.len(), self.last_alert.len());
        self.changed.content |= dropped;
        dropped
    }
}

/// One event in one window, 24 bytes: which window (its aggregate's key),
/// when, and the value it counts with — the number's bits for
/// `sum`/`min`/`max`/`avg`, a 64-bit digest of the value for `distinct`,
/// nothing for `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub window: u64,
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
    /// The subjects the current event looked up to record in (the first
    /// `n_touched`; the strings are reused from event to event).
    #[serde(skip)]
    touched: Vec<String>,
    #[serde(skip)]
    n_touched: usize,
}

impl State {
    /// Makes room for `n` more subjects at once, so that the map is not
    /// copied again and again as it grows (replay knows about how many
    /// events it will read).
    pub fn reserve(&mut self, n: usize) {
        self.subjects.reserve(n);
    }

    /// Stops (or resumes) remembering changed subjects for a changelog.
    pub fn set_tracking(&mut self, on: bool) {
        self.untracked = !on;
        if !on {
            self.dirty = HashSet::new();
        }
    }

    /// A subject's state to record in, created empty if new. What the
    /// event changes in it is settled by [`State::settle`] once the event
    /// is evaluated.
    pub fn subject_mut(&mut self, key: &str, at: i64) -> &mut SubjectState {
        let touched = &self.touched[..self.n_touched];
        if !touched.iter().any(|k| k == key) {
            if self.n_touched == self.touched.len() {
                self.touched.push(String::new());
            }
            let slot = &mut self.touched[self.n_touched];
            slot.clear();
            slot.push_str(key);
            self.n_touched += 1;
        }
        let s = self.subjects.entry_ref(key).or_default();
        if at.div_euclid(SEEN_GRAIN) > s.last_seen.div_euclid(SEEN_GRAIN) {
            s.changed.seen = true;
        }
        s.last_seen = s.last_seen.max(at);
        s
    }

    /// After an event: each subject it recorded in is remembered for the
    /// changelog if its state changed (a window entry added or pruned, a
    /// hold, a suppression, `last_seen` on a later day); a subject left
    /// with nothing to keep is dropped (and written as gone if it had
    /// something before). A stateless event of a new subject leaves no
    /// trace.
    pub fn settle(&mut self) {
        for k in &self.touched[..self.n_touched] {
            let Some(s) = self.subjects.get_mut(k.as_str()) else {
                continue;
            };
            let changed = std::mem::take(&mut s.changed);
            let empty = s.is_empty();
            if empty {
                self.subjects.remove(k.as_str());
            }
            let write = changed.content || (changed.seen && !empty);
            if write && !self.untracked && !self.dirty.contains(k.as_str()) {
                self.dirty.insert(k.as_str().into());
            }
        }
        self.n_touched = 0;
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

    /// Drops, in every subject, the state of definitions not in `keys` (a
    /// reload that removed or changed them); the subjects changed become
    /// dirty. Returns how many changed.
    pub fn retain_known(&mut self, keys: &StateKeys) -> usize {
        let mut changed = 0;
        let (dirty, untracked) = (&mut self.dirty, self.untracked);
        self.subjects.retain(|k, s| {
            if s.retain_known(keys) {
                s.changed = Changed::default();
                changed += 1;
                if !untracked && !dirty.contains(k.as_str()) {
                    dirty.insert(k.as_str().into());
                }
            }
            !s.is_empty()
        });
        changed
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
        key: u64,
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
                self.changed.content = true;
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
            let before = self.windows.len();
            self.windows
                .retain(|e| e.window != key || e.at > newest - spec.over);
            self.changed.content |= self.windows.len() != before;
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
    pub fn held_for(&mut self, cp: u64, holds: bool, at: i64, needed: i64, record: bool) -> bool {
        let pos = self.holds.iter().position(|(c, _)| *c == cp);
        if !holds {
            if record {
                if let Some(p) = pos {
                    self.holds.swap_remove(p);
                    self.changed.content = true;
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
                Some(p) if self.holds[p].1 == since => {}
                Some(p) => {
                    self.holds[p].1 = since;
                    self.changed.content = true;
                }
                None => {
                    self.holds.push((cp, since));
                    self.changed.content = true;
                }
            }
        }
        at - since >= needed
    }

    /// `suppress:`: whether an alert of this tier is due, recording it if so.
    pub fn due(&mut self, cp: u64, tier: u8, at: i64, period: i64, record: bool) -> bool {
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
            self.changed.content = true;
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
fn in_window(e: &Entry, key: u64, spec: &Aggregate, at: i64) -> bool {
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
        let window = spec.key;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> SubjectState {
        SubjectState {
            last_seen: 0,
            windows: thin_vec::thin_vec![
                Entry {
                    window: 7,
                    at: 1,
                    value: 0,
                },
                Entry {
                    window: 8,
                    at: 2,
                    value: 0,
                },
            ],
            holds: thin_vec::thin_vec![(100, 5), (101, 6)],
            last_alert: thin_vec::thin_vec![(100, 1, 5), (102, 2, 6)],
            changed: Changed::default(),
        }
    }

    #[test]
    fn only_state_of_known_definitions_is_kept() {
        let keys = StateKeys {
            windows: [8].into_iter().collect(),
            points: [100].into_iter().collect(),
        };
        let mut s = subject();
        assert!(s.retain_known(&keys));
        assert_eq!(s.windows.len(), 1);
        assert_eq!(s.windows[0].window, 8);
        assert_eq!(s.holds, vec![(100, 5)]);
        assert_eq!(s.last_alert, vec![(100, 1, 5)]);
        assert!(!s.retain_known(&keys), "nothing more to drop");
    }

    #[test]
    fn pruning_marks_changed_subjects_for_the_changelog() {
        let mut state = State::default();
        state.subjects.insert("V1".to_owned(), subject());
        let keys = StateKeys::default();
        assert_eq!(state.retain_known(&keys), 1);
        assert!(state.take_dirty().contains("V1"));
        assert!(StateKeys::default().within(&keys));
    }

    /// What one recorded event leaves: the subject as `Engine::run` looks
    /// it up, `f` as its control points change it, then the settling.
    fn event(state: &mut State, key: &str, at: i64, f: impl FnOnce(&mut SubjectState)) {
        f(state.subject_mut(key, at));
        state.settle();
    }

    #[test]
    fn only_what_changed_and_matters_is_written() {
        let mut state = State::default();
        // A stateless event of a new subject: nothing kept, nothing written.
        event(&mut state, "V1", 1_000, |_| {});
        assert!(state.subjects.is_empty());
        assert!(state.take_dirty().is_empty());
        // A hold starts: kept and written.
        event(&mut state, "V1", 2_000, |s| {
            s.held_for(9, true, 2_000, 60, true);
        });
        assert!(state.take_dirty().contains("V1"));
        // Still holding, the same day: nothing new to write.
        event(&mut state, "V1", 3_000, |s| {
            s.held_for(9, true, 3_000, 60, true);
        });
        assert!(state.take_dirty().is_empty());
        assert_eq!(state.subjects["V1"].last_seen, 3_000);
        // A later day: last_seen is written again.
        event(&mut state, "V1", 3_000 + SEEN_GRAIN, |s| {
            s.held_for(9, true, 3_000 + SEEN_GRAIN, 60, true);
        });
        assert!(state.take_dirty().contains("V1"));
        // The hold ends: nothing left, the subject goes and is written as gone.
        event(&mut state, "V1", 4_000 + SEEN_GRAIN, |s| {
            s.held_for(9, false, 4_000 + SEEN_GRAIN, 60, true);
        });
        assert!(!state.subjects.contains_key("V1"));
        assert!(state.take_dirty().contains("V1"));
    }

    #[test]
    fn a_subject_emptied_by_a_reload_is_dropped() {
        let mut state = State::default();
        state.subjects.insert("V1".to_owned(), subject());
        assert_eq!(state.retain_known(&StateKeys::default()), 1);
        assert!(state.subjects.is_empty());
    }

    #[test]
    fn held_for_and_suppression_are_per_point_key() {
        let mut s = SubjectState::default();
        assert!(!s.held_for(9, true, 100, 60, true));
        assert!(s.held_for(9, true, 160, 60, true));
        assert!(!s.held_for(10, true, 160, 60, true), "another point's hold");
        assert!(s.due(9, 1, 100, 50, true));
        assert!(!s.due(9, 1, 120, 50, true));
        assert!(s.due(9, 2, 120, 50, true), "another tier");
        assert!(s.due(10, 1, 120, 50, true), "another point");
    }
}
