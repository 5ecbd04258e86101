//! Re-keyed copies of an event type (`purchase@approver_id`, see
//! `levee_rules::rekey`): the same event evaluated again with another key
//! as its subject, so that its points keep state per that key.
//!
//! [`Engine::run`] evaluates an event's type and then each copy in turn,
//! in one engine: what `levee replay`, `levee test` and `/v1/evaluate`
//! do. `levee run` keeps a copy's state where its key's partition is: it
//! turns that off ([`Engine::set_forward_copies`]), forwards the event
//! keyed by each copy's key ([`Engine::copy_keys`]), and the task that
//! receives it evaluates that copy alone ([`Engine::select_copy`], then
//! [`Engine::run_selected`]).

use levee_rules::model::Action;
use levee_rules::RuleGraph;

use crate::value::Val;
use crate::{BadInput, BadKind, Engine, EvalStats};

/// Between the parts of a composite key's value: `P-1|goods`.
pub const KEY_SEPARATOR: char = '|';

impl Engine {
    /// Evaluates the last decoded event (its hits in [`Engine::hits`]):
    /// its type's control points, then, unless they are forwarded, each
    /// re-keyed copy's in turn, on the same event. A copy whose key the
    /// event lacks is not evaluated. No allocation once warm.
    pub fn run(&mut self) -> EvalStats {
        self.hits.clear();
        let ti = self.env.type_index;
        let mut stats = self.run_type();
        if self.forward_copies {
            return stats;
        }
        let n = self.graph.event_types[ti as usize].copies.len();
        for i in 0..n {
            let copy = self.graph.event_types[ti as usize].copies[i];
            self.env.type_index = ti;
            if self.fill_copy(copy) {
                self.env.type_index = copy;
                let s = self.run_type();
                stats.unknown += s.unknown;
                stats.errors += s.errors;
                stats.suppressed += s.suppressed;
            }
        }
        self.env.type_index = ti;
        stats
    }

    /// Whether [`Engine::run`] leaves re-keyed copies out, to be evaluated
    /// where their key's state is (`levee run`); off by default.
    pub fn set_forward_copies(&mut self, on: bool) {
        self.forward_copies = on;
    }

    /// The re-keyed copies of the last decoded event's type, each with
    /// the value of its key in this event (its key for the repartition
    /// topic), into `out` (cleared); a copy whose key the event lacks is
    /// left out. The names are the copies' (`purchase@approver_id`).
    pub fn copy_keys<'g>(&'g self, out: &mut Vec<(&'g str, String)>) {
        out.clear();
        let graph: &'g RuleGraph = &self.graph;
        let ti = self.env.type_index as usize;
        let buf = &self.buffers[ti];
        for &c in &graph.event_types[ti].copies {
            let copy = &graph.event_types[c as usize];
            let Some(r) = &copy.rekeyed else { continue };
            let mut key = String::new();
            if write_key(r.key.iter().map(|&s| &buf[s as usize]), &mut key) {
                out.push((copy.name.as_str(), key));
            }
        }
    }

    /// Makes the last decoded event the re-keyed copy `name` of its type,
    /// to be evaluated alone by [`Engine::run_selected`]. Refused (bad
    /// input, kind `unknown_type`) where its type has no such copy, or the
    /// event lacks the copy's key.
    pub fn select_copy(&mut self, name: &str) -> Result<(), BadInput> {
        let ti = self.env.type_index;
        let found = self.graph.event_types[ti as usize]
            .copies
            .iter()
            .copied()
            .find(|&c| self.graph.event_types[c as usize].name == name);
        let Some(copy) = found else {
            return Err(self.refused(name, "the rules have no such copy"));
        };
        if !self.fill_copy(copy) {
            return Err(self.refused(name, "the event lacks its key"));
        }
        self.env.type_index = copy;
        Ok(())
    }

    fn refused(&self, copy: &str, why: &str) -> BadInput {
        BadInput::new(
            BadKind::UnknownType,
            format!("re-keyed copy `{copy}` of `{}`: {why}", self.env.event_type),
        )
    }

    /// Evaluates the last decoded event as its current type alone (a copy
    /// [`Engine::select_copy`] chose); hits in [`Engine::hits`].
    pub fn run_selected(&mut self) -> EvalStats {
        self.hits.clear();
        self.run_type()
    }

    /// Moves event time (the watermark: idle subjects expire against it)
    /// on to `at`, if later. Evaluating a copy alone leaves it: where
    /// copies are evaluated apart from their type, event time is what the
    /// caller says (`levee run`: the minimum of the upstream partitions'
    /// watermarks, so that a lagging upstream's subjects do not expire).
    pub fn advance_watermark(&mut self, at: i64) {
        self.state.watermark = self.state.watermark.max(at);
    }

    /// Whether the last decoded event is being evaluated as a re-keyed copy.
    pub fn is_copy(&self) -> bool {
        self.graph.event_types[self.env.type_index as usize]
            .rekeyed
            .is_some()
    }

    /// Copies the decoded event's fields into the buffer of its type's
    /// copy `copy`, with a composite key's value; false, having changed
    /// nothing that is read, where the event lacks the key.
    fn fill_copy(&mut self, copy: u32) -> bool {
        let graph = &self.graph;
        let et = &graph.event_types[copy as usize];
        let Some(r) = &et.rekeyed else { return false };
        let (from, to) = (r.of as usize, copy as usize);
        if from != self.env.type_index as usize || from >= to {
            return false;
        }
        let (head, tail) = self.buffers.split_at_mut(to);
        let (src, dst) = (&head[from], &mut tail[0]);
        let parts = r.key.iter().map(|&s| &src[s as usize]);
        if r.key.len() > 1 {
            // The composite key's value, in the string it had (no
            // allocation once warm).
            let slot = &mut dst[et.subject as usize];
            let mut key = match std::mem::take(slot) {
                Val::Str(s) => s,
                _ => String::new(),
            };
            key.clear();
            let whole = write_key(parts, &mut key);
            *slot = Val::Str(key);
            if !whole {
                return false;
            }
        } else if !parts
            .into_iter()
            .all(|v| matches!(v, Val::Str(_) | Val::Int(_)))
        {
            return false;
        }
        let n = graph.event_types[from].fields.len();
        dst[..n].clone_from_slice(&src[..n]);
        true
    }
}

/// Writes a key's value (its parts' values joined by [`KEY_SEPARATOR`]);
/// false if a part is missing or not a string or integer.
fn write_key<'v>(parts: impl Iterator<Item = &'v Val>, out: &mut String) -> bool {
    for (i, v) in parts.enumerate() {
        if !matches!(v, Val::Str(_) | Val::Int(_)) {
            return false;
        }
        if i > 0 {
            out.push(KEY_SEPARATOR);
        }
        v.write_display(out);
    }
    true
}

/// Per event type: whether its events get verdicts, that is whether it is
/// a request (`request: true`) with a blocking control point of its own or
/// of a re-keyed copy. A copy answers as its type.
pub(crate) fn intercepts(graph: &RuleGraph) -> Vec<bool> {
    let types = &graph.event_types;
    let blocks = |t: &levee_rules::EventType| {
        t.control_points
            .iter()
            .any(|&c| graph.control_points[c as usize].action == Action::Block)
    };
    types
        .iter()
        .map(|t| {
            let origin = t.rekeyed.as_ref().map_or(t, |r| &types[r.of as usize]);
            origin.request
                && (blocks(origin) || origin.copies.iter().any(|&c| blocks(&types[c as usize])))
        })
        .collect()
}

#[cfg(test)]
mod tests;
