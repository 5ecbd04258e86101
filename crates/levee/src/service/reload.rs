//! Hot reload: the current rule graph, swapped on SIGHUP or when the rule
//! files change (their content hash is polled, no file watcher needed).
//!
//! A new ruleset is compiled first; only if it compiles does it replace the
//! old one. Partition tasks pick the new graph up between two messages, so
//! no message is evaluated twice or half by one ruleset and half by another.
//!
//! Tables: a table the new rules declare as the old ones did (columns, key,
//! scope, topic) keeps the rows read from its topic. A new table with a
//! `topic:`, one whose shape or topic changed, or one whose topic was not
//! read, is read from its topic to the end ([`TableTopics`], `levee run`)
//! before the new rules take over; until then the old rules evaluate.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
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

/// Reads the topics of the tables a reload brings, for `levee run`
/// (`kafka::tables`).
pub trait TableTopics: Send + Sync + std::fmt::Debug {
    /// Whether the rows of `topic` are followed into the set in force.
    fn follows(&self, topic: &str) -> bool;
    /// Fills the tables `tables` (indices into `graph.tables`, each with a
    /// topic) of `set` from their topics, to their end, and follows them
    /// from there; a topic that cannot be read leaves its table with the
    /// rules' rows (logged and counted). False when stopped before the
    /// end (levee is shutting down).
    fn read_to_end(&self, graph: &RuleGraph, set: &TableSet, tables: &[usize]) -> bool;
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
    /// Reads the topics of tables a reload brings (`levee run` only).
    table_topics: OnceLock<Arc<dyn TableTopics>>,
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
            table_topics: OnceLock::new(),
        })
    }

    /// From now on a reload reads the topics of the tables it brings with
    /// `reader` before the new rules take over (set once).
    pub fn set_table_topics(&self, reader: Arc<dyn TableTopics>) {
        let _ = self.table_topics.set(reader);
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
                // Rows read from a topic stay with a table of the same
                // shape; the topics of the others are read before the swap.
                let (old_graph, _, old_tables) = self.current_with_tables();
                let (mut set, carried) =
                    TableSet::carry_over(&compiled.graph, &old_graph, &old_tables);
                if let Some(reader) = self.table_topics.get() {
                    let to_read = to_read(&compiled.graph, &carried, reader.as_ref());
                    for &i in &to_read {
                        // Read into rows of its own, not the old rules'.
                        set.unshare(&compiled.graph, i);
                    }
                    if !to_read.is_empty() && !reader.read_to_end(&compiled.graph, &set, &to_read) {
                        warn!(ruleset_version = %old, "shutting down while a reload read table topics; keeping ruleset {old}");
                        return;
                    }
                }
                if self.live {
                    for (i, name) in set.names().iter().enumerate() {
                        metrics::table_rows(name, set.read(i).versions());
                    }
                }
                {
                    let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
                    let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
                    *tables = Arc::new(set);
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

/// The tables of `graph` whose topic a reload must read: each with a topic
/// that is not `carried` over with its rows, or whose topic is not followed
/// (it could not be read before).
fn to_read(graph: &RuleGraph, carried: &[usize], reader: &dyn TableTopics) -> Vec<usize> {
    graph
        .tables
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            t.topic
                .as_deref()
                .is_some_and(|topic| !carried.contains(i) || !reader.follows(topic))
        })
        .map(|(i, _)| i)
        .collect()
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
                reload_blocking(&rules, "SIGHUP").await;
            }
            () = tokio::time::sleep(poll), if !interval.is_zero() => {
                let now = rules.disk_version();
                // Each change is tried once: broken files are not re-reported
                // every poll, only when they change again.
                if now.is_some() && now != seen {
                    seen = now;
                    reload_blocking(&rules, "rule files changed").await;
                }
            }
        }
    }
}

/// A reload off the async threads: it may read table topics to their end.
async fn reload_blocking(rules: &Arc<Rules>, why: &'static str) {
    let rules = Arc::clone(rules);
    if let Err(e) = tokio::task::spawn_blocking(move || rules.reload(why)).await {
        error!(error = %e, trigger = why, "the reload stopped unexpectedly; keeping the rules in force");
    }
}

#[cfg(test)]
#[path = "reload_tests.rs"]
mod tests;
