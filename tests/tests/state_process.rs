//! A `process()` node with a RocksDB store on the real broker: per-key
//! counts over 4 partitions equal a naive count, each key's counts arrive
//! 1, 2, 3, … in order (read_committed), and the store lives where the
//! task's stable id says (`tasks/counts/<partition>`). No crash here: the
//! store has no changelog yet.

use std::collections::BTreeMap;
use std::time::Duration;

use weir_testkit::{publish, TestBroker, TopicReader};
use weir_tests::{binary, counts_go_up_by_one, topology_env, TopologyProcess};

#[test]
fn a_process_node_counts_per_key_in_rocksdb_on_the_broker() {
    let broker = TestBroker::shared();
    let app = TestBroker::unique("state-count");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    broker.create_topic(&input, 4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let env = topology_env(
        &app,
        broker.bootstrap(),
        &state_dir,
        (&input, &output),
        &[
            ("WEIR_AUTO_CREATE_PARTITIONS", "4"),
            ("WEIR_STATE_MEMORY_BUDGET_MB", "32"),
        ],
    );
    let mut p = TopologyProcess::spawn(
        &binary("weir-test-count", "weir-tests"),
        &["run"],
        &env,
        &dir.path().join("log"),
    );
    let n = 5_000;
    let records: Vec<(String, String)> = (0..n)
        .map(|i| (format!("key-{}", (i * 7919) % 97), format!("v{i}")))
        .collect();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (k, _) in &records {
        *want.entry(k.clone()).or_default() += 1;
    }
    publish(
        broker.bootstrap(),
        &input,
        records
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
    )
    .unwrap();
    let mut reader = TopicReader::new(broker.bootstrap(), &[&output], "read_committed").unwrap();
    let complete = reader.read_until(Duration::from_secs(120), |r| r.len() >= n);
    reader.read_for(Duration::from_secs(1));
    assert!(complete, "{}", p.log_text());
    assert_eq!(reader.records().len(), n, "no duplicates");
    let last = counts_go_up_by_one(reader.records());
    assert_eq!(last, want);
    assert!(p.stop().success(), "{}", p.log_text());
    // One RocksDB per task, under the task's stable id.
    let tasks = state_dir.join(&app).join("tasks").join("counts");
    for partition in 0..4 {
        assert!(
            tasks.join(partition.to_string()).join("CURRENT").exists(),
            "RocksDB of task counts/{partition} in {}",
            tasks.display()
        );
    }
}

#[test]
fn a_changelog_record_that_can_never_be_delivered_stops_the_instance_with_a_clear_error() {
    // It has no source record of its own to dead-letter; retrying would
    // abort every commit forever. The instance stops, naming the store, and
    // nothing of the transaction is committed.
    let broker = TestBroker::shared();
    let app = TestBroker::unique("state-stash");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    broker.create_topic(&input, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = topology_env(
        &app,
        broker.bootstrap(),
        &dir.path().join("state"),
        (&input, &output),
        &[("WEIR_KAFKA__MESSAGE_MAX_BYTES", "6000")],
    );
    let mut p = TopologyProcess::spawn(
        &binary("weir-test-stash", "weir-tests"),
        &["run"],
        &env,
        &dir.path().join("log"),
    );
    let big = "x".repeat(2_000);
    publish(
        broker.bootstrap(),
        &input,
        [(Some(b"k".as_slice()), Some(big.as_bytes()))],
    )
    .unwrap();
    let status = p.wait_exit(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| !s.success()),
        "the instance stops with an error; log:\n{}",
        p.log_text()
    );
    let log = p.log_text();
    assert!(
        log.contains("can never be delivered") && log.contains("stash"),
        "{log}"
    );
    let mut reader = TopicReader::new(broker.bootstrap(), &[&output], "read_committed").unwrap();
    reader.read_for(Duration::from_secs(2));
    assert!(reader.records().is_empty(), "nothing committed");
}
