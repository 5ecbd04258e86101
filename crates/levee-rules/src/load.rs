//! Reading a rules directory: the only I/O this crate does.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::diag::Diagnostic;

/// One rule file as read from disk.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user would type it (the rules directory joined with
    /// the file's relative path), used in every diagnostic.
    pub path: String,
    /// The path relative to the rules directory, with `/` separators.
    pub relative: String,
    pub text: String,
}

/// All rule files of a rules directory, in a stable order.
#[derive(Debug, Clone, Default)]
pub struct RuleSources {
    pub files: Vec<SourceFile>,
}

impl RuleSources {
    /// Builds sources from in-memory files (tests, generated catalogs).
    pub fn from_texts<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut files: Vec<SourceFile> = files
            .into_iter()
            .map(|(p, t)| SourceFile {
                path: p.to_owned(),
                relative: p.to_owned(),
                text: t.to_owned(),
            })
            .collect();
        files.sort_by(|a, b| a.relative.cmp(&b.relative));
        RuleSources { files }
    }

    /// The ruleset version: a content hash over every file's relative path
    /// and text, so the same files give the same version on every machine.
    pub fn version(&self) -> String {
        let mut h = Sha256::new();
        for f in &self.files {
            h.update(f.relative.as_bytes());
            h.update([0]);
            h.update(f.text.as_bytes());
            h.update([0]);
        }
        let digest = h.finalize();
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// Reads every `*.yaml` / `*.yml` file below `dir`, except the `tests/`
/// folder at its top, which holds rule tests rather than rules.
pub fn read_rules_dir(dir: &Path) -> Result<RuleSources, Vec<Diagnostic>> {
    let shown = dir.display().to_string();
    if !dir.is_dir() {
        return Err(vec![Diagnostic::error(
            &shown,
            "the rules directory does not exist or is not a directory (set it with --rules DIR)",
        )]);
    }
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    collect(dir, dir, &mut paths, &mut errors);
    paths.sort();
    let mut files = Vec::new();
    for rel in paths {
        let full = dir.join(&rel);
        let relative = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let path = full.display().to_string();
        match fs::read_to_string(&full) {
            Ok(text) => files.push(SourceFile {
                path,
                relative,
                text,
            }),
            Err(e) => errors.push(Diagnostic::error(&path, format!("cannot read: {e}"))),
        }
    }
    if files.is_empty() && errors.is_empty() {
        errors.push(Diagnostic::error(
            &shown,
            "no rule files (*.yaml) in the rules directory",
        ));
    }
    if errors.is_empty() {
        Ok(RuleSources { files })
    } else {
        Err(errors)
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<Diagnostic>) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(Diagnostic::error(
                &dir.display().to_string(),
                format!("cannot list: {e}"),
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        // Hidden entries are not rule files: editors' swap files, and the
        // `..data` / `..2026_…` folders a Kubernetes ConfigMap mount adds
        // beside the files themselves.
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        if path.is_dir() {
            if dir == root && rel.as_os_str() == "tests" {
                continue;
            }
            collect(root, &path, out, errors);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(rel);
        }
    }
}

/// The rule test files: `*.yaml` under `DIR/tests/`, sorted.
pub fn read_test_files(dir: &Path) -> Result<Vec<SourceFile>, Vec<Diagnostic>> {
    let tests = dir.join("tests");
    if !tests.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    collect(&tests, &tests, &mut paths, &mut errors);
    paths.sort();
    let mut files = Vec::new();
    for rel in paths {
        let full = tests.join(&rel);
        let path = full.display().to_string();
        match fs::read_to_string(&full) {
            Ok(text) => files.push(SourceFile {
                relative: format!("tests/{}", rel.display()),
                path,
                text,
            }),
            Err(e) => errors.push(Diagnostic::error(&path, format!("cannot read: {e}"))),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}
