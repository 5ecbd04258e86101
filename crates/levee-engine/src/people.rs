//! Person profiles (一人一档): alerts and rectifications folded into one
//! profile per employee the alerts name in `people`.
//!
//! Pure: no I/O and no clock. The caller says when each alert was raised
//! and each rectification made (seconds), and the `now` the risk score
//! decays to. Alerts are de-duplicated by `alert_id`: an alert raised
//! again is the same alert, and an escalation (`escalated_from`) moves its
//! alert up a tier instead of adding one. Output is ordered (persons by
//! id, maps by key), so two folds of the same input give equal JSON.
//!
//! The risk score (docs/people.md) sums over a person's alerts that are
//! not dismissed: tier weight (1, 3, 9 for tiers 1–3) × risk-grade weight
//! (low 1, medium 2, high 3; 2 when the point states none) × state weight
//! (open 1, rectified 0.5) × 0.5^(age / half-life), the age counted from
//! when the alert was raised to `now` (0 for an alert raised after it);
//! rounded to two decimals.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, SecondsFormat};
use levee_rules::model::RiskGrade;
use serde::Serialize;

use crate::alert::Alert;
use crate::ledger::Status;

/// How a score decays and how many of the last alerts a profile lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// After this many seconds an alert weighs half as much.
    half_life: i64,
    /// How many of the latest alerts a profile lists.
    last: usize,
}

/// Settings that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("the half-life of the risk score must be longer than 0 seconds, not {0}")]
    HalfLife(i64),
}

impl Settings {
    /// The default half-life: 180 days.
    pub const HALF_LIFE: i64 = 180 * 86_400;
    /// The default number of latest alerts listed.
    pub const LAST: usize = 5;

    pub fn new(half_life: i64, last: usize) -> Result<Settings, SettingsError> {
        if half_life <= 0 {
            return Err(SettingsError::HalfLife(half_life));
        }
        Ok(Settings { half_life, last })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            half_life: Settings::HALF_LIFE,
            last: Settings::LAST,
        }
    }
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Open,
    Rectified,
    Dismissed,
}

/// One alert as the fold keeps it, under its first id.
#[derive(Debug, Clone)]
struct Record {
    control_point: String,
    domain: String,
    /// Its current tier (an escalation raises it).
    tier: u8,
    grade: Option<RiskGrade>,
    raised_at: i64,
    people: Vec<String>,
    state: State,
    /// When it was rectified or dismissed, if the rectification says.
    closed_at: Option<i64>,
}

/// The fold: every alert seen, by its first id.
#[derive(Debug, Clone, Default)]
pub struct People {
    records: BTreeMap<String, Record>,
    /// Every id of an escalation chain → the chain's first id.
    first: HashMap<String, String>,
    /// Each person → the first ids of the alerts naming them, in id order
    /// (the order [`People::profiles`] sums a score in).
    by_person: HashMap<String, BTreeSet<String>>,
}

/// Time to rectify (整改用时) over the alerts rectified with a known time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TimeToRectify {
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_s: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_s: Option<i64>,
}

/// One of a profile's latest alerts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastAlert {
    /// The first id of the alert (an escalation's own ids lead to it).
    pub alert_id: String,
    pub control_point: String,
    /// Its current tier.
    pub tier: u8,
    /// RFC 3339, UTC.
    pub raised_at: String,
    pub state: State,
}

/// One person's profile (一人一档). Field order is the output's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonProfile {
    /// The employee number.
    pub person: String,
    /// Alerts naming the person, each once (escalations are not counted
    /// again).
    pub alerts: u64,
    pub open: u64,
    /// Open alerts by their current tier (1, 2, 3).
    pub open_by_tier: [u64; 3],
    /// Open alerts by the control point's domain.
    pub open_by_domain: BTreeMap<String, u64>,
    pub rectified: u64,
    pub dismissed: u64,
    pub time_to_rectify: TimeToRectify,
    /// The latest alerts, newest first.
    pub last_alerts: Vec<LastAlert>,
    pub risk_score: f64,
}

fn tier_weight(tier: u8) -> f64 {
    match tier {
        0 | 1 => 1.0,
        2 => 3.0,
        _ => 9.0,
    }
}

fn grade_weight(grade: Option<RiskGrade>) -> f64 {
    match grade {
        Some(RiskGrade::Low) => 1.0,
        Some(RiskGrade::Medium) | None => 2.0,
        Some(RiskGrade::High) => 3.0,
    }
}

fn state_weight(state: State) -> f64 {
    match state {
        State::Open => 1.0,
        State::Rectified => 0.5,
        State::Dismissed => 0.0,
    }
}

impl People {
    /// Folds in an alert raised at `at` (seconds), its control point's risk
    /// grade `grade`. An escalation updates the alert it escalates; an id
    /// already seen changes nothing.
    pub fn raised(&mut self, alert: &Alert, grade: Option<RiskGrade>, at: i64) {
        if self.first.contains_key(&alert.alert_id) {
            return;
        }
        if let Some(from) = &alert.escalated_from {
            let root = self
                .first
                .get(from)
                .cloned()
                .unwrap_or_else(|| from.clone());
            if let Some(r) = self.records.get_mut(&root) {
                r.tier = r.tier.max(alert.tier);
                self.first.insert(alert.alert_id.clone(), root);
                return;
            }
        }
        self.first
            .insert(alert.alert_id.clone(), alert.alert_id.clone());
        for p in &alert.people {
            self.by_person
                .entry(p.clone())
                .or_default()
                .insert(alert.alert_id.clone());
        }
        self.records.insert(
            alert.alert_id.clone(),
            Record {
                control_point: alert.control_point.clone(),
                domain: alert.domain.clone(),
                tier: alert.tier,
                grade,
                raised_at: at,
                people: alert.people.clone(),
                state: State::Open,
                closed_at: None,
            },
        );
    }

    /// Folds in a rectification of any id of an alert's chain, made at
    /// `at` if known; the latest one counts. False for an alert not seen.
    pub fn rectified(&mut self, alert_id: &str, status: Status, at: Option<i64>) -> bool {
        let Some(r) = self
            .first
            .get(alert_id)
            .and_then(|root| self.records.get_mut(root))
        else {
            return false;
        };
        let state = match status {
            Status::Acknowledged | Status::Archived => return true,
            Status::Rectified => State::Rectified,
            Status::Dismissed => State::Dismissed,
        };
        r.state = state;
        r.closed_at = at;
        true
    }

    /// [`People::rectified`] as the stream applies it: refused (and not
    /// folded) where [`crate::rectify::check`] refuses it.
    pub fn rectify_checked(
        &mut self,
        r: &crate::rectify::Rectification,
        at: Option<i64>,
    ) -> Result<bool, crate::rectify::Refusal> {
        use crate::rectify::Stage;
        let Some(rec) = self
            .first
            .get(&r.alert_id)
            .and_then(|root| self.records.get(root))
        else {
            return Ok(false);
        };
        let stage = match rec.state {
            State::Open => Stage::Raised,
            State::Rectified => Stage::Rectified,
            State::Dismissed => Stage::Dismissed,
        };
        crate::rectify::check(r, stage, rec.tier, &rec.people)?;
        Ok(self.rectified(&r.alert_id, r.status, at))
    }

    /// Every person's profile as of `now` (seconds), by employee number.
    pub fn profiles(&self, now: i64, settings: Settings) -> BTreeMap<String, PersonProfile> {
        let mut by_person: BTreeMap<&str, Vec<(&str, &Record)>> = BTreeMap::new();
        for (id, r) in &self.records {
            for p in &r.people {
                by_person.entry(p).or_default().push((id, r));
            }
        }
        by_person
            .into_iter()
            .map(|(p, records)| (p.to_owned(), profile(p, records, now, settings)))
            .collect()
    }

    /// One person's profile as of `now`, if an alert names them.
    pub fn profile_of(&self, person: &str, now: i64, settings: Settings) -> Option<PersonProfile> {
        let records: Vec<(&str, &Record)> = self
            .by_person
            .get(person)
            .into_iter()
            .flatten()
            .filter_map(|id| Some((id.as_str(), self.records.get(id)?)))
            .collect();
        (!records.is_empty()).then(|| profile(person, records, now, settings))
    }
}

fn profile(
    person: &str,
    mut records: Vec<(&str, &Record)>,
    now: i64,
    settings: Settings,
) -> PersonProfile {
    let mut open_by_tier = [0u64; 3];
    let mut open_by_domain: BTreeMap<String, u64> = BTreeMap::new();
    let (mut rectified, mut dismissed) = (0, 0);
    let mut times: Vec<i64> = Vec::new();
    let mut score = 0.0;
    for (_, r) in &records {
        match r.state {
            State::Open => {
                open_by_tier[usize::from(r.tier.clamp(1, 3) - 1)] += 1;
                *open_by_domain.entry(r.domain.clone()).or_default() += 1;
            }
            State::Rectified => {
                rectified += 1;
                if let Some(at) = r.closed_at {
                    times.push((at - r.raised_at).max(0));
                }
            }
            State::Dismissed => dismissed += 1,
        }
        let age = (now - r.raised_at).max(0) as f64;
        let decay = 0.5f64.powf(age / settings.half_life as f64);
        score += tier_weight(r.tier) * grade_weight(r.grade) * state_weight(r.state) * decay;
    }
    let time_to_rectify = TimeToRectify {
        count: times.len() as u64,
        mean_s: (!times.is_empty()).then(|| times.iter().sum::<i64>() / times.len() as i64),
        max_s: times.iter().copied().max(),
    };
    records.sort_by(|a, b| b.1.raised_at.cmp(&a.1.raised_at).then(a.0.cmp(b.0)));
    let last_alerts = records
        .iter()
        .take(settings.last)
        .map(|(id, r)| LastAlert {
            alert_id: (*id).to_owned(),
            control_point: r.control_point.clone(),
            tier: r.tier,
            raised_at: DateTime::from_timestamp(r.raised_at, 0)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_default(),
            state: r.state,
        })
        .collect();
    PersonProfile {
        person: person.to_owned(),
        alerts: records.len() as u64,
        open: open_by_tier.iter().sum(),
        open_by_tier,
        open_by_domain,
        rectified,
        dismissed,
        time_to_rectify,
        last_alerts,
        risk_score: (score * 100.0).round() / 100.0,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const DAY: i64 = 86_400;

    fn alert(id: &str, tier: u8, people: &[&str]) -> Alert {
        serde_json::from_value(serde_json::json!({
            "alert_id": id, "control_point": "SO-002", "domain": "procurement",
            "title": "t", "tier": tier, "notify": "r", "action": "alert",
            "subject": "S-1", "people": people, "branch": "wuhan",
            "event_id": "e", "event_type": "purchase",
            "occurred_at": "2026-11-02T09:00:00+08:00",
            "detected_at": "2026-11-02T01:00:00.000Z", "source": {"http": true},
            "ruleset_version": "v", "message": "m", "evidence": {}
        }))
        .unwrap()
    }

    fn escalation(id: &str, from: &str, tier: u8, people: &[&str]) -> Alert {
        Alert {
            escalated_from: Some(from.to_owned()),
            ..alert(id, tier, people)
        }
    }

    #[test]
    fn one_profile_is_the_one_of_all_profiles() {
        let mut p = People::default();
        p.raised(&alert("a1", 1, &["E1", "E2"]), None, 0);
        p.raised(&alert("a2", 2, &["E2"]), None, DAY);
        // Raised after a1 but first in id order; escalated; rectified.
        p.raised(&alert("a0", 1, &["E1"]), Some(RiskGrade::High), DAY / 2);
        p.raised(&escalation("a0.2", "a0", 2, &["E1"]), None, DAY);
        assert!(p.rectified("a0.2", Status::Rectified, Some(DAY + 1)));
        for person in ["E1", "E2"] {
            assert_eq!(
                p.profile_of(person, 2 * DAY, Settings::default()).as_ref(),
                Some(&one(&p, person, 2 * DAY))
            );
        }
        assert_eq!(p.profile_of("E3", 0, Settings::default()), None);
    }

    fn one(p: &People, person: &str, now: i64) -> PersonProfile {
        p.profiles(now, Settings::default())
            .remove(person)
            .expect("a profile")
    }

    #[test]
    fn an_alert_raised_again_counts_once_for_each_of_its_people() {
        let mut p = People::default();
        let a = alert("a1", 1, &["E-1", "E-2"]);
        p.raised(&a, Some(RiskGrade::Low), 0);
        p.raised(&a, Some(RiskGrade::Low), 0);
        let all = p.profiles(0, Settings::default());
        assert_eq!(all.keys().collect::<Vec<_>>(), ["E-1", "E-2"]);
        for prof in all.values() {
            assert_eq!(
                (prof.alerts, prof.open, prof.open_by_tier),
                (1, 1, [1, 0, 0])
            );
            assert_eq!(prof.open_by_domain["procurement"], 1);
            assert_eq!(prof.risk_score, 1.0);
        }
    }

    #[test]
    fn an_escalation_moves_its_alert_up_instead_of_adding_one() {
        let mut p = People::default();
        p.raised(&alert("a1", 1, &["E-1"]), Some(RiskGrade::High), 0);
        p.raised(
            &escalation("a2", "a1", 2, &["E-1"]),
            Some(RiskGrade::High),
            10,
        );
        p.raised(
            &escalation("a3", "a2", 3, &["E-1"]),
            Some(RiskGrade::High),
            20,
        );
        let prof = one(&p, "E-1", 0);
        assert_eq!((prof.alerts, prof.open_by_tier), (1, [0, 0, 1]));
        assert_eq!(prof.last_alerts.len(), 1);
        assert_eq!(prof.last_alerts[0].alert_id, "a1");
        assert_eq!(prof.last_alerts[0].tier, 3);
        // 9 × 3, raised at 0.
        assert_eq!(prof.risk_score, 27.0);
        // A rectification of any id of the chain closes it.
        assert!(p.rectified("a3", Status::Rectified, Some(100)));
        let prof = one(&p, "E-1", 0);
        assert_eq!((prof.open, prof.rectified), (0, 1));
        assert_eq!(prof.risk_score, 13.5);
    }

    #[test]
    fn a_dismissed_alert_weighs_nothing() {
        let mut p = People::default();
        p.raised(&alert("a1", 3, &["E-1"]), Some(RiskGrade::High), 0);
        p.raised(&alert("a2", 1, &["E-1"]), Some(RiskGrade::Low), 0);
        assert_eq!(one(&p, "E-1", 0).risk_score, 28.0);
        assert!(p.rectified("a1", Status::Dismissed, None));
        let prof = one(&p, "E-1", 0);
        assert_eq!((prof.dismissed, prof.open, prof.alerts), (1, 1, 2));
        assert_eq!(prof.risk_score, 1.0);
        // Acknowledging is not closing; an unknown id is reported.
        assert!(p.rectified("a2", Status::Acknowledged, None));
        assert_eq!(one(&p, "E-1", 0).open, 1);
        assert!(!p.rectified("zz", Status::Rectified, None));
    }

    #[test]
    fn a_score_halves_at_one_half_life() {
        let mut p = People::default();
        let half = 30 * DAY;
        let s = Settings::new(half, 5).unwrap();
        p.raised(&alert("a1", 2, &["E-1"]), Some(RiskGrade::Medium), 1_000);
        let at = |now| p.profiles(now, s)["E-1"].risk_score;
        assert_eq!(at(1_000), 6.0);
        assert_eq!(at(1_000 + half), 3.0);
        assert_eq!(at(1_000 + 2 * half), 1.5);
        // An alert raised after `now` has not decayed.
        assert_eq!(at(0), 6.0);
        assert_eq!(Settings::new(0, 5), Err(SettingsError::HalfLife(0)));
    }

    #[test]
    fn time_to_rectify_counts_rectified_alerts_with_a_time() {
        let mut p = People::default();
        for (id, raised) in [("a1", 0), ("a2", 100), ("a3", 200), ("a4", 300)] {
            p.raised(&alert(id, 1, &["E-1"]), None, raised);
        }
        assert_eq!(one(&p, "E-1", 0).time_to_rectify, TimeToRectify::default());
        p.rectified("a1", Status::Rectified, Some(3 * DAY));
        p.rectified("a2", Status::Rectified, Some(100 + DAY));
        p.rectified("a3", Status::Rectified, None);
        p.rectified("a4", Status::Dismissed, Some(400));
        let t = one(&p, "E-1", 0).time_to_rectify;
        assert_eq!(t.count, 2);
        assert_eq!(t.mean_s, Some(2 * DAY));
        assert_eq!(t.max_s, Some(3 * DAY));
    }

    #[test]
    fn the_last_alerts_are_the_newest_and_the_output_is_ordered() {
        let mut p = People::default();
        for i in 0..7 {
            p.raised(&alert(&format!("a{i}"), 1, &["E-2", "E-1"]), None, i * DAY);
        }
        let s = Settings::new(Settings::HALF_LIFE, 3).unwrap();
        let prof = &p.profiles(0, s)["E-1"];
        let ids: Vec<&str> = prof
            .last_alerts
            .iter()
            .map(|a| a.alert_id.as_str())
            .collect();
        assert_eq!(ids, ["a6", "a5", "a4"]);
        assert_eq!(prof.last_alerts[0].raised_at, "1970-01-07T00:00:00Z");
        // Folded in another order, the same JSON.
        let mut q = People::default();
        for i in (0..7).rev() {
            q.raised(&alert(&format!("a{i}"), 1, &["E-1", "E-2"]), None, i * DAY);
        }
        let json = |p: &People| serde_json::to_string(&p.profiles(0, s)).unwrap();
        assert_eq!(json(&p), json(&q));
    }
}
