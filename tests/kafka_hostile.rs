//! Records built to hurt, over the real broker: an input record larger than
//! `input.max_event_bytes` and each shape of hostile JSON cost one dead
//! letter (the large one cut to `dlq.max_payload_bytes`, its size and
//! SHA-256 in headers), and the ordinary events after them on the same
//! partition still raise their alerts: the partition is not stalled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sha2::{Digest, Sha256};
use support::*;
#[path = "support/http.rs"]
mod http;

/// Ten megabytes: what the input topic accepts here, as an operator's might.
const TEN_MB: &str = "10485760";

fn trip(id: &str, vehicle: &str, extra: &str) -> String {
    let at = beijing(test_now() - chrono::Duration::hours(2));
    format!(
        r#"{{"event_id":"{id}","type":"trip","occurred_at":"{at}","branch":"wuhan","vehicle_id":"{vehicle}","driver_id":"D1","distance_km":200,"fuel_used_l":30,"standard_l_per_100km":10{extra}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_hostile_records_cost_a_dead_letter_each_and_the_stream_goes_on() {
    let setup = Setup::new("hostile").await;
    let topic = setup.inputs["vehicle_fuel"].clone();
    let bootstrap = broker().bootstrap_servers();
    let admin: AdminClient<DefaultClientContext> =
        levee_testkit::clients::client_config(&bootstrap)
            .create()
            .unwrap();
    let results = admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("max.message.bytes", TEN_MB)],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    // One vehicle, so one partition: every record below is in its way.
    let vehicle = "V-HOSTILE";
    let big = trip(
        "big",
        vehicle,
        &format!(r#","trip_purpose":"{}""#, "x".repeat(1_500_000)),
    );
    let hostile: Vec<(String, &str)> = vec![
        (
            trip("dup", vehicle, r#","fuel_used_l":12"#),
            "duplicate_field",
        ),
        (
            trip(
                "deep",
                vehicle,
                &format!(r#","x":{}1{}"#, "[".repeat(40), "]".repeat(40)),
            ),
            "too_deep",
        ),
        (
            trip("range", vehicle, r#","cargo_kg":1e999"#),
            "number_range",
        ),
        (format!("\u{feff}{}", trip("bom", vehicle, "")), "bom"),
        (
            trip("uni", vehicle, r#","trip_purpose":"\ud800""#),
            "invalid_unicode",
        ),
        (
            trip("nan", vehicle, "").replace(r#""fuel_used_l":30"#, r#""fuel_used_l":NaN"#),
            "non_finite",
        ),
    ];
    let after = trip("after", vehicle, "");
    let mut payloads: Vec<(String, &str)> = vec![(big.clone(), "oversize")];
    payloads.extend(hostile.iter().cloned());

    let levee = setup.spawn(&setup.config("at_least_once", 0), "a");
    let producer: FutureProducer = levee_testkit::clients::client_config(&bootstrap)
        .set("message.max.bytes", TEN_MB)
        .create()
        .unwrap();
    for (payload, _) in payloads
        .iter()
        .chain(std::iter::once(&(after.clone(), "ok")))
    {
        // The topic's new max.message.bytes may take a moment to apply.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let sent = producer
                .send(
                    FutureRecord::to(&topic)
                        .key(vehicle)
                        .payload(payload.as_bytes()),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e);
            match sent {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline && e.to_string().contains("too large") => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("producing: {e}"),
            }
        }
    }

    // The ordinary trip after them alerts (50% over standard).
    let expected = replay(&setup, std::slice::from_ref(&after));
    assert!(!expected.is_empty());
    setup.wait_for_alerts(&expected).await;

    let dlq = setup.wait_dlq(payloads.len()).await;
    assert_eq!(dlq.len(), payloads.len(), "one dead letter each");
    let header = |m: &levee_testkit::ReceivedMessage, n: &str| {
        m.header(n).map(|v| String::from_utf8(v.to_vec()).unwrap())
    };
    let kinds: BTreeMap<String, &levee_testkit::ReceivedMessage> = dlq
        .iter()
        .map(|m| (header(m, "levee.error.kind").unwrap(), m))
        .collect();
    for (payload, kind) in &payloads {
        let m = kinds
            .get(*kind)
            .unwrap_or_else(|| panic!("no dead letter of kind {kind}: {:?}", kinds.keys()));
        let got = m.payload.as_deref().unwrap_or_default();
        if *kind == "oversize" {
            assert_eq!(got.len(), 65_536, "cut to dlq.max_payload_bytes");
            assert_eq!(got, &payload.as_bytes()[..65_536]);
            assert_eq!(header(m, "levee.truncated").as_deref(), Some("true"));
            assert_eq!(
                header(m, "levee.original.size"),
                Some(payload.len().to_string())
            );
            let digest: String = Sha256::digest(payload.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(header(m, "levee.original.sha256"), Some(digest));
        } else {
            assert_eq!(got, payload.as_bytes(), "{kind}: byte for byte");
        }
        assert_eq!(header(m, "levee.source.topic"), Some(topic.clone()));
    }
    // Commits go on: a later event alerts too.
    let later = trip("later", vehicle, "");
    setup.produce_events(std::slice::from_ref(&later)).await;
    // As replay has it after the trip before it: at night, VU-101's
    // suppression keeps the second night trip of the day quiet.
    setup
        .wait_for_alerts(&replay(&setup, &[after.clone(), later.clone()]))
        .await;
    let (status, log) = levee.terminate().await;
    assert!(status.success(), "{log}");
    assert!(
        !log.contains("MessageSizeTooLarge"),
        "no retry loop:\n{log}"
    );
}

/// A stateful event keyed otherwise than by its subject would split its
/// subject's windows over partitions: by default it is dead-lettered as
/// `misrouted`, with the key it should have had, and counted; with
/// `input.on_misrouted = "process"` it is evaluated, and still counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_not_keyed_by_their_subject_are_set_aside_and_counted() {
    for (mode, extra) in [
        ("dlq", ""),
        ("process", "[input]\non_misrouted = \"process\"\n"),
    ] {
        let setup = Setup::new(&format!("misrouted-{mode}")).await;
        let topic = setup.inputs["vehicle_fuel"].clone();
        // A refuel: FC-101 counts a vehicle's refuels in 24 hours.
        let at = rfc3339(test_now() - chrono::Duration::hours(3));
        let refuel = format!(
            r#"{{"event_id":"r-{mode}","type":"refuel","occurred_at":"{at}","branch":"wuhan","vehicle_id":"V-MIS","fuel_card_id":"C1","liters":95,"amount_cny":700,"tank_capacity_l":60,"station_id":"ST-1"}}"#
        );
        let config = http::http_config(&setup, "");
        let config_text = std::fs::read_to_string(&config).unwrap() + "\n" + extra;
        std::fs::write(&config, config_text).unwrap();
        let mut levee = setup.spawn(&config, mode);
        let addr = http::http_address(&mut levee).await;
        broker()
            .produce(
                &topic,
                [
                    levee_testkit::Record::new(refuel.clone().into_bytes())
                        .key(format!("r-{mode}")),
                ],
            )
            .await
            .unwrap();
        let counted = format!("levee_misrouted_total{{event_type=\"refuel\",topic=\"{topic}\"}} 1");
        let deadline = Instant::now() + WAIT;
        loop {
            let text = http::get(addr, "/metrics").unwrap().text();
            if text.contains(&counted) {
                break;
            }
            assert!(Instant::now() < deadline, "never counted:\n{text}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if mode == "dlq" {
            let dlq = setup.wait_dlq(1).await;
            assert_eq!(dlq.len(), 1);
            assert_eq!(dlq[0].header("levee.error.kind"), Some(&b"misrouted"[..]));
            assert_eq!(dlq[0].header("levee.expected.key"), Some(&b"V-MIS"[..]));
        } else {
            // Evaluated: FC-001 (95 L into a 60 L tank) alerts.
            setup
                .wait_for_alerts(&replay(&setup, std::slice::from_ref(&refuel)))
                .await;
            assert!(setup.dlq().await.is_empty());
        }
        let (status, log) = levee.terminate().await;
        assert!(status.success(), "{log}");
    }
}
