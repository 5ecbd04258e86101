//! Loading the rules directory for a command, diagnostics on stderr.

use std::path::Path;
use std::sync::Arc;

use levee_rules::RuleGraph;

/// Compiles `dir`, printing warnings; on errors prints them all and
/// returns `None`.
pub fn load(dir: &Path) -> Option<Arc<RuleGraph>> {
    match levee_rules::compile_dir(dir) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("{w}");
            }
            Some(Arc::new(c.graph))
        }
        Err(diags) => {
            print_failure(&diags);
            None
        }
    }
}

pub fn print_failure(diags: &[levee_rules::Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
    let n = diags.iter().filter(|d| d.is_error()).count();
    eprintln!(
        "levee: the rules do not compile: {n} error{}",
        if n == 1 { "" } else { "s" }
    );
}
