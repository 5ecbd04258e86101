//! Re-keying: a stateful control point whose subject is not the key its
//! event type is partitioned by (`subject: approver_id` on purchases keyed
//! by supplier, or a composite `subject: [project_id, category]`) keeps its
//! state in a re-keyed copy of the type, `purchase@approver_id`: the same
//! fields and derived values, that key as its subject, and only the points
//! kept per that key. Evaluating the copies of a type in turn on each of its
//! events gives what keeping state per each key would (docs/design.md).
//!
//! [`split`] decides which points go to which copy and checks their keys;
//! [`crate::compile`] compiles each copy like any event type.

use std::collections::BTreeMap;

use crate::diag::{did_you_mean, Diagnostic};
use crate::graph::{EventType, Rekeyed, Ty, COMMON_FIELDS};
use crate::load::SourceFile;
use crate::model::{Action, ControlPointDef, EventTypeDef, SubjectDef};

/// A control point with the file and line it was written at.
pub(crate) type Located<'a> = (&'a SourceFile, &'a ControlPointDef, Option<usize>);

/// One event type to compile: a type of the schemas, or a re-keyed copy of one.
#[derive(Debug)]
pub(crate) struct Instance<'a> {
    /// `purchase`, or `purchase@approver_id` for a copy.
    pub name: String,
    pub file: &'a SourceFile,
    pub def: &'a EventTypeDef,
    /// For a copy: the name of the type it copies and the fields of its key.
    pub copy_of: Option<(&'a str, Vec<String>)>,
}

/// The separator of a composite key's parts, in its name and its values.
pub const COMPOSITE_NAME: char = '+';

/// Keeps state: windows, `for:`, suppression or escalation.
fn stateful(cp: &ControlPointDef) -> bool {
    !cp.aggregates.is_empty()
        || cp.for_.is_some()
        || cp.suppress.is_some()
        || cp.escalate_after.is_some()
}

/// The event types to compile, by name (each copy right after its type),
/// and the control points of each: a stateful point kept per another key
/// than its type's moves to that key's copy. A point whose key is not a
/// string or integer field of its type is left out, with an error naming
/// file, point and the key as written.
pub(crate) fn split<'a>(
    type_defs: &BTreeMap<&'a str, (&'a SourceFile, &'a EventTypeDef)>,
    cps_by_type: BTreeMap<&'a str, Vec<Located<'a>>>,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<Instance<'a>>, BTreeMap<String, Vec<Located<'a>>>) {
    let mut points: BTreeMap<String, Vec<Located<'a>>> = BTreeMap::new();
    let mut copies: BTreeMap<String, (&'a str, Vec<String>)> = BTreeMap::new();
    for (ty, located) in cps_by_type {
        let Some((_, def)) = type_defs.get(ty) else {
            continue;
        };
        for l in located {
            let (f, cp, line) = l;
            let key = match &cp.subject {
                Some(s) if s.fields() != [def.subject.as_str()] => s,
                _ => {
                    points.entry(ty.to_owned()).or_default().push(l);
                    continue;
                }
            };
            let composite = key.fields().len() > 1;
            if !stateful(cp) && !composite {
                // Only names whom the alert is about: no state, no copy.
                points.entry(ty.to_owned()).or_default().push(l);
                continue;
            }
            let problems = key_problems(key, ty, def, stateful(cp));
            if !problems.is_empty() {
                let written = match key {
                    SubjectDef::One(s) => s.clone(),
                    SubjectDef::Composite(fs) => format!("[{}]", fs.join(", ")),
                };
                for p in problems {
                    diags.push(
                        Diagnostic::error(&f.path, format!("`subject`: {p}"))
                            .at_line(line)
                            .item(&cp.id)
                            .expression(written.clone()),
                    );
                }
                continue;
            }
            if cp.action == Action::Block && def.request {
                diags.push(blocked_elsewhere(f, cp, line, ty, &def.subject));
                continue;
            }
            let name = format!("{ty}@{}", key.name());
            copies
                .entry(name.clone())
                .or_insert_with(|| (ty, key.fields().to_vec()));
            points.entry(name).or_default().push(l);
        }
    }
    let mut instances = Vec::new();
    for (&name, &(file, def)) in type_defs {
        instances.push(Instance {
            name: name.to_owned(),
            file,
            def,
            copy_of: None,
        });
        for (copy, (_, key)) in copies.range(format!("{name}@")..) {
            if !copy.starts_with(&format!("{name}@")) {
                break;
            }
            instances.push(Instance {
                name: copy.clone(),
                file,
                def,
                copy_of: Some((name, key.clone())),
            });
        }
    }
    (instances, points)
}

/// A `block` point of a request type kept per another key: its copy is
/// evaluated on another partition, after the request's verdict is written,
/// so it could never refuse the request; an error rather than an `allow`
/// the point disagrees with.
fn blocked_elsewhere(
    f: &SourceFile,
    cp: &ControlPointDef,
    line: Option<usize>,
    ty: &str,
    own_key: &str,
) -> Diagnostic {
    Diagnostic::error(
        &f.path,
        format!(
            "`action: block` on `{ty}`, a request, decides its verdict where the request is \
             evaluated, per its own key `{own_key}`; a point kept per another key is evaluated \
             after that verdict and cannot refuse it: keep its state per `{own_key}`, or raise \
             an alert without `action: block`"
        ),
    )
    .at_line(line)
    .item(&cp.id)
}

/// What is wrong with `key` as the key of a copy of `def`'s type.
fn key_problems(
    key: &SubjectDef,
    type_name: &str,
    def: &EventTypeDef,
    stateful: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let fields = key.fields();
    if fields.is_empty() {
        out.push("an empty list names no field to keep state per".to_owned());
    }
    if fields.len() > 1 && !stateful {
        out.push(
            "a composite subject is a key to keep state per: a point without state \
             (windows, `for`, `suppress`, `escalate_after`) names one field"
                .to_owned(),
        );
    }
    for (i, name) in fields.iter().enumerate() {
        if fields[..i].contains(name) {
            out.push(format!("`{name}` is listed twice"));
            continue;
        }
        let ty = match def.fields.get(name) {
            Some(f) => Some(crate::point::field_ty(f.ty)),
            None => COMMON_FIELDS
                .iter()
                .find(|(c, _)| c == name)
                .map(|(_, t)| crate::point::field_ty(*t)),
        };
        match ty {
            Some(Ty::Str | Ty::Int) => {}
            Some(t) => out.push(format!(
                "`{name}` is a {} field: state is kept per a string or integer field",
                t.name()
            )),
            None => {
                let mut msg = format!("`{name}` is not a field of `{type_name}`");
                let names = def
                    .fields
                    .keys()
                    .map(String::as_str)
                    .chain(COMMON_FIELDS.iter().map(|(c, _)| *c));
                if let Some(s) = did_you_mean(name, names) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
                out.push(msg);
            }
        }
    }
    out
}

/// Marks each copy with the type it copies and its key's slots, and each
/// type with its copies (by name: `types` are the compiled `instances`).
pub(crate) fn link(instances: &[Instance<'_>], types: &mut [EventType]) {
    for inst in instances {
        let Some((of, key)) = &inst.copy_of else {
            continue;
        };
        let find = |n: &str| types.iter().position(|t| t.name == n);
        let (Some(copy), Some(of)) = (find(&inst.name), find(of)) else {
            continue;
        };
        let slots = key
            .iter()
            .filter_map(|k| types[copy].field_index.get(k).copied())
            .collect();
        types[copy].rekeyed = Some(Rekeyed {
            of: of as u32,
            key: slots,
        });
        types[of].copies.push(copy as u32);
    }
}

/// The kind of a key's subject, for profiles: each field's name without
/// `_id` (`approver_id` → `approver`, `[project_id, category]` →
/// `project+category`).
pub(crate) fn subject_kind(key_name: &str) -> String {
    key_name
        .split(COMPOSITE_NAME)
        .map(|n| n.strip_suffix("_id").unwrap_or(n))
        .collect::<Vec<_>>()
        .join(&COMPOSITE_NAME.to_string())
}

#[cfg(test)]
mod tests;
