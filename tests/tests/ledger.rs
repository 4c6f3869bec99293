//! The event status ledger on the broker: an instance in this process runs
//! a topology with a ledger on its source and a retrying node; 400 events
//! of 40 keys — some refused for good, some keys' service down for a few
//! seconds, one event that never gets through. Queried through the
//! instance's store handle, every event id ends with the status and
//! attempts that happened to it.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weir::dsl::{EventStatus, LedgerEntry, RetryPolicy, StatusLedger};
use weir::prelude::*;
use weir::App;
use weir_testkit::{create_topics, publish, TestBroker};
use weir_tests::in_process_config;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

const EVENTS: usize = 400;
const KEYS: usize = 40;

/// What should become of event `i`: status and attempts (0: more than one).
fn expected(i: usize) -> (EventStatus, u32) {
    match i % KEYS {
        3 | 13 | 23 => (EventStatus::Error, 1),
        0 | 10 | 20 if i < KEYS => (EventStatus::Completed, 0),
        39 if i == 39 => (EventStatus::Failed, 6),
        _ => (EventStatus::Completed, 1),
    }
}

#[test]
fn every_event_ends_with_its_status_and_attempts() {
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let app = TestBroker::unique("ledger");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(&bootstrap, &[(&input, 4)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = in_process_config(&app, &bootstrap, dir.path(), 4, (&input, &output), &[]);
    // Keys k0, k10, k20 are down for 3 s from the first call; event e39
    // never gets through.
    let first_call = Arc::new(OnceLock::new());
    let ledger = StatusLedger::named("status").event_id(|r| {
        let v = std::str::from_utf8(r.value.as_deref()?).ok()?;
        Some(v.split(':').next()?.to_string())
    });
    let b = Topology::builder();
    b.stream("in", Str, Str)
        .with_status_ledger(ledger.clone())
        .with_retries(
            "call",
            RetryPolicy::new(6)
                .backoff(Duration::from_millis(200), Duration::from_millis(1_000))
                .without_jitter(),
        )
        .try_map(move |k: String, v: String| {
            if v.ends_with(":bad") {
                return Err(OpError::permanent("refused"));
            }
            let up_at = *first_call.get_or_init(|| now_ms() + 3_000);
            let flaky = matches!(k.as_str(), "k0" | "k10" | "k20") && now_ms() < up_at;
            if flaky || v.ends_with(":dead") {
                return Err(OpError::retryable("service down"));
            }
            Ok((k, v))
        })
        .to("out");
    let running = App::builder()
        .with_config(config)
        .start(b.build().unwrap())
        .unwrap();
    let events: Vec<(String, String)> = (0..EVENTS)
        .map(|i| {
            let what = match i % KEYS {
                3 | 13 | 23 => "bad",
                _ if i == 39 => "dead",
                _ => "ok",
            };
            (format!("k{}", i % KEYS), format!("e{i}:{what}"))
        })
        .collect();
    publish(
        &bootstrap,
        &input,
        events
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
    )
    .unwrap();
    let query = running.store(&ledger.store());
    let settled =
        |e: &LedgerEntry| !matches!(e.status, EventStatus::Retry | EventStatus::Unprocessed);
    let deadline = Instant::now() + Duration::from_secs(60);
    let entries = loop {
        let all = query.all(10 * EVENTS).unwrap_or_default();
        if all.len() == EVENTS && all.iter().all(|(_, e)| settled(e)) {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "every event settled within 60 s; {} recorded, unsettled: {:?}",
            all.len(),
            all.iter()
                .filter(|(_, e)| !settled(e))
                .take(5)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for (id, e) in &entries {
        let i: usize = id[1..].parse().unwrap();
        let (status, attempts) = expected(i);
        assert_eq!(e.status, status, "{id}: {e:?}");
        if attempts == 0 {
            assert!(e.attempts > 1, "{id} was retried: {e:?}");
        } else {
            assert_eq!(e.attempts, attempts, "{id}: {e:?}");
        }
        if status != EventStatus::Completed {
            assert!(e.last_error.is_some(), "{id}: {e:?}");
        }
    }
    running.stop();
    running.wait().unwrap();
}
