//! Two instances in one group share the partitions; when one is SIGKILLed
//! (and never restarted), the other takes its partitions within a stated
//! deadline, and outputs stay exactly once.

use std::time::{Duration, Instant};

use weir_testkit::TopicReader;
use weir_tests::{assert_exactly_once, events, expected, read_committed, Feeder, Scenario};

/// Session timeout (6 s, set by the scenario) plus a rebalance, with margin.
const TAKEOVER_DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn two_instances_split_partitions_and_survive_a_kill() {
    let s = Scenario::new("group-takeover", 4);
    let topic = s.topics["events"].clone();
    let env = [("WEIR_KAFKA__TRANSACTION_TIMEOUT_MS", "5000")];
    let mut a = s.start_router(0, &env);
    let mut b = s.start_router(1, &env);

    // Each owns partitions: disjoint, non-empty, together all four.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (pa, pb) = loop {
        let (pa, pb) = (a.last_assignment(&topic), b.last_assignment(&topic));
        let mut all: Vec<i32> = pa.iter().chain(&pb).copied().collect();
        all.sort();
        if !pa.is_empty() && !pb.is_empty() && all == [0, 1, 2, 3] {
            break (pa, pb);
        }
        assert!(
            Instant::now() < deadline,
            "no split assignment: a={pa:?} b={pb:?}\nA:\n{}\nB:\n{}",
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let evs = events(20_000, 2_000);
    let want = expected(&s, &evs);
    let feeder = Feeder::start(&s.bootstrap, &topic, evs, 2_000);
    // Kill B once it has committed work of its own partitions.
    let mut reader = TopicReader::new(
        &s.bootstrap,
        &[s.topics["audit"].as_str()],
        "read_committed",
    )
    .unwrap();
    assert!(reader.read_until(Duration::from_secs(60), |r| {
        r.iter().filter(|r| pb.contains(&r.partition)).count() > 100
    }));
    b.kill9();
    let killed = Instant::now();
    loop {
        let mut now = a.last_assignment(&topic);
        now.sort();
        if now == [0, 1, 2, 3] {
            break;
        }
        assert!(
            killed.elapsed() < TAKEOVER_DEADLINE,
            "A (had {pa:?}) did not take B's partitions {pb:?} within {TAKEOVER_DEADLINE:?}; A:\n{}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("takeover after {:?}", killed.elapsed());
    let got = read_committed(&s, &want, Duration::from_secs(120));
    feeder.join();
    assert_exactly_once(&s, &want, &got, "after one of two instances was killed");
    assert!(a.stop().success(), "{}", a.log_text());
}
