//! One row of a table, from JSON (a rule file's `rows:`, a Kafka record, a
//! `levee replay --tables` file, a test case's `tables:`), checked against
//! the table's columns.

use chrono::{DateTime, NaiveDate};
use serde_json::Value as Json;

use super::{push_key_part, Table, BRANCH, VALID_FROM, VALID_TO};
use crate::diag::did_you_mean;
use crate::graph::Const;
use crate::model::FieldType;
use crate::Calendar;

/// One version of a row: its key, when it is valid and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The key's parts joined by [`super::KEY_SEPARATOR`] (a scoped table's
    /// branch first), integers in decimal.
    pub key: Box<str>,
    /// Valid from this instant (epoch seconds, inclusive); `i64::MIN`: always.
    pub valid_from: i64,
    /// Valid until this instant (exclusive); `i64::MAX`: for ever.
    pub valid_to: i64,
    /// One per column of the table; `None` where the row has no value.
    pub values: Box<[Option<Const>]>,
}

impl Row {
    /// Whether the row is valid at `at` (epoch seconds).
    #[inline]
    pub fn valid_at(&self, at: i64) -> bool {
        self.valid_from <= at && at < self.valid_to
    }
}

/// Why a row is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("a row must be a mapping of columns to values")]
    NotObject,
    #[error("key column `{0}` is missing")]
    MissingKey(String),
    #[error("`branch` is missing: table `{0}` is scoped by branch")]
    MissingBranch(String),
    #[error("column `{column}` must be {want}, not {got}")]
    WrongType {
        column: String,
        want: &'static str,
        got: String,
    },
    #[error("`{column}` is not a column of table `{table}`{hint}")]
    UnknownColumn {
        table: String,
        column: String,
        hint: String,
    },
    #[error("`{column}: {value}` is neither RFC 3339 nor a date (2026-12-01)")]
    BadTime { column: String, value: String },
    #[error("`valid_to` is not after `valid_from`: the row is never valid")]
    NeverValid,
    #[error("the versions of one key must all have that key (`{0}` differs)")]
    OtherKey(String),
}

impl Table {
    /// Parses one row against the table's columns; dates (`2026-12-01`) in
    /// `valid_from` / `valid_to` are midnight in the business time zone.
    pub fn row(&self, v: &Json, calendar: &Calendar) -> Result<Row, RowError> {
        let Json::Object(m) = v else {
            return Err(RowError::NotObject);
        };
        for k in m.keys() {
            let known = [VALID_FROM, VALID_TO].contains(&k.as_str())
                || (self.by_branch && k == BRANCH)
                || self.column(k).is_some();
            if !known {
                let mut names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
                names.extend([VALID_FROM, VALID_TO]);
                if self.by_branch {
                    names.push(BRANCH);
                }
                let hint = did_you_mean(k, names)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(RowError::UnknownColumn {
                    table: self.name.clone(),
                    column: k.clone(),
                    hint,
                });
            }
        }
        let mut key = String::new();
        let mut part = 0;
        if self.by_branch {
            part = 1;
            match m.get(BRANCH) {
                Some(Json::String(b)) => push_key_part(&mut key, 0, b),
                Some(Json::Null) | None => return Err(RowError::MissingBranch(self.name.clone())),
                Some(other) => return Err(wrong(BRANCH, "a string", other)),
            }
        }
        let mut values = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            values.push(match m.get(&c.name) {
                None | Some(Json::Null) => None,
                Some(v) => Some(typed(&c.name, c.ty, v)?),
            });
        }
        for (j, &k) in self.key.iter().enumerate() {
            let name = &self.columns[k as usize].name;
            match &values[k as usize] {
                Some(Const::Str(s)) => push_key_part(&mut key, part + j, s),
                Some(Const::Int(i)) => push_key_part(&mut key, part + j, &i.to_string()),
                _ => return Err(RowError::MissingKey(name.clone())),
            }
        }
        let from = time(m.get(VALID_FROM), VALID_FROM, calendar)?.unwrap_or(i64::MIN);
        let to = time(m.get(VALID_TO), VALID_TO, calendar)?.unwrap_or(i64::MAX);
        if to <= from {
            return Err(RowError::NeverValid);
        }
        Ok(Row {
            key: key.into(),
            valid_from: from,
            valid_to: to,
            values: values.into(),
        })
    }

    /// The versions of one key: a row, or an array of rows with one key
    /// (as a Kafka record of the table's topic carries them).
    pub fn versions(&self, v: &Json, calendar: &Calendar) -> Result<Vec<Row>, RowError> {
        let rows: Vec<Row> = match v {
            Json::Array(items) => items
                .iter()
                .map(|i| self.row(i, calendar))
                .collect::<Result<_, _>>()?,
            one => vec![self.row(one, calendar)?],
        };
        if let Some(first) = rows.first() {
            if let Some(other) = rows.iter().find(|r| r.key != first.key) {
                return Err(RowError::OtherKey(other.key.to_string()));
            }
        }
        Ok(rows)
    }
}

fn wrong(column: &str, want: &'static str, got: &Json) -> RowError {
    let got = match got {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "a mapping",
    };
    RowError::WrongType {
        column: column.to_owned(),
        want,
        got: got.to_owned(),
    }
}

/// A column's value as its type says.
fn typed(column: &str, ty: FieldType, v: &Json) -> Result<Const, RowError> {
    let c = match (ty, v) {
        (FieldType::Number, Json::Number(n)) => n.as_f64().map(Const::Float),
        (FieldType::Integer, Json::Number(n)) => n.as_i64().map(Const::Int).or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| Const::Int(f as i64))
        }),
        (FieldType::String, Json::String(s)) => Some(Const::Str(s.as_str().into())),
        // Keys written as numbers in YAML (`station_id: 101`) for a
        // string column are the text they are.
        (FieldType::String, Json::Number(n)) => Some(Const::Str(n.to_string().into())),
        (FieldType::Boolean, Json::Bool(b)) => Some(Const::Bool(*b)),
        (FieldType::Timestamp, Json::String(s)) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Const::Int(t.timestamp())),
        _ => None,
    };
    c.ok_or_else(|| {
        let want = match ty {
            FieldType::Number => "a number",
            FieldType::Integer => "a whole number",
            FieldType::String => "a string",
            FieldType::Boolean => "true or false",
            FieldType::Timestamp => "an RFC 3339 time",
        };
        wrong(column, want, v)
    })
}

/// `valid_from` / `valid_to`: RFC 3339, or a date at local midnight.
fn time(v: Option<&Json>, column: &str, calendar: &Calendar) -> Result<Option<i64>, RowError> {
    let s = match v {
        None | Some(Json::Null) => return Ok(None),
        Some(Json::String(s)) => s,
        Some(other) => return Err(wrong(column, "a time (RFC 3339 or a date)", other)),
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.timestamp()));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Some(calendar.midnight(d)));
    }
    Err(RowError::BadTime {
        column: column.to_owned(),
        value: s.clone(),
    })
}
