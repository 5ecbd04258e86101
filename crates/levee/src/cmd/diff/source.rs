//! Where `levee diff` reads a ruleset from: a directory, or a git revision
//! of the repository the rules directory is in (its files as they were in
//! that commit, read with `git ls-tree` and `git cat-file`, never checked
//! out).
//!
//! A rule file read from a revision is named `REV:PATH` in diagnostics
//! (`HEAD~1:rules/vehicle_fuel/fuel_consumption.yaml`), what `git show`
//! takes; its relative path is the one on disk, so the same files give the
//! same ruleset version whichever way they were read.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use levee_rules::{Diagnostic, RuleSources, SourceFile};

/// Why a ruleset could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The directory's rule files could not be read: `levee check`'s
    /// diagnostics.
    #[error("the rule files cannot be read")]
    Rules(Vec<Diagnostic>),
    #[error("`{rev}` is not a directory, and {rules} is not in a git repository to read it as a revision from: {reason}")]
    NoRepository {
        rev: String,
        rules: String,
        reason: String,
    },
    #[error("`{rev}` is neither a directory nor a revision of the git repository at {repo}")]
    UnknownRevision { rev: String, repo: String },
    #[error("{rev}: no rule files (*.yaml) under `{prefix}` in that revision")]
    NoRules { rev: String, prefix: String },
    #[error("{path}: a symbolic link in that revision; levee diff reads rule files only")]
    Symlink { path: String },
    #[error("{path}: not UTF-8 text")]
    NotUtf8 { path: String },
    #[error("git {args}: {reason}")]
    Git { args: String, reason: String },
}

/// The rule files named by `arg`: the directory if one exists at that path,
/// otherwise the revision `arg` of the git repository `rules` is in, at the
/// path of `rules` inside it.
pub fn read(arg: &str, rules: &Path) -> Result<RuleSources, SourceError> {
    let dir = Path::new(arg);
    if dir.is_dir() {
        return levee_rules::read_rules_dir(dir).map_err(SourceError::Rules);
    }
    let (top, prefix) = match git(rules, &["rev-parse", "--show-toplevel", "--show-prefix"]) {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out);
            let mut lines = text.lines();
            let top = lines.next().unwrap_or_default().to_owned();
            let prefix = lines.next().unwrap_or_default().to_owned();
            (top, prefix)
        }
        Err(reason) => {
            return Err(SourceError::NoRepository {
                rev: arg.to_owned(),
                rules: rules.display().to_string(),
                reason,
            })
        }
    };
    let top = Path::new(&top);
    let unknown = || SourceError::UnknownRevision {
        rev: arg.to_owned(),
        repo: top.display().to_string(),
    };
    if arg.starts_with('-') {
        return Err(unknown());
    }
    let spec = format!("{arg}^{{commit}}");
    let commit = git(top, &["rev-parse", "--verify", "--quiet", &spec]).map_err(|_| unknown())?;
    let commit = String::from_utf8_lossy(&commit).trim().to_owned();
    let mut args = vec!["ls-tree", "-r", "-z", commit.as_str()];
    if !prefix.is_empty() {
        args.extend(["--", prefix.as_str()]);
    }
    let listing = git(top, &args).map_err(|reason| SourceError::Git {
        args: args.join(" "),
        reason,
    })?;
    let entries = rule_entries(&listing, &prefix, arg)?;
    if entries.is_empty() {
        return Err(SourceError::NoRules {
            rev: arg.to_owned(),
            prefix: if prefix.is_empty() {
                ".".to_owned()
            } else {
                prefix
            },
        });
    }
    let blobs = cat_blobs(top, entries.iter().map(|e| e.object.as_str()))?;
    let mut files = Vec::with_capacity(entries.len());
    for (e, bytes) in entries.into_iter().zip(blobs) {
        let path = format!("{arg}:{}", e.path);
        let text =
            String::from_utf8(bytes).map_err(|_| SourceError::NotUtf8 { path: path.clone() })?;
        files.push(SourceFile {
            path,
            relative: e.relative,
            text,
        });
    }
    // In the order `read_rules_dir` reads a directory (by path component:
    // `a/x.yaml` before `a.yaml`), so the ruleset version is the same.
    files.sort_by(|a, b| Path::new(&a.relative).cmp(Path::new(&b.relative)));
    Ok(RuleSources { files })
}

/// One rule file of a revision's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    object: String,
    /// From the repository's top.
    path: String,
    /// From the rules directory.
    relative: String,
}

/// The rule files of `git ls-tree -r -z` output under `prefix`, chosen as
/// `levee_rules::read_rules_dir` chooses them on disk: `*.yaml` and `*.yml`,
/// not under the top `tests/` folder, nothing hidden.
fn rule_entries(listing: &[u8], prefix: &str, rev: &str) -> Result<Vec<Entry>, SourceError> {
    let mut out = Vec::new();
    for record in listing.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let record = String::from_utf8_lossy(record);
        let Some((meta, path)) = record.split_once('\t') else {
            continue;
        };
        let mut meta = meta.split(' ');
        let (mode, kind, object) = (meta.next(), meta.next(), meta.next());
        let (Some(mode), Some("blob"), Some(object)) = (mode, kind, object) else {
            continue;
        };
        let Some(relative) = path.strip_prefix(prefix) else {
            continue;
        };
        let hidden = relative.split('/').any(|c| c.starts_with('.'));
        let is_rule = relative.ends_with(".yaml") || relative.ends_with(".yml");
        if hidden || !is_rule || relative.starts_with("tests/") {
            continue;
        }
        if mode == "120000" {
            return Err(SourceError::Symlink {
                path: format!("{rev}:{path}"),
            });
        }
        out.push(Entry {
            object: object.to_owned(),
            path: path.to_owned(),
            relative: relative.to_owned(),
        });
    }
    Ok(out)
}

/// The contents of blobs, in order, from one `git cat-file --batch`.
fn cat_blobs<'a>(
    top: &Path,
    objects: impl Iterator<Item = &'a str>,
) -> Result<Vec<Vec<u8>>, SourceError> {
    let fail = |reason: String| SourceError::Git {
        args: "cat-file --batch".to_owned(),
        reason,
    };
    let request: String = objects.map(|o| format!("{o}\n")).collect();
    let n = request.lines().count();
    let mut child = Command::new("git")
        .arg("-C")
        .arg(top)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run git: {e}")))?;
    let mut stdin = child.stdin.take().ok_or_else(|| fail("no stdin".into()))?;
    // Written from a thread: git answers while it reads, and a full pipe
    // either way would stall both.
    let writer = std::thread::spawn(move || stdin.write_all(request.as_bytes()));
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail("no stdout".into()))?;
    let blobs = parse_batch(BufReader::new(stdout), n).map_err(fail);
    let written = writer.join();
    let status = child.wait().map_err(|e| fail(e.to_string()))?;
    let blobs = blobs?;
    if !status.success() || !matches!(written, Ok(Ok(()))) {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(fail(format!("{status}: {}", err.trim())));
    }
    Ok(blobs)
}

/// `n` answers of `git cat-file --batch`: `OBJECT TYPE SIZE\n`, the
/// content, `\n`.
fn parse_batch(mut r: impl BufRead, n: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::with_capacity(n);
    let mut header = String::new();
    for _ in 0..n {
        header.clear();
        r.read_line(&mut header).map_err(|e| e.to_string())?;
        let fields: Vec<&str> = header.split_whitespace().collect();
        let size: usize = match fields.as_slice() {
            [_, "blob", size] => size
                .parse()
                .map_err(|_| format!("unexpected answer {header:?}"))?,
            _ => return Err(format!("unexpected answer {:?}", header.trim_end())),
        };
        let mut content = vec![0; size + 1];
        r.read_exact(&mut content).map_err(|e| e.to_string())?;
        if content.pop() != Some(b'\n') {
            return Err("an answer does not end with a newline".to_owned());
        }
        out.push(content);
    }
    Ok(out)
}

/// Runs `git -C dir ARGS`; its stdout, or why it failed.
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Err(if err.is_empty() {
            out.status.to_string()
        } else {
            err
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn listing(rows: &[(&str, &str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (mode, kind, path) in rows {
            out.extend_from_slice(format!("{mode} {kind} 0123abcd\t{path}\0").as_bytes());
        }
        out
    }

    #[test]
    fn a_revision_gives_the_rule_files_a_directory_would() {
        let l = listing(&[
            ("100644", "blob", "rules/a.yaml"),
            ("100644", "blob", "rules/sub/b.yml"),
            ("100644", "blob", "rules/tests/t.yaml"),
            ("100644", "blob", "rules/sub/tests/c.yaml"),
            ("100644", "blob", "rules/.hidden/d.yaml"),
            ("100644", "blob", "rules/schema.json"),
            ("160000", "commit", "rules/vendored"),
            ("100644", "blob", "other/e.yaml"),
        ]);
        let got: Vec<String> = rule_entries(&l, "rules/", "HEAD")
            .unwrap()
            .into_iter()
            .map(|e| e.relative)
            .collect();
        assert_eq!(got, ["a.yaml", "sub/b.yml", "sub/tests/c.yaml"]);
    }

    #[test]
    fn a_symbolic_link_among_the_rules_is_named() {
        let l = listing(&[("120000", "blob", "rules/a.yaml")]);
        let e = rule_entries(&l, "rules/", "v1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "v1:rules/a.yaml: a symbolic link in that revision; levee diff reads rule files only"
        );
    }

    #[test]
    fn batch_answers_are_split_by_their_sizes() {
        let answer = b"aa blob 3\nx\ny\nbb blob 0\n\n".as_slice();
        let blobs = parse_batch(answer, 2).unwrap();
        assert_eq!(blobs, vec![b"x\ny".to_vec(), Vec::new()]);
        let missing = b"cc missing\n".as_slice();
        assert!(parse_batch(missing, 1).unwrap_err().contains("cc missing"));
    }
}
