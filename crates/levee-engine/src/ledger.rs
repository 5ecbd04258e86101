//! The alert ledger and subject profiles (一人一档): open alerts awaiting
//! rectification or escalation (`escalate_after:`), rectifications, and
//! what a changelog record holds of one subject ([`SubjectSnapshot`]).
//!
//! Open alerts are keyed by the 128 bits of their current alert id (an
//! escalated alert's earlier ids are aliases of it) and listed under their
//! subject, so a snapshot of a few subjects reads only theirs. The caller
//! keeps one `Ledger` per Kafka partition, beside that partition's
//! [`State`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::state::{State, SubjectState};

/// An alert id as a number: its 32 hex digits read as 128 bits (an id of
/// another form, as tests write them, hashed to 128 bits).
type Key = u128;

/// foldhash: the keys are ids and subjects, not attacker-chosen lookups.
type Fast = foldhash::fast::RandomState;

fn key(id: &str) -> Key {
    let b = id.as_bytes();
    if b.len() == 32 {
        let mut k: u128 = 0;
        let mut hex = true;
        for &c in b {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => {
                    hex = false;
                    break;
                }
            };
            k = (k << 4) | u128::from(d);
        }
        if hex {
            return k;
        }
    }
    use std::hash::{Hash, Hasher};
    let mut halves = [0u64; 2];
    for (salt, half) in halves.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, id).hash(&mut h);
        *half = h.finish();
    }
    (u128::from(halves[0]) << 64) | u128::from(halves[1])
}

/// What happened to an alert, from `events.rectification`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Acknowledged,
    Rectified,
    Dismissed,
    /// Filed after its result was published (归档): the end of the loop.
    Archived,
}

/// One open alert in the ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenAlert {
    pub subject: String,
    pub tier: u8,
    /// The alert as last raised, kept only where it may escalate.
    pub alert: Option<Box<Alert>>,
    /// Every id in its escalation chain, the first one first.
    pub chain: Vec<String>,
    /// When (seconds, on the clock that raised it: the wall clock in the
    /// service, event time in replay and tests) it escalates, if it does.
    pub escalate_at: Option<i64>,
    pub acknowledged: bool,
    /// The people it names (`people`): none of them may close it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<String>,
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

/// What the ledger keeps of one subject: its profile and its open alerts.
#[derive(Debug, Clone, Default)]
struct Entry {
    profile: Option<Profile>,
    /// Its open alerts' keys, in the order they were raised.
    open: Vec<Key>,
}

/// Open alerts and profiles.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    open: HashMap<Key, OpenAlert, Fast>,
    /// An escalated alert's earlier ids → the key it is open under.
    aliases: HashMap<Key, Key, Fast>,
    /// hashbrown's map for its `entry_ref`: a key allocated only for a new
    /// subject.
    subjects: hashbrown::HashMap<String, Entry, Fast>,
    /// (escalation time, open alert key), earliest first.
    due: BTreeSet<(i64, Key)>,
    /// Subjects whose open alerts or profile changed since the last
    /// [`Ledger::take_dirty`] (changelog).
    dirty: HashSet<String, Fast>,
    /// Whether changed subjects are remembered for a changelog (off in
    /// replay, where nothing takes them).
    untracked: bool,
}

/// A profile's key: `<kind>:<subject>` (`supplier:S-1`); the subject alone
/// when the kind is empty.
pub fn typed(kind: &str, subject: &str) -> String {
    if kind.is_empty() {
        return subject.to_owned();
    }
    let mut s = String::with_capacity(kind.len() + 1 + subject.len());
    s.push_str(kind);
    s.push(':');
    s.push_str(subject);
    s
}

fn tier_index(t: u8) -> usize {
    usize::from(t.clamp(1, 3) - 1)
}

impl Ledger {
    /// Records a newly raised alert about a subject of kind `kind` (its
    /// field's name without `_id`): kept under `<kind>:<subject>`, so a
    /// supplier and a vehicle of the same id have profiles of their own.
    pub fn raised(&mut self, alert: &Alert, kind: &str, escalate_at: Option<i64>) {
        let subject = typed(kind, &alert.subject);
        self.mark(&subject);
        let k = key(&alert.alert_id);
        if let Some(old) = self.open.remove(&k) {
            // The same alert raised again (a redelivered event): one entry.
            self.forget(&old, k);
        }
        let entry = self.entry(&subject);
        entry.open.push(k);
        let p = entry.profile.get_or_insert_with(|| Profile {
            subject: subject.clone(),
            ..Profile::default()
        });
        p.alerts += 1;
        p.open += 1;
        p.open_by_tier[tier_index(alert.tier)] += 1;
        p.by_tier[tier_index(alert.tier)] += 1;
        // Allocated only the first time (an alert storm raises many).
        match p.by_control_point.get_mut(&alert.control_point) {
            Some(n) => *n += 1,
            None => {
                p.by_control_point.insert(alert.control_point.clone(), 1);
            }
        }
        match &mut p.last_alert_at {
            Some(at) => {
                at.clear();
                at.push_str(&alert.detected_at);
            }
            at => *at = Some(alert.detected_at.clone()),
        }
        p.rescore();
        if let Some(t) = escalate_at {
            self.due.insert((t, k));
        }
        self.open.insert(
            k,
            OpenAlert {
                subject,
                tier: alert.tier,
                alert: escalate_at.map(|_| Box::new(alert.clone())),
                chain: vec![alert.alert_id.clone()],
                escalate_at,
                acknowledged: false,
                people: alert.people.clone(),
            },
        );
    }

    /// The open alert an id of its chain names.
    pub fn open_alert(&self, alert_id: &str) -> Option<&OpenAlert> {
        self.find(alert_id).and_then(|k| self.open.get(&k))
    }

    fn entry(&mut self, subject: &str) -> &mut Entry {
        self.subjects.entry_ref(subject).or_default()
    }

    fn profile(&mut self, subject: &str) -> &mut Profile {
        self.entry(subject).profile.get_or_insert_with(|| Profile {
            subject: subject.to_owned(),
            ..Profile::default()
        })
    }

    /// Takes an alert that is no longer open under `k` off its subject's
    /// list and off the schedule.
    fn forget(&mut self, o: &OpenAlert, k: Key) {
        if let Some(t) = o.escalate_at {
            self.due.remove(&(t, k));
        }
        if let Some(e) = self.subjects.get_mut(&o.subject) {
            if let Some(i) = e.open.iter().position(|&x| x == k) {
                e.open.remove(i);
            }
        }
        for id in &o.chain[..o.chain.len().saturating_sub(1)] {
            self.aliases.remove(&key(id));
        }
    }

    /// The key an open alert is kept under, by any id of its chain.
    fn find(&self, alert_id: &str) -> Option<Key> {
        let k = key(alert_id);
        if self.open.contains_key(&k) {
            return Some(k);
        }
        self.aliases.get(&k).copied()
    }

    /// Applies a rectification; returns false for an alert not open.
    pub fn rectify(&mut self, alert_id: &str, status: Status) -> bool {
        let Some(k) = self.find(alert_id) else {
            return false;
        };
        if status == Status::Archived {
            // Only a closed alert is archived (see `rectify::check`).
            return false;
        }
        if status == Status::Acknowledged {
            if let Some(o) = self.open.get_mut(&k) {
                o.acknowledged = true;
                let subject = o.subject.clone();
                self.mark(&subject);
            }
            return true;
        }
        let Some(o) = self.open.remove(&k) else {
            return false;
        };
        self.forget(&o, k);
        self.mark(&o.subject);
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
        let mut out = Vec::new();
        while let Some(&(at, k)) = self.due.first() {
            if at > now {
                break;
            }
            self.due.pop_first();
            let escalates = self
                .open
                .get(&k)
                .and_then(|o| o.alert.as_ref())
                .is_some_and(|a| a.tier < 3);
            if !escalates {
                continue;
            }
            let Some(mut o) = self.open.remove(&k) else {
                continue;
            };
            let Some(old) = o.alert.take() else {
                continue;
            };
            let tier = old.tier + 1;
            let Escalation {
                notify,
                deadline,
                rectify_by,
            } = next(&old, tier);
            let deadline = deadline.filter(|_| tier < 3);
            let (from_tier, mut up) = (old.tier, *old);
            let from = std::mem::take(&mut up.alert_id);
            up.tier = tier;
            up.notify = notify;
            up.rectify_by = rectify_by.filter(|_| deadline.is_some());
            up.alert_id = crate::alert::alert_id(&from, "escalated", &tier.to_string());
            up.escalated_from = Some(from);
            up.detected_at.clear();
            up.detected_at.push_str(detected_at);
            self.mark(&o.subject);
            let nk = key(&up.alert_id);
            let entry = self.entry(&o.subject);
            if let Some(slot) = entry.open.iter_mut().find(|x| **x == k) {
                *slot = nk;
            }
            let p = self.profile(&o.subject);
            p.alerts += 1;
            p.escalated += 1;
            p.open_by_tier[tier_index(from_tier)] =
                p.open_by_tier[tier_index(from_tier)].saturating_sub(1);
            p.open_by_tier[tier_index(tier)] += 1;
            p.by_tier[tier_index(tier)] += 1;
            p.last_alert_at = Some(detected_at.to_owned());
            p.rescore();
            o.chain.push(up.alert_id.clone());
            for id in &o.chain[..o.chain.len() - 1] {
                self.aliases.insert(key(id), nk);
            }
            o.escalate_at = deadline;
            o.alert = Some(Box::new(up.clone()));
            o.tier = tier;
            if let Some(t) = o.escalate_at {
                self.due.insert((t, nk));
            }
            self.open.insert(nk, o);
            out.push(up);
        }
        out
    }

    /// Stops (or resumes) remembering changed subjects for a changelog.
    pub fn set_tracking(&mut self, on: bool) {
        self.untracked = !on;
        if !on {
            self.dirty = HashSet::default();
        }
    }

    fn mark(&mut self, subject: &str) {
        if !self.untracked && !self.dirty.contains(subject) {
            self.dirty.insert(subject.to_owned());
        }
    }

    /// The subjects changed since the last call.
    pub fn take_dirty(&mut self) -> HashSet<String, Fast> {
        std::mem::take(&mut self.dirty)
    }

    /// Every alert id of every open alert (escalation chains included).
    pub fn open_ids(&self) -> impl Iterator<Item = &str> {
        self.open
            .values()
            .flat_map(|o| o.chain.iter().map(String::as_str))
    }

    /// How many alerts are open.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// A subject's profile.
    pub fn profile_of(&self, subject: &str) -> Option<&Profile> {
        self.subjects.get(subject)?.profile.as_ref()
    }

    /// Every subject's profile.
    pub fn profiles(&self) -> impl Iterator<Item = (&str, &Profile)> {
        self.subjects
            .iter()
            .filter_map(|(s, e)| Some((s.as_str(), e.profile.as_ref()?)))
    }

    /// A subject's open alerts, in the order they were raised.
    fn open_of(&self, subject: &str) -> Vec<&OpenAlert> {
        self.subjects.get(subject).map_or_else(Vec::new, |e| {
            e.open.iter().filter_map(|k| self.open.get(k)).collect()
        })
    }

    /// Sets a subject's profile and adds its open alerts (restoring it).
    fn restore(&mut self, subject: &str, profile: Option<Profile>, open: Vec<OpenAlert>) {
        match profile {
            Some(p) => self.entry(subject).profile = Some(p),
            None => {
                if let Some(e) = self.subjects.get_mut(subject) {
                    e.profile = None;
                }
            }
        }
        for o in open {
            let Some(last) = o.chain.last() else {
                continue;
            };
            let k = key(last);
            if let Some(old) = self.open.remove(&k) {
                self.forget(&old, k);
            }
            for id in &o.chain[..o.chain.len() - 1] {
                self.aliases.insert(key(id), k);
            }
            if let Some(t) = o.escalate_at {
                self.due.insert((t, k));
            }
            self.entry(subject).open.push(k);
            self.open.insert(k, o);
        }
        if let Some(e) = self.subjects.get(subject) {
            if e.profile.is_none() && e.open.is_empty() {
                self.subjects.remove(subject);
            }
        }
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

/// One subject's snapshot borrowed from the engine: what a changelog
/// record writes, without a copy of its state. Serializes as the
/// [`SubjectSnapshot`] it reads back as.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SnapshotRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'a SubjectState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<&'a Profile>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub open: Vec<&'a OpenAlert>,
}

impl SnapshotRef<'_> {
    pub fn is_empty(&self) -> bool {
        self.state.is_none() && self.profile.is_none() && self.open.is_empty()
    }

    pub fn owned(&self) -> SubjectSnapshot {
        SubjectSnapshot {
            state: self.state.cloned(),
            profile: self.profile.cloned(),
            open: self.open.iter().map(|&o| o.clone()).collect(),
        }
    }
}

impl SubjectSnapshot {
    pub fn borrowed(&self) -> SnapshotRef<'_> {
        SnapshotRef {
            state: self.state.as_ref(),
            profile: self.profile.as_ref(),
            open: self.open.iter().collect(),
        }
    }
}

/// What is kept about `subject`, borrowed (see [`SnapshotRef`]).
pub fn snapshot_ref<'a>(state: &'a State, ledger: &'a Ledger, subject: &str) -> SnapshotRef<'a> {
    SnapshotRef {
        state: state.subjects.get(subject),
        profile: ledger.profile_of(subject),
        open: ledger.open_of(subject),
    }
}

/// Snapshots of `subjects` (each reads only its own open alerts), sorted.
pub fn snapshot(
    state: &State,
    ledger: &Ledger,
    subjects: impl IntoIterator<Item = String>,
) -> Vec<(String, SubjectSnapshot)> {
    let mut v: Vec<(String, SubjectSnapshot)> = subjects
        .into_iter()
        .map(|s| {
            let snap = snapshot_ref(state, ledger, &s).owned();
            (s, snap)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.dedup_by(|a, b| a.0 == b.0);
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
    ledger.restore(subject, snap.profile, snap.open);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;

    fn alert(id: &str, subject: &str, tier: u8) -> Alert {
        Alert {
            alert_id: id.to_owned(),
            control_point: "BA-101".to_owned(),
            domain: "arrears".to_owned(),
            title: "t".to_owned(),
            tier,
            notify: "department_manager".to_owned(),
            action: "alert".to_owned(),
            subject: subject.to_owned(),
            people: Vec::new(),
            branch: "wuhan".to_owned(),
            event_id: format!("e-{id}"),
            event_type: "arrears_snapshot".to_owned(),
            occurred_at: "2026-01-01T00:00:00Z".to_owned(),
            detected_at: "2026-01-01T00:00:00Z".to_owned(),
            source: crate::Source::Http { http: true },
            ruleset_version: "v".to_owned(),
            message: "m".to_owned(),
            message_zh: None,
            evidence: serde_json::Map::new(),
            escalated_from: None,
            rectify_by: None,
            calendar: None,
        }
    }

    #[test]
    fn profiles_are_kept_under_the_typed_subject() {
        let mut ledger = Ledger::default();
        ledger.raised(&alert("a1", "S-1", 1), "supplier", None);
        ledger.raised(&alert("a2", "S-1", 2), "vehicle", None);
        let keys: BTreeSet<&str> = ledger.profiles().map(|(s, _)| s).collect();
        assert_eq!(keys, BTreeSet::from(["supplier:S-1", "vehicle:S-1"]));
        let p = ledger.profile_of("vehicle:S-1").unwrap();
        assert_eq!((p.subject.as_str(), p.by_tier), ("vehicle:S-1", [0, 1, 0]));
        assert!(ledger.profile_of("S-1").is_none());
        assert!(ledger.rectify("a1", Status::Rectified));
        assert_eq!(ledger.profile_of("supplier:S-1").unwrap().rectified, 1);
    }

    fn next(deadline: Option<i64>) -> impl Fn(&Alert, u8) -> Escalation {
        move |_, tier| Escalation {
            notify: format!("tier-{tier}"),
            deadline,
            rectify_by: deadline.map(|d| d.to_string()),
        }
    }

    #[test]
    fn an_unrectified_alert_escalates_once_due_and_a_rectified_one_never() {
        let mut ledger = Ledger::default();
        ledger.raised(&alert("a1", "G1", 1), "", Some(100));
        ledger.raised(&alert("a2", "G2", 1), "", Some(100));
        assert!(ledger.rectify("a2", Status::Rectified));
        assert!(ledger.escalate(99, "t", next(Some(200))).is_empty());
        let up = ledger.escalate(100, "t", next(Some(200)));
        assert_eq!(up.len(), 1);
        assert_eq!((up[0].tier, up[0].notify.as_str()), (2, "tier-2"));
        assert_eq!(up[0].escalated_from.as_deref(), Some("a1"));
        assert_eq!(up[0].rectify_by.as_deref(), Some("200"));
        // The chain answers to the first id too.
        assert!(ledger.rectify("a1", Status::Dismissed));
        assert!(ledger.escalate(1000, "t", next(None)).is_empty());
        let p = &ledger.profile_of("G1").unwrap();
        assert_eq!((p.alerts, p.escalated, p.open, p.dismissed), (2, 1, 0, 1));
    }

    #[test]
    fn acknowledging_keeps_the_deadline_and_tier_3_is_the_last() {
        let mut ledger = Ledger::default();
        ledger.raised(&alert("a1", "G1", 2), "", Some(10));
        assert!(ledger.rectify("a1", Status::Acknowledged));
        let up = ledger.escalate(10, "t", next(Some(20)));
        assert_eq!(up[0].tier, 3);
        assert_eq!(up[0].rectify_by, None, "tier 3 has no deadline");
        assert!(ledger.escalate(1_000_000, "t", next(Some(30))).is_empty());
        assert!(!ledger.rectify("nope", Status::Rectified));
    }

    #[test]
    fn a_snapshot_holds_only_its_subjects_alerts_and_a_redelivery_is_one() {
        let mut ledger = Ledger::default();
        ledger.raised(&alert("a1", "G1", 1), "", None);
        ledger.raised(&alert("a1", "G1", 1), "", None);
        ledger.raised(&alert("a2", "G2", 1), "", Some(5));
        assert_eq!(ledger.open_count(), 2);
        let snaps = snapshot(&State::default(), &ledger, vec!["G2".to_owned()]);
        assert_eq!(snaps.len(), 1);
        assert_eq!(snaps[0].1.open.len(), 1);
        assert_eq!(snaps[0].1.open[0].chain, vec!["a2".to_owned()]);
        // Escalated, its first id still rectifies it, and it leaves G2 empty.
        assert_eq!(ledger.escalate(5, "t", next(None)).len(), 1);
        assert!(ledger.rectify("a2", Status::Rectified));
        assert!(ledger.open_of("G2").is_empty());
        assert!(!ledger.rectify("a2", Status::Rectified), "closed once");
    }

    #[test]
    fn a_32_digit_id_is_its_own_key() {
        let id = crate::alert::alert_id("t", "e1", "BA-101");
        assert_eq!(format!("{:032x}", key(&id)), id);
        assert_ne!(key("a1"), key("a2"));
    }

    #[test]
    fn a_snapshot_restores_profile_and_open_alerts() {
        let mut ledger = Ledger::default();
        let state = State::default();
        ledger.raised(&alert("a1", "G1", 1), "", Some(50));
        let snaps = snapshot(&state, &ledger, vec!["G1".to_owned()]);
        let (mut state2, mut ledger2) = (State::default(), Ledger::default());
        for (subject, snap) in snaps {
            restore_subject(&mut state2, &mut ledger2, &subject, snap);
        }
        assert_eq!(ledger2.profile_of("G1").unwrap().open, 1);
        assert_eq!(ledger2.escalate(50, "t", next(None)).len(), 1);
    }
}
