//! The threshold index of a [`super::Plan`]: control points grouped by one
//! `value cmp constant` term, so that one binary search per group rules out
//! those whose threshold the event does not reach.
//!
//! The index only rules control points out: the terms of every control
//! point it lets through are evaluated. A float value within rounding
//! distance of a threshold ([`near`]) lets that control point through,
//! whichever side of the threshold the float lies on: the evaluator decides
//! such a comparison exactly.

use crate::graph::{Cmp, Slot};

/// Control points grouped by one comparison term each (`x > 50000`, with
/// `x` any value and the constant differing per control point): one binary
/// search per group finds the control points whose term holds; the others
/// are false without further evaluation.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub groups: Vec<Group>,
    /// Control points no group covers (always evaluated), as a bit set over
    /// the type's control points.
    pub unindexed: Vec<u64>,
}

/// Control points whose index term is `slot cmp constant`, by constant.
#[derive(Debug, Clone)]
pub struct Group {
    pub slot: Slot,
    /// The nodes (in [`super::Plan::nodes`]) that compute `slot`.
    pub nodes: (u32, u32),
    pub cmp: Cmp,
    pub keys: Keys,
}

/// A group's constants in ascending order, each with its control point
/// (index among the type's control points).
#[derive(Debug, Clone)]
pub enum Keys {
    /// Integer constants: compared as integers with an integer value, as
    /// floats with a float (as the evaluator does).
    Int(Vec<(i64, u32)>),
    /// Float constants (never NaN): compared as floats.
    Float(Vec<(f64, u32)>),
}

impl Keys {
    /// The control points whose term `value cmp constant` holds, in key
    /// order (with those near it, unless `exact`: see
    /// [`Keys::for_each_holding`]).
    pub fn holding(&self, cmp: Cmp, value: &NumValue, exact: bool) -> Vec<u32> {
        let mut out = Vec::new();
        self.for_each_holding(cmp, value, exact, |k| out.push(k));
        out
    }

    /// Every control point of the group.
    pub fn each(&self, mut f: impl FnMut(u32)) {
        match self {
            Keys::Int(keys) => keys.iter().for_each(|(_, c)| f(*c)),
            Keys::Float(keys) => keys.iter().for_each(|(_, c)| f(*c)),
        }
    }

    /// Calls `f` with each control point whose term holds, and, unless the
    /// value is `exact` as a float (a field's: a leaf), with those whose
    /// constant is within rounding distance of a float value ([`near`]):
    /// their term may hold in exact arithmetic, and the evaluator decides
    /// it. (The index only rules control points out.)
    #[inline]
    pub fn for_each_holding(
        &self,
        cmp: Cmp,
        value: &NumValue,
        exact: bool,
        mut f: impl FnMut(u32),
    ) {
        // Keys ascend: `v > k` holds for a prefix of them, `v < k` for a
        // suffix.
        #[inline(always)]
        fn split<K>(
            keys: &[(K, u32)],
            cmp: Cmp,
            lt: impl Fn(&K) -> bool,
            le: impl Fn(&K) -> bool,
        ) -> (usize, usize) {
            match cmp {
                Cmp::Gt => (0, keys.partition_point(|(k, _)| lt(k))),
                Cmp::Ge => (0, keys.partition_point(|(k, _)| le(k))),
                Cmp::Lt => (keys.partition_point(|(k, _)| le(k)), keys.len()),
                Cmp::Le => (keys.partition_point(|(k, _)| lt(k)), keys.len()),
            }
        }
        // The same split for a float value; unless it is exact, widened by
        // the rounding margin: every key near the value is in.
        #[inline(always)]
        fn float_split<K>(
            keys: &[(K, u32)],
            cmp: Cmp,
            v: f64,
            exact: bool,
            key: impl Fn(&K) -> f64,
        ) -> (usize, usize) {
            if exact || !v.is_finite() {
                return split(keys, cmp, |k| key(k) < v, |k| key(k) <= v);
            }
            let m = margin(v);
            match cmp {
                Cmp::Gt | Cmp::Ge => (0, keys.partition_point(|(k, _)| key(k) <= v + m)),
                Cmp::Lt | Cmp::Le => (keys.partition_point(|(k, _)| key(k) < v - m), keys.len()),
            }
        }
        let (a, b) = match (self, *value) {
            (Keys::Int(keys), NumValue::Int(v)) => split(keys, cmp, |k| *k < v, |k| *k <= v),
            (Keys::Int(keys), NumValue::Float(v)) => {
                if v.is_nan() {
                    return;
                }
                float_split(keys, cmp, v, exact, |k| *k as f64)
            }
            (Keys::Float(keys), v) => {
                let v = match v {
                    NumValue::Int(i) => i as f64,
                    NumValue::Float(x) => x,
                };
                if v.is_nan() {
                    return;
                }
                float_split(keys, cmp, v, exact, |k| *k)
            }
        };
        match self {
            Keys::Int(keys) => keys[a..b].iter().for_each(|(_, c)| f(*c)),
            Keys::Float(keys) => keys[a..b].iter().for_each(|(_, c)| f(*c)),
        }
    }
}

/// Relative part of [`near`]: far above the rounding error of a few
/// floating-point operations (about 1e-16 each).
pub const NEAR_REL: f64 = 1e-9;
/// Absolute part of [`near`]: covers the rounding error of an expression
/// of a dozen operations on values up to 10^9 (about 1e-7 each), where
/// a difference of large values leaves a small result and a relative bound
/// does not.
pub const NEAR_ABS: f64 = 1e-5;

/// Whether two floats are within rounding distance of each other: where a
/// comparison computed in floating point may differ from the same
/// comparison in exact decimal arithmetic, and the evaluator decides it
/// exactly (`levee_engine::exact`). Never for NaN. (The bound is relative
/// to `|a| + |b|`, up to twice the larger: cheaper than the larger, and
/// wider, which only costs an exact decision more.)
#[inline(always)]
pub fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= NEAR_REL * (a.abs() + b.abs()) + NEAR_ABS
}

/// The widest distance from `v` of a value [`near`] it, with room to
/// spare for the rounding of this bound.
#[inline]
fn margin(v: f64) -> f64 {
    8.0 * (NEAR_REL * v.abs() + NEAR_ABS)
}

/// A number as the index compares it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NumValue {
    Int(i64),
    Float(f64),
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    #[test]
    fn an_index_finds_exactly_the_thresholds_a_value_passes() {
        use super::{near, Keys, NumValue};
        use crate::graph::Cmp;
        // Control point k has threshold keys[k]; check every comparison
        // against a direct evaluation, for integer and float keys, values
        // on, between, within rounding distance of and beyond the
        // thresholds, and NaN. Integer keys and values compare exactly, and
        // so does a value exact as a float; otherwise keys near the value
        // are found too (the evaluator decides those exactly), and no
        // others.
        let ints = [-5i64, 0, 3, 3, 10, i64::MAX];
        let floats = [-2.5f64, 0.0, 3.0, 3.0, 0.1 + 0.2, 1e300];
        let values = [
            NumValue::Int(i64::MIN),
            NumValue::Int(3),
            NumValue::Int(4),
            NumValue::Float(3.0),
            NumValue::Float(2.999),
            NumValue::Float(3.0000000000000004),
            NumValue::Float(2.9999999999999996),
            NumValue::Float(0.3),
            NumValue::Float(f64::INFINITY),
            NumValue::Float(f64::NEG_INFINITY),
            NumValue::Float(f64::NAN),
        ];
        let holds = |cmp: Cmp, v: f64, k: f64| match cmp {
            Cmp::Gt => v > k,
            Cmp::Ge => v >= k,
            Cmp::Lt => v < k,
            Cmp::Le => v <= k,
        };
        let f = |v: &NumValue| match v {
            NumValue::Int(i) => *i as f64,
            NumValue::Float(x) => *x,
        };
        let check = |got: Vec<u32>, want: Vec<u32>, near_key: &dyn Fn(u32) -> bool, what: &str| {
            for c in &want {
                assert!(
                    got.contains(c),
                    "{what}: {c} holds but is not found: {got:?}"
                );
            }
            for c in &got {
                assert!(
                    want.contains(c) || near_key(*c),
                    "{what}: {c} found: {got:?} vs {want:?}"
                );
            }
        };
        for cmp in [Cmp::Gt, Cmp::Ge, Cmp::Lt, Cmp::Le] {
            let mut int_keys: Vec<(i64, u32)> =
                ints.iter().zip(0..).map(|(k, c)| (*k, c)).collect();
            int_keys.sort();
            let mut float_keys: Vec<(f64, u32)> =
                floats.iter().zip(0..).map(|(k, c)| (*k, c)).collect();
            float_keys.sort_by(|a, b| a.0.total_cmp(&b.0));
            for v in &values {
                let got = Keys::Int(int_keys.clone()).holding(cmp, v, false);
                let want: Vec<u32> = (0..ints.len() as u32)
                    .filter(|&c| match v {
                        NumValue::Int(i) => match cmp {
                            Cmp::Gt => *i > ints[c as usize],
                            Cmp::Ge => *i >= ints[c as usize],
                            Cmp::Lt => *i < ints[c as usize],
                            Cmp::Le => *i <= ints[c as usize],
                        },
                        NumValue::Float(x) => holds(cmp, *x, ints[c as usize] as f64),
                    })
                    .collect();
                let near_key = |c: u32| match v {
                    NumValue::Int(_) => false,
                    NumValue::Float(x) => near(*x, ints[c as usize] as f64),
                };
                let exact = Keys::Int(int_keys.clone()).holding(cmp, v, true);
                let mut sorted = exact.clone();
                sorted.sort();
                assert_eq!(sorted, want, "{cmp:?} {v:?} integer keys, exact");
                check(got, want, &near_key, &format!("{cmp:?} {v:?} integer keys"));
                let got = Keys::Float(float_keys.clone()).holding(cmp, v, false);
                let want: Vec<u32> = (0..floats.len() as u32)
                    .filter(|&c| holds(cmp, f(v), floats[c as usize]))
                    .collect();
                let near_key = |c: u32| near(f(v), floats[c as usize]);
                let mut exact = Keys::Float(float_keys.clone()).holding(cmp, v, true);
                exact.sort();
                assert_eq!(exact, want, "{cmp:?} {v:?} float keys, exact");
                check(got, want, &near_key, &format!("{cmp:?} {v:?} float keys"));
            }
        }
        // Within rounding distance, on either side, is found either way.
        let keys = Keys::Float(vec![(0.1 + 0.2, 0)]);
        for cmp in [Cmp::Gt, Cmp::Ge, Cmp::Lt, Cmp::Le] {
            assert_eq!(
                keys.holding(cmp, &NumValue::Float(0.3), false),
                vec![0],
                "{cmp:?}"
            );
        }
    }
}
