//! Shadow rules in one partition task: a second [`Engine`] over the shadow
//! ruleset, fed the events the live engine accepted, its alerts written to
//! `topics.shadow` and compared with the live ones.
//!
//! - It starts from a copy of the live state once the partition is
//!   restored, keeping what the shadow graph has a definition for (state
//!   is keyed by definition): a window equal to a live one has its history.
//! - A control point of an event type that gains a window the live rules
//!   lack (or a new point with `for:` or `suppress:`) starts cold: it is
//!   *warming up* (`levee_shadow_warming_up`) until its longest new window
//!   has passed in event time, so that its differences are not read as a
//!   divergence.
//! - An event type the shadow rules decide exactly as the live rules do
//!   ([`same_types`]: the same compiled type, points, tables and calendar)
//!   is not evaluated again: the live hits are the shadow's, their alerts
//!   taken under the shadow's ruleset version into its ledger (so they
//!   escalate there too), and there is no difference to count. A reload of
//!   either ruleset starts the shadow again from a copy of the live state.
//! - Its alerts never reach the tier topics; it sends no verdict, writes no
//!   changelog (its state is not tracked) and leaves the live engine as it
//!   is. Its records go with the live output (the same transaction,
//!   exactly-once).
//! - It reads the live engine's table rows (those `levee run` keeps current
//!   from the tables' topics) for every table both rulesets declare in the
//!   same shape (columns, key, scope): the same rows, shared, not a copy. A
//!   table only the shadow rules declare, or declare in another shape
//!   (logged), holds the shadow rule files' rows.
//! - The difference per event is counted in `levee_shadow_diff_total`:
//!   added (only the shadow alerted), removed (only the live), tier.

use std::sync::Arc;

use levee_engine::tables::TableSet;
use levee_engine::{Clock, Engine, Hit, Source, StateKeys};
use levee_rules::RuleGraph;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use tracing::{debug, error, warn};

use super::delivery::OutRecord;
use crate::service::metrics;
use crate::service::reload::Rules;

/// How the shadow's alerts for one event differ from the live ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffKind {
    /// Only the shadow rules alerted.
    Added,
    /// Only the live rules alerted.
    Removed,
    /// Both, at another tier.
    Tier,
}

impl DiffKind {
    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Added => "added",
            DiffKind::Removed => "removed",
            DiffKind::Tier => "tier",
        }
    }
}

/// The differences between the live and the shadow hits of one event, each
/// given as (control point id, tier): per control point, at most one.
pub fn diff<'a>(live: &[(&'a str, u8)], shadow: &[(&'a str, u8)]) -> Vec<(&'a str, DiffKind)> {
    let mut out = Vec::new();
    for &(id, tier) in shadow {
        match live.iter().find(|(l, _)| *l == id) {
            None => out.push((id, DiffKind::Added)),
            Some(&(_, t)) if t != tier => out.push((id, DiffKind::Tier)),
            Some(_) => {}
        }
    }
    for &(id, _) in live {
        if !shadow.iter().any(|(s, _)| *s == id) {
            out.push((id, DiffKind::Removed));
        }
    }
    out
}

/// Hits as (control point id, tier).
fn ids<'g>(graph: &'g RuleGraph, hits: &[Hit]) -> Vec<(&'g str, u8)> {
    hits.iter()
        .filter_map(|h| {
            let cp = graph.control_points.get(h.control_point as usize)?;
            Some((cp.id.as_str(), h.tier))
        })
        .collect()
}

/// The shadow control points that start cold against state kept under
/// `known`, each with how long (seconds of event time) it warms up: the
/// longest window of its event type that `known` lacks, and, if the point
/// itself is new, its `for:` and `suppress:`. Points of a type with a new
/// window all wait for it: which windows a condition reads is not traced.
pub fn cold_points(graph: &RuleGraph, known: &StateKeys) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for cp in &graph.control_points {
        let Some(et) = graph.event_types.get(cp.event_type as usize) else {
            continue;
        };
        let mut longest = et
            .aggregates
            .iter()
            .filter(|a| !known.has_window(a.key))
            .map(|a| a.over)
            .max()
            .unwrap_or(0);
        if !known.has_point(cp.key) {
            longest = longest
                .max(cp.hold_for.unwrap_or(0))
                .max(cp.suppress.unwrap_or(0));
        }
        if longest > 0 {
            out.push((cp.id.clone(), longest));
        }
    }
    out
}

/// The shadow control points still warming up on one partition; each one
/// counts in `levee_shadow_warming_up` until it is warm or the partition
/// goes.
#[derive(Debug, Default)]
pub struct Warming {
    /// Not dated yet (the partition had no event time when they started):
    /// (id, length), dated from the first event.
    waiting: Vec<(String, i64)>,
    /// (id, event time at which it is warm).
    until: Vec<(String, i64)>,
}

impl Warming {
    /// Points starting cold at event time `since` (0 or less: not known
    /// yet, the next event's); one already warming keeps the later end.
    pub fn add(&mut self, points: Vec<(String, i64)>, since: i64) {
        for (id, length) in points {
            let fresh = !self.is_warming(&id);
            if since > 0 {
                let end = since.saturating_add(length);
                match self.until.iter_mut().find(|(i, _)| *i == id) {
                    Some(e) => e.1 = e.1.max(end),
                    None => self.until.push((id.clone(), end)),
                }
            } else {
                self.waiting.push((id.clone(), length));
            }
            if fresh {
                metrics::shadow_warming(&id, true);
            }
        }
    }

    pub fn is_warming(&self, id: &str) -> bool {
        self.waiting.iter().any(|(i, _)| i == id) || self.until.iter().any(|(i, _)| i == id)
    }

    /// The partition's event time is now `watermark`: dates what waited,
    /// and returns the points that are warm now.
    pub fn advance(&mut self, watermark: i64) -> Vec<String> {
        if watermark > 0 {
            for (id, length) in std::mem::take(&mut self.waiting) {
                let end = watermark.saturating_add(length);
                match self.until.iter_mut().find(|(i, _)| *i == id) {
                    Some(e) => e.1 = e.1.max(end),
                    None => self.until.push((id, end)),
                }
            }
        }
        let mut warm = Vec::new();
        self.until.retain(|(id, end)| {
            let done = watermark >= *end;
            if done {
                warm.push(id.clone());
            }
            !done
        });
        for id in &warm {
            metrics::shadow_warming(id, false);
        }
        warm
    }

    /// Forgets points the shadow rules no longer have.
    fn retain(&mut self, graph: &RuleGraph) {
        let gone = |id: &str| graph.control_point(id).is_none();
        for (id, _) in self.waiting.iter().chain(&self.until) {
            if gone(id) {
                metrics::shadow_warming(id, false);
            }
        }
        self.waiting.retain(|(id, _)| !gone(id));
        self.until.retain(|(id, _)| !gone(id));
    }
}

impl Drop for Warming {
    fn drop(&mut self) {
        for (id, _) in self.waiting.iter().chain(&self.until) {
            metrics::shadow_warming(id, false);
        }
    }
}

/// The shadow rules of one partition.
#[derive(Debug)]
pub struct Shadow {
    rules: Arc<Rules>,
    generation: u64,
    engine: Engine,
    warming: Warming,
    /// `topics.shadow`.
    topic: String,
    /// The live engine's table set the shadow engine's tables share rows
    /// with (shared again when the live engine gets another).
    live_tables: Option<Arc<TableSet>>,
    /// `alerts.languages` has `zh`.
    chinese: bool,
    /// The live rules `same` compares with.
    live_graph: Arc<RuleGraph>,
    /// Per live event type: the shadow rules decide it exactly as the live
    /// rules do ([`same_types`]), so its events are not evaluated again.
    same: Vec<bool>,
}

/// [`same_types`] of the last pair of graphs asked: every partition task
/// of an instance starts its shadow over the same two, and the comparison
/// formats both catalogs.
fn same_types_cached(live: &Arc<RuleGraph>, shadow: &Arc<RuleGraph>) -> Vec<bool> {
    type Last = Option<(Arc<RuleGraph>, Arc<RuleGraph>, Vec<bool>)>;
    static LAST: std::sync::Mutex<Last> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((l, s, same)) = last.as_ref() {
        if Arc::ptr_eq(l, live) && Arc::ptr_eq(s, shadow) {
            return same.clone();
        }
    }
    let same = same_types(live, shadow);
    *last = Some((Arc::clone(live), Arc::clone(shadow), same.clone()));
    same
}

/// An event type as compiled, all but its name → slot index (a hash map,
/// whose order is not its own: the slots are in `fields` and `derived`).
fn described(t: &levee_rules::EventType) -> String {
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        t.name,
        t.stream,
        t.subject,
        t.fields,
        t.derived,
        t.program,
        t.control_points,
        t.aggregates,
        t.plan,
        t.request
    )
}

/// Per event type of `live`: whether `shadow` decides its events exactly as
/// `live` does: the same compiled type (schema, derived values, windows,
/// program) and control points, in the same order, and the same tables and
/// calendar. Only equal descriptions count: any doubt evaluates again.
pub fn same_types(live: &RuleGraph, shadow: &RuleGraph) -> Vec<bool> {
    let shared = format!("{:?}{:?}", live.tables, live.calendar)
        == format!("{:?}{:?}", shadow.tables, shadow.calendar);
    live.event_types
        .iter()
        .map(|lt| {
            shared
                // By name, re-keyed copies included.
                && shadow.event_types.iter().find(|st| st.name == lt.name).is_some_and(|st| {
                    described(lt) == described(st)
                        && lt.control_points.len() == st.control_points.len()
                        && lt
                            .control_points
                            .iter()
                            .zip(&st.control_points)
                            .all(|(&a, &b)| {
                                format!("{:?}", live.control_points[a as usize])
                                    == format!("{:?}", shadow.control_points[b as usize])
                            })
                })
        })
        .collect()
}

impl Shadow {
    /// Starts from a copy of `live`'s state (the partition just restored).
    pub fn start(rules: Arc<Rules>, live: &Engine, topic: &str, chinese: bool) -> Self {
        let (graph, generation) = rules.current();
        let mut engine = Engine::new(Arc::clone(&graph));
        engine.restore(live.state().clone(), live.ledger().clone());
        // Never written anywhere: nothing to remember for a changelog.
        engine.set_tracking(false);
        engine.state_mut().retain_known(&StateKeys::of(&graph));
        engine.set_chinese(chinese);
        // Like the live engine: re-keyed copies are not evaluated here.
        engine.set_forward_copies(true);
        let mut warming = Warming::default();
        warming.add(
            cold_points(&graph, &StateKeys::of(live.graph())),
            live.watermark(),
        );
        let mut shadow = Shadow {
            same: same_types_cached(live.graph(), &graph),
            live_graph: Arc::clone(live.graph()),
            rules,
            generation,
            engine,
            warming,
            topic: topic.to_owned(),
            live_tables: None,
            chinese,
        };
        shadow.share_tables(live);
        shadow
    }

    /// Reads the live engine's rows of the tables both rulesets declare in
    /// the same shape; again whenever the live engine's set or the shadow
    /// graph changed (a reload).
    fn share_tables(&mut self, live: &Engine) {
        if let Some(t) = &self.live_tables {
            if Arc::ptr_eq(t, live.tables()) {
                return;
            }
        }
        let (set, reshaped) = TableSet::sharing(self.engine.graph(), live.graph(), live.tables());
        for table in reshaped {
            warn!(
                table = %table,
                "the shadow rules declare table `{table}` in another shape (columns, key, scope) than the rules in force: the shadow reads its own rule files' rows of it, not the topic's"
            );
        }
        self.engine.set_tables(Arc::new(set));
        self.live_tables = Some(Arc::clone(live.tables()));
    }

    /// The shadow rules or the live ones reloaded: the shadow starts again
    /// from a copy of the live state (types it did not evaluate have no
    /// state of their own), between messages; points new to it warm up.
    fn refresh_rules(&mut self, live: &Engine) {
        let shadow_same = self.rules.generation() == self.generation;
        if shadow_same && Arc::ptr_eq(&self.live_graph, live.graph()) {
            return;
        }
        let (graph, generation) = self.rules.current();
        self.engine.set_graph(Arc::clone(&graph));
        self.engine.set_tracking(false);
        self.engine.set_chinese(self.chinese);
        self.engine
            .restore(live.state().clone(), live.ledger().clone());
        self.engine.state_mut().retain_known(&StateKeys::of(&graph));
        // A new graph has its rule files' rows: share the live ones again.
        self.live_tables = None;
        self.generation = generation;
        self.warming.retain(&graph);
        self.warming.add(
            cold_points(&graph, &StateKeys::of(live.graph())),
            live.watermark(),
        );
        self.same = same_types_cached(live.graph(), &graph);
        self.live_graph = Arc::clone(live.graph());
    }

    pub fn set_clock(&mut self, clock: Clock) {
        self.engine.set_clock(clock);
    }

    /// One event the live engine has just evaluated (its hits are in
    /// `live`): the shadow's alerts as records to the shadow topic, the
    /// differences counted.
    pub fn event(&mut self, live: &Engine, m: &OwnedMessage, detected_at: &str) -> Vec<OutRecord> {
        self.refresh_rules(live);
        self.share_tables(live);
        let source = || Source::Kafka {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
        };
        let ti = live.envelope().type_index as usize;
        if self.same.get(ti).copied().unwrap_or(false) {
            // Decided as the live rules decide it: their alerts, as the
            // shadow's, and no difference.
            self.warming.advance(live.watermark());
            if live.hits().is_empty() {
                return Vec::new();
            }
            let source = source();
            let alerts: Vec<_> = live
                .hits()
                .iter()
                .map(|&h| self.engine.adopt_alert(live, h, &source, detected_at))
                .collect();
            return alerts.into_iter().filter_map(|a| self.record(a)).collect();
        }
        let payload = m.payload().unwrap_or_default();
        // The live engine's decoded event where both schemas read it alike
        // (the usual case: a shadow ruleset changes points, not schemas).
        let decoded = if self.engine.take_decoded(live) {
            Ok(())
        } else {
            self.engine.decode(payload)
        };
        let hits: &[Hit] = match decoded {
            Ok(()) => {
                self.engine.run();
                self.engine.hits()
            }
            Err(e) => {
                // A schema the shadow rules changed: it alerts on nothing.
                debug!(topic = m.topic(), offset = m.offset(), reason = %e, "the shadow rules refuse an event the live rules accept");
                &[]
            }
        };
        if hits.is_empty() && live.hits().is_empty() {
            // Most events: neither alerted, nothing to compare or send.
            self.warming.advance(live.watermark());
            return Vec::new();
        }
        let shadow_hits = ids(self.engine.graph(), hits);
        let live_hits = ids(live.graph(), live.hits());
        for (id, kind) in diff(&live_hits, &shadow_hits) {
            metrics::shadow_diff(id, kind.as_str());
        }
        let mut out = Vec::new();
        if !shadow_hits.is_empty() {
            let source = source();
            let hits: Vec<Hit> = self.engine.hits().to_vec();
            let alerts = hits
                .into_iter()
                .map(|h| self.engine.alert(h, &source, detected_at));
            out.extend(alerts.filter_map(|a| self.record(a)));
        }
        self.warming.advance(live.watermark());
        out
    }

    /// Escalations of the shadow's open alerts now due.
    pub fn tick(&mut self, now: i64, detected_at: &str) -> Vec<OutRecord> {
        let alerts = self.engine.tick(now, detected_at);
        alerts.into_iter().filter_map(|a| self.record(a)).collect()
    }

    pub fn rectify(&mut self, alert_id: &str, status: levee_engine::Status) {
        self.engine.rectify(alert_id, status);
    }

    pub fn expire(&mut self, ttl: i64) {
        self.engine.expire(ttl);
    }

    #[cfg(test)]
    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn record(&self, alert: levee_engine::Alert) -> Option<OutRecord> {
        match serde_json::to_vec(&alert) {
            Ok(payload) => Some(OutRecord::keyed(&self.topic, alert.subject, payload)),
            Err(e) => {
                error!(error = %e, "a shadow alert could not be serialized");
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "shadow_tests.rs"]
mod tests;
