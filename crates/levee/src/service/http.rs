//! The HTTP listener of `levee run` (`http.listen`, default `127.0.0.1:9464`).
//! `deploy/openapi.yaml` documents it; a test checks the two agree.
//!
//! | route | answers |
//! |---|---|
//! | `GET /metrics` | every metric, Prometheus text format (see [`super::metrics`]) |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 when ready, else 503; the body says what is missing (see [`super::health`]) |
//! | `POST /v1/evaluate` | one event or a JSON array of events → `verdict`, `control_points`, `alerts`, `ruleset_version` |
//! | `GET /v1/subjects/{id}` | the subject's profile, if this instance holds its partition (as of the last checkpoint) |
//! | `GET /v1/people/{id}` | a person's file (一人一档), its own token ([`super::people_api`]) |
//!
//! `/v1/*` need `Authorization: Bearer <http.token>` when a token is set
//! (401 otherwise) and answer 503 while the instance is not ready. Evaluate
//! first checks each event with the compiled rules in force, an [`Engine`]
//! in what-if mode (`set_record(false)`): bad input is 400 with the
//! engine's reason, and nothing reaches Kafka; bodies over
//! `http.max_body_bytes` and arrays over `http.max_batch` are 413. Then, in
//! `levee run`:
//! - a *request* (`request: true`) whose type keeps state and has a `block`
//!   point is decided by the stream itself ([`Interceptor`]): appended to
//!   its input topic, evaluated by its partition's owner in order, with its
//!   history, and the answer is that decision (`decided_by: stream`); no
//!   decision within `http.decision_timeout` is 503 with `Retry-After`;
//! - any other request is answered at once from the what-if evaluation
//!   (`decided_by: local`) and recorded on `decisions` all the same;
//! - an event that is no request is evaluated what-if only.
//!
//! ```sh
//! curl -s localhost:9464/v1/evaluate -d '{"event_id":"a1","type":"campaign_application",…}'
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use levee_engine::body::Events;
use levee_engine::{Alert, Engine, Source};
use levee_rules::RuleGraph;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::config::HttpSettings;
use super::health::health;
use super::kafka::intercept::{InterceptError, Interceptor};
use super::kafka::people::PeopleTable;
use super::metrics;
use super::reload::Rules;
use super::respond::{error, same};

/// What the handlers share.
struct Api {
    rules: Arc<Rules>,
    /// `Bearer <token>`, if a token is configured.
    bearer: Option<String>,
    max_batch: usize,
    /// `http.max_body_bytes`.
    max_body_bytes: usize,
    /// `http.read_timeout`: how long a body may take to arrive.
    read_timeout: std::time::Duration,
    /// `state.max_future_skew` in seconds.
    max_future_skew: i64,
    /// `alerts.languages` has `zh`.
    chinese: bool,
    /// What-if engines, re-used across requests (an engine's buffers are
    /// sized for the whole ruleset: building one per request would cost more
    /// than evaluating).
    engines: Mutex<Vec<Engine>>,
    /// The way into the stream (`levee run`); none: what-if answers only.
    stream: Option<Arc<Interceptor>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

/// Binds `http.listen`; an error names the address.
pub async fn bind(settings: &HttpSettings) -> anyhow::Result<TcpListener> {
    TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on http.listen = {}", settings.listen))
}

/// The routes, over the rules in force.
/// `max_future_skew` (seconds): events stamped further ahead of the clock
/// are refused as `future`, as the stream refuses them. `chinese`: alerts
/// carry `message_zh`, as the stream's do. `stream`: requests go through
/// it.
pub fn router(
    settings: &HttpSettings,
    max_future_skew: i64,
    chinese: bool,
    rules: Arc<Rules>,
    stream: Option<Arc<Interceptor>>,
    people: Option<Arc<PeopleTable>>,
) -> Router {
    let api = Arc::new(Api {
        rules,
        max_future_skew,
        chinese,
        bearer: (!settings.token.is_empty()).then(|| format!("Bearer {}", settings.token)),
        max_batch: settings.max_batch,
        max_body_bytes: settings.max_body_bytes,
        read_timeout: settings.read_timeout.as_duration(),
        engines: Mutex::new(Vec::new()),
        stream,
    });
    let people = people.map_or_else(Router::new, |files| {
        super::people_api::router(files, &settings.people_token)
    });
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/evaluate", post(evaluate))
        .route("/v1/subjects/{id}", get(subject))
        .with_state(api)
        .merge(people)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(middleware::from_fn(count))
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")
}

/// Counts every request by route and status code.
async fn count(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let route = metrics::HTTP_ROUTES
        .iter()
        .copied()
        .find(|r| *r == path)
        .unwrap_or(if path.starts_with("/v1/subjects/") {
            "/v1/subjects/{id}"
        } else if path.starts_with("/v1/people/") {
            "/v1/people/{id}"
        } else {
            "other"
        });
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::http_request(route, response.status().as_u16(), started.elapsed());
    response
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such route: see deploy/openapi.yaml",
    )
}

async fn metrics_text() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        metrics::render(),
    )
        .into_response()
}

async fn healthz() -> Response {
    Json(json!({ "status": "alive" })).into_response()
}

async fn readyz() -> Response {
    let status = health().status();
    let code = if status.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(status)).into_response()
}

/// The refusal, if any: 401 without the right bearer token, 503 while not ready.
fn refuse(api: &Api, headers: &HeaderMap) -> Option<Response> {
    if let Some(bearer) = &api.bearer {
        let given = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !same(given, bearer.as_bytes()) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "this endpoint needs the header `Authorization: Bearer <token>` with the configured http.token",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"levee\""),
            );
            return Some(r);
        }
    }
    let status = health().status();
    if !status.ready {
        let mut r = (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "error": "levee is not ready (see /readyz): try again shortly",
                "status": status,
            })),
        )
            .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Some(r);
    }
    None
}

/// The answer for one event.
#[derive(Debug, Serialize)]
struct Evaluation {
    event_id: String,
    verdict: String,
    /// The blocking control points (empty when the verdict is `allow`).
    control_points: Vec<String>,
    alerts: Vec<Alert>,
    ruleset_version: String,
    /// `stream` or `local` for a request (see the module doc).
    #[serde(skip_serializing_if = "Option::is_none")]
    decided_by: Option<&'static str>,
    /// How it is to be decided.
    #[serde(skip)]
    route: Route,
}

/// How an evaluated event is decided.
#[derive(Debug, Default)]
enum Route {
    /// No request: the what-if answer.
    #[default]
    WhatIf,
    /// A request that keeps no state: the what-if answer, recorded.
    Local,
    /// A request that keeps state: the stream's, for its `stream` and
    /// `subject`.
    Stream { stream: String, subject: String },
}

/// The answer for an array of events.
#[derive(Debug, Serialize)]
struct BatchEvaluation {
    /// `block` if any event is blocked.
    verdict: &'static str,
    control_points: Vec<String>,
    alerts: Vec<Alert>,
    ruleset_version: String,
    /// One per event, in order, without their alerts (those are above).
    results: Vec<BatchResult>,
}

#[derive(Debug, Serialize)]
struct BatchResult {
    event_id: String,
    verdict: String,
    control_points: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decided_by: Option<&'static str>,
}

async fn evaluate(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    // The token first: nobody without it gets levee to read a body.
    if let Some(r) = refuse(&api, &headers) {
        return r;
    }
    let read = tokio::time::timeout(
        api.read_timeout,
        axum::body::to_bytes(body, api.max_body_bytes),
    )
    .await;
    let body: Bytes = match read {
        Ok(Ok(b)) => b,
        Ok(Err(e)) if e.to_string().contains("length limit") => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than http.max_body_bytes",
            );
        }
        Ok(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {e}"),
            );
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive within http.read_timeout",
            );
        }
    };
    let (graph, mut engine) = api.engine();
    let now = super::clock::now_rfc3339();
    let bound = (super::clock::now_secs(), api.max_future_skew);
    // Deadlines as the stream would set them, from now.
    engine.set_clock(levee_engine::Clock::Wall(bound.0));
    let response = match levee_engine::body::split(&body, api.max_batch) {
        Err(e) if e.too_large() => error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Events::One(body)) => match evaluate_one(&mut engine, &graph, body, &now, bound) {
            Ok(e) => match decide(&api, e, body).await {
                Ok(e) => Json(e).into_response(),
                Err(r) => r,
            },
            Err(r) => bad_input(None, r),
        },
        Ok(Events::Many(events)) => {
            let mut batch = BatchEvaluation {
                verdict: "allow",
                control_points: Vec::new(),
                alerts: Vec::new(),
                ruleset_version: graph.version.clone(),
                results: Vec::with_capacity(events.len()),
            };
            let mut failed = None;
            for (i, raw) in events.iter().enumerate() {
                let evaluated = match evaluate_one(&mut engine, &graph, raw, &now, bound) {
                    Ok(e) => decide(&api, e, raw).await.map_err(|r| (Some(r), None)),
                    Err(bad) => Err((None, Some(bad))),
                };
                match evaluated {
                    Ok(e) => {
                        if e.verdict == "block" {
                            batch.verdict = "block";
                        }
                        for cp in &e.control_points {
                            if !batch.control_points.contains(cp) {
                                batch.control_points.push(cp.clone());
                            }
                        }
                        batch.alerts.extend(e.alerts);
                        batch.results.push(BatchResult {
                            event_id: e.event_id,
                            verdict: e.verdict,
                            control_points: e.control_points,
                            decided_by: e.decided_by,
                        });
                    }
                    Err((r, bad)) => {
                        failed = r.or_else(|| bad.map(|b| bad_input(Some(i), b)));
                        break;
                    }
                }
            }
            failed.unwrap_or_else(|| Json(batch).into_response())
        }
    };
    api.give_back(engine);
    response
}

fn bad_input(index: Option<usize>, bad: levee_engine::BadInput) -> Response {
    let mut body = json!({
        "error": match index {
            Some(i) => format!("event {i} of the array: {}", bad.reason),
            None => bad.reason.clone(),
        },
        "kind": bad.kind.as_str(),
    });
    if let Some(i) = index {
        body["index"] = Value::from(i);
    }
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn evaluate_one(
    engine: &mut Engine,
    graph: &RuleGraph,
    bytes: &[u8],
    now: &str,
    bound: (i64, i64),
) -> Result<Evaluation, levee_engine::BadInput> {
    let processed = engine.process_bounded(bytes, &Source::Http { http: true }, now, bound)?;
    // The stream's verdict: only requests are blocked; anything else is
    // allowed, its alerts raised all the same.
    let (verdict, control_points) = match processed.verdict {
        Some(v) => (v.verdict, v.control_points),
        None => ("allow", Vec::new()),
    };
    let et = &graph.event_types[engine.envelope().type_index as usize];
    let blocks = et
        .control_points
        .iter()
        .any(|&c| graph.control_points[c as usize].action == levee_rules::model::Action::Block);
    let route = match engine.routing() {
        _ if !et.request => Route::WhatIf,
        (stream, Some(subject)) if blocks => Route::Stream {
            stream: stream.to_owned(),
            subject,
        },
        _ => Route::Local,
    };
    Ok(Evaluation {
        event_id: engine.envelope().event_id.clone(),
        verdict: verdict.to_owned(),
        control_points,
        alerts: processed.alerts,
        ruleset_version: graph.version.clone(),
        decided_by: None,
        route,
    })
}

/// Decides a request as its route says (see the module doc): the what-if
/// answer, recorded, or the stream's own decision. `Err` is the response
/// to give instead.
async fn decide(api: &Api, mut e: Evaluation, raw: &[u8]) -> Result<Evaluation, Response> {
    let Some(stream) = &api.stream else {
        return Ok(e);
    };
    match std::mem::take(&mut e.route) {
        Route::WhatIf => Ok(e),
        Route::Local => {
            let started = Instant::now();
            let verdict = levee_engine::Verdict {
                event_id: e.event_id.clone(),
                verdict: if e.verdict == "block" {
                    "block"
                } else {
                    "allow"
                },
                control_points: e.control_points.clone(),
                ruleset_version: e.ruleset_version.clone(),
            };
            stream.record(&verdict, &e.alerts, raw);
            metrics::interception("local", "decided");
            metrics::interception_took("local", started.elapsed());
            e.decided_by = Some("local");
            Ok(e)
        }
        Route::Stream {
            stream: name,
            subject,
        } => {
            let Some(topic) = stream.topic_for(&name) else {
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("no input topic of this instance carries {name}: a request of this type cannot be decided by the stream (topics.inputs)"),
                ));
            };
            let started = Instant::now();
            let decided = stream.decide(topic, &subject, &e.event_id, raw).await;
            let outcome = match &decided {
                Ok(d) if d["verdict"] == "rejected" => "rejected",
                Ok(_) => "decided",
                Err(InterceptError::NotReady) => "not_ready",
                Err(InterceptError::Timeout(_)) => "timeout",
                Err(InterceptError::Append { .. }) => "failed",
            };
            metrics::interception("stream", outcome);
            metrics::interception_took("stream", started.elapsed());
            let d = decided.map_err(|err| {
                let mut r = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{err}: try again with the same event_id (it counts once)"),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            })?;
            if d["verdict"] == "rejected" {
                let body = json!({
                    "error": d["rejected"]["reason"],
                    "kind": d["rejected"]["kind"],
                    "decided_by": "stream",
                });
                return Err((StatusCode::BAD_REQUEST, Json(body)).into_response());
            }
            e.verdict = d["verdict"].as_str().unwrap_or("allow").to_owned();
            e.control_points =
                serde_json::from_value(d["control_points"].clone()).unwrap_or_default();
            e.alerts = serde_json::from_value(d["alerts"].clone()).unwrap_or_default();
            if let Some(v) = d["ruleset_version"].as_str() {
                e.ruleset_version = v.to_owned();
            }
            e.decided_by = Some("stream");
            Ok(e)
        }
    }
}

impl Api {
    /// An engine over the rules in force, in what-if mode.
    fn engine(&self) -> (Arc<RuleGraph>, Engine) {
        let (graph, _, tables) = self.rules.current_with_tables();
        let pooled = self.engines.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let engine = match pooled {
            Some(e) if Arc::ptr_eq(e.graph(), &graph) => e,
            _ => {
                let mut e = Engine::new(Arc::clone(&graph));
                e.set_tables(tables);
                e.set_record(false);
                e.set_chinese(self.chinese);
                e
            }
        };
        (graph, engine)
    }

    fn give_back(&self, engine: Engine) {
        let mut pool = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        // Engines of a replaced ruleset are dropped at their next use.
        if pool.len() < 64 {
            pool.push(engine);
        }
    }
}

async fn subject(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = refuse(&api, &headers) {
        return r;
    }
    match health().profile(&id) {
        Some(profile) => Json(profile).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!(
                "no profile of subject {id:?} on this instance: no alert about it yet, or its partition is assigned to another instance (every profile is on the profiles topic)"
            ),
        ),
    }
}
