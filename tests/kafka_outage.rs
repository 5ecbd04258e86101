//! A broker outage mid-stream, over a real broker of this test's own
//! (stopped for 30 s and started again): at-least-once loses nothing,
//! exactly-once loses and duplicates nothing; `levee_stream_up` goes to 0
//! and back while `/readyz` stays 200 (the API answers without the broker);
//! and SIGTERM with the broker away exits within `shutdown_timeout`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/http.rs"]
mod http;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use levee_testkit::KafkaBroker;
use support::*;

/// How long the broker is away.
const OUTAGE: Duration = Duration::from_secs(30);

/// Waits until `/metrics` shows `levee_stream_up` at `up`.
async fn wait_stream_up(addr: SocketAddr, up: u8) {
    let want = format!("levee_stream_up {up}");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = http::get(addr, "/metrics").unwrap().text();
        if text.lines().any(|l| l == want) {
            return;
        }
        assert!(Instant::now() < deadline, "never {want}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_loses_and_duplicates_nothing_and_sigterm_still_exits() {
    // This test stops its broker: one of its own, not the shared one.
    let own: &'static KafkaBroker = Box::leak(Box::new(KafkaBroker::start().unwrap()));
    use_broker(own);
    for delivery in ["at_least_once", "exactly_once"] {
        let setup = Setup::new(&format!("outage-{delivery}")).await;
        let config = http::http_config(&setup, "");
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replacen("at_least_once", delivery, 1);
        // A top-level key: before the first table.
        std::fs::write(&config, format!("shutdown_timeout = \"10s\"\n{text}")).unwrap();
        let events = generated_events(&format!("out-{delivery}"), 40);
        let (before, after) = events.split_at(events.len() / 2);
        let expected = replay(&setup, &events);

        let mut levee = setup.spawn(&config, delivery);
        let addr = http::http_address(&mut levee).await;
        levee.wait_assigned().await;
        setup.produce_events(before).await;
        setup.wait_for_alerts(&replay(&setup, before)).await;

        own.stop().unwrap();
        wait_stream_up(addr, 0).await;
        let ready = http::get(addr, "/readyz").unwrap();
        assert_eq!(ready.status, 200, "still ready: {}", ready.text());
        tokio::time::sleep(OUTAGE).await;
        own.start_again().unwrap();
        wait_stream_up(addr, 1).await;

        setup.produce_events(after).await;
        let got = setup.wait_for_alerts(&expected).await;
        if delivery == "exactly_once" {
            assert_no_duplicates(&got);
        }
        let log = levee.log_text();
        let lost = log.matches("no broker is reachable").count();
        assert!(lost <= 2, "one line per change, not per record:\n{log}");

        // SIGTERM while the broker is away again: out within the timeout.
        own.stop().unwrap();
        wait_stream_up(addr, 0).await;
        let stopping = Instant::now();
        let (status, log) = levee.terminate().await;
        assert!(status.success(), "{log}");
        assert!(
            stopping.elapsed() < Duration::from_secs(25),
            "exited {:?} after SIGTERM:\n{log}",
            stopping.elapsed()
        );
        own.start_again().unwrap();
    }
}
