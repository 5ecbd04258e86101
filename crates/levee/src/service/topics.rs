//! `[topics]`: the topics `levee run` reads and writes, by their role
//! (each documented in `config.rs`'s table and docs/operations.md).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    /// The business events, keyed by subject.
    pub inputs: Vec<String>,
    /// Alerts to the line manager (tier 1), branch leadership (tier 2)
    /// and discipline inspection (tier 3).
    pub tier1: String,
    pub tier2: String,
    pub tier3: String,
    /// Verdicts, keyed by event id.
    pub decisions: String,
    /// Bad input as it came, with headers saying why.
    pub dlq: String,
    /// Rectifications, keyed by alert id; every instance reads all of it.
    pub rectification: String,
    /// Subject profiles (compacted).
    pub profiles: String,
    /// levee's own state (compacted; as many partitions as the inputs).
    pub changelog: String,
    /// The shadow rules' alerts.
    pub shadow: String,
    /// Closed alerts with their results (compacted, keyed by the alert's
    /// first id).
    pub closed: String,
    /// People's files (一人一档; compacted, keyed by the employee number).
    pub people: String,
}

impl Topics {
    /// The topic of alerts of `tier` (1..=3; higher tiers go to tier 3).
    pub fn tier(&self, tier: u8) -> &str {
        match tier {
            0 | 1 => &self.tier1,
            2 => &self.tier2,
            _ => &self.tier3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_of_a_tier_beyond_three_go_to_tier_three() {
        let t = |n: &str| format!("t.{n}");
        let topics = Topics {
            inputs: vec![t("in")],
            tier1: t("1"),
            tier2: t("2"),
            tier3: t("3"),
            decisions: t("d"),
            dlq: t("dlq"),
            rectification: t("r"),
            profiles: t("p"),
            changelog: t("c"),
            shadow: t("s"),
            closed: t("closed"),
            people: t("people"),
        };
        let tiers: Vec<&str> = (0..=4).map(|n| topics.tier(n)).collect();
        assert_eq!(tiers, ["t.1", "t.1", "t.2", "t.3", "t.3"]);
    }
}
