//! Closed alerts kept to the end of their lifecycle: an alert a
//! rectification closed (rectified or dismissed) leaves the open alerts,
//! but until it is archived its closing is kept here, so that archiving
//! it is recorded (its `alerts.closed` record again, now `archived`) and a
//! rectification moving it backwards afterwards (acknowledging it, turning
//! a rectified alert dismissed) is refused as for an open one. The latest
//! [`Closings::MAX`] closings are kept; an older one is forgotten.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ledger::Status;
use crate::rectify::{check, Closed, Rectification, Refusal, Stage};

/// One closed alert as it is kept (and, in `levee run`, written to the
/// changelog): what the stream knew of it, the rectification that closed
/// it and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closing {
    pub closed: Closed,
    pub rectification: Rectification,
    pub closed_at: String,
}

impl Closing {
    /// Its key: the alert's first id.
    pub fn first(&self) -> &str {
        self.closed
            .alert_ids
            .first()
            .unwrap_or(&self.rectification.alert_id)
    }

    /// Its `alerts.closed` record.
    pub fn record(&self) -> (String, serde_json::Value) {
        self.closed.record(&self.rectification, &self.closed_at)
    }
}

/// What a rectification did to a closed alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Moved {
    /// The same status again (a redelivery): nothing.
    Again,
    /// Archived: its `alerts.closed` record now (key, record); the alert
    /// is forgotten.
    Archived(String, serde_json::Value),
}

/// The closed alerts of one partition, by every id of their chains.
#[derive(Debug, Default)]
pub struct Closings {
    by_first: HashMap<String, Closing>,
    /// Every id of a chain → its first id.
    first_of: HashMap<String, String>,
    order: VecDeque<String>,
}

impl Closings {
    /// How many closed alerts a partition keeps.
    pub const MAX: usize = 20_000;

    /// Keeps a closing; the first ids of those forgotten past the bound.
    pub fn insert(&mut self, c: Closing) -> Vec<String> {
        let first = c.first().to_owned();
        for id in &c.closed.alert_ids {
            self.first_of.insert(id.clone(), first.clone());
        }
        if self.by_first.insert(first.clone(), c).is_none() {
            self.order.push_back(first);
        }
        let mut forgotten = Vec::new();
        while self.order.len() > Self::MAX {
            if let Some(old) = self.order.pop_front() {
                self.forget(&old);
                forgotten.push(old);
            }
        }
        forgotten
    }

    fn forget(&mut self, first: &str) {
        if let Some(c) = self.by_first.remove(first) {
            for id in &c.closed.alert_ids {
                self.first_of.remove(id);
            }
        }
        self.order.retain(|f| f != first);
    }

    /// Every id of the chains kept.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.first_of.keys().map(String::as_str)
    }

    /// Whether an alert of this id is kept here.
    pub fn holds(&self, alert_id: &str) -> bool {
        self.first_of.contains_key(alert_id)
    }

    /// Applies `r` to the closed alert it names, archived at `at` (RFC
    /// 3339): `None` if no alert of this id is kept here; refused as
    /// [`check`] refuses it.
    pub fn apply(&mut self, r: &Rectification, at: &str) -> Option<Result<Moved, Refusal>> {
        let first = self.first_of.get(&r.alert_id)?.clone();
        let c = self.by_first.get(&first)?;
        let stage = match c.rectification.status {
            Status::Dismissed => Stage::Dismissed,
            _ => Stage::Rectified,
        };
        if let Err(refused) = check(r, stage, c.closed.tier, &c.closed.people) {
            return Some(Err(refused));
        }
        if r.status != Status::Archived {
            return Some(Ok(Moved::Again));
        }
        let (key, mut record) = c.record();
        record["status"] = serde_json::json!("archived");
        record["archived_at"] = serde_json::json!(at);
        record["archive"] = serde_json::to_value(r).unwrap_or_default();
        self.forget(&first);
        Some(Ok(Moved::Archived(key, record)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn closing(first: &str, status: Status) -> Closing {
        Closing {
            closed: Closed {
                alert_ids: vec![first.to_owned(), format!("{first}.2")],
                profile: "customer:G1".to_owned(),
                tier: 2,
                people: vec!["E1".to_owned()],
                acknowledged: false,
            },
            rectification: Rectification {
                by: Some("E9".to_owned()),
                finding: Some("属实".to_owned()),
                ..Rectification::new(&format!("{first}.2"), status)
            },
            closed_at: "2026-11-20T02:00:00Z".to_owned(),
        }
    }

    #[test]
    fn archiving_a_closed_alert_records_it_archived_and_forgets_it() {
        let mut cs = Closings::default();
        assert!(cs.insert(closing("a1", Status::Rectified)).is_empty());
        assert!(cs
            .apply(&Rectification::new("zz", Status::Archived), "t")
            .is_none());
        // Any id of the chain names it; the same status again is nothing.
        let again = cs.apply(&Rectification::new("a1", Status::Rectified), "t");
        assert_eq!(again, Some(Ok(Moved::Again)));
        let archive = Rectification {
            by: Some("E7".to_owned()),
            ..Rectification::new("a1.2", Status::Archived)
        };
        let Some(Ok(Moved::Archived(key, record))) = cs.apply(&archive, "2026-12-01T00:00:00Z")
        else {
            panic!("archived")
        };
        assert_eq!(key, "a1");
        assert_eq!(record["status"], "archived");
        assert_eq!(record["archived_at"], "2026-12-01T00:00:00Z");
        assert_eq!(record["archive"]["by"], "E7");
        assert_eq!(
            record["rectification"]["status"], "rectified",
            "the result stays"
        );
        assert_eq!(record["rectification"]["finding"], "属实");
        assert!(!cs.holds("a1") && !cs.holds("a1.2"), "forgotten");
    }

    #[test]
    fn moving_a_closed_alert_backwards_is_refused() {
        let mut cs = Closings::default();
        cs.insert(closing("a1", Status::Rectified));
        for status in [Status::Acknowledged, Status::Dismissed] {
            let refused = cs.apply(&Rectification::new("a1", status), "t");
            assert!(
                matches!(refused, Some(Err(Refusal::Backwards { .. }))),
                "{status:?}: {refused:?}"
            );
        }
        assert!(cs.holds("a1"), "still kept");
    }

    #[test]
    fn the_oldest_closing_is_forgotten_past_the_bound() {
        let mut cs = Closings::default();
        let mut forgotten = Vec::new();
        for i in 0..=Closings::MAX {
            forgotten.extend(cs.insert(closing(&format!("c{i}"), Status::Dismissed)));
        }
        assert_eq!(forgotten, ["c0"]);
        assert!(!cs.holds("c0") && !cs.holds("c0.2"));
        assert!(cs.holds("c1"));
    }

    #[test]
    fn a_closing_is_kept_as_json_and_read_back() {
        let c = closing("a1", Status::Dismissed);
        let back: Closing = serde_json::from_slice(&serde_json::to_vec(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
