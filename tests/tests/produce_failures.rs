//! An output the producer can never deliver (here: larger than
//! `message.max.bytes`) must not abort the transaction forever: after
//! `max_aborts_per_record` (default 3) aborts in a row, its input goes to
//! the DLQ (`weir.error.kind = poison`, `weir.attempts` = the aborts) and
//! the partition moves on, exactly once.

use std::time::Duration;

use weir_core::dlq_headers;
use weir_testkit::{publish, TestBroker, TopicReader};
use weir_tests::{binary, topology_env, TopologyProcess};

#[test]
fn an_undeliverable_output_dead_letters_its_input_as_poison_after_three_aborts() {
    let broker = TestBroker::shared();
    let app = TestBroker::unique("produce-fail");
    let (input, output, dlq) = (
        format!("{app}-in"),
        format!("{app}-out"),
        format!("{app}-dlq"),
    );
    broker.create_topic(&input, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = topology_env(
        &app,
        broker.bootstrap(),
        dir.path(),
        (&input, &output),
        &[("WEIR_KAFKA__MESSAGE_MAX_BYTES", "10000")],
    );
    let mut p = TopologyProcess::spawn(
        &binary("weir-test-inflate", "weir-tests"),
        &["run"],
        &env,
        &dir.path().join("log"),
    );
    let big = "b".repeat(3_000); // 12,000 B out: too large; 3,000 B dead letter: fine
    let records: Vec<(String, String)> = vec![
        ("k1".into(), "small-1".into()),
        ("k2".into(), big.clone()),
        ("k3".into(), "small-2".into()),
    ];
    publish(
        broker.bootstrap(),
        &input,
        records
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
    )
    .unwrap();
    let mut reader =
        TopicReader::new(broker.bootstrap(), &[&output, &dlq], "read_committed").unwrap();
    let complete = reader.read_until(Duration::from_secs(60), |r| r.len() >= 3);
    reader.read_for(Duration::from_secs(2));
    assert!(complete, "{}", p.log_text());
    let by_topic = reader.by_topic();
    let out: Vec<String> = by_topic[&output]
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap()).into_owned())
        .collect();
    assert_eq!(out, vec!["small-1".repeat(4), "small-2".repeat(4)]);
    let dead = &by_topic[&dlq];
    assert_eq!(dead.len(), 1, "exactly once in the DLQ");
    assert_eq!(dead[0].key.as_deref(), Some(&b"k2"[..]));
    assert_eq!(dead[0].value.as_deref(), Some(big.as_bytes()));
    assert_eq!(
        dead[0].headers.get_str(dlq_headers::ERROR_KIND),
        Some("poison")
    );
    assert_eq!(dead[0].headers.get_str(dlq_headers::ATTEMPTS), Some("3"));
    assert!(dead[0]
        .headers
        .get_str(dlq_headers::ERROR_MESSAGE)
        .is_some_and(|m| m.contains(&output)));
    assert!(p.stop().success(), "{}", p.log_text());
    assert!(
        p.summary_counter("aborts").is_some_and(|n| n >= 3),
        "{}",
        p.log_text()
    );
    assert_eq!(p.summary_counter("dead_lettered"), Some(1));
}
