//! The Grafana dashboard: the shadow rules' differences have a panel, and
//! no two panels overlap.

use super::*;

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read(&deploy().join("grafana/levee.json"))).unwrap()
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

fn exprs(panel: &serde_json::Value) -> Vec<&str> {
    panel["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["expr"].as_str())
        .collect()
}

#[test]
fn dashboard_shows_shadow_differences_by_point_and_kind() {
    let d = dashboard();
    let all = panels(&d);
    let shadow: Vec<_> = all
        .iter()
        .filter(|p| {
            exprs(p)
                .iter()
                .any(|e| e.contains("levee_shadow_diff_total"))
        })
        .collect();
    assert!(!shadow.is_empty(), "no panel shows levee_shadow_diff_total");
    // Per control point and kind, over time.
    assert!(
        shadow.iter().any(|p| p["type"] == "timeseries"
            && exprs(p)
                .iter()
                .any(|e| e.contains("by (control_point, kind)"))),
        "no time series of the differences by control point and kind"
    );
    // And which points are still warming up.
    assert!(
        all.iter().any(|p| exprs(p)
            .iter()
            .any(|e| e.contains("levee_shadow_warming_up"))),
        "no panel shows the points warming up"
    );
}

#[test]
fn dashboard_panels_do_not_overlap() {
    let d = dashboard();
    let boxes: Vec<(i64, i64, i64, i64, String)> = panels(&d)
        .iter()
        .map(|p| {
            let g = &p["gridPos"];
            let n = |k: &str| g[k].as_i64().unwrap();
            (
                n("x"),
                n("y"),
                n("w"),
                n("h"),
                p["title"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for (i, a) in boxes.iter().enumerate() {
        assert!(a.0 + a.2 <= 24, "{} is wider than the grid", a.4);
        for b in &boxes[i + 1..] {
            let apart =
                a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1;
            assert!(apart, "{} overlaps {}", a.4, b.4);
        }
    }
}
