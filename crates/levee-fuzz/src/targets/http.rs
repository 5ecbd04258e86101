//! The HTTP target: a request body of `POST /v1/evaluate` → the split the
//! handler makes (`levee_engine::body::split`) → each event evaluated in
//! what-if mode with the handler's clock bound, stopping at the first bad
//! one, as the handler does. Deep: at least one event evaluated.

use std::sync::Arc;

use levee_engine::body::{self, Events};
use levee_engine::{Clock, Engine, Source};
use levee_rules::RuleGraph;

use super::{bad_signature, check_promises, class_of, event_message, hit_signature};
use crate::corpus::Corpus;
use crate::event::{self, Knowledge};
use crate::json::J;
use crate::rng::{fnv, Rng};
use crate::runner::{Outcome, Target};

/// `http.max_batch` for the fuzzer: small enough that bodies over it are
/// cheap to build (the split does not depend on the number).
pub const MAX_BATCH: usize = 64;

/// The clock the handler would read: 2026-12-05T00:00:00Z, and the
/// default `state.max_future_skew` (1h).
const NOW: i64 = 1_796_428_800;
const SKEW: i64 = 3600;

#[derive(Debug)]
pub struct Http {
    graph: Arc<RuleGraph>,
    knowledge: Arc<Knowledge>,
    engine: Engine,
    pool: Vec<J>,
    last: Option<J>,
    /// Only events of this type (an index into the knowledge's types).
    focus: Option<usize>,
    source: Source,
}

impl Http {
    pub fn new(corpus: &Corpus) -> Result<Http, String> {
        let graph = super::shipped_graph(corpus)?;
        let knowledge = Arc::new(Knowledge::new(&graph, corpus));
        Ok(Http::with(graph, knowledge))
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

    pub fn with(graph: Arc<RuleGraph>, knowledge: Arc<Knowledge>) -> Http {
        Http {
            engine: what_if(&graph),
            graph,
            knowledge,
            pool: Vec::new(),
            last: None,
            focus: None,
            source: Source::Http { http: true },
        }
    }
}

fn what_if(graph: &Arc<RuleGraph>) -> Engine {
    let mut e = Engine::new(graph.clone());
    e.set_record(false);
    e.set_clock(Clock::Wall(NOW));
    e
}

impl Target for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn generate(&mut self, rng: &mut Rng, out: &mut Vec<u8>) {
        let k = &self.knowledge;
        let blank = |rng: &mut Rng, out: &mut Vec<u8>| {
            if rng.percent(10) {
                out.extend_from_slice([&b" "[..], b"\n", b"\r\n", b"\t"][rng.below(4)]);
            }
        };
        match rng.below(100) {
            0..=39 => {
                blank(rng, out);
                event_message(k, &self.pool, rng, &mut self.last, out, self.focus);
                blank(rng, out);
            }
            40..=93 => {
                let n = match rng.below(20) {
                    0 => MAX_BATCH + rng.range(0, 2) - 1,
                    1 => rng.range(8, 40),
                    _ => rng.small(6),
                };
                blank(rng, out);
                out.push(b'[');
                let mut first = None;
                for i in 0..n {
                    if i > 0 {
                        out.push(b',');
                        blank(rng, out);
                    }
                    let mut last = None;
                    if rng.percent(if i == 0 { 45 } else { 10 }) {
                        event_message(k, &self.pool, rng, &mut last, out, self.focus);
                    } else {
                        let ti = self.focus.unwrap_or_else(|| rng.below(k.seeds.len()));
                        k.seed_of(rng, ti).write(event::layout(rng), out);
                    }
                    if i == 0 {
                        first = last;
                    }
                }
                out.push(b']');
                blank(rng, out);
                self.last = first;
                if rng.percent(4) {
                    let other = rng.pick(&k.raw).cloned().unwrap_or_default();
                    event::damage(rng, out, &other);
                    self.last = None;
                }
            }
            _ => {
                const ODD: [&[u8]; 14] = [
                    b"[]",
                    b" [ ] ",
                    b"[",
                    b"]",
                    b"[1,2]",
                    b"[[]]",
                    b"[{}]",
                    b"[null]",
                    b"[\"x\"]",
                    b"[{},]",
                    b"\xef\xbb\xbf[{}]",
                    b"[{\"type\":\"trip\"}] trailing",
                    b"[1e999]",
                    b"",
                ];
                let mut bytes = ODD[rng.below(ODD.len())].to_vec();
                if rng.percent(30) {
                    let depth = rng.range(1, 200);
                    bytes = [vec![b'['; depth], bytes, vec![b']'; depth]].concat();
                }
                if rng.percent(30) {
                    event::damage(rng, &mut bytes, b"[{\"a\":1}]");
                }
                out.extend_from_slice(&bytes);
                self.last = None;
            }
        }
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let events = match body::split(input, MAX_BATCH) {
            Ok(e) => e,
            Err(e) => {
                let class = match e {
                    body::BodyError::NotArray(_) => "body: not an array",
                    body::BodyError::Empty => "body: empty array",
                    body::BodyError::TooMany { .. } => "body: too many",
                };
                return Outcome::shallow(class, fnv(class.as_bytes()));
            }
        };
        if let Events::Many(v) = &events {
            assert!(
                !v.is_empty() && v.len() <= MAX_BATCH,
                "{} events split",
                v.len()
            );
        }
        let mut outcome = None;
        let many = matches!(events, Events::Many(_));
        for (i, bytes) in events.as_slice().iter().enumerate() {
            let result = self.engine.process_bounded(
                bytes,
                &self.source,
                "2026-12-05T00:00:00.000Z",
                (NOW, SKEW),
            );
            check_promises(bytes, &result, &self.engine);
            match &result {
                Ok(p) => {
                    let sig = hit_signature(&self.engine, p) ^ u64::from(many);
                    outcome.get_or_insert(Outcome::deep(sig));
                }
                Err(bad) => {
                    if i == 0 {
                        let ty = self
                            .last
                            .as_ref()
                            .and_then(|j| j.get("type"))
                            .and_then(J::as_str);
                        let sig = bad_signature(&ty.unwrap_or_default(), bad) ^ u64::from(many);
                        outcome = Some(Outcome::shallow(class_of(bad), sig));
                    }
                    break;
                }
            }
        }
        outcome.unwrap_or_else(|| Outcome::shallow("body: nothing", 0))
    }

    fn keep(&mut self) {
        if let Some(e) = self.last.take() {
            if self.pool.len() < 4096 {
                self.pool.push(e);
            }
        }
    }

    fn reset(&mut self) {
        self.engine = what_if(&self.graph);
    }
}
