//! `levee run`: the Kafka service.
//!
//! # Layout
//! - [`clock`]: the service's clock (the wall clock, shifted by `clock.offset`).
//! - [`config`]: the settings and their layers (`default.toml`, file, env, flags).
//! - [`duration`]: the settings' lengths of time (`500ms`, `5s`, `400d`).
//! - [`kafka`]: the Kafka pipeline: consumer thread, partition tasks,
//!   deliveries, checkpoints (at-least-once commits or exactly-once
//!   transactions), rebalances, the state changelog and its restore,
//!   rectifications (its module doc has a table of its modules).
//! - [`reload`]: the rules in force; reload on SIGHUP or file change.
//! - [`shadow`]: `[shadow]`, the shadow rules' settings.
//! - [`sample`]: `[sample]`, the recorded sample's settings and its key;
//!   [`sampler`]: the queue and writer thread that record it.
//! - [`size`]: the settings' amounts of bytes (`512MiB`).
//! - [`metrics`]: every Prometheus metric (names, labels, help) and its helpers.
//! - [`health`]: readiness flags the pipeline sets and `/readyz` reads.
//! - [`http`]: the HTTP listener: `/metrics`, `/healthz`, `/readyz`, `/v1/evaluate`, `/v1/subjects/{id}`.
//! - [`people_api`]: `GET /v1/people/{id}`, people's files, with a token of its own.
//! - this file: [`run`], which wires them up and shuts them down.

pub mod clock;
pub mod config;
pub mod duration;
pub mod health;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod pages;
pub mod people_api;
pub mod reload;
pub mod respond;
pub mod sample;
pub mod sampler;
pub mod shadow;
pub mod size;
pub mod topics;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use rdkafka::producer::Producer;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use self::config::{Delivery, Settings};
use self::kafka::clients::{self, ClientLog};
use self::kafka::delivery::{LeveeProducer, Producers};
use self::kafka::restore::ChangelogReader;
use self::kafka::transaction::{Alternating, Transactional};
use self::kafka::{Coordinator, LeveeConsumer};
use self::reload::Rules;

/// An error in the user's rules: reported as diagnostics, not as a crash.
#[derive(Debug, thiserror::Error)]
#[error("the rules in {dir} do not compile")]
pub struct RulesError {
    pub dir: String,
    pub diagnostics: Vec<levee_rules::Diagnostic>,
}

/// Runs the service until `shutdown` completes, then stops fetching,
/// delivers and commits in-flight work, leaves the group and returns.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let started = *STARTED.get_or_init(std::time::Instant::now);
    clock::set_offset(settings.clock.offset.secs());
    metrics::init();
    let rules = Rules::load(settings.rules.dir.clone()).map_err(|diagnostics| RulesError {
        dir: settings.rules.dir.display().to_string(),
        diagnostics,
    })?;
    let rules = Arc::new(rules);
    let shadow = match settings.shadow.dir() {
        Some(dir) => {
            let origin = reload::Origin::DirOrRevision {
                arg: dir.display().to_string(),
                rules: settings.rules.dir.clone(),
            };
            let shadow = Rules::load_shadow(origin).map_err(|diagnostics| RulesError {
                dir: dir.display().to_string(),
                diagnostics,
            })?;
            Some(Arc::new(shadow))
        }
        None => None,
    };
    let (graph, _) = rules.current();
    debug!(elapsed_ms = ms(started), "start-up: rules compiled");
    metrics::init_copies(&graph);
    // Before anything is consumed: a missing key stops the start.
    let sample = sampler::Sampler::start(&settings.sample, Arc::clone(&rules), |var| {
        std::env::var(var).ok()
    })?
    .map(Arc::new);
    metrics::init_events(&settings.topics.inputs, &graph);
    health::health().set_rules_compiled();
    health::health().set_broker_up(true);
    let listener = http::bind(&settings.http).await?;
    if let Ok(address) = listener.local_addr() {
        // Tests listen on port 0 and read the port from this line.
        info!("HTTP listener on http://{address}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let interceptor = kafka::intercept::Interceptor::start(&settings, Arc::clone(&stop))?;
    let people = kafka::people::PeopleTable::start(&settings, Arc::clone(&stop))?;
    let http_server = tokio::spawn(http::serve(
        listener,
        http::router(
            &settings.http,
            settings.state.max_future_skew.secs(),
            settings.alerts.chinese(),
            Arc::clone(&rules),
            Some(Arc::clone(&interceptor)),
            Some(people),
        ),
        std::future::pending(),
    ));

    debug!(elapsed_ms = ms(started), "start-up: HTTP listener bound");
    let producer: LeveeProducer = clients::producer_config(&settings)
        .create_with_context(ClientLog)
        .context("bad [kafka.producer] settings")?;
    let producer = Arc::new(producer);
    // Exactly-once: a second transactional producer, the two taking turns
    // (transaction::Alternating); at-least-once: the state producer.
    let state_producer = if settings.delivery == Delivery::ExactlyOnce {
        let p: LeveeProducer = clients::second_transactional_config(&settings)
            .create_with_context(ClientLog)
            .context("bad [kafka.producer] settings")?;
        let p = Arc::new(p);
        kafka::transaction::init(&producer).await?;
        kafka::transaction::init(&p).await?;
        p
    } else {
        // At-least-once: the changelog and profiles on a connection of their own.
        let p: LeveeProducer = clients::state_producer_config(&settings)
            .create_with_context(ClientLog)
            .context("bad [kafka.producer] settings")?;
        Arc::new(p)
    };

    debug!(elapsed_ms = ms(started), "start-up: producers created");
    // Every table topic is read to its end before any event is evaluated
    // (the group consumer starts after), then followed.
    tokio::pin!(shutdown);
    {
        let mut reader =
            kafka::tables::TableReader::new(&settings, Arc::clone(&rules), Arc::clone(&stop))?;
        let catch_stop = Arc::clone(&stop);
        let mut catching_up = tokio::task::spawn_blocking(move || {
            reader.catch_up(&catch_stop);
            reader
        });
        let reader = tokio::select! {
            r = &mut catching_up => r,
            () = &mut shutdown => {
                // Stopped before anything was evaluated: nothing to commit.
                info!("shutting down while reading the table topics");
                stop.store(true, Ordering::Release);
                let _ = catching_up.await;
                http_server.abort();
                return Ok(());
            }
        }
        .map_err(|e| anyhow!("reading the table topics: {e}"))?;
        let follow_stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("levee-tables".to_owned())
            .spawn(move || reader.follow(&follow_stop))
            .context("starting the table reader")?;
        debug!(elapsed_ms = ms(started), "start-up: tables read");
    }
    // State per other keys: the repartition topic is consumed as an input.
    let mut settings = settings;
    if let Some(topic) = kafka::repartition::check_at_start(&settings, &graph)? {
        info!(topic = %topic, "re-keyed copies: consuming the repartition topic");
        settings.topics.inputs.push(topic);
    }
    // People's files: folded from the people topic by its owners.
    let people_topic = kafka::people::check_at_start(&settings)?;
    kafka::people::stage::start(
        &settings,
        people_topic,
        Arc::clone(&rules),
        Arc::clone(&stop),
    )?;
    let changelog = Arc::new(ChangelogReader::new(&settings)?);
    let (producers, transactional): (Producers, Arc<dyn Transactional>) =
        if settings.delivery == Delivery::ExactlyOnce {
            let turns = Arc::new(Alternating::new(
                Arc::clone(&producer),
                Arc::clone(&state_producer),
            ));
            (
                Producers::transactional(Arc::clone(&turns), &settings.topics),
                turns,
            )
        } else {
            let split = Producers::new(
                Arc::clone(&producer),
                Arc::clone(&state_producer),
                &settings.topics,
            );
            (split, Arc::clone(&producer) as Arc<dyn Transactional>)
        };
    let context = Coordinator::new(
        settings.clone(),
        producers,
        transactional,
        Arc::clone(&rules),
        tokio::runtime::Handle::current(),
        changelog,
        shadow.clone(),
    )
    .with_sample(sample);
    let consumer: LeveeConsumer = clients::consumer_config(&settings)
        .create_with_context(context)
        .context("bad [kafka.consumer] settings")?;

    info!(
        version = env!("CARGO_PKG_VERSION"),
        brokers = %settings.kafka.brokers,
        group_id = %settings.kafka.group_id,
        instance_id = %settings.instance_id(),
        delivery = %settings.delivery,
        inputs = %settings.topics.inputs.join(","),
        ruleset_version = %graph.version,
        control_points = graph.control_points.len(),
        http = %settings.http.listen,
        "levee started"
    );

    let watcher = tokio::spawn(reload::watch(
        Arc::clone(&rules),
        settings.rules.reload_interval.as_duration(),
    ));
    let shadow_watcher = shadow.map(|s| {
        info!(rules = %settings.shadow.rules_dir.display(), topic = %settings.topics.shadow, ruleset_version = %s.version(), "shadow rules on");
        tokio::spawn(reload::watch(s, settings.rules.reload_interval.as_duration()))
    });

    let (done_tx, done_rx) = oneshot::channel();
    let interval = settings.kafka.commit_interval.as_duration();
    let thread_stop = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("levee-consumer".to_owned())
        .spawn(move || {
            let result =
                kafka::consume(consumer, interval, &thread_stop).map_err(anyhow::Error::from);
            let _ = done_tx.send(result);
        })
        .context("starting the consumer thread")?;

    tokio::pin!(done_rx);
    // After a stop, what is left of `shutdown_timeout`.
    let mut deadline: Option<tokio::time::Instant> = None;
    let result = tokio::select! {
        () = &mut shutdown => {
            info!("shutting down: stop fetching, finish in-flight work, commit, leave the group");
            stop.store(true, Ordering::Release);
            let limit = settings.shutdown_timeout.as_duration();
            let until = tokio::time::Instant::now() + limit;
            deadline = Some(until);
            match tokio::time::timeout_at(until, &mut done_rx).await {
                Ok(r) => r.unwrap_or_else(|_| Err(anyhow!("the consumer thread died"))),
                Err(_) => {
                    // The broker is away, most likely: what was not
                    // committed is redone by whoever takes the partitions.
                    warn!(
                        shutdown_timeout = %settings.shutdown_timeout,
                        "in-flight work not finished within shutdown_timeout; exiting with what was committed"
                    );
                    Ok(())
                }
            }
        }
        r = &mut done_rx => r.unwrap_or_else(|_| Err(anyhow!("the consumer thread died"))),
    };
    watcher.abort();
    if let Some(w) = shadow_watcher {
        w.abort();
    }
    let flush_for = deadline.map_or(Duration::from_secs(30), |d| {
        d.saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_millis(100))
    });
    let flushed = tokio::task::spawn_blocking(move || {
        // Two producers: half the time each.
        state_producer
            .flush(flush_for / 2)
            .and(producer.flush(flush_for / 2))
    })
    .await
    .map_err(|e| anyhow!("flushing the producer: {e}"))?;
    if let Err(e) = flushed {
        warn!(error = %e, "flushing the producer failed");
    }
    // Local decisions of requests still on their way to `decisions`.
    tokio::task::spawn_blocking(move || interceptor.flush(Duration::from_secs(1)))
        .await
        .map_err(|e| anyhow!("flushing the request producer: {e}"))?;
    http_server.abort();
    match &result {
        Ok(()) => info!("levee stopped"),
        Err(e) => tracing::error!(error = %format!("{e:#}"), "levee stopped on an error"),
    }
    result
}

/// When [`run`] started: the start-up timing logs count from here.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Milliseconds since `since`, for the start-up timing logs.
pub(crate) fn ms(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since [`run`] started (debug logs of the start-up).
pub(crate) fn since_start() -> u64 {
    STARTED.get().map_or(0, |s| ms(*s))
}
