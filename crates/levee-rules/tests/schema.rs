//! `rules/schema.json` (for editors) is generated from the rule-file structs
//! and must stay in step with them. `LEVEE_BLESS=1` rewrites it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use levee_rules::model::RuleFile;

#[test]
fn published_json_schema_matches_the_rule_file_structs() {
    let schema = schemars::schema_for!(RuleFile);
    let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/schema.json");
    if std::env::var_os("LEVEE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == generated,
        "rules/schema.json is out of date: run LEVEE_BLESS=1 cargo test -p levee-rules --test schema"
    );
    // It rejects unknown keys, as the compiler does.
    let v: serde_json::Value = serde_json::from_str(&published).unwrap();
    assert_eq!(v["additionalProperties"], false);
    let cp = &v["$defs"]["ControlPointDef"];
    assert_eq!(cp["additionalProperties"], false);
    for key in [
        "id",
        "domain",
        "title",
        "event_type",
        "when",
        "tiers",
        "message",
    ] {
        assert!(
            cp["required"].as_array().unwrap().iter().any(|k| k == key),
            "{key} is required"
        );
    }
}
