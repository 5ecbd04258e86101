//! The alert ledger and subject profiles (一人一档): open alerts awaiting
//! rectification or escalation (`escalate_after:`), rectifications, and
//! what a changelog record holds of one subject ([`SubjectSnapshot`]).
//!
//! Keyed by alert id and by subject; the caller keeps one `Ledger` per
//! Kafka partition, beside that partition's [`State`].

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::state::{State, SubjectState};

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
    /// Whether changed subjects are remembered for a changelog (off in
    /// replay, where nothing takes them).
    #[serde(skip)]
    untracked: bool,
}

fn tier_index(t: u8) -> usize {
    usize::from(t.clamp(1, 3) - 1)
}

impl Ledger {
    /// Records a newly raised alert.
    pub fn raised(&mut self, alert: &Alert, escalate_at: Option<i64>) {
        self.mark(&alert.subject);
        let p = self.profile(&alert.subject);
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
                let subject = o.subject.clone();
                self.mark(&subject);
            }
            return true;
        }
        let Some(o) = self.open.remove(&key) else {
            return false;
        };
        if let Some(t) = o.escalate_at {
            self.due.remove(&(t, key.clone()));
        }
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
            self.mark(&old.subject);
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
    /// Stops (or resumes) remembering changed subjects for a changelog.
    pub fn set_tracking(&mut self, on: bool) {
        self.untracked = !on;
        if !on {
            self.dirty = HashSet::new();
        }
    }

    fn mark(&mut self, subject: &str) {
        if !self.untracked && !self.dirty.contains(subject) {
            self.dirty.insert(subject.to_owned());
        }
    }

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

#[cfg(test)]
mod tests {
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
        ledger.raised(&alert("a1", "G1", 1), Some(100));
        ledger.raised(&alert("a2", "G2", 1), Some(100));
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
        let p = &ledger.profiles["G1"];
        assert_eq!((p.alerts, p.escalated, p.open, p.dismissed), (2, 1, 0, 1));
    }

    #[test]
    fn acknowledging_keeps_the_deadline_and_tier_3_is_the_last() {
        let mut ledger = Ledger::default();
        ledger.raised(&alert("a1", "G1", 2), Some(10));
        assert!(ledger.rectify("a1", Status::Acknowledged));
        let up = ledger.escalate(10, "t", next(Some(20)));
        assert_eq!(up[0].tier, 3);
        assert_eq!(up[0].rectify_by, None, "tier 3 has no deadline");
        assert!(ledger.escalate(1_000_000, "t", next(Some(30))).is_empty());
        assert!(!ledger.rectify("nope", Status::Rectified));
    }

    #[test]
    fn a_snapshot_restores_profile_and_open_alerts() {
        let mut ledger = Ledger::default();
        let state = State::default();
        ledger.raised(&alert("a1", "G1", 1), Some(50));
        let snaps = snapshot(&state, &ledger, vec!["G1".to_owned()]);
        let (mut state2, mut ledger2) = (State::default(), Ledger::default());
        for (subject, snap) in snaps {
            restore_subject(&mut state2, &mut ledger2, &subject, snap);
        }
        assert_eq!(ledger2.profiles["G1"].open, 1);
        assert_eq!(ledger2.escalate(50, "t", next(None)).len(), 1);
    }
}
