//! The rows of the rule graph's tables, looked up as of an event's time.
//!
//! One [`TableSet`] per ruleset, shared by every engine of a process (each
//! table behind its own lock): `levee run` fills it from the tables' topics
//! and applies their changes while partitions evaluate. Each key holds its
//! versions, each valid from one instant to another; a lookup reads the
//! version valid at the event's `occurred_at`, so what a register said when
//! the event happened decides, whenever the event is processed.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use foldhash::fast::RandomState;
use hashbrown::hash_table::{Entry, HashTable};
use levee_rules::graph::{FastMap, EXISTS};
use levee_rules::table::{push_key_part, Row, RowError, Table};
use levee_rules::RuleGraph;

use crate::value::Val;
use packed::Packed;

/// The rows of one table: each key's versions packed ([`packed`]) in a
/// table keyed by the packed key.
#[derive(Debug, Default, Clone)]
pub struct Rows {
    keys: HashTable<Packed>,
    hasher: RandomState,
    versions: usize,
}

impl Rows {
    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn get(&self, key: &str) -> Option<&Packed> {
        let key = key.as_bytes();
        self.keys.find(self.hash(key), |p| p.key() == key)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Versions held, over all keys.
    pub fn versions(&self) -> usize {
        self.versions
    }

    /// Sets a key's versions (a record of the table's topic): they replace
    /// what the key had; none deletes it (a tombstone).
    pub fn put(&mut self, key: &str, rows: impl IntoIterator<Item = Row>) {
        let packed = Packed::new(key, rows.into_iter().collect());
        let hash = self.hash(key.as_bytes());
        let hasher = &self.hasher;
        let entry = self.keys.entry(
            hash,
            |p| p.key() == key.as_bytes(),
            |p| hasher.hash_one(p.key()),
        );
        match (entry, packed) {
            (Entry::Occupied(mut o), Some(p)) => {
                self.versions = self.versions - o.get().versions() + p.versions();
                *o.get_mut() = p;
            }
            (Entry::Occupied(o), None) => {
                let (old, _) = o.remove();
                self.versions -= old.versions();
            }
            (Entry::Vacant(v), Some(p)) => {
                self.versions += p.versions();
                v.insert(p);
            }
            (Entry::Vacant(_), None) => {}
        }
    }

    /// Replaces every row (a test case's rows, `levee replay --tables`).
    pub fn replace_all(&mut self, rows: impl IntoIterator<Item = Row>) {
        self.keys.clear();
        self.versions = 0;
        self.extend(rows);
    }

    /// Adds rows: each a version of its key, beside the key's others.
    pub fn extend(&mut self, rows: impl IntoIterator<Item = Row>) {
        let mut by_key: FastMap<Box<str>, Vec<Row>> = FastMap::default();
        for r in rows {
            by_key.entry(r.key.clone()).or_default().push(r);
        }
        for (key, mut rows) in by_key {
            if let Some(old) = self.get(&key) {
                rows.extend(old.rows(&key));
            }
            self.put(&key, rows);
        }
    }

    /// The value of `column` ([`EXISTS`]: whether a row is valid) of the
    /// row of `key` valid at `at`, into `out`: missing where no row is
    /// valid or the row has no value.
    #[inline]
    pub fn read(&self, key: &str, column: u32, at: i64, out: &mut Val) {
        let version = self.get(key).and_then(|p| p.at(at));
        if column == EXISTS {
            *out = Val::Bool(version.is_some());
            return;
        }
        match version {
            Some(values) => values.read(key, column, out),
            None => *out = Val::Missing,
        }
    }
}

/// Every table of a ruleset, by the graph's table index. A table's rows
/// may be shared with another ruleset's set ([`TableSet::sharing`]).
#[derive(Debug, Default)]
pub struct TableSet {
    names: Vec<String>,
    tables: Vec<Arc<RwLock<Rows>>>,
}

/// Whether rows of table `a` read as rows of `b`: the same columns (names,
/// types, order), key and scope.
fn same_shape(a: &Table, b: &Table) -> bool {
    a.columns == b.columns && a.key == b.key && a.by_branch == b.by_branch
}

/// Why rows given for a table (a test case's, a `--tables` file's) are
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("no table `{name}`{hint}")]
    Unknown { name: String, hint: String },
    #[error("table `{table}`, row {row}: {error}")]
    Row {
        table: String,
        /// From 1.
        row: usize,
        error: RowError,
    },
}

thread_local! {
    /// A composite key being built (scratch, re-used).
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

impl TableSet {
    /// The tables of `graph`, holding the rows its rule files give them.
    pub fn from_graph(graph: &RuleGraph) -> TableSet {
        let mut set = TableSet::default();
        for t in &graph.tables {
            let mut rows = Rows::default();
            rows.extend(t.rows.iter().cloned());
            set.names.push(t.name.clone());
            set.tables.push(Arc::new(RwLock::new(rows)));
        }
        set
    }

    /// The index of the table of that name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Table names, by index.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Reads a table (e.g. to count its rows).
    pub fn read(&self, table: usize) -> RwLockReadGuard<'_, Rows> {
        self.tables[table]
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes a table.
    pub fn write(&self, table: usize) -> RwLockWriteGuard<'_, Rows> {
        self.tables[table]
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The set of a new ruleset (`graph`) taking over the rows of tables
    /// read from a topic that the old ruleset (`old_graph`, `old`) has in
    /// the same shape (columns, key, scope, topic): the same rows, shared,
    /// so that a change applied to the old set while the new one takes
    /// over is in both. The others hold the new rules' rows. Also gives
    /// the indices (of `graph`) of the tables taken over.
    pub fn carry_over(
        graph: &RuleGraph,
        old_graph: &RuleGraph,
        old: &TableSet,
    ) -> (TableSet, Vec<usize>) {
        let mut set = TableSet::from_graph(graph);
        let mut carried = Vec::new();
        for (i, t) in graph.tables.iter().enumerate() {
            let Some(j) = old.index(&t.name) else {
                continue;
            };
            let Some(o) = old_graph.tables.get(j) else {
                continue;
            };
            if t.topic.is_some() && t.topic == o.topic && same_shape(t, o) {
                set.tables[i] = Arc::clone(&old.tables[j]);
                carried.push(i);
            }
        }
        (set, carried)
    }

    /// The set of `graph` (shadow rules) reading the very rows of `other`
    /// (the rules in force, `other_graph`) for each table both declare in
    /// the same shape (columns, key, scope): shared, not copied, so a
    /// change `levee run` applies to `other` from a table's topic is read
    /// here too. A table only `graph` declares holds its rule files' rows;
    /// so does one declared by both in another shape, named in the second
    /// value (its rows could not be read by `graph`'s columns).
    pub fn sharing(
        graph: &RuleGraph,
        other_graph: &RuleGraph,
        other: &TableSet,
    ) -> (TableSet, Vec<String>) {
        let mut set = TableSet::from_graph(graph);
        let mut reshaped = Vec::new();
        for (i, t) in graph.tables.iter().enumerate() {
            let Some(j) = other.index(&t.name) else {
                continue;
            };
            match other_graph.tables.get(j) {
                Some(o) if same_shape(t, o) => {
                    set.tables[i] = Arc::clone(&other.tables[j]);
                }
                _ => reshaped.push(t.name.clone()),
            }
        }
        (set, reshaped)
    }

    /// Gives table `i` rows of its own, the rules' rows of `graph` (the
    /// graph of this set), no longer shared with another set.
    pub fn unshare(&mut self, graph: &RuleGraph, i: usize) {
        let (Some(t), Some(slot)) = (graph.tables.get(i), self.tables.get_mut(i)) else {
            return;
        };
        let mut rows = Rows::default();
        rows.extend(t.rows.iter().cloned());
        *slot = Arc::new(RwLock::new(rows));
    }

    /// Whether table `i` of this set and table `j` of `other` are one and
    /// the same rows (shared).
    pub fn shares(&self, i: usize, other: &TableSet, j: usize) -> bool {
        match (self.tables.get(i), other.tables.get(j)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Replaces the rows of table `name` by `rows` (each a row as JSON),
    /// checked against its columns; nothing changes on an error.
    pub fn replace_rows(
        &self,
        graph: &RuleGraph,
        name: &str,
        rows: &[serde_json::Value],
    ) -> Result<(), TableError> {
        let Some(i) = self.index(name) else {
            let hint = levee_rules::diag::did_you_mean(name, self.names.iter().map(|n| n.as_str()))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(TableError::Unknown {
                name: name.to_owned(),
                hint,
            });
        };
        let table = &graph.tables[i];
        let parsed = rows
            .iter()
            .enumerate()
            .map(|(n, r)| {
                table
                    .row(r, &graph.calendar)
                    .map_err(|error| TableError::Row {
                        table: name.to_owned(),
                        row: n + 1,
                        error,
                    })
            })
            .collect::<Result<Vec<Row>, _>>()?;
        self.write(i).replace_all(parsed);
        Ok(())
    }

    /// Evaluates a lookup node: table `table`, `column` (or [`EXISTS`]), by
    /// the key in `keys` (slots of `slots`), as of `at`.
    #[inline]
    pub fn lookup(
        &self,
        table: u32,
        column: u32,
        keys: &[u32],
        slots: &[Val],
        at: i64,
        out: &mut Val,
    ) {
        let Some(rows) = self.tables.get(table as usize) else {
            *out = Val::Missing;
            return;
        };
        let rows = rows.read().unwrap_or_else(|p| p.into_inner());
        // One string key, the common case: no key to build.
        if let [k] = keys {
            match &slots[*k as usize] {
                Val::Str(s) => return rows.read(s, column, at, out),
                Val::Error => return *out = Val::Error,
                Val::Missing => return *out = Val::Missing,
                _ => {}
            }
        }
        KEY.with_borrow_mut(|key| {
            key.clear();
            for (j, k) in keys.iter().enumerate() {
                match &slots[*k as usize] {
                    Val::Str(s) => push_key_part(key, j, s),
                    Val::Int(i) => {
                        push_key_part(key, j, "");
                        let _ = write!(key, "{i}");
                    }
                    Val::Error => return *out = Val::Error,
                    _ => return *out = Val::Missing,
                }
            }
            rows.read(key, column, at, out)
        })
    }
}

mod packed;
#[cfg(test)]
mod tests;
