//! Alerts and verdicts: what levee emits, in docs/contract.md's shape.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where an event came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Source {
    Kafka {
        topic: String,
        partition: i32,
        offset: i64,
    },
    File {
        file: String,
        line: u64,
    },
    Http {
        http: bool,
    },
}

/// One alert. Field order is the contract's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub control_point: String,
    pub domain: String,
    pub title: String,
    pub tier: u8,
    pub notify: String,
    pub action: String,
    pub subject: String,
    /// The employee numbers of the people accountable for the event (the
    /// point's `people` fields), distinct, missing ones left out, in the
    /// order of the list; person profiles (一人一档) are built on them.
    #[serde(default)]
    pub people: Vec<String>,
    pub branch: String,
    pub event_id: String,
    pub event_type: String,
    pub occurred_at: String,
    pub detected_at: String,
    pub source: Source,
    pub ruleset_version: String,
    pub message: String,
    /// The message in Chinese, amounts written for people (`alerts.languages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_zh: Option<String>,
    pub evidence: serde_json::Map<String, serde_json::Value>,
    /// `provisional` (or `unknown`) where the control point read the
    /// working calendar on a day of a year whose notice is not in the rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_from: Option<String>,
    /// The end of the rectification period (RFC 3339 in the business time
    /// zone) of an alert that escalates if it is not rectified by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rectify_by: Option<String>,
}

/// The verdict on an event whose type has intercepting control points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub event_id: String,
    pub verdict: &'static str,
    pub control_points: Vec<String>,
    pub ruleset_version: String,
}

/// The alert id: the same event (type and id) and control point always give
/// the same id, whichever instance, ruleset version or delivery raised it.
pub fn alert_id(event_type: &str, event_id: &str, control_point: &str) -> String {
    let mut id = String::with_capacity(32);
    write_alert_id(event_type, event_id, control_point, &mut id);
    id
}

/// [`alert_id`], appended to `out` (32 lower-case hex digits: the first 16
/// bytes of the SHA-256 of the three parts, each followed by 0x1f).
pub fn write_alert_id(event_type: &str, event_id: &str, control_point: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut h = Sha256::new();
    for part in [event_type, event_id, control_point] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    for &b in h.finalize().iter().take(16) {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// Sets `people` to the distinct strings among `values` (missing and
/// empty ones left out), in order, re-using its strings.
pub(crate) fn set_people<'a>(
    people: &mut Vec<String>,
    values: impl Iterator<Item = &'a crate::Val>,
) {
    let mut n = 0;
    for v in values {
        let crate::Val::Str(v) = v else {
            continue;
        };
        if v.is_empty() || people[..n].iter().any(|p| p == v) {
            continue;
        }
        if people.len() == n {
            people.push(String::new());
        }
        people[n].clear();
        people[n].push_str(v);
        n += 1;
    }
    people.truncate(n);
}

impl Source {
    /// Sets `self` to `source`, re-using a file name's allocation.
    pub fn set(&mut self, source: &Source) {
        match (&mut *self, source) {
            (Source::File { file, line }, Source::File { file: f, line: l }) => {
                file.clear();
                file.push_str(f);
                *line = *l;
            }
            (this, s) => *this = s.clone(),
        }
    }
}

impl Alert {
    /// An alert with nothing in it yet, for the engine to fill.
    pub(crate) fn blank() -> Alert {
        Alert {
            alert_id: String::new(),
            control_point: String::new(),
            domain: String::new(),
            title: String::new(),
            tier: 0,
            notify: String::new(),
            action: String::new(),
            subject: String::new(),
            people: Vec::new(),
            branch: String::new(),
            event_id: String::new(),
            event_type: String::new(),
            occurred_at: String::new(),
            detected_at: String::new(),
            source: Source::Http { http: true },
            ruleset_version: String::new(),
            message: String::new(),
            message_zh: None,
            evidence: serde_json::Map::new(),
            calendar: None,
            escalated_from: None,
            rectify_by: None,
        }
    }
}

impl crate::Engine {
    /// The alert `live` (an engine over other rules that decide this
    /// event's type exactly as this engine's do) raises for `hit`, under
    /// this engine's ruleset version and entered in this engine's ledger:
    /// shadow rules take it instead of evaluating the event again.
    pub fn adopt_alert(
        &self,
        live: &crate::Engine,
        hit: crate::Hit,
        source: &Source,
        detected_at: &str,
    ) -> Alert {
        let mut alert = Alert::blank();
        let due = live.fill(hit, source, detected_at, &mut alert, true);
        alert.ruleset_version.clone_from(&self.graph.version);
        if self.record {
            let kind = &live.graph.control_points[hit.control_point as usize].subject_kind;
            self.ledger.borrow_mut().raised(&alert, kind, due);
        }
        alert
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_id_is_the_hex_of_the_hash_of_its_parts() {
        // Pinned: consumers de-duplicate on it across versions.
        let mut h = Sha256::new();
        h.update(b"refuel\x1fe-1\x1fVF-001\x1f");
        let full: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let id = alert_id("refuel", "e-1", "VF-001");
        assert_eq!(id.len(), 32);
        assert_eq!(id, full[..32]);
        let mut out = String::from("x");
        write_alert_id("refuel", "e-1", "VF-001", &mut out);
        assert_eq!(out, format!("x{id}"));
        assert_ne!(id, alert_id("refuel", "e-1", "VF-002"));
    }

    #[test]
    fn people_are_the_distinct_present_strings_in_order() {
        use crate::Val;
        let vals = [
            Val::Str("E-2".into()),
            Val::Missing,
            Val::Str(String::new()),
            Val::Str("E-1".into()),
            Val::Str("E-2".into()),
        ];
        let mut people = vec!["old".to_owned(); 5];
        set_people(&mut people, vals.iter());
        assert_eq!(people, ["E-2", "E-1"]);
        set_people(&mut people, [Val::Missing].iter());
        assert!(people.is_empty());
    }

    #[test]
    fn a_source_is_set_to_another_whatever_its_kind() {
        let file = Source::File {
            file: "a.jsonl".into(),
            line: 3,
        };
        let http = Source::Http { http: true };
        let mut s = http.clone();
        s.set(&file);
        assert_eq!(s, file);
        let other = Source::File {
            file: "b".into(),
            line: 9,
        };
        s.set(&other);
        assert_eq!(s, other);
        s.set(&http);
        assert_eq!(s, http);
    }
}
