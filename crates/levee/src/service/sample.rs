//! `[sample]`: a rolling sample of the input events on local disk, for
//! `levee diff` to run on real traffic (`service::sampler` writes it,
//! `crate::sample` says how). Off by default.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::size::Size;
use crate::sample::keyed::{Key, MIN_KEY_BYTES};

/// `[sample]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleSettings {
    /// Keep a sample (default: no).
    pub enabled: bool,
    /// Where the segments and the manifest are written; one directory per
    /// instance.
    pub dir: PathBuf,
    /// The most the segments take together; the oldest go first.
    pub max_bytes: Size,
    /// Subjects sampled per 10,000 (per event type): 100 is 1 %.
    pub subjects_per_10000: u32,
    /// The environment variable that holds the hash key (never the
    /// settings file).
    pub key_env: String,
}

/// The least `sample.max_bytes`.
pub const MIN_MAX_BYTES: u64 = 64 << 10;

/// Why sampling cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error(
        "sample.enabled is true and the rules mark sensitive fields ({fields}), but the environment variable {var} (sample.key_env) that holds the hash key is not set: set it to a secret of at least {MIN_KEY_BYTES} bytes, kept outside the settings file, the same on every instance"
    )]
    KeyMissing { var: String, fields: String },
    #[error(
        "the environment variable {var} (sample.key_env) holds {len} bytes: the hash key needs at least {MIN_KEY_BYTES}"
    )]
    KeyTooShort { var: String, len: usize },
    #[error("sample.dir {dir}: {source}")]
    Dir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

impl SampleSettings {
    /// What serde cannot check; every message names the setting.
    pub fn validate(&self, errors: &mut Vec<String>) {
        if !self.enabled {
            return;
        }
        if self.dir.as_os_str().is_empty() {
            errors.push(
                "sample.dir is empty: name the directory the sample is written to".to_owned(),
            );
        }
        if self.max_bytes.bytes() < MIN_MAX_BYTES {
            errors.push(format!(
                "sample.max_bytes: {} is below the least, {MIN_MAX_BYTES} (64KiB)",
                self.max_bytes
            ));
        }
        if self.subjects_per_10000 == 0 || self.subjects_per_10000 > 10_000 {
            errors.push(format!(
                "sample.subjects_per_10000: {} must be 1 to 10000 (100 is 1 % of the subjects)",
                self.subjects_per_10000
            ));
        }
        let legal = |c: char| c.is_ascii_alphanumeric() || c == '_';
        if self.key_env.is_empty() || !self.key_env.chars().all(legal) {
            errors.push(format!(
                "sample.key_env: {:?} is not an environment variable's name (letters, digits, '_')",
                self.key_env
            ));
        }
    }

    /// The hash key from the environment `env` (the process's, or a
    /// test's): `Ok(None)` when it is not set and no field needs it.
    /// `sensitive` names the fields the rules mark (`type.field`).
    pub fn key(
        &self,
        env: impl Fn(&str) -> Option<String>,
        sensitive: &[String],
    ) -> Result<Option<Key>, SampleError> {
        match env(&self.key_env).filter(|k| !k.is_empty()) {
            Some(k) if k.len() < MIN_KEY_BYTES => Err(SampleError::KeyTooShort {
                var: self.key_env.clone(),
                len: k.len(),
            }),
            Some(k) => Ok(Some(Key::new(k.as_bytes()))),
            None if sensitive.is_empty() => Ok(None),
            None => Err(SampleError::KeyMissing {
                var: self.key_env.clone(),
                fields: sensitive.join(", "),
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn on() -> SampleSettings {
        SampleSettings {
            enabled: true,
            dir: PathBuf::from("/var/lib/levee/sample"),
            max_bytes: Size::from_bytes(1 << 30),
            subjects_per_10000: 100,
            key_env: "LEVEE_SAMPLE_KEY".to_owned(),
        }
    }

    #[test]
    fn each_setting_is_checked_when_on_only() {
        let mut errors = Vec::new();
        on().validate(&mut errors);
        assert_eq!(errors, Vec::<String>::new());
        let bad = SampleSettings {
            dir: PathBuf::new(),
            max_bytes: Size::from_bytes(1000),
            subjects_per_10000: 0,
            key_env: "LEVEE SAMPLE".to_owned(),
            ..on()
        };
        bad.validate(&mut errors);
        let text = errors.join("\n");
        for key in [
            "sample.dir",
            "sample.max_bytes",
            "sample.subjects_per_10000",
            "sample.key_env",
        ] {
            assert!(text.contains(key), "{text}");
        }
        let mut none = Vec::new();
        SampleSettings {
            enabled: false,
            ..bad
        }
        .validate(&mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn a_missing_key_is_an_error_only_where_a_field_needs_it() {
        let fields = ["refuel.plate_seen".to_owned()];
        let e = on().key(|_| None, &fields).unwrap_err().to_string();
        assert!(
            e.contains("LEVEE_SAMPLE_KEY")
                && e.contains("refuel.plate_seen")
                && e.contains("not set"),
            "{e}"
        );
        assert!(on().key(|_| None, &[]).unwrap().is_none());
        let e = on().key(|_| Some("short".to_owned()), &fields).unwrap_err();
        assert!(e.to_string().contains("at least 16"), "{e}");
        let key = on()
            .key(
                |v| (v == "LEVEE_SAMPLE_KEY").then(|| "0123456789abcdef".to_owned()),
                &fields,
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            key.fingerprint(),
            Key::new(b"0123456789abcdef").fingerprint()
        );
    }
}
