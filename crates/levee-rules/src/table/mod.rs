//! Reference data: the company's registers as tables (`rules/tables/*.yaml`).
//!
//! A table has a key (one column or several), typed columns, rows that are
//! valid from one instant to another, optionally a scope by branch, and a
//! source: rows written in the rule file (tests, small lists) and/or a
//! compacted Kafka topic keyed by the table key. Control points read a
//! table with `lookup("fleet", vehicle_id, "standard_l_per_100km")` and
//! `exists("suppliers", supplier_id)` ([`crate::lower`]), as of the event's
//! `occurred_at`. This module compiles the declarations and parses rows
//! ([`row`]); the rows themselves are kept by the engine.
//!
//! Every constant list of `lists:` is also a one-column table (key
//! column `value`), so `exists("designated_stations", station_id)` reads
//! it as `contains(designated_stations, station_id)` does.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::diag::{did_you_mean, Diagnostic};
use crate::graph::{Const, ConstList, FastMap, Ty};
use crate::load::SourceFile;
use crate::model::{FieldType, RuleFile};
use crate::point::{field_ty, is_identifier};
use crate::Calendar;

pub mod row;
#[cfg(test)]
mod tests;

pub use row::{Row, RowError};

/// One table as a rule file declares it (`tables:`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    /// What the register is and who keeps it.
    #[serde(default)]
    pub description: Option<String>,
    /// The key column, or the key columns in order (each a string or
    /// integer column of `columns`).
    pub key: KeyDef,
    /// The columns, key columns included, with their types.
    pub columns: BTreeMap<String, ColumnDef>,
    /// `branch`: rows belong to one branch (each row has `branch`), and an
    /// event reads only its own branch's rows.
    #[serde(default)]
    pub scope: Option<Scope>,
    /// The compacted Kafka topic the table is read from in `levee run`,
    /// keyed by the table key; its rows replace the rule file's rows.
    #[serde(default)]
    pub topic: Option<String>,
    /// Rows kept with the rules: each a mapping of columns, with
    /// `valid_from` / `valid_to` (RFC 3339, or a date read in the business
    /// time zone; absent: always / for ever) and, scoped, `branch`.
    #[serde(default)]
    pub rows: Vec<serde_json::Value>,
}

/// A table key: one column or several.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum KeyDef {
    One(String),
    Many(Vec<String>),
}

impl KeyDef {
    fn columns(&self) -> Vec<&str> {
        match self {
            KeyDef::One(k) => vec![k.as_str()],
            KeyDef::Many(ks) => ks.iter().map(|k| k.as_str()).collect(),
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    #[serde(rename = "type")]
    pub ty: FieldType,
    #[serde(default)]
    pub description: Option<String>,
}

/// How a table's rows are scoped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Per branch company: the event's `branch` is the first part of the key.
    Branch,
}

/// A column of a compiled table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: FieldType,
}

/// A compiled table: its shape and the rows the rule files give it.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    /// The rule file that declares it (relative), or the list's file.
    pub file: String,
    pub columns: Vec<Column>,
    /// Indices into `columns` of the key columns, in key order.
    pub key: Vec<u32>,
    /// Rows are per branch: the event's branch is the key's first part.
    pub by_branch: bool,
    pub topic: Option<String>,
    /// Rows from the rule files, as declared.
    pub rows: Vec<Row>,
}

/// The separator of the parts of a composite key (and of a scoped
/// table's branch), in row keys and Kafka message keys: `wuhan|ST-001`.
pub const KEY_SEPARATOR: char = '|';

/// The column names a row has besides its columns.
pub const VALID_FROM: &str = "valid_from";
pub const VALID_TO: &str = "valid_to";
pub const BRANCH: &str = "branch";

impl Table {
    /// The column of that name.
    pub fn column(&self, name: &str) -> Option<(u32, &Column)> {
        self.columns
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == name)
            .map(|(i, c)| (i as u32, c))
    }

    /// The expression type of a column's values.
    pub fn column_ty(&self, i: u32) -> Ty {
        field_ty(self.columns[i as usize].ty)
    }

    /// How many values a lookup passes as the key (the branch of a scoped
    /// table is the event's own).
    pub fn key_arity(&self) -> usize {
        self.key.len()
    }

    /// The key columns' names, for messages.
    pub fn key_names(&self) -> Vec<&str> {
        self.key
            .iter()
            .map(|&k| self.columns[k as usize].name.as_str())
            .collect()
    }
}

/// Appends part `i` (from 0) of a key to `out`, after the separator
/// unless it is the first.
pub fn push_key_part(out: &mut String, i: usize, part: &str) {
    if i > 0 {
        out.push(KEY_SEPARATOR);
    }
    out.push_str(part);
}

/// Compiles the tables of every rule file, and the lists as one-column
/// tables; errors go to `diags`, naming the file and the table.
pub(crate) fn compile_tables(
    files: &[(&SourceFile, &RuleFile)],
    lists: &[ConstList],
    calendar: &Calendar,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Table> {
    let mut out: Vec<Table> = Vec::new();
    let mut seen: FastMap<String, String> = FastMap::default();
    for (f, rf) in files {
        for (name, def) in &rf.tables {
            let err = |m: String| Diagnostic::error(&f.path, m).item(format!("table {name}"));
            if let Some(first) = seen.get(name) {
                diags.push(err(format!(
                    "table `{name}` is already declared in {first}"
                )));
                continue;
            }
            seen.insert(name.clone(), f.path.clone());
            if !is_identifier(name) {
                diags.push(err(format!(
                    "table name `{name}` must be an identifier (letters, digits, `_`)"
                )));
            }
            if lists.iter().any(|l| &l.name == name) {
                diags.push(err(format!(
                    "table `{name}` has the name of a list (lists are one-column tables)"
                )));
                continue;
            }
            if let Some(t) = compile_one(name, def, &f.relative, calendar, &mut |m| {
                diags.push(err(m))
            }) {
                out.push(t);
            }
        }
    }
    for l in lists {
        if let Some(t) = list_table(l) {
            out.push(t);
        }
    }
    out
}

fn compile_one(
    name: &str,
    def: &TableDef,
    file: &str,
    calendar: &Calendar,
    err: &mut dyn FnMut(String),
) -> Option<Table> {
    let before_ok = std::cell::Cell::new(true);
    let mut fail = |m: String| {
        before_ok.set(false);
        err(m)
    };
    let columns: Vec<Column> = def
        .columns
        .iter()
        .map(|(n, c)| Column {
            name: n.clone(),
            ty: c.ty,
        })
        .collect();
    for c in &columns {
        if [VALID_FROM, VALID_TO, BRANCH].contains(&c.name.as_str()) {
            fail(format!(
                "column `{}` is reserved: every row may carry `valid_from`, `valid_to` and, \
                 scoped by branch, `branch`",
                c.name
            ));
        } else if !is_identifier(&c.name) {
            fail(format!(
                "column name `{}` must be an identifier (letters, digits, `_`)",
                c.name
            ));
        }
    }
    let mut key = Vec::new();
    let key_cols = def.key.columns();
    if key_cols.is_empty() {
        fail("`key` names no column".to_owned());
    }
    for k in key_cols {
        match columns.iter().position(|c| c.name == k) {
            Some(i) if matches!(columns[i].ty, FieldType::String | FieldType::Integer) => {
                key.push(i as u32)
            }
            Some(_) => fail(format!(
                "key column `{k}` must be a string or integer column"
            )),
            None => {
                let mut m = format!("key column `{k}` is not among the columns");
                if let Some(s) = did_you_mean(k, columns.iter().map(|c| c.name.as_str())) {
                    m.push_str(&format!("; did you mean `{s}`?"));
                }
                fail(m);
            }
        }
    }
    if let Some(t) = &def.topic {
        if t.trim().is_empty() {
            fail("`topic` is empty".to_owned());
        }
    }
    if !before_ok.get() {
        return None;
    }
    let mut table = Table {
        name: name.to_owned(),
        file: file.to_owned(),
        columns,
        key,
        by_branch: def.scope == Some(Scope::Branch),
        topic: def.topic.clone(),
        rows: Vec::new(),
    };
    // A bad row is an error, and the table stays: its lookups are still
    // checked against its columns.
    for (i, r) in def.rows.iter().enumerate() {
        match table.row(r, calendar) {
            Ok(row) => table.rows.push(row),
            Err(e) => fail(format!("row {}: {e}", i + 1)),
        }
    }
    Some(table)
}

/// A list as a one-column table: key column `value`, every item a row valid
/// for ever. Lists of floats (or of mixed kinds) have no table.
fn list_table(l: &ConstList) -> Option<Table> {
    let ty = match l.items.first() {
        Some(Const::Int(_)) => FieldType::Integer,
        Some(Const::Str(_)) | None => FieldType::String,
        _ => return None,
    };
    let rows = l
        .items
        .iter()
        .map(|c| match (c, ty) {
            (Const::Int(i), FieldType::Integer) => Some(i.to_string()),
            (Const::Str(s), FieldType::String) => Some(s.to_string()),
            _ => None,
        })
        .map(|k| {
            k.map(|k| Row {
                values: vec![Some(c_of(&k, ty))].into(),
                key: k.into(),
                valid_from: i64::MIN,
                valid_to: i64::MAX,
            })
        })
        .collect::<Option<Vec<Row>>>()?;
    Some(Table {
        name: l.name.clone(),
        file: String::new(),
        columns: vec![Column {
            name: "value".to_owned(),
            ty,
        }],
        key: vec![0],
        by_branch: false,
        topic: None,
        rows,
    })
}

fn c_of(k: &str, ty: FieldType) -> Const {
    match ty {
        FieldType::Integer => Const::Int(k.parse().unwrap_or_default()),
        _ => Const::Str(k.into()),
    }
}
