//! The reference catalog: 581 control points in the 20 domains of the
//! operator's four event streams (docs/domain.md), each distinct, each tested.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const DOMAINS: [&str; 20] = [
    "fuel_consumption",
    "fuel_card",
    "vehicle_use",
    "vehicle_maintenance",
    "arrears",
    "credit_control",
    "bill_adjustment",
    "enterprise_pricing",
    "sourcing",
    "bidding",
    "supplier_management",
    "contract_management",
    "engineering_construction",
    "payment_settlement",
    "marketing_campaign",
    "channel_commission",
    "terminal_subsidy",
    "third_party_cooperation",
    "points_and_gifts",
    "ict_projects",
];

fn levee(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_levee"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .expect("run levee")
}

#[test]
fn check_reports_581_control_points_in_20_domains() {
    let out = levee(&["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.starts_with("581 control points in 20 domains, "),
        "{summary}"
    );
}

#[test]
fn catalog_lists_581_distinct_control_points_with_chinese_titles() {
    let out = levee(&["catalog", "--format", "json"]);
    assert!(out.status.success());
    let cps: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cps.len(), 581);
    let ids: BTreeSet<&str> = cps.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 581, "ids are unique");
    let domains: BTreeSet<&str> = cps.iter().map(|c| c["domain"].as_str().unwrap()).collect();
    assert_eq!(domains, DOMAINS.into_iter().collect::<BTreeSet<_>>());
    let mut whens: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in &cps {
        let id = c["id"].as_str().unwrap();
        let when = c["when"].as_str().unwrap_or_default();
        assert!(!when.trim().is_empty(), "{id} has no condition");
        whens.entry(when).or_default().push(id);
        let zh = c["title_zh"].as_str().unwrap_or_default();
        assert!(
            zh.chars().any(|ch| ('\u{4e00}'..='\u{9fff}').contains(&ch)),
            "{id} needs a Chinese title, has {zh:?}"
        );
        assert!(
            c["description"].as_str().is_some_and(|d| d.len() > 20),
            "{id} needs a description"
        );
    }
    let shared: Vec<_> = whens.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        shared.is_empty(),
        "control points sharing a condition: {shared:?}"
    );
    // VF-001 and BA-001 are the contract's own.
    let vf = cps.iter().find(|c| c["id"] == "VF-001").unwrap();
    assert_eq!(vf["tiers"][0]["notify"], "general_affairs_manager");
    let ba = cps.iter().find(|c| c["id"] == "BA-001").unwrap();
    assert_eq!(ba["when"], "arrears_cny >= 80000 && overdue_months >= 6");
    assert_eq!(ba["tiers"][0]["notify"], "department_manager");
}
