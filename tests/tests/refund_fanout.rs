//! refund-fanout end to end on the broker: the binary registers its bundled
//! `RefundRequest` definition (when the cluster has none), validates 400
//! requests (10 invalid), and fans each valid one out to sales, inventory
//! (when a replacement is wanted), manufacturing, accounting and the audit
//! trail. It is SIGKILLed once midway and restarted; read_committed, every
//! projection of every valid request arrives exactly once, and every
//! invalid one is in the DLQ with its field.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use weir::core::dlq_headers as h;
use weir_testkit::{TestBroker, TopicReader};
use weir_tests::{binary, unstall, Feeder, TestEvent, TopologyProcess, STALL};

const N: usize = 400;

/// Request `i`: every 40th has a lower-case currency (invalid); every 3rd
/// wants no replacement.
fn request(i: usize) -> Value {
    let mut e = refund_fanout::definition().examples[0].clone();
    e["refundId"] = json!(format!("rf-{i}"));
    e["order"]["orderId"] = json!(format!("o-{i}"));
    e["cost"]["amount"] = json!(i as f64 / 4.0);
    if i % 40 == 7 {
        e["order"]["currency"] = json!("eur");
    }
    if i.is_multiple_of(3) {
        e.as_object_mut().unwrap().remove("shipment");
    }
    e
}

#[test]
fn every_projection_of_every_valid_request_arrives_once_through_a_sigkill() {
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let app = TestBroker::unique("refunds");
    let topic = |t: &str| format!("{app}-{t}");
    let input = topic("requests");
    broker.create_topic(&input, 4).unwrap();
    let outputs: BTreeMap<&str, String> = [
        ("SALES", topic("sales")),
        ("INVENTORY", topic("inventory")),
        ("MANUFACTURING", topic("manufacturing")),
        ("ACCOUNTING", topic("accounting")),
        ("REFUND_AUDIT", topic("audit")),
    ]
    .into();
    let dlq = format!("{app}-dlq");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let mut env: Vec<(String, String)> = vec![
        ("WEIR_APPLICATION_ID".into(), app.clone()),
        ("WEIR_BOOTSTRAP_SERVERS".into(), bootstrap.clone()),
        ("WEIR_STATE_DIR".into(), state),
        ("WEIR_AUTO_CREATE_TOPICS".into(), "true".into()),
        ("WEIR_AUTO_CREATE_PARTITIONS".into(), "4".into()),
        ("WEIR_COMMIT_INTERVAL_MS".into(), "100".into()),
        ("WEIR_TOPICS__REFUND_REQUESTS".into(), input.clone()),
    ];
    env.extend(
        outputs
            .iter()
            .map(|(k, v)| (format!("WEIR_TOPICS__{k}"), v.clone())),
    );
    let bin = binary("refund-fanout", "refund-fanout");
    // Fed at 100 per second, so the kill lands mid-stream; keys unrelated
    // to the refund (the topology re-keys by refund id).
    let events: Vec<TestEvent> = (0..N)
        .map(|i| TestEvent {
            key: format!("k{}", i % 13),
            value: request(i).to_string().into_bytes(),
            id: None,
            route: None,
        })
        .collect();
    let feeder = Feeder::start(&bootstrap, &input, events, 100);

    let mut first = TopologyProcess::spawn(&bin, &["run"], &env, &dir.path().join("log0"));
    let mut all: Vec<&str> = outputs.values().map(String::as_str).collect();
    all.push(&dlq);
    // Kill it once part of the input is processed.
    let mut progress =
        TopicReader::new(&bootstrap, &[&outputs["REFUND_AUDIT"]], "read_uncommitted").unwrap();
    assert!(
        progress.read_until(Duration::from_secs(60), |rs| rs.len() >= N / 4),
        "a quarter of the requests processed within 60 s; log:\n{}",
        first.log_text()
    );
    assert!(
        first.log_text().contains("registered an event definition"),
        "the binary registered its bundled definition; log:\n{}",
        first.log_text()
    );
    first.kill9();
    assert!(
        !feeder.is_done(),
        "the kill landed before the last request was published"
    );
    let mut second = TopologyProcess::spawn(&bin, &["run"], &env, &dir.path().join("log1"));

    let invalid: Vec<usize> = (0..N).filter(|i| i % 40 == 7).collect();
    let valid = N - invalid.len();
    let inventory = (0..N).filter(|i| i % 40 != 7 && i % 3 != 0).count();
    let want: BTreeMap<&str, usize> = [
        (outputs["SALES"].as_str(), valid),
        (outputs["INVENTORY"].as_str(), inventory),
        (outputs["MANUFACTURING"].as_str(), valid),
        (outputs["ACCOUNTING"].as_str(), valid),
        (outputs["REFUND_AUDIT"].as_str(), valid),
        (dlq.as_str(), invalid.len()),
    ]
    .into();
    let mut reader = TopicReader::new(&bootstrap, &all, "read_committed").unwrap();
    feeder.join();
    let done = reader.read_until_unstalled(
        Duration::from_secs(180),
        STALL,
        || unstall(&bootstrap, &app),
        |rs| {
            want.iter()
                .all(|(t, n)| rs.iter().filter(|r| r.topic == *t).count() >= *n)
        },
    );
    reader.read_for(Duration::from_secs(2));
    let by_topic = reader.by_topic();
    assert!(
        done,
        "every output complete within 180 s: got {:?}, want {want:?}; log:\n{}",
        by_topic
            .iter()
            .map(|(t, r)| (t.clone(), r.len()))
            .collect::<BTreeMap<_, _>>(),
        second.log_text()
    );
    for (t, n) in &want {
        let records = &by_topic[*t];
        assert_eq!(records.len(), *n, "{t}: each record once");
        if *t == dlq {
            continue;
        }
        let mut ids: Vec<String> = records
            .iter()
            .map(|r| {
                let v: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
                let id = v["refundId"].as_str().unwrap().to_string();
                assert_eq!(r.key.as_deref(), Some(id.as_bytes()), "keyed by refund id");
                id
            })
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), *n, "{t}: no refund twice");
    }
    let mut dead: Vec<usize> = by_topic[&dlq]
        .iter()
        .map(|r| {
            assert_eq!(r.headers.get_str(h::ERROR_KIND), Some("validation"));
            let body: Value =
                serde_json::from_str(r.headers.get_str(h::ERROR_DETAILS).unwrap()).unwrap();
            assert_eq!(body["details"]["field"], "order.currency");
            let v: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            v["refundId"].as_str().unwrap()[3..].parse().unwrap()
        })
        .collect();
    dead.sort();
    assert_eq!(dead, invalid);
    second.stop();
}
