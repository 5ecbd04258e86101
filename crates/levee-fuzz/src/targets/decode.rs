//! The decode target: a message → `Engine::process` against the shipped
//! catalog, as the stream and `levee replay` run it (state recorded, alerts
//! built, time let pass now and then). Deep: decoded and evaluated.

use std::sync::Arc;

use levee_engine::{Engine, Source};
use levee_rules::RuleGraph;

use super::{bad_signature, check_promises, class_of, event_message, hit_signature};
use crate::corpus::Corpus;
use crate::event::Knowledge;
use crate::json::J;
use crate::rng::Rng;
use crate::runner::{Outcome, Target};

/// Inputs kept for their new behaviour, at most.
const POOL: usize = 4096;

/// An engine is rebuilt this often, so state stays bounded.
const RESET_EVERY: u64 = 20_000;

#[derive(Debug)]
pub struct Decode {
    graph: Arc<RuleGraph>,
    knowledge: Arc<Knowledge>,
    engine: Engine,
    pool: Vec<J>,
    last: Option<J>,
    /// Only events of this type (an index into the knowledge's types).
    focus: Option<usize>,
    runs: u64,
    source: Source,
}

impl Decode {
    pub fn new(corpus: &Corpus) -> Result<Decode, String> {
        let graph = super::shipped_graph(corpus)?;
        let knowledge = Arc::new(Knowledge::new(&graph, corpus));
        Ok(Decode::with(graph, knowledge))
    }

    /// Generates only events of one type (`None` if the catalog has no
    /// such type).
    pub fn focus(mut self, event_type: &str) -> Option<Self> {
        self.focus = Some(
            self.knowledge
                .types
                .iter()
                .position(|t| t.name == event_type)?,
        );
        Some(self)
    }

    pub fn with(graph: Arc<RuleGraph>, knowledge: Arc<Knowledge>) -> Decode {
        Decode {
            engine: Engine::new(graph.clone()),
            graph,
            knowledge,
            pool: Vec::new(),
            last: None,
            focus: None,
            runs: 0,
            source: Source::File {
                file: "fuzz".to_owned(),
                line: 0,
            },
        }
    }

    pub fn knowledge(&self) -> &Arc<Knowledge> {
        &self.knowledge
    }
}

impl Target for Decode {
    fn name(&self) -> &'static str {
        "decode"
    }

    fn generate(&mut self, rng: &mut Rng, out: &mut Vec<u8>) {
        event_message(
            &self.knowledge,
            &self.pool,
            rng,
            &mut self.last,
            out,
            self.focus,
        );
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        self.runs += 1;
        let result = self
            .engine
            .process(input, &self.source, "2026-12-05T00:00:00.000Z");
        check_promises(input, &result, &self.engine);
        let outcome = match &result {
            Ok(p) => Outcome::deep(hit_signature(&self.engine, p)),
            Err(bad) => {
                let ty = self
                    .last
                    .as_ref()
                    .and_then(|j| j.get("type"))
                    .and_then(J::as_str);
                Outcome::shallow(class_of(bad), bad_signature(&ty.unwrap_or_default(), bad))
            }
        };
        outcome
    }

    fn housekeeping(&mut self) {
        // Let time pass and read back what changed, as the service does.
        let now = self.engine.watermark();
        let _ = self.engine.tick(now, "2026-12-05T00:00:00.000Z");
        let dirty = self.engine.take_dirty_subjects();
        let _ = self.engine.snapshot(dirty);
        let _ = self.engine.expire(90 * 86_400);
        if self.runs % RESET_EVERY < 1024 {
            self.reset();
        }
    }

    fn keep(&mut self) {
        if let Some(e) = self.last.take() {
            if self.pool.len() < POOL {
                self.pool.push(e);
            } else {
                let i = (self.runs as usize * 7919) % POOL;
                self.pool[i] = e;
            }
        }
    }

    fn reset(&mut self) {
        self.engine = Engine::new(self.graph.clone());
    }
}
