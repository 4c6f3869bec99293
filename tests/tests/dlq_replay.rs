//! Dead letters and their replay on the broker: 50,000 records with 1 %
//! poisoned — every poisoned one reaches the DLQ with its reason, every
//! other one `out`, within a bounded time (no partition stalls). `dlq
//! list` (the topology's and the generic `weir dlq list`) counts them by
//! kind. `dlq replay --fix strip-poison` repairs them back into the input;
//! the replay is SIGKILLed mid-run and run again — each repaired record
//! reaches `out` exactly once (read_committed), marked with the dead
//! letter it came from.

use std::collections::BTreeMap;
use std::time::Duration;

use weir_core::dlq_headers;
use weir_testkit::{publish, TestBroker, TopicReader};
use weir_tests::{binary, topology_env, TopologyProcess};

const RECORDS: usize = 50_000;

fn value(r: &weir_core::Record) -> String {
    String::from_utf8(r.value.clone().unwrap()).unwrap()
}

#[test]
fn poisoned_records_are_dead_lettered_and_replayed_once_through_a_kill() {
    let broker = TestBroker::shared();
    let app = TestBroker::unique("dlq-replay");
    let (input, output, dlq) = (
        format!("{app}-in"),
        format!("{app}-out"),
        format!("{app}-dlq"),
    );
    broker.create_topic(&input, 4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = topology_env(
        &app,
        broker.bootstrap(),
        &dir.path().join("state"),
        (&input, &output),
        &[
            ("WEIR_AUTO_CREATE_PARTITIONS", "4"),
            ("WEIR_COMMIT_INTERVAL_MS", "100"),
        ],
    );
    let bin = binary("weir-test-fix", "weir-tests");
    let mut topo = TopologyProcess::spawn(&bin, &["run"], &env, &dir.path().join("run.log"));
    let records: Vec<(String, String)> = (0..RECORDS)
        .map(|i| {
            let v = if i % 100 == 0 {
                format!("poison:v{i}")
            } else {
                format!("v{i}")
            };
            (format!("k{}", i % 1_000), v)
        })
        .collect();
    publish(
        broker.bootstrap(),
        &input,
        records
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
    )
    .unwrap();
    let poisoned = RECORDS / 100;
    let mut reader =
        TopicReader::new(broker.bootstrap(), &[&output, &dlq], "read_committed").unwrap();
    assert!(
        reader.read_until(Duration::from_secs(120), |r| r.len() >= RECORDS),
        "all {RECORDS} records out or dead-lettered within 120 s; got {}; log:\n{}",
        reader.records().len(),
        topo.log_text()
    );
    let by_topic = reader.by_topic();
    let dead = &by_topic[&dlq];
    assert_eq!(dead.len(), poisoned);
    assert!(dead.iter().all(|r| value(r).starts_with("poison:")
        && r.headers.get_str(dlq_headers::ERROR_KIND) == Some("permanent")
        && r.headers.get_str(dlq_headers::NODE) == Some("check")
        && r.headers.get_str(dlq_headers::SOURCE_TOPIC) == Some(input.as_str())
        && r.headers
            .get_str(dlq_headers::ERROR_MESSAGE)
            .is_some_and(|m| m.contains("a poisoned value"))));

    // `dlq list`, from the topology's binary and from the generic CLI.
    eprintln!("dead letters in; listing them");
    for (n, bin) in [bin.clone(), binary("weir", "weir-cli")].iter().enumerate() {
        let mut list = TopologyProcess::spawn(
            bin,
            &["dlq", "list", "--limit", "3"],
            &env,
            &dir.path().join(format!("list-{n}.log")),
        );
        let status = list.wait_exit(Duration::from_secs(60));
        let listed = list.log_text();
        assert!(status.is_some_and(|s| s.success()), "{listed}");
        assert!(
            listed.contains(&format!("{poisoned} record(s)")),
            "{listed}"
        );
        assert!(
            listed.contains(&format!("permanent: {poisoned}")),
            "{listed}"
        );
        assert_eq!(
            listed
                .lines()
                .filter(|l| l.contains("a poisoned value"))
                .count(),
            3,
            "{listed}"
        );
    }
    // As JSON (the admin endpoint's shape), straight from Kafka.
    let mut cmd = std::process::Command::new(binary("weir", "weir-cli"));
    for (k, _) in std::env::vars() {
        if k.starts_with("WEIR_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(["dlq", "list", "--limit", "2", "--output", "json"])
        .envs(env.iter().cloned())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run weir");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(listed["total"], poisoned, "{listed}");
    assert_eq!(listed["by_kind"]["permanent"], poisoned, "{listed}");
    assert_eq!(listed["topic"], dlq.as_str(), "{listed}");
    assert_eq!(listed["entries"].as_array().unwrap().len(), 2, "{listed}");
    // A named topic needs only the cluster.
    let out = std::process::Command::new(binary("weir", "weir-cli"))
        .env_clear()
        .env("WEIR_BOOTSTRAP_SERVERS", TestBroker::shared().bootstrap())
        .env("RUST_LOG", "warn")
        .args(["dlq", "list", "--topic", &dlq, "--output", "json"])
        .output()
        .expect("run weir");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let named: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(named["total"], poisoned, "{named}");
    assert_eq!(
        listed["entries"][0]["source"]["topic"],
        input.as_str(),
        "{listed}"
    );
    eprintln!("listed; replaying");

    // Replay slowly, kill it mid-run, replay again.
    let replay = |n: usize, args: &[&str]| {
        let mut all = vec!["dlq", "replay", "--fix", "strip-poison"];
        all.extend_from_slice(args);
        TopologyProcess::spawn(
            &bin,
            &all,
            &env,
            &dir.path().join(format!("replay-{n}.log")),
        )
    };
    let repaired = |r: &[weir_core::Record]| {
        r.iter()
            .filter(|r| r.headers.get_str(dlq_headers::REPLAYED_FROM).is_some())
            .count()
    };
    let mut first = replay(0, &["--batch-size", "10", "--max-per-sec", "50"]);
    assert!(
        reader.read_until(Duration::from_secs(60), |r| repaired(r) >= 50),
        "the replay repairs records; log:\n{}",
        first.log_text()
    );
    first.kill9();
    assert!(
        repaired(reader.records()) < poisoned,
        "killed mid-run (the replay had not finished)"
    );
    let mut second = replay(1, &[]);
    assert!(
        second
            .wait_exit(Duration::from_secs(120))
            .is_some_and(|s| s.success()),
        "{}",
        second.log_text()
    );
    assert!(
        reader.read_until(Duration::from_secs(60), |r| repaired(r) >= poisoned),
        "every repaired record out; got {}; logs:\n{}\n{}",
        repaired(reader.records()),
        second.log_text(),
        topo.log_text()
    );
    reader.read_for(Duration::from_secs(3));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in &reader.by_topic()[&output] {
        *seen.entry(value(r)).or_default() += 1;
    }
    assert_eq!(seen.len(), RECORDS, "every value once: repaired and others");
    assert!(seen.values().all(|&n| n == 1), "nothing twice");
    assert!(seen.contains_key("v0") && seen.contains_key("v100"));
    assert_eq!(
        reader.by_topic()[&dlq].len(),
        poisoned,
        "nothing dead-lettered again"
    );
    // Each replayed letter is marked once, in the replay's transactions
    // (the killed run's last batch aborted with its outputs), and the
    // listing says none is waiting.
    let mut markers = TopicReader::new(
        broker.bootstrap(),
        &[&weir::runtime::replayed_topic(&dlq)],
        "read_committed",
    )
    .unwrap();
    assert!(markers.read_until(Duration::from_secs(30), |r| r.len() >= poisoned));
    markers.read_for(Duration::from_secs(2));
    assert_eq!(markers.records().len(), poisoned, "one marker per letter");
    let mut list = TopologyProcess::spawn(
        &binary("weir", "weir-cli"),
        &["dlq", "list", "--limit", "1"],
        &env,
        &dir.path().join("list-after.log"),
    );
    assert!(list
        .wait_exit(Duration::from_secs(60))
        .is_some_and(|s| s.success()));
    let listed = list.log_text();
    assert!(
        listed.contains(&format!("{poisoned} record(s), 0 not replayed")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("\t{input}\t")),
        "replayed_to: {listed}"
    );
    assert!(topo.stop().success(), "{}", topo.log_text());
}
