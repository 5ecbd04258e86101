//! The reference catalog: 583 control points in the 20 domains of the
//! operator's four event streams (docs/domain.md: the operator's 581, and
//! SO-105 and SO-106, kept per project and category and per approver), each distinct,
//! each tested; and the 6 data-quality points the schemas' `plausible` fields
//! add (domain `data_quality`, docs/contract.md#data-quality).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Points written in rule files, and points the schemas' guards add.
const INTEGRITY: usize = 583;
const DATA_QUALITY: usize = 6;

const DOMAINS: [&str; 21] = [
    "data_quality",
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
fn check_reports_589_control_points_in_21_domains() {
    let out = levee(&["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.starts_with("589 control points in 21 domains, "),
        "{summary}"
    );
}

#[test]
fn catalog_lists_589_distinct_control_points_with_chinese_titles() {
    let out = levee(&["catalog", "--format", "json"]);
    assert!(out.status.success());
    let cps: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cps.len(), INTEGRITY + DATA_QUALITY);
    let dq = cps.iter().filter(|c| c["domain"] == "data_quality");
    assert_eq!(dq.count(), DATA_QUALITY);
    let ids: BTreeSet<&str> = cps.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), INTEGRITY + DATA_QUALITY, "ids are unique");
    let domains: BTreeSet<&str> = cps.iter().map(|c| c["domain"].as_str().unwrap()).collect();
    assert_eq!(domains, DOMAINS.into_iter().collect::<BTreeSet<_>>());
    // A condition is the same condition on the same event type, failing
    // closed on the same missing fields (VU-101 alerts on a night trip with
    // no approval on record, VU-006 only on one explicitly unapproved).
    let mut whens: BTreeMap<(&str, &str, String), Vec<&str>> = BTreeMap::new();
    for c in &cps {
        let id = c["id"].as_str().unwrap();
        let when = c["when"].as_str().unwrap_or_default();
        assert!(!when.trim().is_empty(), "{id} has no condition");
        let ty = c["event_type"].as_str().unwrap_or_default();
        let closed = c["fail_closed"].to_string();
        whens.entry((ty, when, closed)).or_default().push(id);
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

/// The owning departments each domain may name (docs/domain.md).
fn owners(domain: &str) -> &'static [&'static str] {
    match domain {
        "fuel_consumption" => &["综合部", "网络部"],
        "fuel_card" | "vehicle_use" | "vehicle_maintenance" => &["综合部", "财务部"],
        "arrears" | "bill_adjustment" | "ict_projects" => &["政企客户部", "财务部"],
        "credit_control" | "enterprise_pricing" => &["政企客户部"],
        "sourcing" | "supplier_management" => &["采购管理部", "财务部"],
        "bidding" => &["采购管理部"],
        "contract_management" => &["法律事务部"],
        "engineering_construction" => &["工程建设部"],
        "payment_settlement" => &["财务部"],
        "marketing_campaign" | "third_party_cooperation" => &["市场部", "财务部"],
        "channel_commission" | "terminal_subsidy" => &["市场部"],
        "points_and_gifts" => &["市场部", "客户服务部"],
        // The department owning the event type's data (`data_owner`).
        "data_quality" => &["综合部", "采购管理部"],
        _ => &[],
    }
}

/// `{name}` placeholders of a template, as a set.
fn placeholders(t: &str) -> BTreeSet<String> {
    t.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(n, _)| n.trim().to_owned()))
        .collect()
}

#[test]
fn every_control_point_states_the_registers_columns_in_chinese() {
    let out = levee(&["catalog", "--format", "json"]);
    assert!(out.status.success());
    let cps: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cps.len(), INTEGRITY + DATA_QUALITY);
    let han = |s: &str| s.chars().any(|ch| ('\u{4e00}'..='\u{9fff}').contains(&ch));
    let mut named = 0;
    for c in &cps {
        let id = c["id"].as_str().unwrap();
        let zh = c["message_zh"].as_str().unwrap_or_default();
        assert!(han(zh), "{id}: message_zh {zh:?}");
        assert!(
            !zh.contains("CNY") && !zh.contains(" km"),
            "{id}: units in Chinese: {zh}"
        );
        assert!(
            ["high", "medium", "low"].contains(&c["risk_grade"].as_str().unwrap_or_default()),
            "{id}: risk_grade {}",
            c["risk_grade"]
        );
        assert!(
            han(c["measure"].as_str().unwrap_or_default()),
            "{id}: measure"
        );
        let owner = c["owner"].as_str().unwrap_or_default();
        let domain = c["domain"].as_str().unwrap();
        assert!(
            owners(domain).contains(&owner),
            "{id}: owner {owner:?} is not one of {domain}'s {:?}",
            owners(domain)
        );
        let basis = c["basis"].as_str().unwrap_or_default();
        if basis != "company rule" {
            named += 1;
            // A named basis is a law, regulation or standard: 《title》.
            assert!(
                basis.starts_with('《') && basis.contains('》'),
                "{id}: basis {basis:?}"
            );
            assert!(
                !basis.contains("政府采购法") || id == "IC-013",
                "{id}: {basis}"
            );
            assert!(!basis.contains("党政机关"), "{id}: {basis}");
        }
    }
    assert!(
        named > 0 && named < INTEGRITY,
        "{named} points name a basis"
    );
}

#[test]
fn message_zh_reads_the_placeholders_of_message() {
    // The catalog JSON has no English template; read the rule files.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    let mut seen = 0;
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("tests") {
                    dirs.push(p);
                }
                continue;
            }
            if p.extension().is_none_or(|x| x != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let doc: serde_json::Value = serde_norway::from_str(&text).unwrap();
            for cp in doc["control_points"].as_array().into_iter().flatten() {
                let en = placeholders(cp["message"].as_str().unwrap());
                let zh = placeholders(cp["message_zh"].as_str().unwrap_or_default());
                assert_eq!(en, zh, "{}", cp["id"]);
                seen += 1;
            }
        }
    }
    assert_eq!(seen, INTEGRITY);
}

#[test]
fn the_register_exports_as_csv_with_a_bom_when_asked() {
    let out = levee(&["catalog", "--format", "csv"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.starts_with('\u{feff}'), "no BOM unless asked");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        1 + INTEGRITY + DATA_QUALITY,
        "a header and a row each"
    );
    assert_eq!(
        lines[0],
        "id,domain,title_zh,title,event_type,risk_grade,tiers,action,measure,owner,basis,message_zh"
    );
    assert!(text.ends_with("\r\n"));
    let vf = lines.iter().find(|l| l.starts_with("VF-001,")).unwrap();
    assert!(
        vf.starts_with("VF-001,fuel_consumption,车辆实际使用油耗超过标准油耗20%,"),
        "{vf}"
    );
    assert!(
        vf.contains(
            ",高,1:general_affairs_manager 2:branch_leadership 3:discipline_inspection,alert,"
        ),
        "{vf}"
    );
    assert!(vf.contains(",综合部,company rule,车辆{vehicle_id}"), "{vf}");

    let out = levee(&["catalog", "--format", "csv", "--bom"]);
    assert!(out.status.success());
    let bom = String::from_utf8(out.stdout).unwrap();
    assert_eq!(bom.strip_prefix('\u{feff}'), Some(text.as_str()));
    assert_eq!(bom.lines().count(), 1 + INTEGRITY + DATA_QUALITY);
    let dq = lines
        .iter()
        .find(|l| l.starts_with("DQ-trip-fuel_used_l,"))
        .unwrap();
    assert!(
        dq.starts_with("DQ-trip-fuel_used_l,data_quality,trip事件的fuel_used_l读数不合理,"),
        "{dq}"
    );
    assert!(dq.contains(",低,1:fleet_data_steward,alert,"), "{dq}");
}

#[test]
fn check_counts_and_lists_the_points_without_a_named_basis() {
    let out = levee(&["check"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let note = stderr
        .lines()
        .find(|l| l.contains("name no law or regulation"))
        .unwrap_or_else(|| panic!("no basis count: {stderr}"));
    let n: usize = note
        .trim_start_matches("levee: ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(note.contains(" of 589 "), "{note}");
    let out = levee(&["check", "--verbose"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The list follows its note (other notes list other points).
    let listed: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.contains("name no law or regulation"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(listed.len(), n, "{stderr}");
    assert!(listed.iter().any(|l| l.trim().starts_with("VF-001 ")));
    assert!(
        !listed.iter().any(|l| l.trim().starts_with("BD-002 ")),
        "BD-002 names the tender law"
    );
}

#[test]
fn catalog_json_names_each_points_people() {
    let out = levee(&["catalog", "--format", "json"]);
    assert!(out.status.success());
    let cps: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let people = |id: &str| -> Vec<String> {
        let cp = cps.iter().find(|c| c["id"] == id).expect(id);
        serde_json::from_value(cp["people"].clone()).unwrap()
    };
    // As written (recusal reads them), by default every person field of
    // the type, and nobody for a data-quality point.
    assert_eq!(people("SO-002"), ["requester_id", "approver_id"]);
    assert_eq!(
        people("BA-001"),
        ["customer_manager_id", "prior_manager_id"]
    );
    assert_eq!(people("DQ-trip-fuel_used_l"), Vec::<String>::new());
    assert!(
        cps.iter()
            .filter(|c| c["domain"] != "data_quality")
            .filter(|c| c["people"].as_array().unwrap().is_empty())
            .count()
            < cps.len() / 4,
        "most integrity points name someone"
    );
}
