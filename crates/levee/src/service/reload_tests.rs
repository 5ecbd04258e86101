//! Unit tests of [`super`]: which tables a reload reads from their topics,
//! before the new rules take over.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;

use super::*;

const TYPES: &str = r#"
event_types:
  purchase:
    stream: events.procurement
    subject: supplier_id
    fields:
      supplier_id: { type: string, required: true }
control_points:
  - id: PS-900
    domain: procurement
    title: Purchase from a blacklisted supplier
    event_type: purchase
    when: exists("blacklist", supplier_id)
    tiers: [{ tier: 1, notify: procurement_manager }]
    message: "{supplier_id}"
"#;

const BLACKLIST: &str = r#"
tables:
  blacklist:
    key: supplier_id
    topic: tables.blacklist
    columns: { supplier_id: { type: string } }
    rows: [{ supplier_id: S-FILE }]
"#;

const INTERESTS: &str = r#"
tables:
  interests:
    key: [employee_id, supplier_id]
    topic: tables.interests
    columns: { employee_id: { type: string }, supplier_id: { type: string } }
    rows: [{ employee_id: E-FILE, supplier_id: S-FILE }]
"#;

/// A reader of table topics that records what it was asked, and puts one
/// row (`S-TOPIC`, or `E-TOPIC|S-TOPIC`) in each table it reads.
#[derive(Debug, Default)]
struct Fake {
    followed: Vec<String>,
    asked: Mutex<Vec<Vec<String>>>,
    stopped: bool,
}

impl TableTopics for Fake {
    fn follows(&self, topic: &str) -> bool {
        self.followed.iter().any(|t| t == topic)
    }

    fn read_to_end(&self, graph: &RuleGraph, set: &TableSet, tables: &[usize]) -> bool {
        let mut names = Vec::new();
        for &i in tables {
            let t = &graph.tables[i];
            let json = if t.key.len() == 2 {
                serde_json::json!({"employee_id": "E-TOPIC", "supplier_id": "S-TOPIC"})
            } else {
                serde_json::json!({"supplier_id": "S-TOPIC"})
            };
            let row = t.row(&json, &graph.calendar).unwrap();
            let key = row.key.to_string();
            set.write(i).replace_all([]);
            set.write(i).put(&key, [row]);
            names.push(t.name.clone());
        }
        self.asked.lock().unwrap().push(names);
        !self.stopped
    }
}

fn rules(dir: &std::path::Path, fake: Fake) -> (Rules, Arc<Fake>) {
    std::fs::write(dir.join("types.yaml"), TYPES).unwrap();
    std::fs::write(dir.join("blacklist.yaml"), BLACKLIST).unwrap();
    // As shadow rules: the metrics other tests read are left alone.
    let rules = Rules::load_shadow(Origin::Dir(dir.to_path_buf())).unwrap();
    let fake = Arc::new(fake);
    rules.set_table_topics(Arc::clone(&fake) as Arc<dyn TableTopics>);
    (rules, fake)
}

/// The keys table `name` of the set in force holds.
fn len(rules: &Rules, name: &str) -> usize {
    let set = rules.tables();
    let n = set.read(set.index(name).unwrap()).len();
    n
}

#[test]
fn a_table_a_reload_brings_is_read_from_its_topic_before_the_swap() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = Fake {
        followed: vec!["tables.blacklist".to_owned()],
        ..Fake::default()
    };
    let (rules, fake) = rules(tmp.path(), fake);
    std::fs::write(tmp.path().join("interests.yaml"), INTERESTS).unwrap();
    rules.reload("test");
    assert_eq!(rules.current().1, 1);
    // Only the new table: the blacklist's topic is followed, its rows kept.
    assert_eq!(*fake.asked.lock().unwrap(), [vec!["interests".to_owned()]]);
    let set = rules.tables();
    let i = set.index("interests").unwrap();
    let mut out = levee_engine::Val::Missing;
    let slots = [
        levee_engine::Val::Str("E-TOPIC".to_owned()),
        levee_engine::Val::Str("S-TOPIC".to_owned()),
    ];
    set.lookup(
        i as u32,
        levee_rules::graph::EXISTS,
        &[0, 1],
        &slots,
        0,
        &mut out,
    );
    assert_eq!(
        out,
        levee_engine::Val::Bool(true),
        "the topic's row, not the file's"
    );
    assert_eq!(len(&rules, "interests"), 1);
}

#[test]
fn a_table_whose_topic_was_not_read_is_read_at_the_next_reload_and_a_changed_one_too() {
    let tmp = tempfile::tempdir().unwrap();
    // The blacklist's topic was not found at start-up: it is not followed.
    let (rules, fake) = rules(tmp.path(), Fake::default());
    let before = rules.tables();
    let b = before.index("blacklist").unwrap();
    std::fs::write(tmp.path().join("interests.yaml"), INTERESTS).unwrap();
    rules.reload("test");
    assert_eq!(
        *fake.asked.lock().unwrap(),
        [vec!["blacklist".to_owned(), "interests".to_owned()]]
    );
    // The old rules' rows were not touched while the topic was read.
    assert_eq!(before.read(b).len(), 1);
    let after = rules.tables();
    assert!(!after.shares(after.index("blacklist").unwrap(), &before, b));

    // Another topic: read again.
    std::fs::write(
        tmp.path().join("blacklist.yaml"),
        BLACKLIST.replace("tables.blacklist", "tables.blacklist2"),
    )
    .unwrap();
    rules.reload("test");
    assert_eq!(fake.asked.lock().unwrap().len(), 2);
    assert_eq!(fake.asked.lock().unwrap()[1][0], "blacklist");
}

#[test]
fn a_reload_stopped_while_reading_keeps_the_rules_in_force() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = Fake {
        stopped: true,
        ..Fake::default()
    };
    let (rules, _) = rules(tmp.path(), fake);
    let version = rules.version();
    std::fs::write(tmp.path().join("interests.yaml"), INTERESTS).unwrap();
    rules.reload("test");
    assert_eq!(rules.version(), version);
    assert_eq!(rules.current().1, 0);
}
