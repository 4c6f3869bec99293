//! Crash tests: the event-router aborts itself at each failpoint of the
//! commit loop (inputs fed at a bounded rate, commits every 2 s so the crash
//! lands inside a transaction with records), is restarted, and every output
//! is still there exactly once, read_committed.
//!
//! Where the crash leaves records written but uncommitted
//! (`after_send_offsets`, `before_commit`), a read_uncommitted reader must
//! see them twice, proving the test can see an abort that read_committed
//! hides. The same crash at least once must show a duplicate and no loss,
//! proving the test tells the modes apart.

use std::collections::BTreeMap;
use std::time::Duration;

use weir_tests::{
    assert_exactly_once, events, expected, multiplicity, read, read_committed, Feeder, Scenario,
};

struct Crash {
    duplicates_uncommitted: usize,
    uncommitted: Vec<weir_core::Record>,
}

/// Where each copy of `id` sits in `records` (topic/partition@offset), for
/// failure messages.
fn locate(records: &[weir_core::Record], dlq: &str, id: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| weir_tests::record_id(r, dlq) == id)
        .map(|r| format!("{}/{}@{}", r.topic, r.partition, r.offset))
        .collect()
}

fn crash_and_restart(
    failpoint: &str,
    guarantee: &str,
    s: &Scenario,
) -> (weir_tests::Expected, Vec<weir_core::Record>, Crash) {
    let evs = events(6_000, 1_000);
    let want = expected(s, &evs);
    let feeder = Feeder::start(&s.bootstrap, &s.topics["events"], evs, 1_500);
    let common = [
        ("WEIR_COMMIT_INTERVAL_MS", "2000"),
        ("WEIR_PROCESSING_GUARANTEE", guarantee),
    ];
    let mut first = s.start_router(0, &[common[0], common[1], ("WEIR_FAILPOINT", failpoint)]);
    let status = first
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{failpoint} never fired; log:\n{}", first.log_text()));
    assert!(!status.success(), "the failpoint aborts the process");
    assert!(
        first
            .log_text()
            .contains(&format!("failpoint {failpoint} reached")),
        "{}",
        first.log_text()
    );
    // Restart on the same state dir: same instance id, same transactional.id.
    let mut second = s.start_router(0, &common);
    let got = read_committed(s, &want, Duration::from_secs(120));
    feeder.join();
    let uncommitted = read(s, &want, Duration::from_secs(30), "read_uncommitted");
    let duplicates_uncommitted = multiplicity(&uncommitted, &s.dlq())
        .values()
        .flat_map(BTreeMap::values)
        .filter(|n| **n > 1)
        .count();
    assert!(second.stop().success(), "{}", second.log_text());
    (
        want,
        got,
        Crash {
            duplicates_uncommitted,
            uncommitted,
        },
    )
}

fn exactly_once_after(failpoint: &str, aborted_records_visible: bool) {
    let s = Scenario::new(&format!("crash-{}", failpoint.replace('_', "-")), 2);
    let (want, got, crash) = crash_and_restart(failpoint, "exactly_once_v2", &s);
    let have = multiplicity(&got, &s.dlq());
    for (topic, ids) in &want {
        for id in ids.keys() {
            if have.get(topic).and_then(|m| m.get(id)).is_none() {
                eprintln!(
                    "{failpoint}: {topic}/{id} missing read_committed; read_uncommitted has it at {:?}; committed copies elsewhere: {:?}",
                    locate(&crash.uncommitted, &s.dlq(), id),
                    locate(&got, &s.dlq(), id)
                );
            }
        }
    }
    assert_exactly_once(&s, &want, &got, failpoint);
    if aborted_records_visible {
        assert!(
            crash.duplicates_uncommitted > 0,
            "{failpoint}: read_uncommitted shows no aborted records, so this test could not see an abort"
        );
    }
}

#[test]
fn exactly_once_after_crash_before_produce_flush() {
    exactly_once_after("before_produce_flush", false);
}

#[test]
fn exactly_once_after_crash_after_send_offsets() {
    exactly_once_after("after_send_offsets", true);
}

#[test]
fn exactly_once_after_crash_before_commit() {
    exactly_once_after("before_commit", true);
}

#[test]
fn exactly_once_after_crash_after_commit() {
    exactly_once_after("after_commit", false);
}

#[test]
fn at_least_once_repeats_but_never_loses() {
    let s = Scenario::new("crash-alo", 2);
    let (want, got, _) = crash_and_restart("before_commit", "at_least_once", &s);
    let have = multiplicity(&got, &s.dlq());
    let mut duplicates = 0;
    for (topic, ids) in &want {
        for id in ids.keys() {
            let n = have
                .get(topic)
                .and_then(|m| m.get(id))
                .copied()
                .unwrap_or(0);
            assert!(n >= 1, "at least once lost {topic}/{id}");
            duplicates += usize::from(n > 1);
        }
    }
    assert!(
        duplicates > 0,
        "the crash before the offset commit must repeat some outputs"
    );
}
