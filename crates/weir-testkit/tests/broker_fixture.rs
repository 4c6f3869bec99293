//! The broker fixture gives tests a broker that really implements
//! transactions: a committed transaction is visible to `read_committed`, an
//! aborted one is not (but is to `read_uncommitted`).

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;
use weir_testkit::TestBroker;

fn read_all(bootstrap: &str, topic: &str, isolation: &str, expect: usize) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", TestBroker::unique("fixture-reader"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && out.len() < expect {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    // Give a late (wrong) record a moment to show up.
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    out
}

#[test]
fn transactions_commit_and_abort_as_kafka_does() {
    let broker = TestBroker::shared();
    let topic = TestBroker::unique("fixture-txn");
    broker.create_topic(&topic, 1).unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("transactional.id", TestBroker::unique("fixture-tx"))
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    for (i, commit) in [(0, true), (1, false), (2, true)] {
        producer.begin_transaction().unwrap();
        producer
            .send(BaseRecord::<(), _>::to(&topic).payload(&format!("v{i}")))
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
        if commit {
            producer
                .commit_transaction(Duration::from_secs(30))
                .unwrap();
        } else {
            producer.abort_transaction(Duration::from_secs(30)).unwrap();
        }
    }
    let committed = read_all(broker.bootstrap(), &topic, "read_committed", 2);
    assert_eq!(committed, vec!["v0", "v2"]);
    let all = read_all(broker.bootstrap(), &topic, "read_uncommitted", 3);
    assert_eq!(all, vec!["v0", "v1", "v2"]);
}
