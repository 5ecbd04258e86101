//! Exact decisions where floating point could round the wrong way.
//!
//! Rule authors and data producers write decimals: 24.00 L on a 200 km trip
//! at 10 L/100 km is exactly 20 % over standard, and `fuel_used_l >
//! standard_fuel_l * 1.2` must not hold. In binary floating point it may
//! (`200 * 10 / 100 * 1.2` is 24.000000000000004). The evaluator keeps
//! computing in `f64`, which decides every comparison whose operands are
//! further apart than rounding can move them. When two operands are within
//! rounding distance ([`near`]), it calls this module, which evaluates both
//! operand subtrees again in exact rational arithmetic and compares those.
//!
//! The exact value of
//! - a float *leaf* (a field's value, a rule constant, an entry of a
//!   window) is the decimal of its shortest round-trip representation: what
//!   `format!("{}", f)` prints, which for a reading with up to 15
//!   significant digits is exactly the decimal the producer wrote;
//! - an integer is the integer (integer arithmetic is exact already:
//!   checked, as evalexpr's);
//! - `+ - * / %`, negation, `abs`, `min`, `max`, `if`, `floor`, `ceil`,
//!   `round` and `^` with an integer exponent is computed exactly from the
//!   operands' exact values;
//! - a windowed `sum` or `avg` is recomputed from the window's entries;
//!   `min` and `max` are an entry;
//! - `sqrt`, `ln` and `^` with another exponent are not rational: a
//!   comparison over them stays the `f64` one.
//!
//! A window keeps each event's value as a float. A reading is kept as it
//! is; a computed value (`of: discount_rate`, a derived `1 - quoted /
//! list`) that is rounding noise away from a decimal of up to 8 places (4
//! from 10^7) is kept as that decimal's float when the decimal is exactly
//! its value ([`window_value`]), so that the entry's leaf is the value the
//! event had. Other computed values (a third) are kept as computed.
//!
//! Where `floor`, `ceil`, `round` or `%` are near a step (where rounding
//! could move their result by a whole step), their result is computed
//! exactly too, and so is the choice between an integer and a float that
//! `min` and `max` make.
//!
//! Two leaves compare in `f64` exactly as their decimals do (rounding to
//! the nearest double is monotonic), so a comparison of two leaves never
//! needs this module: it returns at once.
//!
//! Arithmetic is on fractions of 128-bit integers first (no allocation),
//! and on arbitrary-precision fractions when those overflow.

mod number;

use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt::Write as _;

use levee_rules::graph::{Arith, FloatFn, Op, Slot};
use levee_rules::model::AggregateFn;
pub use levee_rules::plan::near;

use crate::value::Val;
use number::{Big, Number, Small};

/// What the exact evaluator reads of the windows of the current event's
/// subject.
pub trait Windows {
    /// Calls `f` with the value of every entry aggregate `a` of the event
    /// type folds for the current event (the current event's own value
    /// included), and returns the aggregate's function; `None` where that
    /// is not known.
    fn entries(&self, a: u32, buf: &[Val], f: &mut dyn FnMut(f64)) -> Option<AggregateFn>;
}

/// No windows: an aggregate is not recomputed.
#[derive(Debug, Clone, Copy)]
pub struct NoWindows;

impl Windows for NoWindows {
    fn entries(&self, _: u32, _: &[Val], _: &mut dyn FnMut(f64)) -> Option<AggregateFn> {
        None
    }
}

/// What an exact evaluation reads besides the buffer: the program's
/// operations (by node index), where nodes start in the buffer, and the
/// windows.
#[derive(Debug, Clone, Copy)]
pub struct Cx<'a, W: ?Sized> {
    pub ops: &'a [Op],
    pub n_fields: u32,
    pub windows: &'a W,
}

/// One side of a comparison: a slot, or a constant inlined in the code.
#[derive(Debug, Clone, Copy)]
pub enum Operand {
    Slot(Slot),
    Float(f64),
    Int(i64),
}

/// Why an exact evaluation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// 128 bits were not enough: try again with arbitrary precision.
    Overflow,
    /// Not a rational number (`sqrt`, a division by zero, no value...):
    /// the `f64` result stands.
    Inexact,
}

type R<N> = Result<N, Stop>;

/// Nodes an evaluation may visit before giving up (an expression that
/// large keeps its `f64` result).
const BUDGET: u32 = 256;

/// Integers up to 2^53 are exact as `f64`.
pub(crate) const EXACT_INT: u64 = 1 << 53;

/// The exact ordering of `x` and `y`; `None` where their `f64` ordering is
/// exact already (two leaves) or no exact ordering is known.
#[cold]
#[inline(never)]
pub fn order<W: Windows + ?Sized>(
    cx: &Cx<'_, W>,
    buf: &[Val],
    x: Operand,
    y: Operand,
) -> Option<Ordering> {
    let e = Eval::new(cx, buf);
    if e.is_leaf(x) && e.is_leaf(y) {
        return None;
    }
    let small = |e: &Eval<'_, '_, W>| -> R<Ordering> {
        let (a, b) = (e.operand::<Small>(x)?, e.operand::<Small>(y)?);
        a.cmp(&b).ok_or(Stop::Overflow)
    };
    let big = |e: &Eval<'_, '_, W>| -> R<Ordering> {
        let (a, b) = (e.operand::<Big>(x)?, e.operand::<Big>(y)?);
        a.cmp(&b).ok_or(Stop::Inexact)
    };
    e.either(small, big)
}

/// `floor`, `ceil` or `round` of slot `x`, whose `f64` result is `r`:
/// exactly when the operand is computed and near a step, else `r`.
#[cold]
#[inline(never)]
pub fn float_fn<W: Windows + ?Sized>(
    cx: &Cx<'_, W>,
    buf: &[Val],
    f: FloatFn,
    x: Slot,
    r: f64,
) -> f64 {
    let e = Eval::new(cx, buf);
    if e.is_leaf(Operand::Slot(x)) {
        return r;
    }
    fn go<N: Number, W: Windows + ?Sized>(
        e: &Eval<'_, '_, W>,
        f: FloatFn,
        x: Slot,
        r: f64,
    ) -> R<f64> {
        let v = e.slot::<N>(x)?;
        let q = match f {
            FloatFn::Floor => v.floor(),
            FloatFn::Ceil => v.ceil(),
            FloatFn::Round => v.round(),
            FloatFn::Sqrt | FloatFn::Ln => return Err(Stop::Inexact),
        }
        .ok_or(Stop::Overflow)?;
        e.result(q, r)
    }
    e.either(|e| go::<Small, W>(e, f, x, r), |e| go::<Big, W>(e, f, x, r))
        .unwrap_or(r)
}

/// `x % y` of two slots, whose `f64` result is `r` (near a step: near zero
/// or near `y`): `r` if the float division took as many whole steps as the
/// exact one, else the exact remainder.
#[cold]
#[inline(never)]
pub fn rem<W: Windows + ?Sized>(cx: &Cx<'_, W>, buf: &[Val], x: Slot, y: Slot, r: f64) -> f64 {
    fn go<N: Number, W: Windows + ?Sized>(e: &Eval<'_, '_, W>, x: Slot, y: Slot, r: f64) -> R<f64> {
        let (a, b) = (e.slot::<N>(x)?, e.slot::<N>(y)?);
        if b.is_zero() {
            return Err(Stop::Inexact);
        }
        let number = |s: Slot| e.buf.get(s as usize).and_then(Val::as_number);
        let (fx, fy) = (
            number(x).ok_or(Stop::Inexact)?,
            number(y).ok_or(Stop::Inexact)?,
        );
        let steps = leaf::<N>(((fx - r) / fy).round())?;
        let exact = a.div(&b).and_then(|q| q.trunc()).ok_or(Stop::Overflow)?;
        if steps.cmp(&exact) == Some(Ordering::Equal) {
            return Ok(r);
        }
        Ok(a.rem(&b).ok_or(Stop::Overflow)?.to_f64())
    }
    let e = Eval::new(cx, buf);
    e.either(|e| go::<Small, W>(e, x, y, r), |e| go::<Big, W>(e, x, y, r))
        .unwrap_or(r)
}

/// Whether `min` (`max` unless `is_min`) of `args` is the integer
/// `best_int` rather than the best of its float arguments: evalexpr's
/// `best_int < best_float`, decided exactly (the two are near).
#[cold]
#[inline(never)]
pub fn int_wins<W: Windows + ?Sized>(
    cx: &Cx<'_, W>,
    buf: &[Val],
    args: &[Slot],
    best_int: i64,
    is_min: bool,
) -> Option<bool> {
    fn go<N: Number, W: Windows + ?Sized>(
        e: &Eval<'_, '_, W>,
        args: &[Slot],
        best_int: i64,
        is_min: bool,
    ) -> R<bool> {
        let best = e.extreme::<N>(args, is_min)?;
        let o = N::int(best_int).cmp(&best).ok_or(Stop::Overflow)?;
        Ok(o == if is_min {
            Ordering::Less
        } else {
            Ordering::Greater
        })
    }
    let e = Eval::new(cx, buf);
    e.either(
        |e| go::<Small, W>(e, args, best_int, is_min),
        |e| go::<Big, W>(e, args, best_int, is_min),
    )
}

/// The value an event adds to a window: `x`, the `f64` value of slot `s`,
/// unless `s` is computed and `x` is rounding noise away from a decimal of
/// up to 8 places (4 from 10^7) that is exactly the slot's value: then
/// that decimal's float (`1 - 0.7` is kept as 0.3, not as
/// 0.30000000000000004).
#[inline]
pub fn window_value(ops: &[Op], n_fields: u32, buf: &[Val], s: Slot, x: f64) -> f64 {
    let computed = s
        .checked_sub(n_fields)
        .is_some_and(|i| !matches!(ops.get(i as usize), Some(Op::Const(_))));
    if !computed {
        return x;
    }
    let a = x.abs();
    let places = if a < 1e7 {
        8
    } else if a < 1e11 {
        4
    } else {
        return x;
    };
    let scale = 10f64.powi(places);
    let n = (x * scale).round();
    // n / scale is the float nearest the decimal n × 10^-places.
    let d = n / scale;
    // Rounding noise is relative to the operands, not to the result: `1 -
    // 99.99 / 100` is 1e-4 with an error of 1e-16, 1e-12 of itself. Below
    // 1 the noise allowed is absolute (the exact check below decides).
    if d == x || (d - x).abs() > 1e-12 * a.max(1.0) {
        return x;
    }
    snap(ops, n_fields, buf, s, n as i64, -places, d).unwrap_or(x)
}

/// `d` if `m × 10^e` is slot `s`'s exact value.
#[cold]
#[inline(never)]
fn snap(ops: &[Op], n_fields: u32, buf: &[Val], s: Slot, m: i64, e: i32, d: f64) -> Option<f64> {
    fn go<N: Number>(ev: &Eval<'_, '_, NoWindows>, s: Slot, m: i64, e: i32) -> R<bool> {
        let v = ev.slot::<N>(s)?;
        let dec = N::decimal(m, e).ok_or(Stop::Overflow)?;
        Ok(v.cmp(&dec).ok_or(Stop::Overflow)? == Ordering::Equal)
    }
    let cx = Cx {
        ops,
        n_fields,
        windows: &NoWindows,
    };
    let ev = Eval::new(&cx, buf);
    ev.either(|ev| go::<Small>(ev, s, m, e), |ev| go::<Big>(ev, s, m, e))
        .and_then(|same| same.then_some(d))
}

/// One exact evaluation over a buffer.
struct Eval<'c, 'b, W: ?Sized> {
    cx: &'c Cx<'c, W>,
    buf: &'b [Val],
    budget: Cell<u32>,
}

impl<'c, 'b, W: Windows + ?Sized> Eval<'c, 'b, W> {
    fn new(cx: &'c Cx<'c, W>, buf: &'b [Val]) -> Self {
        Eval {
            cx,
            buf,
            budget: Cell::new(BUDGET),
        }
    }

    /// Runs `small`, and `big` if `small` overflowed.
    fn either<T>(&self, small: impl Fn(&Self) -> R<T>, big: impl Fn(&Self) -> R<T>) -> Option<T> {
        match small(self) {
            Err(Stop::Overflow) => {
                self.budget.set(BUDGET);
                big(self).ok()
            }
            r => r.ok(),
        }
    }

    /// Whether an operand's `f64` value is its exact value: a float leaf,
    /// or an integer exact as a float.
    fn is_leaf(&self, o: Operand) -> bool {
        match o {
            Operand::Float(_) => true,
            Operand::Int(i) => i.unsigned_abs() <= EXACT_INT,
            Operand::Slot(s) => match self.buf.get(s as usize) {
                Some(Val::Int(i)) => i.unsigned_abs() <= EXACT_INT,
                Some(Val::Float(_)) => match s.checked_sub(self.cx.n_fields) {
                    None => true,
                    // A table's value is a reading, as a field's is.
                    Some(i) => matches!(
                        self.cx.ops.get(i as usize),
                        Some(Op::Const(_) | Op::Lookup(..))
                    ),
                },
                _ => false,
            },
        }
    }

    fn operand<N: Number>(&self, o: Operand) -> R<N> {
        match o {
            Operand::Slot(s) => self.slot(s),
            Operand::Float(f) => leaf(f),
            Operand::Int(i) => Ok(N::int(i)),
        }
    }

    /// The `f64` result `r` if it is the exact result `q`, else the float
    /// nearest `q` (so that a result the float had right keeps its bits,
    /// `-0.0` included).
    fn result<N: Number>(&self, q: N, r: f64) -> R<f64> {
        match leaf::<N>(r) {
            Ok(v) if v.cmp(&q) == Some(Ordering::Equal) => Ok(r),
            _ => Ok(q.to_f64()),
        }
    }

    /// The exact value of a slot.
    fn slot<N: Number>(&self, s: Slot) -> R<N> {
        let left = self.budget.get().checked_sub(1).ok_or(Stop::Inexact)?;
        self.budget.set(left);
        let f = match self.buf.get(s as usize) {
            Some(Val::Int(i)) => return Ok(N::int(*i)),
            Some(Val::Float(f)) => *f,
            _ => return Err(Stop::Inexact),
        };
        let Some(i) = s.checked_sub(self.cx.n_fields) else {
            return leaf(f);
        };
        let overflow = |v: Option<N>| v.ok_or(Stop::Overflow);
        match self.cx.ops.get(i as usize).ok_or(Stop::Inexact)? {
            Op::Const(_) | Op::Lookup(..) => leaf(f),
            Op::Arith(a, x, y) => {
                let (x, y) = (self.slot::<N>(*x)?, self.slot::<N>(*y)?);
                if matches!(a, Arith::Div | Arith::Mod) && y.is_zero() {
                    return Err(Stop::Inexact);
                }
                overflow(match a {
                    Arith::Add => x.add(&y),
                    Arith::Sub => x.sub(&y),
                    Arith::Mul => x.mul(&y),
                    Arith::Div => x.div(&y),
                    Arith::Mod => x.rem(&y),
                })
            }
            Op::Neg(x) => overflow(self.slot::<N>(*x)?.neg()),
            Op::Abs(x) => overflow(self.slot::<N>(*x)?.abs()),
            Op::Pow(x, y) => {
                let (x, y) = (self.slot::<N>(*x)?, self.slot::<N>(*y)?);
                match y.to_i32() {
                    Some(n) if n.unsigned_abs() <= 64 && !(n < 0 && x.is_zero()) => {
                        overflow(x.pow(n))
                    }
                    _ => Err(Stop::Inexact),
                }
            }
            Op::If(c, x, y) => match self.buf.get(*c as usize) {
                Some(Val::Bool(true)) => self.slot(*x),
                Some(Val::Bool(false)) => self.slot(*y),
                _ => Err(Stop::Inexact),
            },
            Op::Min(args) => self.extreme(args, true),
            Op::Max(args) => self.extreme(args, false),
            Op::FloatFn(func, x) => {
                let x = self.slot::<N>(*x)?;
                overflow(match func {
                    FloatFn::Floor => x.floor(),
                    FloatFn::Ceil => x.ceil(),
                    FloatFn::Round => x.round(),
                    FloatFn::Sqrt | FloatFn::Ln => return Err(Stop::Inexact),
                })
            }
            Op::Aggregate(a) => self.aggregate(*a, f),
            _ => Err(Stop::Inexact),
        }
    }

    /// The least (greatest unless `is_min`) exact value of the float
    /// arguments: the float `min`/`max` keeps beside the best integer.
    fn extreme<N: Number>(&self, args: &[Slot], is_min: bool) -> R<N> {
        let mut best: Option<N> = None;
        for &s in args {
            if !matches!(self.buf.get(s as usize), Some(Val::Float(_))) {
                continue;
            }
            let v = self.slot::<N>(s)?;
            best = Some(match best {
                None => v,
                Some(b) => {
                    let o = v.cmp(&b).ok_or(Stop::Overflow)?;
                    let better = if is_min {
                        o == Ordering::Less
                    } else {
                        o == Ordering::Greater
                    };
                    if better {
                        v
                    } else {
                        b
                    }
                }
            });
        }
        best.ok_or(Stop::Inexact)
    }

    /// A windowed aggregate whose `f64` value is `f`: a sum or an average
    /// recomputed from the window's entries; a minimum or maximum is an
    /// entry.
    fn aggregate<N: Number>(&self, a: u32, f: f64) -> R<N> {
        let mut sum = N::int(0);
        let mut n = 0i64;
        let mut stop = None;
        let func = self.cx.windows.entries(a, self.buf, &mut |x| {
            if stop.is_some() {
                return;
            }
            match leaf::<N>(x).and_then(|v| sum.add(&v).ok_or(Stop::Overflow)) {
                Ok(s) => {
                    sum = s;
                    n += 1;
                }
                Err(e) => stop = Some(e),
            }
        });
        match func {
            Some(AggregateFn::Min | AggregateFn::Max) => leaf(f),
            Some(_) if stop.is_some() => Err(stop.unwrap_or(Stop::Inexact)),
            Some(AggregateFn::Sum) => Ok(sum),
            Some(AggregateFn::Avg) if n > 0 => sum.div(&N::int(n)).ok_or(Stop::Overflow),
            _ => Err(Stop::Inexact),
        }
    }
}

/// The exact value of a float leaf: the decimal of its shortest round-trip
/// representation.
fn leaf<N: Number>(f: f64) -> R<N> {
    let (m, e) = shortest(f).ok_or(Stop::Inexact)?;
    N::decimal(m, e).ok_or(Stop::Overflow)
}

/// `f` as `m × 10^e`, `m` its shortest round-trip digits (at most 17).
pub fn shortest(f: f64) -> Option<(i64, i32)> {
    if !f.is_finite() {
        return None;
    }
    // Readings and constants have few places: the fewest places `k` whose
    // nearest decimal rounds to `f` give its shortest digits, while
    // `f × 10^k` is well inside 2^52 (so that rounding it finds that
    // decimal, the only one of `k` places that rounds to `f`).
    let mut scale = 1.0;
    for k in 0..=8 {
        let s = f * scale;
        if s.abs() >= 1e15 {
            break;
        }
        let n = s.round();
        if n / scale == f {
            return Some((n as i64, -k));
        }
        scale *= 10.0;
    }
    let mut text = StackText::default();
    write!(text, "{f:e}").ok()?;
    let (mantissa, exp) = text.as_str()?.split_once('e')?;
    let mut e: i32 = exp.parse().ok()?;
    let mut m: i64 = 0;
    let mut after_point = false;
    for c in mantissa.bytes() {
        match c {
            b'0'..=b'9' => {
                m = m.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
                if after_point {
                    e -= 1;
                }
            }
            b'.' => after_point = true,
            _ => {}
        }
    }
    Some((if mantissa.starts_with('-') { -m } else { m }, e))
}

/// A short text on the stack (a number's digits).
#[derive(Debug, Default)]
pub(crate) struct StackText {
    bytes: [u8; 32],
    len: usize,
}

impl StackText {
    pub(crate) fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes[..self.len]).ok()
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
