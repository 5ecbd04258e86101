//! The sample's keyed hash: HMAC-SHA256 under the key the operator keeps
//! outside the settings. It hashes sensitive values (the same value gives
//! the same hash wherever it appears, so equalities keep their outcome) and
//! decides which subjects are sampled (the same on every instance and after
//! a restart, so a sampled subject's whole history is kept).

use sha2::{Digest, Sha256};

/// What a hashed value starts with: `lvh:` and 32 hex digits (128 bits).
pub const PREFIX: &str = "lvh:";

/// The shortest key accepted (bytes).
pub const MIN_KEY_BYTES: usize = 16;

/// An HMAC-SHA256 key, its padded blocks absorbed once.
#[derive(Clone)]
pub struct Key {
    inner: Sha256,
    outer: Sha256,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(********)")
    }
}

impl Key {
    /// The key of `secret` (any length; a longer one than a block is hashed
    /// first, as HMAC says).
    pub fn new(secret: &[u8]) -> Key {
        let mut block = [0u8; 64];
        if secret.len() > block.len() {
            block[..32].copy_from_slice(&Sha256::digest(secret));
        } else {
            block[..secret.len()].copy_from_slice(secret);
        }
        let pad = |byte: u8| {
            let mut h = Sha256::new();
            h.update(block.map(|b| b ^ byte));
            h
        };
        Key {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// HMAC-SHA256 of the parts, one after the other.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        for p in parts {
            inner.update(p);
        }
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }

    /// A value as the sample holds it: `lvh:` and the first 128 bits of its
    /// keyed hash in hex; the empty string stays empty (it names no one,
    /// and `len(f) > 0` keeps its outcome).
    pub fn hash_value(&self, value: &str) -> String {
        if value.is_empty() {
            return String::new();
        }
        let mac = self.mac(&[b"value\0", value.as_bytes()]);
        let mut out = String::with_capacity(PREFIX.len() + 32);
        out.push_str(PREFIX);
        hex(&mac[..16], &mut out);
        out
    }

    /// What names the key without giving it away (in the manifest and the
    /// logs): 64 bits of its hash of a fixed text.
    pub fn fingerprint(&self) -> String {
        let mut out = String::new();
        hex(&self.mac(&[b"levee sample key fingerprint"])[..8], &mut out);
        out
    }
}

fn hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

/// Which subjects are sampled: a keyed choice over (event type, subject).
#[derive(Debug, Clone)]
pub struct Chooser {
    key: Key,
    per_10000: u32,
}

impl Chooser {
    /// Chooses `per_10000` subjects in 10,000 under `key` (no key: an empty
    /// one, the same choice everywhere still).
    pub fn new(key: Option<&Key>, per_10000: u32) -> Chooser {
        Chooser {
            key: key.cloned().unwrap_or_else(|| Key::new(b"")),
            per_10000,
        }
    }

    /// Whether the events of `subject` of type `event_type` are sampled.
    pub fn chosen(&self, event_type: &str, subject: &str) -> bool {
        if self.per_10000 >= 10_000 {
            return true;
        }
        let mac = self.key.mac(&[
            b"subject\0",
            event_type.as_bytes(),
            b"\0",
            subject.as_bytes(),
        ]);
        let mut first = [0u8; 8];
        first.copy_from_slice(&mac[..8]);
        u64::from_be_bytes(first) % 10_000 < u64::from(self.per_10000)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_is_hmac_sha256() {
        // RFC 4231, test case 2.
        let mac = Key::new(b"Jefe").mac(&[b"what do ya want ", b"for nothing?"]);
        let mut hexed = String::new();
        hex(&mac, &mut hexed);
        assert_eq!(
            hexed,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than a block is hashed first (test case 6).
        let long = Key::new(&[0xaa; 131])
            .mac(&[b"Test Using Larger Than Block-Size Key - Hash Key First"]);
        hexed.clear();
        hex(&long, &mut hexed);
        assert_eq!(
            hexed,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn equal_values_hash_equal_and_others_differ() {
        let key = Key::new(b"0123456789abcdef");
        let a = key.hash_value("鄂A12345");
        assert_eq!(a, key.hash_value("鄂A12345"));
        assert_eq!(a, Key::new(b"0123456789abcdef").hash_value("鄂A12345"));
        assert_ne!(a, key.hash_value("鄂A12346"));
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 32, "{a}");
        assert!(!a.contains("12345"));
        assert_ne!(a, Key::new(b"another key, 16b").hash_value("鄂A12345"));
        assert_eq!(key.hash_value(""), "");
        assert_ne!(
            key.fingerprint(),
            Key::new(b"another key, 16b").fingerprint()
        );
        assert_eq!(format!("{key:?}"), "Key(********)");
    }

    #[test]
    fn the_subject_choice_is_stable_and_near_the_share() {
        let key = Key::new(b"0123456789abcdef");
        let chooser = Chooser::new(Some(&key), 500);
        let chosen: Vec<bool> = (0..20_000)
            .map(|i| chooser.chosen("trip", &format!("V{i}")))
            .collect();
        // The same on another instance, or after a restart.
        let again = Chooser::new(Some(&Key::new(b"0123456789abcdef")), 500);
        assert!((0..20_000).all(|i| again.chosen("trip", &format!("V{i}")) == chosen[i]));
        let n = chosen.iter().filter(|c| **c).count();
        assert!((800..1200).contains(&n), "{n} of 20,000 at 5 %");
        // Another type is another choice; none and all are exact.
        let other = (0..20_000)
            .filter(|i| chooser.chosen("refuel", &format!("V{i}")) != chosen[*i])
            .count();
        assert!(other > 500, "{other}");
        assert!((0..1000).all(|i| !Chooser::new(None, 0).chosen("t", &i.to_string())));
        assert!((0..1000).all(|i| Chooser::new(None, 10_000).chosen("t", &i.to_string())));
    }
}
