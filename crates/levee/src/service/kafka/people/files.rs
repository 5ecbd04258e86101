//! The files of one partition of the people topic: its copies folded per
//! person ([`levee_engine::people::People`], as `levee replay --profiles`
//! folds), and which files changed since they were last written.

use std::collections::BTreeSet;

use chrono::DateTime;
use levee_engine::people::{People, PersonProfile, Settings};
use levee_engine::rectify::Rectification;
use levee_engine::Alert;
use levee_rules::model::RiskGrade;
use serde::{Deserialize, Serialize};

use super::copies::Entry;

/// Why a copy could not be folded (it is skipped and counted).
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("no `levee.entry` header: not a copy levee wrote")]
    NotAnEntry,
    #[error("no key: a copy is keyed by its person")]
    NoKey,
    #[error("not JSON levee can read: {0}")]
    Json(#[from] serde_json::Error),
}

/// What the fold needs of an `alerts.closed` record.
#[derive(Debug, Deserialize)]
struct Closed {
    closed_at: String,
    rectification: Rectification,
}

/// A person's file as `profiles.people` holds it: the profile, and the
/// instant its risk score was computed for.
#[derive(Debug, Serialize)]
pub struct Written<'p> {
    #[serde(flatten)]
    pub profile: &'p PersonProfile,
    /// RFC 3339, UTC: *now* of the score's decay.
    pub as_of: String,
}

fn seconds(rfc3339: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp())
}

/// One partition's fold.
#[derive(Debug, Default)]
pub struct Files {
    people: People,
    /// The people whose copies this partition holds: the files it owns
    /// (the fold also knows the other people of their alerts, whose files
    /// are other partitions').
    owned: BTreeSet<String>,
    /// Owned files changed since [`Files::take_changed`].
    changed: BTreeSet<String>,
}

impl Files {
    /// Folds one copy, keyed by `person`; `grade` gives a control point's
    /// risk grade.
    pub fn fold(
        &mut self,
        person: Option<&[u8]>,
        entry: Option<Entry>,
        payload: &[u8],
        grade: impl Fn(&str) -> Option<RiskGrade>,
    ) -> Result<(), Unreadable> {
        let entry = entry.ok_or(Unreadable::NotAnEntry)?;
        let person = person
            .and_then(|k| std::str::from_utf8(k).ok())
            .filter(|k| !k.is_empty())
            .ok_or(Unreadable::NoKey)?;
        match entry {
            Entry::Alert => {
                let alert: Alert = serde_json::from_slice(payload)?;
                // Raised at its event's time, as replay counts it.
                let at = seconds(&alert.occurred_at)
                    .or_else(|| seconds(&alert.detected_at))
                    .unwrap_or(0);
                self.people.raised(&alert, grade(&alert.control_point), at);
            }
            Entry::Closed => {
                let c: Closed = serde_json::from_slice(payload)?;
                let r = &c.rectification;
                let at = r.at.as_deref().and_then(seconds).or(seconds(&c.closed_at));
                self.people.rectified(&r.alert_id, r.status, at);
            }
        }
        if !self.owned.contains(person) {
            self.owned.insert(person.to_owned());
        }
        if !self.changed.contains(person) {
            self.changed.insert(person.to_owned());
        }
        Ok(())
    }

    /// The files changed since the last call, as of `now` (seconds).
    pub fn take_changed(&mut self, now: i64, settings: Settings) -> Vec<PersonProfile> {
        let changed = std::mem::take(&mut self.changed);
        self.profiles(changed.iter(), now, settings)
    }

    /// Every file of the partition, as of `now`.
    pub fn all(&mut self, now: i64, settings: Settings) -> Vec<PersonProfile> {
        self.changed.clear();
        self.profiles(self.owned.iter(), now, settings)
    }

    fn profiles<'a>(
        &self,
        people: impl Iterator<Item = &'a String>,
        now: i64,
        settings: Settings,
    ) -> Vec<PersonProfile> {
        people
            .filter_map(|p| self.people.profile_of(p, now, settings))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn alert(id: &str, people: &[&str], escalated_from: Option<&str>, tier: u8) -> Vec<u8> {
        let mut a = json!({
            "alert_id": id, "control_point": "SO-002", "domain": "procurement",
            "title": "t", "tier": tier, "notify": "r", "action": "alert",
            "subject": "S-1", "people": people, "branch": "wuhan",
            "event_id": "e", "event_type": "purchase",
            "occurred_at": "2026-11-02T09:00:00+08:00",
            "detected_at": "2026-11-02T01:00:00.000Z",
            "source": {"topic": "events.procurement", "partition": 0, "offset": 1},
            "ruleset_version": "v", "message": "m", "evidence": {}
        });
        if let Some(from) = escalated_from {
            a["escalated_from"] = json!(from);
        }
        serde_json::to_vec(&a).unwrap()
    }

    fn closed(id: &str, status: &str, at: Option<&str>) -> Vec<u8> {
        let mut r = json!({"alert_id": id, "status": status, "by": "E9"});
        if let Some(at) = at {
            r["at"] = json!(at);
        }
        serde_json::to_vec(&json!({"alert_id": id, "alert_ids": [id], "status": status,
            "closed_at": "2026-11-05T00:00:00Z", "rectification": r}))
        .unwrap()
    }

    fn grade(_: &str) -> Option<RiskGrade> {
        Some(RiskGrade::High)
    }

    fn now() -> i64 {
        seconds("2026-11-10T00:00:00Z").unwrap()
    }

    /// Folds one of E1's copies.
    fn e1(f: &mut Files, entry: Entry, payload: &[u8]) {
        f.fold(Some(b"E1"), Some(entry), payload, grade).unwrap();
    }

    #[test]
    fn a_persons_copies_make_their_file_and_only_theirs_is_owned() {
        let mut f = Files::default();
        e1(&mut f, Entry::Alert, &alert("a1", &["E1", "E2"], None, 1));
        // Redelivered, then escalated: still one alert, now at tier 2.
        e1(&mut f, Entry::Alert, &alert("a1", &["E1", "E2"], None, 1));
        e1(
            &mut f,
            Entry::Alert,
            &alert("a1.2", &["E1", "E2"], Some("a1"), 2),
        );
        e1(&mut f, Entry::Alert, &alert("a2", &["E1"], None, 1));
        e1(
            &mut f,
            Entry::Closed,
            &closed("a2", "rectified", Some("2026-11-03T09:00:00+08:00")),
        );
        let files = f.take_changed(now(), Settings::default());
        assert_eq!(files.len(), 1, "E2's file is its own partition's");
        let p = &files[0];
        assert_eq!(p.person, "E1");
        assert_eq!((p.alerts, p.open, p.rectified), (2, 1, 1));
        assert_eq!(p.open_by_tier, [0, 1, 0]);
        assert_eq!(
            p.time_to_rectify.mean_s,
            Some(86_400),
            "from the event to `at`"
        );
        assert!(f.take_changed(now(), Settings::default()).is_empty());
        assert_eq!(f.all(now(), Settings::default()).len(), 1);
    }

    #[test]
    fn a_closing_without_at_is_dated_when_levee_closed_it() {
        let mut f = Files::default();
        e1(&mut f, Entry::Alert, &alert("a1", &["E1"], None, 1));
        e1(&mut f, Entry::Closed, &closed("a1", "rectified", None));
        let p = f.all(now(), Settings::default()).remove(0);
        // 2026-11-02T01:00Z to 2026-11-05T00:00Z.
        assert_eq!(p.time_to_rectify.mean_s, Some(3 * 86_400 - 3_600));
    }

    #[test]
    fn what_is_not_a_copy_is_refused_with_why() {
        let mut f = Files::default();
        let a = alert("a1", &["E1"], None, 1);
        assert!(matches!(
            f.fold(Some(b"E1"), None, &a, grade),
            Err(Unreadable::NotAnEntry)
        ));
        assert!(matches!(
            f.fold(None, Some(Entry::Alert), &a, grade),
            Err(Unreadable::NoKey)
        ));
        assert!(matches!(
            f.fold(Some(b"E1"), Some(Entry::Closed), b"{", grade),
            Err(Unreadable::Json(_))
        ));
        assert!(f.all(now(), Settings::default()).is_empty());
    }

    #[test]
    fn the_written_file_says_as_of_when() {
        let mut f = Files::default();
        f.fold(
            Some(b"E1"),
            Some(Entry::Alert),
            &alert("a1", &["E1"], None, 1),
            grade,
        )
        .unwrap();
        let p = f.all(now(), Settings::default()).remove(0);
        let w = serde_json::to_value(Written {
            profile: &p,
            as_of: "2026-11-10T00:00:00Z".into(),
        })
        .unwrap();
        assert_eq!(w["person"], "E1");
        assert_eq!(w["as_of"], "2026-11-10T00:00:00Z");
        assert_eq!(w["alerts"], 1);
    }
}
