//! The event-router through a real broker: 20,000 events routed exactly
//! once, in per-key order, read `read_committed`; malformed events in the DLQ
//! with their reason; an idle topology records no aborts.

use std::time::Duration;

use weir_core::dlq_headers;
use weir_tests::{assert_exactly_once, events, expected, read_committed, Feeder, Scenario};

#[test]
fn routes_20000_events_exactly_once_in_key_order() {
    let s = Scenario::new("e2e-route", 4);
    let mut router = s.start_router(0, &[]);
    let evs = events(20_000, 2_000);
    let want = expected(&s, &evs);
    let feeder = Feeder::start(&s.bootstrap, &s.topics["events"], evs, 20_000);
    let got = read_committed(&s, &want, Duration::from_secs(120));
    assert_eq!(feeder.join(), 20_010);
    assert_exactly_once(&s, &want, &got, "one router");

    // Dead letters say why, and where the record came from.
    let dlq: Vec<_> = got.iter().filter(|r| r.topic == s.dlq()).collect();
    assert_eq!(dlq.len(), 10);
    for r in dlq {
        assert_eq!(r.headers.get_str(dlq_headers::ERROR_KIND), Some("decode"));
        assert!(r
            .headers
            .get_str(dlq_headers::ERROR_MESSAGE)
            .is_some_and(|m| m.contains("json")));
        assert_eq!(
            r.headers.get_str(dlq_headers::SOURCE_TOPIC),
            Some(s.topics["events"].as_str())
        );
        assert!(r.headers.get_str(dlq_headers::SOURCE_OFFSET).is_some());
        assert!(r.headers.get_str(dlq_headers::SOURCE_PARTITION).is_some());
        assert!(r.headers.get_str(dlq_headers::NODE).is_some());
        assert_eq!(r.headers.get_str(dlq_headers::ATTEMPTS), Some("1"));
        assert!(r.headers.get_str(dlq_headers::FAILED_AT).is_some());
        assert!(r.value.as_deref().is_some_and(|v| v.ends_with(b"oops")));
    }
    assert!(router.stop().success(), "{}", router.log_text());
    assert_eq!(
        router.summary_counter("aborts"),
        Some(0),
        "{}",
        router.log_text()
    );
    assert!(!router.log_text().contains("panicked"));
}

#[test]
fn an_idle_topology_records_zero_aborts() {
    let s = Scenario::new("e2e-idle", 2);
    let mut router = s.start_router(0, &[("WEIR_COMMIT_INTERVAL_MS", "50")]);
    assert!(
        router.wait_for_log("partitions assigned", Duration::from_secs(60)),
        "{}",
        router.log_text()
    );
    // Many commit intervals with nothing to fetch (the test broker logs
    // empty-fetch parse errors meanwhile): none may abort.
    assert!(!router.wait_for_log("aborting", Duration::from_secs(3)));
    assert!(router.stop().success(), "{}", router.log_text());
    assert_eq!(
        router.summary_counter("aborts"),
        Some(0),
        "{}",
        router.log_text()
    );
    assert_eq!(router.summary_counter("consumed"), Some(0));
}
