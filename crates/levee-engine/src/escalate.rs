//! Escalation: open alerts whose rectification period ran out are raised
//! again one tier up, on the engine's [`Clock`].

use levee_rules::Period;

use crate::{Alert, Engine, Escalation};

impl Engine {
    /// When an alert raised at `now` and given `period` escalates, and by
    /// when it must be rectified as people read it (in the business time
    /// zone). A period in working days ends with the last of them: the
    /// alert may be rectified until 23:59:59 and escalates at midnight.
    pub(crate) fn deadline(&self, period: Period, now: i64) -> (i64, String) {
        let calendar = &self.graph.calendar;
        match period {
            Period::Seconds(s) => {
                let at = now.saturating_add(s);
                (at, calendar.format_local(at))
            }
            Period::WorkingDays(n) => {
                let last = calendar.deadline_after_working_days(now, n);
                (last + 1, calendar.format_local(last))
            }
        }
    }

    /// Escalates every open alert whose period ran out by `now` (seconds, on the
    /// engine's [`Clock`]: event time in replay and tests, the wall clock in the
    /// service), returning the new alerts.
    pub fn tick(&mut self, now: i64, detected_at: &str) -> Vec<Alert> {
        let mut ledger = std::mem::take(self.ledger.get_mut());
        let out = ledger.escalate(now, detected_at, |alert, tier| {
            let cp = self.graph.control_point(&alert.control_point);
            let notify = cp
                .and_then(|c| c.tiers.iter().find(|t| t.tier == tier))
                .map(|t| t.notify.clone())
                .or_else(|| levee_rules::default_notify(tier).map(str::to_owned))
                .unwrap_or_default();
            let due = cp
                .and_then(|c| c.escalate_after)
                .map(|p| self.deadline(p, now));
            Escalation {
                notify,
                deadline: due.as_ref().map(|d| d.0),
                rectify_by: due.map(|d| d.1),
            }
        });
        *self.ledger.get_mut() = ledger;
        out
    }
}
