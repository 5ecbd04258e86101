//! The near-equal decision, on hand-made programs: fields first, then nodes
//! whose `f64` values the tests compute as the evaluator does.

use std::cmp::Ordering;

use levee_rules::graph::{Arith, Const, FloatFn, Op, Slot};
use levee_rules::model::AggregateFn;

use super::*;

/// A program under construction: its operations and its buffer.
struct Prog {
    n_fields: u32,
    ops: Vec<Op>,
    buf: Vec<Val>,
}

impl Prog {
    fn new(fields: &[Val]) -> Prog {
        Prog {
            n_fields: fields.len() as u32,
            ops: Vec::new(),
            buf: fields.to_vec(),
        }
    }

    /// Appends a node with its value; returns its slot.
    fn node(&mut self, op: Op, v: Val) -> Slot {
        self.ops.push(op);
        self.buf.push(v);
        self.buf.len() as Slot - 1
    }

    fn float(&self, s: Slot) -> f64 {
        match self.buf[s as usize] {
            Val::Float(f) => f,
            Val::Int(i) => i as f64,
            ref v => panic!("{v:?}"),
        }
    }

    fn arith(&mut self, a: Arith, x: Slot, y: Slot) -> Slot {
        let (fx, fy) = (self.float(x), self.float(y));
        let v = match a {
            Arith::Add => fx + fy,
            Arith::Sub => fx - fy,
            Arith::Mul => fx * fy,
            Arith::Div => fx / fy,
            Arith::Mod => fx % fy,
        };
        self.node(Op::Arith(a, x, y), Val::Float(v))
    }

    fn float_const(&mut self, c: f64) -> Slot {
        self.node(Op::Const(Const::Float(c)), Val::Float(c))
    }

    fn int_const(&mut self, c: i64) -> Slot {
        self.node(Op::Const(Const::Int(c)), Val::Int(c))
    }

    fn cx<'a, W: Windows>(&'a self, w: &'a W) -> Cx<'a, W> {
        Cx {
            ops: &self.ops,
            n_fields: self.n_fields,
            windows: w,
        }
    }
}

/// VF-001 on a trip: fuel, distance, standard; returns the program and
/// the slot of `standard_fuel_l * 1.2`.
fn vf001(fuel: f64, km: f64, per_100: f64) -> (Prog, Slot) {
    let mut p = Prog::new(&[Val::Float(fuel), Val::Float(km), Val::Float(per_100)]);
    let prod = p.arith(Arith::Mul, 1, 2);
    let hundred = p.int_const(100);
    let standard = p.arith(Arith::Div, prod, hundred);
    let k = p.float_const(1.2);
    let limit = p.arith(Arith::Mul, standard, k);
    (p, limit)
}

#[test]
fn near_is_rounding_distance() {
    assert!(near(24.000000000000004, 24.0));
    assert!(near(499_999.999_999_999_94, 500_000.0));
    assert!(near(0.1 + 0.2, 0.3));
    assert!(near(0.0, -0.0));
    // A difference of values of about 10^9 keeps its rounding error inside.
    assert!(near(1_000_000_000.1 - 1_000_000_000.0, 0.1));
    // The next decimal with four places is far.
    assert!(!near(24.0001, 24.0));
    assert!(!near(500_000.01, 500_000.0));
    assert!(!near(0.15, 0.1501));
    assert!(!near(f64::NAN, f64::NAN));
    assert!(!near(f64::INFINITY, f64::INFINITY));
    assert!(!near(f64::NAN, 1.0));
}

#[test]
fn shortest_is_the_decimal_written() {
    assert_eq!(shortest(24.0), Some((24, 0)));
    assert_eq!(shortest(24.01), Some((2401, -2)));
    assert_eq!(shortest(0.1), Some((1, -1)));
    assert_eq!(shortest(-1234.5678), Some((-12345678, -4)));
    assert_eq!(shortest(0.1 + 0.2), Some((30000000000000004, -17)));
    assert_eq!(shortest(1e300), Some((1, 300)));
    assert_eq!(shortest(5e-324), Some((5, -324)));
    assert_eq!(shortest(-0.0), Some((0, 0)));
    assert_eq!(shortest(2400.0), Some((2400, 0)));
    assert_eq!(shortest(f64::NAN), None);
    assert_eq!(shortest(f64::INFINITY), None);
}

#[test]
fn shortest_is_what_rust_prints() {
    // The few-places search and the formatter agree, on decimals of up to
    // 8 places and on arbitrary bits.
    let mut seed: u64 = 7;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed
    };
    for i in 0..20_000 {
        let f = if i % 2 == 0 {
            let m = (next() >> 20) as i64 - (1 << 43);
            m as f64 / 10f64.powi((next() % 9) as i32)
        } else {
            f64::from_bits(next())
        };
        if !f.is_finite() {
            continue;
        }
        // The formatter's digits and exponent, trailing zeros dropped.
        let text = format!("{f:e}");
        let (mantissa, exp) = text.split_once('e').unwrap();
        let digits = mantissa.replace(['-', '.'], "");
        let want_e = exp.parse::<i32>().unwrap() - (digits.len() as i32 - 1);
        let want = normal(digits.parse::<i64>().unwrap(), want_e);
        let (m, e) = shortest(f).unwrap();
        assert_eq!(normal(m.abs(), e), want, "{text}");
        assert_eq!(m < 0, f.is_sign_negative() && m != 0, "{text}");
    }
}

/// `m × 10^e` without trailing zeros in `m`.
fn normal(mut m: i64, mut e: i32) -> (i64, i32) {
    while m != 0 && m % 10 == 0 {
        m /= 10;
        e += 1;
    }
    if m == 0 {
        e = 0;
    }
    (m, e)
}

#[test]
fn exactly_twenty_percent_over_is_not_more() {
    // 14.4 L on 200 km at 6 L/100 km: the float limit is 14.399999999999999,
    // and 14.4 is more...
    let (p, limit) = vf001(14.4, 200.0, 6.0);
    assert!(p.float(0) > p.float(limit), "{}", p.float(limit));
    // ...exactly it is equal.
    let cx = p.cx(&NoWindows);
    let o = order(&cx, &p.buf, Operand::Slot(0), Operand::Slot(limit));
    assert_eq!(o, Some(Ordering::Equal));
    // 24 L on 200 km at 10 L/100 km: equal either way.
    let (p, limit) = vf001(24.0, 200.0, 10.0);
    let o = order(
        &p.cx(&NoWindows),
        &p.buf,
        Operand::Slot(0),
        Operand::Slot(limit),
    );
    assert_eq!(o, Some(Ordering::Equal));
    // And 14.41 is more, either way.
    let (p, limit) = vf001(14.41, 200.0, 6.0);
    let o = order(
        &p.cx(&NoWindows),
        &p.buf,
        Operand::Slot(0),
        Operand::Slot(limit),
    );
    assert_eq!(o, Some(Ordering::Greater));
    // Against an inlined constant as well.
    let (p, limit) = vf001(0.0, 200.0, 6.0);
    let o = order(
        &p.cx(&NoWindows),
        &p.buf,
        Operand::Slot(limit),
        Operand::Float(14.4),
    );
    assert_eq!(o, Some(Ordering::Equal));
    let (p, limit) = vf001(0.0, 250.0, 8.0);
    let o = order(
        &p.cx(&NoWindows),
        &p.buf,
        Operand::Slot(limit),
        Operand::Int(24),
    );
    assert_eq!(o, Some(Ordering::Equal));
}

#[test]
fn leaves_are_left_to_the_float_comparison() {
    let p = Prog::new(&[Val::Float(24.0), Val::Int(24), Val::Int(i64::MAX)]);
    let cx = p.cx(&NoWindows);
    assert_eq!(
        order(&cx, &p.buf, Operand::Slot(0), Operand::Float(24.0)),
        None
    );
    assert_eq!(order(&cx, &p.buf, Operand::Slot(1), Operand::Slot(0)), None);
    // An integer beyond 2^53 is not exact as a float: decided exactly.
    assert_eq!(
        order(
            &cx,
            &p.buf,
            Operand::Slot(2),
            Operand::Float(i64::MAX as f64)
        ),
        Some(Ordering::Less)
    );
}

/// Windows of one aggregate with the given entries.
struct Entries(AggregateFn, Vec<f64>);

impl Windows for Entries {
    fn entries(&self, _: u32, _: &[Val], f: &mut dyn FnMut(f64)) -> Option<AggregateFn> {
        self.1.iter().for_each(|x| f(*x));
        Some(self.0)
    }
}

#[test]
fn window_sums_and_averages_are_recomputed_from_their_entries() {
    let entries = vec![301_648.35, 158_459.21, 39_892.44];
    let sum: f64 = entries.iter().sum();
    assert_ne!(sum, 500_000.0, "the float sum is off");
    let mut p = Prog::new(&[]);
    let total = p.node(Op::Aggregate(0), Val::Float(sum));
    let w = Entries(AggregateFn::Sum, entries.clone());
    let o = order(
        &p.cx(&w),
        &p.buf,
        Operand::Slot(total),
        Operand::Int(500_000),
    );
    assert_eq!(o, Some(Ordering::Equal));

    let mut p = Prog::new(&[]);
    let avg = p.node(Op::Aggregate(0), Val::Float(sum / 3.0));
    let w = Entries(AggregateFn::Avg, entries);
    let third = 500_000.0 / 3.0;
    let mut q = p;
    let k = q.float_const(3.0);
    let times = q.arith(Arith::Mul, avg, k);
    let o = order(
        &q.cx(&w),
        &q.buf,
        Operand::Slot(times),
        Operand::Float(500_000.0),
    );
    assert_eq!(o, Some(Ordering::Equal), "{third}");

    // Without windows, an aggregate keeps its float comparison.
    let o = order(
        &q.cx(&NoWindows),
        &q.buf,
        Operand::Slot(times),
        Operand::Float(500_000.0),
    );
    assert_eq!(o, None);
}

#[test]
fn steps_are_taken_exactly() {
    // (0.7 + 0.1) * 10 is 7.999999999999999 in floats, 8 exactly.
    let mut p = Prog::new(&[Val::Float(0.7), Val::Float(0.1)]);
    let s = p.arith(Arith::Add, 0, 1);
    let ten = p.int_const(10);
    let x = p.arith(Arith::Mul, s, ten);
    let fx = p.float(x);
    assert_eq!(fx.floor(), 7.0);
    let cx = p.cx(&NoWindows);
    assert_eq!(float_fn(&cx, &p.buf, FloatFn::Floor, x, fx.floor()), 8.0);
    assert_eq!(float_fn(&cx, &p.buf, FloatFn::Ceil, x, fx.ceil()), 8.0);
    assert_eq!(float_fn(&cx, &p.buf, FloatFn::Round, x, fx.round()), 8.0);
    // A float leaf's step is exact already.
    assert_eq!(float_fn(&cx, &p.buf, FloatFn::Floor, 0, 0.0), 0.0);
    // sqrt is not rational: its float stands.
    assert_eq!(float_fn(&cx, &p.buf, FloatFn::Sqrt, x, 1.5), 1.5);
    // A result the float had right keeps its bits.
    let mut q = Prog::new(&[Val::Float(-0.3), Val::Float(0.0)]);
    let y = q.arith(Arith::Add, 0, 1);
    assert_eq!(
        float_fn(&q.cx(&NoWindows), &q.buf, FloatFn::Ceil, y, -0.0).to_bits(),
        (-0.0f64).to_bits()
    );

    // 0.3 % 0.1 is 0.09999999999999998 in floats, 0 exactly.
    let p = Prog::new(&[Val::Float(0.3), Val::Float(0.1)]);
    let r = 0.3 % 0.1;
    assert!(near(r, 0.1));
    assert_eq!(rem(&p.cx(&NoWindows), &p.buf, 0, 1, r), 0.0);
    let p = Prog::new(&[Val::Float(-7.5), Val::Float(2.0)]);
    assert_eq!(rem(&p.cx(&NoWindows), &p.buf, 0, 1, -1.5), -1.5);
}

#[test]
fn min_and_max_choose_between_integer_and_float_exactly() {
    // min(7, 0.07 * 100): the float is 7.000000000000001, exactly 7; the
    // integer wins only if it is less, so the float does.
    let mut p = Prog::new(&[Val::Float(0.07), Val::Int(7)]);
    let hundred = p.int_const(100);
    let x = p.arith(Arith::Mul, 0, hundred);
    assert!(7.0 < p.float(x));
    let cx = p.cx(&NoWindows);
    assert_eq!(int_wins(&cx, &p.buf, &[1, x], 7, true), Some(false));
    assert_eq!(int_wins(&cx, &p.buf, &[1, x], 7, false), Some(false));
    assert_eq!(int_wins(&cx, &p.buf, &[1, x], 8, false), Some(true));
    // The exact value of min over floats is the least of them.
    let m = p.node(Op::Min(vec![0, x].into()), Val::Float(0.07));
    let o = order(
        &p.cx(&NoWindows),
        &p.buf,
        Operand::Slot(m),
        Operand::Float(0.07),
    );
    assert_eq!(o, Some(Ordering::Equal));
    let m = p.node(Op::Max(vec![0, x].into()), Val::Float(p.float(x)));
    let o = order(&p.cx(&NoWindows), &p.buf, Operand::Slot(m), Operand::Int(7));
    assert_eq!(o, Some(Ordering::Equal));
}

#[test]
fn what_overflows_128_bits_is_still_exact() {
    // (a * b * c * d) / (b * c * d) == a, with values of 17 digits.
    let vals = [
        123_456_789.012_345_67,
        9.876_543_210_987_654e-5,
        1.234_567_890_123_45e7,
        3.3,
    ];
    let mut p = Prog::new(&vals.map(Val::Float));
    let ab = p.arith(Arith::Mul, 0, 1);
    let abc = p.arith(Arith::Mul, ab, 2);
    let abcd = p.arith(Arith::Mul, abc, 3);
    let bc = p.arith(Arith::Mul, 1, 2);
    let bcd = p.arith(Arith::Mul, bc, 3);
    let q = p.arith(Arith::Div, abcd, bcd);
    let o = order(
        &p.cx(&NoWindows),
        &p.buf,
        Operand::Slot(q),
        Operand::Slot(0),
    );
    assert_eq!(o, Some(Ordering::Equal));
}

#[test]
fn what_is_not_rational_is_not_decided() {
    let mut p = Prog::new(&[Val::Float(2.0)]);
    let r = p.node(Op::FloatFn(FloatFn::Sqrt, 0), Val::Float(2f64.sqrt()));
    let sq = p.arith(Arith::Mul, r, r);
    let o = order(
        &p.cx(&NoWindows),
        &p.buf,
        Operand::Slot(sq),
        Operand::Float(2.0),
    );
    assert_eq!(o, None);
    // Division by zero neither.
    let mut p = Prog::new(&[Val::Float(1.0), Val::Float(0.0)]);
    let d = p.arith(Arith::Div, 0, 1);
    let o = order(
        &p.cx(&NoWindows),
        &p.buf,
        Operand::Slot(d),
        Operand::Float(1.0),
    );
    assert_eq!(o, None);
}
