//! Workarounds for the test broker (crabka-broker 0.3.8), in one place.
//!
//! Both are harmless on Apache Kafka, and neither hides a real error:
//! - [`clear_stale_offsets`]: crabka applies a crashed transaction's
//!   consumer offsets with the restarted producer's next commit; an aborted
//!   probe transaction right after `init_transactions` drains them.
//! - [`FetchNoise`]: crabka answers empty fetches with a message set
//!   librdkafka cannot parse and logs as a protocol error; no data is lost.
//!   The first such line of a client is logged as a warning (a real Kafka
//!   never sends it, so it is visible there), later ones at debug level
//!   with a count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;
use crate::error::Result;
use crate::stream_thread::{kafka_err, ThreadSpec};

/// Aborts a transaction that carries one consumer offset, right after
/// `init_transactions` and before any commit.
///
/// Kafka drops a crashed transaction's consumer offsets when the restarted
/// producer fences it. crabka-broker 0.3.8 (the test broker) does not: it
/// keeps them buffered per producer id and applies them with that producer
/// id's next committed transaction — offsets of partitions this instance may
/// no longer own, which would skip their records. Its `EndTxn(ABORT)` drains
/// that buffer, so this aborted probe clears it. On Kafka it is a harmless
/// aborted transaction (a few milliseconds at start and after a rejoin).
pub(crate) fn clear_stale_offsets<C: ProducerContext>(
    spec: &ThreadSpec,
    producer: &BaseProducer<C>,
    timeout: Duration,
) -> Result<()> {
    let Some(topic) = spec.topology.source_topics().into_iter().next() else {
        return Ok(());
    };
    clear_stale_offsets_of(
        &spec.cfg,
        &spec.cfg.application_id,
        &topic,
        producer,
        timeout,
    )
}

/// [`clear_stale_offsets`] for consumer group `group`, with an offset of
/// `topic` (any topic the group reads).
pub(crate) fn clear_stale_offsets_of<C: ProducerContext>(
    cfg: &Config,
    group: &str,
    topic: &str,
    producer: &BaseProducer<C>,
    timeout: Duration,
) -> Result<()> {
    let probe: BaseConsumer = crate::kafka::admin_config(cfg)
        .set("group.id", group)
        .create()
        .map_err(kafka_err("creating the offset probe"))?;
    let Some(cgm) = probe.group_metadata() else {
        return Ok(());
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(0))
        .map_err(kafka_err("building the offset probe"))?;
    producer
        .begin_transaction()
        .map_err(kafka_err("beginning the offset probe"))?;
    if let Err(e) = producer.send_offsets_to_transaction(&tpl, &cgm, timeout) {
        tracing::warn!(error = %e, "offset probe: send_offsets_to_transaction failed");
    }
    producer
        .abort_transaction(timeout)
        .map_err(kafka_err("aborting the offset probe"))?;
    Ok(())
}

/// Counts the test broker's empty-fetch parse errors; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct FetchNoise {
    seen: AtomicU64,
}

impl FetchNoise {
    /// Whether `message` is the test broker's empty-fetch noise.
    pub fn matches(message: &str) -> bool {
        message.contains("invalid MessageSetSize -1")
            || (message.contains("Protocol parse failure") && message.contains("Fetch"))
    }

    /// Logs `message` (noise or not) at the level it deserves.
    pub fn log(&self, message: &str) -> bool {
        if !Self::matches(message) {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        if n == 0 {
            tracing::warn!(
                "{message} (an empty fetch the test broker encodes oddly; no data is lost; further ones are logged at debug level)"
            );
        } else {
            tracing::debug!(count = n + 1, "{message}");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_empty_fetch_errors_are_noise() {
        assert!(FetchNoise::matches(
            "Protocol parse failure for Fetch v16 at 3/78 (rd_kafka_msgset_reader_v2:1020) (incorrect broker.version.fallback?)"
        ));
        assert!(FetchNoise::matches("invalid MessageSetSize -1"));
        assert!(!FetchNoise::matches(
            "Protocol parse failure for Produce v9"
        ));
        assert!(!FetchNoise::matches("Broker: Unknown topic or partition"));
        let n = FetchNoise::default();
        assert!(n.log("invalid MessageSetSize -1"));
        assert!(!n.log("Disconnected"));
        assert_eq!(n.seen.load(Ordering::Relaxed), 1);
    }
}
