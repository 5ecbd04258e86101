//! Rectification messages (`events.rectification`, docs/contract.md).

use crate::ledger::Status;
use serde::Deserialize;

/// `{"alert_id", "status", "by", "at"}`, keyed by `alert_id`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rectification {
    pub alert_id: String,
    pub status: Status,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub at: Option<String>,
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
