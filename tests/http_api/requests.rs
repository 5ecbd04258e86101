//! The approval platform's side of the HTTP tests: its token and limits,
//! its requests, and a levee started for it.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::http::{self, http_address, http_config};
use crate::support::{self, Setup, WAIT};

pub const TOKEN: &str = "s3cret-token";
pub const MAX_BODY: usize = 65_536;
pub const MAX_BATCH: usize = 50;

pub fn auth() -> (&'static str, String) {
    ("Authorization", format!("Bearer {TOKEN}"))
}

pub fn post(addr: SocketAddr, body: &[u8]) -> http::Response {
    let (k, v) = auth();
    http::request(
        addr,
        "POST",
        "/v1/evaluate",
        &[(k, &v), ("Content-Type", "application/json")],
        body,
    )
    .unwrap()
}

pub fn campaign(id: &str, subsidy: f64, partner: Value) -> Value {
    json!({
        "event_id": id, "type": "campaign_application",
        "occurred_at": "2026-11-07T15:00:00+08:00", "branch": "yichang",
        "campaign_id": format!("K-{id}"), "applicant_id": "E1",
        "budget_cny": subsidy * 1000.0, "subsidy_per_user_cny": subsidy,
        "expected_users": 1000, "partner_id": partner
    })
}

pub fn payment(id: &str, amount: f64) -> Value {
    json!({
        "event_id": id, "type": "payment",
        "occurred_at": "2026-11-06T09:00:00+08:00", "branch": "wuhan",
        "contract_id": "C1", "supplier_id": "S1", "amount_cny": amount,
        "contract_value_cny": 1_000_000, "paid_to_date_cny": 900_000, "approver_id": "E2"
    })
}

/// What the in-process engine says about `event` (the catalog's verdict).
pub fn catalog_verdict(engine: &mut levee_engine::Engine, event: &Value) -> (String, Vec<String>) {
    let bytes = serde_json::to_vec(event).unwrap();
    let p = engine
        .process(&bytes, &levee_engine::Source::Http { http: true }, "now")
        .unwrap();
    let blocking: Vec<String> = p
        .alerts
        .iter()
        .filter(|a| a.action == "block")
        .map(|a| a.control_point.clone())
        .collect();
    let verdict = if blocking.is_empty() {
        "allow"
    } else {
        "block"
    };
    (verdict.to_owned(), blocking)
}

/// A levee with a token, small limits, on the shared broker; ready.
pub async fn start(name: &str) -> (Setup, support::Levee, SocketAddr) {
    let setup = Setup::new(name).await;
    let config = http_config(
        &setup,
        &format!(
            "token = \"{TOKEN}\"\nmax_body_bytes = {MAX_BODY}\nmax_batch = {MAX_BATCH}\nread_timeout = \"1s\""
        ),
    );
    let mut levee = setup.spawn(&config, name);
    let addr = http_address(&mut levee).await;
    http::wait_status(addr, "/readyz", WAIT, |s| s == 200);
    (setup, levee, addr)
}

/// Writes `request` (a head, maybe part of a body) on a fresh connection and
/// reads what comes back within `wait`.
pub fn raw_exchange(addr: SocketAddr, request: &str, wait: Duration) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
