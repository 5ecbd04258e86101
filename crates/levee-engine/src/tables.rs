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
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use levee_rules::graph::{Const, FastMap, EXISTS};
use levee_rules::table::{push_key_part, Row, RowError, Table};
use levee_rules::RuleGraph;

use crate::value::Val;

/// One version of a key's row.
#[derive(Debug, Clone)]
struct Version {
    from: i64,
    to: i64,
    values: Box<[Option<Const>]>,
}

/// A key's versions: most keys have one, kept inline.
#[derive(Debug, Clone)]
enum Versions {
    One(Version),
    Many(Box<[Version]>),
}

impl Versions {
    fn of(mut rows: Vec<Version>) -> Option<Versions> {
        match rows.len() {
            0 => None,
            1 => rows.pop().map(Versions::One),
            _ => {
                rows.sort_by_key(|v| v.from);
                Some(Versions::Many(rows.into()))
            }
        }
    }

    fn all(&self) -> &[Version] {
        match self {
            Versions::One(v) => std::slice::from_ref(v),
            Versions::Many(vs) => vs,
        }
    }

    /// The version valid at `at`: of those valid, the latest to start.
    #[inline]
    fn at(&self, at: i64) -> Option<&Version> {
        match self {
            Versions::One(v) => (v.from <= at && at < v.to).then_some(v),
            Versions::Many(vs) => vs.iter().rev().find(|v| v.from <= at && at < v.to),
        }
    }
}

/// The rows of one table.
#[derive(Debug, Default, Clone)]
pub struct Rows {
    keys: FastMap<Box<str>, Versions>,
    versions: usize,
    /// A key of one column, unscoped: that column is not kept among a
    /// version's values (it is the key), and reads of it give the key.
    key_column: Option<KeyColumn>,
}

#[derive(Debug, Clone, Copy)]
struct KeyColumn {
    index: u32,
    integer: bool,
}

impl Rows {
    /// No rows yet, of table `t`'s shape.
    pub fn of(t: &Table) -> Rows {
        let key_column = match (t.key.as_slice(), t.by_branch) {
            ([k], false) => Some(KeyColumn {
                index: *k,
                integer: t
                    .columns
                    .get(*k as usize)
                    .is_some_and(|c| c.ty == levee_rules::model::FieldType::Integer),
            }),
            _ => None,
        };
        Rows {
            key_column,
            ..Rows::default()
        }
    }

    /// A row's values as kept: without the key column, if it is the key.
    fn kept(&self, values: Box<[Option<Const>]>) -> Box<[Option<Const>]> {
        match self.key_column {
            Some(k) if (k.index as usize) < values.len() => {
                let mut v = values.into_vec();
                v.remove(k.index as usize);
                v.into_boxed_slice()
            }
            _ => values,
        }
    }

    /// A version's values with the key column back in (see [`Rows::kept`]).
    fn whole(&self, key: &str, values: &[Option<Const>]) -> Box<[Option<Const>]> {
        let mut v = values.to_vec();
        if let Some(k) = self.key_column {
            let at = (k.index as usize).min(v.len());
            v.insert(at, Some(key_const(key, k.integer)));
        }
        v.into_boxed_slice()
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
        let versions: Vec<Version> = rows
            .into_iter()
            .map(|r| Version {
                from: r.valid_from,
                to: r.valid_to,
                values: self.kept(r.values),
            })
            .collect();
        let old = match Versions::of(versions) {
            Some(v) => {
                self.versions += v.all().len();
                self.keys.insert(key.into(), v)
            }
            None => self.keys.remove(key),
        };
        if let Some(old) = old {
            self.versions -= old.all().len();
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
            if let Some(old) = self.keys.get(&key) {
                rows.extend(old.all().iter().map(|v| Row {
                    key: key.clone(),
                    valid_from: v.from,
                    valid_to: v.to,
                    values: self.whole(&key, &v.values),
                }));
            }
            self.put(&key, rows);
        }
    }

    /// The value of `column` ([`EXISTS`]: whether a row is valid) of the
    /// row of `key` valid at `at`, into `out`: missing where no row is
    /// valid or the row has no value.
    #[inline]
    pub fn read(&self, key: &str, column: u32, at: i64, out: &mut Val) {
        let version = self.keys.get(key).and_then(|v| v.at(at));
        if column == EXISTS {
            *out = Val::Bool(version.is_some());
            return;
        }
        let Some(version) = version else {
            *out = Val::Missing;
            return;
        };
        let column = match self.key_column {
            Some(k) if column == k.index => {
                return *out = Val::from_const(&key_const(key, k.integer));
            }
            Some(k) if column > k.index => column - 1,
            _ => column,
        };
        match version.values.get(column as usize) {
            Some(Some(Const::Str(s))) => out.set_str(s),
            Some(Some(c)) => *out = Val::from_const(c),
            _ => *out = Val::Missing,
        }
    }
}

/// A one-column key as the value of its column.
fn key_const(key: &str, integer: bool) -> Const {
    match key.parse::<i64>() {
        Ok(i) if integer => Const::Int(i),
        _ => Const::Str(key.into()),
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
            let mut rows = Rows::of(t);
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
        let mut rows = Rows::of(t);
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

#[cfg(test)]
mod tests;
