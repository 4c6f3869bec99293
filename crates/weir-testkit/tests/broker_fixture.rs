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

/// Counts a consumer's rebalances.
struct Rebalances(std::sync::atomic::AtomicUsize);

impl rdkafka::ClientContext for Rebalances {}

impl rdkafka::consumer::ConsumerContext for Rebalances {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, _: &rdkafka::consumer::Rebalance<'_>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn force_rebalance_makes_a_group_rebalance_and_keeps_its_assignment() {
    let broker = TestBroker::shared();
    let topic = TestBroker::unique("nudged");
    let group = TestBroker::unique("nudged-group");
    broker.create_topic(&topic, 2).unwrap();
    let member: BaseConsumer<Rebalances> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", &group)
        .set("partition.assignment.strategy", "range")
        .create_with_context(Rebalances(Default::default()))
        .unwrap();
    member.subscribe(&[&topic]).unwrap();
    let count = || member.context().0.load(std::sync::atomic::Ordering::SeqCst);
    let assigned = |m: &BaseConsumer<Rebalances>| m.assignment().map_or(0, |a| a.count());
    let deadline = Instant::now() + Duration::from_secs(30);
    while assigned(&member) < 2 && Instant::now() < deadline {
        member.poll(Duration::from_millis(100));
    }
    assert_eq!(assigned(&member), 2, "the member got both partitions");
    let before = count();
    let bootstrap = broker.bootstrap().to_string();
    let nudge = std::thread::spawn(move || weir_testkit::force_rebalance(&bootstrap, &group));
    while !nudge.is_finished() {
        member.poll(Duration::from_millis(100));
    }
    nudge.join().unwrap().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (count() < before + 2 || assigned(&member) < 2) && Instant::now() < deadline {
        member.poll(Duration::from_millis(100));
    }
    assert!(
        count() >= before + 2,
        "the member was revoked and reassigned"
    );
    assert_eq!(assigned(&member), 2, "and holds both partitions again");
}
