//! Plain Kafka clients for tests and the demo: publish records, read topics
//! back (read_committed or not) until a condition holds or a deadline passes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers as _, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use weir_core::{Headers, Record};

use crate::broker::BrokerError;

fn admin_err(bootstrap: &str, message: impl Into<String>) -> BrokerError {
    BrokerError::Admin {
        bootstrap: bootstrap.to_string(),
        message: message.into(),
    }
}

/// Publishes `(key, value)` pairs to `topic` (idempotent producer, acks=all)
/// and waits until all are acknowledged.
///
/// # Errors
/// [`BrokerError::Admin`] if a record cannot be sent or acknowledged.
pub fn publish<'a>(
    bootstrap: &str,
    topic: &str,
    records: impl IntoIterator<Item = (Option<&'a [u8]>, Option<&'a [u8]>)>,
) -> Result<usize, BrokerError> {
    publish_at(
        bootstrap,
        topic,
        records.into_iter().map(|(k, v)| (k, v, None)),
    )
}

/// [`publish`] with a timestamp per record (`None`: the producer's clock).
///
/// # Errors
/// [`BrokerError::Admin`] if a record cannot be sent or acknowledged.
pub fn publish_at<'a>(
    bootstrap: &str,
    topic: &str,
    records: impl IntoIterator<Item = (Option<&'a [u8]>, Option<&'a [u8]>, Option<i64>)>,
) -> Result<usize, BrokerError> {
    publish_records(
        bootstrap,
        topic,
        records
            .into_iter()
            .map(|(k, v, t)| (k, v, t, Headers::new())),
    )
}

/// As [`publish_at`], each record with its headers.
///
/// # Errors
/// [`BrokerError::Admin`] if a record cannot be sent or acknowledged.
pub fn publish_records<'a>(
    bootstrap: &str,
    topic: &str,
    records: impl IntoIterator<Item = (Option<&'a [u8]>, Option<&'a [u8]>, Option<i64>, Headers)>,
) -> Result<usize, BrokerError> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .map_err(|e| admin_err(bootstrap, e.to_string()))?;
    let mut n = 0;
    for (key, value, timestamp, headers) in records {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if !headers.is_empty() {
            let mut owned = rdkafka::message::OwnedHeaders::new();
            for h in headers.iter() {
                owned = owned.insert(rdkafka::message::Header {
                    key: &h.key,
                    value: h.value.as_deref(),
                });
            }
            rec = rec.headers(owned);
        }
        if let Some(t) = timestamp {
            rec = rec.timestamp(t);
        }
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(v) = value {
            rec = rec.payload(v);
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((e, back)) => {
                    if !matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ) {
                        return Err(admin_err(bootstrap, format!("publish to {topic}: {e}")));
                    }
                    rec = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        n += 1;
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| admin_err(bootstrap, format!("flush to {topic}: {e}")))?;
    Ok(n)
}

/// Reads topics from the beginning with a fresh consumer group.
pub struct TopicReader {
    consumer: BaseConsumer,
    records: Vec<Record>,
}

impl TopicReader {
    /// A reader of `topics` at `isolation` (`read_committed` or `read_uncommitted`).
    ///
    /// # Errors
    /// [`BrokerError::Admin`] if the consumer cannot be created or subscribed.
    pub fn new(bootstrap: &str, topics: &[&str], isolation: &str) -> Result<Self, BrokerError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set(
                "group.id",
                format!("weir-reader-{}", uuid::Uuid::new_v4().simple()),
            )
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            .set("fetch.wait.max.ms", "50")
            .set("log_level", "3")
            .create()
            .map_err(|e| admin_err(bootstrap, e.to_string()))?;
        consumer
            .subscribe(topics)
            .map_err(|e| admin_err(bootstrap, e.to_string()))?;
        Ok(Self {
            consumer,
            records: Vec::new(),
        })
    }

    /// Polls until `done(records so far)` holds or `timeout` passes; returns
    /// whether `done` held.
    pub fn read_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[Record]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.records) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.poll_once(Duration::from_millis(100));
        }
    }

    /// Like [`TopicReader::read_until`], but each time nothing new arrived
    /// for `stall`, calls `on_stall()` and goes on waiting (e.g. to
    /// [`force_rebalance`] a group the test broker left half-assigned).
    pub fn read_until_unstalled(
        &mut self,
        timeout: Duration,
        stall: Duration,
        mut on_stall: impl FnMut(),
        mut done: impl FnMut(&[Record]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let (mut seen, mut since) = (self.records.len(), Instant::now());
        loop {
            if done(&self.records) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if self.records.len() != seen {
                (seen, since) = (self.records.len(), now);
            } else if now.duration_since(since) >= stall {
                on_stall();
                since = Instant::now();
            }
            self.poll_once(Duration::from_millis(100));
        }
    }

    /// Polls for `period` and keeps whatever arrives (to catch records that
    /// should not be there).
    pub fn read_for(&mut self, period: Duration) {
        let deadline = Instant::now() + period;
        while Instant::now() < deadline {
            self.poll_once(Duration::from_millis(100));
        }
    }

    fn poll_once(&mut self, timeout: Duration) {
        if let Some(Ok(m)) = self.consumer.poll(timeout) {
            let mut headers = Headers::new();
            if let Some(hs) = m.headers() {
                for h in hs.iter() {
                    headers.push(h.key, h.value.map(<[u8]>::to_vec));
                }
            }
            self.records.push(Record {
                topic: m.topic().to_string(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
                timestamp: m.timestamp().to_millis().unwrap_or(0),
            });
        }
    }

    /// Everything read so far, in arrival order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Everything read so far, by topic.
    pub fn by_topic(&self) -> BTreeMap<String, Vec<Record>> {
        let mut m: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for r in &self.records {
            m.entry(r.topic.clone()).or_default().push(r.clone());
        }
        m
    }
}

/// Makes consumer group `group` rebalance: a member that subscribes only to
/// a topic of its own (`<group>-rebalance`, created if missing) joins until
/// it is assigned that topic, then leaves. The group's members are
/// reassigned their topics among themselves.
///
/// A workaround for a defect of the test broker, never needed on Kafka: a
/// member whose session expires while a rebalance completes can be dropped
/// with its partitions assigned to nobody and no further rebalance
/// (the group looks stable to the others).
///
/// # Errors
/// [`BrokerError::Admin`] if the member cannot join within 30 s.
pub fn force_rebalance(bootstrap: &str, group: &str) -> Result<(), BrokerError> {
    let topic = format!("{group}-rebalance");
    match crate::broker::create_topics(bootstrap, &[(&topic, 1)]) {
        Ok(()) => {}
        Err(e) if e.to_string().contains("already exists") => {}
        Err(e) => return Err(e),
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("partition.assignment.strategy", "range")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .set("log_level", "3")
        .create()
        .map_err(|e| admin_err(bootstrap, e.to_string()))?;
    consumer
        .subscribe(&[&topic])
        .map_err(|e| admin_err(bootstrap, e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let _ = consumer.poll(Duration::from_millis(100));
        if consumer.assignment().is_ok_and(|a| a.count() > 0) {
            consumer.unsubscribe();
            return Ok(());
        }
    }
    Err(admin_err(
        bootstrap,
        format!("a member did not join group {group} within 30 s"),
    ))
}
