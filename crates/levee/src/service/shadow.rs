//! `[shadow]`: a second ruleset evaluated on the live stream beside the
//! rules in force, its alerts written to `topics.shadow` and compared with
//! the live ones (`kafka::shadow` does it per partition). Off while
//! `shadow.rules_dir` is empty; a directory if one exists there, else a git
//! revision of the repository `rules.dir` is in (`reload::Origin`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[shadow]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowSettings {
    /// The shadow rules directory, or a git revision; empty: no shadow
    /// evaluation.
    pub rules_dir: PathBuf,
}

impl ShadowSettings {
    /// The shadow rules directory, if shadow evaluation is on.
    pub fn dir(&self) -> Option<&std::path::Path> {
        (!self.rules_dir.as_os_str().is_empty()).then_some(self.rules_dir.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_directory_is_off() {
        assert_eq!(ShadowSettings::default().dir(), None);
        let on = ShadowSettings {
            rules_dir: PathBuf::from("/srv/levee/shadow"),
        };
        assert_eq!(on.dir(), Some(std::path::Path::new("/srv/levee/shadow")));
    }
}
