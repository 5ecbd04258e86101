//! `POST /v1/evaluate` and `GET /v1/subjects/{id}` as an approval platform
//! calls them, every error status, and `deploy/openapi.yaml` checked against
//! the running server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/http.rs"]
mod http;
#[path = "http_api/requests.rs"]
mod requests;
mod support;

use std::sync::Arc;
use std::time::Duration;

use http::{http_address, http_config, Conn};
use requests::{
    auth, campaign, catalog_verdict, payment, post, raw_exchange, start, MAX_BATCH, MAX_BODY, TOKEN,
};
use serde_json::{json, Value};
use support::{Setup, WAIT};

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_platform_gets_block_and_allow_as_the_catalog_says() {
    let (setup, levee, addr) = start("http_approval").await;
    let graph = Arc::new(levee_rules::compile_dir(&setup.rules).unwrap().graph);
    let mut engine = levee_engine::Engine::new(Arc::clone(&graph));
    engine.set_record(false);
    let catalog: Value = {
        let out = std::process::Command::new(support::LEVEE)
            .arg("--rules")
            .arg(&setup.rules)
            .args(["catalog", "--format", "json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let action = |id: &str| {
        catalog
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["action"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(action("MC-001"), "block");
    assert_eq!(action("PS-001"), "block");

    // (event, verdict, a control point that must block)
    let cases = [
        (
            campaign("CA-301", 301.0, Value::Null),
            "block",
            Some("MC-001"),
        ),
        (
            campaign("CA-650", 650.0, Value::Null),
            "block",
            Some("MC-001"),
        ),
        (campaign("CA-300", 300.0, json!("PTN-0101")), "allow", None),
        (campaign("CA-120", 120.0, json!("PTN-0101")), "allow", None),
        (payment("PAY-over", 100_000.01), "block", Some("PS-001")),
        (payment("PAY-far-over", 300_000.0), "block", Some("PS-001")),
        (payment("PAY-exact", 100_000.0), "allow", None),
    ];
    let mut conn = Conn::open(addr).unwrap();
    let (k, v) = auth();
    for (event, verdict, blocker) in &cases {
        let r = conn
            .send(
                "POST",
                "/v1/evaluate",
                &[(k, &v)],
                &serde_json::to_vec(event).unwrap(),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        assert_eq!(body["verdict"], *verdict, "{event}: {body}");
        assert_eq!(body["event_id"], event["event_id"]);
        assert_eq!(body["ruleset_version"], graph.version.as_str());
        let blocking: Vec<String> = body["control_points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        if let Some(cp) = blocker {
            assert!(blocking.iter().any(|b| b == cp), "{cp} not named: {body}");
        }
        // Exactly the catalog's verdict and blocking control points.
        let (want, want_blocking) = catalog_verdict(&mut engine, event);
        assert_eq!(
            (verdict.to_string(), blocking.clone()),
            (want, want_blocking)
        );
        // Requests of a type that keeps state are decided by the stream:
        // their alerts were raised from the input topic.
        let decided_by = body["decided_by"].as_str().unwrap();
        for alert in body["alerts"].as_array().unwrap() {
            if decided_by == "stream" {
                let topic = alert["source"]["topic"].as_str().unwrap();
                assert_eq!(topic, setup.topic_of(&serde_json::to_vec(event).unwrap()));
            } else {
                assert_eq!(alert["source"], json!({"http": true}), "{alert}");
            }
            assert_eq!(alert["event_id"], event["event_id"]);
            for field in [
                "alert_id",
                "control_point",
                "domain",
                "title",
                "tier",
                "notify",
                "action",
                "subject",
                "branch",
                "event_type",
                "occurred_at",
                "detected_at",
                "ruleset_version",
                "message",
                "evidence",
            ] {
                assert!(!alert[field].is_null(), "{field} missing: {alert}");
            }
        }
        if *verdict == "block" {
            let tier = body["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["control_point"] == blocker.unwrap())
                .unwrap()["tier"]
                .as_u64()
                .unwrap();
            assert!((1..=3).contains(&tier));
        }
    }
    // MC-001's tier 2 is above 600 per user.
    let body = post(addr, &serde_json::to_vec(&cases[1].0).unwrap()).json();
    let mc = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["control_point"] == "MC-001")
        .unwrap();
    assert_eq!(mc["tier"], 2, "{mc}");

    // A batch: one verdict over all, per-event results in order.
    let batch: Vec<Value> = cases.iter().map(|(e, _, _)| e.clone()).collect();
    let r = post(addr, &serde_json::to_vec(&batch).unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["verdict"], "block");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), cases.len());
    for ((event, verdict, _), result) in cases.iter().zip(results) {
        assert_eq!(result["event_id"], event["event_id"]);
        assert_eq!(result["verdict"], *verdict, "{result}");
    }
    let named: Vec<&str> = body["control_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        named.contains(&"MC-001") && named.contains(&"PS-001"),
        "{body}"
    );

    // Asking twice gives the same answer.
    let once = post(addr, &serde_json::to_vec(&cases[0].0).unwrap()).json();
    let twice = post(addr, &serde_json::to_vec(&cases[0].0).unwrap()).json();
    assert_eq!(
        once["alerts"].as_array().unwrap().len(),
        twice["alerts"].as_array().unwrap().len()
    );
    assert_eq!(once["verdict"], twice["verdict"]);
    // Every request is recorded on `decisions`, with who decided it; an
    // event that is no request is evaluated what-if: nothing of it reaches
    // Kafka.
    let trip = json!({
        "event_id": "TRIP-http", "type": "trip", "occurred_at": "2026-11-06T09:00:00+08:00",
        "branch": "wuhan", "vehicle_id": "V-http", "driver_id": "E9", "distance_km": 10,
        "fuel_used_l": 12, "standard_l_per_100km": 8
    });
    let r = post(addr, &serde_json::to_vec(&trip).unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json().get("decided_by").is_none(), "{}", r.text());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let decisions: Vec<Value> = support::broker()
        .consume_all(&setup.decisions, WAIT)
        .await
        .unwrap()
        .iter()
        .map(|m| serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap())
        .collect();
    for (event, verdict, _) in &cases {
        let d = decisions
            .iter()
            .find(|d| d["event_id"] == event["event_id"])
            .unwrap_or_else(|| panic!("no decision for {event}: {decisions:?}"));
        assert_eq!(
            (&d["source"], &d["verdict"]),
            (&json!("http"), &json!(verdict)),
            "{d}"
        );
        assert_eq!(d["request"], *event, "{d}");
    }
    let alerts = setup.alerts().await;
    assert!(
        alerts.iter().all(|a| a["event_id"] != "TRIP-http"),
        "a what-if evaluation produced alerts to Kafka"
    );

    // HTTP requests are counted.
    let metrics = http::get(addr, "/metrics").unwrap().text();
    assert!(
        metrics.contains("levee_http_requests_total{code=\"200\",route=\"/v1/evaluate\"}"),
        "{metrics}"
    );
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_precise_statuses() {
    let (_setup, levee, addr) = start("http_errors").await;
    let good = serde_json::to_vec(&payment("P1", 1.0)).unwrap();

    // 401: no token, a wrong one.
    for headers in [vec![], vec![("Authorization", "Bearer nope")]] {
        let r = http::request(addr, "POST", "/v1/evaluate", &headers, &good).unwrap();
        assert_eq!(r.status, 401, "{}", r.text());
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        assert!(r.json()["error"].as_str().unwrap().contains("Bearer"));
        let r = http::request(addr, "GET", "/v1/subjects/S1", &headers, b"").unwrap();
        assert_eq!(r.status, 401);
    }
    // The probes and metrics need no token.
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(http::get(addr, path).unwrap().status, 200, "{path}");
    }
    // The token is checked before the body is read: a client without it
    // that announces a large body and sends none is answered at once.
    let answer = raw_exchange(
        addr,
        "POST /v1/evaluate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // A body that does not arrive within http.read_timeout (1 s here): 408.
    let started = std::time::Instant::now();
    let answer = raw_exchange(
        addr,
        &format!(
            "POST /v1/evaluate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n{{\"event"
        ),
        Duration::from_secs(10),
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // 400 with the engine's reason.
    let mut missing = payment("P2", 1.0);
    missing
        .as_object_mut()
        .unwrap()
        .remove("contract_value_cny");
    let mut wrong = payment("P3", 1.0);
    wrong["amount_cny"] = json!("a lot");
    // Stamped in 2099: refused as the stream refuses it.
    let mut future = payment("P4", 1.0);
    future["occurred_at"] = json!("2099-01-01T00:00:00+08:00");
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"{not json".to_vec(), "not_json", "not valid JSON"),
        (b"42".to_vec(), "not_object", "JSON object"),
        (
            br#"{"event_id":"x","type":"teleport","occurred_at":"2026-11-06T09:00:00+08:00","branch":"w"}"#.to_vec(),
            "unknown_type",
            "teleport",
        ),
        (serde_json::to_vec(&missing).unwrap(), "missing_field", "contract_value_cny"),
        (serde_json::to_vec(&wrong).unwrap(), "wrong_type", "amount_cny"),
        (serde_json::to_vec(&future).unwrap(), "future", "2099-01-01"),
    ];
    for (body, kind, names) in &cases {
        let r = post(addr, body);
        assert_eq!(r.status, 400, "{}", r.text());
        let v = r.json();
        assert_eq!(v["kind"], *kind, "{v}");
        assert!(v["error"].as_str().unwrap().contains(names), "{v}");
    }
    let r = post(addr, b"[]");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("empty"));
    let r = post(addr, b"[1, 2");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("array"));
    let batch = json!([payment("P4", 1.0), missing, payment("P5", 1.0)]);
    let r = post(addr, &serde_json::to_vec(&batch).unwrap());
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["index"], 1, "{v}");
    assert!(v["error"].as_str().unwrap().contains("event 1"), "{v}");

    // 413: too many bytes, too many events.
    let mut big = payment("P6", 1.0);
    big["note"] = json!("x".repeat(MAX_BODY));
    let r = post(addr, &serde_json::to_vec(&big).unwrap());
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("max_body_bytes"));
    let many: Vec<Value> = (0..=MAX_BATCH)
        .map(|i| payment(&format!("M{i}"), 1.0))
        .collect();
    let r = post(addr, &serde_json::to_vec(&many).unwrap());
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("max_batch"));
    let r = post(addr, &serde_json::to_vec(&many[..MAX_BATCH]).unwrap());
    assert_eq!(r.status, 200, "{}", r.text());

    // Unknown routes and methods.
    assert_eq!(http::get(addr, "/v2/nothing").unwrap().status, 404);
    assert_eq!(http::get(addr, "/v1/evaluate").unwrap().status, 405);

    // Subjects this instance does not hold.
    let (k, v) = auth();
    let r = http::request(addr, "GET", "/v1/subjects/nobody-here", &[(k, &v)], b"").unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("nobody-here"));
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}

/// An instance that cannot reach any broker is alive but answers 503.
#[tokio::test(flavor = "multi_thread")]
async fn not_ready_is_503() {
    let setup = Setup::new("http_not_ready").await;
    let config = http_config(&setup, "");
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        &format!("brokers = \"{}\"", support::broker().bootstrap_servers()),
        "brokers = \"127.0.0.1:1\"",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let mut levee = setup.spawn(&config, "not-ready");
    let addr = http_address(&mut levee).await;
    http::wait_status(addr, "/healthz", WAIT, |s| s == 200);
    let r = http::get(addr, "/readyz").unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["ready"], false);
    let r = http::request(
        addr,
        "POST",
        "/v1/evaluate",
        &[],
        &serde_json::to_vec(&payment("P", 1.0)).unwrap(),
    )
    .unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = http::get(addr, "/v1/subjects/S1").unwrap();
    assert_eq!(r.status, 503);
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}

// --- deploy/openapi.yaml against the running server ---

struct Spec {
    doc: Value,
}

impl Spec {
    fn load() -> Spec {
        let text =
            std::fs::read_to_string(support::workspace().join("deploy/openapi.yaml")).unwrap();
        Spec {
            doc: serde_norway::from_str(&text).unwrap(),
        }
    }

    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let mut at = &self.doc;
                for part in r.trim_start_matches("#/").split('/') {
                    at = &at[part];
                }
                assert!(!at.is_null(), "dangling $ref {r}");
                self.resolve(at)
            }
            None => v,
        }
    }

    /// Problems of `value` against `schema` (required fields, types, enums).
    fn check(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let fits = options.iter().any(|o| {
                let mut p = Vec::new();
                self.check(o, value, at, &mut p);
                p.is_empty()
            });
            if !fits {
                problems.push(format!("{at}: matches none of oneOf"));
            }
            return;
        }
        if value.is_null() && schema["nullable"] == true {
            return;
        }
        let ok = match schema["type"].as_str() {
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_u64() || value.is_i64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            _ => true,
        };
        if !ok {
            problems.push(format!("{at}: {value} is not of type {}", schema["type"]));
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                problems.push(format!("{at}: {value} not in {allowed:?}"));
            }
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required {
                let r = r.as_str().unwrap();
                if value.get(r).is_none() {
                    problems.push(format!("{at}: required field {r} missing"));
                }
            }
        }
        if let (Some(props), Some(obj)) = (
            schema.get("properties").and_then(Value::as_object),
            value.as_object(),
        ) {
            for (k, s) in props {
                if let Some(v) = obj.get(k) {
                    self.check(s, v, &format!("{at}.{k}"), problems);
                }
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
            for (i, v) in arr.iter().enumerate() {
                self.check(items, v, &format!("{at}[{i}]"), problems);
            }
        }
    }

    /// Checks a response against the operation's documentation.
    fn verify(&self, op: &Value, what: &str, r: &http::Response) {
        let documented = &op["responses"][r.status.to_string()];
        assert!(
            !documented.is_null(),
            "{what}: status {} is not documented: {}",
            r.status,
            r.text()
        );
        let documented = self.resolve(documented);
        let content = documented["content"].as_object().unwrap();
        let content_type = r.header("content-type").unwrap_or_default();
        let (media, spec) = content
            .iter()
            .find(|(m, _)| content_type.starts_with(m.as_str()))
            .unwrap_or_else(|| panic!("{what}: content type {content_type} not documented"));
        if media == "application/json" {
            let mut problems = Vec::new();
            self.check(&spec["schema"], &r.json(), "body", &mut problems);
            assert!(problems.is_empty(), "{what}: {problems:#?}\n{}", r.text());
        }
        if let Some(headers) = documented.get("headers").and_then(Value::as_object) {
            for h in headers.keys() {
                assert!(r.header(h).is_some(), "{what}: header {h} missing");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_path_answers_as_documented() {
    let spec = Spec::load();
    let paths = spec.doc["paths"].as_object().unwrap();
    // The server's routes are the documented ones.
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort_unstable();
    assert_eq!(
        documented,
        [
            "/healthz",
            "/metrics",
            "/readyz",
            "/v1/evaluate",
            "/v1/people/{id}",
            "/v1/subjects/{id}"
        ]
    );
    let (_setup, levee, addr) = start("openapi").await;
    let (k, v) = auth();
    let global_security = spec.doc["security"]
        .as_array()
        .is_some_and(|s| !s.is_empty());
    let mut checked = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .map_or(global_security, |s| !s.is_empty());
            let mut url = path.clone();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let p = spec.resolve(p);
                if p["in"] == "path" {
                    let example = p["example"].as_str().unwrap();
                    url = url.replace(&format!("{{{}}}", p["name"].as_str().unwrap()), example);
                }
            }
            let headers: Vec<(&str, &str)> = if secured { vec![(k, &v)] } else { vec![] };
            let examples = op["requestBody"]["content"]["application/json"]["examples"]
                .as_object()
                .cloned();
            match examples {
                Some(examples) => {
                    for (name, example) in examples {
                        let body = serde_json::to_vec(&example["value"]).unwrap();
                        let r = http::request(addr, &method, &url, &headers, &body).unwrap();
                        let what = format!("{method} {path} example {name}");
                        if let Some(want) = example["x-expect-status"].as_u64() {
                            assert_eq!(u64::from(r.status), want, "{what}: {}", r.text());
                        }
                        if let Some(verdict) = example["x-expect-verdict"].as_str() {
                            assert_eq!(r.json()["verdict"], verdict, "{what}");
                        }
                        spec.verify(op, &what, &r);
                        checked += 1;
                    }
                    // Too large a body, as documented.
                    if !op["responses"]["413"].is_null() {
                        let body = vec![b' '; MAX_BODY + 1];
                        let r = http::request(addr, &method, &url, &headers, &body).unwrap();
                        assert_eq!(r.status, 413, "{method} {path}");
                        spec.verify(op, &format!("{method} {path} too large"), &r);
                    }
                }
                None => {
                    let r = http::request(addr, &method, &url, &headers, b"").unwrap();
                    let what = format!("{method} {path}");
                    assert!(r.status < 500, "{what}: {} {}", r.status, r.text());
                    spec.verify(op, &what, &r);
                    checked += 1;
                }
            }
            if secured {
                assert!(
                    !op["responses"]["401"].is_null(),
                    "{method} {path}: 401 undocumented"
                );
                let r = http::request(addr, &method, &url, &[], b"{}").unwrap();
                assert_eq!(r.status, 401, "{method} {path} without a token");
                spec.verify(op, &format!("{method} {path} without a token"), &r);
                assert!(
                    !op["responses"]["503"].is_null(),
                    "{method} {path}: 503 undocumented"
                );
            }
        }
    }
    assert!(checked >= 8, "only {checked} requests checked");
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
}
