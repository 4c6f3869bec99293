//! The event status ledger through the TopologyTestDriver: for a mix of
//! records that succeed, fail at once, wait behind others, are retried
//! and succeed, or run out of tries, each event id's final status and
//! attempts are what happened; entries expire after the retention.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_core::{OpError, Str};
use weir_dsl::{EventStatus, LedgerEntry, RetryPolicy, StatusLedger, TopologyBuilder};
use weir_testkit::TopologyTestDriver;

/// Events `<id>:<what>` keyed by customer: `bad` fails permanently, keys
/// in `down` fail retryably.
fn ledgered(down: Arc<Mutex<BTreeSet<String>>>) -> (TopologyTestDriver, StatusLedger) {
    let ledger = StatusLedger::named("status")
        .event_id(|r| {
            let v = std::str::from_utf8(r.value.as_deref()?).ok()?;
            Some(v.split(':').next()?.to_string())
        })
        .retention(Duration::from_secs(60));
    let b = TopologyBuilder::new();
    b.stream("in", Str, Str)
        .with_status_ledger(ledger.clone())
        .with_retries("call", RetryPolicy::new(3).without_jitter())
        .try_map(move |k: String, v: String| {
            if v.ends_with(":bad") {
                return Err(OpError::permanent("refused"));
            }
            if down.lock().unwrap().contains(&k) {
                return Err(OpError::retryable("down"));
            }
            Ok((k, v))
        })
        .to("out");
    (TopologyTestDriver::new(b.build().unwrap()), ledger)
}

fn entry(d: &TopologyTestDriver, l: &StatusLedger, id: &str) -> Option<LedgerEntry> {
    d.store_get(&l.store(), &id.to_string())
}

fn status(d: &TopologyTestDriver, l: &StatusLedger, id: &str) -> (EventStatus, u32) {
    let e = entry(d, l, id).unwrap_or_else(|| panic!("{id} is in the ledger"));
    (e.status, e.attempts)
}

#[test]
fn every_event_ends_with_the_status_and_attempts_it_had() {
    let down: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    down.lock().unwrap().insert("slow".into());
    down.lock().unwrap().insert("dead".into());
    let (d, l) = ledgered(down.clone());
    d.set_wall_clock(1_000);
    let input = d.input_topic("in", Str, Str);
    input.pipe_input("fast".into(), "e1:ok".into());
    input.pipe_input("fast".into(), "e2:bad".into());
    input.pipe_input("slow".into(), "e3:ok".into());
    input.pipe_input("slow".into(), "e4:ok".into());
    input.pipe_input("dead".into(), "e5:ok".into());
    assert_eq!(status(&d, &l, "e1"), (EventStatus::Completed, 1));
    let e2 = entry(&d, &l, "e2").unwrap();
    assert_eq!((e2.status, e2.attempts), (EventStatus::Error, 1));
    assert!(e2.last_error.unwrap().contains("refused"));
    assert_eq!(status(&d, &l, "e3"), (EventStatus::Retry, 1));
    assert_eq!(status(&d, &l, "e4"), (EventStatus::Unprocessed, 0));
    assert_eq!(status(&d, &l, "e5"), (EventStatus::Retry, 1));

    d.advance_wall_clock(100); // second tries: still down
    assert_eq!(status(&d, &l, "e3"), (EventStatus::Retry, 2));
    assert_eq!(status(&d, &l, "e5"), (EventStatus::Retry, 2));
    down.lock().unwrap().remove("slow");
    d.advance_wall_clock(200); // third tries
    assert_eq!(status(&d, &l, "e3"), (EventStatus::Completed, 3));
    assert_eq!(status(&d, &l, "e4"), (EventStatus::Completed, 1));
    let e5 = entry(&d, &l, "e5").unwrap();
    assert_eq!((e5.status, e5.attempts), (EventStatus::Failed, 3));
    assert!(e5.last_error.unwrap().contains("down"));
    assert_eq!(e5.first_seen, 1_000);
    assert_eq!(e5.updated_at, 1_300);

    input.pipe_input("fast".into(), "e6:ok".into());
    assert_eq!(status(&d, &l, "e6"), (EventStatus::Completed, 1));

    // Retention: 60 s after the last update, each entry goes.
    d.advance_wall_clock(59_000); // 60,300
    assert!(
        entry(&d, &l, "e1").is_some(),
        "recorded at 1,000: kept until 61,000"
    );
    d.advance_wall_clock(999); // 61,299
    assert!(entry(&d, &l, "e1").is_none() && entry(&d, &l, "e2").is_none());
    assert!(
        entry(&d, &l, "e5").is_some(),
        "updated at 1,300: kept until 61,300"
    );
    assert!(entry(&d, &l, "e6").is_some(), "recorded at 1,300");
    d.advance_wall_clock(1);
    assert!(entry(&d, &l, "e5").is_none() && entry(&d, &l, "e6").is_none());
}
