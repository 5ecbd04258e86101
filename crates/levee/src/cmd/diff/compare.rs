//! The diffing itself, pure: two replays' alerts and control points in, per
//! control point the alerts added, removed and changed in tier out.
//!
//! Alerts are matched by (control point, event id); alert ids are not needed
//! (they do not depend on the ruleset, but an escalation's does on its
//! tier). What one ruleset raised for a (point, event) is its *tier path*:
//! the tier of the alert, then those of its escalations, in the order
//! raised. The same (point, event) raised by both with a different path is a
//! tier change; one raised by only one of them, an alert added or removed.
//!
//! A control point present in only one ruleset is new or removed, unless it
//! is *renamed*: exactly one point of the other ruleset has no counterpart
//! of its id and the same [`Definition`]. A renamed point's alerts are
//! matched under its new id, so a pure rename changes no alert.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

/// What makes two control points the same point, whatever their ids: event
/// type, condition and tier conditions (whitespace aside), `for:`,
/// `suppress:`, `escalate_after:` and action. Titles, messages and tags may
/// differ.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Definition {
    pub event_type: String,
    pub when: String,
    /// (tier, condition) from the lowest tier up.
    pub tiers: Vec<(u8, Option<String>)>,
    pub hold_for: Option<i64>,
    pub suppress: Option<i64>,
    pub escalate_after: Option<String>,
    pub action: String,
}

impl Definition {
    /// Collapses runs of whitespace in a condition, so re-indenting or
    /// re-wrapping one is no change.
    pub fn normalize(expr: &str) -> String {
        expr.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// A control point of one ruleset.
#[derive(Debug, Clone)]
pub struct Point {
    pub id: String,
    pub title: String,
    pub definition: Definition,
}

/// What one ruleset raised for one (control point, event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    /// The tier of the alert, then of each escalation, in the order raised.
    pub tiers: Vec<u8>,
    pub subject: String,
    /// Where the event is: `FILE:LINE`.
    pub at: String,
    /// Order of the first alert in the replay: examples come in input order.
    pub seq: u64,
}

/// One ruleset's side of a diff: its points and, by (control point id,
/// event id), what it raised.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub points: Vec<Point>,
    pub raised: BTreeMap<(String, String), Raised>,
}

/// What became of a control point between base and head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    Unchanged,
    /// Same id, another [`Definition`].
    Changed,
    New,
    Removed,
    Renamed {
        from: String,
    },
}

impl Status {
    pub fn label(&self) -> String {
        match self {
            Status::Unchanged => "unchanged".to_owned(),
            Status::Changed => "changed".to_owned(),
            Status::New => "new".to_owned(),
            Status::Removed => "removed".to_owned(),
            Status::Renamed { from } => format!("renamed from {from}"),
        }
    }
}

/// The kinds of alert difference (`--fail-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Kind {
    Added,
    Removed,
    Tier,
}

/// One (control point, event) that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    pub event_id: String,
    pub subject: String,
    /// `FILE:LINE` of the event.
    pub at: String,
    /// Tier path in base; empty where base raised nothing.
    pub base_tiers: Vec<u8>,
    pub head_tiers: Vec<u8>,
}

/// The differences of one kind at one control point.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Count {
    pub count: u64,
    /// Per 10,000 events replayed.
    pub per_10k: f64,
    /// The first `--examples` of them, in input order.
    pub examples: Vec<Example>,
}

/// One control point's line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointDiff {
    /// The head's id; the base's for a removed point.
    pub id: String,
    pub title: String,
    #[serde(flatten)]
    pub status: Status,
    /// Alerts raised (escalations included) by each ruleset.
    pub base_alerts: u64,
    pub head_alerts: u64,
    pub added: Count,
    pub removed: Count,
    pub tier: Count,
}

impl PointDiff {
    pub fn count(&self, kind: Kind) -> &Count {
        match kind {
            Kind::Added => &self.added,
            Kind::Removed => &self.removed,
            Kind::Tier => &self.tier,
        }
    }
}

/// Every control point that differs (in status or in alerts), by id.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    pub events: u64,
    pub points: Vec<PointDiff>,
}

impl Diff {
    pub fn total(&self, kind: Kind) -> u64 {
        self.points.iter().map(|p| p.count(kind).count).sum()
    }
}

/// Compares two replays of `events` events; `examples`: how many examples
/// of each kind to keep per control point.
pub fn diff(base: &Side, head: &Side, events: u64, examples: usize) -> Diff {
    let statuses = statuses(&base.points, &head.points);
    // Base ids under the name head knows them by.
    let head_id: HashMap<String, String> = statuses
        .iter()
        .filter_map(|(id, (s, _))| match s {
            Status::Renamed { from } => Some((from.clone(), id.clone())),
            _ => None,
        })
        .collect();
    let mut keys: BTreeSet<(String, &str)> = BTreeSet::new();
    let mut base_by: HashMap<(String, &str), &Raised> = HashMap::new();
    let mut alerts: HashMap<&str, (u64, u64)> = HashMap::new();
    for ((point, event), r) in &base.raised {
        let id = head_id.get(point).map_or(point.as_str(), String::as_str);
        keys.insert((id.to_owned(), event));
        base_by.insert((id.to_owned(), event), r);
        alerts.entry(id).or_default().0 += r.tiers.len() as u64;
    }
    let mut head_by: HashMap<(String, &str), &Raised> = HashMap::new();
    for ((point, event), r) in &head.raised {
        keys.insert((point.clone(), event));
        head_by.insert((point.clone(), event), r);
        alerts.entry(point).or_default().1 += r.tiers.len() as u64;
    }
    // (point, kind) → differing (seq, example).
    let mut found: BTreeMap<(String, Kind), Vec<(u64, Example)>> = BTreeMap::new();
    for key in &keys {
        let (b, h) = (base_by.get(key), head_by.get(key));
        let kind = match (b, h) {
            (Some(b), Some(h)) if b.tiers == h.tiers => continue,
            (Some(_), Some(_)) => Kind::Tier,
            (None, Some(_)) => Kind::Added,
            (Some(_), None) => Kind::Removed,
            (None, None) => continue,
        };
        let Some(r) = h.or(b) else { continue };
        let example = Example {
            event_id: key.1.to_owned(),
            subject: r.subject.clone(),
            at: r.at.clone(),
            base_tiers: b.map(|b| b.tiers.clone()).unwrap_or_default(),
            head_tiers: h.map(|h| h.tiers.clone()).unwrap_or_default(),
        };
        found
            .entry((key.0.clone(), kind))
            .or_default()
            .push((r.seq, example));
    }
    let count = |id: &str, kind: Kind| -> Count {
        let mut all = found
            .get(&(id.to_owned(), kind))
            .cloned()
            .unwrap_or_default();
        all.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.event_id.cmp(&b.1.event_id)));
        let n = all.len() as u64;
        Count {
            count: n,
            per_10k: per_10k(n, events),
            examples: all.into_iter().take(examples).map(|(_, e)| e).collect(),
        }
    };
    let mut points = Vec::new();
    for (id, (status, title)) in statuses {
        let (base_alerts, head_alerts) = alerts.get(id.as_str()).copied().unwrap_or_default();
        let p = PointDiff {
            added: count(&id, Kind::Added),
            removed: count(&id, Kind::Removed),
            tier: count(&id, Kind::Tier),
            id,
            title,
            status,
            base_alerts,
            head_alerts,
        };
        let quiet = p.status == Status::Unchanged
            && p.added.count == 0
            && p.removed.count == 0
            && p.tier.count == 0;
        if !quiet {
            points.push(p);
        }
    }
    Diff { events, points }
}

/// `n` per 10,000 of `events`, to two decimals.
fn per_10k(n: u64, events: u64) -> f64 {
    if events == 0 {
        return 0.0;
    }
    (n as f64 * 10_000.0 / events as f64 * 100.0).round() / 100.0
}

/// Every point of either ruleset by the id the report shows it under, with
/// its status and title. Renamed pairs are one-to-one: a definition shared
/// by several unmatched points on a side is no rename.
fn statuses(base: &[Point], head: &[Point]) -> BTreeMap<String, (Status, String)> {
    let base_ids: HashMap<&str, &Point> = base.iter().map(|p| (p.id.as_str(), p)).collect();
    let head_ids: HashMap<&str, &Point> = head.iter().map(|p| (p.id.as_str(), p)).collect();
    let gone: Vec<&Point> = base
        .iter()
        .filter(|p| !head_ids.contains_key(p.id.as_str()))
        .collect();
    let fresh: Vec<&Point> = head
        .iter()
        .filter(|p| !base_ids.contains_key(p.id.as_str()))
        .collect();
    let by_def = |ps: &[&Point]| {
        let mut m: HashMap<Definition, Vec<String>> = HashMap::new();
        for p in ps {
            m.entry(p.definition.clone())
                .or_default()
                .push(p.id.clone());
        }
        m
    };
    let (gone_defs, fresh_defs) = (by_def(&gone), by_def(&fresh));
    let mut renamed_from: HashMap<&str, String> = HashMap::new();
    for p in &fresh {
        let g = gone_defs.get(&p.definition).map(Vec::as_slice);
        let f = fresh_defs.get(&p.definition).map(Vec::as_slice);
        if let (Some([from]), Some([_])) = (g, f) {
            renamed_from.insert(p.id.as_str(), from.clone());
        }
    }
    let taken: BTreeSet<&String> = renamed_from.values().collect();
    let mut out = BTreeMap::new();
    for p in head {
        let status = match (base_ids.get(p.id.as_str()), renamed_from.get(p.id.as_str())) {
            (Some(b), _) if b.definition == p.definition => Status::Unchanged,
            (Some(_), _) => Status::Changed,
            (None, Some(from)) => Status::Renamed { from: from.clone() },
            (None, None) => Status::New,
        };
        out.insert(p.id.clone(), (status, p.title.clone()));
    }
    for p in gone.into_iter().filter(|p| !taken.contains(&p.id)) {
        out.insert(p.id.clone(), (Status::Removed, p.title.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(when: &str) -> Definition {
        Definition {
            event_type: "trip".into(),
            when: Definition::normalize(when),
            tiers: vec![(1, None), (2, Some("x > 2".into()))],
            hold_for: None,
            suppress: None,
            escalate_after: None,
            action: "alert".into(),
        }
    }

    fn point(id: &str, when: &str) -> Point {
        Point {
            id: id.into(),
            title: format!("title of {id}"),
            definition: def(when),
        }
    }

    fn side(points: Vec<Point>, raised: &[(&str, &str, &[u8], u64)]) -> Side {
        Side {
            points,
            raised: raised
                .iter()
                .map(|&(p, e, tiers, seq)| {
                    let r = Raised {
                        tiers: tiers.to_vec(),
                        subject: format!("S-{e}"),
                        at: format!("events.jsonl:{seq}"),
                        seq,
                    };
                    ((p.to_owned(), e.to_owned()), r)
                })
                .collect(),
        }
    }

    fn ids(c: &Count) -> Vec<&str> {
        c.examples.iter().map(|e| e.event_id.as_str()).collect()
    }

    #[test]
    fn alerts_are_matched_by_point_and_event() {
        let base = side(
            vec![point("A", "x > 1"), point("B", "y > 1")],
            &[
                ("A", "e1", &[1], 1),
                ("A", "e2", &[1], 2),
                ("B", "e1", &[2], 1),
            ],
        );
        let head = side(
            vec![point("A", "x > 0.5"), point("B", "y > 1")],
            &[
                ("A", "e1", &[1], 1),
                ("A", "e3", &[1], 3),
                ("A", "e9", &[1], 0),
                ("B", "e1", &[3], 1),
            ],
        );
        let d = diff(&base, &head, 20_000, 10);
        let a = &d.points[0];
        assert_eq!((a.id.as_str(), &a.status), ("A", &Status::Changed));
        assert_eq!((a.base_alerts, a.head_alerts), (2, 3));
        // In input order, not in event id order.
        assert_eq!(ids(&a.added), ["e9", "e3"]);
        assert_eq!(a.added.per_10k, 1.0);
        assert_eq!(ids(&a.removed), ["e2"]);
        assert_eq!(a.removed.examples[0].base_tiers, [1]);
        assert!(a.removed.examples[0].head_tiers.is_empty());
        let b = &d.points[1];
        assert_eq!((b.id.as_str(), &b.status), ("B", &Status::Unchanged));
        assert_eq!(ids(&b.tier), ["e1"]);
        assert_eq!(
            (
                b.tier.examples[0].base_tiers.clone(),
                b.tier.examples[0].head_tiers.clone()
            ),
            (vec![2], vec![3])
        );
        assert_eq!(
            (
                d.total(Kind::Added),
                d.total(Kind::Removed),
                d.total(Kind::Tier)
            ),
            (2, 1, 1)
        );
    }

    #[test]
    fn examples_are_capped_but_counts_are_not() {
        let base = side(vec![point("A", "x > 1")], &[]);
        let raised: Vec<(&str, String, u64)> = (0..7).map(|i| ("A", format!("e{i}"), i)).collect();
        let raised: Vec<(&str, &str, &[u8], u64)> = raised
            .iter()
            .map(|(p, e, s)| (*p, e.as_str(), [1u8].as_slice(), *s))
            .collect();
        let head = side(vec![point("A", "x > 1")], &raised);
        let d = diff(&base, &head, 3, 2);
        assert_eq!(d.points[0].added.count, 7);
        assert_eq!(ids(&d.points[0].added), ["e0", "e1"]);
        assert_eq!(d.points[0].added.per_10k, 23333.33);
    }

    #[test]
    fn an_escalation_raised_by_one_side_only_is_a_tier_change() {
        let base = side(vec![point("A", "x > 1")], &[("A", "e1", &[1, 2], 1)]);
        let head = side(vec![point("A", "x > 1")], &[("A", "e1", &[1], 1)]);
        let d = diff(&base, &head, 10, 5);
        assert_eq!(d.points.len(), 1);
        assert_eq!((d.points[0].tier.count, d.points[0].added.count), (1, 0));
        assert_eq!((d.points[0].base_alerts, d.points[0].head_alerts), (2, 1));
    }

    #[test]
    fn identical_points_and_alerts_are_not_listed() {
        let base = side(vec![point("A", "x >  1")], &[("A", "e1", &[1], 1)]);
        let head = side(vec![point("A", "x > 1")], &[("A", "e1", &[1], 1)]);
        let d = diff(&base, &head, 10, 5);
        assert!(d.points.is_empty(), "{:?}", d.points);
    }

    #[test]
    fn a_renamed_point_keeps_its_alerts() {
        let base = side(
            vec![point("OLD", "x > 1"), point("GONE", "y > 1")],
            &[("OLD", "e1", &[1], 1), ("GONE", "e2", &[1], 2)],
        );
        let head = side(
            vec![point("NEW", "x  >  1"), point("FRESH", "z > 1")],
            &[("NEW", "e1", &[1], 1)],
        );
        let d = diff(&base, &head, 10, 5);
        let got: Vec<(&str, String, u64, u64)> = d
            .points
            .iter()
            .map(|p| {
                (
                    p.id.as_str(),
                    p.status.label(),
                    p.added.count,
                    p.removed.count,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("FRESH", "new".to_owned(), 0, 0),
                ("GONE", "removed".to_owned(), 0, 1),
                ("NEW", "renamed from OLD".to_owned(), 0, 0),
            ]
        );
    }

    #[test]
    fn a_definition_shared_by_two_vanished_points_is_no_rename() {
        let base = side(vec![point("A1", "x > 1"), point("A2", "x > 1")], &[]);
        let head = side(vec![point("B", "x > 1")], &[]);
        let d = diff(&base, &head, 10, 5);
        let got: Vec<String> = d
            .points
            .iter()
            .map(|p| format!("{} {}", p.id, p.status.label()))
            .collect();
        assert_eq!(got, ["A1 removed", "A2 removed", "B new"]);
    }
}
