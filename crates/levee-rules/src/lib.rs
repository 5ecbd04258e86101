//! levee-rules: the rule files authors write, and the rule graph they compile to.
//!
//! Pure and synchronous: the only I/O is reading rule files.
//!
//! # Layout
//! - [`model`]: the rule file format (serde types, unknown keys rejected).
//! - [`calendar`]: the business time zone and the working calendar.
//! - [`limits`]: how deeply an expression may nest (the compiler recurses).
//! - [`load`]: reading a rules directory; the ruleset version (content hash).
//! - [`compile`]: rule files → [`RuleGraph`], reporting every error at once.
//! - `lower`: evalexpr trees → typed, hash-consed, constant-folded nodes.
//! - [`graph`]: the compiled graph: per event type a flat program of nodes.
//! - `point`: one control point's definition → its part of the graph.
//! - `people`: the people accountable for a point's events (`people:`, person fields).
//! - `recusal`: 回避, a tier whose notified role is held by one of its `people`.
//! - `rekey`: stateful points kept per another key than their type's, in
//!   re-keyed copies of the type (`purchase@approver_id`).
//! - [`plan`]: what each event evaluates; conditions split into `&&` terms.
//! - [`duration`]: durations as rule files and settings write them.
//! - [`diag`]: diagnostics naming file, control point, expression and problem.
//! - [`render`]: `levee graph` output (Graphviz dot, Mermaid).
//! - [`register`]: the register's columns (Chinese message, risk grade,
//!   measure, owner, basis) and what `levee check` requires of them.
//! - [`sensitive`]: what a condition may do with a `sensitive` field, so
//!   that a sample's keyed hashes keep every outcome.
//! - `template`: message templates and their placeholders.
//! - [`table`]: reference data: table declarations and their rows.
//! - [`variant`]: one control point's variants compiled against a catalog
//!   parsed once (`levee test --mutate`).

pub mod calendar;
pub mod compile;
pub mod diag;
pub mod duration;
pub mod graph;
pub mod limits;
pub mod load;
mod lower;
pub mod missing;
pub mod model;
mod people;
pub mod plan;
mod point;
pub mod quality;
mod recusal;
pub mod register;
mod rekey;
pub mod render;
pub mod sensitive;
pub mod table;
mod template;
pub mod variant;

pub use calendar::Calendar;
pub use compile::{compile, compile_dir, default_notify, Compiled};
pub use diag::{Diagnostic, Severity};
pub use duration::{format_duration, parse_duration, Period};
pub use graph::{ControlPoint, EventType, RuleGraph};
pub use load::{read_rules_dir, read_test_files, RuleSources, SourceFile};
pub use lower::FUNCTIONS;
