//! Every metric of `levee run`: names, labels and help texts live here and
//! nowhere else; the rest of the service calls the typed helpers below.
//!
//! Naming follows Prometheus' conventions: a `levee_` prefix, base units
//! (`_seconds`), counters end in `_total`, and every label value comes from a
//! fixed set: topics from the settings, event types, domains and control
//! points from the compiled rules, reasons and kinds from the enums here.
//! An event's `type` label is `unknown` unless the rules know the type.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `levee_events_total` | counter | `topic`, `type`, `outcome` (`ok`, `invalid`) |
//! | `levee_dlq_total` | counter | `reason` ([`DLQ_REASONS`]) |
//! | `levee_alerts_total` | counter | `domain`, `tier`, `action` |
//! | `levee_control_point_hits_total` | counter | `control_point`, `tier` |
//! | `levee_calendar_provisional_total` | counter | |
//! | `levee_data_quality_total` | counter | `event_type`, `field` |
//! | `levee_evaluate_seconds` | histogram | |
//! | `levee_end_to_end_seconds` | histogram | |
//! | `levee_consumer_lag` | gauge | `topic`, `partition` |
//! | `levee_kafka_errors_total` | counter | `kind` ([`KafkaErrorKind`]) |
//! | `levee_watermark_clamped_total` | counter | |
//! | `levee_misrouted_total` | counter | `topic`, `event_type` |
//! | `levee_ruleset_info` | gauge | `version` |
//! | `levee_ruleset_reloads_total` | counter | `outcome` ([`ReloadOutcome`]) |
//! | `levee_control_points` | gauge | |
//! | `levee_ready` | gauge | |
//! | `levee_stream_up` | gauge | |
//! | `levee_http_requests_total` | counter | `route`, `code` |
//! | `levee_http_request_seconds` | histogram | `route` |
//! | `levee_shadow_diff_total` | counter | `control_point`, `kind` (`added`, `removed`, `tier`) |
//! | `levee_shadow_warming_up` | gauge | `control_point` |
//! | `levee_shadow_reloads_total` | counter | `outcome` ([`ReloadOutcome`]) |
//! | `levee_interceptions_total` | counter | `path`, `outcome` ([`intercept::OUTCOMES`]) |
//! | `levee_interception_seconds` | histogram | `path` |
//! | `levee_repartition_forwarded_total` | counter | `copy` |
//! | `levee_repartition_delay_seconds` | histogram | |
//! | `levee_sample_events_total` | counter | `outcome` (`written`, `dropped`) |
//! | `levee_sample_bytes` | gauge | |
//! | `process_*` | | CPU, memory, open file descriptors, threads |

use std::sync::LazyLock;
use std::time::Duration;

use levee_engine::Alert;
#[cfg(test)]
use levee_engine::BadKind;
use levee_rules::RuleGraph;
use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use rdkafka::Statistics;

pub const EVENTS_TOTAL: &str = "levee_events_total";
pub const DLQ_TOTAL: &str = "levee_dlq_total";
pub const ALERTS_TOTAL: &str = "levee_alerts_total";
pub const CONTROL_POINT_HITS_TOTAL: &str = "levee_control_point_hits_total";
pub const CALENDAR_PROVISIONAL_TOTAL: &str = "levee_calendar_provisional_total";
pub const DATA_QUALITY_TOTAL: &str = "levee_data_quality_total";
pub const EVALUATE_SECONDS: &str = "levee_evaluate_seconds";
pub const END_TO_END_SECONDS: &str = "levee_end_to_end_seconds";
pub const CONSUMER_LAG: &str = "levee_consumer_lag";
pub const KAFKA_ERRORS_TOTAL: &str = "levee_kafka_errors_total";
pub const WATERMARK_CLAMPED_TOTAL: &str = "levee_watermark_clamped_total";
pub const MISROUTED_TOTAL: &str = "levee_misrouted_total";
pub const RULESET_INFO: &str = "levee_ruleset_info";
pub const RULESET_RELOADS_TOTAL: &str = "levee_ruleset_reloads_total";
pub const CONTROL_POINTS: &str = "levee_control_points";
pub const READY: &str = "levee_ready";
pub const STREAM_UP: &str = "levee_stream_up";
pub const HTTP_REQUESTS_TOTAL: &str = "levee_http_requests_total";
pub const HTTP_REQUEST_SECONDS: &str = "levee_http_request_seconds";
pub const TABLE_ROWS: &str = "levee_table_rows";
pub const TABLE_RECORDS_TOTAL: &str = "levee_table_records_total";
pub const TABLE_TOPIC_UNREAD: &str = "levee_table_topic_unread";
pub const SHADOW_DIFF_TOTAL: &str = "levee_shadow_diff_total";
pub const SHADOW_WARMING_UP: &str = "levee_shadow_warming_up";
pub const SHADOW_RELOADS_TOTAL: &str = "levee_shadow_reloads_total";
pub const SAMPLE_EVENTS_TOTAL: &str = "levee_sample_events_total";
pub const SAMPLE_BYTES: &str = "levee_sample_bytes";

/// Every levee metric family, for documentation and the dashboard test.
#[allow(dead_code)] // read by the tests
pub const NAMES: &[&str] = &[
    EVENTS_TOTAL,
    DLQ_TOTAL,
    ALERTS_TOTAL,
    CONTROL_POINT_HITS_TOTAL,
    CALENDAR_PROVISIONAL_TOTAL,
    DATA_QUALITY_TOTAL,
    EVALUATE_SECONDS,
    END_TO_END_SECONDS,
    CONSUMER_LAG,
    KAFKA_ERRORS_TOTAL,
    WATERMARK_CLAMPED_TOTAL,
    MISROUTED_TOTAL,
    RULESET_INFO,
    RULESET_RELOADS_TOTAL,
    CONTROL_POINTS,
    READY,
    STREAM_UP,
    HTTP_REQUESTS_TOTAL,
    HTTP_REQUEST_SECONDS,
    TABLE_ROWS,
    TABLE_RECORDS_TOTAL,
    TABLE_TOPIC_UNREAD,
    SHADOW_DIFF_TOTAL,
    SHADOW_WARMING_UP,
    SHADOW_RELOADS_TOTAL,
    intercept::INTERCEPTIONS_TOTAL,
    intercept::INTERCEPTION_SECONDS,
    repartition::REPARTITION_FORWARDED_TOTAL,
    repartition::REPARTITION_DELAY_SECONDS,
    people::PEOPLE_DELAY_SECONDS,
    people::PEOPLE_FILES_WRITTEN_TOTAL,
    people::PEOPLE_COPIES_SKIPPED_TOTAL,
    people::PEOPLE_LAG,
    SAMPLE_EVENTS_TOTAL,
    SAMPLE_BYTES,
];

/// The process collector's families (Linux).
#[allow(dead_code)] // read by the tests
pub const PROCESS_NAMES: &[&str] = &[
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

/// The `type` label of an event whose type the rules do not know.
pub const UNKNOWN_TYPE: &str = "unknown";

mod intercept;
mod labels;
mod people;
mod repartition;
pub use intercept::{interception, interception_took};
pub use labels::{KafkaErrorKind, ReloadOutcome, DLQ_REASONS, HTTP_ROUTES};
pub use people::{people_copy_skipped, people_delay, people_file_written, people_lag};
pub use repartition::{copy_delay, forwarded, init_copies};

struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    dlq: IntCounterVec,
    alerts: IntCounterVec,
    hits: IntCounterVec,
    provisional: IntCounter,
    data_quality: IntCounterVec,
    evaluate: Histogram,
    end_to_end: Histogram,
    lag: IntGaugeVec,
    kafka_errors: IntCounterVec,
    clamped: prometheus::IntCounter,
    misrouted: IntCounterVec,
    ruleset_info: IntGaugeVec,
    reloads: IntCounterVec,
    control_points: IntGauge,
    ready: IntGauge,
    stream_up: IntGauge,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    table_rows: IntGaugeVec,
    table_records: IntCounterVec,
    table_topic_unread: IntGaugeVec,
    shadow_diff: IntCounterVec,
    shadow_warming: IntGaugeVec,
    shadow_reloads: IntCounterVec,
    sample_events: IntCounterVec,
    sample_bytes: IntGauge,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    #[allow(clippy::expect_used)] // fixed names and labels: checked by the tests
    IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric definition")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    #[allow(clippy::expect_used)]
    IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric definition")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    #[allow(clippy::expect_used)]
    IntGauge::with_opts(Opts::new(name, help)).expect("a valid metric definition")
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    #[allow(clippy::expect_used)]
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("a valid metric definition")
}

impl Metrics {
    fn new() -> Self {
        let m = Metrics {
            registry: Registry::new(),
            events: counter(
                EVENTS_TOTAL,
                "Input messages consumed, by topic, event type and outcome (ok, or invalid: sent to the DLQ).",
                &["topic", "type", "outcome"],
            ),
            dlq: counter(
                DLQ_TOTAL,
                "Bad input messages sent to the dead-letter topic, by reason.",
                &["reason"],
            ),
            alerts: counter(
                ALERTS_TOTAL,
                "Alerts raised, by domain, tier and action (alert or block).",
                &["domain", "tier", "action"],
            ),
            hits: counter(
                CONTROL_POINT_HITS_TOTAL,
                "Alerts raised, by control point and tier.",
                &["control_point", "tier"],
            ),
            provisional: {
                #[allow(clippy::expect_used)]
                IntCounter::with_opts(Opts::new(
                    CALENDAR_PROVISIONAL_TOTAL,
                    "Alerts raised that read the working calendar on a day of a year whose holiday notice is not in the rules (their `calendar` is `provisional` or `unknown`); escalations not counted.",
                ))
                .expect("a valid metric definition")
            },
            data_quality: counter(
                DATA_QUALITY_TOTAL,
                "Implausible readings: data-quality alerts raised, by event type and the field the schema guards (`plausible`).",
                &["event_type", "field"],
            ),
            evaluate: histogram(
                EVALUATE_SECONDS,
                "Time to decode and evaluate one input message against the rules.",
                &[
                    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2,
                ],
            ),
            end_to_end: histogram(
                END_TO_END_SECONDS,
                "From an input message's Kafka timestamp to the broker's acknowledgement of an alert it raised (one observation per alert).",
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0,
                ],
            ),
            table_rows: gauge_vec(
                TABLE_ROWS,
                "Row versions a table holds (its topic's, or the rules' rows), by table.",
                &["table"],
            ),
            table_records: counter(
                TABLE_RECORDS_TOTAL,
                "Records of table topics, by table and outcome (applied, or rejected: logged and skipped).",
                &["table", "outcome"],
            ),
            table_topic_unread: gauge_vec(
                TABLE_TOPIC_UNREAD,
                "1 while a table with a topic holds the rules' rows because its topic could not be read (at start-up, or at the reload that brought the table), by table.",
                &["table"],
            ),
            lag: gauge_vec(
                CONSUMER_LAG,
                "Messages behind the partition's high watermark, per assigned input partition (librdkafka statistics).",
                &["topic", "partition"],
            ),
            kafka_errors: counter(
                KAFKA_ERRORS_TOTAL,
                "Errors talking to Kafka, by kind; librdkafka retries by itself.",
                &["kind"],
            ),
            clamped: {
                #[allow(clippy::expect_used)]
                prometheus::IntCounter::new(
                    WATERMARK_CLAMPED_TOTAL,
                    "Partition watermarks restored from the changelog beyond state.max_future_skew ahead of the clock, clamped to it.",
                )
                .expect("a valid metric definition")
            },
            misrouted: counter(
                MISROUTED_TOTAL,
                "Events of a stateful type whose Kafka key is not their subject, or on another stream's topic (input.on_misrouted says what became of them).",
                &["topic", "event_type"],
            ),
            ruleset_info: gauge_vec(
                RULESET_INFO,
                "The ruleset in force: 1, labelled with its content hash.",
                &["version"],
            ),
            reloads: counter(
                RULESET_RELOADS_TOTAL,
                "Rule reloads (SIGHUP or file change), by outcome.",
                &["outcome"],
            ),
            control_points: gauge(CONTROL_POINTS, "Control points in the ruleset in force."),
            stream_up: gauge(
                STREAM_UP,
                "1 while a broker connection is up and the stream flows, 0 while no broker is reachable.",
            ),
            ready: gauge(
                READY,
                "1 when the instance is ready (rules compiled, partitions assigned, broker reachable, no state being restored), else 0.",
            ),
            http_requests: counter(
                HTTP_REQUESTS_TOTAL,
                "HTTP requests answered, by route and status code.",
                &["route", "code"],
            ),
            http_seconds: {
                #[allow(clippy::expect_used)]
                HistogramVec::new(
                    HistogramOpts::new(
                        HTTP_REQUEST_SECONDS,
                        "Time to answer an HTTP request, by route.",
                    )
                    .buckets(vec![
                        2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 0.1, 1.0,
                    ]),
                    &["route"],
                )
                .expect("a valid metric definition")
            },
            shadow_diff: counter(
                SHADOW_DIFF_TOTAL,
                "Events on which the shadow rules' alerts differ from the live ones, by control point and kind (added: only the shadow alerted; removed: only the live rules; tier: both, at another tier).",
                &["control_point", "kind"],
            ),
            shadow_warming: gauge_vec(
                SHADOW_WARMING_UP,
                "Partitions on which a shadow control point is warming up: its windows are new and their longest has not yet passed in event time, so its differences are no divergence.",
                &["control_point"],
            ),
            shadow_reloads: counter(
                SHADOW_RELOADS_TOTAL,
                "Reloads of the shadow rules (SIGHUP or file change), by outcome.",
                &["outcome"],
            ),
            sample_events: counter(
                SAMPLE_EVENTS_TOTAL,
                "Events of sampled subjects ([sample]), by outcome: written to the sample, or dropped (the writer's queue was full, or writing failed).",
                &["outcome"],
            ),
            sample_bytes: gauge(
                SAMPLE_BYTES,
                "Bytes the sample's segment files take on disk (at most sample.max_bytes).",
            ),
        };
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(m.events.clone()),
            Box::new(m.dlq.clone()),
            Box::new(m.alerts.clone()),
            Box::new(m.hits.clone()),
            Box::new(m.provisional.clone()),
            Box::new(m.data_quality.clone()),
            Box::new(m.evaluate.clone()),
            Box::new(m.end_to_end.clone()),
            Box::new(m.lag.clone()),
            Box::new(m.kafka_errors.clone()),
            Box::new(m.clamped.clone()),
            Box::new(m.misrouted.clone()),
            Box::new(m.ruleset_info.clone()),
            Box::new(m.reloads.clone()),
            Box::new(m.control_points.clone()),
            Box::new(m.ready.clone()),
            Box::new(m.stream_up.clone()),
            Box::new(m.http_requests.clone()),
            Box::new(m.http_seconds.clone()),
            Box::new(m.table_rows.clone()),
            Box::new(m.table_records.clone()),
            Box::new(m.table_topic_unread.clone()),
            Box::new(m.shadow_diff.clone()),
            Box::new(m.shadow_warming.clone()),
            Box::new(m.shadow_reloads.clone()),
            Box::new(m.sample_events.clone()),
            Box::new(m.sample_bytes.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        for c in collectors {
            #[allow(clippy::expect_used)] // distinct names: checked by the tests
            m.registry.register(c).expect("metric names are unique");
        }
        intercept::register(&m.registry);
        repartition::register(&m.registry);
        people::register(&m.registry);
        // Known label values start at zero, so rate() and increase() see
        // the first occurrence.
        for reason in DLQ_REASONS {
            m.dlq.with_label_values(&[reason]);
        }
        for kind in KafkaErrorKind::ALL {
            m.kafka_errors.with_label_values(&[kind.as_str()]);
        }
        for outcome in ReloadOutcome::ALL {
            m.reloads.with_label_values(&[outcome.as_str()]);
            m.shadow_reloads.with_label_values(&[outcome.as_str()]);
        }
        for outcome in ["written", "dropped"] {
            m.sample_events.with_label_values(&[outcome]);
        }
        m
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Registers everything (call once at start-up so `/metrics` is complete
/// before the first event).
pub fn init() {
    LazyLock::force(&METRICS);
}

/// Starts the `levee_events_total` series of every input topic and the
/// event types whose stream it is, at zero.
pub fn init_events(inputs: &[String], graph: &RuleGraph) {
    for topic in inputs {
        for et in &graph.event_types {
            if topic_is_stream(topic, &et.stream) {
                for outcome in ["ok", "invalid"] {
                    METRICS
                        .events
                        .with_label_values(&[topic.as_str(), et.name.as_str(), outcome]);
                }
            }
        }
    }
}

/// The text exposition of every metric.
pub fn render() -> String {
    let families = METRICS.registry.gather();
    TextEncoder::new()
        .encode_to_string(&families)
        .unwrap_or_else(|e| format!("# encoding the metrics failed: {e}\n"))
}

/// The `levee_events_total{outcome="ok"}` counter of a topic and event type,
/// for a caller that counts many events and keeps it (looking the labels up
/// costs more than counting); `event_type` is a type of the rules.
pub fn events_ok(topic: &str, event_type: &str) -> prometheus::IntCounter {
    METRICS.events.with_label_values(&[topic, event_type, "ok"])
}

/// Whether `topic` is the stream `stream` (`events.trip`), also under a
/// prefix (`test-1.events.trip`).
pub fn topic_is_stream(topic: &str, stream: &str) -> bool {
    topic == stream
        || topic
            .strip_suffix(stream)
            .is_some_and(|head| head.ends_with('.'))
}

/// An event keyed or routed otherwise than its type says.
pub fn misrouted(topic: &str, event_type: &str) {
    METRICS
        .misrouted
        .with_label_values(&[topic, event_type])
        .inc();
}

/// A restored watermark was beyond the future bound and clamped.
pub fn watermark_clamped() {
    METRICS.clamped.inc();
}

/// `levee_evaluate_seconds` as one partition task observes it: kept in
/// the task (no atomic shared with the other tasks per message) until
/// [`LocalHistogram::flush`], once per batch.
pub fn evaluate_timer() -> prometheus::local::LocalHistogram {
    METRICS.evaluate.local()
}

/// One message sent to the DLQ; `reason` is one of [`DLQ_REASONS`]. Its
/// `type` label is its `type` field if the rules know that type, else `unknown`.
pub fn event_invalid(topic: &str, payload: &[u8], graph: &RuleGraph, reason: &'static str) {
    #[derive(serde::Deserialize)]
    struct TypeOnly<'a> {
        #[serde(borrow, rename = "type")]
        ty: Option<std::borrow::Cow<'a, str>>,
    }
    let ty = serde_json::from_slice::<TypeOnly<'_>>(payload)
        .ok()
        .and_then(|t| t.ty)
        .filter(|t| graph.event_type(t).is_some());
    let ty = ty.as_deref().unwrap_or(UNKNOWN_TYPE);
    METRICS
        .events
        .with_label_values(&[topic, ty, "invalid"])
        .inc();
    METRICS.dlq.with_label_values(&[reason]).inc();
}

/// One alert raised (handed to the producer).
/// A rectification refused, to the DLQ with `reason` (one of
/// [`DLQ_REASONS`]).
pub fn rectification_refused(reason: &'static str) {
    METRICS.dlq.with_label_values(&[reason]).inc();
}

pub fn alert_raised(alert: &Alert) {
    let tier = tier_label(alert.tier);
    METRICS
        .alerts
        .with_label_values(&[alert.domain.as_str(), tier, alert.action.as_str()])
        .inc();
    METRICS
        .hits
        .with_label_values(&[alert.control_point.as_str(), tier])
        .inc();
    if alert.calendar.is_some() && alert.escalated_from.is_none() {
        METRICS.provisional.inc();
    }
    let field = levee_rules::quality::guarded_field(&alert.control_point, &alert.event_type);
    if let Some(field) = field {
        METRICS
            .data_quality
            .with_label_values(&[alert.event_type.as_str(), field])
            .inc();
    }
}

fn tier_label(tier: u8) -> &'static str {
    match tier {
        0 | 1 => "1",
        2 => "2",
        _ => "3",
    }
}

/// The broker acknowledged an alert of a message with this Kafka timestamp
/// (milliseconds since the epoch).
pub fn alert_acknowledged(kafka_timestamp_ms: i64) {
    let now = chrono::Utc::now().timestamp_millis();
    let secs = (now - kafka_timestamp_ms).max(0) as f64 / 1000.0;
    METRICS.end_to_end.observe(secs);
}

pub fn kafka_error(kind: KafkaErrorKind) {
    METRICS
        .kafka_errors
        .with_label_values(&[kind.as_str()])
        .inc();
}

/// A ruleset came into force (at start-up or by a reload).
pub fn ruleset(graph: &RuleGraph) {
    METRICS.ruleset_info.reset();
    METRICS
        .ruleset_info
        .with_label_values(&[graph.version.as_str()])
        .set(1);
    METRICS
        .control_points
        .set(i64::try_from(graph.control_points.len()).unwrap_or(i64::MAX));
    // The rules' rows, until a table's topic is read; which topics are
    // unread is set again as they are read (a table gone is forgotten).
    METRICS.table_rows.reset();
    METRICS.table_topic_unread.reset();
    for t in &graph.tables {
        table_rows(&t.name, t.rows.len());
        if t.topic.is_some() {
            for outcome in ["applied", "rejected"] {
                METRICS
                    .table_records
                    .with_label_values(&[t.name.as_str(), outcome]);
            }
        }
    }
}

/// How many row versions a table holds now.
pub fn table_rows(table: &str, versions: usize) {
    METRICS
        .table_rows
        .with_label_values(&[table])
        .set(i64::try_from(versions).unwrap_or(i64::MAX));
}

/// Whether table `table`'s topic could not be read (it holds the rules'
/// rows) or was read.
pub fn table_topic_unread(table: &str, unread: bool) {
    METRICS
        .table_topic_unread
        .with_label_values(&[table])
        .set(i64::from(unread));
}

/// A record of a table topic applied (`true`) or rejected.
pub fn table_record(table: &str, applied: bool) {
    let outcome = if applied { "applied" } else { "rejected" };
    METRICS
        .table_records
        .with_label_values(&[table, outcome])
        .inc();
}

/// The shadow rules' alerts differ from the live ones on one event;
/// `kind` is `added`, `removed` or `tier`.
pub fn shadow_diff(control_point: &str, kind: &'static str) {
    METRICS
        .shadow_diff
        .with_label_values(&[control_point, kind])
        .inc();
}

/// One more (`up`) or one fewer partition on which a shadow control point
/// is warming up.
pub fn shadow_warming(control_point: &str, up: bool) {
    let g = METRICS.shadow_warming.with_label_values(&[control_point]);
    if up {
        g.inc();
    } else {
        g.dec();
    }
}

/// An event of a sampled subject written to the sample, or dropped.
pub fn sample_event(written: bool) {
    let outcome = if written { "written" } else { "dropped" };
    METRICS.sample_events.with_label_values(&[outcome]).inc();
}

/// The bytes the sample's segments take.
pub fn sample_bytes(bytes: u64) {
    METRICS
        .sample_bytes
        .set(i64::try_from(bytes).unwrap_or(i64::MAX));
}

/// A reload of the shadow rules.
pub fn shadow_reload(outcome: ReloadOutcome) {
    METRICS
        .shadow_reloads
        .with_label_values(&[outcome.as_str()])
        .inc();
}

pub fn reload(outcome: ReloadOutcome) {
    METRICS.reloads.with_label_values(&[outcome.as_str()]).inc();
}

pub fn set_ready(ready: bool) {
    METRICS.ready.set(i64::from(ready));
}

/// Whether a broker connection is up (`levee_stream_up`).
pub fn set_stream_up(up: bool) {
    METRICS.stream_up.set(i64::from(up));
}

/// One HTTP request answered; `route` is one of [`HTTP_ROUTES`].
pub fn http_request(route: &'static str, code: u16, took: Duration) {
    let code = code.to_string();
    METRICS
        .http_requests
        .with_label_values(&[route, code.as_str()])
        .inc();
    METRICS
        .http_seconds
        .with_label_values(&[route])
        .observe(took.as_secs_f64());
}

/// librdkafka's periodic statistics of the consumer: the lag of every
/// assigned input partition (series of partitions no longer assigned go
/// away), and whether any broker connection is up.
pub fn consumer_statistics(stats: &Statistics) -> bool {
    METRICS.lag.reset();
    for (topic, t) in &stats.topics {
        for (partition, p) in &t.partitions {
            // -1 is librdkafka's internal "unassigned" partition; a negative
            // lag means "not known yet".
            if *partition < 0 || p.consumer_lag < 0 {
                continue;
            }
            let partition = partition.to_string();
            METRICS
                .lag
                .with_label_values(&[topic.as_str(), partition.as_str()])
                .set(p.consumer_lag);
        }
    }
    // The brokers learned from the cluster, not the logical ones
    // (GroupCoordinator, the bootstrap entries).
    stats
        .brokers
        .values()
        .any(|b| b.nodeid >= 0 && b.state == "UP")
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
