//! Rectifications (`events.rectification`, docs/contract.md) and the
//! alert's lifecycle they move: raised → acknowledged → rectified or
//! dismissed → archived.
//!
//! A rectification is refused ([`Refusal`]) when it would close an alert one
//! of whose own `people` signs it (回避), close a tier-3 alert acting in any
//! role but discipline inspection, or move an alert backwards (acknowledge a
//! closed alert, archive an open one, turn a rectified alert dismissed).
//! [`check`] decides, for the stream ([`crate::Engine::apply`]) and for
//! people's files alike.

use crate::ledger::{OpenAlert, Status};
use serde::Deserialize;

/// The role that closes a tier-3 alert: discipline inspection (纪检).
pub const DISCIPLINE_INSPECTION: &str = "discipline_inspection";

/// `{"alert_id", "status", "by", "at", "role", "finding", "measures",
/// "penalty"}`, keyed by `alert_id`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rectification {
    pub alert_id: String,
    pub status: Status,
    /// Who acts (an employee number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The role `by` acts in (`discipline_inspection` closes tier 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// What was found (查实情况).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
    /// What was done about it (整改措施).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measures: Option<String>,
    /// The accountability imposed, if any (问责处理).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub penalty: Option<String>,
}

impl Rectification {
    /// A bare one (tests, rule-test steps).
    pub fn new(alert_id: &str, status: Status) -> Self {
        Rectification {
            alert_id: alert_id.to_owned(),
            status,
            by: None,
            at: None,
            role: None,
            finding: None,
            measures: None,
            penalty: None,
        }
    }
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Raised,
    Acknowledged,
    Rectified,
    Dismissed,
    Archived,
}

impl Stage {
    fn rank(self) -> u8 {
        match self {
            Stage::Raised => 0,
            Stage::Acknowledged => 1,
            Stage::Rectified | Stage::Dismissed => 2,
            Stage::Archived => 3,
        }
    }

    fn of(status: Status) -> Stage {
        match status {
            Status::Acknowledged => Stage::Acknowledged,
            Status::Rectified => Stage::Rectified,
            Status::Dismissed => Stage::Dismissed,
            Status::Archived => Stage::Archived,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Raised => "raised",
            Stage::Acknowledged => "acknowledged",
            Stage::Rectified => "rectified",
            Stage::Dismissed => "dismissed",
            Stage::Archived => "archived",
        }
    }
}

/// Why a rectification is refused (its dead letter's reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{by} is one of the people alert {alert_id} names: nobody closes an alert about themselves (回避)")]
    OwnAlert { alert_id: String, by: String },
    #[error("alert {alert_id} is at tier 3: only discipline inspection (role `discipline_inspection`) closes it; this rectification acts as {role}")]
    NotInspection { alert_id: String, role: String },
    #[error("alert {alert_id} is {from}: `{to}` would move it backwards")]
    Backwards {
        alert_id: String,
        from: &'static str,
        to: &'static str,
    },
}

impl Refusal {
    /// The dead letter's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::OwnAlert { .. } => "rectification_conflict",
            Refusal::NotInspection { .. } => "rectification_role",
            Refusal::Backwards { .. } => "rectification_backwards",
        }
    }
}

/// Whether `r` may move an alert at `stage`, now at `tier`, naming
/// `people`. The same status again is no move (a redelivery), not refused.
pub fn check(r: &Rectification, stage: Stage, tier: u8, people: &[String]) -> Result<(), Refusal> {
    let to = Stage::of(r.status);
    let backwards = || Refusal::Backwards {
        alert_id: r.alert_id.clone(),
        from: stage.as_str(),
        to: to.as_str(),
    };
    if to == stage {
        return Ok(());
    }
    let closed = matches!(stage, Stage::Rectified | Stage::Dismissed);
    let skips = to == Stage::Archived && !closed;
    if to.rank() <= stage.rank() || skips {
        return Err(backwards());
    }
    if matches!(to, Stage::Rectified | Stage::Dismissed) {
        if let Some(by) = r.by.as_deref().filter(|b| people.iter().any(|p| p == b)) {
            return Err(Refusal::OwnAlert {
                alert_id: r.alert_id.clone(),
                by: by.to_owned(),
            });
        }
        if tier >= 3 && r.role.as_deref() != Some(DISCIPLINE_INSPECTION) {
            return Err(Refusal::NotInspection {
                alert_id: r.alert_id.clone(),
                role: r.role.clone().unwrap_or_else(|| "no role given".to_owned()),
            });
        }
    }
    Ok(())
}

/// What applying a rectification to an engine did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// It moved an open alert of this engine (or, a redelivery, left it).
    Moved,
    /// It closed an open alert of this engine (rectified or dismissed).
    Closed(Box<Closed>),
    /// No open alert of this engine has that id (closed, or another's).
    NotHere,
}

/// An alert closed by a rectification, as the engine knew it when it
/// closed: what `alerts.closed` records beside the rectification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Closed {
    /// Every id of its escalation chain, the first (its key) first.
    pub alert_ids: Vec<String>,
    /// Its subject's profile key (`<kind>:<id>`, as on `profiles`).
    pub profile: String,
    /// The tier it had reached.
    pub tier: u8,
    pub people: Vec<String>,
    /// Whether it was acknowledged before it closed.
    pub acknowledged: bool,
}

impl Closed {
    /// The `alerts.closed` record of this alert, closed by `r` at
    /// `closed_at` (RFC 3339, the closing clock's): its key, the alert's
    /// first id, and the record (docs/contract.md, "Closed alerts"); the
    /// same from `levee run` and `levee replay --closed`.
    pub fn record(&self, r: &Rectification, closed_at: &str) -> (String, serde_json::Value) {
        let first = self.alert_ids.first().unwrap_or(&r.alert_id).clone();
        let record = serde_json::json!({
            "alert_id": first,
            "alert_ids": self.alert_ids,
            "status": r.status,
            "profile": self.profile,
            "tier": self.tier,
            "people": self.people,
            "acknowledged": self.acknowledged,
            "closed_at": closed_at,
            "rectification": r,
        });
        (first, record)
    }
}

/// What `r` closing `open` leaves to record; `None` if `r` does not close
/// it (an acknowledgement, or the same status again).
fn closing(open: &OpenAlert, r: &Rectification) -> Option<Closed> {
    if !matches!(r.status, Status::Rectified | Status::Dismissed) {
        return None;
    }
    Some(Closed {
        alert_ids: open.chain.clone(),
        profile: open.subject.clone(),
        tier: open.tier,
        people: open.people.clone(),
        acknowledged: open.acknowledged,
    })
}

impl crate::Engine {
    /// Applies a rectification as [`check`] allows: to the open alert it
    /// names, if this engine has it.
    pub fn apply(&mut self, r: &Rectification) -> Result<Applied, Refusal> {
        let ledger = self.ledger.get_mut();
        let Some(open) = ledger.open_alert(&r.alert_id) else {
            return Ok(Applied::NotHere);
        };
        let stage = if open.acknowledged {
            Stage::Acknowledged
        } else {
            Stage::Raised
        };
        check(r, stage, open.tier, &open.people)?;
        if Stage::of(r.status) == stage {
            return Ok(Applied::Moved);
        }
        let closed = closing(open, r);
        ledger.rectify(&r.alert_id, r.status);
        Ok(closed.map_or(Applied::Moved, |c| Applied::Closed(Box::new(c))))
    }
}

/// Recognises a rectification among events: it carries `alert_id` and
/// `status` and no `type`. `None` when the bytes are not one.
pub fn parse(body: &[u8]) -> Option<Result<Rectification, String>> {
    let looks = contains(body, b"\"alert_id\"") && !contains(body, b"\"type\"");
    if !looks {
        return None;
    }
    Some(
        serde_json::from_slice::<Rectification>(body)
            .map_err(|e| format!("not a valid rectification: {e}")),
    )
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn r(status: Status, by: Option<&str>, role: Option<&str>) -> Rectification {
        Rectification {
            by: by.map(str::to_owned),
            role: role.map(str::to_owned),
            ..Rectification::new("a1", status)
        }
    }

    const PEOPLE: &[&str] = &["E1", "E2"];

    fn people() -> Vec<String> {
        PEOPLE.iter().map(|p| (*p).to_owned()).collect()
    }

    fn open(acknowledged: bool) -> OpenAlert {
        OpenAlert {
            subject: "G1".to_owned(),
            tier: 2,
            alert: None,
            chain: vec!["a0".to_owned(), "a1".to_owned()],
            escalate_at: None,
            acknowledged,
            people: people(),
        }
    }

    #[test]
    fn only_a_rectified_or_dismissed_alert_is_recorded_closed() {
        let closed = closing(&open(true), &r(Status::Rectified, Some("E9"), None)).unwrap();
        assert_eq!(closed.alert_ids, ["a0", "a1"]);
        assert_eq!((closed.profile.as_str(), closed.tier), ("G1", 2));
        assert_eq!(closed.people, people());
        assert!(closed.acknowledged);
        let dismissed = closing(&open(false), &r(Status::Dismissed, None, None)).unwrap();
        assert!(!dismissed.acknowledged);
        assert_eq!(
            closing(&open(false), &r(Status::Acknowledged, None, None)),
            None
        );
        assert_eq!(closing(&open(true), &r(Status::Archived, None, None)), None);
    }

    #[test]
    fn the_loop_goes_forward() {
        let p = people();
        assert_eq!(
            check(
                &r(Status::Acknowledged, Some("M1"), None),
                Stage::Raised,
                1,
                &p
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &r(Status::Rectified, Some("M1"), None),
                Stage::Acknowledged,
                1,
                &p
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &r(Status::Dismissed, Some("M1"), None),
                Stage::Raised,
                2,
                &p
            ),
            Ok(())
        );
        assert_eq!(
            check(&r(Status::Archived, None, None), Stage::Rectified, 1, &p),
            Ok(())
        );
        // A redelivery moves nothing and is no refusal.
        assert_eq!(
            check(
                &r(Status::Rectified, Some("M1"), None),
                Stage::Rectified,
                1,
                &p
            ),
            Ok(())
        );
    }

    #[test]
    fn nobody_closes_an_alert_about_themselves() {
        let refused = check(
            &r(Status::Rectified, Some("E2"), None),
            Stage::Raised,
            1,
            &people(),
        );
        assert_eq!(
            refused,
            Err(Refusal::OwnAlert {
                alert_id: "a1".into(),
                by: "E2".into()
            })
        );
        assert_eq!(refused.unwrap_err().kind(), "rectification_conflict");
        // Acknowledging is no closing.
        assert_eq!(
            check(
                &r(Status::Acknowledged, Some("E2"), None),
                Stage::Raised,
                1,
                &people()
            ),
            Ok(())
        );
    }

    #[test]
    fn only_discipline_inspection_closes_tier_3() {
        let p = people();
        for role in [None, Some("branch_leadership")] {
            let e = check(
                &r(Status::Dismissed, Some("M1"), role),
                Stage::Raised,
                3,
                &p,
            )
            .unwrap_err();
            assert_eq!(e.kind(), "rectification_role", "{e}");
        }
        let ok = r(Status::Rectified, Some("M1"), Some(DISCIPLINE_INSPECTION));
        assert_eq!(check(&ok, Stage::Acknowledged, 3, &p), Ok(()));
    }

    #[test]
    fn an_alert_never_moves_backwards() {
        let p = people();
        for (status, stage) in [
            (Status::Acknowledged, Stage::Rectified),
            (Status::Rectified, Stage::Dismissed),
            (Status::Dismissed, Stage::Archived),
            (Status::Archived, Stage::Raised),
            (Status::Archived, Stage::Acknowledged),
        ] {
            let e = check(&r(status, Some("M1"), None), stage, 1, &p).unwrap_err();
            assert_eq!(
                e.kind(),
                "rectification_backwards",
                "{status:?} at {stage:?}: {e}"
            );
        }
    }
}
