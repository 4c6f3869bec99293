//! Retries on the broker: 2,000 records over 200 keys, 5 % of the keys
//! failing retryably until a set time. Records of the other keys are
//! delivered while the flaky keys' records are parked (not delayed by
//! them); the instance is SIGKILLed while retries are pending and
//! restarted; finally every record is delivered exactly once
//! (read_committed), in its key's order, and the flaky keys' first records
//! say how many tries they took (`weir.attempts` > 1).
//!
//! And a circuit breaker: every key's downstream fails for 20 s, then
//! recovers — the breaker opens, nothing is dead-lettered for the outage,
//! processing resumes, each record once, in key order.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weir_core::{dlq_headers, Record};
use weir_testkit::{publish, TestBroker, TopicReader};
use weir_tests::{binary, topology_env, TopologyProcess};

const KEYS: usize = 200;
const PER_KEY: usize = 10;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn flaky(key: &str) -> bool {
    key[1..].parse::<usize>().unwrap() % 20 == 0
}

/// Per key, the values delivered, in output order.
fn by_key(records: &[Record]) -> BTreeMap<String, Vec<(usize, Option<String>)>> {
    let mut m: BTreeMap<String, Vec<(usize, Option<String>)>> = BTreeMap::new();
    for r in records {
        let k = String::from_utf8(r.key.clone().unwrap()).unwrap();
        let v: usize = String::from_utf8(r.value.clone().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        let attempts = r.headers.get_str(dlq_headers::ATTEMPTS).map(str::to_string);
        m.entry(k).or_default().push((v, attempts));
    }
    m
}

#[test]
fn retries_deliver_every_record_once_in_key_order_through_a_kill() {
    let broker = TestBroker::shared();
    let app = TestBroker::unique("retries");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    broker.create_topic(&input, 4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The flaky keys' service comes back 25 s from now.
    let down_until = (now_ms() + 25_000).to_string();
    let start = |n: usize| {
        let env = topology_env(
            &app,
            broker.bootstrap(),
            &dir.path().join("state"),
            (&input, &output),
            &[
                ("WEIR_AUTO_CREATE_PARTITIONS", "4"),
                ("WEIR_COMMIT_INTERVAL_MS", "100"),
                ("WEIR_PARAMS__DOWN_UNTIL_MS", &down_until),
            ],
        );
        TopologyProcess::spawn(
            &binary("weir-test-retry", "weir-tests"),
            &["run"],
            &env,
            &dir.path().join(format!("run-{n}.log")),
        )
    };
    let mut p = start(0);
    let records: Vec<(String, String)> = (0..KEYS * PER_KEY)
        .map(|i| (format!("k{}", i % KEYS), i.to_string()))
        .collect();
    let published = Instant::now();
    publish(
        broker.bootstrap(),
        &input,
        records
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
    )
    .unwrap();
    let flaky_records = records.iter().filter(|(k, _)| flaky(k)).count();
    let steady = records.len() - flaky_records;
    let mut reader = TopicReader::new(broker.bootstrap(), &[&output], "read_committed").unwrap();
    // The other keys flow on while the flaky ones are parked.
    assert!(
        reader.read_until(Duration::from_secs(20), |r| r.len() >= steady),
        "the steady keys' {steady} records within 20 s; got {}; log:\n{}",
        reader.records().len(),
        p.log_text()
    );
    let delivered_flaky = by_key(reader.records())
        .iter()
        .filter(|(k, _)| flaky(k))
        .count();
    assert_eq!(delivered_flaky, 0, "the flaky keys' service is still down");
    assert!(published.elapsed() < Duration::from_secs(24));
    // Kill it while every flaky record is parked, and restart.
    p.kill9();
    let mut p = start(1);
    assert!(
        reader.read_until(Duration::from_secs(90), |r| r.len() >= records.len()),
        "every record once the service is back; got {}; log:\n{}",
        reader.records().len(),
        p.log_text()
    );
    reader.read_for(Duration::from_secs(2));
    let got = by_key(reader.records());
    for k in 0..KEYS {
        let key = format!("k{k}");
        let values: Vec<usize> = got[&key].iter().map(|(v, _)| *v).collect();
        let want: Vec<usize> = (0..PER_KEY).map(|j| j * KEYS + k).collect();
        assert_eq!(values, want, "{key}: each record once, in order");
        if flaky(&key) {
            let first: u32 = got[&key][0].1.as_deref().unwrap().parse().unwrap();
            assert!(first > 1, "{key}'s first record was retried: {first}");
        } else {
            assert!(
                got[&key].iter().all(|(_, a)| a.as_deref() == Some("1")),
                "{key}: every record delivered at its first try: {:?}",
                got[&key]
            );
        }
    }
    assert!(p.stop().success(), "{}", p.log_text());
}

#[test]
fn an_outage_opens_the_breaker_and_dead_letters_nothing() {
    let broker = TestBroker::shared();
    let app = TestBroker::unique("breaker");
    let (input, output, dlq) = (
        format!("{app}-in"),
        format!("{app}-out"),
        format!("{app}-dlq"),
    );
    broker.create_topic(&input, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let down_until = now_ms() + 20_000;
    let env = topology_env(
        &app,
        broker.bootstrap(),
        &dir.path().join("state"),
        (&input, &output),
        &[
            ("WEIR_AUTO_CREATE_PARTITIONS", "2"),
            ("WEIR_COMMIT_INTERVAL_MS", "100"),
            ("WEIR_PARAMS__DOWN_UNTIL_MS", &down_until.to_string()),
            ("WEIR_PARAMS__FLAKY_EVERY", "1"),
            ("WEIR_PARAMS__BREAKER", "true"),
        ],
    );
    let mut p = TopologyProcess::spawn(
        &binary("weir-test-retry", "weir-tests"),
        &["run"],
        &env,
        &dir.path().join("run.log"),
    );
    let n = 2_000;
    let records: Vec<(String, String)> = (0..n)
        .map(|i| (format!("k{}", i % 100), i.to_string()))
        .collect();
    publish(
        broker.bootstrap(),
        &input,
        records
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
    )
    .unwrap();
    assert!(
        p.wait_for_log("circuit breaker open", Duration::from_secs(30)),
        "{}",
        p.log_text()
    );
    let mut reader =
        TopicReader::new(broker.bootstrap(), &[&output, &dlq], "read_committed").unwrap();
    assert!(
        reader.read_until(Duration::from_secs(90), |r| r.len() >= n),
        "every record once the downstream is back; got {}; log:\n{}",
        reader.records().len(),
        p.log_text()
    );
    reader.read_for(Duration::from_secs(2));
    assert!(
        now_ms() >= down_until,
        "nothing got through during the outage"
    );
    let by_topic = reader.by_topic();
    assert!(
        !by_topic.contains_key(&dlq),
        "nothing dead-lettered for the outage"
    );
    let got = by_key(&by_topic[&output]);
    for k in 0..100 {
        let values: Vec<usize> = got[&format!("k{k}")].iter().map(|(v, _)| *v).collect();
        let want: Vec<usize> = (0..n / 100).map(|j| j * 100 + k).collect();
        assert_eq!(values, want, "k{k}: each record once, in order");
    }
    assert!(
        p.log_text().contains("circuit breaker closed"),
        "{}",
        p.log_text()
    );
    assert!(p.stop().success(), "{}", p.log_text());
}
