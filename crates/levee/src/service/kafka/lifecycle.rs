//! A partition's alerts from raised to archived: rectifications applied to
//! its open alerts (the engine's ledger) and to the closed alerts it keeps
//! until they are archived ([`Closings`]), and the records that follow.
//!
//! - An alert closed (rectified, dismissed): its `alerts.closed` record,
//!   its person copies, and its closing kept (in the changelog, key
//!   `<topic>/<partition>#closed/<first id>`).
//! - A closed alert archived: its `alerts.closed` record again, `status:
//!   archived` with `archived_at` and the archiving rectification; its
//!   closing forgotten (a tombstone).
//! - A rectification refused (回避, a tier-3 alert closed outside discipline
//!   inspection, an open or closed alert moved backwards): a dead letter.

use std::sync::Arc;

use levee_engine::closings::{Closing, Closings, Moved};
use levee_engine::rectify::{Applied, Rectification, Refusal};
use levee_engine::Engine;
use tracing::{debug, warn};

use super::changelog::Staging;
use super::out::OutRecord;
use super::people::copies::{copies, Entry};
use super::records;
use crate::service::config::Topics;
use crate::service::metrics;

/// Where the records go: the topics, the people topic, the partition's
/// changelog staging, and levee's clock now (RFC 3339).
pub struct Outputs<'a> {
    pub topics: &'a Topics,
    pub people: &'a str,
    pub staging: &'a mut Staging,
    pub now: &'a str,
}

/// The closed alerts of one partition, kept until archived.
#[derive(Debug, Default)]
pub struct Lifecycle {
    closings: Closings,
}

impl Lifecycle {
    /// The closings read back from the changelog, oldest first.
    pub fn restored(&mut self, closings: Vec<Closing>) {
        for c in closings {
            self.closings.insert(c);
        }
    }

    /// Applies `rs` to `engine`'s open alerts and to the closed ones kept
    /// here; the records to send.
    pub fn apply(
        &mut self,
        engine: &mut Engine,
        rs: &[Arc<Rectification>],
        out: &mut Outputs<'_>,
    ) -> Vec<OutRecord> {
        let mut records = Vec::new();
        for r in rs {
            match engine.apply(r) {
                Ok(Applied::Moved) => {
                    debug!(alert_id = %r.alert_id, status = ?r.status, "rectification applied");
                }
                Ok(Applied::Closed(closed)) => {
                    let record = records::closed_alert(out.topics, &closed, r, out.now);
                    records.extend(copies(
                        out.people,
                        Entry::Closed,
                        &closed.people,
                        &record.payload,
                    ));
                    records.push(record);
                    let closing = Closing {
                        closed: *closed,
                        rectification: (**r).clone(),
                        closed_at: out.now.to_owned(),
                    };
                    let payload = serde_json::to_vec(&closing).unwrap_or_default();
                    let first = closing.first().to_owned();
                    let forgotten = self.closings.insert(closing);
                    records.extend(out.staging.closing(&first, Some(&payload), &forgotten));
                }
                Ok(Applied::NotHere) => match self.closings.apply(r, out.now) {
                    None | Some(Ok(Moved::Again)) => {}
                    Some(Ok(Moved::Archived(key, record))) => {
                        debug!(alert_id = %r.alert_id, "closed alert archived");
                        let payload = serde_json::to_vec(&record).unwrap_or_default();
                        records.push(OutRecord::keyed(
                            &out.topics.closed,
                            key.as_bytes(),
                            payload,
                        ));
                        records.extend(out.staging.closing(&key, None, &[]));
                    }
                    Some(Err(refused)) => records.push(refuse(out.topics, r, &refused)),
                },
                Err(refused) => records.push(refuse(out.topics, r, &refused)),
            }
        }
        records
    }

    /// The ids of the closed alerts kept (to look their rectifications up
    /// after a restore).
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.closings.ids()
    }
}

fn refuse(topics: &Topics, r: &Rectification, refused: &Refusal) -> OutRecord {
    warn!(alert_id = %r.alert_id, reason = %refused, "rectification refused, to the DLQ");
    metrics::rectification_refused(refused.kind());
    records::refused_rectification(topics, r, refused)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use levee_engine::ledger::Status;
    use levee_engine::Source;

    use super::*;
    use crate::service::config::{load, Overrides};
    use crate::service::kafka::TopicPartition;

    /// An engine of the shipped rules holding one open alert (an arrears
    /// snapshot of customer G1, customer manager M-1); its id.
    fn engine_with_an_alert() -> (Engine, String) {
        let graph =
            levee_rules::compile_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules"))
                .unwrap()
                .graph;
        let mut e = Engine::new(std::sync::Arc::new(graph));
        let line = r#"{"event_id":"a1","type":"arrears_snapshot","occurred_at":"2026-05-01T00:00:00Z","branch":"wuhan","group_customer_id":"G1","customer_manager_id":"M-1","arrears_cny":45000,"overdue_months":4,"credit_limit_cny":50000}"#;
        let source = Source::File {
            file: "t".into(),
            line: 1,
        };
        let alerts = e.process(line.as_bytes(), &source, "now").unwrap().alerts;
        let id = alerts[0].alert_id.clone();
        (e, id)
    }

    fn rect(id: &str, status: Status) -> Arc<Rectification> {
        Arc::new(Rectification {
            by: Some("E-0231".to_owned()),
            role: Some("discipline_inspection".to_owned()),
            ..Rectification::new(id, status)
        })
    }

    fn topics_of(records: &[OutRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{}{}", r.topic, if r.tombstone { " †" } else { "" }))
            .collect()
    }

    #[test]
    fn an_alert_is_followed_from_closed_to_archived() {
        let settings = load(None, Vec::new(), &Overrides::default()).unwrap();
        let topics = settings.topics.clone();
        let tp = TopicPartition::new("events.billing_arrears", 0);
        let mut staging = Staging::new(tp, &topics, settings.state.changelog_encoding, true);
        let (mut engine, id) = engine_with_an_alert();
        let mut life = Lifecycle::default();
        let mut out = Outputs {
            topics: &topics,
            people: "levee-people",
            staging: &mut staging,
            now: "2026-05-03T00:00:00Z",
        };
        let closed = life.apply(&mut engine, &[rect(&id, Status::Rectified)], &mut out);
        assert_eq!(
            topics_of(&closed),
            ["levee-people", "alerts.closed", "levee.state-changelog"],
            "a copy for M-1, the record, the closing kept"
        );
        assert!(life.ids().any(|i| i == id));
        // Moved backwards once closed: refused, to the DLQ.
        let refused = life.apply(&mut engine, &[rect(&id, Status::Acknowledged)], &mut out);
        assert_eq!(topics_of(&refused), ["events.dlq"]);
        // A rectification of another partition's alert: nothing here.
        assert!(life
            .apply(&mut engine, &[rect("zz", Status::Archived)], &mut out)
            .is_empty());
        let archived = life.apply(&mut engine, &[rect(&id, Status::Archived)], &mut out);
        assert_eq!(
            topics_of(&archived),
            ["alerts.closed", "levee.state-changelog †"],
            "recorded archived, the closing forgotten"
        );
        let record: serde_json::Value = serde_json::from_slice(&archived[0].payload).unwrap();
        assert_eq!(record["status"], "archived");
        assert_eq!(record["rectification"]["status"], "rectified");
        assert_eq!(life.ids().count(), 0);
    }

    #[test]
    fn closings_come_back_from_a_restore() {
        let (mut engine, id) = engine_with_an_alert();
        let mut life = Lifecycle::default();
        let settings = load(None, Vec::new(), &Overrides::default()).unwrap();
        let tp = TopicPartition::new("events.billing_arrears", 0);
        let mut staging = Staging::new(
            tp,
            &settings.topics,
            settings.state.changelog_encoding,
            true,
        );
        let mut out = Outputs {
            topics: &settings.topics,
            people: "levee-people",
            staging: &mut staging,
            now: "2026-05-03T00:00:00Z",
        };
        let kept = life.apply(&mut engine, &[rect(&id, Status::Dismissed)], &mut out);
        let payload = &kept.last().unwrap().payload;
        let closing: Closing = serde_json::from_slice(payload).unwrap();
        let mut restored = Lifecycle::default();
        restored.restored(vec![closing]);
        assert!(restored.ids().any(|i| i == id));
    }
}
