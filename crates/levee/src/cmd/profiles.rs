//! `levee replay --profiles`: the person profiles (一人一档) of a replay.
//!
//! A [`Recording`] sink passes alerts on to the replay's own output and
//! folds them, with the rectifications read, into
//! [`levee_engine::people::People`]; [`write`] prints one JSON line per
//! person after the run. An alert counts as raised at its event's time
//! (`occurred_at`), the clock replay runs escalation on; a rectification
//! at its `at`, or else at the latest event time read when it came.

use std::io::Write;

use chrono::DateTime;
use levee_engine::people::{People, Settings};
use levee_engine::rectify::Rectification;
use levee_engine::{Alert, Verdict};
use levee_rules::RuleGraph;

use super::replay::Sink;

/// A sink that records alerts and rectifications into `people` on the way
/// to `inner`.
pub struct Recording<'a, S> {
    pub inner: S,
    pub people: &'a mut People,
    pub graph: &'a RuleGraph,
}

fn seconds(rfc3339: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp())
}

impl<S: Sink> Sink for Recording<'_, S> {
    fn alert(&mut self, alert: &Alert) -> anyhow::Result<()> {
        self.inner.alert(alert)?;
        let grade = self
            .graph
            .control_point(&alert.control_point)
            .and_then(|c| c.register.risk_grade);
        let at = seconds(&alert.occurred_at)
            .or_else(|| seconds(&alert.detected_at))
            .unwrap_or(0);
        self.people.raised(alert, grade, at);
        Ok(())
    }

    fn verdict(&mut self, verdict: &Verdict) -> anyhow::Result<()> {
        self.inner.verdict(verdict)
    }

    fn closed(&mut self, record: &serde_json::Value) -> anyhow::Result<()> {
        self.inner.closed(record)
    }

    fn rectified(&mut self, r: &Rectification, event_time: i64) {
        let at = r.at.as_deref().and_then(seconds).unwrap_or(event_time);
        // Refused ones (replay has said so) leave the files as they are.
        let _ = self.people.rectify_checked(r, Some(at));
    }
}

/// Every person's profile as of `now` (seconds), one JSON line each, by
/// employee number.
pub fn write(
    out: &mut impl Write,
    people: &People,
    now: i64,
    settings: Settings,
) -> anyhow::Result<()> {
    for p in people.profiles(now, settings).values() {
        serde_json::to_writer(&mut *out, p)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
