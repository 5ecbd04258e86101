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
    pub branch: String,
    pub event_id: String,
    pub event_type: String,
    pub occurred_at: String,
    pub detected_at: String,
    pub source: Source,
    pub ruleset_version: String,
    pub message: String,
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
    let mut h = Sha256::new();
    for part in [event_type, event_id, control_point] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}
