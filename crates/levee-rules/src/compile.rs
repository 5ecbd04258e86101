//! From rule files to the rule graph, with every error at once.

pub use crate::duration::parse_duration;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::diag::{did_you_mean, Diagnostic};
use crate::graph::Aggregate;
use crate::graph::{
    Const, ConstList, ControlPoint, EventType, FastMap, FieldSpec, MessagePart, Program, RuleGraph,
    Slot, Tier, Ty, COMMON_FIELDS,
};
use crate::load::{read_rules_dir, RuleSources, SourceFile};
use crate::lower::Builder;
use crate::model::{
    AggregateDef, AggregateFn, ControlPointDef, EventTypeDef, FieldType, ListItem, RuleFile,
};

/// A control point with the file and line it was written at.
type Located<'a> = (&'a SourceFile, &'a ControlPointDef, Option<usize>);

/// A successful compilation: the graph, and warnings worth reading.
#[derive(Debug)]
pub struct Compiled {
    pub graph: RuleGraph,
    pub warnings: Vec<Diagnostic>,
}

/// Default notify roles of tiers 2 and 3 (docs/contract.md).
pub fn default_notify(tier: u8) -> Option<&'static str> {
    match tier {
        2 => Some("branch_leadership"),
        3 => Some("discipline_inspection"),
        _ => None,
    }
}

/// Reads and compiles a rules directory.
pub fn compile_dir(dir: &Path) -> Result<Compiled, Vec<Diagnostic>> {
    compile(&read_rules_dir(dir)?)
}

/// Compiles rule sources. On failure, returns every diagnostic (errors and
/// warnings), in file order.
pub fn compile(sources: &RuleSources) -> Result<Compiled, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut parsed: Vec<(&SourceFile, RuleFile)> = Vec::new();
    for (f, r) in sources.files.iter().zip(parse_files(&sources.files)) {
        match r {
            Ok(rf) => parsed.push((f, rf.unwrap_or_default())),
            Err(e) => diags.push(
                Diagnostic::error(&f.path, yaml_message(&e))
                    .at_line(e.location().map(|l| l.line())),
            ),
        }
    }

    let calendar = crate::calendar::from_rule_files(&parsed, &mut diags);
    // Lists, shared by all event types.
    let mut list_defs: Vec<ConstList> = Vec::new();
    let mut list_index: FastMap<String, u32> = FastMap::default();
    let mut list_files: FastMap<String, &str> = FastMap::default();
    for (f, rf) in &parsed {
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

    // Event types.
    let mut type_defs: BTreeMap<&str, (&SourceFile, &EventTypeDef)> = BTreeMap::new();
    for (f, rf) in &parsed {
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

    // Control points, grouped by event type, in file order.
    let mut cps_by_type: BTreeMap<&str, Vec<Located<'_>>> = BTreeMap::new();
    let mut seen_ids: FastMap<&str, String> = FastMap::default();
    for (f, rf) in &parsed {
        let mut in_file: FastMap<&str, usize> = FastMap::default();
        let id_lines = id_lines(&f.text);
        for cp in &rf.control_points {
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
            cps_by_type
                .entry(&cp.event_type)
                .or_default()
                .push((f, cp, line));
        }
    }

    let mut event_types = Vec::new();
    let mut control_points: Vec<ControlPoint> = Vec::new();
    for (ti, (name, (f, def))) in type_defs.iter().enumerate() {
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
            fields.push(FieldSpec {
                name: fname.clone(),
                ty: fdef.ty,
                required: fdef.required,
                common: false,
            });
        }
        let field_index: FastMap<String, Slot> = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i as Slot))
            .collect();
        let field_types: Vec<Ty> = fields.iter().map(|f| field_ty(f.ty)).collect();

        let subject = match field_index.get(&def.subject) {
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

        let mut builder = Builder::new(
            name,
            &field_index,
            field_types,
            &def.derived,
            &list_index,
            &mut list_defs,
        );
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

        let mut cp_indices = Vec::new();
        for (cf, cp, line) in cps_by_type.get(name).map(|v| v.as_slice()).unwrap_or(&[]) {
            if let Some(compiled) =
                compile_cp(cf, cp, *line, ti as u32, subject, &mut builder, &mut diags)
            {
                cp_indices.push(control_points.len() as u32);
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
        });
    }

    if diags.iter().any(|d| d.is_error()) {
        return Err(diags);
    }
    let type_index = event_types
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i as u32))
        .collect();
    Ok(Compiled {
        graph: RuleGraph {
            version: sources.version(),
            event_types,
            type_index,
            control_points,
            lists: list_defs,
            calendar,
        },
        warnings: diags,
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

#[allow(clippy::too_many_arguments)]
fn compile_cp(
    f: &SourceFile,
    cp: &ControlPointDef,
    line: Option<usize>,
    type_idx: u32,
    default_subject: Slot,
    b: &mut Builder<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<ControlPoint> {
    let before = diags.len();
    let error = |msg: String| Diagnostic::error(&f.path, msg).at_line(line).item(&cp.id);

    if cp.domain.trim().is_empty() {
        diags.push(error("`domain` is empty".to_owned()));
    }
    if cp.title.trim().is_empty() {
        diags.push(error("`title` is empty".to_owned()));
    }

    // The names the conditions and the message read, in order: the evidence.
    let mut names: Vec<String> = Vec::new();
    let condition = |src: &str,
                     what: &str,
                     b: &mut Builder<'_>,
                     diags: &mut Vec<Diagnostic>,
                     names: &mut Vec<String>| {
        let r = b.expression_reading(src, names);
        for w in b.warnings.drain(..) {
            diags.push(
                Diagnostic::warning(&f.path, format!("{what}: {w}"))
                    .at_line(line)
                    .item(&cp.id)
                    .expression(src),
            );
        }
        match r {
            Ok((slot, Ty::Bool)) => Some(slot),
            Ok((_, t)) => {
                diags.push(
                    error(format!(
                        "{what} must be a condition (true or false), but it is {}",
                        t.name()
                    ))
                    .expression(src),
                );
                None
            }
            Err(e) => {
                diags.push(error(format!("{what}: {e}")).expression(src));
                None
            }
        }
    };

    // Aggregates first: the conditions may read them by name.
    b.locals.clear();
    for (name, agg) in &cp.aggregates {
        if b.resolve(name).is_some() {
            diags.push(error(format!(
                "aggregate `{name}` has the name of a field or derived value"
            )));
            continue;
        }
        match compile_aggregate(name, agg, cp, default_subject, b) {
            Ok((slot, ty)) => {
                b.locals.insert(name.clone(), (slot, ty));
            }
            Err(e) => diags.push(error(format!("aggregate `{name}`: {e}"))),
        }
    }
    let duration = |key: &str, v: &Option<String>, diags: &mut Vec<Diagnostic>| {
        v.as_ref().and_then(|v| match parse_duration(v) {
            Ok(d) => Some(d),
            Err(e) => {
                diags.push(error(format!("`{key}: {v}`: {e}")));
                None
            }
        })
    };
    let hold_for = duration("for", &cp.for_, diags);
    let suppress = duration("suppress", &cp.suppress, diags);
    let escalate_after =
        cp.escalate_after
            .as_ref()
            .and_then(|v| match crate::duration::Period::parse(v) {
                Ok(p) => Some(p),
                Err(e) => {
                    diags.push(error(format!("`escalate_after: {v}`: {e}")));
                    None
                }
            });

    let when = condition(&cp.when, "`when`", b, diags, &mut names);

    if cp.tiers.is_empty() {
        diags.push(error(
            "`tiers` is empty: a control point needs at least one tier".to_owned(),
        ));
    }
    let mut tiers = Vec::new();
    let mut seen = [false; 4];
    for t in &cp.tiers {
        if !(1..=3).contains(&t.tier) {
            diags.push(error(format!(
                "tier {} is out of range: tiers are 1, 2 or 3",
                t.tier
            )));
            continue;
        }
        let n = t.tier as u8;
        if std::mem::replace(&mut seen[n as usize], true) {
            diags.push(error(format!("tier {n} is listed twice")));
            continue;
        }
        let notify = match (&t.notify, default_notify(n)) {
            (Some(r), _) if !r.trim().is_empty() => r.clone(),
            (_, Some(d)) => d.to_owned(),
            _ => {
                diags.push(error(format!(
                    "tier {n} needs `notify`: the role that must act (e.g. general_affairs_manager)"
                )));
                continue;
            }
        };
        let when = match &t.when {
            Some(src) => match condition(src, &format!("tier {n} `when`"), b, diags, &mut names) {
                Some(s) => Some(s),
                None => continue,
            },
            None => None,
        };
        tiers.push(Tier {
            tier: n,
            when,
            when_src: t.when.clone(),
            notify,
        });
    }
    tiers.sort_by_key(|t| std::cmp::Reverse(t.tier));

    let subject = match &cp.subject {
        None => default_subject,
        Some(s) => match b.name(s) {
            Ok((slot, Ty::Str | Ty::Int)) if b.is_field(slot) => slot,
            Ok(_) => {
                diags.push(error(format!(
                    "`subject: {s}` must name a string or integer field"
                )));
                default_subject
            }
            Err(e) => {
                diags.push(error(format!("`subject`: {e}")));
                default_subject
            }
        },
    };

    let stateful = !cp.aggregates.is_empty()
        || cp.for_.is_some()
        || cp.suppress.is_some()
        || cp.escalate_after.is_some();
    if stateful && subject != default_subject {
        let key = b.slot_name(default_subject);
        let own = b.slot_name(subject);
        diags.push(error(format!(
            "a stateful control point keeps its state per subject, and its subject `{own}` is not \
             the key `{key}` that `{}` events are partitioned by: the state of one `{own}` would be \
             split across partitions and instances. Use `subject: {key}` (or no subject), or key \
             the event type by `{own}`",
            cp.event_type
        )));
    }

    let mut placeholders: Vec<String> = Vec::new();
    let message = match parse_template(&cp.message) {
        Ok(parts) => {
            let mut out = Vec::new();
            for p in parts {
                match p {
                    Part::Text(t) => out.push(MessagePart::Text(t)),
                    Part::Name(n) => {
                        match b.name(&n) {
                            Ok((slot, _)) => out.push(MessagePart::Value(slot)),
                            Err(e) => diags.push(
                                error(format!("message placeholder {{{n}}}: {e}"))
                                    .expression(&cp.message),
                            ),
                        }
                        placeholders.push(n);
                    }
                }
            }
            out
        }
        Err(e) => {
            diags.push(error(format!("message: {e}")).expression(&cp.message));
            Vec::new()
        }
    };

    // Evidence: the names the conditions (recorded as they were parsed)
    // and the message read, in order.
    for n in placeholders {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let evidence = names
        .into_iter()
        .filter_map(|n| b.resolve(&n).map(|(s, _)| (n, s)))
        .collect();

    b.locals.clear();
    if diags[before..].iter().any(|d| d.is_error()) {
        return None;
    }
    Some(ControlPoint {
        id: cp.id.clone(),
        domain: cp.domain.clone(),
        title: cp.title.clone(),
        title_zh: cp.title_zh.clone(),
        description: cp.description.clone(),
        event_type: type_idx,
        when_src: cp.when.clone(),
        when: when?,
        subject,
        tiers,
        action: cp.action,
        message,
        evidence,
        tags: cp.tags.clone(),
        file: f.relative.clone(),
        hold_for,
        suppress,
        escalate_after,
        reads_calendar: false,
    })
}

fn compile_aggregate(
    name: &str,
    agg: &AggregateDef,
    cp: &ControlPointDef,
    default_subject: Slot,
    b: &mut Builder<'_>,
) -> Result<(Slot, Ty), String> {
    let over = parse_duration(&agg.over).map_err(|e| format!("`over: {}`: {e}", agg.over))?;
    let subject = match &cp.subject {
        Some(s) => b
            .resolve(s)
            .map(|(slot, _)| slot)
            .unwrap_or(default_subject),
        None => default_subject,
    };
    let filter = match &agg.filter {
        Some(src) => match b.expression(src)? {
            (slot, Ty::Bool) => Some(slot),
            (_, t) => {
                return Err(format!(
                    "`where: {src}` must be a condition, but it is {}",
                    t.name()
                ))
            }
        },
        None => None,
    };
    let (of, ty) = match (agg.func, &agg.of) {
        (AggregateFn::Count, None) => (None, Ty::Int),
        (AggregateFn::Count, Some(_)) => return Err("`count` takes no `of`".to_owned()),
        (_, None) => {
            return Err(
                format!("`{:?}` needs `of`: the value to aggregate", agg.func).to_lowercase(),
            )
        }
        (AggregateFn::Distinct, Some(src)) => {
            let (slot, t) = b.expression(src)?;
            if t == Ty::Bool {
                return Err("`distinct` counts numbers or strings".to_owned());
            }
            (Some(slot), Ty::Int)
        }
        (_, Some(src)) => {
            let (slot, t) = b.expression(src)?;
            if !t.is_numeric() {
                return Err(format!(
                    "`of: {src}` must be a number, but it is {}",
                    t.name()
                ));
            }
            (Some(slot), Ty::Float)
        }
    };
    b.warnings.clear();
    let spec = Aggregate {
        func: agg.func,
        of,
        filter,
        over,
        subject,
    };
    Ok((b.aggregate(spec, ty, name), ty))
}

pub(crate) fn field_ty(t: FieldType) -> Ty {
    match t {
        FieldType::Number => Ty::Float,
        FieldType::Integer | FieldType::Timestamp => Ty::Int,
        FieldType::String => Ty::Str,
        FieldType::Boolean => Ty::Bool,
    }
}

enum Part {
    Text(String),
    Name(String),
}

/// Splits a message template into text and `{name}` placeholders;
/// `{{` and `}}` stand for literal braces.
fn parse_template(t: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = t;
    while let Some(i) = rest.find(['{', '}']) {
        text.push_str(&rest[..i]);
        let brace = &rest[i..i + 1];
        let after = &rest[i + 1..];
        if let Some(after_pair) = after.strip_prefix(brace) {
            // `{{` or `}}`: a literal brace.
            text.push_str(brace);
            rest = after_pair;
            continue;
        }
        if brace == "}" {
            return Err("a lone `}` (write `}}` for a literal brace)".to_owned());
        }
        let Some(end) = after.find('}') else {
            return Err(format!("placeholder `{{{after}` is not closed with `}}`"));
        };
        let name = after[..end].trim();
        if name.is_empty() {
            return Err("empty placeholder `{}`".to_owned());
        }
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        parts.push(Part::Name(name.to_owned()));
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
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
