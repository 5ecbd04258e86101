//! What a condition may do with a `sensitive` field (personal data: a
//! licence plate, a bank account, a handset's IMEI), so that a recorded
//! sample, which holds a keyed hash of such a value instead of the value,
//! gives every control point the outcome the clear values give.
//!
//! The hash is the same wherever a value appears and keeps an empty string
//! empty, so these keep their outcome, and are all a condition may do:
//!
//! - compare it with `==` or `!=` to a sensitive field (itself included) or
//!   to the empty string `""`;
//! - test it for emptiness: `len(f)` compared with `0`;
//! - count it in a window (`count`, `distinct`), or key a window by it;
//! - show it in a message.
//!
//! Anything else would change under the hash, and `levee check` says so
//! where it is written: a comparison with a constant or a field that is not
//! sensitive, an ordering, a string function, and membership in a list or
//! a table's key. Lists and tables hold clear values and the sample holds
//! hashes; no shipped control point compares a sensitive field with one, so
//! levee refuses the comparison rather than hashing registers when it
//! replays a sample (docs/rule-changes.md).

use crate::diag::Diagnostic;
use crate::graph::{
    Aggregate, Const, ConstList, ControlPoint, FieldSpec, Op, Program, Slot, EXISTS,
};
use crate::model::AggregateFn;
use crate::table::Table;

/// One event type's compiled parts, as the check reads them.
#[derive(Debug)]
pub struct TypeScope<'a> {
    /// Where the event type is declared (file, line) and its item name
    /// (`event type NAME`), for what no control point reads.
    pub file: &'a str,
    pub line: Option<usize>,
    pub item: &'a str,
    pub program: &'a Program,
    pub aggregates: &'a [Aggregate],
    pub fields: &'a [FieldSpec],
    /// The type's control points, as indices into `control_points`.
    pub points: &'a [u32],
    /// Where each of `points` is written: file and line.
    pub places: &'a [(&'a str, Option<usize>)],
    /// The type's derived values: slot, name and line.
    pub derived: &'a [(Slot, String, Option<usize>)],
    pub control_points: &'a [ControlPoint],
    pub lists: &'a [ConstList],
    pub tables: &'a [Table],
}

/// Every use of a sensitive field of the type that a hash would change,
/// as an error naming the control point (or the event type) and the
/// expression.
pub fn check(scope: &TypeScope<'_>, diags: &mut Vec<Diagnostic>) {
    if !scope.fields.iter().any(|f| f.sensitive) {
        return;
    }
    let mut problems: Vec<(u32, String)> = Vec::new();
    let consumers = consumers(scope.program);
    for (i, node) in scope.program.nodes.iter().enumerate() {
        for s in node.op.operands() {
            let Some(field) = scope.sensitive(s) else {
                continue;
            };
            if let Some(why) = scope.refuses(i as u32, &node.op, s, field, &consumers) {
                problems.push((i as u32, why));
            }
        }
    }
    for a in scope.aggregates {
        let Some(field) = a.of.and_then(|s| scope.sensitive(s)) else {
            continue;
        };
        if !matches!(a.func, AggregateFn::Count | AggregateFn::Distinct) {
            let why = format!(
                "`{field}` is sensitive: a window may count it (`count`, `distinct`) but not take its {:?}; a sample holds a keyed hash of it",
                a.func
            );
            let slot = scope
                .program
                .nodes
                .iter()
                .position(|n| matches!(&n.op, Op::Aggregate(x) if scope.aggregates.get(*x as usize) == Some(a)));
            problems.push((slot.map_or(u32::MAX, |p| p as u32), why));
        }
    }
    for (node, why) in problems {
        scope.report(node, why, diags);
    }
}

impl TypeScope<'_> {
    /// The name of a sensitive field, if `slot` is one.
    fn sensitive(&self, slot: Slot) -> Option<&str> {
        self.fields
            .get(slot as usize)
            .filter(|f| f.sensitive)
            .map(|f| f.name.as_str())
    }

    /// Why node `i` (`op`, reading sensitive `field` in `slot`) would
    /// change its outcome under the hash, if it would.
    fn refuses(
        &self,
        i: u32,
        op: &Op,
        slot: Slot,
        field: &str,
        consumers: &[Vec<u32>],
    ) -> Option<String> {
        let general = || {
            format!(
                "`{field}` is sensitive: a sample holds a keyed hash of it, so a condition may only compare it with `==` or `!=` to another sensitive field or to \"\", test `len({field})` against 0, count it or show it"
            )
        };
        match op {
            Op::Eq(a, b) | Op::Neq(a, b) => {
                let other = if *a == slot { *b } else { *a };
                if self.sensitive(other).is_some()
                    || self.is_const(other, |c| c == &Const::Str("".into()))
                {
                    None
                } else {
                    Some(general())
                }
            }
            Op::Len(_) => {
                let zero = |s: Slot| {
                    self.is_const(s, |c| {
                        matches!(c, Const::Int(0)) || matches!(c, Const::Float(f) if *f == 0.0)
                    })
                };
                let len_slot = self.program.n_fields + i;
                let ok = consumers[i as usize].iter().all(|&c| {
                    match &self.program.nodes[c as usize].op {
                        Op::Eq(a, b) | Op::Neq(a, b) | Op::Cmp(_, a, b) => {
                            let other = if *a == len_slot { *b } else { *a };
                            zero(other)
                        }
                        _ => false,
                    }
                }) && !self
                    .aggregates
                    .iter()
                    .any(|a| a.of == Some(len_slot) || a.filter == Some(len_slot));
                (!ok).then(general)
            }
            Op::Contains(list, _) => {
                let name = self
                    .lists
                    .get(*list as usize)
                    .map_or("?", |l| l.name.as_str());
                Some(format!(
                    "a sensitive field cannot be compared with list `{name}`: a sample holds a keyed hash of `{field}` and the list clear values (compare it only with sensitive fields)"
                ))
            }
            Op::Lookup(table, column, _) => {
                let name = self
                    .tables
                    .get(*table as usize)
                    .map_or("?", |t| t.name.as_str());
                let what = if self.lists.iter().any(|l| l.name == name) {
                    "list"
                } else {
                    "table"
                };
                let how = if *column == EXISTS {
                    "exists"
                } else {
                    "lookup"
                };
                Some(format!(
                    "a sensitive field cannot be a key of {what} `{name}` (`{how}`): a sample holds a keyed hash of `{field}` and the {what} clear values"
                ))
            }
            _ => Some(general()),
        }
    }

    /// Whether `slot` is a constant node meeting `test`.
    fn is_const(&self, slot: Slot, test: impl Fn(&Const) -> bool) -> bool {
        matches!(self.program.node(slot), Some(n) if matches!(&n.op, Op::Const(c) if test(c)))
    }

    /// Reports `why` under each control point that reads node `node`, or
    /// under the event type when none does.
    fn report(&self, node: u32, why: String, diags: &mut Vec<Diagnostic>) {
        let text = self
            .program
            .nodes
            .get(node as usize)
            .map(|n| n.text.clone());
        let skip = std::collections::HashSet::new();
        let mut named = false;
        for (i, &c) in self.points.iter().enumerate() {
            let cp = &self.control_points[c as usize];
            let (file, line) = self
                .places
                .get(i)
                .copied()
                .unwrap_or((cp.file.as_str(), None));
            let roots = std::iter::once(cp.when)
                .chain(cp.tiers.iter().filter_map(|t| t.when))
                .chain(cp.tiers.iter().filter_map(|t| t.recuse));
            if self
                .program
                .cone(roots, self.aggregates, &skip)
                .contains(&node)
            {
                named = true;
                let mut d = Diagnostic::error(file, why.clone())
                    .at_line(line)
                    .item(&cp.id);
                if let Some(t) = &text {
                    d = d.expression(t.clone());
                }
                diags.push(d);
            }
        }
        if named {
            return;
        }
        // Read by no control point: under the derived value that reads it,
        // else the event type (a `plausible` condition).
        let (line, item) = self
            .derived
            .iter()
            .find(|(slot, _, _)| {
                self.program
                    .cone([*slot], self.aggregates, &skip)
                    .contains(&node)
            })
            .map_or((self.line, self.item.to_owned()), |(_, name, line)| {
                (*line, format!("{}, derived `{name}`", self.item))
            });
        let mut d = Diagnostic::error(self.file, why).at_line(line).item(item);
        if let Some(t) = text {
            d = d.expression(t);
        }
        diags.push(d);
    }
}

/// For each node, the nodes that read it.
fn consumers(program: &Program) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); program.nodes.len()];
    for (i, node) in program.nodes.iter().enumerate() {
        for s in node.op.operands() {
            if let Some(j) = s.checked_sub(program.n_fields) {
                if let Some(list) = out.get_mut(j as usize) {
                    list.push(i as u32);
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::load::RuleSources;

    /// A refuel type with two sensitive plates and one clear station.
    fn rules(when: &str) -> String {
        format!(
            r#"
event_types:
  refuel:
    stream: s
    subject: card
    fields:
      card: {{ type: string, required: true }}
      plate_seen: {{ type: string, sensitive: true }}
      vehicle_plate: {{ type: string, sensitive: true }}
      station: {{ type: string }}
lists:
  flagged_plates: ["鄂A12345"]
control_points:
  - id: T-1
    domain: d
    title: t
    event_type: refuel
    when: '{when}'
    tiers: [{{ tier: 1, notify: r }}]
    message: "{{vehicle_plate}} seen as {{plate_seen}}"
"#
        )
    }

    fn errors(when: &str) -> Vec<String> {
        match crate::compile(&RuleSources::from_texts([("t.yaml", rules(when).as_str())])) {
            Ok(_) => Vec::new(),
            Err(diags) => diags
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.to_string())
                .collect(),
        }
    }

    #[test]
    fn equality_between_sensitive_fields_and_emptiness_are_allowed() {
        for when in [
            "len(plate_seen) > 0 && plate_seen != vehicle_plate",
            "plate_seen == vehicle_plate",
            "plate_seen != \"\"",
            "len(vehicle_plate) == 0",
            "station == \"ST-1\"",
        ] {
            assert_eq!(errors(when), Vec::<String>::new(), "{when}");
        }
    }

    #[test]
    fn a_list_or_table_lookup_of_a_sensitive_field_is_an_error() {
        let e = errors("contains(flagged_plates, plate_seen)");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("T-1")
                && e[0].contains("a sensitive field cannot be compared with list `flagged_plates`"),
            "{e:?}"
        );
        let e = errors("exists(\"flagged_plates\", vehicle_plate)");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("cannot be a key of list `flagged_plates` (`exists`)"),
            "{e:?}"
        );
    }

    #[test]
    fn what_a_hash_would_change_is_an_error() {
        for when in [
            "plate_seen == \"鄂A12345\"",
            "plate_seen == station",
            "len(plate_seen) > 6",
            "plate_seen > vehicle_plate",
            "str::to_lowercase(plate_seen) == \"x\"",
        ] {
            let e = errors(when);
            assert!(
                e.iter()
                    .any(|e| e.contains("T-1") && e.contains("is sensitive")),
                "{when}: {e:?}"
            );
        }
    }

    #[test]
    fn only_a_string_field_can_be_sensitive() {
        let text = rules("station == \"x\"").replace(
            "station: { type: string }",
            "station: { type: number, sensitive: true }",
        );
        let e = crate::compile(&RuleSources::from_texts([("t.yaml", text.as_str())])).unwrap_err();
        assert!(
            e.iter()
                .any(|d| d.message.contains("only a string field can be `sensitive`")),
            "{e:?}"
        );
    }
}
