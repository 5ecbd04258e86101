//! `profiles.people` read whole by every instance: what
//! `GET /v1/people/{id}` answers.
//!
//! Each file is written by the one owner of its person's partition of the
//! people topic ([`super::stage`]); every instance reads every partition of
//! `profiles.people` (no group, from the beginning, committed records
//! only, as Kafka Streams reads a global table) and keeps each person's
//! latest file. So the same file comes from any instance, byte for byte,
//! whichever instance owns the person and after any instance's crash.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::info;

use crate::service::config::Settings;
use crate::service::kafka::clients::{self, ClientLog};
use crate::service::kafka::error::{report, PipelineError};
use crate::service::metrics::KafkaErrorKind;

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Every person's latest file, shared with the HTTP handler.
#[derive(Debug, Default)]
pub struct PeopleTable {
    files: Mutex<HashMap<String, Arc<str>>>,
    /// Read to the end of every partition as it was at start-up.
    caught_up: AtomicBool,
}

impl PeopleTable {
    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<str>>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether every file there was at start-up has been read.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// The latest file of `person` (JSON), if there is one.
    pub fn file(&self, person: &str) -> Option<Arc<str>> {
        self.files().get(person).cloned()
    }

    /// One record of `profiles.people`: a file, or (no payload) a person
    /// whose file is gone.
    pub fn record(&self, key: Option<&[u8]>, payload: Option<&[u8]>) {
        let Some(person) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        match payload.map(std::str::from_utf8) {
            Some(Ok(file)) => {
                self.files().insert(person.to_owned(), Arc::from(file));
            }
            Some(Err(_)) => {}
            None => {
                self.files().remove(person);
            }
        }
    }

    /// Starts the thread that reads `profiles.people` until `stop`.
    pub fn start(settings: &Settings, stop: Arc<AtomicBool>) -> Result<Arc<Self>, PipelineError> {
        let consumer: BaseConsumer<ClientLog> = clients::people_reader_config(settings)
            .create_with_context(ClientLog)
            .map_err(|e| {
                PipelineError::kafka("creating the people reader", KafkaErrorKind::Other, e)
            })?;
        let table = Arc::new(PeopleTable::default());
        let topic = settings.topics.people.clone();
        let t = Arc::clone(&table);
        std::thread::Builder::new()
            .name("levee-people".to_owned())
            .spawn(move || t.read(&consumer, &topic, &stop))
            .map_err(|e| {
                PipelineError::Misconfigured(format!("starting the people reader: {e}"))
            })?;
        Ok(table)
    }

    fn read(&self, consumer: &BaseConsumer<ClientLog>, topic: &str, stop: &AtomicBool) {
        let mut ends = loop {
            if stop.load(Ordering::Acquire) {
                return;
            }
            match assign_from_start(consumer, topic) {
                Ok(ends) => break ends,
                Err(e) => {
                    report(
                        KafkaErrorKind::Consume,
                        &e,
                        "cannot read people's files yet; retrying",
                    );
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        };
        let started = std::time::Instant::now();
        let mut read = 0u64;
        while !stop.load(Ordering::Acquire) {
            if ends.is_empty() && !self.caught_up() {
                self.caught_up.store(true, Ordering::Release);
                info!(
                    records = read,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "people's files read to the end of their topic"
                );
            }
            let Some(m) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            match m {
                Ok(m) => {
                    if ends
                        .get(&m.partition())
                        .is_some_and(|end| m.offset() + 1 >= *end)
                    {
                        ends.remove(&m.partition());
                    }
                    self.record(m.key(), m.payload());
                    read += 1;
                }
                Err(rdkafka::error::KafkaError::PartitionEOF(p)) => {
                    ends.remove(&p);
                }
                Err(e) => report(
                    KafkaErrorKind::Consume,
                    &e,
                    "reading people's files failed; retrying",
                ),
            }
        }
    }
}

/// Assigns every partition of `topic` from the beginning; the end of each
/// partition that holds anything now.
fn assign_from_start(
    consumer: &BaseConsumer<ClientLog>,
    topic: &str,
) -> Result<HashMap<i32, i64>, PipelineError> {
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    let count = clients::partition_count(consumer, topic, CALL_TIMEOUT)?;
    for p in 0..count {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, CALL_TIMEOUT)
            .map_err(|e| {
                PipelineError::kafka(
                    "reading the end of profiles.people",
                    KafkaErrorKind::Consume,
                    e,
                )
            })?;
        if high > low {
            ends.insert(p, high);
        }
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| {
                PipelineError::kafka("assigning profiles.people", KafkaErrorKind::Consume, e)
            })?;
    }
    consumer.assign(&tpl).map_err(|e| {
        PipelineError::kafka("assigning profiles.people", KafkaErrorKind::Consume, e)
    })?;
    Ok(ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_file_of_a_person_is_kept_and_a_tombstone_removes_it() {
        let t = PeopleTable::default();
        t.record(Some(b"E1"), Some(br#"{"person":"E1","alerts":1}"#));
        t.record(Some(b"E1"), Some(br#"{"person":"E1","alerts":2}"#));
        t.record(Some(b"E2"), Some(br#"{"person":"E2","alerts":1}"#));
        t.record(None, Some(b"{}"));
        assert_eq!(
            t.file("E1").as_deref(),
            Some(r#"{"person":"E1","alerts":2}"#)
        );
        t.record(Some(b"E2"), None);
        assert_eq!(t.file("E2"), None);
        assert_eq!(t.file("E3"), None);
        assert!(!t.caught_up());
    }
}
