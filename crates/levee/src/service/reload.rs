//! Hot reload: the current rule graph, swapped on SIGHUP or when the rule
//! files change (their content hash is polled, no file watcher needed).
//!
//! A new ruleset is compiled first; only if it compiles does it replace the
//! old one. Partition tasks pick the new graph up between two messages, so
//! no message is evaluated twice or half by one ruleset and half by another.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use levee_engine::tables::TableSet;
use levee_rules::{Diagnostic, RuleGraph, RuleSources};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use super::metrics::{self, ReloadOutcome};

/// Where a ruleset is read from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A rules directory.
    Dir(PathBuf),
    /// A directory if one exists at `arg`, else the git revision `arg` of
    /// the repository `rules` is in, at the path of `rules` in it (as
    /// `levee diff --base` reads it; nothing checked out). A branch is read
    /// again at every poll, so the rules follow it.
    DirOrRevision { arg: String, rules: PathBuf },
}

impl Origin {
    /// The rule files as they are now.
    fn read(&self) -> Result<RuleSources, Vec<Diagnostic>> {
        match self {
            Origin::Dir(dir) => levee_rules::read_rules_dir(dir),
            Origin::DirOrRevision { arg, rules } => {
                use crate::cmd::diff::source::{self, SourceError};
                source::read(arg, rules).map_err(|e| match e {
                    SourceError::Rules(diags) => diags,
                    other => vec![Diagnostic::error(arg, other.to_string())],
                })
            }
        }
    }
}

/// The rules in force, with a generation number bumped on every swap.
#[derive(Debug)]
pub struct Rules {
    origin: Origin,
    current: RwLock<(Arc<RuleGraph>, u64)>,
    generation: AtomicU64,
    /// The rows of the graph's tables, kept current from their topics
    /// (`kafka::tables`); every engine reads this one set.
    tables: RwLock<Arc<TableSet>>,
    /// The rules in force (false: shadow rules, which leave
    /// `levee_ruleset_*` alone and count in `levee_shadow_reloads_total`).
    live: bool,
}

impl Rules {
    /// Compiles `dir`; the errors if it does not compile.
    pub fn load(dir: PathBuf) -> Result<Self, Vec<Diagnostic>> {
        Self::load_as(Origin::Dir(dir), true)
    }

    /// As [`Rules::load`], for shadow rules: reloaded the same way, but
    /// not in `levee_ruleset_info`, and counted apart.
    pub fn load_shadow(origin: Origin) -> Result<Self, Vec<Diagnostic>> {
        Self::load_as(origin, false)
    }

    fn load_as(origin: Origin, live: bool) -> Result<Self, Vec<Diagnostic>> {
        let compiled = levee_rules::compile(&origin.read()?)?;
        for w in &compiled.warnings {
            warn!("rules: {w}");
        }
        if live {
            metrics::ruleset(&compiled.graph);
        }
        let tables = Arc::new(TableSet::from_graph(&compiled.graph));
        Ok(Rules {
            origin,
            current: RwLock::new((Arc::new(compiled.graph), 0)),
            generation: AtomicU64::new(0),
            tables: RwLock::new(tables),
            live,
        })
    }

    /// The table rows engines of the graph in force read.
    pub fn tables(&self) -> Arc<TableSet> {
        Arc::clone(&self.tables.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The graph in force, its generation and its tables' rows, together
    /// (a reload swaps them together).
    pub fn current_with_tables(&self) -> (Arc<RuleGraph>, u64, Arc<TableSet>) {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        (Arc::clone(&guard.0), guard.1, self.tables())
    }

    /// The graph in force and its generation.
    pub fn current(&self) -> (Arc<RuleGraph>, u64) {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        (Arc::clone(&guard.0), guard.1)
    }

    /// The generation in force: cheap enough to ask before every message.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn version(&self) -> String {
        self.current().0.version.clone()
    }

    /// The content hash of the files on disk now (`None` if unreadable).
    fn disk_version(&self) -> Option<String> {
        self.origin.read().ok().map(|s| s.version())
    }

    /// Compiles the rules directory and swaps the graph if it compiles;
    /// otherwise logs every error and keeps the old rules.
    pub fn reload(&self, why: &str) {
        let old = self.version();
        match self
            .origin
            .read()
            .and_then(|sources| levee_rules::compile(&sources))
        {
            Ok(compiled) => {
                for w in &compiled.warnings {
                    warn!("rules: {w}");
                }
                let new = compiled.graph.version.clone();
                if new == old {
                    self.count(ReloadOutcome::Unchanged);
                    info!(ruleset_version = %old, trigger = why, "rules unchanged");
                    return;
                }
                let control_points = compiled.graph.control_points.len();
                if self.live {
                    metrics::ruleset(&compiled.graph);
                }
                self.count(ReloadOutcome::Success);
                {
                    let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
                    let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
                    // Rows read from a topic stay with a table of the same shape.
                    *tables = Arc::new(TableSet::carry_over(&compiled.graph, &guard.0, &tables));
                    let generation = guard.1 + 1;
                    *guard = (Arc::new(compiled.graph), generation);
                    self.generation.store(generation, Ordering::Release);
                }
                info!(
                    old_ruleset_version = %old,
                    new_ruleset_version = %new,
                    control_points,
                    trigger = why,
                    "rules reloaded: {old} -> {new}"
                );
            }
            Err(diags) => {
                for d in &diags {
                    if d.is_error() {
                        error!("rules: {d}");
                    } else {
                        warn!("rules: {d}");
                    }
                }
                let n = diags.iter().filter(|d| d.is_error()).count();
                self.count(ReloadOutcome::Failed);
                error!(
                    ruleset_version = %old,
                    errors = n,
                    trigger = why,
                    "the new rules do not compile ({n} errors); keeping ruleset {old}"
                );
            }
        }
    }
}

impl Rules {
    fn count(&self, outcome: ReloadOutcome) {
        if self.live {
            metrics::reload(outcome);
        } else {
            metrics::shadow_reload(outcome);
        }
    }
}

/// Reloads on SIGHUP, and when the files' content hash changes (polled every
/// `interval`; zero: never). Runs until aborted.
pub async fn watch(rules: Arc<Rules>, interval: Duration) {
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGHUP; reload by file change only");
            None
        }
    };
    let mut seen = rules.disk_version();
    let poll = if interval.is_zero() {
        Duration::from_secs(3600)
    } else {
        interval
    };
    loop {
        tokio::select! {
            Some(()) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                seen = rules.disk_version();
                rules.reload("SIGHUP");
            }
            () = tokio::time::sleep(poll), if !interval.is_zero() => {
                let now = rules.disk_version();
                // Each change is tried once: broken files are not re-reported
                // every poll, only when they change again.
                if now.is_some() && now != seen {
                    seen = now;
                    rules.reload("rule files changed");
                }
            }
        }
    }
}
