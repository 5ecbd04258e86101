//! Comparisons and windowed aggregates agree with exact decimal arithmetic.
//!
//! Readings and rule constants are decimals with up to 4 places, written in
//! the event's JSON and the rule's text as a producer and an author write
//! them. The oracle computes every expression in arbitrary-precision
//! fractions from those decimal texts (no float anywhere); the compiled
//! evaluator must reach the same verdict for every comparison, including
//! the cases generated to lie exactly on the threshold, where `f64` alone
//! often does not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Ordering;
use std::sync::Arc;

use levee_engine::{Engine, Val};
use levee_rules::{compile, RuleSources};
use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, Zero};
use proptest::prelude::*;

type Q = BigRational;

/// `m / 10^k`, written with `k` decimals (and `.0` for a float constant
/// without any).
#[derive(Debug, Clone)]
struct Dec {
    m: i64,
    k: u32,
}

impl Dec {
    fn q(&self) -> Q {
        Q::new(
            BigInt::from(self.m),
            num_traits::pow(BigInt::from(10), self.k as usize),
        )
    }

    fn text(&self) -> String {
        let digits = self.m.unsigned_abs().to_string();
        let k = self.k as usize;
        let padded = format!("{digits:0>width$}", width = k + 1);
        let (whole, frac) = padded.split_at(padded.len() - k);
        let sign = if self.m < 0 { "-" } else { "" };
        if k == 0 {
            format!("{sign}{whole}")
        } else {
            format!("{sign}{whole}.{frac}")
        }
    }

    /// As a float literal in a rule (`12.0`, not the integer `12`).
    fn float_text(&self) -> String {
        let t = self.text();
        if t.contains('.') {
            t
        } else {
            format!("{t}.0")
        }
    }

    /// The decimal `q` is, if it has at most 4 places and fits.
    fn of(q: &Q) -> Option<Dec> {
        let scaled = q * Q::from_integer(BigInt::from(10_000));
        if !scaled.is_integer() {
            return None;
        }
        let m: i64 = scaled.to_integer().try_into().ok()?;
        let mut d = Dec { m, k: 4 };
        while d.k > 0 && d.m % 10 == 0 {
            d = Dec {
                m: d.m / 10,
                k: d.k - 1,
            };
        }
        Some(d)
    }

    /// `q` rounded down to 4 places, moved by `steps` ten-thousandths.
    fn near(q: &Q, steps: i64) -> Option<Dec> {
        let scaled = (q * Q::from_integer(BigInt::from(10_000))).floor();
        let m: i64 = scaled.to_integer().try_into().ok()?;
        Some(Dec {
            m: m.checked_add(steps)?,
            k: 4,
        })
    }
}

/// A reading or constant of realistic size (kilometres, litres, rates,
/// prices): up to 10^6, with up to 4 places.
fn dec() -> impl Strategy<Value = Dec> {
    decimal(prop_oneof![
        0i64..100,
        0i64..10_000,
        0i64..1_000_000,
        -10_000i64..10_000
    ])
}

/// An amount of money: up to 10^7.
fn amount() -> impl Strategy<Value = Dec> {
    decimal(prop_oneof![
        0i64..10_000,
        0i64..10_000_000,
        -1_000_000i64..1_000_000
    ])
}

/// A decimal whose whole part is drawn from `whole`, with up to 4 places.
fn decimal(whole: impl Strategy<Value = i64>) -> impl Strategy<Value = Dec> {
    (0u32..=4, whole).prop_flat_map(|(k, whole)| {
        let p = 10i64.pow(k);
        (0..p).prop_map(move |frac| Dec {
            m: whole * p + if whole < 0 { -frac } else { frac },
            k,
        })
    })
}

/// An expression over readings `r1`..`r3` and float constants.
#[derive(Debug, Clone)]
enum E {
    Reading(usize),
    Const(Dec),
    Op(char, Box<E>, Box<E>),
}

impl E {
    fn text(&self) -> String {
        match self {
            E::Reading(i) => format!("r{i}"),
            E::Const(d) => d.float_text(),
            E::Op(o, a, b) => format!("({} {o} {})", a.text(), b.text()),
        }
    }

    /// The exact value, `None` on a division by zero or where a value
    /// in the expression is 10^9 or more in magnitude (the bound within
    /// which levee is exact: see `levee_rules::plan::NEAR_ABS`).
    fn q(&self, r: &[Dec]) -> Option<Q> {
        let v = match self {
            E::Reading(i) => r[*i].q(),
            E::Const(d) => d.q(),
            E::Op(o, a, b) => {
                let (a, b) = (a.q(r)?, b.q(r)?);
                match o {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    _ if b.is_zero() => return None,
                    _ => a / b,
                }
            }
        };
        (v.abs() < Q::from_integer(BigInt::from(1_000_000_000))).then_some(v)
    }
}

/// The shapes of VF-001: products, quotients, sums (and differences) of
/// readings and constants.
fn expr() -> impl Strategy<Value = E> {
    let leaf = prop_oneof![
        3 => (1usize..4).prop_map(E::Reading),
        2 => dec().prop_map(E::Const),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        (
            prop::sample::select(vec!['*', '*', '/', '+', '-']),
            inner.clone(),
            inner,
        )
            .prop_map(|(o, a, b)| E::Op(o, Box::new(a), Box::new(b)))
    })
}

const CMPS: [&str; 6] = [">", ">=", "<", "<=", "==", "!="];

fn holds(cmp: &str, o: Ordering) -> bool {
    match cmp {
        ">" => o.is_gt(),
        ">=" => o.is_ge(),
        "<" => o.is_lt(),
        "<=" => o.is_le(),
        "==" => o.is_eq(),
        _ => o.is_ne(),
    }
}

const SCHEMA: &str = r#"
event_types:
  t:
    stream: s
    subject: who
    fields:
      who: { type: string, required: true }
      r0: { type: number, required: true }
      r1: { type: number, required: true }
      r2: { type: number, required: true }
      r3: { type: number, required: true }
"#;

/// Compiles `cond` as a derived value (shown by a control point that
/// always fires) and as a control point's condition (decided through the
/// threshold index and the lowered comparisons), evaluates it on readings
/// `r`, and returns (the value, whether the control point fired).
fn evaluate(cond: &str, r: &[Dec]) -> (Val, bool) {
    let quoted = cond.replace('\'', "''");
    let rules = format!(
        "{SCHEMA}    derived:\n      x: '{quoted}'\ncontrol_points:\n  - {{id: X-0, domain: d, title: t, event_type: t, when: 'true', tiers: [{{tier: 1, notify: r}}], message: '{{x}}'}}\n  - {{id: X-1, domain: d, title: t, event_type: t, when: '{quoted}', tiers: [{{tier: 1, notify: r}}], message: '{{who}}'}}\n"
    );
    let graph = compile(&RuleSources::from_texts([("t.yaml", rules.as_str())]))
        .unwrap_or_else(|d| panic!("{cond}: {d:?}"))
        .graph;
    let graph = Arc::new(graph);
    let (ti, et) = graph.event_type("t").unwrap();
    let slot = et.derived.iter().find(|(n, _)| n == "x").unwrap().1;
    let mut engine = Engine::new(graph.clone());
    let line = format!(
        r#"{{"event_id":"e","type":"t","occurred_at":"2026-01-01T00:00:00Z","branch":"b","who":"w","r0":{},"r1":{},"r2":{},"r3":{}}}"#,
        r[0].text(),
        r[1].text(),
        r[2].text(),
        r[3].text()
    );
    engine.evaluate(line.as_bytes()).unwrap();
    let x1 = graph
        .control_points
        .iter()
        .position(|c| c.id == "X-1")
        .unwrap() as u32;
    let fired = engine.hits().iter().any(|h| h.control_point == x1);
    (engine.slot(ti, slot).clone(), fired)
}

/// How the reading compared with the expression is chosen.
#[derive(Debug, Clone, Copy)]
enum At {
    /// Exactly the expression's value (where it has at most 4 places).
    Exactly,
    /// The nearest 4-place decimals around it.
    Beside(i64),
    /// Random.
    Anywhere,
}

fn at() -> impl Strategy<Value = At> {
    prop_oneof![
        4 => Just(At::Exactly),
        2 => (-1i64..=1).prop_map(At::Beside),
        1 => Just(At::Anywhere),
    ]
}

fn check(cond: &str, r: &[Dec], want: bool) -> Result<(), TestCaseError> {
    let (got, fired) = evaluate(cond, r);
    let texts: Vec<String> = r.iter().map(Dec::text).collect();
    prop_assert_eq!(&got, &Val::Bool(want), "{} on {:?}", cond, texts);
    prop_assert_eq!(fired, want, "{} on {:?}: fired", cond, texts);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1500,
        max_global_rejects: 100_000,
        ..ProptestConfig::default()
    })]

    /// `r0 cmp expr` (and turned around), `r0` generated on the threshold
    /// the expression draws, beside it, or anywhere.
    #[test]
    fn a_reading_against_an_expression(
        e in expr(),
        r in prop::collection::vec(dec(), 4),
        at in at(),
        anywhere in dec(),
        cmp in prop::sample::select(CMPS.to_vec()),
        turned in any::<bool>(),
    ) {
        let mut r = r;
        let v = e.q(&r);
        prop_assume!(v.is_some());
        let v = v.unwrap();
        r[0] = match at {
            At::Exactly => Dec::of(&v).or_else(|| Dec::near(&v, 0)),
            At::Beside(s) => Dec::near(&v, s),
            At::Anywhere => Some(anywhere),
        }
        .unwrap_or(r[0].clone());
        let o = r[0].q().cmp(&v);
        let (cond, want) = if turned {
            (format!("{} {cmp} r0", e.text()), holds(cmp, o.reverse()))
        } else {
            (format!("r0 {cmp} {}", e.text()), holds(cmp, o))
        };
        check(&cond, &r, want)?;
    }

    /// `expr cmp constant`, the constant written as a float or an
    /// integer, on the expression's value, beside it, or anywhere.
    #[test]
    fn an_expression_against_a_constant(
        e in expr(),
        r in prop::collection::vec(dec(), 4),
        at in at(),
        anywhere in dec(),
        cmp in prop::sample::select(CMPS.to_vec()),
        integer in any::<bool>(),
    ) {
        let v = e.q(&r);
        prop_assume!(v.is_some());
        let v = v.unwrap();
        let c = match at {
            At::Exactly => Dec::of(&v).or_else(|| Dec::near(&v, 0)),
            At::Beside(s) => Dec::near(&v, s),
            At::Anywhere => Some(anywhere),
        };
        prop_assume!(c.is_some());
        let c = c.unwrap();
        // An integer constant is written as one where it is one.
        let text = if integer && c.q().is_integer() {
            c.q().to_integer().to_string()
        } else {
            c.float_text()
        };
        // `==` with an integer constant is never true of a float (kinds
        // differ, as in evalexpr): not what this test is about.
        prop_assume!(!(text.parse::<i64>().is_ok() && (cmp == "==" || cmp == "!=")));
        let want = holds(cmp, v.cmp(&c.q()));
        check(&format!("{} {cmp} {text}", e.text()), &r, want)?;
    }

    /// Two expressions compared, each over readings and constants.
    #[test]
    fn two_expressions(
        a in expr(),
        b in expr(),
        r in prop::collection::vec(dec(), 4),
        cmp in prop::sample::select(CMPS.to_vec()),
    ) {
        let (x, y) = (a.q(&r), b.q(&r));
        prop_assume!(x.is_some() && y.is_some());
        let want = holds(cmp, x.unwrap().cmp(&y.unwrap()));
        check(&format!("{} {cmp} {}", a.text(), b.text()), &r, want)?;
    }
}

/// Windowed sums and averages against thresholds: after every event, each
/// control point fires exactly when the exact aggregate passes its
/// threshold.
const WINDOWS: &str = r#"
event_types:
  p:
    stream: s
    subject: who
    fields:
      who: { type: string, required: true }
      amount: { type: number, required: true }
control_points:
  - id: SUM-GE
    domain: d
    title: t
    event_type: p
    aggregates:
      total: { fn: sum, of: amount, over: 30d }
    when: total >= LIMIT
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
  - id: SUM-GT
    domain: d
    title: t
    event_type: p
    aggregates:
      total: { fn: sum, of: amount, over: 30d }
    when: total > LIMIT
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
  - id: SUM-LE
    domain: d
    title: t
    event_type: p
    aggregates:
      total: { fn: sum, of: amount, over: 30d }
    when: LIMIT >= total
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
  - id: AVG-GE
    domain: d
    title: t
    event_type: p
    aggregates:
      mean: { fn: avg, of: amount, over: 30d }
    when: mean >= MEAN
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
  - id: AVG-LT
    domain: d
    title: t
    event_type: p
    aggregates:
      mean: { fn: avg, of: amount, over: 30d }
    when: mean < MEAN
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
  - id: AVG-N
    domain: d
    title: t
    event_type: p
    aggregates:
      mean: { fn: avg, of: amount, over: 30d }
      n: { fn: count, over: 30d }
    when: mean * n >= LIMIT
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
"#;

/// What the windows test aims the thresholds at.
#[derive(Debug, Clone, Copy)]
enum Aim {
    /// The last amount makes the sum exactly the limit.
    Sum,
    /// The last amount makes the average exactly the mean threshold.
    Mean,
    Free,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn window_sums_and_averages(
        first in prop::collection::vec(amount(), 1..5),
        limit in amount(),
        mean in amount(),
        last in amount(),
        aim in prop_oneof![Just(Aim::Sum), Just(Aim::Mean), Just(Aim::Free)],
        limit_integer in any::<bool>(),
    ) {
        let n = first.len() as i64 + 1;
        let sum_first: Q = first.iter().map(Dec::q).sum();
        let last = match aim {
            Aim::Sum => Dec::of(&(limit.q() - &sum_first)),
            Aim::Mean => Dec::of(&(mean.q() * Q::from_integer(n.into()) - &sum_first)),
            Aim::Free => Some(last),
        };
        prop_assume!(last.is_some());
        let amounts: Vec<Dec> = first.iter().cloned().chain(last).collect();
        let limit_text = if limit_integer && limit.q().is_integer() {
            limit.q().to_integer().to_string()
        } else {
            limit.float_text()
        };
        let rules = WINDOWS
            .replace("LIMIT", &limit_text)
            .replace("MEAN", &mean.float_text());
        let graph = Arc::new(
            compile(&RuleSources::from_texts([("p.yaml", rules.as_str())])).unwrap().graph,
        );
        let mut engine = Engine::new(graph.clone());
        let mut sum = Q::zero();
        for (i, a) in amounts.iter().enumerate() {
            sum += a.q();
            let mean_q = &sum / Q::from_integer(BigInt::from(i + 1));
            let want: Vec<&str> = [
                ("SUM-GE", sum >= limit.q()),
                ("SUM-GT", sum > limit.q()),
                ("SUM-LE", limit.q() >= sum),
                ("AVG-GE", mean_q >= mean.q()),
                ("AVG-LT", mean_q < mean.q()),
                ("AVG-N", &mean_q * Q::from_integer(BigInt::from(i + 1)) >= limit.q()),
            ]
            .into_iter()
            .filter_map(|(id, w)| w.then_some(id))
            .collect();
            let line = format!(
                r#"{{"event_id":"e{i}","type":"p","occurred_at":"2026-01-0{}T10:00:00Z","branch":"b","who":"w","amount":{}}}"#,
                i + 1,
                a.text()
            );
            // The last event is evaluated what-if first (its own amount
            // folded beside the window, not in it), then for real.
            let passes: &[bool] = if i + 1 == amounts.len() { &[false, true] } else { &[true] };
            for &record in passes {
                engine.set_record(record);
                engine.evaluate(line.as_bytes()).unwrap();
                let got: Vec<&str> = engine
                    .hits()
                    .iter()
                    .map(|h| graph.control_points[h.control_point as usize].id.as_str())
                    .collect();
                let texts: Vec<String> = amounts[..=i].iter().map(Dec::text).collect();
                prop_assert_eq!(
                    &got, &want,
                    "amounts {:?}, limit {}, mean {} (record {}): sum {}, mean {}",
                    texts, limit_text, mean.text(), record, sum, mean_q
                );
            }
        }
    }
}

/// Windows of a computed value (as EP-101 keeps its discount rates): each
/// event's `1 - quoted / list` is kept as the decimal it is, so that "the
/// latest is the deepest" holds of the event that set the maximum, and a
/// spread of exactly 15 points is 15 points.
const RATES: &str = r#"
event_types:
  q:
    stream: s
    subject: who
    fields:
      who: { type: string, required: true }
      list: { type: number, required: true }
      quoted: { type: number, required: true }
    derived:
      rate: 1 - quoted / list
control_points:
  - id: DEEPEST
    domain: d
    title: t
    event_type: q
    aggregates:
      deepest: { fn: max, of: rate, over: 30d }
    when: rate >= deepest
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
  - id: SPREAD
    domain: d
    title: t
    event_type: q
    aggregates:
      shallowest: { fn: min, of: rate, over: 30d }
    when: rate - shallowest >= 0.15
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
  - id: MEAN
    domain: d
    title: t
    event_type: q
    aggregates:
      mean: { fn: avg, of: rate, over: 30d }
    when: mean >= 0.2
    tiers: [{ tier: 1, notify: r }]
    message: "{who}"
"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn windows_of_computed_values(
        list in prop::sample::select(vec![100i64, 250, 400, 1000, 1250, 2000, 5000]),
        cents in prop::collection::vec(0i64..10_000, 1..5),
        spread in any::<bool>(),
    ) {
        // Quoted prices in cents, below the list price; with `spread`, the
        // last is exactly 15 points of the list price below the first.
        let mut quoted: Vec<i64> = cents.iter().map(|c| c * list / 100).collect();
        if spread {
            let last = quoted[0] - list * 15;
            prop_assume!(last >= 0);
            quoted.push(last);
        }
        let graph = Arc::new(
            compile(&RuleSources::from_texts([("q.yaml", RATES)])).unwrap().graph,
        );
        let mut engine = Engine::new(graph.clone());
        let list_q = Q::from_integer(BigInt::from(list));
        let rate = |c: i64| Q::from_integer(BigInt::from(1)) - Q::new(BigInt::from(c), BigInt::from(100)) / &list_q;
        let mut rates: Vec<Q> = Vec::new();
        for (i, c) in quoted.iter().enumerate() {
            let r = rate(*c);
            rates.push(r.clone());
            let deepest = rates.iter().max().unwrap();
            let shallowest = rates.iter().min().unwrap();
            let mean = rates.iter().sum::<Q>() / Q::from_integer(BigInt::from(rates.len()));
            let want: Vec<&str> = [
                ("DEEPEST", r >= *deepest),
                ("SPREAD", &r - shallowest >= Q::new(BigInt::from(15), BigInt::from(100))),
                ("MEAN", mean >= Q::new(BigInt::from(2), BigInt::from(10))),
            ]
            .into_iter()
            .filter_map(|(id, w)| w.then_some(id))
            .collect();
            let price = Dec { m: *c, k: 2 };
            let line = format!(
                r#"{{"event_id":"e{i}","type":"q","occurred_at":"2026-01-0{}T10:00:00Z","branch":"b","who":"w","list":{list},"quoted":{}}}"#,
                i + 1,
                price.text()
            );
            engine.evaluate(line.as_bytes()).unwrap();
            let got: Vec<&str> = engine
                .hits()
                .iter()
                .map(|h| graph.control_points[h.control_point as usize].id.as_str())
                .collect();
            let texts: Vec<String> = quoted[..=i].iter().map(|c| Dec { m: *c, k: 2 }.text()).collect();
            prop_assert_eq!(&got, &want, "list {}, quoted {:?}", list, texts);
        }
    }
}

/// Trips exactly 20 % over standard, as fleets log them: distance in km
/// (integer or one decimal), standard in L/100 km (one decimal), fuel in L
/// (two decimals). VF-001 (`fuel_used_l > standard_fuel_l * 1.2`) fires on
/// none of them, and on every one 0.01 L more. In `f64` alone, many fire.
#[test]
fn trips_exactly_twenty_percent_over_do_not_fire_vf001() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let graph = Arc::new(levee_rules::compile_dir(&root.join("rules")).unwrap().graph);
    let vf001 = graph
        .control_points
        .iter()
        .position(|c| c.id == "VF-001")
        .unwrap() as u32;
    let mut engine = Engine::new(graph);
    // A fixed pseudo-random walk over realistic trips.
    let mut seed: u64 = 12;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let (mut trips, mut f64_fires) = (0, 0);
    while trips < 400 {
        // Distance in tenths of a km, standard in tenths of a litre.
        let tenths_km = if next(2) == 0 {
            (5 + next(896)) * 10
        } else {
            50 + next(8951)
        };
        let tenths_l = 50 + next(131);
        // fuel = 1.2 * d * s / 100 = 12 * tenths_km * tenths_l / 100_000 L:
        // kept where that has at most two decimals.
        let milli = 12 * tenths_km * tenths_l;
        if milli % 1000 != 0 {
            continue;
        }
        let centi_l = milli / 1000;
        let d = Dec {
            m: tenths_km as i64,
            k: 1,
        };
        let s = Dec {
            m: tenths_l as i64,
            k: 1,
        };
        for (extra, want) in [(0, false), (1, true)] {
            let fuel = Dec {
                m: (centi_l + extra) as i64,
                k: 2,
            };
            let line = format!(
                r#"{{"event_id":"t{trips}-{extra}","type":"trip","occurred_at":"2026-11-04T10:00:00+08:00","branch":"wuhan","vehicle_id":"V{trips}","driver_id":"D1","distance_km":{},"fuel_used_l":{},"standard_l_per_100km":{}}}"#,
                d.text(),
                fuel.text(),
                s.text()
            );
            engine.evaluate(line.as_bytes()).unwrap();
            let fired = engine.hits().iter().any(|h| h.control_point == vf001);
            assert_eq!(fired, want, "{line}");
        }
        let (df, sf): (f64, f64) = (d.text().parse().unwrap(), s.text().parse().unwrap());
        let ff: f64 = Dec {
            m: centi_l as i64,
            k: 2,
        }
        .text()
        .parse()
        .unwrap();
        if ff > df * sf / 100.0 * 1.2 {
            f64_fires += 1;
        }
        trips += 1;
    }
    // The float comparison alone would fire on a good share of them.
    assert!(f64_fires > 40, "{f64_fires} of {trips} fire in f64");
}

#[test]
fn decimals_print_as_written() {
    assert_eq!(Dec { m: 2400, k: 2 }.text(), "24.00");
    assert_eq!(Dec { m: -5, k: 3 }.text(), "-0.005");
    assert_eq!(Dec { m: 12, k: 0 }.float_text(), "12.0");
    assert_eq!(Dec::of(&Dec { m: 2400, k: 2 }.q()).unwrap().text(), "24");
    let third = Q::new(BigInt::from(1), BigInt::from(3));
    assert!(Dec::of(&third).is_none());
    assert_eq!(Dec::near(&third, 1).unwrap().text(), "0.3334");
    assert!(Q::new(BigInt::from(-1), BigInt::from(2)).is_negative());
}
