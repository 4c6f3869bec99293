//! Zombie fencing (KIP-447): an instance stalled (SIGSTOP) past its session
//! timeout loses its partitions to a second instance; when it resumes
//! (SIGCONT) its open transaction must fail the generation check, be aborted,
//! and the instance must rejoin — and outputs stay exactly once.
//!
//! crabka-broker was seen to refuse a stale member's
//! `send_offsets_to_transaction` with UNKNOWN_MEMBER_ID
//! (tools/test-broker, shared findings), so this runs on it as well as on a
//! real Kafka. The transaction timeout is long (60 s), so what stops the
//! zombie is the group generation, not the broker expiring its transaction.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use weir_testkit::TopicReader;
use weir_tests::{assert_exactly_once, events, expected, read_committed, Feeder, Scenario};

#[test]
fn a_resumed_zombie_cannot_commit_and_outputs_stay_exactly_once() {
    let s = Scenario::new("zombie", 2);
    let topic = s.topics["events"].clone();
    // Long commit intervals keep the zombie inside a transaction with records.
    let env = [
        ("WEIR_COMMIT_INTERVAL_MS", "5000"),
        ("WEIR_KAFKA__TRANSACTION_TIMEOUT_MS", "60000"),
    ];
    let evs = events(12_000, 0);
    let want = expected(&s, &evs);
    let mut zombie = s.start_router(0, &env);
    let feeder = Feeder::start(&s.bootstrap, &topic, evs, 1_500);
    let mut reader = TopicReader::new(
        &s.bootstrap,
        &[s.topics["audit"].as_str()],
        "read_committed",
    )
    .unwrap();
    assert!(
        reader.read_until(Duration::from_secs(60), |r| r.len() > 500),
        "{}",
        zombie.log_text()
    );
    // Stall it mid-transaction: once its open transaction visibly holds
    // records (read_uncommitted is ahead of read_committed).
    let committed = reader.records().len();
    let mut uncommitted = TopicReader::new(
        &s.bootstrap,
        &[s.topics["audit"].as_str()],
        "read_uncommitted",
    )
    .unwrap();
    assert!(uncommitted.read_until(Duration::from_secs(60), |r| r.len() > committed + 100));
    zombie.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let mut heir = s.start_router(1, &env);
    loop {
        let mut p = heir.last_assignment(&topic);
        p.sort();
        if p == [0, 1] {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(45),
            "the second instance never got the zombie's partitions:\n{}",
            heir.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the heir commit some of the zombie's work before it wakes up.
    let seen = reader.records().len();
    assert!(reader.read_until(Duration::from_secs(60), |r| r.len() > seen + 200));
    zombie.signal(Signal::SIGCONT);

    let got = read_committed(&s, &want, Duration::from_secs(180));
    feeder.join();
    assert_exactly_once(&s, &want, &got, "after a zombie resumed");
    assert!(zombie.stop().success(), "{}", zombie.log_text());
    assert!(heir.stop().success(), "{}", heir.log_text());
    let refused = zombie.summary_counter("aborts").unwrap_or(0)
        + zombie.summary_counter("rejoins").unwrap_or(0);
    assert!(
        refused >= 1,
        "the zombie's open transaction was neither aborted nor fenced:\n{}",
        zombie.log_text()
    );
}
