#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::graph::{Const, Op, EXISTS};
use crate::{compile, Calendar, Diagnostic, RuleSources};

use super::RowError;

const SCHEMA: &str = r#"
event_types:
  trip:
    stream: events.vehicle_fuel
    subject: vehicle_id
    fields:
      vehicle_id: { type: string, required: true }
      distance_km: { type: number, required: true }
      fuel_used_l: { type: number, required: true }
      station_id: { type: string }
"#;

const TABLES: &str = r#"
tables:
  fleet:
    key: vehicle_id
    columns:
      vehicle_id: { type: string }
      standard_l_per_100km: { type: number }
      class: { type: string }
    rows:
      - { vehicle_id: V1, standard_l_per_100km: 9, class: sedan, valid_from: "2026-01-01" }
      - { vehicle_id: V1, standard_l_per_100km: 10, valid_from: "2026-06-01T00:00:00+08:00" }
  stations:
    key: station_id
    scope: branch
    columns:
      station_id: { type: string }
    rows:
      - { branch: wuhan, station_id: ST-001 }
lists:
  blocked: [S1, S2]
"#;

fn points(when: &str) -> String {
    format!(
        "control_points:\n  - id: VF-900\n    domain: fuel_consumption\n    title: t\n    event_type: trip\n    when: {}\n    tiers:\n      - tier: 1\n        notify: fleet_manager\n    message: m\n",
        serde_json::to_string(when).unwrap()
    )
}

fn compile_when(when: &str) -> Result<crate::Compiled, Vec<Diagnostic>> {
    let points = points(when);
    compile(&RuleSources::from_texts([
        ("schemas/trip.yaml", SCHEMA),
        ("tables/fleet.yaml", TABLES),
        ("points.yaml", points.as_str()),
    ]))
}

fn errors(when: &str) -> Vec<Diagnostic> {
    compile_when(when)
        .map(|_| ())
        .expect_err("should not compile")
        .into_iter()
        .filter(|d| d.is_error())
        .collect()
}

#[test]
fn tables_compile_with_their_rows_as_of_validity() {
    let c = compile_when(
        "fuel_used_l > distance_km * lookup(\"fleet\", vehicle_id, \"standard_l_per_100km\") / 100",
    )
    .unwrap();
    let fleet = c.graph.tables.iter().find(|t| t.name == "fleet").unwrap();
    assert_eq!(fleet.rows.len(), 2);
    assert_eq!(&*fleet.rows[0].key, "V1");
    // 2026-01-01 at midnight in Asia/Shanghai.
    assert_eq!(fleet.rows[0].valid_from, 1_767_196_800);
    assert_eq!(fleet.rows[0].valid_to, i64::MAX);
    let (col, _) = fleet.column("standard_l_per_100km").unwrap();
    assert_eq!(fleet.rows[1].values[col as usize], Some(Const::Float(10.0)));
    let (class, _) = fleet.column("class").unwrap();
    assert_eq!(fleet.rows[1].values[class as usize], None);
    let stations = c
        .graph
        .tables
        .iter()
        .find(|t| t.name == "stations")
        .unwrap();
    assert_eq!(&*stations.rows[0].key, "wuhan|ST-001");
    // The list is a one-column table too.
    let blocked = c.graph.tables.iter().find(|t| t.name == "blocked").unwrap();
    assert_eq!(blocked.rows.len(), 2);
    // The lookup is a node of the program; the point's evidence names it.
    let et = &c.graph.event_types[0];
    assert!(et
        .program
        .nodes
        .iter()
        .any(|n| matches!(&n.op, Op::Lookup(_, c, k) if *c == col && k.len() == 1)));
    let cp = &c.graph.control_points[0];
    assert!(cp
        .evidence
        .iter()
        .any(|(n, _)| n == "lookup(\"fleet\", vehicle_id, \"standard_l_per_100km\")"));
}

#[test]
fn identical_lookups_are_one_node() {
    let c = compile_when(
        "lookup(\"fleet\", vehicle_id, \"standard_l_per_100km\") > 1 && \
         lookup(\"fleet\", vehicle_id, \"standard_l_per_100km\") < 100 && \
         exists(\"stations\", station_id) && exists(\"blocked\", vehicle_id)",
    )
    .unwrap();
    let et = &c.graph.event_types[0];
    let lookups: Vec<&Op> = et
        .program
        .nodes
        .iter()
        .map(|n| &n.op)
        .filter(|o| matches!(o, Op::Lookup(..)))
        .collect();
    assert_eq!(lookups.len(), 3, "{lookups:?}");
    // The scoped table reads the event's branch first (slot 1).
    assert!(lookups
        .iter()
        .any(|o| matches!(o, Op::Lookup(_, EXISTS, k) if k.len() == 2 && k[0] == 1)));
}

#[test]
fn unknown_tables_and_columns_name_file_point_and_expression() {
    let when = "lookup(\"flet\", vehicle_id, \"standard_l_per_100km\") > 9";
    let e = errors(when);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].file, "points.yaml");
    assert_eq!(e[0].item.as_deref(), Some("VF-900"));
    assert_eq!(e[0].expression.as_deref(), Some(when));
    assert!(
        e[0].message
            .contains("unknown table `flet`; did you mean `fleet`?"),
        "{}",
        e[0].message
    );

    let when = "lookup(\"fleet\", vehicle_id, \"standard_l_per_100\") > 9";
    let e = errors(when);
    assert_eq!(e[0].expression.as_deref(), Some(when));
    assert!(
        e[0].message
            .contains("table `fleet` has no column `standard_l_per_100`; did you mean `standard_l_per_100km`?"),
        "{}",
        e[0].message
    );

    let e = errors("exists(\"fleet\", distance_km)");
    assert!(
        e[0].message
            .contains("key `vehicle_id` of table `fleet` is a string"),
        "{}",
        e[0].message
    );
    let e = errors("exists(\"fleet\", vehicle_id, station_id)");
    assert!(e[0].message.contains("keyed by 1"), "{}", e[0].message);
    let e = errors("lookup(\"fleet\", vehicle_id, \"class\") > 1");
    assert!(
        e[0].message.contains("compares two numbers"),
        "{}",
        e[0].message
    );
    let e = errors("lookup(fleet, vehicle_id, \"class\") == \"x\"");
    assert!(e[0].message.contains("in quotes"), "{}", e[0].message);
    let e = errors("exists(\"fleet\")");
    assert!(
        e[0].message.contains("at least 2 arguments"),
        "{}",
        e[0].message
    );
    let e = errors("lookupp(\"fleet\", vehicle_id, \"class\") == \"x\"");
    assert!(
        e[0].message.contains("did you mean `lookup`?"),
        "{}",
        e[0].message
    );
}

#[test]
fn bad_declarations_and_rows_are_errors_not_panics() {
    let bad = [
        ("key: nope\n    columns: { a: { type: string } }", "key column `nope`"),
        ("key: a\n    columns: { a: { type: number } }", "string or integer"),
        ("key: a\n    columns: { a: { type: string }, valid_from: { type: string } }", "reserved"),
        ("key: a\n    columns: { a: { type: string } }\n    rows: [{ a: x, b: 1 }]", "row 1: `b` is not a column"),
        ("key: a\n    columns: { a: { type: string } }\n    rows: [{ b: 1 }]", "not a column"),
        ("key: a\n    columns: { a: { type: string } }\n    rows: [{ }]", "row 1: key column `a` is missing"),
        ("key: a\n    columns: { a: { type: string } }\n    rows: [{ a: x, valid_from: soon }]", "neither RFC 3339"),
        ("key: a\n    columns: { a: { type: string } }\n    rows: [{ a: x, valid_from: \"2026-02-01\", valid_to: \"2026-01-01\" }]", "never valid"),
        ("key: a\n    scope: branch\n    columns: { a: { type: string } }\n    rows: [{ a: x }]", "scoped by branch"),
        ("key: a\n    columns: { a: { type: string }, n: { type: integer } }\n    rows: [{ a: x, n: 1.5 }]", "must be a whole number"),
    ];
    for (decl, want) in bad {
        let text = format!("tables:\n  t:\n    {decl}\n");
        let r = compile(&RuleSources::from_texts([
            ("schemas/trip.yaml", SCHEMA),
            ("tables/t.yaml", text.as_str()),
        ]));
        let e = r.err().unwrap_or_else(|| panic!("{decl} compiled"));
        assert!(
            e.iter()
                .any(|d| d.file == "tables/t.yaml" && d.message.contains(want)),
            "{decl}: {e:?}"
        );
    }
}

#[test]
fn versions_of_a_key_from_one_record() {
    let c = compile_when("exists(\"fleet\", vehicle_id)").unwrap();
    let fleet = c.graph.tables.iter().find(|t| t.name == "fleet").unwrap();
    let cal = Calendar::default();
    let v = serde_json::json!([
        {"vehicle_id": "V2", "standard_l_per_100km": 8, "valid_to": "2026-03-01T00:00:00Z"},
        {"vehicle_id": "V2", "standard_l_per_100km": 8.5, "valid_from": "2026-03-01T00:00:00Z"}
    ]);
    let rows = fleet.versions(&v, &cal).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].valid_at(1_772_323_199) && !rows[0].valid_at(1_772_323_200));
    assert!(rows[1].valid_at(1_772_323_200));
    let mixed = serde_json::json!([{"vehicle_id": "V2"}, {"vehicle_id": "V3"}]);
    assert_eq!(
        fleet.versions(&mixed, &cal),
        Err(RowError::OtherKey("V3".to_owned()))
    );
    assert_eq!(
        fleet.row(&serde_json::json!("V1"), &cal),
        Err(RowError::NotObject)
    );
}
