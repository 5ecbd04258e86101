//! `[sample]` in `levee run`: the partition tasks offer every well-formed
//! event they evaluated; the events of sampled subjects (a keyed choice over
//! event type and subject, [`Chooser`]) go over a bounded queue to one
//! writer thread, which hashes their sensitive fields and appends them to
//! the sample's segments ([`crate::sample`]). A task never waits for the
//! writer: an event that finds the queue full is dropped and counted
//! (`levee_sample_events_total{outcome="dropped"}`).
//!
//! The sample is one manifest's: when the key, the share or the rules'
//! sensitive fields change (at start-up or on a reload), the segments
//! written under the old manifest are deleted and a new sample begins.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;

use levee_engine::Engine;
use tracing::{info, warn};

use super::metrics;
use super::reload::Rules;
use super::sample::{SampleError, SampleSettings};
use crate::sample::keyed::{Chooser, Key};
use crate::sample::mask::mask;
use crate::sample::segments::Segments;
use crate::sample::{sensitive_fields, Manifest};

/// Events the writer's queue holds; more are dropped.
pub const QUEUE_EVENTS: usize = 8192;

/// One event of a sampled subject, as the task hands it over.
struct Sampled {
    event_type: String,
    payload: Vec<u8>,
}

/// The sampler the partition tasks share.
pub struct Sampler {
    chooser: Chooser,
    tx: SyncSender<Sampled>,
    /// The writer thread (the service lets it end with the process; it
    /// flushes whenever its queue is empty).
    #[cfg_attr(not(test), allow(dead_code))]
    writer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler").finish_non_exhaustive()
    }
}

impl Sampler {
    /// Starts the writer over `settings.dir`, or `Ok(None)` when sampling
    /// is off. The key comes from the environment `env` names in
    /// `sample.key_env`; missing while the rules mark sensitive fields, it
    /// is an error.
    pub fn start(
        settings: &SampleSettings,
        rules: Arc<Rules>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Sampler>, SampleError> {
        if !settings.enabled {
            return Ok(None);
        }
        let (graph, generation) = rules.current();
        let sensitive = sensitive_fields(&graph);
        let named: Vec<String> = sensitive
            .iter()
            .flat_map(|(t, fs)| fs.iter().map(move |f| format!("{t}.{f}")))
            .collect();
        let key = settings.key(env, &named)?;
        let per_10000 = settings.subjects_per_10000;
        let dir_error = |source| SampleError::Dir {
            dir: settings.dir.display().to_string(),
            source,
        };
        let segments =
            Segments::open(&settings.dir, settings.max_bytes.bytes()).map_err(dir_error)?;
        let mut writer = Writer {
            dir: settings.dir.clone(),
            manifest: Manifest::new(key.as_ref(), per_10000, &graph),
            rules,
            generation,
            segments,
            key: key.clone(),
            failing: false,
            unmasked: false,
        };
        writer
            .begin(Manifest::read(&settings.dir).ok().flatten())
            .map_err(dir_error)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE_EVENTS);
        let handle = std::thread::Builder::new()
            .name("levee-sample".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(dir_error)?;
        info!(
            dir = %settings.dir.display(),
            subjects_per_10000 = per_10000,
            max_bytes = settings.max_bytes.bytes(),
            key_fingerprint = key.as_ref().map(Key::fingerprint).unwrap_or_default(),
            hashed = %named.join(","),
            "sampling on"
        );
        Ok(Some(Sampler {
            chooser: Chooser::new(key.as_ref(), per_10000),
            tx,
            writer: Some(handle),
        }))
    }

    /// Offers the event `engine` last decoded and accepted (its bytes
    /// `payload`): queued if its subject is sampled, never waited for.
    pub fn offer(&self, engine: &Engine, payload: &[u8]) {
        let env = engine.envelope();
        let graph = engine.graph();
        let Some(et) = graph.event_types.get(env.type_index as usize) else {
            return;
        };
        let mut subject = String::new();
        engine
            .slot(env.type_index, et.subject)
            .write_display(&mut subject);
        self.offer_event(&env.event_type, &subject, payload);
    }

    /// [`Sampler::offer`] with the event's type and subject given.
    pub fn offer_event(&self, event_type: &str, subject: &str, payload: &[u8]) {
        if !self.chooser.chosen(event_type, subject) {
            return;
        }
        let sampled = Sampled {
            event_type: event_type.to_owned(),
            payload: payload.to_vec(),
        };
        if self.tx.try_send(sampled).is_err() {
            metrics::sample_event(false);
        }
    }

    /// Closes the queue and waits until the writer has written what it
    /// holds (tests; the service lets the process end).
    #[cfg(test)]
    pub fn finish(mut self) {
        let (tx, _) = mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

/// The writer thread's side.
struct Writer {
    dir: PathBuf,
    manifest: Manifest,
    rules: Arc<Rules>,
    /// The rules generation `manifest.sensitive` was taken from.
    generation: u64,
    segments: Segments,
    key: Option<Key>,
    /// Writing failed last time (logged once until it works again).
    failing: bool,
    /// An event could not be masked (logged once per rules generation).
    unmasked: bool,
}

impl Writer {
    /// Starts the sample: the segments of another manifest (`found`) are
    /// deleted, then the manifest is written.
    fn begin(&mut self, found: Option<Manifest>) -> std::io::Result<()> {
        if found.as_ref() != Some(&self.manifest) && self.segments.bytes() > 0 {
            warn!(
                dir = %self.dir.display(),
                "the sample was recorded under another key, share or set of sensitive fields: deleting it and starting afresh"
            );
            self.segments.clear()?;
        }
        self.manifest.write(&self.dir)?;
        metrics::sample_bytes(self.segments.bytes());
        Ok(())
    }

    fn run(mut self, rx: Receiver<Sampled>) {
        loop {
            let item = match rx.try_recv() {
                Ok(item) => item,
                Err(TryRecvError::Empty) => {
                    // Nothing waiting: what is written reaches the file.
                    let flushed = self.segments.flush().map(|()| true);
                    self.outcome(flushed, false);
                    match rx.recv() {
                        Ok(item) => item,
                        Err(_) => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            };
            self.refresh();
            let fields = self
                .manifest
                .sensitive
                .get(&item.event_type)
                .map_or(&[][..], Vec::as_slice);
            match mask(&item.payload, fields, self.key.as_ref()) {
                Ok(line) => {
                    let written = self.segments.write(&line);
                    self.outcome(written, true);
                }
                Err(e) => {
                    if !self.unmasked {
                        // A sensitive field gained on a reload without a key.
                        warn!(event_type = %item.event_type, error = %e, "events left out of the sample");
                        self.unmasked = true;
                    }
                    metrics::sample_event(false);
                }
            }
        }
        let flushed = self.segments.flush().map(|()| true);
        self.outcome(flushed, false);
    }

    /// Counts a write (`count`) and logs a failure once.
    fn outcome(&mut self, result: std::io::Result<bool>, count: bool) {
        match result {
            Ok(written) => {
                self.failing = false;
                if count {
                    metrics::sample_event(written);
                }
            }
            Err(e) => {
                if !self.failing {
                    warn!(dir = %self.dir.display(), error = %e, "writing the sample failed; its events are dropped until it works again");
                }
                self.failing = true;
                if count {
                    metrics::sample_event(false);
                }
            }
        }
        metrics::sample_bytes(self.segments.bytes());
    }

    /// After a reload that changed the sensitive fields, a new sample.
    fn refresh(&mut self) {
        if self.rules.generation() == self.generation {
            return;
        }
        let (graph, generation) = self.rules.current();
        self.generation = generation;
        self.unmasked = false;
        let sensitive: BTreeMap<String, Vec<String>> = sensitive_fields(&graph);
        if sensitive != self.manifest.sensitive {
            let old = std::mem::replace(&mut self.manifest.sensitive, sensitive);
            self.manifest.key_fingerprint = self.key.as_ref().map(Key::fingerprint);
            let old = Manifest {
                sensitive: old,
                ..self.manifest.clone()
            };
            let begun = self.begin(Some(old));
            self.outcome(begun.map(|()| true), false);
        }
    }
}

#[cfg(test)]
#[path = "sampler_tests.rs"]
mod tests;
