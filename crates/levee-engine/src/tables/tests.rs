#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use levee_rules::{compile, RuleSources};

use super::TableSet;
use crate::{Engine, Source, Val};

const RULES: &str = r#"
event_types:
  purchase:
    stream: events.procurement
    subject: supplier_id
    fields:
      supplier_id: { type: string, required: true }
      amount_cny: { type: number, required: true }
      station_id: { type: string }
tables:
  blacklist:
    key: supplier_id
    columns:
      supplier_id: { type: string }
      reason: { type: string }
      limit_cny: { type: number }
    topic: tables.blacklist
    rows:
      - { supplier_id: S1, reason: fraud, limit_cny: 100, valid_from: "2026-12-01T00:00:00+08:00" }
  stations:
    key: station_id
    scope: branch
    columns:
      station_id: { type: string }
    rows:
      - { branch: wuhan, station_id: ST-1 }
control_points:
  - id: PS-900
    domain: procurement
    title: Purchase from a blacklisted supplier
    event_type: purchase
    when: exists("blacklist", supplier_id)
    tiers: [{ tier: 1, notify: procurement_manager }]
    message: "{supplier_id}"
  - id: PS-901
    domain: procurement
    title: Purchase above the register's limit
    event_type: purchase
    when: amount_cny > lookup("blacklist", supplier_id, "limit_cny")
    tiers: [{ tier: 1, notify: procurement_manager }]
    message: "{supplier_id}"
  - id: PS-902
    domain: procurement
    title: Station not designated for the branch
    event_type: purchase
    when: "!exists(\"stations\", station_id)"
    tiers: [{ tier: 1, notify: procurement_manager }]
    message: "{station_id}"
"#;

fn engine() -> Engine {
    let c = compile(&RuleSources::from_texts([("rules.yaml", RULES)])).unwrap();
    Engine::new(Arc::new(c.graph))
}

/// The control points an event fires, sorted.
fn fired(e: &mut Engine, at: &str, supplier: &str, amount: f64, branch: &str) -> Vec<String> {
    let ev = format!(
        r#"{{"event_id":"p-{at}","type":"purchase","occurred_at":"{at}","branch":"{branch}","supplier_id":"{supplier}","amount_cny":{amount},"station_id":"ST-1"}}"#
    );
    let p = e
        .process(ev.as_bytes(), &Source::Http { http: true }, "now")
        .unwrap();
    let mut ids: Vec<String> = p.alerts.iter().map(|a| a.control_point.clone()).collect();
    ids.sort();
    ids
}

const BEFORE: &str = "2026-11-30T23:59:59+08:00";
const AFTER: &str = "2026-12-01T00:00:00+08:00";

#[test]
fn a_row_counts_from_its_valid_from_on_the_events_time() {
    let mut e = engine();
    assert_eq!(fired(&mut e, AFTER, "S1", 50.0, "wuhan"), ["PS-900"]);
    // Processed later, dated before: the supplier was not blacklisted yet.
    assert!(fired(&mut e, BEFORE, "S1", 500.0, "wuhan").is_empty());
    assert_eq!(
        fired(&mut e, AFTER, "S1", 100.01, "wuhan"),
        ["PS-900", "PS-901"]
    );
    assert!(fired(&mut e, AFTER, "S2", 500.0, "wuhan").is_empty());
}

#[test]
fn scoped_tables_read_the_events_branch() {
    let mut e = engine();
    assert!(fired(&mut e, AFTER, "S2", 1.0, "wuhan").is_empty());
    assert_eq!(fired(&mut e, AFTER, "S2", 1.0, "yichang"), ["PS-902"]);
}

#[test]
fn evidence_carries_the_values_read() {
    let mut e = engine();
    let ev = format!(
        r#"{{"event_id":"p1","type":"purchase","occurred_at":"{AFTER}","branch":"wuhan","supplier_id":"S1","amount_cny":101}}"#
    );
    let p = e
        .process(ev.as_bytes(), &Source::Http { http: true }, "now")
        .unwrap();
    let a = p
        .alerts
        .iter()
        .find(|a| a.control_point == "PS-901")
        .unwrap();
    let ev = serde_json::to_value(&a.evidence).unwrap();
    assert_eq!(
        ev["lookup(\"blacklist\", supplier_id, \"limit_cny\")"],
        serde_json::json!(100.0),
        "{ev}"
    );
    // No station: the condition over it is unknown, nothing fires.
    assert!(!p.alerts.iter().any(|a| a.control_point == "PS-902"));
    assert_eq!(p.stats.unknown, 1);
}

#[test]
fn rows_changed_while_running_change_the_next_verdict() {
    let mut e = engine();
    let set = Arc::new(TableSet::from_graph(e.graph()));
    e.set_tables(set.clone());
    let t = set.index("blacklist").unwrap();
    assert!(fired(&mut e, AFTER, "S7", 500.0, "wuhan").is_empty());
    let table = &e.graph().tables[t];
    let cal = &e.graph().calendar;
    let row = table
        .row(
            &serde_json::json!({"supplier_id": "S7", "valid_from": "2026-12-01"}),
            cal,
        )
        .unwrap();
    set.write(t).put("S7", [row]);
    assert_eq!(set.read(t).len(), 2);
    assert_eq!(fired(&mut e, AFTER, "S7", 500.0, "wuhan"), ["PS-900"]);
    assert!(fired(&mut e, BEFORE, "S7", 500.0, "wuhan").is_empty());
    // A tombstone deletes the key.
    set.write(t).put("S7", []);
    assert_eq!(set.read(t).len(), 1);
    assert!(fired(&mut e, AFTER, "S7", 500.0, "wuhan").is_empty());
}

#[test]
fn versions_are_read_as_of_and_missing_values_are_unknown() {
    let e = engine();
    let set = TableSet::from_graph(e.graph());
    let t = set.index("blacklist").unwrap();
    let table = &e.graph().tables[t];
    let cal = &e.graph().calendar;
    let rows = table
        .versions(
            &serde_json::json!([
                {"supplier_id": "S3", "limit_cny": 10, "valid_to": "2026-06-01"},
                {"supplier_id": "S3", "valid_from": "2026-06-01"}
            ]),
            cal,
        )
        .unwrap();
    set.write(t).put("S3", rows);
    assert_eq!(set.read(t).versions(), 3);
    let (_, col) = (0, table.column("limit_cny").unwrap().0);
    let june = cal.midnight(chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap());
    let slots = [Val::Str("S3".to_owned())];
    let mut out = Val::Missing;
    set.lookup(t as u32, col, &[0], &slots, june - 1, &mut out);
    assert_eq!(out, Val::Float(10.0));
    set.lookup(t as u32, col, &[0], &slots, june, &mut out);
    assert_eq!(out, Val::Missing, "the later version has no limit");
    set.lookup(
        t as u32,
        levee_rules::graph::EXISTS,
        &[0],
        &slots,
        june,
        &mut out,
    );
    assert_eq!(out, Val::Bool(true));
    set.lookup(t as u32, col, &[0], &[Val::Missing], june, &mut out);
    assert_eq!(out, Val::Missing);
    set.lookup(t as u32, col, &[0], &[Val::Error], june, &mut out);
    assert_eq!(out, Val::Error);
    // An integer key is read as its decimal text.
    set.write(t).put(
        "42",
        table.row(&serde_json::json!({"supplier_id": "42"}), cal),
    );
    set.lookup(
        t as u32,
        levee_rules::graph::EXISTS,
        &[0],
        &[Val::Int(42)],
        june,
        &mut out,
    );
    assert_eq!(out, Val::Bool(true));
}

/// Shadow rules: `blacklist` as the live rules have it, `stations` with
/// another column, and a table of their own.
const SHADOW: &str = r#"
event_types:
  purchase:
    stream: events.procurement
    subject: supplier_id
    fields:
      supplier_id: { type: string, required: true }
      amount_cny: { type: number, required: true }
      station_id: { type: string }
tables:
  only_shadow:
    key: supplier_id
    topic: tables.only_shadow
    columns:
      supplier_id: { type: string }
    rows:
      - { supplier_id: S-OWN }
  blacklist:
    key: supplier_id
    columns:
      supplier_id: { type: string }
      reason: { type: string }
      limit_cny: { type: number }
    topic: tables.blacklist
    rows:
      - { supplier_id: S-SHADOW-FILE }
  stations:
    key: station_id
    scope: branch
    columns:
      station_id: { type: string }
      name: { type: string }
    rows:
      - { branch: wuhan, station_id: ST-9 }
control_points:
  - id: PS-900
    domain: procurement
    title: Purchase from a blacklisted supplier
    event_type: purchase
    when: exists("blacklist", supplier_id) || exists("only_shadow", supplier_id)
    tiers: [{ tier: 1, notify: procurement_manager }]
    message: "{supplier_id}"
"#;

#[test]
fn shadow_rules_share_the_live_rows_of_tables_of_the_same_shape() {
    let live = engine();
    let live_set = Arc::new(TableSet::from_graph(live.graph()));
    let shadow_graph = Arc::new(
        compile(&RuleSources::from_texts([("rules.yaml", SHADOW)]))
            .unwrap()
            .graph,
    );
    let (set, reshaped) = TableSet::sharing(&shadow_graph, live.graph(), &live_set);
    assert_eq!(reshaped, ["stations"]);
    let (b, lb) = (
        set.index("blacklist").unwrap(),
        live_set.index("blacklist").unwrap(),
    );
    assert!(set.shares(b, &live_set, lb));
    let (s, ls) = (
        set.index("stations").unwrap(),
        live_set.index("stations").unwrap(),
    );
    assert!(!set.shares(s, &live_set, ls));
    // The live rows, not the shadow's file rows; the shadow's own table
    // keeps its file rows; a reshaped one too.
    assert_eq!(set.read(b).len(), 1);
    assert_eq!(set.read(set.index("only_shadow").unwrap()).len(), 1);
    assert_eq!(set.read(s).len(), 1);

    let mut shadow = Engine::new(Arc::clone(&shadow_graph));
    shadow.set_tables(Arc::new(set));
    assert!(fired(&mut shadow, AFTER, "S-SHADOW-FILE", 1.0, "wuhan").is_empty());
    assert_eq!(fired(&mut shadow, AFTER, "S1", 1.0, "wuhan"), ["PS-900"]);
    assert_eq!(fired(&mut shadow, AFTER, "S-OWN", 1.0, "wuhan"), ["PS-900"]);
    // A row the live set gets from the topic is read by the shadow at once.
    let table = &live.graph().tables[lb];
    let row = table
        .row(
            &serde_json::json!({"supplier_id": "S8"}),
            &live.graph().calendar,
        )
        .unwrap();
    assert!(fired(&mut shadow, AFTER, "S8", 1.0, "wuhan").is_empty());
    live_set.write(lb).put("S8", [row]);
    assert_eq!(fired(&mut shadow, AFTER, "S8", 1.0, "wuhan"), ["PS-900"]);
}

#[test]
fn a_reload_carries_the_rows_of_a_table_read_from_its_topic_shared() {
    let e = engine();
    let old = TableSet::from_graph(e.graph());
    let b = old.index("blacklist").unwrap();
    let renamed = RULES.replace("topic: tables.blacklist", "topic: tables.blacklist2");
    let other = compile(&RuleSources::from_texts([("rules.yaml", renamed.as_str())]))
        .unwrap()
        .graph;
    // The same rules: the topic's table is carried, the one without a
    // topic holds the rules' rows.
    let (mut set, carried) = TableSet::carry_over(e.graph(), e.graph(), &old);
    assert_eq!(carried, [b]);
    assert!(set.shares(b, &old, b));
    let s = old.index("stations").unwrap();
    assert!(!set.shares(s, &old, s));
    // Another topic: not carried.
    let (_, carried) = TableSet::carry_over(&other, e.graph(), &old);
    assert!(carried.is_empty());
    // Unshared: the rules' rows, apart from the old set's.
    set.unshare(e.graph(), b);
    assert!(!set.shares(b, &old, b));
    set.write(b).replace_all([]);
    assert_eq!(old.read(b).len(), 1);
}

#[test]
fn a_one_column_key_is_kept_once_and_read_back_as_its_column() {
    let c = compile(&RuleSources::from_texts([("rules.yaml", RULES)])).unwrap();
    let t = c
        .graph
        .tables
        .iter()
        .find(|t| t.name == "blacklist")
        .unwrap();
    let mut rows = super::Rows::default();
    rows.extend(t.rows.iter().cloned());
    let at = chrono::DateTime::parse_from_rfc3339(AFTER)
        .unwrap()
        .timestamp();
    let col = |name: &str| t.column(name).unwrap().0;
    let mut out = Val::Missing;
    rows.read("S1", col("supplier_id"), at, &mut out);
    assert_eq!(out, Val::Str("S1".into()), "the key column reads the key");
    rows.read("S1", col("reason"), at, &mut out);
    assert_eq!(
        out,
        Val::Str("fraud".into()),
        "the columns after it are in place"
    );
    rows.read("S1", col("limit_cny"), at, &mut out);
    assert_eq!(out, Val::Float(100.0));
    rows.read("S1", col("supplier_id"), at - 1, &mut out);
    assert_eq!(out, Val::Missing, "no row valid then: no key either");
    // Another version added beside the kept one: both whole.
    let mut later = t.rows[0].clone();
    later.valid_from = at + 86_400;
    later.values[col("limit_cny") as usize] = Some(levee_rules::graph::Const::Float(5.0));
    rows.extend([later]);
    rows.read("S1", col("limit_cny"), at, &mut out);
    assert_eq!(out, Val::Float(100.0));
    rows.read("S1", col("limit_cny"), at + 86_400, &mut out);
    assert_eq!(out, Val::Float(5.0));
    rows.read("S1", col("reason"), at + 86_400, &mut out);
    assert_eq!(out, Val::Str("fraud".into()));
}
