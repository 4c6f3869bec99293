//! The edge with rdkafka: client configurations, record conversion and error
//! classification. No other module builds `ClientConfig`s.

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers as _, OwnedHeaders};
use rdkafka::Message;
use weir_core::{ErrorClass, Headers, Record};

use crate::config::{Config, ProcessingGuarantee};

/// The consumer of a stream thread: group = application id, offsets
/// committed only by Weir, `read_committed` under exactly-once.
pub(crate) fn consumer_config(cfg: &Config, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.bootstrap_servers)
        .set("client.id", client_id)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        // Small fetches per partition: the fetched records of a thread's
        // partitions interleave, so its tasks advance together in event
        // time (see TaskSet::process_ready); a fetch still spans every
        // partition. Overridable in [kafka].
        .set("max.partition.fetch.bytes", "65536")
        // Partition ends for the lag checks, without a request each.
        .set("statistics.interval.ms", "100");
    let eos = cfg.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
    if !eos {
        c.set("isolation.level", "read_uncommitted");
    }
    for (k, v) in &cfg.kafka {
        if !is_producer_only(k) {
            c.set(k, v);
        }
    }
    // Set last: under exactly-once these are refused in config; under at
    // least once the user may not take offset management away from Weir.
    c.set("group.id", &cfg.application_id)
        // A task reads partition p of every input: only the range assignor
        // gives one member the same partition number of co-partitioned topics.
        .set("partition.assignment.strategy", "range")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    if eos {
        c.set("isolation.level", "read_committed");
    }
    c
}

/// A consumer of hand-assigned partitions, group `<application_id>-<role>`
/// (never joined: no subscription), committing nothing; the user's
/// `[kafka]` keys but group and reset ones.
fn assigned_consumer_config(cfg: &Config, client_id: &str, role: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.bootstrap_servers);
    for (k, v) in &cfg.kafka {
        if !is_producer_only(k) && !k.starts_with("group.") && k != "auto.offset.reset" {
            c.set(k, v);
        }
    }
    c.set("client.id", client_id)
        .set("group.id", format!("{}-{role}", cfg.application_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    c
}

/// A stream thread's restore consumer: no group (partitions are assigned
/// by hand), `read_committed`, never resets a position on its own (an
/// out-of-range checkpoint is the restorer's to handle), and reports
/// reaching the end of a partition.
pub(crate) fn restore_consumer_config(cfg: &Config, client_id: &str) -> ClientConfig {
    let mut c = assigned_consumer_config(cfg, client_id, "restore");
    c.set("auto.offset.reset", "error")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
    c
}

/// A reader of hand-assigned partitions (the instance directory, the
/// dead-letter size sampler): no subscription, no commits.
pub(crate) fn reader_config(cfg: &Config, client_id: &str) -> ClientConfig {
    let mut c = assigned_consumer_config(cfg, client_id, "reader");
    c.set("auto.offset.reset", "earliest")
        // No statistics events to pile up in a queue nobody reads (the
        // dead-letter counter polls for records, not for statistics).
        .set("statistics.interval.ms", "0");
    c
}

/// The producer of a stream thread: transactional under exactly-once,
/// idempotent under at least once; Java's default partitioner.
pub(crate) fn producer_config(
    cfg: &Config,
    client_id: &str,
    transactional_id: Option<&str>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.bootstrap_servers)
        .set("client.id", client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        // A crashed instance's open transaction blocks read_committed
        // readers of its partitions until the broker aborts it: keep that
        // short (Kafka's default is 60 s).
        .set("transaction.timeout.ms", "10000");
    for (k, v) in &cfg.kafka {
        if !is_consumer_only(k) {
            c.set(k, v);
        }
    }
    c.set("partitioner", "murmur2_random");
    if let Some(id) = transactional_id {
        c.set("transactional.id", id);
    }
    c
}

/// Sends everything queued at once and waits until every output is
/// acknowledged (its delivery report served), or `timeout` passes.
///
/// rdkafka's `flush` waits for reports in `poll` calls of up to 100 ms and
/// returns only when one ends, so on a quiet broker connection each flush
/// took ~100 ms however little was queued (measured: the bare pipe of the
/// throughput bench spent 1.2 s of 2.6 s in 12 flushes). This polls in
/// 1 ms steps instead.
///
/// # Errors
/// `KafkaError::Flush(TimedOut)` when outputs are still unacknowledged at
/// the deadline.
pub(crate) fn flush_quickly<C: rdkafka::producer::ProducerContext>(
    producer: &rdkafka::producer::BaseProducer<C>,
    timeout: std::time::Duration,
) -> rdkafka::error::KafkaResult<()> {
    use rdkafka::producer::Producer;
    let deadline = std::time::Instant::now() + timeout;
    // A zero-timeout flush sends what lingers now and returns.
    let _ = producer.flush(std::time::Duration::ZERO);
    while producer.in_flight_count() > 0 {
        if std::time::Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        producer.poll(std::time::Duration::from_millis(1));
    }
    Ok(())
}

/// Admin and metadata clients.
pub(crate) fn admin_config(cfg: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.bootstrap_servers);
    for (k, v) in &cfg.kafka {
        if !is_consumer_only(k) && !is_producer_only(k) && !k.starts_with("transaction") {
            c.set(k, v);
        }
    }
    c
}

fn is_producer_only(key: &str) -> bool {
    key.starts_with("transaction")
        || matches!(
            key,
            "acks"
                | "request.required.acks"
                | "linger.ms"
                | "queue.buffering.max.ms"
                | "queue.buffering.max.messages"
                | "queue.buffering.max.kbytes"
                | "batch.size"
                | "batch.num.messages"
                | "compression.type"
                | "compression.codec"
                | "enable.idempotence"
                | "message.timeout.ms"
                | "delivery.timeout.ms"
                | "retries"
                | "message.send.max.retries"
                | "partitioner"
                | "message.max.bytes"
        )
}

fn is_consumer_only(key: &str) -> bool {
    matches!(
        key,
        "auto.offset.reset"
            | "session.timeout.ms"
            | "heartbeat.interval.ms"
            | "max.poll.interval.ms"
            | "fetch.min.bytes"
            | "fetch.max.bytes"
            | "fetch.wait.max.ms"
            | "max.partition.fetch.bytes"
            | "queued.min.messages"
            | "queued.max.messages.kbytes"
            | "partition.assignment.strategy"
            | "group.instance.id"
            | "group.protocol"
            | "isolation.level"
            | "enable.auto.commit"
            | "enable.auto.offset.store"
            | "group.id"
            | "auto.commit.interval.ms"
            | "check.crcs"
    )
}

/// What to do about a librdkafka error (see the crate docs' error table).
pub(crate) fn classify(e: &KafkaError) -> ErrorClass {
    match e {
        KafkaError::Transaction(t) => {
            if t.is_fatal() {
                ErrorClass::Fatal
            } else if t.txn_requires_abort() {
                ErrorClass::AbortTransaction
            } else if t.is_retriable() {
                ErrorClass::Retriable
            } else {
                match t.code() {
                    RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                    | RDKafkaErrorCode::Fatal => ErrorClass::Fatal,
                    RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::CoordinatorLoadInProgress
                    | RDKafkaErrorCode::NotCoordinator
                    | RDKafkaErrorCode::CoordinatorNotAvailable
                    | RDKafkaErrorCode::ConcurrentTransactions => ErrorClass::Retriable,
                    _ => ErrorClass::AbortTransaction,
                }
            }
        }
        KafkaError::Flush(code) => match code {
            RDKafkaErrorCode::OperationTimedOut => ErrorClass::Retriable,
            RDKafkaErrorCode::Fatal | RDKafkaErrorCode::ProducerFenced => ErrorClass::Fatal,
            _ => ErrorClass::AbortTransaction,
        },
        KafkaError::ConsumerCommit(code) | KafkaError::MessageProduction(code) => match code {
            RDKafkaErrorCode::QueueFull
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::CoordinatorLoadInProgress
            | RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::RebalanceInProgress => ErrorClass::Retriable,
            RDKafkaErrorCode::Fatal | RDKafkaErrorCode::ProducerFenced => ErrorClass::Fatal,
            _ => ErrorClass::AbortTransaction,
        },
        _ => ErrorClass::AbortTransaction,
    }
}

/// Errors that belong to one record's output (it can never be delivered as
/// is): such a record is dead-lettered instead of aborting forever.
pub(crate) fn is_per_record(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidTimestamp
            | RDKafkaErrorCode::InvalidArgument
    )
}

/// Copies a consumed message into a [`Record`].
pub(crate) fn to_record(m: &BorrowedMessage<'_>) -> Record {
    let mut headers = Headers::new();
    if let Some(hs) = m.headers() {
        for h in hs.iter() {
            headers.push(h.key, h.value.map(<[u8]>::to_vec));
        }
    }
    Record {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
        timestamp: m.timestamp().to_millis().unwrap_or(0),
    }
}

/// The record's headers for rdkafka, or `None` when there are none.
pub(crate) fn to_owned_headers(headers: &Headers) -> Option<OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut out = OwnedHeaders::new_with_capacity(headers.len());
    for h in headers.iter() {
        out = out.insert(Header {
            key: &h.key,
            value: h.value.as_deref(),
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of the crate docs' error table that do not need a live
    /// transaction to produce (librdkafka's transactional errors carry their
    /// own retriable / abortable / fatal flags, which `classify` reads first).
    #[test]
    fn errors_map_to_the_documented_actions() {
        let cases = [
            (
                KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut),
                ErrorClass::Retriable,
            ),
            (
                KafkaError::Flush(RDKafkaErrorCode::ProducerFenced),
                ErrorClass::Fatal,
            ),
            (
                KafkaError::Flush(RDKafkaErrorCode::MessageTimedOut),
                ErrorClass::AbortTransaction,
            ),
            (
                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                ErrorClass::Retriable,
            ),
            (
                KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress),
                ErrorClass::Retriable,
            ),
            (
                KafkaError::ConsumerCommit(RDKafkaErrorCode::UnknownMemberId),
                ErrorClass::AbortTransaction,
            ),
        ];
        for (e, class) in cases {
            assert_eq!(classify(&e), class, "{e}");
        }
    }

    #[test]
    fn only_errors_of_one_record_dead_letter_it() {
        assert!(is_per_record(RDKafkaErrorCode::MessageSizeTooLarge));
        assert!(is_per_record(RDKafkaErrorCode::UnknownTopicOrPartition));
        assert!(!is_per_record(RDKafkaErrorCode::MessageTimedOut));
        assert!(!is_per_record(RDKafkaErrorCode::ProducerFenced));
        assert!(!is_per_record(RDKafkaErrorCode::OperationTimedOut));
    }

    #[test]
    fn exactly_once_settings_win_over_user_kafka_keys() {
        let mut cfg = crate::Config::load(
            &[(
                "application_id".to_string(),
                crate::ConfigValue::from("app"),
            )]
            .into(),
            None,
            Vec::<(String, String)>::new(),
        )
        .unwrap();
        cfg.kafka.insert("linger.ms".into(), "20".into());
        let c = consumer_config(&cfg, "c");
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("group.id"), Some("app"));
        assert_eq!(c.get("partition.assignment.strategy"), Some("range"));
        assert_eq!(
            c.get("linger.ms"),
            None,
            "producer keys stay off the consumer"
        );
        let p = producer_config(&cfg, "p", Some("app-i-0"));
        assert_eq!(p.get("partitioner"), Some("murmur2_random"));
        assert_eq!(p.get("transactional.id"), Some("app-i-0"));
        assert_eq!(p.get("linger.ms"), Some("20"));
        assert_eq!(p.get("transaction.timeout.ms"), Some("10000"));
    }
}
