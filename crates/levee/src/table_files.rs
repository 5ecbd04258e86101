//! Table rows from files (`levee replay --tables DIR`): `DIR/<table>.jsonl`
//! holds one row per line, `DIR/<table>.yaml` a list of rows. A table's
//! file replaces the rows the rules give it; tables without a file keep
//! theirs.

use std::path::Path;

use anyhow::{bail, Context};
use levee_engine::tables::TableSet;
use levee_rules::RuleGraph;

/// Loads every table file of `dir` into `set`; returns (table, rows) per
/// file, in name order.
pub fn load_dir(
    dir: &Path,
    graph: &RuleGraph,
    set: &TableSet,
) -> anyhow::Result<Vec<(String, usize)>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read --tables {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut loaded = Vec::new();
    for path in paths {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let text = || {
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))
        };
        let rows: Vec<serde_json::Value> = match ext {
            "jsonl" => {
                let mut rows = Vec::new();
                for (i, line) in text()?.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    rows.push(serde_json::from_str(line).with_context(|| {
                        format!("{}:{}: not a JSON row", path.display(), i + 1)
                    })?);
                }
                rows
            }
            "yaml" | "yml" => serde_norway::from_str(&text()?)
                .with_context(|| format!("{}: not a YAML list of rows", path.display()))?,
            _ => continue,
        };
        if let Err(e) = set.replace_rows(graph, name, &rows) {
            bail!("{}: {e}", path.display());
        }
        loaded.push((name.to_owned(), rows.len()));
    }
    Ok(loaded)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RULES: &str = r#"
tables:
  fleet:
    key: vehicle_id
    columns:
      vehicle_id: { type: string }
      standard_l_per_100km: { type: number }
    rows:
      - { vehicle_id: V0, standard_l_per_100km: 1 }
"#;

    #[test]
    fn files_replace_their_tables_rows_and_errors_name_the_file() {
        let sources = levee_rules::RuleSources::from_texts([("t.yaml", RULES)]);
        let graph = levee_rules::compile(&sources).unwrap().graph;
        let set = TableSet::from_graph(&graph);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("fleet.jsonl"),
            "{\"vehicle_id\":\"V1\",\"standard_l_per_100km\":9}\n\n{\"vehicle_id\":\"V2\"}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "not rows").unwrap();
        let loaded = load_dir(dir.path(), &graph, &set).unwrap();
        assert_eq!(loaded, [("fleet".to_owned(), 2)]);
        assert_eq!(set.read(0).len(), 2);

        std::fs::write(dir.path().join("flet.yaml"), "- {vehicle_id: V1}\n").unwrap();
        let e = load_dir(dir.path(), &graph, &set).unwrap_err().to_string();
        assert!(
            e.contains("flet.yaml: no table `flet`; did you mean `fleet`?"),
            "{e}"
        );
        std::fs::remove_file(dir.path().join("flet.yaml")).unwrap();
        std::fs::write(
            dir.path().join("fleet.jsonl"),
            "{\"vehicle_id\":\"V1\",\"standard_l_per_100km\":\"9\"}\n",
        )
        .unwrap();
        let e = load_dir(dir.path(), &graph, &set).unwrap_err().to_string();
        assert!(
            e.contains("table `fleet`, row 1: column `standard_l_per_100km` must be a number"),
            "{e}"
        );
    }
}
