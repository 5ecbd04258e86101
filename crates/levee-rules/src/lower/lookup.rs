//! `lookup(table, key…, column)` and `exists(table, key…)`: reading a
//! table as of the event's time. Both lower to one [`Op::Lookup`] node,
//! shared like any other by every control point that reads the same
//! column by the same key.

use evalexpr::{Node as ENode, Operator, Value};

use super::tree::{article, show, strip_root};
use super::Builder;
use crate::diag::did_you_mean;
use crate::graph::{Op, Slot, Ty, EXISTS};
use crate::table::{Table, BRANCH};

/// The functions that read tables.
pub(crate) const TABLE_FUNCTIONS: [&str; 2] = ["lookup", "exists"];

impl Builder<'_> {
    pub(super) fn table_function(
        &mut self,
        name: &str,
        args: &[&ENode],
        src: &str,
    ) -> Result<(Slot, Ty), String> {
        let is_lookup = name == "lookup";
        let usage = if is_lookup {
            "lookup(\"table\", key, \"column\")"
        } else {
            "exists(\"table\", key)"
        };
        let min = if is_lookup { 3 } else { 2 };
        if args.len() < min {
            return Err(format!("{name}() takes at least {min} arguments: {usage}"));
        }
        let tname = literal(args[0])
            .ok_or_else(|| format!("{name}() names its table first, in quotes: {usage}"))?;
        let ti = self
            .tables
            .iter()
            .position(|t| t.name == tname)
            .ok_or_else(|| {
                let mut m = format!("unknown table `{tname}`");
                match did_you_mean(&tname, self.tables.iter().map(|t| t.name.as_str())) {
                    Some(s) => m.push_str(&format!("; did you mean `{s}`?")),
                    None if self.tables.is_empty() => m.push_str(" (no table is declared)"),
                    None => m.push_str(&format!(
                        " (tables: {})",
                        self.tables
                            .iter()
                            .map(|t| t.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
                m
            })?;
        let table: &Table = &self.tables[ti];
        let (key_args, column) = if is_lookup {
            let last = args[args.len() - 1];
            let cname = literal(last).ok_or_else(|| {
                format!(
                    "lookup() names its column last, in quotes: {usage}, not `{}`",
                    show(last)
                )
            })?;
            let (ci, _) = table.column(&cname).ok_or_else(|| {
                let mut m = format!("table `{tname}` has no column `{cname}`");
                let names = table.columns.iter().map(|c| c.name.as_str());
                if let Some(s) = did_you_mean(&cname, names.clone()) {
                    m.push_str(&format!("; did you mean `{s}`?"));
                } else {
                    m.push_str(&format!(
                        " (columns: {})",
                        names.collect::<Vec<_>>().join(", ")
                    ));
                }
                m
            })?;
            (&args[1..args.len() - 1], ci)
        } else {
            (&args[1..], EXISTS)
        };
        if key_args.len() != table.key_arity() {
            return Err(format!(
                "table `{tname}` is keyed by {} ({}), and {name}() gives {} key value{}",
                table.key_arity(),
                table.key_names().join(", "),
                key_args.len(),
                if key_args.len() == 1 { "" } else { "s" }
            ));
        }
        let table_ty = |i: u32| table.column_ty(i);
        let key_cols: Vec<(String, Ty)> = table
            .key
            .iter()
            .map(|&k| (table.columns[k as usize].name.clone(), table_ty(k)))
            .collect();
        let column_ty = (column != EXISTS).then(|| table_ty(column));
        let by_branch = table.by_branch;
        let mut keys: Vec<Slot> = Vec::with_capacity(key_args.len() + 1);
        if by_branch {
            let branch = *self
                .field_index
                .get(BRANCH)
                .ok_or("a table scoped by branch needs the event's `branch`")?;
            keys.push(branch);
        }
        for (a, (kname, kty)) in key_args.iter().zip(&key_cols) {
            let (s, t) = self.lower(a, src)?;
            if t != *kty {
                return Err(format!(
                    "key `{kname}` of table `{tname}` is {}, but `{}` is {}",
                    article(*kty),
                    show(a),
                    article(t)
                ));
            }
            keys.push(s);
        }
        let ty = column_ty.unwrap_or(Ty::Bool);
        let op = Op::Lookup(ti as u32, column, keys.into());
        let text = move |s: &Self, op: &Op| {
            let Op::Lookup(t, c, keys) = op else {
                return String::new();
            };
            let table = &s.tables[*t as usize];
            let skip = usize::from(table.by_branch);
            let mut parts = vec![format!("{:?}", table.name)];
            parts.extend(keys[skip..].iter().map(|k| s.text(*k)));
            if *c != EXISTS {
                parts.push(format!("{:?}", table.columns[*c as usize].name));
            }
            let f = if *c == EXISTS { "exists" } else { "lookup" };
            format!("{f}({})", parts.join(", "))
        };
        Ok((self.push(op, ty, text), ty))
    }

    /// The table reads among the nodes `roots` depend on, by their text
    /// (evidence: what a control point read of the registers).
    pub(crate) fn lookups_read(&self, roots: &[Slot]) -> Vec<(String, Slot)> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack: Vec<Slot> = roots.to_vec();
        let mut out = Vec::new();
        while let Some(s) = stack.pop() {
            let Some(i) = s.checked_sub(self.n_fields) else {
                continue;
            };
            let i = i as usize;
            if i >= self.nodes.len() || std::mem::replace(&mut seen[i], true) {
                continue;
            }
            let n = &self.nodes[i];
            if matches!(n.op, Op::Lookup(..)) {
                out.push((n.text.clone(), s));
            }
            stack.extend(n.op.operands());
            if let Op::Aggregate(a) = n.op {
                if let Some(spec) = self.aggregates.get(a as usize) {
                    stack.extend(spec.of);
                    stack.extend(spec.filter);
                }
            }
        }
        out.sort_by_key(|(_, s)| *s);
        out
    }
}

/// A string literal argument (`"fleet"`).
fn literal(n: &ENode) -> Option<String> {
    match strip_root(n).operator() {
        Operator::Const {
            value: Value::String(s),
        } => Some(s.clone()),
        _ => None,
    }
}
