//! levee-fuzz: fuzzing levee on stable Rust.
//!
//! No libFuzzer (it needs a nightly toolchain): the inputs are built by
//! structure-aware generators and mutators that start from the
//! repository's own inputs (the examples, the rule tests' events, the
//! hostile-JSON shapes of the DLQ, the shipped rule files and the
//! check-error fixtures), so most of them get past parsing into
//! evaluation. Inputs whose behaviour is new (another control point
//! fired, another error) are kept and mutated further.
//!
//! # Layout
//! - [`runner`]: the harness: `catch_unwind`, a time limit and a watchdog,
//!   a memory bound, crash files, the report.
//! - [`targets`]: `decode`, `compile`, `http`.
//! - [`event`], [`json`]: events as the catalog knows them; generation and
//!   mutation.
//! - [`expr`], [`rulefile`]: expressions and rule files; mutation.
//! - [`corpus`]: the seeds; [`rng`]: the seeded generator.
//!
//! `docs/fuzzing.md` says how to run it and what the numbers mean.

pub mod corpus;
pub mod event;
pub mod expr;
pub mod json;
pub mod rng;
pub mod rulefile;
pub mod runner;
pub mod targets;

use corpus::Corpus;
use runner::Target;

/// The targets by name.
pub const TARGETS: [&str; 3] = ["decode", "compile", "http"];

/// Builds a target by name; `event_type` narrows the event targets to
/// events of one type.
pub fn target(
    name: &str,
    corpus: &Corpus,
    event_type: Option<&str>,
) -> Result<Box<dyn Target>, String> {
    let unknown = |t: &str| format!("no event type `{t}` in the shipped rules");
    Ok(match (name, event_type) {
        ("decode", None) => Box::new(targets::decode::Decode::new(corpus)?),
        ("decode", Some(t)) => Box::new(
            targets::decode::Decode::new(corpus)?
                .focus(t)
                .ok_or_else(|| unknown(t))?,
        ),
        ("http", None) => Box::new(targets::http::Http::new(corpus)?),
        ("http", Some(t)) => Box::new(
            targets::http::Http::new(corpus)?
                .focus(t)
                .ok_or_else(|| unknown(t))?,
        ),
        ("compile", _) => Box::new(targets::compile::Compile::new(corpus)?),
        (other, _) => return Err(format!("no target `{other}` (decode, compile, http, all)")),
    })
}
