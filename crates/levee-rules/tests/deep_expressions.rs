//! An expression nested thousands of levels deep used to run the compiler
//! out of stack, which aborts the process (`levee run` reloads rules on a
//! 2 MiB tokio worker thread): found by the fuzzer (`levee-fuzz --target
//! compile`). It is now an error naming the expression; one at the limit
//! still compiles on a 2 MiB thread, in a debug build too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use levee_rules::limits::MAX_NESTING;
use levee_rules::{compile, Diagnostic, RuleSources};

const SCHEMA: &str = r#"
event_types:
  trip:
    stream: events.vehicle_fuel
    subject: vehicle_id
    fields:
      vehicle_id: { type: string, required: true }
      distance_km: { type: number, required: true }
      approved_trip: { type: boolean }
    derived:
      DERIVED
"#;

fn points(when: &str) -> String {
    format!(
        "control_points:\n  - id: VF-900\n    domain: fuel_consumption\n    title: t\n    event_type: trip\n    when: {}\n    tiers:\n      - tier: 1\n        notify: fleet_manager\n    message: m\n",
        serde_json::to_string(when).unwrap()
    )
}

/// Compiles on a thread with the stack of a tokio worker (2 MiB).
fn compile_small_stack(derived: &str, when: &str) -> Result<(), Vec<String>> {
    let schema = SCHEMA.replace("DERIVED", derived);
    let points = points(when);
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let sources = RuleSources::from_texts([
                ("schema.yaml", schema.as_str()),
                ("points.yaml", points.as_str()),
            ]);
            compile(&sources).map(|_| ()).map_err(|d| {
                d.iter()
                    .filter(|d| d.is_error())
                    .map(Diagnostic::to_string)
                    .collect()
            })
        })
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn deep_conditions_are_errors_not_aborts() {
    for when in [
        format!("{}approved_trip", "!".repeat(20_000)),
        format!("distance_km{} > 1", " + 1".repeat(20_000)),
        format!("{}distance_km > 1", "-".repeat(20_000)),
        format!(
            "{}distance_km{} > 1",
            "(".repeat(20_000),
            ")".repeat(20_000)
        ),
    ] {
        let errors = compile_small_stack("{}", &when).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains(&format!(
                "`when`: nests more than {MAX_NESTING} levels deep"
            )),
            "{}",
            &errors[0][..300.min(errors[0].len())]
        );
    }
}

#[test]
fn deep_derived_chains_are_errors_not_aborts() {
    // Each derived value reads the one before: the levels add up.
    let chain: String = (1..2000)
        .map(|i| format!("d{i}: d{} + 1\n      ", i - 1))
        .collect::<String>()
        + "d0: distance_km";
    let errors = compile_small_stack(&format!("\n      {chain}"), "d1999 > 1").unwrap_err();
    let more = format!("nests more than {MAX_NESTING} levels deep");
    assert!(errors.iter().any(|e| e.contains(&more)), "{errors:?}");
    // Near the limit: derived values of ten levels each, read one through
    // another (2 + 11 × 11 + 1 levels) ...
    let n = (MAX_NESTING - 3) / 11;
    let nested: String = (1..=n)
        .map(|i| format!("e{i}: \"{}e{}\"\n      ", "!".repeat(10), i - 1))
        .collect::<String>()
        + "e0: approved_trip";
    assert_eq!(
        compile_small_stack(&format!("\n      {nested}"), &format!("!e{n}")),
        Ok(())
    );
    // ... and a name for a name for ... (1 + 127 levels).
    let aliases: String = (1..MAX_NESTING)
        .map(|i| format!("a{i}: a{}\n      ", i - 1))
        .collect::<String>()
        + "a0: approved_trip";
    assert_eq!(
        compile_small_stack(
            &format!("\n      {aliases}"),
            &format!("a{}", MAX_NESTING - 2)
        ),
        Ok(())
    );
}

#[test]
fn an_expression_at_the_limit_compiles_on_a_small_stack() {
    // Each `!` is one level; with the name, MAX_NESTING in all.
    let when = format!("{}approved_trip", "!".repeat(MAX_NESTING - 1));
    assert_eq!(compile_small_stack("{}", &when), Ok(()));
    let when = format!("distance_km{} > 1", " + 1".repeat(MAX_NESTING / 2 - 1));
    assert_eq!(compile_small_stack("{}", &when), Ok(()));
    let over = format!("{}approved_trip", "!".repeat(MAX_NESTING));
    let errors = compile_small_stack("{}", &over).unwrap_err();
    let message = format!("nests {} levels deep", MAX_NESTING + 1);
    assert!(errors[0].contains(&message), "{errors:?}");
}

#[test]
fn every_shape_at_the_limit_returns() {
    // Whatever the shape, an expression the limit lets through is lowered
    // without running out of a 2 MiB stack (an abort would end this test
    // binary); the answer itself may be a type error.
    let levels = |per: usize| (MAX_NESTING - 3) / per;
    let nest = |open: &str, close: &str, per: usize| {
        format!(
            "{}distance_km{} > 1",
            open.repeat(levels(per)),
            close.repeat(levels(per))
        )
    };
    for when in [
        nest("max(", ", 1)", 2),
        nest("min(1, ", ")", 2),
        nest("math::abs(", ")", 1),
        nest("floor(", ")", 1),
        nest("if(approved_trip, ", ", 1)", 3),
        nest("(1 + ", ")", 2),
        nest("-(", ")", 2),
        nest("(", " * 2)", 2),
        format!("{}approved_trip", "!(".repeat(levels(2))) + &")".repeat(levels(2)),
        format!("approved_trip{}", " && approved_trip".repeat(levels(2))),
        format!("distance_km{} > 1", " ^ 2".repeat(levels(1))),
    ] {
        eprintln!("shape: {}", &when[..40.min(when.len())]);
        let _ = compile_small_stack("{}", &when);
    }
}

#[test]
fn the_shipped_catalog_is_far_from_the_limit() {
    use levee_rules::model::RuleFile;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    let sources = levee_rules::read_rules_dir(&dir).unwrap();
    let files: Vec<RuleFile> = sources
        .files
        .iter()
        .filter_map(|f| serde_norway::from_str(&f.text).ok())
        .collect();
    let mut derived = std::collections::BTreeMap::new();
    for f in &files {
        for et in f.event_types.values() {
            derived.extend(et.derived.clone());
        }
    }
    let mut deepest = 0;
    for f in &files {
        for cp in &f.control_points {
            let tiers = cp.tiers.iter().filter_map(|t| t.when.as_deref());
            for e in std::iter::once(cp.when.as_str()).chain(tiers) {
                deepest = deepest.max(levee_rules::limits::nesting(e, &derived));
            }
        }
    }
    for src in derived.values() {
        deepest = deepest.max(levee_rules::limits::nesting(src, &derived));
    }
    eprintln!("the catalog's deepest expression: {deepest} levels");
    assert!(deepest * 4 <= MAX_NESTING, "{deepest}");
}
