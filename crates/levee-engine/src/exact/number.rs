//! Exact rational numbers for [`super`]: fractions of two 128-bit integers
//! first ([`Small`], no allocation), arbitrary precision ([`Big`]) when
//! those overflow.
//!
//! Every operation of [`Number`] is exact or returns `None` (an overflow of
//! [`Small`], or a division by zero: callers rule that out first).

use std::cmp::Ordering;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, ToPrimitive, Zero};

/// Exact arithmetic on rational numbers.
pub(crate) trait Number: Sized + Clone {
    fn int(i: i64) -> Self;
    /// `m × 10^e`.
    fn decimal(m: i64, e: i32) -> Option<Self>;
    fn add(&self, o: &Self) -> Option<Self>;
    fn sub(&self, o: &Self) -> Option<Self>;
    fn mul(&self, o: &Self) -> Option<Self>;
    /// `None` when `o` is zero.
    fn div(&self, o: &Self) -> Option<Self>;
    fn neg(&self) -> Option<Self>;
    fn cmp(&self, o: &Self) -> Option<Ordering>;
    fn floor(&self) -> Option<Self>;
    fn ceil(&self) -> Option<Self>;
    fn trunc(&self) -> Option<Self>;
    /// To the nearest integer, half-way cases away from zero (`f64::round`).
    fn round(&self) -> Option<Self>;
    /// The sign: `Less` below zero.
    fn sign(&self) -> Ordering;
    /// The number if it is an integer that fits an `i32`.
    fn to_i32(&self) -> Option<i32>;
    /// The nearest float.
    fn to_f64(&self) -> f64;

    fn is_zero(&self) -> bool {
        self.sign() == Ordering::Equal
    }

    fn abs(&self) -> Option<Self> {
        if self.sign() == Ordering::Less {
            self.neg()
        } else {
            Some(self.clone())
        }
    }

    /// The remainder of truncated division (`f64`'s `%`: the sign of
    /// `self`); `None` when `o` is zero.
    fn rem(&self, o: &Self) -> Option<Self> {
        let q = self.div(o)?.trunc()?;
        self.sub(&o.mul(&q)?)
    }

    /// `self ^ n`; `None` for zero to a negative power.
    fn pow(&self, n: i32) -> Option<Self> {
        let mut base = if n < 0 {
            Self::int(1).div(self)?
        } else {
            self.clone()
        };
        let mut e = n.unsigned_abs();
        let mut out = Self::int(1);
        while e > 0 {
            if e & 1 == 1 {
                out = out.mul(&base)?;
            }
            e >>= 1;
            if e > 0 {
                base = base.mul(&base)?;
            }
        }
        Some(out)
    }
}

/// `n / d`, `d > 0`, neither `i128::MIN` (so that every negation and
/// absolute value fits); not reduced (reducing costs more than the few
/// operations of a comparison need; on overflow, [`Big`] takes over).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Small {
    n: i128,
    d: i128,
}

/// Powers of ten that fit an `i128`.
const POW10: [i128; 39] = {
    let mut p = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// `a × b`, `None` on overflow; cheap where both fit 64 bits (most do).
#[inline(always)]
fn mul(a: i128, b: i128) -> Option<i128> {
    match (i64::try_from(a), i64::try_from(b)) {
        (Ok(a), Ok(b)) => Some(i128::from(a) * i128::from(b)),
        _ => a.checked_mul(b),
    }
}

impl Small {
    fn new(n: i128, d: i128) -> Option<Small> {
        if d == 0 || n == i128::MIN || d == i128::MIN {
            return None;
        }
        Some(if d < 0 {
            Small { n: -n, d: -d }
        } else {
            Small { n, d }
        })
    }

    fn integer(n: i128) -> Option<Small> {
        Small::new(n, 1)
    }
}

impl PartialEq for Small {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Some(Ordering::Equal)
    }
}

impl Number for Small {
    fn int(i: i64) -> Self {
        Small {
            n: i128::from(i),
            d: 1,
        }
    }

    fn decimal(m: i64, e: i32) -> Option<Self> {
        let p = *POW10.get(e.unsigned_abs() as usize)?;
        if e >= 0 {
            Small::integer(mul(i128::from(m), p)?)
        } else {
            Small::new(i128::from(m), p)
        }
    }

    fn add(&self, o: &Self) -> Option<Self> {
        if self.d == o.d {
            return Small::new(self.n.checked_add(o.n)?, self.d);
        }
        let n = mul(self.n, o.d)?.checked_add(mul(o.n, self.d)?)?;
        Small::new(n, mul(self.d, o.d)?)
    }

    fn sub(&self, o: &Self) -> Option<Self> {
        self.add(&o.neg()?)
    }

    fn mul(&self, o: &Self) -> Option<Self> {
        Small::new(mul(self.n, o.n)?, mul(self.d, o.d)?)
    }

    fn div(&self, o: &Self) -> Option<Self> {
        if o.n == 0 {
            return None;
        }
        Small::new(mul(self.n, o.d)?, mul(self.d, o.n)?)
    }

    fn neg(&self) -> Option<Self> {
        Some(Small {
            n: -self.n,
            d: self.d,
        })
    }

    fn cmp(&self, o: &Self) -> Option<Ordering> {
        if self.d == o.d {
            return Some(self.n.cmp(&o.n));
        }
        Some(mul(self.n, o.d)?.cmp(&mul(o.n, self.d)?))
    }

    fn floor(&self) -> Option<Self> {
        Small::integer(self.n.div_euclid(self.d))
    }

    fn ceil(&self) -> Option<Self> {
        Small::integer(-(-self.n).div_euclid(self.d))
    }

    fn trunc(&self) -> Option<Self> {
        Small::integer(self.n / self.d)
    }

    fn round(&self) -> Option<Self> {
        let t = self.n / self.d;
        let r = (self.n % self.d).unsigned_abs();
        // |r| / d >= 1/2, without overflow.
        let away = r >= self.d as u128 - r;
        Small::integer(if away { t + self.n.signum() } else { t })
    }

    fn sign(&self) -> Ordering {
        self.n.cmp(&0)
    }

    fn to_i32(&self) -> Option<i32> {
        if self.n % self.d == 0 {
            i32::try_from(self.n / self.d).ok()
        } else {
            None
        }
    }

    fn to_f64(&self) -> f64 {
        const EXACT: u128 = 1 << 53;
        if self.d == 1 {
            self.n as f64
        } else if self.n.unsigned_abs() <= EXACT && self.d.unsigned_abs() <= EXACT {
            // Two exact floats, one correctly rounded division.
            self.n as f64 / self.d as f64
        } else {
            Big::from(*self).to_f64()
        }
    }
}

/// An arbitrary-precision fraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Big(BigRational);

impl From<Small> for Big {
    fn from(s: Small) -> Big {
        Big(BigRational::new(BigInt::from(s.n), BigInt::from(s.d)))
    }
}

impl Number for Big {
    fn int(i: i64) -> Self {
        Big(BigRational::from_integer(BigInt::from(i)))
    }

    fn decimal(m: i64, e: i32) -> Option<Self> {
        let p = num_traits::pow(BigInt::from(10), e.unsigned_abs() as usize);
        let m = BigInt::from(m);
        Some(Big(if e >= 0 {
            BigRational::from_integer(m * p)
        } else {
            BigRational::new(m, p)
        }))
    }

    fn add(&self, o: &Self) -> Option<Self> {
        Some(Big(&self.0 + &o.0))
    }

    fn sub(&self, o: &Self) -> Option<Self> {
        Some(Big(&self.0 - &o.0))
    }

    fn mul(&self, o: &Self) -> Option<Self> {
        Some(Big(&self.0 * &o.0))
    }

    fn div(&self, o: &Self) -> Option<Self> {
        if o.0.is_zero() {
            return None;
        }
        Some(Big(&self.0 / &o.0))
    }

    fn neg(&self) -> Option<Self> {
        Some(Big(-&self.0))
    }

    fn cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.0.cmp(&o.0))
    }

    fn floor(&self) -> Option<Self> {
        Some(Big(self.0.floor()))
    }

    fn ceil(&self) -> Option<Self> {
        Some(Big(self.0.ceil()))
    }

    fn trunc(&self) -> Option<Self> {
        Some(Big(self.0.trunc()))
    }

    fn round(&self) -> Option<Self> {
        Some(Big(self.0.round()))
    }

    fn sign(&self) -> Ordering {
        if self.0.is_negative() {
            Ordering::Less
        } else if self.0.is_zero() {
            Ordering::Equal
        } else {
            Ordering::Greater
        }
    }

    fn to_i32(&self) -> Option<i32> {
        if self.0.is_integer() {
            self.0.numer().to_i32()
        } else {
            None
        }
    }

    fn to_f64(&self) -> f64 {
        self.0.to_f64().unwrap_or(f64::NAN)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn small(m: i64, e: i32) -> Small {
        Small::decimal(m, e).unwrap()
    }

    #[test]
    fn decimals_add_up_exactly() {
        // 0.1 + 0.2 == 0.3, and 24 == 200 * 10 / 100 * 1.2.
        assert_eq!(small(1, -1).add(&small(2, -1)), Some(small(3, -1)));
        let standard = Small::int(200)
            .mul(&Small::int(10))
            .and_then(|x| x.div(&Small::int(100)))
            .and_then(|x| x.mul(&small(12, -1)))
            .unwrap();
        assert_eq!(standard.cmp(&Small::int(24)), Some(Ordering::Equal));
        assert_eq!(small(2401, -2).cmp(&standard), Some(Ordering::Greater));
        // A third is a third.
        let third = Small::int(1).div(&Small::int(3)).unwrap();
        assert_eq!(third.mul(&Small::int(3)), Some(Small::int(1)));
    }

    #[test]
    fn rounding_follows_f64() {
        for (x, e) in [
            (25, -1),
            (-25, -1),
            (24, -1),
            (-26, -1),
            (35, -1),
            (-5, -1),
            (0, 0),
        ] {
            let f = x as f64 * 10f64.powi(e);
            let s = small(x, e);
            let b = Big::decimal(x, e).unwrap();
            assert_eq!(s.round().unwrap().to_f64(), f.round(), "round {f}");
            assert_eq!(s.floor().unwrap().to_f64(), f.floor(), "floor {f}");
            assert_eq!(s.ceil().unwrap().to_f64(), f.ceil(), "ceil {f}");
            assert_eq!(s.trunc().unwrap().to_f64(), f.trunc(), "trunc {f}");
            assert_eq!(b.round().unwrap().to_f64(), f.round(), "big round {f}");
            assert_eq!(b.floor().unwrap().to_f64(), f.floor(), "big floor {f}");
        }
        // The remainder has the sign of the dividend, as `%` on floats.
        assert_eq!(small(-7, 0).rem(&small(2, 0)), Some(small(-1, 0)));
        assert_eq!(small(3, -1).rem(&small(1, -1)), Some(Small::int(0)));
    }

    #[test]
    fn small_overflows_where_big_does_not() {
        let huge = small(i64::MAX, 1);
        assert_eq!(huge.mul(&huge), None);
        let big = Big::decimal(i64::MAX, 1).unwrap();
        assert!(big.mul(&big).is_some());
        // 10^39 overflows 128 bits, not a big integer.
        assert!(Small::decimal(1, -39).is_none());
        assert!(Big::decimal(1, -39).is_some());
        assert_eq!(Small::int(0).div(&Small::int(0)), None);
        assert_eq!(Big::int(1).div(&Big::int(0)), None);
        assert_eq!(small(2, 0).pow(-2), Some(small(25, -2)));
        assert_eq!(Small::int(0).pow(-1), None);
        assert_eq!(Small::new(i128::MIN, 1), None);
        // Unreduced fractions compare by value.
        assert_eq!(small(30, -2), small(3, -1));
        assert_eq!(small(3, -1).to_f64(), 0.3);
    }
}
