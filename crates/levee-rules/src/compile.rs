//! From rule files to the rule graph, with every error at once.

pub use crate::duration::parse_duration;
pub use crate::point::default_notify;
use crate::point::{compile_cp, field_ty, is_identifier};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::diag::{did_you_mean, Diagnostic};
use crate::graph::{
    Const, ConstList, ControlPoint, EventType, FastMap, FieldSpec, Program, RuleGraph, Slot, Ty,
    COMMON_FIELDS,
};
use crate::load::{read_rules_dir, RuleSources, SourceFile};
use crate::lower::Builder;
use crate::model::{ControlPointDef, EventTypeDef, FieldType, ListItem, RuleFile};

use crate::rekey::Located;

/// A successful compilation: the graph, and warnings worth reading.
#[derive(Debug)]
pub struct Compiled {
    pub graph: RuleGraph,
    pub warnings: Vec<Diagnostic>,
    /// Gaps in the register's columns and Chinese messages
    /// ([`crate::register::gaps`]), in file order: errors to `levee check`,
    /// which the engine does without.
    pub register: Vec<Diagnostic>,
}

/// Reads and compiles a rules directory.
pub fn compile_dir(dir: &Path) -> Result<Compiled, Vec<Diagnostic>> {
    compile(&read_rules_dir(dir)?)
}

/// Compiles rule sources. On failure, returns every diagnostic (errors and
/// warnings), in file order.
pub fn compile(sources: &RuleSources) -> Result<Compiled, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let parsed = parse_sources(sources, &mut diags);
    let files: Vec<(&SourceFile, &RuleFile)> = parsed.iter().map(|(f, rf)| (*f, rf)).collect();
    let points: Vec<(&SourceFile, &[ControlPointDef])> = parsed
        .iter()
        .map(|(f, rf)| (*f, rf.control_points.as_slice()))
        .collect();
    build(&files, &points, sources.version(), diags)
}

/// Parses every rule file, in file order; a file that does not parse is
/// left out, with a diagnostic.
pub(crate) fn parse_sources<'s>(
    sources: &'s RuleSources,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(&'s SourceFile, RuleFile)> {
    let mut parsed = Vec::new();
    for (f, r) in sources.files.iter().zip(parse_files(&sources.files)) {
        match r {
            Ok(rf) => parsed.push((f, rf.unwrap_or_default())),
            Err(e) => diags.push(
                Diagnostic::error(&f.path, yaml_message(&e))
                    .at_line(e.location().map(|l| l.line())),
            ),
        }
    }
    parsed
}

/// Compiles parsed rule files: the event types, lists and calendar of
/// `files`, and the control points of `points` (each with the file it was
/// written in), as ruleset `version`.
pub(crate) fn build(
    files: &[(&SourceFile, &RuleFile)],
    points: &[(&SourceFile, &[ControlPointDef])],
    version: String,
    mut diags: Vec<Diagnostic>,
) -> Result<Compiled, Vec<Diagnostic>> {
    let parsed = files;
    let calendar = crate::calendar::from_rule_files(parsed, &mut diags);
    // Lists, shared by all event types.
    let mut list_defs: Vec<ConstList> = Vec::new();
    let mut list_index: FastMap<String, u32> = FastMap::default();
    let mut list_files: FastMap<String, &str> = FastMap::default();
    for (f, rf) in parsed {
        for (name, items) in &rf.lists {
            if let Some(first) = list_files.get(name) {
                diags.push(
                    Diagnostic::error(
                        &f.path,
                        format!("list `{name}` is already defined in {first}"),
                    )
                    .at_line(find_key_line(&f.text, name)),
                );
                continue;
            }
            if !is_identifier(name) {
                diags.push(Diagnostic::error(
                    &f.path,
                    format!("list name `{name}` must be an identifier (letters, digits, `_`)"),
                ));
            }
            list_files.insert(name.clone(), &f.path);
            list_index.insert(name.clone(), list_defs.len() as u32);
            list_defs.push(ConstList {
                name: name.clone(),
                items: items
                    .iter()
                    .map(|i| match i {
                        ListItem::Int(v) => Const::Int(*v),
                        ListItem::Float(v) => Const::Float(*v),
                        ListItem::String(s) => Const::Str(s.as_str().into()),
                    })
                    .collect(),
            });
        }
    }

    let tables = crate::table::compile_tables(parsed, &list_defs, &calendar, &mut diags);

    // Event types.
    let mut type_defs: BTreeMap<&str, (&SourceFile, &EventTypeDef)> = BTreeMap::new();
    for (f, rf) in parsed {
        for (name, def) in &rf.event_types {
            if let Some((first, _)) = type_defs.get(name.as_str()) {
                diags.push(
                    Diagnostic::error(
                        &f.path,
                        format!("event type `{name}` is already defined in {}", first.path),
                    )
                    .at_line(find_key_line(&f.text, name)),
                );
                continue;
            }
            type_defs.insert(name, (f, def));
        }
    }

    // Control points, grouped by event type, in file order; each type's
    // data-quality points first (the engine decides them first).
    let guards = crate::quality::guards(parsed, &mut diags);
    let mut cps_by_type: BTreeMap<&str, Vec<Located<'_>>> = BTreeMap::new();
    let mut seen_ids: FastMap<&str, String> = FastMap::default();
    let mut register = Vec::new();
    for g in &guards {
        if type_defs.contains_key(g.def.event_type.as_str()) {
            let here = format!("{}:{}", g.file.path, g.line.unwrap_or(1));
            seen_ids.insert(&g.def.id, here);
            cps_by_type
                .entry(&g.def.event_type)
                .or_default()
                .push((g.file, &g.def, g.line));
        }
    }
    for (f, cps) in points {
        let mut in_file: FastMap<&str, usize> = FastMap::default();
        let id_lines = id_lines(&f.text);
        for cp in *cps {
            let nth = in_file.entry(&cp.id).or_insert(0);
            *nth += 1;
            let line = id_lines
                .get(cp.id.as_str())
                .and_then(|l| l.get(*nth - 1))
                .copied();
            if cp.id.trim().is_empty() {
                diags.push(
                    Diagnostic::error(&f.path, "a control point has an empty `id`").at_line(line),
                );
                continue;
            }
            let here = match line {
                Some(l) => format!("{}:{l}", f.path),
                None => f.path.clone(),
            };
            if let Some(first) = seen_ids.get(cp.id.as_str()) {
                diags.push(
                    Diagnostic::error(
                        &f.path,
                        format!("duplicate control point id; first defined at {first}"),
                    )
                    .at_line(line)
                    .item(&cp.id),
                );
                continue;
            }
            seen_ids.insert(&cp.id, here);
            if !type_defs.contains_key(cp.event_type.as_str()) {
                let mut msg = format!("unknown event type `{}`", cp.event_type);
                if let Some(s) = did_you_mean(&cp.event_type, type_defs.keys().copied()) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                } else {
                    let known: Vec<&str> = type_defs.keys().copied().collect();
                    msg.push_str(&format!(" (known: {})", known.join(", ")));
                }
                diags.push(Diagnostic::error(&f.path, msg).at_line(line).item(&cp.id));
                continue;
            }
            register.extend(crate::register::gaps(&f.path, cp, line));
            cps_by_type
                .entry(&cp.event_type)
                .or_default()
                .push((f, cp, line));
        }
    }

    // Stateful points kept per another key go to re-keyed copies.
    let (instances, cps_by_type) = crate::rekey::split(&type_defs, cps_by_type, &mut diags);
    let mut event_types = Vec::new();
    let mut control_points: Vec<ControlPoint> = Vec::new();
    for (ti, inst) in instances.iter().enumerate() {
        let (name, f, def) = (inst.name.as_str(), inst.file, inst.def);
        let type_diags = diags.len();
        let et_item = format!("event type {name}");
        let et_line = find_key_line(&f.text, name);
        let err = |msg: String| {
            Diagnostic::error(&f.path, msg)
                .at_line(et_line)
                .item(&et_item)
        };

        let mut fields: Vec<FieldSpec> = COMMON_FIELDS
            .iter()
            .map(|(n, t)| FieldSpec {
                name: (*n).to_owned(),
                ty: *t,
                required: true,
                common: true,
                person: false,
                sensitive: false,
            })
            .collect();
        for (fname, fdef) in &def.fields {
            if COMMON_FIELDS.iter().any(|(c, _)| c == fname) || fname == "type" {
                diags.push(err(format!(
                    "field `{fname}` is common to every event and must not be declared"
                )));
                continue;
            }
            if !is_identifier(fname) {
                diags.push(err(format!(
                    "field name `{fname}` must be an identifier (letters, digits, `_`) to be usable in expressions"
                )));
            }
            if fdef.person && fdef.ty != FieldType::String {
                diags.push(err(format!(
                    "field `{fname}` says `person: true`: an employee number is a string, not {}",
                    format!("{:?}", fdef.ty).to_lowercase()
                )));
            }
            if fdef.sensitive && fdef.ty != FieldType::String {
                diags.push(err(format!(
                    "field `{fname}`: only a string field can be `sensitive` (a sample replaces its values by a keyed hash, a string)"
                )));
            }
            fields.push(FieldSpec {
                name: fname.clone(),
                ty: fdef.ty,
                required: fdef.required,
                common: false,
                person: fdef.person,
                sensitive: fdef.sensitive,
            });
        }
        // A composite key's value has a slot of its own, after the fields.
        if let Some((_, key)) = inst.copy_of.as_ref().filter(|(_, k)| k.len() > 1) {
            fields.push(FieldSpec {
                name: key.join("+"),
                ty: FieldType::String,
                required: false,
                common: false,
                person: false,
                sensitive: false,
            });
        }
        let field_index: FastMap<String, Slot> = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i as Slot))
            .collect();
        let field_types: Vec<Ty> = fields.iter().map(|f| field_ty(f.ty)).collect();

        let subject = match field_index.get(&def.subject) {
            // A copy's subject is its key (checked by `rekey::split`).
            _ if inst.copy_of.is_some() => inst
                .copy_of
                .as_ref()
                .and_then(|(_, key)| field_index.get(&key.join("+")))
                .copied()
                .unwrap_or(0),
            Some(&s) => {
                let spec = &fields[s as usize];
                if !spec.required || !matches!(spec.ty, FieldType::String | FieldType::Integer) {
                    diags.push(err(format!(
                        "subject `{}` must be a required string or integer field",
                        def.subject
                    )));
                }
                s
            }
            None => {
                let mut msg = format!("subject `{}` is not a field", def.subject);
                if let Some(s) = did_you_mean(&def.subject, field_index.keys().map(|s| s.as_str()))
                {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
                diags.push(err(msg));
                0
            }
        };
        for dname in def.derived.keys() {
            if field_index.contains_key(dname) || list_index.contains_key(dname) {
                diags.push(err(format!(
                    "derived value `{dname}` has the name of a field or list"
                )));
            }
        }

        // Too deep to lower without running out of stack (see limits).
        let mut too_deep = false;
        for (dname, src) in &def.derived {
            let n = crate::limits::nesting(src, &def.derived);
            if n > crate::limits::MAX_NESTING {
                too_deep = true;
                diags.push(
                    Diagnostic::error(&f.path, crate::limits::too_deep(n))
                        .at_line(find_key_line(&f.text, dname))
                        .item(format!("event type {name}, derived `{dname}`"))
                        .expression(src.clone()),
                );
            }
        }
        if too_deep {
            if inst.copy_of.is_some() {
                diags.truncate(type_diags);
            }
            continue;
        }

        let mut builder = Builder::new(
            inst.copy_of.as_ref().map_or(name, |(of, _)| *of),
            &field_index,
            field_types,
            &def.derived,
            &list_index,
            &mut list_defs,
        );
        builder.tables = &tables;
        for (dname, e) in builder.lower_all_derived() {
            let src = def.derived.get(&dname).cloned().unwrap_or_default();
            diags.push(
                Diagnostic::error(&f.path, e)
                    .at_line(find_key_line(&f.text, &dname))
                    .item(format!("event type {name}, derived `{dname}`"))
                    .expression(src),
            );
        }
        for w in builder.warnings.drain(..) {
            diags.push(Diagnostic::warning(&f.path, w).item(format!("event type {name}")));
        }

        if inst.copy_of.is_some() {
            // Its type's own problems are reported once, for the type.
            diags.truncate(type_diags);
        }
        let mut cp_indices = Vec::new();
        // Where each of them is written (file, line), for diagnostics.
        let mut cp_places: Vec<(&str, Option<usize>)> = Vec::new();
        for (cf, cp, line) in cps_by_type.get(name).map(|v| v.as_slice()).unwrap_or(&[]) {
            if let Some(d) = too_deep_expression(cf, cp, *line, &def.derived) {
                diags.push(d);
                continue;
            }
            if let Some(compiled) =
                compile_cp(cf, cp, *line, ti as u32, subject, &mut builder, &mut diags)
            {
                cp_indices.push(control_points.len() as u32);
                cp_places.push((cf.path.as_str(), *line));
                control_points.push(compiled);
            }
        }

        let derived = builder.derived_slots();
        let aggregates = std::mem::take(&mut builder.aggregates);
        let nodes = std::mem::take(&mut builder.nodes);
        drop(builder);
        let program = Program {
            n_fields: fields.len() as u32,
            nodes,
        };
        crate::calendar::mark_readers(&program, &aggregates, &cp_indices, &mut control_points);
        crate::quality::mark(
            &guards,
            &program,
            &aggregates,
            &field_index,
            &cp_indices,
            &mut control_points,
        );
        crate::missing::resolve(
            cps_by_type.get(name).map(|v| v.as_slice()).unwrap_or(&[]),
            &program,
            &aggregates,
            &fields,
            &cp_indices,
            &mut control_points,
            &mut diags,
        );
        crate::people::resolve(
            cps_by_type.get(name).map(|v| v.as_slice()).unwrap_or(&[]),
            &fields,
            &cp_indices,
            &mut control_points,
            &mut diags,
        );
        // Where each derived value is written, for the errors below.
        let derived_places: Vec<(Slot, String, Option<usize>)> =
            if fields.iter().any(|f| f.sensitive) {
                derived
                    .iter()
                    .map(|(n, s)| (*s, n.clone(), find_key_line(&f.text, n)))
                    .collect()
            } else {
                Vec::new()
            };
        let scope = crate::sensitive::TypeScope {
            file: &f.path,
            line: et_line,
            item: &et_item,
            program: &program,
            aggregates: &aggregates,
            fields: &fields,
            points: &cp_indices,
            places: &cp_places,
            derived: &derived_places,
            control_points: &control_points,
            lists: &list_defs,
            tables: &tables,
        };
        crate::sensitive::check(&scope, &mut diags);
        let plan = crate::plan::plan(
            &program,
            &aggregates,
            cp_indices.iter().map(|&c| &control_points[c as usize]),
        );
        event_types.push(EventType {
            name: (*name).to_owned(),
            stream: def.stream.clone(),
            subject,
            program,
            fields,
            field_index,
            derived,
            control_points: cp_indices,
            aggregates,
            plan,
            request: def.request,
            rekeyed: None,
            copies: Vec::new(),
        });
    }
    crate::rekey::link(&instances, &mut event_types);

    if diags.iter().any(|d| d.is_error()) {
        return Err(diags);
    }
    // Events name their type; a copy is reached through its type.
    let type_index = event_types
        .iter()
        .enumerate()
        .filter(|(_, t)| t.rekeyed.is_none())
        .map(|(i, t)| (t.name.clone(), i as u32))
        .collect();
    let point_index = control_points
        .iter()
        .enumerate()
        .map(|(i, c): (usize, &ControlPoint)| (c.id.clone(), i as u32))
        .collect();
    Ok(Compiled {
        graph: RuleGraph {
            version,
            event_types,
            type_index,
            control_points,
            point_index,
            lists: list_defs,
            calendar,
            tables,
        },
        warnings: diags,
        register,
    })
}

/// The error for the first expression of `cp` nested too deeply to lower
/// (see [`crate::limits`]), if any.
fn too_deep_expression(
    f: &SourceFile,
    cp: &ControlPointDef,
    line: Option<usize>,
    derived: &BTreeMap<String, String>,
) -> Option<Diagnostic> {
    let mut exprs: Vec<(String, &str)> = vec![("`when`".to_owned(), cp.when.as_str())];
    for t in &cp.tiers {
        if let Some(w) = &t.when {
            exprs.push((format!("tier {} `when`", t.tier), w));
        }
    }
    for (name, a) in &cp.aggregates {
        for (what, e) in [("where", &a.filter), ("of", &a.of)] {
            if let Some(e) = e {
                exprs.push((format!("aggregate `{name}` `{what}`"), e));
            }
        }
    }
    exprs.into_iter().find_map(|(what, src)| {
        let n = crate::limits::nesting(src, derived);
        (n > crate::limits::MAX_NESTING).then(|| {
            Diagnostic::error(&f.path, format!("{what}: {}", crate::limits::too_deep(n)))
                .at_line(line)
                .item(&cp.id)
                .expression(src)
        })
    })
}

/// YAML text per parsing thread: below it, a thread costs more than it saves.
const PARSE_BYTES_PER_THREAD: usize = 1 << 20;

/// Parses every rule file, in file order. YAML is much of the time a large
/// catalog takes to compile, so its files are parsed on as many threads as
/// the machine has (and its size warrants); each file is parsed on its own,
/// so the result is the same on any number of threads.
fn parse_files(files: &[SourceFile]) -> Vec<Result<Option<RuleFile>, serde_norway::Error>> {
    let parse = |f: &SourceFile| serde_norway::from_str::<Option<RuleFile>>(&f.text);
    let bytes: usize = files.iter().map(|f| f.text.len()).sum();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len())
        .min(bytes / PARSE_BYTES_PER_THREAD);
    if threads <= 1 {
        return files.iter().map(parse).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(f) = files.get(i) else {
                return done;
            };
            done.push((i, parse(f)));
        }
    };
    let mut out: Vec<Option<_>> = files.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut place = |done: Vec<(usize, _)>| {
            for (i, r) in done {
                out[i] = Some(r);
            }
        };
        place(work());
        for h in helpers {
            match h.join() {
                Ok(done) => place(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    out.into_iter()
        .zip(files)
        .map(|(r, f)| r.unwrap_or_else(|| parse(f)))
        .collect()
}

fn yaml_message(e: &serde_norway::Error) -> String {
    // serde_norway appends " at line L column C"; the line is printed apart.
    let s = e.to_string();
    let s = match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    };
    s.replace(
        "expected struct RuleFile",
        "expected a mapping with `event_types`, `lists` and/or `control_points`",
    )
}

/// The lines of every `id: ID` in a rule file (1-based), by id, for messages.
fn id_lines(text: &str) -> FastMap<&str, Vec<usize>> {
    let mut out: FastMap<&str, Vec<usize>> = FastMap::default();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim_start().trim_start_matches("- ").trim_start();
        if let Some(v) = l.strip_prefix("id:") {
            out.entry(v.trim().trim_matches(['"', '\'']))
                .or_default()
                .push(i + 1);
        }
    }
    out
}

/// The line of the mapping key `key:` in a rule file, for messages.
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Enough files, and enough text, to be parsed on several threads (where
    /// the machine has them): the results must be those of parsing each file
    /// in turn, in file order, errors included.
    #[test]
    fn parsing_on_threads_gives_each_files_own_result_in_order() {
        let padding = "# padding\n".repeat(PARSE_BYTES_PER_THREAD / 10 + 1);
        let texts: Vec<String> = (0..6)
            .map(|i| match i % 3 {
                0 => format!("{padding}lists:\n  l{i}: [1, 2]\n"),
                1 => format!("{padding}lists: [\n"),
                _ => format!("{padding}control_points: {i}\n"),
            })
            .collect();
        let files: Vec<SourceFile> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| SourceFile {
                path: format!("f{i}.yaml"),
                relative: format!("f{i}.yaml"),
                text: t.clone(),
            })
            .collect();
        let show = |r: &Result<Option<RuleFile>, serde_norway::Error>| match r {
            Ok(rf) => format!("{rf:?}"),
            Err(e) => format!("error: {e}"),
        };
        let each: Vec<String> = files
            .iter()
            .map(|f| show(&serde_norway::from_str::<Option<RuleFile>>(&f.text)))
            .collect();
        let all: Vec<String> = parse_files(&files).iter().map(show).collect();
        assert_eq!(all, each);
        assert!(all[0].starts_with("Some(RuleFile"));
        assert!(all[1].starts_with("error: "));
        assert!(all[2].starts_with("error: "));
    }
}
