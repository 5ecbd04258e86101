//! The settings' amounts of bytes: [`Size`], a whole number of bytes or a
//! whole number and a unit, `KiB`, `MiB`, `GiB` (1024-based) or `kB`,
//! `MB`, `GB` (1000-based): `1073741824`, `"512MiB"`, `"2GiB"`. Written
//! back (by `--print-config`) as a number of bytes. Anything else is an
//! error that names the value.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of bytes in a setting: see the module doc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(u64);

const UNITS: &[(&str, u64)] = &[
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("kB", 1000),
    ("B", 1),
    ("", 1),
];

impl Size {
    #[cfg(test)]
    pub const fn from_bytes(n: u64) -> Size {
        Size(n)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Size, String> {
        let t = s.trim();
        let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!(
                "{s:?} is not a size: a whole number of bytes, or one with a unit (KiB, MiB, GiB, kB, MB, GB), such as \"512MiB\""
            ));
        }
        let (number, unit) = t.split_at(digits);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{s:?} is not a size: the number is too large"))?;
        let Some((_, per)) = UNITS.iter().find(|(u, _)| *u == unit.trim_start()) else {
            return Err(format!(
                "{s:?} is not a size: unknown unit {unit:?} (use KiB, MiB, GiB, kB, MB or GB)"
            ));
        };
        n.checked_mul(*per)
            .map(Size)
            .ok_or_else(|| format!("{s:?} is not a size: too large"))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        d.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = Size;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as 1048576 or \"512MiB\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
        Ok(Size(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
        u64::try_from(v)
            .map(Size)
            .map_err(|_| E::custom(format!("{v} is not a size: it is negative")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_bytes_and_units() {
        let bytes = |s: &str| s.parse::<Size>().map(Size::bytes);
        assert_eq!(bytes("4096"), Ok(4096));
        assert_eq!(bytes("64KiB"), Ok(65_536));
        assert_eq!(bytes("512MiB"), Ok(512 << 20));
        assert_eq!(bytes("2GiB"), Ok(2 << 30));
        assert_eq!(bytes("3MB"), Ok(3_000_000));
        assert_eq!(bytes("10 B"), Ok(10));
        for (text, why) in [
            ("", "a whole number"),
            ("lots", "a whole number"),
            ("5TB", "unknown unit"),
            ("-5", "a whole number"),
            ("99999999999GiB", "too large"),
        ] {
            let e = text.parse::<Size>().unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[derive(Debug, Deserialize, Serialize)]
    struct One {
        size: Size,
    }

    #[test]
    fn serde_reads_numbers_and_strings_and_writes_bytes() {
        let o: One = toml::from_str("size = \"1MiB\"").unwrap();
        assert_eq!(o.size.bytes(), 1 << 20);
        let o: One = toml::from_str("size = 4096").unwrap();
        assert_eq!(o.size.bytes(), 4096);
        assert_eq!(toml::to_string(&o).unwrap(), "size = 4096\n");
        let e = toml::from_str::<One>("size = -1").unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
    }
}
