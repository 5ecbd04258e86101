//! Rule sets for engine tests: the shipped schemas, lists and calendar with
//! control points of the test's own.
#![allow(clippy::unwrap_used, clippy::panic, dead_code)]

use std::path::Path;
use std::sync::Arc;

use levee_rules::RuleGraph;

/// The shipped rules directory.
pub fn shipped() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")
}

/// Compiles the shipped schemas, lists and calendar with `points` (the YAML
/// items of a `control_points:` list) as the only control points. Keep the
/// directory while the graph is in use.
pub fn rules_with(points: &str) -> (tempfile::TempDir, Arc<RuleGraph>) {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["schemas", "lists", "calendar", "tables"] {
        let to = dir.path().join(sub);
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(shipped().join(sub)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        dir.path().join("points.yaml"),
        format!("control_points:\n{points}"),
    )
    .unwrap();
    let graph = levee_rules::compile_dir(dir.path())
        .unwrap_or_else(|d| panic!("{d:?}"))
        .graph;
    (dir, Arc::new(graph))
}
