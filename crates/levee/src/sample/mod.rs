//! A recorded sample of the input stream, for `levee diff` and `levee
//! replay` to run on real traffic (docs/rule-changes.md).
//!
//! `levee run` with `[sample] enabled = true` (`service::sampler`) keeps the
//! whole history of a share of the subjects of every event type, as JSON
//! lines in numbered segments of one directory, bounded in size (the
//! oldest segment deleted first), the values of `sensitive` fields replaced
//! by a keyed hash. `manifest.json` says how: the hash, the key's
//! fingerprint, the share and the fields hashed. Given the directory as
//! EVENTS, `levee diff` and `levee replay` read its segments in order.
//!
//! | module | its one job |
//! |---|---|
//! | [`keyed`] | the keyed hash (HMAC-SHA256): hashed values, the subject choice, the key's fingerprint |
//! | [`mask`] | an event as the sample holds it: one line, sensitive values hashed |
//! | [`segments`] | the segment files: naming, listing, writing within the bound |
//! | this file | the manifest, and a sample directory as input |

pub mod keyed;
pub mod mask;
pub mod segments;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use levee_rules::RuleGraph;
use serde::{Deserialize, Serialize};

/// The manifest's file name in a sample directory.
pub const MANIFEST: &str = "manifest.json";

/// The format of the samples this version writes.
pub const FORMAT: u32 = 1;

/// How a sample was recorded: `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// `hmac-sha256-128`: [`keyed::Key::hash_value`].
    pub hash: String,
    /// What a hashed value starts with ([`keyed::PREFIX`]).
    pub prefix: String,
    /// The key's fingerprint; none when no field was hashed.
    pub key_fingerprint: Option<String>,
    /// Subjects sampled per 10,000, per event type.
    pub subjects_per_10000: u32,
    /// The fields hashed, by event type.
    pub sensitive: BTreeMap<String, Vec<String>>,
}

impl Manifest {
    pub fn new(key: Option<&keyed::Key>, per_10000: u32, graph: &RuleGraph) -> Manifest {
        Manifest {
            format: FORMAT,
            hash: "hmac-sha256-128".to_owned(),
            prefix: keyed::PREFIX.to_owned(),
            key_fingerprint: key.map(keyed::Key::fingerprint),
            subjects_per_10000: per_10000,
            sensitive: sensitive_fields(graph),
        }
    }

    /// Reads `dir`'s manifest; `Ok(None)` if it has none.
    pub fn read(dir: &Path) -> anyhow::Result<Option<Manifest>> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a levee sample manifest", path.display()))
    }

    /// Writes `dir`'s manifest (through a temporary file: a reader sees the
    /// old one or the new one).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, dir.join(MANIFEST))
    }
}

/// The sensitive fields of every event type that has some.
pub fn sensitive_fields(graph: &RuleGraph) -> BTreeMap<String, Vec<String>> {
    graph
        .event_types
        .iter()
        .filter(|et| et.rekeyed.is_none())
        .filter_map(|et| {
            let fields: Vec<String> = et
                .fields
                .iter()
                .filter(|f| f.sensitive)
                .map(|f| f.name.clone())
                .collect();
            (!fields.is_empty()).then(|| (et.name.clone(), fields))
        })
        .collect()
}

/// The input files of `levee replay` and `levee diff`: each name as given,
/// but a sample directory replaced by its segments, oldest first.
pub fn expand_inputs(names: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let dir = Path::new(name);
        if name == "-" || !dir.is_dir() {
            out.push(name.clone());
            continue;
        }
        if Manifest::read(dir)?.is_none() {
            anyhow::bail!(
                "{name} is a directory but not a levee sample (it has no {MANIFEST}); give event files, or a sample directory"
            );
        }
        let segments =
            segments::list(dir).with_context(|| format!("cannot read the sample {name}"))?;
        out.extend(
            segments
                .into_iter()
                .map(|(_, path, _)| path.display().to_string()),
        );
    }
    Ok(out)
}

/// What to warn about when `graph` replays the sample in `dir`: the fields
/// it takes for sensitive that the sample holds in clear, or the reverse
/// (a comparison between the two kinds would not keep its outcome).
pub fn mismatch(dir: &Path, graph: &RuleGraph) -> Option<String> {
    let manifest = Manifest::read(dir).ok()??;
    let rules = sensitive_fields(graph);
    if rules == manifest.sensitive {
        return None;
    }
    let show = |m: &BTreeMap<String, Vec<String>>| {
        let parts: Vec<String> = m
            .iter()
            .flat_map(|(t, fs)| fs.iter().map(move |f| format!("{t}.{f}")))
            .collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    };
    Some(format!(
        "the sample {} hashed {} but these rules mark {} sensitive: a comparison of a hashed field with a clear one may not keep its outcome",
        dir.display(),
        show(&manifest.sensitive),
        show(&rules)
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_directory_reads_as_its_segments_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().display().to_string();
        let e = expand_inputs(std::slice::from_ref(&name)).unwrap_err();
        assert!(e.to_string().contains("not a levee sample"), "{e}");
        let graph = levee_rules::compile(&levee_rules::RuleSources::from_texts([])).unwrap();
        Manifest::new(None, 100, &graph.graph)
            .write(dir.path())
            .unwrap();
        for seq in [10, 9, 11] {
            std::fs::write(dir.path().join(segments::segment_name(seq)), "").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), "").unwrap();
        let files = expand_inputs(&["a.jsonl".to_owned(), name, "-".to_owned()]).unwrap();
        let names: Vec<&str> = files
            .iter()
            .map(|f| f.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "a.jsonl",
                "sample-0000000009.jsonl",
                "sample-0000000010.jsonl",
                "sample-0000000011.jsonl",
                "-"
            ]
        );
        let m = Manifest::read(dir.path()).unwrap().unwrap();
        assert_eq!(m.subjects_per_10000, 100);
        assert_eq!(m.key_fingerprint, None);
    }
}
