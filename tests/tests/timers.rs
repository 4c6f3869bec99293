//! Durable timers on the broker: 1,200 timers (wall-clock and stream-time)
//! are set by one instance; a second joins while they are pending and
//! takes half the tasks (restoring their timer stores from the
//! changelog), then leaves again (scale 1 → 2 → 1). Every timer fires
//! exactly once (read_committed), stamped with its deadline, none lost,
//! none twice — and both instances fired some.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weir_core::partition_for_key;
use weir_testkit::{publish_at, TestBroker, TopicReader};
use weir_tests::{binary, topology_env, unstall, TopologyProcess, STALL};

const PARTITIONS: i32 = 4;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The records of `out` by key: how often `scheduled`, and every
/// `fired@<deadline>` with the record's timestamp.
fn by_key(records: &[weir_core::Record]) -> BTreeMap<String, (usize, Vec<(i64, i64)>)> {
    let mut m: BTreeMap<String, (usize, Vec<(i64, i64)>)> = BTreeMap::new();
    for r in records {
        let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
        let value = String::from_utf8(r.value.clone().unwrap()).unwrap();
        let e = m.entry(key).or_default();
        if value == "scheduled" {
            e.0 += 1;
        } else {
            let deadline: i64 = value.strip_prefix("fired@").unwrap().parse().unwrap();
            e.1.push((deadline, r.timestamp));
        }
    }
    m
}

fn fired(records: &[weir_core::Record]) -> usize {
    records
        .iter()
        .filter(|r| r.value.as_deref().is_some_and(|v| v.starts_with(b"fired@")))
        .count()
}

#[test]
fn pending_timers_survive_scaling_one_two_one_and_fire_exactly_once() {
    let broker = TestBroker::shared();
    let app = TestBroker::unique("timers-scale");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    broker.create_topic(&input, PARTITIONS).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        let env = topology_env(
            &app,
            broker.bootstrap(),
            &dir.path().join(name),
            (&input, &output),
            &[
                ("WEIR_AUTO_CREATE_PARTITIONS", "4"),
                ("WEIR_COMMIT_INTERVAL_MS", "100"),
            ],
        );
        TopologyProcess::spawn(
            &binary("weir-test-timers", "weir-tests"),
            &["run"],
            &env,
            &dir.path().join(format!("{name}.log")),
        )
    };
    let mut a = start("a");
    // Wall-clock timers 6–20 s after they are set; stream-time ones up to
    // 5 s of record time after theirs (they fire at the end, when a later
    // record reaches each partition).
    let n = 1_200;
    let records: Vec<(String, String)> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                (format!("w:{i}"), (6_000 + (i * 37) % 14_000).to_string())
            } else {
                (format!("s:{i}"), (1 + (i * 53) % 5_000).to_string())
            }
        })
        .collect();
    publish_at(
        broker.bootstrap(),
        &input,
        records
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()), None)),
    )
    .unwrap();
    let mut reader = TopicReader::new(broker.bootstrap(), &[&output], "read_committed").unwrap();
    let scheduled = |r: &[weir_core::Record]| r.len() - fired(r);
    assert!(
        reader.read_until(Duration::from_secs(60), |r| scheduled(r) >= n),
        "every timer set; log:\n{}",
        a.log_text()
    );
    // Scale to two while every wall-clock timer is pending.
    let mut b = start("b");
    assert!(
        b.wait_for_log("partitions assigned", Duration::from_secs(60)),
        "{}",
        b.log_text()
    );
    assert!(
        reader.read_until(Duration::from_secs(60), |r| fired(r) >= n / 8),
        "timers fire after the scale-up; logs:\n{}\n----\n{}",
        a.log_text(),
        b.log_text()
    );
    // And back to one while the rest are pending.
    assert!(b.stop().success(), "{}", b.log_text());
    let before_close = fired(reader.records());
    assert!(
        before_close < n / 2,
        "wall-clock timers still pending at the scale-down"
    );
    // One record per partition, an hour of record time later: every
    // stream-time timer falls due (the closers' own are not).
    let later = now_ms() + 3_600_000;
    let closers: Vec<(String, i64)> = (0..PARTITIONS as u32)
        .map(|p| {
            let key = (0..)
                .map(|i| format!("s:close-{i}"))
                .find(|k| partition_for_key(k.as_bytes(), PARTITIONS as u32) == p)
                .unwrap();
            (key, later)
        })
        .collect();
    publish_at(
        broker.bootstrap(),
        &input,
        closers
            .iter()
            .map(|(k, t)| (Some(k.as_bytes()), Some(b"1".as_slice()), Some(*t))),
    )
    .unwrap();
    let complete = reader.read_until_unstalled(
        Duration::from_secs(120),
        STALL,
        || unstall(broker.bootstrap(), &app),
        |r| fired(r) >= n,
    );
    reader.read_for(Duration::from_secs(2));
    assert!(
        complete,
        "{} of {n} timers fired; logs:\n{}\n----\n{}",
        fired(reader.records()),
        a.log_text(),
        b.log_text()
    );
    let got = by_key(reader.records());
    for (key, _) in &records {
        let (scheduled, fires) = &got[key];
        assert_eq!(*scheduled, 1, "{key}: set once");
        assert_eq!(fires.len(), 1, "{key}: fired once, not {fires:?}");
        let (deadline, timestamp) = fires[0];
        assert_eq!(
            timestamp, deadline,
            "{key}: the output carries the deadline"
        );
    }
    for (key, _) in &closers {
        assert!(got[key].1.is_empty(), "{key}: not due");
    }
    assert!(a.stop().success(), "{}", a.log_text());
    let (fa, fb) = (
        a.summary_counter("timers_fired").unwrap_or(0),
        b.summary_counter("timers_fired").unwrap_or(0),
    );
    assert!(
        fa > 0 && fb > 0,
        "both instances fired timers: {fa} and {fb}"
    );
}
