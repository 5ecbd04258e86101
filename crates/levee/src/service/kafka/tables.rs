//! The tables' topics: every instance reads every partition of every table
//! topic (no consumer group, from the beginning, as Kafka Streams reads a
//! global table) into the rules' [`TableSet`], to the end before it
//! evaluates anything, then applies each change as it comes.
//!
//! A record is keyed by the table key (its parts joined by `|`, a scoped
//! table's branch first); its value is a row as JSON, or an array of the
//! key's versions, which replace what the key had; a tombstone (no value)
//! deletes the key.
//!
//! A reload that brings a table with a topic (new, changed, or whose topic
//! was not found before) has [`ReloadReader`] read that topic to its end
//! into the new rules' rows before they take over; the reader follows it
//! from there.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use levee_engine::tables::TableSet;
use levee_rules::RuleGraph;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use super::clients::{self, rectification_reader_config, ClientLog};
use super::error::PipelineError;
use crate::service::config::Settings;
use crate::service::metrics::{self, KafkaErrorKind};
use crate::service::reload::{Rules, TableTopics};

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

/// Where each assigned partition's reading goes on: (topic, partition,
/// next offset).
type Positions = Vec<(String, i32, i64)>;

/// Assigns every partition of each of `topics` from the beginning to
/// `consumer`; the topics assigned. A topic not found is left out, its table keeps the
/// rules' rows (logged, `levee_table_topic_unread`).
fn assign(
    consumer: &BaseConsumer<ClientLog>,
    topics: &[(String, String)],
    stop: &AtomicBool,
) -> Vec<String> {
    let mut tpl = TopicPartitionList::new();
    let mut assigned = Vec::new();
    for (table, topic) in topics {
        for attempt in 1..=MISSING_TRIES {
            if stop.load(Ordering::Acquire) {
                return Vec::new();
            }
            match clients::partition_count(consumer, topic, CALL_TIMEOUT) {
                Ok(n) => {
                    for p in 0..n {
                        let _ = tpl.add_partition_offset(topic, p, Offset::Beginning);
                    }
                    assigned.push(topic.clone());
                    metrics::table_topic_unread(table, false);
                    break;
                }
                Err(e) if attempt == MISSING_TRIES => {
                    metrics::table_topic_unread(table, true);
                    warn!(error = %e, topic = %topic, table = %table, "table topic not readable: its table holds the rules' rows until a restart or a reload finds it");
                }
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        }
    }
    if let Err(e) = consumer.assign(&tpl) {
        warn!(error = %e, "assigning the table topics failed");
        return Vec::new();
    }
    assigned
}

/// Partitions whose watermarks are asked at once: each request waits for
/// its answer, and a topic's partitions may have several leaders.
const WATERMARK_REQUESTS: usize = 16;

/// The low and high watermarks of every partition of `topics` assigned to
/// `consumer`, asked [`WATERMARK_REQUESTS`] partitions at a time: one by
/// one, the 8 partitions of the shipped table topics took 3.5 s on
/// loopback (about 0.4 s a request), at once 0.5 s (`--bench
/// tables_load`).
fn watermarks(
    consumer: &BaseConsumer<ClientLog>,
    topics: &[String],
) -> HashMap<(String, i32), (i64, i64)> {
    let Ok(assigned) = consumer.assignment() else {
        return HashMap::new();
    };
    let partitions: Vec<(String, i32)> = assigned
        .elements()
        .iter()
        .filter(|e| topics.iter().any(|t| t == e.topic()))
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect();
    let mut marks = HashMap::new();
    for chunk in partitions.chunks(WATERMARK_REQUESTS) {
        let answers: Vec<_> = std::thread::scope(|scope| {
            let asked: Vec<_> = chunk
                .iter()
                .map(|(topic, partition)| {
                    scope.spawn(move || consumer.fetch_watermarks(topic, *partition, CALL_TIMEOUT))
                })
                .collect();
            asked.into_iter().map(|h| h.join()).collect()
        });
        for ((topic, partition), answer) in chunk.iter().zip(answers) {
            match answer {
                Ok(Ok(m)) => {
                    marks.insert((topic.clone(), *partition), m);
                }
                Ok(Err(err)) => {
                    warn!(error = %err, topic = %topic, partition, "cannot read a table partition's end")
                }
                Err(_) => {
                    warn!(topic = %topic, partition, "asking a table partition's end failed")
                }
            }
        }
    }
    marks
}

/// Polls `consumer` until every partition of `topics` is read to the end
/// it had when asked (or `stop`), handing each record to `apply`; the
/// records read, and where each partition goes on from.
fn read_to_end(
    consumer: &BaseConsumer<ClientLog>,
    topics: &[String],
    stop: &AtomicBool,
    mut apply: impl FnMut(&BorrowedMessage<'_>),
) -> (usize, Positions) {
    let started = Instant::now();
    let marks = watermarks(consumer, topics);
    debug!(
        partitions = marks.len(),
        elapsed_ms = crate::service::ms(started),
        "table partitions' ends read"
    );
    let mut next: HashMap<(String, i32), i64> = marks
        .iter()
        .map(|(tp, (_, high))| (tp.clone(), *high))
        .collect();
    let mut ends: HashMap<(String, i32), i64> = marks
        .into_iter()
        .filter(|(_, (low, high))| high > low)
        .map(|(tp, (_, high))| (tp, high))
        .collect();
    let mut n = 0;
    while !ends.is_empty() && !stop.load(Ordering::Acquire) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let tp = (m.topic().to_owned(), m.partition());
        if ends.get(&tp).is_some_and(|end| m.offset() + 1 >= *end) {
            ends.remove(&tp);
        }
        let after = next.entry(tp).or_insert(0);
        *after = (*after).max(m.offset() + 1);
        apply(&m);
        n += 1;
    }
    let positions = next.into_iter().map(|((t, p), o)| (t, p, o)).collect();
    (n, positions)
}

/// The tables of `graph` in `tables` (indices) as (table, topic).
fn table_topics(
    graph: &RuleGraph,
    tables: impl IntoIterator<Item = usize>,
) -> Vec<(String, String)> {
    tables
        .into_iter()
        .filter_map(|i| {
            let t = graph.tables.get(i)?;
            Some((t.name.clone(), t.topic.clone()?))
        })
        .collect()
}

/// Applies one record to the set in force, counted and logged.
fn apply_counted(graph: &RuleGraph, set: &TableSet, m: &impl Message) {
    let result = apply(graph, set, m);
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

/// The reader of the table topics.
pub struct TableReader {
    consumer: BaseConsumer<ClientLog>,
    rules: Arc<Rules>,
    /// Reads the tables a reload brings, and hands their partitions over.
    reloads: Arc<ReloadReader>,
    handed: mpsc::Receiver<Positions>,
}

impl TableReader {
    /// A reader of the table topics of the rules in force (and of those a
    /// reload brings, from the end of [`TableReader::catch_up`]).
    pub fn new(
        settings: &Settings,
        rules: Arc<Rules>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, PipelineError> {
        let mut config = rectification_reader_config(settings);
        config.set(
            "client.id",
            format!("levee-{}-tables", settings.instance_id()),
        );
        let consumer = config.create_with_context(ClientLog).map_err(|e| {
            PipelineError::kafka("creating the table consumer", KafkaErrorKind::Other, e)
        })?;
        config.set(
            "client.id",
            format!("levee-{}-tables-reload", settings.instance_id()),
        );
        let (hand, handed) = mpsc::channel();
        let reloads = Arc::new(ReloadReader {
            config,
            followed: Mutex::new(HashSet::new()),
            hand: Mutex::new(hand),
            stop,
        });
        Ok(TableReader {
            consumer,
            rules,
            reloads,
            handed,
        })
    }

    /// Reads every table topic to its end (until `stop`); returns the
    /// records read. From then on a reload reads the topics of the tables
    /// it brings.
    pub fn catch_up(&mut self, stop: &AtomicBool) -> usize {
        let started = Instant::now();
        let (graph, _, set) = self.rules.current_with_tables();
        let topics = table_topics(&graph, 0..graph.tables.len());
        let assigned = if topics.is_empty() {
            Vec::new()
        } else {
            assign(&self.consumer, &topics, stop)
        };
        debug!(
            topics = assigned.len(),
            elapsed_ms = crate::service::ms(started),
            "table topics assigned"
        );
        self.reloads.follow(&assigned);
        self.rules
            .set_table_topics(Arc::clone(&self.reloads) as Arc<dyn TableTopics>);
        if assigned.is_empty() {
            return 0;
        }
        // A topic's rows replace the rules' rows of its table.
        for (i, t) in graph.tables.iter().enumerate() {
            if t.topic
                .as_ref()
                .is_some_and(|topic| assigned.contains(topic))
            {
                set.write(i).replace_all([]);
            }
        }
        let rules = Arc::clone(&self.rules);
        let (n, _) = read_to_end(&self.consumer, &assigned, stop, |m| {
            let (graph, _, set) = rules.current_with_tables();
            apply_counted(&graph, &set, m);
        });
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

    /// Partitions a reload read to their end, followed from there on.
    fn take_over(&self, handed: Positions) {
        let mut tpl = match self.consumer.position() {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "cannot read the table reader's positions; the tables a reload brought are not followed");
                return;
            }
        };
        // Partitions not read yet (empty until now) start at the beginning.
        for e in tpl.clone().elements() {
            if e.offset() == Offset::Invalid {
                let _ = tpl.set_partition_offset(e.topic(), e.partition(), Offset::Beginning);
            }
        }
        let mut added = 0;
        for (topic, partition, offset) in handed {
            if tpl.find_partition(&topic, partition).is_none() {
                let _ = tpl.add_partition_offset(&topic, partition, Offset::Offset(offset));
                added += 1;
            }
        }
        if added == 0 {
            return;
        }
        match self.consumer.assign(&tpl) {
            Ok(()) => info!(
                partitions = added,
                "following the table topics a reload brought"
            ),
            Err(e) => warn!(error = %e, "assigning the table topics a reload brought failed"),
        }
    }

    /// Applies changes as they come, until `stop`.
    pub fn follow(self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            while let Ok(handed) = self.handed.try_recv() {
                self.take_over(handed);
            }
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let (graph, _, set) = self.rules.current_with_tables();
                    apply_counted(&graph, &set, &m);
                }
                Some(Err(e)) => warn!(error = %e, "reading the table topics failed; retrying"),
                None => {}
            }
        }
    }
}

/// Reads, at a reload, the topics of the tables it brings to their end
/// into the new rules' set (on a consumer of its own, before the new rules
/// take over), then hands their partitions to the [`TableReader`], which
/// follows them from there.
pub struct ReloadReader {
    config: ClientConfig,
    /// The topics the table reader follows.
    followed: Mutex<HashSet<String>>,
    hand: Mutex<mpsc::Sender<Positions>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for ReloadReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadReader").finish_non_exhaustive()
    }
}

impl ReloadReader {
    fn follow(&self, topics: &[String]) {
        self.followed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(topics.iter().cloned());
    }
}

impl TableTopics for ReloadReader {
    fn follows(&self, topic: &str) -> bool {
        self.followed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(topic)
    }

    fn read_to_end(&self, graph: &RuleGraph, set: &TableSet, tables: &[usize]) -> bool {
        let started = Instant::now();
        let topics = table_topics(graph, tables.iter().copied());
        let consumer: BaseConsumer<ClientLog> = match self.config.create_with_context(ClientLog) {
            Ok(c) => c,
            Err(e) => {
                for (table, _) in &topics {
                    metrics::table_topic_unread(table, true);
                }
                warn!(error = %e, "cannot create a consumer for the table topics a reload brings: those tables hold the rules' rows");
                return true;
            }
        };
        let assigned = assign(&consumer, &topics, &self.stop);
        for &i in tables {
            if graph.tables[i]
                .topic
                .as_ref()
                .is_some_and(|topic| assigned.contains(topic))
            {
                set.write(i).replace_all([]);
            }
        }
        let (n, positions) = read_to_end(&consumer, &assigned, &self.stop, |m| {
            apply_counted(graph, set, m);
        });
        if self.stop.load(Ordering::Acquire) {
            return false;
        }
        let new: Vec<(String, i32, i64)> = {
            let followed = self.followed.lock().unwrap_or_else(|p| p.into_inner());
            positions
                .into_iter()
                .filter(|(topic, _, _)| !followed.contains(topic))
                .collect()
        };
        self.follow(&assigned);
        if !new.is_empty() {
            let _ = self
                .hand
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .send(new);
        }
        let names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
        info!(
            tables = %names.join(","),
            records = n,
            elapsed_ms = crate::service::ms(started),
            "tables a reload brought read to the end of their topics"
        );
        true
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
