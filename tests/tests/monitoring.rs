//! The monitoring topic: with `monitoring_enabled`, an instance writes its
//! counters as JSON to `<application_id>-monitoring` every interval, keyed
//! by its instance id, and a last report when it stops that carries the
//! final counts; per-node counts and per-partition lag are in them.

use std::time::Duration;

use weir_testkit::{publish, TestBroker, TopicReader};
use weir_tests::{binary, topology_env, TopologyProcess};

fn report(r: &weir_core::Record) -> serde_json::Value {
    serde_json::from_slice(r.value.as_deref().unwrap()).unwrap()
}

#[test]
fn counters_are_published_every_interval_and_at_the_end() {
    let broker = TestBroker::shared();
    let app = TestBroker::unique("monitoring");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    broker.create_topic(&input, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = topology_env(
        &app,
        broker.bootstrap(),
        &dir.path().join("state"),
        (&input, &output),
        &[
            ("WEIR_AUTO_CREATE_PARTITIONS", "2"),
            ("WEIR_MONITORING_ENABLED", "true"),
            ("WEIR_MONITORING_INTERVAL_MS", "300"),
        ],
    );
    let mut p = TopologyProcess::spawn(
        &binary("weir-test-fix", "weir-tests"),
        &["run"],
        &env,
        &dir.path().join("run.log"),
    );
    let values: Vec<String> = (0..100)
        .map(|i| {
            if i % 10 == 0 {
                format!("poison:{i}")
            } else {
                i.to_string()
            }
        })
        .collect();
    let keys: Vec<String> = (0..100).map(|i| format!("k{}", i % 7)).collect();
    publish(
        broker.bootstrap(),
        &input,
        // Keys spread over both partitions (the test broker reports no end
        // for a partition that was never written).
        keys.iter()
            .zip(&values)
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
    )
    .unwrap();
    let topic = format!("{app}-monitoring");
    let mut reader = TopicReader::new(broker.bootstrap(), &[&topic], "read_committed").unwrap();
    assert!(
        reader.read_until(Duration::from_secs(60), |r| r
            .iter()
            .any(|r| report(r)["counters"]["consumed"] == 100)),
        "a report with every record consumed; got {:?}; log:\n{}",
        reader.records().last().map(report),
        p.log_text()
    );
    // Per-node counts and lag: once everything is consumed and committed,
    // a report shows the failing node's counts and both partitions caught up.
    let caught_up = |r: &weir_core::Record| {
        let c = &report(r)["counters"];
        c["nodes"]["check"]["records_in"] == 100
            && c["lag"].as_object().is_some_and(|l| l.len() == 2)
            && c["lag_total"] == 0
    };
    assert!(
        reader.read_until(Duration::from_secs(30), |r| r.iter().any(caught_up)),
        "a report with per-node counts and no lag on either partition; got {:?}",
        reader.records().last().map(report)
    );
    let counters = &report(reader.records().iter().find(|r| caught_up(r)).unwrap())["counters"];
    let check = &counters["nodes"]["check"];
    assert_eq!(check["records_out"], 90, "{check}");
    assert_eq!(check["dead_lettered"], 10, "{check}");
    let sinks: Vec<&serde_json::Value> = counters["nodes"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(n, _)| n.starts_with("sink"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(sinks.len(), 1, "{}", counters["nodes"]);
    assert_eq!(sinks[0]["records_out"], 90);
    let before_stop = reader.records().len();
    assert!(before_stop >= 2, "reports every interval");
    assert!(p.stop().success(), "{}", p.log_text());
    assert!(
        reader.read_until(Duration::from_secs(20), |r| r.len() > before_stop),
        "a last report at the stop"
    );
    let last = report(reader.records().last().unwrap());
    assert_eq!(last["application_id"], app.as_str());
    assert_eq!(last["counters"]["consumed"], 100);
    assert_eq!(last["counters"]["dead_lettered"], 10);
    let instance = last["instance_id"].as_str().unwrap().to_string();
    assert!(reader
        .records()
        .iter()
        .all(|r| r.key.as_deref() == Some(instance.as_bytes())));
    // Counters only grow.
    let consumed: Vec<u64> = reader
        .records()
        .iter()
        .map(|r| report(r)["counters"]["consumed"].as_u64().unwrap())
        .collect();
    assert!(consumed.windows(2).all(|w| w[0] <= w[1]), "{consumed:?}");
}
