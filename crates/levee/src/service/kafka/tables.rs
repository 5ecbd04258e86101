//! The tables' topics: every instance reads every partition of every table
//! topic (no consumer group, from the beginning, as Kafka Streams reads a
//! global table) into the rules' [`TableSet`], to the end before it
//! evaluates anything, then applies each change as it comes.
//!
//! A record is keyed by the table key (its parts joined by `|`, a scoped
//! table's branch first); its value is a row as JSON, or an array of the
//! key's versions, which replace what the key had; a tombstone (no value)
//! deletes the key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use levee_engine::tables::TableSet;
use levee_rules::RuleGraph;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::clients::{self, rectification_reader_config, ClientLog};
use super::error::PipelineError;
use crate::service::config::Settings;
use crate::service::metrics::{self, KafkaErrorKind};
use crate::service::reload::Rules;

const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Tries, a second apart, to find a table topic at start-up: a missing
/// topic is a configuration to fix, not a broker starting.
const MISSING_TRIES: u32 = 1;

/// Why a table record was not applied.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TableRecordError {
    #[error("{0}: no table reads this topic")]
    UnknownTopic(String),
    #[error("{topic}[{partition}]@{offset}: the key is missing or not UTF-8")]
    BadKey {
        topic: String,
        partition: i32,
        offset: i64,
    },
    #[error("{topic}[{partition}]@{offset}: not JSON: {reason}")]
    NotJson {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error("{topic}[{partition}]@{offset}: {error}")]
    Row {
        topic: String,
        partition: i32,
        offset: i64,
        error: levee_rules::table::RowError,
    },
    #[error("{topic}[{partition}]@{offset}: keyed `{key}` but its rows are of `{rows}`")]
    OtherKey {
        topic: String,
        partition: i32,
        offset: i64,
        key: String,
        rows: String,
    },
}

/// Applies one record of a table topic to `set` (the tables of `graph`).
pub fn apply(graph: &RuleGraph, set: &TableSet, m: &impl Message) -> Result<(), TableRecordError> {
    let (topic, partition, offset) = (m.topic().to_owned(), m.partition(), m.offset());
    let Some(i) = graph
        .tables
        .iter()
        .position(|t| t.topic.as_deref() == Some(m.topic()))
    else {
        return Err(TableRecordError::UnknownTopic(topic));
    };
    let key = m
        .key()
        .and_then(|k| std::str::from_utf8(k).ok())
        .ok_or_else(|| TableRecordError::BadKey {
            topic: topic.clone(),
            partition,
            offset,
        })?;
    let Some(payload) = m.payload() else {
        set.write(i).put(key, []);
        return Ok(());
    };
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| TableRecordError::NotJson {
            topic: topic.clone(),
            partition,
            offset,
            reason: e.to_string(),
        })?;
    let rows = graph.tables[i]
        .versions(&value, &graph.calendar)
        .map_err(|error| TableRecordError::Row {
            topic: topic.clone(),
            partition,
            offset,
            error,
        })?;
    if let Some(r) = rows.iter().find(|r| &*r.key != key) {
        return Err(TableRecordError::OtherKey {
            topic,
            partition,
            offset,
            key: key.to_owned(),
            rows: r.key.to_string(),
        });
    }
    set.write(i).put(key, rows);
    Ok(())
}

/// The reader of the table topics.
pub struct TableReader {
    consumer: BaseConsumer<ClientLog>,
    rules: Arc<Rules>,
    topics: Vec<String>,
}

impl TableReader {
    /// A reader of the table topics of the rules in force; `None` when no
    /// table has a topic.
    pub fn new(settings: &Settings, rules: Arc<Rules>) -> Result<Option<Self>, PipelineError> {
        let (graph, _) = rules.current();
        let topics: Vec<String> = graph
            .tables
            .iter()
            .filter_map(|t| t.topic.clone())
            .collect();
        if topics.is_empty() {
            return Ok(None);
        }
        let mut config = rectification_reader_config(settings);
        config.set(
            "client.id",
            format!("levee-{}-tables", settings.instance_id()),
        );
        let consumer = config.create_with_context(ClientLog).map_err(|e| {
            PipelineError::kafka("creating the table consumer", KafkaErrorKind::Other, e)
        })?;
        Ok(Some(TableReader {
            consumer,
            rules,
            topics,
        }))
    }

    /// Assigns every partition of every table topic from the beginning;
    /// the topics assigned. A topic still missing after a few tries is
    /// left out: its table keeps the rules' rows (logged).
    fn assign(&self, stop: &AtomicBool) -> Vec<String> {
        let mut tpl = TopicPartitionList::new();
        let mut assigned = Vec::new();
        for topic in &self.topics {
            for attempt in 1..=MISSING_TRIES {
                if stop.load(Ordering::Acquire) {
                    return Vec::new();
                }
                match clients::partition_count(&self.consumer, topic, CALL_TIMEOUT) {
                    Ok(n) => {
                        for p in 0..n {
                            let _ = tpl.add_partition_offset(topic, p, Offset::Beginning);
                        }
                        assigned.push(topic.clone());
                        break;
                    }
                    Err(e) if attempt == MISSING_TRIES => {
                        warn!(error = %e, topic = %topic, "table topic not readable: its table holds the rules' rows until a restart finds it");
                    }
                    Err(_) => std::thread::sleep(Duration::from_secs(1)),
                }
            }
        }
        if let Err(e) = self.consumer.assign(&tpl) {
            warn!(error = %e, "assigning the table topics failed");
            return Vec::new();
        }
        assigned
    }

    /// The end offset of every assigned partition that holds anything
    /// (its low and high watermarks, one request each: table topics have
    /// few partitions).
    fn ends(&self) -> HashMap<(String, i32), i64> {
        let mut ends = HashMap::new();
        let Ok(assigned) = self.consumer.assignment() else {
            return ends;
        };
        for e in assigned.elements() {
            match self
                .consumer
                .fetch_watermarks(e.topic(), e.partition(), CALL_TIMEOUT)
            {
                Ok((low, high)) if high > low => {
                    ends.insert((e.topic().to_owned(), e.partition()), high);
                }
                Ok(_) => {}
                Err(err) => {
                    warn!(error = %err, topic = e.topic(), partition = e.partition(), "cannot read a table partition's end")
                }
            }
        }
        ends
    }

    fn apply_one(&self, m: &impl Message) {
        let (graph, _, set) = self.rules.current_with_tables();
        let result = apply(&graph, &set, m);
        let Some(i) = graph
            .tables
            .iter()
            .position(|t| t.topic.as_deref() == Some(m.topic()))
        else {
            return;
        };
        let name = &graph.tables[i].name;
        metrics::table_record(name, result.is_ok());
        metrics::table_rows(name, set.read(i).versions());
        if let Err(e) = result {
            warn!(error = %e, "table record skipped");
        }
    }

    /// Reads every table topic to its end (until `stop`); returns the
    /// records read.
    pub fn catch_up(&mut self, stop: &AtomicBool) -> usize {
        let started = Instant::now();
        let assigned = self.assign(stop);
        if assigned.is_empty() {
            return 0;
        }
        // A topic's rows replace the rules' rows of its table.
        let (graph, _, set) = self.rules.current_with_tables();
        for (i, t) in graph.tables.iter().enumerate() {
            if t.topic
                .as_ref()
                .is_some_and(|topic| assigned.contains(topic))
            {
                set.write(i).replace_all([]);
            }
        }
        let mut ends = self.ends();
        let mut n = 0;
        while !ends.is_empty() && !stop.load(Ordering::Acquire) {
            let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let tp = (m.topic().to_owned(), m.partition());
            if ends.get(&tp).is_some_and(|end| m.offset() + 1 >= *end) {
                ends.remove(&tp);
            }
            self.apply_one(&m);
            n += 1;
        }
        let set = self.rules.tables();
        let rows: Vec<String> = set
            .names()
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let versions = set.read(i).versions();
                metrics::table_rows(name, versions);
                format!("{name}={versions}")
            })
            .collect();
        info!(
            records = n,
            elapsed_ms = crate::service::ms(started),
            rows = %rows.join(","),
            "tables read to the end of their topics"
        );
        n
    }

    /// Applies changes as they come, until `stop`.
    pub fn follow(self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => self.apply_one(&m),
                Some(Err(e)) => warn!(error = %e, "reading the table topics failed; retrying"),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rdkafka::message::{OwnedMessage, Timestamp};

    use super::*;

    const RULES: &str = r#"
tables:
  blacklist:
    key: supplier_id
    topic: tables.blacklist
    columns: { supplier_id: { type: string }, reason: { type: string } }
"#;

    fn message(key: Option<&str>, body: Option<&str>) -> OwnedMessage {
        OwnedMessage::new(
            body.map(|b| b.as_bytes().to_vec()),
            key.map(|k| k.as_bytes().to_vec()),
            "tables.blacklist".into(),
            Timestamp::NotAvailable,
            0,
            7,
            None,
        )
    }

    #[test]
    fn records_put_replace_and_delete_keys() {
        let sources = levee_rules::RuleSources::from_texts([("t.yaml", RULES)]);
        let graph = levee_rules::compile(&sources).unwrap().graph;
        let set = TableSet::from_graph(&graph);
        let row = r#"{"supplier_id":"S1","reason":"x","valid_from":"2026-12-01"}"#;
        apply(&graph, &set, &message(Some("S1"), Some(row))).unwrap();
        assert_eq!(set.read(0).len(), 1);
        let versions = r#"[{"supplier_id":"S1","valid_to":"2026-01-01"},{"supplier_id":"S1","valid_from":"2026-02-01"}]"#;
        apply(&graph, &set, &message(Some("S1"), Some(versions))).unwrap();
        assert_eq!((set.read(0).len(), set.read(0).versions()), (1, 2));
        apply(&graph, &set, &message(Some("S1"), None)).unwrap();
        assert!(set.read(0).is_empty());

        let e = apply(&graph, &set, &message(Some("S2"), Some(row))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tables.blacklist[0]@7: keyed `S2` but its rows are of `S1`"
        );
        let e = apply(&graph, &set, &message(None, Some(row))).unwrap_err();
        assert!(matches!(e, TableRecordError::BadKey { .. }));
        let e = apply(&graph, &set, &message(Some("S1"), Some("{"))).unwrap_err();
        assert!(matches!(e, TableRecordError::NotJson { .. }));
        let e = apply(
            &graph,
            &set,
            &message(Some("S1"), Some(r#"{"supplier_di":"S1"}"#)),
        )
        .unwrap_err();
        assert!(e.to_string().contains("did you mean `supplier_id`?"), "{e}");
        assert!(set.read(0).is_empty(), "nothing applied on an error");
    }
}
