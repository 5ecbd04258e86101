//! One control point, from its definition to its part of the graph: its
//! durations, aggregates, condition, tiers, message and evidence, with
//! every problem as a diagnostic naming the point. [`crate::compile`]
//! calls it for each point of each event type.

use crate::diag::Diagnostic;
use crate::duration::parse_duration;
use crate::graph::{Aggregate, ControlPoint, MessagePart, Slot, Tier, Ty};
use crate::load::SourceFile;
use crate::lower::Builder;
use crate::model::{AggregateDef, AggregateFn, ControlPointDef, FieldType, SubjectDef};
use crate::template::{parse_template, Part};

/// Default notify roles of tiers 2 and 3 (docs/contract.md).
pub fn default_notify(tier: u8) -> Option<&'static str> {
    match tier {
        2 => Some("branch_leadership"),
        3 => Some("discipline_inspection"),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn compile_cp(
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
        let recuse = crate::recusal::condition(cp, &notify, b).unwrap_or_else(|e| {
            diags.push(error(format!("`people`: {e}")));
            None
        });
        tiers.push(Tier {
            tier: n,
            when,
            when_src: t.when.clone(),
            notify,
            recuse,
        });
    }
    tiers.sort_by_key(|t| std::cmp::Reverse(t.tier));

    let subject = match cp.subject.as_ref().map(SubjectDef::fields) {
        // A composite key is a copy's subject ([`crate::rekey`]).
        None | Some([] | [_, _, ..]) => default_subject,
        Some([s]) => match b.name(s) {
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

    let mut placeholders: Vec<String> = Vec::new();
    let message = template(&cp.message, "message", b, &mut placeholders, &error, diags);
    let message_zh = cp
        .message_zh
        .as_ref()
        .map(|t| template(t, "message_zh", b, &mut placeholders, &error, diags));

    // Evidence: the names the conditions (recorded as they were parsed)
    // and the message read, in order.
    for n in placeholders {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let mut evidence: Vec<(String, Slot)> = names
        .into_iter()
        .filter_map(|n| b.resolve(&n).map(|(s, _)| (n, s)))
        .collect();
    // And what they read of the registers, by the call as written.
    let roots: Vec<Slot> = when
        .into_iter()
        .chain(
            tiers
                .iter()
                .flat_map(|t| t.when.into_iter().chain(t.recuse)),
        )
        .collect();
    evidence.extend(b.lookups_read(&roots));

    b.locals.clear();
    if diags[before..].iter().any(|d| d.is_error()) {
        return None;
    }
    Some(ControlPoint {
        id: cp.id.clone(),
        key: state_key(&["control point", &cp.id]),
        domain: cp.domain.clone(),
        title: cp.title.clone(),
        title_zh: cp.title_zh.clone(),
        description: cp.description.clone(),
        event_type: type_idx,
        when_src: cp.when.clone(),
        when: when?,
        subject_kind: crate::rekey::subject_kind(&b.slot_name(subject)),
        people: Vec::new(),
        subject,
        tiers,
        action: cp.action,
        message,
        message_zh,
        register: crate::register::Register::of(cp),
        evidence,
        tags: cp.tags.clone(),
        file: f.relative.clone(),
        hold_for,
        suppress,
        escalate_after,
        reads_calendar: false,
        guards: None,
        guarded_by: Vec::new(),
        fail_closed: Vec::new(),
        fields_read: Vec::new(),
    })
}

/// Compiles a message template (`message` or `message_zh`): each
/// placeholder must name a field, derived value or aggregate; the names
/// read are added to `placeholders`.
fn template(
    src: &str,
    key: &str,
    b: &mut Builder<'_>,
    placeholders: &mut Vec<String>,
    error: &dyn Fn(String) -> Diagnostic,
    diags: &mut Vec<Diagnostic>,
) -> Vec<MessagePart> {
    let parts = match parse_template(src) {
        Ok(parts) => parts,
        Err(e) => {
            diags.push(error(format!("{key}: {e}")).expression(src));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for p in parts {
        match p {
            Part::Text(t) => out.push(MessagePart::Text(t)),
            Part::Name(n) => {
                match b.name(&n) {
                    // Amounts of money, for people: `1,234,567.00`.
                    Ok((slot, _)) if key == "message_zh" && n.ends_with("_cny") => {
                        out.push(MessagePart::Amount(slot))
                    }
                    Ok((slot, _)) => out.push(MessagePart::Value(slot)),
                    Err(e) => {
                        diags.push(error(format!("{key} placeholder {{{n}}}: {e}")).expression(src))
                    }
                }
                placeholders.push(n);
            }
        }
    }
    out
}

fn compile_aggregate(
    name: &str,
    agg: &AggregateDef,
    cp: &ControlPointDef,
    default_subject: Slot,
    b: &mut Builder<'_>,
) -> Result<(Slot, Ty), String> {
    let over = parse_duration(&agg.over).map_err(|e| format!("`over: {}`: {e}", agg.over))?;
    let subject = match cp.subject.as_ref().map(SubjectDef::fields) {
        Some([s]) => b
            .resolve(s)
            .map(|(slot, _)| slot)
            .unwrap_or(default_subject),
        _ => default_subject,
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
    // Spaces do not change what a definition means.
    let text = |s: &Option<String>| -> String {
        s.as_deref()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let subject_name = cp
        .subject
        .as_ref()
        .map(SubjectDef::name)
        .unwrap_or_default();
    let key = state_key(&[
        "aggregate",
        &cp.event_type,
        &format!("{:?}", agg.func),
        &text(&agg.of),
        &text(&agg.filter),
        &over.to_string(),
        &subject_name,
    ]);
    let spec = Aggregate {
        key,
        func: agg.func,
        of,
        filter,
        over,
        subject,
    };
    Ok((b.aggregate(spec, ty, name), ty))
}

/// FNV-1a over the parts (each ended by a 0x1f byte): a digest that stays
/// the same across builds and versions, so state keyed by it in a
/// changelog keeps meaning the same thing.
pub(crate) fn state_key(parts: &[&str]) -> u64 {
    parts.iter().fold(0xcbf2_9ce4_8422_2325, |h, part| {
        part.bytes()
            .chain(std::iter::once(0x1f))
            .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    })
}

pub(crate) fn field_ty(t: FieldType) -> Ty {
    match t {
        FieldType::Number => Ty::Float,
        FieldType::Integer | FieldType::Timestamp => Ty::Int,
        FieldType::String => Ty::Str,
        FieldType::Boolean => Ty::Bool,
    }
}

pub(crate) fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_default_roles() {
        assert!(is_identifier("fuel_used_l"));
        assert!(!is_identifier("1abc"));
        assert!(!is_identifier("a-b"));
        assert_eq!(default_notify(1), None);
        assert_eq!(default_notify(2), Some("branch_leadership"));
        assert_eq!(default_notify(3), Some("discipline_inspection"));
    }
}
