//! The evaluator: one pass over an event type's flat program.
//!
//! Each node reads earlier slots of the buffer and writes its own. The buffer
//! is allocated once per event type and re-used for every event; constants
//! are written once, when the buffer is made. Semantics are evalexpr's, with
//! `Missing` and `Error` propagating through every operation.

use std::cmp::Ordering;

use levee_rules::graph::{Arith, Cmp, ConstList, FloatFn, Op, Program, StrFn};
use levee_rules::plan::Code;

use crate::value::Val;

/// A fresh buffer for a program: fields missing, constants in place.
pub fn new_buffer(p: &Program) -> Vec<Val> {
    let mut buf = vec![Val::Missing; p.buffer_len()];
    for (i, n) in p.nodes.iter().enumerate() {
        if let Op::Const(c) = &n.op {
            buf[p.n_fields as usize + i] = Val::from_const(c);
        }
    }
    buf
}

/// Evaluates lowered nodes ([`Code`], in order), whose fields are already
/// in `buf`. Generic nodes are evaluated once per event: a node runs when
/// its stamp differs from `epoch`, and is then stamped. The lowered forms
/// are cheap and idempotent, and evaluated every time they are reached.
/// Aggregates are computed by `aggregate` (from the slots before theirs).
// The hot loop takes its parts unbundled, and is inlined: most calls
// evaluate a node or two.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn run_code(
    p: &Program,
    ops: &[Op],
    lists: &[ConstList],
    buf: &mut [Val],
    stamps: &mut [u32],
    epoch: u32,
    code: &[Code],
    aggregate: &mut impl FnMut(u32, &[Val]) -> Val,
) {
    let base = p.n_fields as usize;
    for c in code {
        let (node, v) = match *c {
            Code::Node(i) => {
                let i = i as usize;
                if stamps[i] == epoch {
                    continue;
                }
                stamps[i] = epoch;
                match &ops[i] {
                    Op::Const(_) => {}
                    Op::Aggregate(a) => {
                        let (before, rest) = buf.split_at_mut(base + i);
                        rest[0] = aggregate(*a, before);
                    }
                    op => {
                        let (before, rest) = buf.split_at_mut(base + i);
                        eval_op(op, lists, before, &mut rest[0]);
                    }
                }
                continue;
            }
            Code::CmpInt { node, cmp, x, c } => (
                node,
                match buf[x as usize] {
                    Val::Missing => Val::Missing,
                    Val::Error => Val::Error,
                    Val::Int(v) => Val::Bool(holds(cmp, Some(v.cmp(&c)))),
                    Val::Float(f) => Val::Bool(holds(cmp, f.partial_cmp(&(c as f64)))),
                    _ => Val::Error,
                },
            ),
            Code::CmpFloat { node, cmp, x, c } => (
                node,
                match buf[x as usize] {
                    Val::Missing => Val::Missing,
                    Val::Error => Val::Error,
                    Val::Int(v) => Val::Bool(holds(cmp, (v as f64).partial_cmp(&c))),
                    Val::Float(f) => Val::Bool(holds(cmp, f.partial_cmp(&c))),
                    _ => Val::Error,
                },
            ),
            Code::EqInt { node, neg, x, c } => (
                node,
                match buf[x as usize] {
                    Val::Missing => Val::Missing,
                    Val::Error => Val::Error,
                    Val::Int(v) => Val::Bool((v == c) != neg),
                    _ => Val::Bool(neg),
                },
            ),
            Code::EqBool { node, neg, c, x } => (
                node,
                match buf[x as usize] {
                    Val::Missing => Val::Missing,
                    Val::Error => Val::Error,
                    Val::Bool(v) => Val::Bool((v == c) != neg),
                    _ => Val::Bool(neg),
                },
            ),
            Code::Cmp { node, cmp, x, y } => (
                node,
                binary(&buf[x as usize], &buf[y as usize], |x, y| {
                    compare(cmp, x, y)
                }),
            ),
            Code::Arith { node, a, x, y } => (
                node,
                binary(&buf[x as usize], &buf[y as usize], |x, y| arith(a, x, y)),
            ),
            Code::Eq { node, neg, x, y } => (
                node,
                binary(&buf[x as usize], &buf[y as usize], |x, y| {
                    Val::Bool((x == y) != neg)
                }),
            ),
            Code::Not { node, x } => (
                node,
                match buf[x as usize] {
                    Val::Missing => Val::Missing,
                    Val::Error => Val::Error,
                    Val::Bool(v) => Val::Bool(!v),
                    _ => Val::Error,
                },
            ),
            Code::And { node, x, y } => (node, logic(&buf[x as usize], &buf[y as usize], false)),
            Code::Or { node, x, y } => (node, logic(&buf[x as usize], &buf[y as usize], true)),
        };
        buf[base + node as usize] = v;
    }
}

/// `f(x, y)` once neither is `Missing` or `Error` (those of `x` first).
#[inline(always)]
fn binary(x: &Val, y: &Val, f: impl FnOnce(&Val, &Val) -> Val) -> Val {
    match (x, y) {
        (Val::Missing, _) => Val::Missing,
        (Val::Error, _) => Val::Error,
        (_, Val::Missing) => Val::Missing,
        (_, Val::Error) => Val::Error,
        (x, y) => f(x, y),
    }
}

/// `x && y` (`x || y` when `or`), with `Missing` and `Error` of `x` first.
#[inline]
fn logic(x: &Val, y: &Val, or: bool) -> Val {
    binary(x, y, |x, y| match (x, y) {
        (Val::Bool(x), Val::Bool(y)) => Val::Bool(if or { *x || *y } else { *x && *y }),
        _ => Val::Error,
    })
}

/// Whether an ordering satisfies a comparison (never when unordered).
#[inline]
fn holds(c: Cmp, ord: Option<Ordering>) -> bool {
    match (c, ord) {
        (_, None) => false,
        (Cmp::Lt, Some(o)) => o == Ordering::Less,
        (Cmp::Le, Some(o)) => o != Ordering::Greater,
        (Cmp::Gt, Some(o)) => o == Ordering::Greater,
        (Cmp::Ge, Some(o)) => o != Ordering::Less,
    }
}

macro_rules! operand {
    ($b:expr, $s:expr, $out:expr) => {{
        let v = &$b[$s as usize];
        match v {
            Val::Missing => {
                *$out = Val::Missing;
                return;
            }
            Val::Error => {
                *$out = Val::Error;
                return;
            }
            v => v,
        }
    }};
}

#[inline]
fn eval_op(op: &Op, lists: &[ConstList], b: &[Val], out: &mut Val) {
    match op {
        Op::Const(_) | Op::Aggregate(_) => {}
        Op::Arith(a, x, y) => {
            let x = operand!(b, *x, out);
            let y = operand!(b, *y, out);
            *out = arith(*a, x, y);
        }
        Op::Pow(x, y) => {
            let x = operand!(b, *x, out);
            let y = operand!(b, *y, out);
            *out = match (x.as_number(), y.as_number()) {
                (Some(x), Some(y)) => Val::Float(x.powf(y)),
                _ => Val::Error,
            };
        }
        Op::Neg(x) => {
            *out = match operand!(b, *x, out) {
                Val::Int(i) => i.checked_neg().map_or(Val::Error, Val::Int),
                Val::Float(f) => Val::Float(-f),
                _ => Val::Error,
            };
        }
        Op::Concat(x, y) => {
            let x = operand!(b, *x, out);
            let y = operand!(b, *y, out);
            if let (Val::Str(x), Val::Str(y)) = (x, y) {
                match out {
                    Val::Str(s) => {
                        s.clear();
                        s.push_str(x);
                        s.push_str(y);
                    }
                    _ => *out = Val::Str(format!("{x}{y}")),
                }
            } else {
                *out = Val::Error;
            }
        }
        Op::Eq(x, y) => {
            let x = operand!(b, *x, out);
            let y = operand!(b, *y, out);
            *out = Val::Bool(x == y);
        }
        Op::Neq(x, y) => {
            let x = operand!(b, *x, out);
            let y = operand!(b, *y, out);
            *out = Val::Bool(x != y);
        }
        Op::Cmp(c, x, y) => {
            let x = operand!(b, *x, out);
            let y = operand!(b, *y, out);
            *out = compare(*c, x, y);
        }
        Op::And(x, y) => {
            let x = operand!(b, *x, out);
            let y = operand!(b, *y, out);
            *out = match (x, y) {
                (Val::Bool(x), Val::Bool(y)) => Val::Bool(*x && *y),
                _ => Val::Error,
            };
        }
        Op::Or(x, y) => {
            let x = operand!(b, *x, out);
            let y = operand!(b, *y, out);
            *out = match (x, y) {
                (Val::Bool(x), Val::Bool(y)) => Val::Bool(*x || *y),
                _ => Val::Error,
            };
        }
        Op::Not(x) => {
            *out = match operand!(b, *x, out) {
                Val::Bool(x) => Val::Bool(!x),
                _ => Val::Error,
            };
        }
        Op::If(c, x, y) => {
            let c = operand!(b, *c, out);
            let x = operand!(b, *x, out);
            let y = operand!(b, *y, out);
            let pick = match c {
                Val::Bool(true) => x,
                Val::Bool(false) => y,
                _ => {
                    *out = Val::Error;
                    return;
                }
            };
            match pick {
                Val::Str(s) => out.set_str(s),
                v => *out = v.clone(),
            }
        }
        Op::Min(args) | Op::Max(args) => {
            let is_min = matches!(op, Op::Min(_));
            // evalexpr keeps the best integer and the best float apart and
            // compares the two at the end; so does this.
            let mut best_int = if is_min { i64::MAX } else { i64::MIN };
            let mut best_float = if is_min {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            };
            for s in args.iter() {
                match operand!(b, *s, out) {
                    Val::Int(i) => {
                        best_int = if is_min {
                            best_int.min(*i)
                        } else {
                            best_int.max(*i)
                        }
                    }
                    Val::Float(f) => {
                        best_float = if is_min {
                            best_float.min(*f)
                        } else {
                            best_float.max(*f)
                        }
                    }
                    _ => {
                        *out = Val::Error;
                        return;
                    }
                }
            }
            let int_wins = if is_min {
                (best_int as f64) < best_float
            } else {
                (best_int as f64) > best_float
            };
            *out = if int_wins {
                Val::Int(best_int)
            } else {
                Val::Float(best_float)
            };
        }
        Op::FloatFn(f, x) => {
            *out = match operand!(b, *x, out).as_number() {
                Some(x) => Val::Float(match f {
                    FloatFn::Floor => x.floor(),
                    FloatFn::Round => x.round(),
                    FloatFn::Ceil => x.ceil(),
                    FloatFn::Sqrt => x.sqrt(),
                    FloatFn::Ln => x.ln(),
                }),
                None => Val::Error,
            };
        }
        Op::Abs(x) => {
            *out = match operand!(b, *x, out) {
                Val::Int(i) => Val::Int(i.wrapping_abs()),
                Val::Float(f) => Val::Float(f.abs()),
                _ => Val::Error,
            };
        }
        Op::Contains(l, x) => {
            let x = operand!(b, *x, out);
            let found = lists
                .get(*l as usize)
                .is_some_and(|l| l.items.iter().any(|c| x.same(c)));
            *out = Val::Bool(found);
        }
        Op::Len(x) => {
            *out = match operand!(b, *x, out) {
                Val::Str(s) => Val::Int(s.len() as i64),
                _ => Val::Error,
            };
        }
        Op::StrFn(f, x) => {
            let Val::Str(s) = operand!(b, *x, out) else {
                *out = Val::Error;
                return;
            };
            match f {
                StrFn::Trim => out.set_str(s.trim()),
                StrFn::Lower => *out = Val::Str(s.to_lowercase()),
                StrFn::Upper => *out = Val::Str(s.to_uppercase()),
            }
        }
    }
}

#[inline(always)]
fn arith(a: Arith, x: &Val, y: &Val) -> Val {
    if let (Val::Int(x), Val::Int(y)) = (x, y) {
        let r = match a {
            Arith::Add => x.checked_add(*y),
            Arith::Sub => x.checked_sub(*y),
            Arith::Mul => x.checked_mul(*y),
            Arith::Div => x.checked_div(*y),
            Arith::Mod => x.checked_rem(*y),
        };
        return r.map_or(Val::Error, Val::Int);
    }
    match (x.as_number(), y.as_number()) {
        (Some(x), Some(y)) => Val::Float(match a {
            Arith::Add => x + y,
            Arith::Sub => x - y,
            Arith::Mul => x * y,
            Arith::Div => x / y,
            Arith::Mod => x % y,
        }),
        _ => Val::Error,
    }
}

#[inline(always)]
fn compare(c: Cmp, x: &Val, y: &Val) -> Val {
    let ord = match (x, y) {
        (Val::Str(x), Val::Str(y)) => Some(x.as_str().cmp(y.as_str())),
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        _ => match (x.as_number(), y.as_number()) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => return Val::Error,
        },
    };
    Val::Bool(holds(c, ord))
}
