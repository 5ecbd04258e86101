//! Unit tests of [`super`]: names, labels, help texts, the dashboard and
//! alert rules against them.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

#[test]
fn names_follow_the_conventions() {
    for name in NAMES {
        assert!(name.starts_with("levee_"), "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
    }
    for counter in [
        EVENTS_TOTAL,
        DLQ_TOTAL,
        ALERTS_TOTAL,
        CONTROL_POINT_HITS_TOTAL,
        CALENDAR_PROVISIONAL_TOTAL,
        KAFKA_ERRORS_TOTAL,
        RULESET_RELOADS_TOTAL,
        HTTP_REQUESTS_TOTAL,
        SHADOW_DIFF_TOTAL,
        SHADOW_RELOADS_TOTAL,
    ] {
        assert!(counter.ends_with("_total"), "{counter}");
    }
}

#[test]
fn every_family_is_registered_with_help() {
    init();
    // Labelled families show once they have a series.
    METRICS.events.with_label_values(&["t", "trip", "ok"]);
    METRICS.alerts.with_label_values(&["d", "1", "alert"]);
    METRICS.hits.with_label_values(&["VF-001", "1"]);
    METRICS.lag.with_label_values(&["t", "0"]);
    METRICS.ruleset_info.with_label_values(&["v"]);
    METRICS.misrouted.with_label_values(&["t", "refuel"]);
    table_rows("fleet", 3);
    table_record("fleet", false);
    table_topic_unread("fleet", true);
    METRICS
        .data_quality
        .with_label_values(&["trip", "distance_km"]);
    METRICS.shadow_diff.with_label_values(&["VF-001", "added"]);
    METRICS.shadow_warming.with_label_values(&["VF-001"]);
    http_request("/healthz", 200, Duration::from_micros(5));
    forwarded("purchase@approver_id");
    let families = METRICS.registry.gather();
    let text = render();
    for name in NAMES.iter().chain(PROCESS_NAMES) {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} missing from the exposition:\n{text}"
        );
    }
    for f in &families {
        let name = f.name();
        assert!(
            NAMES.contains(&name) || PROCESS_NAMES.contains(&name),
            "{name} is registered but not listed in NAMES"
        );
    }
}

/// The Grafana dashboard queries only metrics levee exposes.
#[test]
fn the_dashboard_queries_existing_metrics() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/levee.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 8, "only {} queries", exprs.len());
    let mut used = std::collections::BTreeSet::new();
    for expr in &exprs {
        for name in metric_names(expr) {
            used.insert(name);
        }
    }
    for name in &used {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| NAMES.contains(base))
            .unwrap_or(name);
        assert!(
            NAMES.contains(&family) || PROCESS_NAMES.contains(&family),
            "the dashboard queries {name}, which levee does not expose"
        );
    }
    for needed in [
        EVENTS_TOTAL,
        CONSUMER_LAG,
        EVALUATE_SECONDS,
        END_TO_END_SECONDS,
        ALERTS_TOTAL,
        CONTROL_POINT_HITS_TOTAL,
        DLQ_TOTAL,
        DATA_QUALITY_TOTAL,
        RULESET_RELOADS_TOTAL,
        RULESET_INFO,
        SHADOW_DIFF_TOTAL,
    ] {
        assert!(
            used.iter().any(|u| u.starts_with(needed)),
            "the dashboard does not show {needed}"
        );
    }
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// Identifiers in a PromQL expression that look like levee or process
/// metric names.
fn metric_names(expr: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &expr[start..i];
            let prev = expr[..start].chars().next_back();
            if (word.starts_with("levee_") || word.starts_with("process_")) && prev != Some('$') {
                out.push(word);
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn dlq_reasons_cover_the_engines_kinds() {
    for kind in BadKind::ALL {
        assert!(DLQ_REASONS.contains(&kind.as_str()), "{}", kind.as_str());
    }
}

#[test]
fn kafka_error_kinds_are_distinct() {
    let mut seen = std::collections::HashSet::new();
    for k in KafkaErrorKind::ALL {
        assert!(seen.insert(k.as_str()));
    }
}

/// An alert of a data-quality point counts its event type and field; an
/// integrity alert does not count there.
#[test]
fn data_quality_alerts_count_by_event_type_and_field() {
    init();
    let alert = |cp: &str, domain: &str| -> Alert {
        serde_json::from_value(serde_json::json!({
            "alert_id": "0", "control_point": cp, "domain": domain, "title": "t",
            "tier": 1, "notify": "r", "action": "alert", "subject": "V1",
            "branch": "wuhan", "event_id": "e1", "event_type": "trip",
            "occurred_at": "2026-11-02T09:00:00+08:00",
            "detected_at": "2026-11-02T01:00:00.000Z", "source": {"http": true},
            "ruleset_version": "v", "message": "m", "evidence": {}
        }))
        .unwrap()
    };
    let count = || {
        METRICS
            .data_quality
            .with_label_values(&["trip", "fuel_used_l"])
            .get()
    };
    let before = count();
    alert_raised(&alert("DQ-trip-fuel_used_l", "data_quality"));
    alert_raised(&alert("VF-001", "fuel_consumption"));
    assert_eq!(count(), before + 1);
}
