//! The event-router through a real broker: 20,000 events routed exactly
//! once, in per-key order, read `read_committed`; malformed events in the DLQ
//! with their reason; an idle topology records no aborts; `weir run
//! event-router` and `weir describe event-router` do what its own binary
//! does.

use std::time::Duration;

use weir_core::dlq_headers;
use weir_tests::{
    assert_exactly_once, binary, events, expected, read_committed, Feeder, Scenario,
    TopologyProcess,
};

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

#[test]
fn weir_run_routes_as_the_event_router_binary_does() {
    let s = Scenario::new("weir-run", 2);
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut weir = TopologyProcess::spawn(
        &binary("weir", "weir-cli"),
        &["run", "event-router"],
        &s.router_env(0),
        log.path(),
    );
    let evs = events(500, 100);
    let want = expected(&s, &evs);
    let feeder = Feeder::start(&s.bootstrap, &s.topics["events"], evs, 5_000);
    let got = read_committed(&s, &want, Duration::from_secs(120));
    assert_eq!(feeder.join(), 505);
    assert_exactly_once(&s, &want, &got, "weir run event-router");
    assert!(weir.stop().success(), "{}", weir.log_text());
    assert_eq!(
        weir.summary_counter("aborts"),
        Some(0),
        "{}",
        weir.log_text()
    );
}

#[test]
fn weir_describe_prints_what_the_topology_binary_prints() {
    let s = Scenario::new("weir-describe", 1);
    let describe = |bin: std::path::PathBuf, args: &[&str]| {
        let mut cmd = std::process::Command::new(bin);
        cmd.args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("WEIR_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd.envs(s.router_env(0)).output().expect("run");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let weir = || binary("weir", "weir-cli");
    let router = || binary("event-router", "event-router");
    for format in ["text", "mermaid"] {
        let (ok, ours, err) = describe(weir(), &["describe", "event-router", "--format", format]);
        assert!(ok, "{err}");
        let (ok, theirs, err) = describe(router(), &["describe", "--format", format]);
        assert!(ok, "{err}");
        assert_eq!(ours, theirs, "{format}");
        // The deployment's topic renames show.
        assert!(ours.contains(&s.topics["orders"]), "{ours}");
    }
    // Without a name: the shipped topologies.
    let (ok, list, err) = describe(weir(), &["describe"]);
    assert!(ok, "{err}");
    for name in ["event-router", "customer-totals", "order-workflow"] {
        assert!(list.contains(name), "{list}");
    }
    let (ok, _, err) = describe(weir(), &["describe", "no-such-topology"]);
    assert!(!ok && err.contains("event-router"), "{err}");
    let (ok, _, err) = describe(weir(), &["run", "no-such-topology"]);
    assert!(!ok && err.contains("no-such-topology"), "{err}");
}
