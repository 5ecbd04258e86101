//! The evaluator: one pass over an event type's flat program.
//!
//! Each node reads earlier slots of the buffer and writes its own. The buffer
//! is allocated once per event type and re-used for every event; constants
//! are written once, when the buffer is made. Semantics are evalexpr's, with
//! `Missing` and `Error` propagating through every operation, except that
//! numbers compare as the decimals they are: a comparison of floats within
//! rounding distance of each other is decided exactly ([`crate::exact`]).

use std::cmp::Ordering;

use levee_rules::graph::{Arith, Cmp, Const, ConstList, FloatFn, Op, Program, Slot, StrFn};
use levee_rules::plan::Code;

use crate::exact::{self, near, Cx, Operand, Windows, EXACT_INT};
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
/// Aggregates and table lookups are computed by `external` (from the
/// slots before theirs); `windows` are what an exact decision reads of
/// the aggregates.
///
/// A lowered comparison of floats within rounding distance of each other,
/// or a `%` near a step, is decided again by [`exact_code`], out of line:
/// the common path is what it was without exact decisions.
// The hot loop takes its parts unbundled, and is inlined: most calls
// evaluate a node or two.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn run_code<W: Windows + Copy>(
    p: &Program,
    ops: &[Op],
    lists: &[ConstList],
    buf: &mut [Val],
    stamps: &mut [u32],
    epoch: u32,
    code: &[Code],
    external: &mut impl FnMut(&Op, &[Val], &mut Val),
    windows: W,
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
                    op @ (Op::Aggregate(_) | Op::Lookup(..)) => {
                        let (before, rest) = buf.split_at_mut(base + i);
                        external(op, before, &mut rest[0]);
                    }
                    op => {
                        let (before, rest) = buf.split_at_mut(base + i);
                        let cx = Cx {
                            ops,
                            n_fields: p.n_fields,
                            windows: &windows,
                        };
                        eval_op(&cx, op, lists, before, &mut rest[0]);
                    }
                }
                continue;
            }
            // A field's float is a leaf: compared with a constant, its
            // float comparison is exact (for an integer constant, one exact
            // as a float).
            Code::CmpInt { node, cmp, x, c: k } => (
                node,
                match buf[x as usize] {
                    Val::Missing => Val::Missing,
                    Val::Error => Val::Error,
                    Val::Int(v) => Val::Bool(holds(cmp, Some(v.cmp(&k)))),
                    Val::Float(f)
                        if near(f, k as f64)
                            && (x >= p.n_fields || k.unsigned_abs() > EXACT_INT) =>
                    {
                        exact_code(p, ops, buf, &windows, c)
                    }
                    Val::Float(f) => Val::Bool(holds(cmp, f.partial_cmp(&(k as f64)))),
                    _ => Val::Error,
                },
            ),
            Code::CmpFloat { node, cmp, x, c: k } => (
                node,
                match buf[x as usize] {
                    Val::Missing => Val::Missing,
                    Val::Error => Val::Error,
                    Val::Int(v) if near(v as f64, k) && v.unsigned_abs() > EXACT_INT => {
                        exact_code(p, ops, buf, &windows, c)
                    }
                    Val::Int(v) => Val::Bool(holds(cmp, (v as f64).partial_cmp(&k))),
                    Val::Float(f) if x >= p.n_fields && near(f, k) => {
                        exact_code(p, ops, buf, &windows, c)
                    }
                    Val::Float(f) => Val::Bool(holds(cmp, f.partial_cmp(&k))),
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
            Code::Cmp { node, cmp, x, y } => {
                let (a, b) = (&buf[x as usize], &buf[y as usize]);
                let v = match (a, b) {
                    (Val::Float(fa), Val::Float(fb)) if !near(*fa, *fb) => {
                        Val::Bool(holds(cmp, fa.partial_cmp(fb)))
                    }
                    (Val::Int(ia), Val::Int(ib)) => Val::Bool(holds(cmp, Some(ia.cmp(ib)))),
                    _ => match floats(a, b) {
                        Some((fa, fb)) if near(fa, fb) => exact_code(p, ops, buf, &windows, c),
                        _ => binary(a, b, |a, b| compare(cmp, a, b)),
                    },
                };
                (node, v)
            }
            Code::Arith {
                node,
                a: Arith::Mod,
                x,
                y,
            } => {
                let v = match binary(&buf[x as usize], &buf[y as usize], |a, b| {
                    arith(Arith::Mod, a, b)
                }) {
                    Val::Float(r) if near_step(r, &buf[y as usize]) => {
                        exact_code(p, ops, buf, &windows, c)
                    }
                    v => v,
                };
                (node, v)
            }
            Code::Arith { node, a, x, y } => (
                node,
                binary(&buf[x as usize], &buf[y as usize], |x, y| arith(a, x, y)),
            ),
            Code::Eq { node, neg, x, y } => {
                let (a, b) = (&buf[x as usize], &buf[y as usize]);
                let v = match (a, b) {
                    (Val::Float(fa), Val::Float(fb)) if near(*fa, *fb) => {
                        exact_code(p, ops, buf, &windows, c)
                    }
                    // Not near: equal only if both are the same infinity.
                    (Val::Float(fa), Val::Float(fb)) => Val::Bool((fa == fb) != neg),
                    _ => binary(a, b, |a, b| Val::Bool((a == b) != neg)),
                };
                (node, v)
            }
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

/// Two numbers compared as floats (not two integers), if they are.
#[inline(always)]
fn floats(a: &Val, b: &Val) -> Option<(f64, f64)> {
    match (a, b) {
        (Val::Int(_), Val::Int(_)) => None,
        _ => Some((a.as_number()?, b.as_number()?)),
    }
}

/// Whether a float remainder `r` of a division by `y` is near a step of
/// `%` (near zero or near `y`), where rounding may have taken one whole
/// step more or less than exactly.
#[inline]
fn near_step(r: f64, y: &Val) -> bool {
    near(r, 0.0) || y.as_number().is_some_and(|y| near(r.abs(), y.abs()))
}

/// A lowered node decided exactly: a comparison whose operands are floats
/// within rounding distance, or a `%` near a step (see [`run_code`]).
#[cold]
#[inline(never)]
fn exact_code<W: Windows>(p: &Program, ops: &[Op], buf: &[Val], windows: &W, c: &Code) -> Val {
    let cx = Cx {
        ops,
        n_fields: p.n_fields,
        windows,
    };
    let n = p.n_fields;
    let number = |s: Slot| buf[s as usize].as_number();
    match *c {
        Code::CmpInt { cmp, x, c, .. } => {
            let f = number(x).and_then(|f| f.partial_cmp(&(c as f64)));
            let o = exact::order(&cx, buf, Operand::Slot(x), Operand::Int(c));
            Val::Bool(holds(cmp, o.or(f)))
        }
        Code::CmpFloat { cmp, x, c, .. } => {
            let f = number(x).and_then(|f| f.partial_cmp(&c));
            let o = exact::order(&cx, buf, Operand::Slot(x), Operand::Float(c));
            Val::Bool(holds(cmp, o.or(f)))
        }
        Code::Cmp { cmp, x, y, .. } => {
            let (a, b) = (&buf[x as usize], &buf[y as usize]);
            compare_exactly(cmp, a, b, || {
                let leaves = x < n && y < n && exact_leaves(a, b);
                (!leaves).then(|| exact::order(&cx, buf, Operand::Slot(x), Operand::Slot(y)))?
            })
        }
        Code::Eq { neg, x, y, .. } => {
            let (a, b) = (&buf[x as usize], &buf[y as usize]);
            let eq = equal(a, b, || {
                let leaves = x < n && y < n && exact_leaves(a, b);
                (!leaves).then(|| exact::order(&cx, buf, Operand::Slot(x), Operand::Slot(y)))?
            });
            Val::Bool(eq != neg)
        }
        Code::Arith { a, x, y, .. } => match binary(&buf[x as usize], &buf[y as usize], |a_, b_| {
            arith(a, a_, b_)
        }) {
            Val::Float(r) if a == Arith::Mod => Val::Float(exact::rem(&cx, buf, x, y, r)),
            v => v,
        },
        _ => Val::Error,
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

/// Whether two field values compare in `f64` exactly as the decimals they
/// are: floats (leaves), or integers exact as floats.
#[inline]
fn exact_leaves(x: &Val, y: &Val) -> bool {
    let leaf = |v: &Val| match v {
        Val::Float(_) => true,
        Val::Int(i) => i.unsigned_abs() <= EXACT_INT,
        _ => false,
    };
    leaf(x) && leaf(y)
}

/// The ordering of two floats, decided exactly (`exact`) where they are
/// within rounding distance of each other.
#[inline(always)]
fn order(a: f64, b: f64, exact: impl FnOnce() -> Option<Ordering>) -> Option<Ordering> {
    let o = a.partial_cmp(&b);
    if near(a, b) {
        exact().or(o)
    } else {
        o
    }
}

/// evalexpr's `==` (values of different kinds are unequal), with floats
/// near each other compared exactly.
#[inline(always)]
fn equal(x: &Val, y: &Val, exact: impl FnOnce() -> Option<Ordering>) -> bool {
    match (x, y) {
        (Val::Float(a), Val::Float(b)) => {
            if near(*a, *b) {
                exact().map_or(a == b, |o| o == Ordering::Equal)
            } else {
                a == b
            }
        }
        _ => x == y,
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
fn eval_op<W: Windows>(cx: &Cx<'_, W>, op: &Op, lists: &[ConstList], b: &[Val], out: &mut Val) {
    match op {
        Op::Const(_) | Op::Aggregate(_) | Op::Lookup(..) => {}
        Op::Arith(a, xs, ys) => {
            let x = operand!(b, *xs, out);
            let y = operand!(b, *ys, out);
            *out = match arith(*a, x, y) {
                Val::Float(r) if *a == Arith::Mod && near_step(r, y) => {
                    Val::Float(exact::rem(cx, b, *xs, *ys, r))
                }
                v => v,
            };
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
        Op::Eq(xs, ys) | Op::Neq(xs, ys) => {
            let x = operand!(b, *xs, out);
            let y = operand!(b, *ys, out);
            let eq = equal(x, y, || {
                let leaves = *xs < cx.n_fields && *ys < cx.n_fields && exact_leaves(x, y);
                (!leaves).then(|| exact::order(cx, b, Operand::Slot(*xs), Operand::Slot(*ys)))?
            });
            *out = Val::Bool(eq == matches!(op, Op::Eq(..)));
        }
        Op::Cmp(c, xs, ys) => {
            let x = operand!(b, *xs, out);
            let y = operand!(b, *ys, out);
            *out = compare_exactly(*c, x, y, || {
                let leaves = *xs < cx.n_fields && *ys < cx.n_fields && exact_leaves(x, y);
                (!leaves).then(|| exact::order(cx, b, Operand::Slot(*xs), Operand::Slot(*ys)))?
            });
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
            let (x, y) = (&b[*x as usize], &b[*y as usize]);
            // An error in either branch is evalexpr's (it evaluates both);
            // a missing value in the branch not taken is not read (a
            // register's value, else the event's own).
            if matches!(x, Val::Error) || matches!(y, Val::Error) {
                *out = Val::Error;
                return;
            }
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
            let mut int_wins = if is_min {
                (best_int as f64) < best_float
            } else {
                (best_int as f64) > best_float
            };
            if near(best_int as f64, best_float) {
                if let Some(w) = exact::int_wins(cx, b, args, best_int, is_min) {
                    int_wins = w;
                }
            }
            *out = if int_wins {
                Val::Int(best_int)
            } else {
                Val::Float(best_float)
            };
        }
        Op::FloatFn(f, xs) => {
            *out = match operand!(b, *xs, out).as_number() {
                Some(x) => Val::Float(match f {
                    FloatFn::Floor | FloatFn::Ceil | FloatFn::Round => {
                        let r = match f {
                            FloatFn::Floor => x.floor(),
                            FloatFn::Ceil => x.ceil(),
                            _ => x.round(),
                        };
                        // Near a step (an integer; a half for round),
                        // rounding may have moved the operand across it.
                        let step = if *f == FloatFn::Round {
                            x.trunc() + 0.5f64.copysign(x)
                        } else {
                            x.round()
                        };
                        if near(x, step) {
                            exact::float_fn(cx, b, *f, *xs, r)
                        } else {
                            r
                        }
                    }
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
        Op::Contains(l, xs) => {
            let x = operand!(b, *xs, out);
            let same = |c: &Const| match (x, c) {
                (Val::Float(f), Const::Float(c)) if near(*f, *c) => {
                    exact::order(cx, b, Operand::Slot(*xs), Operand::Float(*c))
                        .map_or(f == c, |o| o == Ordering::Equal)
                }
                _ => x.same(c),
            };
            let found = lists
                .get(*l as usize)
                .is_some_and(|l| l.items.iter().any(same));
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

/// `x c y`; `exact` decides two numbers near each other (one a float).
#[inline]
fn compare_exactly(c: Cmp, x: &Val, y: &Val, exact: impl FnOnce() -> Option<Ordering>) -> Val {
    match floats(x, y) {
        Some((a, b)) => Val::Bool(holds(c, order(a, b, exact))),
        None => compare(c, x, y),
    }
}
