//! [`Engine::run`]: one decoded event through its type's plan. The
//! aggregates run first (they record history), then each candidate
//! control point is decided term by term, its `for:` and suppression
//! state consulted, and its tier picked.

use std::sync::Arc;

use levee_rules::graph::Op;
use levee_rules::plan::NumValue;

use crate::tables::TableSet;
use crate::value::Val;
use crate::{eval, exact, state, Engine, EvalStats, Hit};

impl Engine {
    /// The tables' rows lookups read: by default the rule files' rows
    /// ([`TableSet::from_graph`] of this engine's graph); `levee run` gives
    /// every engine the set it keeps current from the tables' topics.
    pub fn set_tables(&mut self, tables: Arc<TableSet>) {
        self.tables = tables;
    }

    pub fn tables(&self) -> &Arc<TableSet> {
        &self.tables
    }
}

impl Engine {
    /// Evaluates the last decoded event as its current type (its own, or
    /// a re-keyed copy): decides each control point of that type and picks
    /// the tier of every one that fires, adding its hits to those already
    /// found for the event (see [`Engine::run`]).
    ///
    /// The aggregates run for every event (they record history); then each
    /// control point's `&&` terms are evaluated, cheapest first, until one
    /// is false (see [`levee_rules::plan`]). A condition with a false term
    /// is false, whatever its other terms; one with no false term but a
    /// term over a missing field is unknown, and one with an evaluation
    /// error is an error. Tiers, message and evidence are evaluated only
    /// for control points that fire.
    pub(crate) fn run_type(&mut self) -> EvalStats {
        let ti = self.env.type_index as usize;
        let Engine {
            graph,
            buffers,
            stamps,
            epochs,
            candidates,
            order,
            hits,
            state,
            record,
            key,
            env,
            tables,
            ..
        } = self;
        let et = &graph.event_types[ti];
        let buf = &mut buffers[ti];
        let stamps = &mut stamps[ti];
        let epoch = {
            let e = &mut epochs[ti];
            *e = e.wrapping_add(1);
            if *e == 0 {
                // Every stamp could now look current: start over.
                stamps.fill(0);
                *e = 1;
            }
            *e
        };
        let at = env.occurred.map_or(0, |t| t.timestamp());
        // A re-keyed copy's event time is its upstreams' (`rekey`).
        if *record && et.rekeyed.is_none() {
            state.watermark = state.watermark.max(at);
        }
        let record = *record;
        // Every aggregate of a type is kept per the type's subject (the
        // compiler requires it of stateful control points): the subject's
        // state is looked up once per event, not once per aggregate.
        let mut scratch = state::SubjectState::default();
        let mut subject: Option<&mut state::SubjectState> = None;
        if !et.aggregates.is_empty() {
            let v = &buf[et.subject as usize];
            if matches!(v, Val::Str(_) | Val::Int(_)) {
                key.clear();
                v.write_display(key);
                subject = Some(if record {
                    state.subject_mut(key, at)
                } else {
                    match state.subjects.get_mut(key.as_str()) {
                        Some(s) => s,
                        None => &mut scratch,
                    }
                });
            }
        }
        let tables: &TableSet = tables;
        // A table is read as of the event's time.
        let lookup = |op: &Op, slots: &[Val], out: &mut Val| match op {
            Op::Lookup(t, c, keys) => tables.lookup(*t, *c, keys, slots, at, out),
            _ => *out = Val::Missing,
        };
        let mut aggregate = |op: &Op, slots: &[Val], out: &mut Val| {
            let Op::Aggregate(a) = *op else {
                return lookup(op, slots, out);
            };
            let spec = &et.aggregates[a as usize];
            debug_assert_eq!(spec.subject, et.subject);
            let Some(s) = subject.as_deref_mut() else {
                *out = Val::Missing;
                return;
            };
            let counts = spec
                .filter
                .is_none_or(|f| matches!(slots[f as usize], Val::Bool(true)));
            let snapped;
            let value = match spec.of {
                None => Some(&Val::Bool(true)),
                Some(s) => match &slots[s as usize] {
                    Val::Missing | Val::Error => None,
                    // A window of numbers keeps the decimal a computed
                    // value is (see `exact::window_value`).
                    Val::Float(x) if state::numeric(spec.func) => {
                        snapped = Val::Float(exact::window_value(
                            &et.plan.ops,
                            et.program.n_fields,
                            slots,
                            s,
                            *x,
                        ));
                        Some(&snapped)
                    }
                    v => Some(v),
                },
            };
            let value = if counts { value } else { None };
            *out = s.aggregate(spec.key, spec, at, value, record);
        };
        let p = &et.program;
        let lists = &graph.lists;
        let ops = &et.plan.ops;
        eval::run_code(
            p,
            ops,
            lists,
            buf,
            stamps,
            epoch,
            &et.plan.always_code,
            &mut aggregate,
            exact::NoWindows,
        );
        // Every aggregate has run: nothing below reaches one, only
        // lookups. An exact decision reads their windows again (rarely:
        // see `exact`).
        let mut no_aggregate = |op: &Op, slots: &[Val], out: &mut Val| match op {
            Op::Lookup(t, c, keys) => tables.lookup(*t, *c, keys, slots, at, out),
            _ => *out = Val::Missing,
        };
        let windows = state::EventWindows {
            et,
            type_index: ti as u32,
            at,
            record,
        };
        let mut stats = EvalStats::default();
        let plan = &et.plan;
        // The index rules out control points whose threshold this event
        // does not reach; the others are decided below, in their order.
        candidates.clear();
        candidates.extend_from_slice(&plan.index.unindexed);
        for g in &plan.index.groups {
            let code = plan.code(g.nodes);
            eval::run_code(
                p,
                ops,
                lists,
                buf,
                stamps,
                epoch,
                code,
                &mut no_aggregate,
                state::StateWindows {
                    event: &windows,
                    state,
                },
            );
            let mut mark = |k: u32| candidates[k as usize / 64] |= 1 << (k % 64);
            // A field's float is exact as it is: no rounding margin.
            let exact = g.slot < p.n_fields;
            match &buf[g.slot as usize] {
                Val::Int(i) => g
                    .keys
                    .for_each_holding(g.cmp, &NumValue::Int(*i), exact, mark),
                Val::Float(f) => g
                    .keys
                    .for_each_holding(g.cmp, &NumValue::Float(*f), exact, mark),
                // Missing or an error: every one of them is undecided.
                _ => g.keys.each(&mut mark),
            }
        }
        order.clear();
        for (w, &word) in candidates.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                order.push(w as u32 * 64 + bits.trailing_zeros());
                bits &= bits - 1;
            }
        }
        for &k in order.iter() {
            let ci = et.control_points[k as usize];
            let point = &plan.points[k as usize];
            let cp = &graph.control_points[ci as usize];
            // A data-quality point (decided before the points of its type)
            // found a field this point reads implausible: not decided.
            if !cp.guarded_by.is_empty()
                && hits
                    .iter()
                    .any(|h| cp.guarded_by.contains(&h.control_point))
            {
                continue;
            }
            // True until a term is false (decided) or not a boolean (the
            // first missing field or error is what counts, unless a later
            // term is false).
            let mut holds = true;
            // Some(true): a field was missing; Some(false): an error.
            let mut undecided: Option<bool> = None;
            for term in plan.terms(point) {
                let code = plan.code(term.nodes);
                eval::run_code(
                    p,
                    ops,
                    lists,
                    buf,
                    stamps,
                    epoch,
                    code,
                    &mut no_aggregate,
                    state::StateWindows {
                        event: &windows,
                        state,
                    },
                );
                match &buf[term.slot as usize] {
                    Val::Bool(true) => {}
                    Val::Bool(false) => {
                        holds = false;
                        undecided = None;
                        break;
                    }
                    v => {
                        holds = false;
                        undecided = undecided.or(Some(matches!(v, Val::Missing)));
                    }
                }
            }
            match undecided {
                None => {}
                Some(true) if fails_closed(cp, buf) => holds = true,
                Some(true) => stats.unknown += 1,
                Some(false) => stats.errors += 1,
            }
            if !holds && cp.hold_for.is_none() {
                continue;
            }
            if cp.is_stateful() {
                // The subject is a field: no evaluation needed.
                key.clear();
                buf[cp.subject as usize].write_display(key);
            }
            if let Some(needed) = cp.hold_for {
                let held = state.with_subject(key, at, record, |s| {
                    s.held_for(cp.key, holds, at, needed, record)
                });
                if !held {
                    continue;
                }
            }
            // Tiers, message and evidence read nodes no term needed.
            let fired = plan.code(point.fired);
            eval::run_code(
                p,
                ops,
                lists,
                buf,
                stamps,
                epoch,
                fired,
                &mut no_aggregate,
                state::StateWindows {
                    event: &windows,
                    state,
                },
            );
            let tier = cp.tiers.iter().find(|t| match t.when {
                None => true,
                Some(s) => matches!(buf[s as usize], Val::Bool(true)),
            });
            let Some(t) = tier else { continue };
            // Recusal (回避): the role it notifies is held by someone the
            // alert is about; it goes one tier up.
            let recused = t
                .recuse
                .is_some_and(|s| matches!(buf[s as usize], Val::Bool(true)));
            let tier_no = if recused { (t.tier + 1).min(3) } else { t.tier };
            if let Some(period) = cp.suppress {
                let due = state.with_subject(key, at, record, |s| {
                    s.due(cp.key, tier_no, at, period, record)
                });
                if !due {
                    stats.suppressed += 1;
                    continue;
                }
            }
            hits.push(Hit {
                control_point: ci,
                tier: tier_no,
            });
        }
        if record {
            // What the event changed goes to the changelog; subjects with
            // nothing to keep go.
            state.settle();
        }
        stats
    }
}

/// Whether a condition left unknown by missing fields fails closed: some
/// of the point's `fail_closed` fields are missing, and no other field it
/// reads is (see [`levee_rules::missing`]).
fn fails_closed(cp: &levee_rules::ControlPoint, buf: &[Val]) -> bool {
    let missing = |s: &u32| matches!(buf[*s as usize], Val::Missing);
    cp.fail_closed.iter().any(missing)
        && cp
            .fields_read
            .iter()
            .all(|s| !missing(s) || cp.fail_closed.contains(s))
}
